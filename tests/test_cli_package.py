"""The command line as a package (issue 24): options read their choices and numbers from their owners,
every command calls the public API, and ``advisor`` exports the verbs."""

import ast
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from advisor.cli import _build, main
from tests.test_cli import _one_line_error, run_cli

ROOT = Path(__file__).resolve().parents[1]
DEVICE_COMMANDS = {"analyze": ["digits"], "reference": ["digits"], "train": ["digits", "--strategy", "linear_probe"],
                   "search": ["digits"], "predict": ["model.pt", "digits"]}


def _parse(argv):
    return _build((argv[0],)).parse_args(argv)


@pytest.mark.parametrize("command", sorted(DEVICE_COMMANDS))
def test_device_accepts_what_resolve_device_reads(command):
    for device in ("cuda:1", "CUDA:0", "cpu", "auto", "cuda"):
        assert _parse([command, *DEVICE_COMMANDS[command], "--device", device]).device == device


def test_a_device_resolve_device_cannot_read_is_one_line_before_anything_runs(capsys):
    code, out, err = run_cli(["analyze", "no-such-dataset", "--device", "gpu"], capsys)
    _one_line_error(code, err, "unknown device 'gpu'", "cpu, cuda, cuda:N or auto")


def test_cuda_1_without_that_device_is_one_line_at_run_time(capsys):
    import torch

    if torch.cuda.device_count() >= 2:
        pytest.skip("this machine has a cuda:1")
    # the device is resolved before the data loads: an unknown dataset is never reached
    code, out, err = run_cli(["analyze", "no-such-dataset-anywhere", "--device", "cuda:1"], capsys)
    _one_line_error(code, err, "cuda:1")


def _help(argv, capsys) -> str:
    assert main([*argv, "--help"]) == 0
    return " ".join(capsys.readouterr().out.split())  # unwrapped


def test_analyze_help_reads_the_check_threshold_from_the_rules(capsys, monkeypatch):
    import dataclasses

    from advisor.advise import thresholds

    assert f"at most {thresholds.DEFAULT_THRESHOLDS.check_per_class:g} images per class" in _help(["analyze"], capsys)
    monkeypatch.setattr(thresholds, "DEFAULT_THRESHOLDS",
                        dataclasses.replace(thresholds.DEFAULT_THRESHOLDS, check_per_class=37))
    text = _help(["analyze"], capsys)
    assert "at most 37 images per class" in text and f"{50} images per class" not in text


def test_choices_are_their_owners():
    from advisor.api import CHECK_MODES
    from advisor.deploy.formats import FORMATS
    from advisor.search._pruners import PRUNERS

    def choices(command, flag):
        parser = _build((command,))
        sub = next(a for a in parser._actions if a.dest == "command").choices[command]
        return list(next(a for a in sub._actions if flag in a.option_strings).choices)

    assert choices("analyze", "--check") == list(CHECK_MODES)
    assert choices("search", "--pruner") == list(PRUNERS)
    assert choices("export", "--format") == list(FORMATS)


def test_help_without_a_command_imports_no_option_owner():
    code = ("import sys\nfrom advisor.cli import main\nmain(['--help'])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'torch', 'yaml')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert ast.literal_eval(out.strip().splitlines()[-1]) == []
    assert "analyze" in out and "cache" in out  # every command is listed


def test_train_calls_the_public_train(tmp_path, capsys, monkeypatch):
    import advisor.train
    from advisor.train import TrainResult

    seen = {}

    def fake_train(dataset, model, strategy, *, params, callback, on_context, **context):
        seen.update(dataset=dataset, model=model, strategy=strategy, params=params, context=context)
        on_context(SimpleNamespace(cache=None))
        callback(1, 0.5)
        return TrainResult(strategy=strategy, params={"C": 2.0}, val_accuracy=0.75, test_accuracy=0.5,
                           val_macro_f1=0.7, test_macro_f1=0.4, history=[], wall_time=1.0, trainable_params=10)

    monkeypatch.setattr(advisor.train, "train", fake_train)
    out = tmp_path / "r.json"
    code, stdout, err = run_cli(["train", "digits:5", "--strategy", "linear_probe", "--C", "2", "--device", "cuda:1",
                                 "--labels", "a, b", "--no-cache", "--json", str(out)], capsys)
    assert code == 0, err
    assert seen["dataset"] == "digits:5" and seen["strategy"] == "linear_probe" and seen["params"] == {"C": 2.0}
    assert seen["context"]["device"] == "cuda:1" and seen["context"]["label_columns"] == ["a", "b"]
    assert seen["context"]["cache_dir"] is False
    assert "epoch 1: validation accuracy 0.5000" in err
    assert "0.7500" in stdout and json.loads(out.read_text())["test_accuracy"] == 0.5


def test_advisor_exports_the_verbs_lazily(monkeypatch):
    """``import advisor`` loads none of them (measured: 0.01 s; all of them eagerly: about 0.3 s more)."""
    code = ("import sys, advisor\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'torch', 'yaml')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert ast.literal_eval(out.strip()) == []

    import advisor
    from advisor.deploy import exporting, predict
    from advisor.report import ReportResult
    from advisor.search import SearchResult

    assert {"analyze", "train", "search", "report", "predict", "export", "Analysis", "TrainResult", "SearchResult",
            "ReportResult", "Prediction", "Exported"} <= set(advisor.__all__)
    assert advisor.predict is predict.predict and advisor.export is exporting.export
    assert advisor.ReportResult is ReportResult and advisor.SearchResult is SearchResult
    # train, search and report are packages too: calling one calls its verb
    monkeypatch.setattr(advisor.train, "train", lambda *a, **k: ("trained", a, k))
    assert advisor.train("digits", params={}) == ("trained", ("digits",), {"params": {}})
    assert advisor.train.TrainResult is advisor.TrainResult
    calls = []
    monkeypatch.setattr(advisor.report, "build_report", lambda *a, **k: calls.append(a) or "page")
    assert advisor.report(["x"]) == "page" and calls == [(["x"],)]


def test_search_verb_runs_the_config_it_is_given(monkeypatch):
    import advisor.search as search

    monkeypatch.setattr(search, "run_search", lambda cfg, progress=None: (cfg, progress))
    cfg, progress = search.search("digits", "resnet18", trials=3, strategy="last_k")
    assert (cfg.dataset, cfg.model, cfg.trials, cfg.strategy, progress) == ("digits", "resnet18", 3, "last_k", None)
    with pytest.raises(TypeError):
        search.search("digits", no_such_option=1)
