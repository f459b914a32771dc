"""The strategy registry: one declaration per strategy, read by the trainer, spaces, CLI, advice and README."""

from __future__ import annotations

import ast
from pathlib import Path

import optuna
import pytest

from advisor import strategies
from advisor.errors import AdvisorError
from advisor.strategies import Interval, Param, Strategy
from tests.strategies._throwaway import SHRUNK_PROBE
from tests.test_cli import _one_line_error, run_cli

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["stem", *[f"ir{i}" for i in range(1, 18)], "conv_last"]


@pytest.fixture
def shrunk_probe():
    strategies.register(SHRUNK_PROBE)
    yield SHRUNK_PROBE
    strategies.unregister(SHRUNK_PROBE.name)


def test_readme_parameter_table_is_the_registry():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = strategies.parameter_table()
    assert table in readme, ("README.md's strategy table differs from the registry; paste the output of\n"
                             "python -c 'from advisor.strategies import parameter_table; print(parameter_table())'\n"
                             + table)


def test_every_name_list_reads_the_registry():
    from advisor.advise import STRATEGIES
    from advisor.search.space import NETWORK_STRATEGIES, PARAMS
    from advisor.train import PROBE_STRATEGIES, RUNNERS

    names = strategies.names()
    assert names == ("linear_probe", "svm_early", "last_k", "full_finetune", "multi_task", "pipeline_vs_end_to_end",
                     "surgical", "norm_tune", "bn_adapt", "lora", "auto_rgn")
    assert STRATEGIES == names and tuple(RUNNERS) == names and tuple(PARAMS) == names
    assert set(PROBE_STRATEGIES) | set(NETWORK_STRATEGIES) == set(names)
    assert RUNNERS["last_k"] == ("advisor.train._finetune", "run_last_k")


def test_the_registry_sits_below_everything_and_imports_no_trainer():
    import subprocess
    import sys

    code = ("import sys, advisor.strategies as s; s.names(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'advisor')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    loaded = ast.literal_eval(out)  # the sorted list printed above
    # advisor.offline: the no-calls-home switches advisor/__init__.py sets first (os and sys only);
    # advisor.block_ref: the one block-index parser (standard library and advisor.errors only)
    assert all(m in ("advisor", "advisor.errors", "advisor.offline", "advisor.block_ref")
               or m.startswith("advisor.strategies")
               for m in loaded), loaded


def test_validate_fills_defaults_and_names_the_problem():
    last_k = strategies.get("last_k")
    assert last_k.validate({"k": 2}, n_blocks=19)["head_lr"] == 0.01
    assert strategies.get("multi_task").validate({}, n_blocks=19)["k"] == 4
    assert strategies.get("pipeline_vs_end_to_end").validate({"curve_fractions": [1, 0.5, 0.5]})["curve_fractions"] \
        == [0.5, 1.0]
    with pytest.raises(AdvisorError, match=r"unknown parameter 'head_rl' for last_k; did you mean head_lr\?"):
        last_k.validate({"k": 2, "head_rl": 0.1})
    with pytest.raises(AdvisorError, match=r"bad layer_decay=1.5: must be a number > 0 and <= 1, in \(0, 1\]"):
        last_k.validate({"k": 2, "layer_decay": 1.5})
    with pytest.raises(AdvisorError, match="last_k needs k"):
        last_k.validate({})
    with pytest.raises(AdvisorError, match=r"unknown strategy 'lastk'; did you mean last_k\?"):
        strategies.get("lastk")


def test_a_strategy_is_declared_once():
    with pytest.raises(ValueError, match="already registered"):
        strategies.register(strategies.get("last_k"))
    with pytest.raises(ValueError, match="declared twice"):
        Strategy("x", "probe", (Param("a", Interval(int)), Param("a", Interval(int))), runner="m:f")
    with pytest.raises(ValueError, match="kind"):
        Strategy("x", "magic", (), runner="m:f")


def test_a_throwaway_strategy_appears_in_yaml_validation_the_cli_and_search(shrunk_probe, tmp_path, capsys,
                                                                              monkeypatch, one_torch_thread):
    """One new file (tests/strategies/_throwaway.py), registered: nothing else is edited."""
    from advisor.search import SearchConfig, load_space, run_search, suggest

    # YAML validation
    good = tmp_path / "shrunk.yaml"
    good.write_text("strategy: shrunk_probe\nparams:\n  shrink: {type: float, low: 0.2, high: 0.8}\n")
    space = load_space(good)
    st = optuna.create_study(direction="maximize")
    strategy, params = suggest(st.ask(), space, NAMES)
    assert strategy == "shrunk_probe" and 0.2 <= params["shrink"] <= 0.8
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy: shrunk_probe\nparams:\n  shrink: 2\n")
    with pytest.raises(AdvisorError, match=r"params\.shrink must be a number >= 0 and <= 1, got 2"):
        load_space(bad)
    bad.write_text("strategy: shrunk_probe\nparams:\n  shrnk: 0.5\n")
    with pytest.raises(AdvisorError, match=r"params\.shrnk is not a parameter of shrunk_probe.*did you mean shrink\?"):
        load_space(bad)

    # the CLI: its flag and --param keys, checked before any data or backbone loads
    import advisor.context
    import advisor.train

    def no_loading(*a, **k):
        raise AssertionError("data and backbone must not load for a bad parameter")

    with monkeypatch.context() as m:
        m.setattr(advisor.context, "make_context", no_loading)
        m.setattr(advisor.train, "make_context", no_loading)
        code, _, err = run_cli(["train", "digits", "--strategy", "shrunk_probe", "--shrink", "5"], capsys)
        _one_line_error(code, err, "shrink=5.0", ">= 0 and <= 1")
        code, _, err = run_cli(["train", "digits", "--strategy", "shrunk_probe", "--param", "shrnk=0.1"], capsys)
        _one_line_error(code, err, "unknown parameter 'shrnk'", "did you mean shrink?")
        code, _, err = run_cli(["train", "digits", "--strategy", "shrunk_prob"], capsys)
        _one_line_error(code, err, "did you mean shrunk_probe?")
    code, out, err = run_cli(["train", "digits:30", "--strategy", "shrunk_probe", "--shrink", "0.3", "--image-size",
                              "32", "--no-cache", "--quiet"], capsys)
    assert code == 0, err
    assert "shrunk_probe on digits:30" in out and "'shrink': 0.3" in out
    assert "shrunk_probe's own table: C used 0.71" in out  # its declared tables, nothing edited in display

    # search: no file for it, so the ranges it declares; every trial runs its trainer
    cfg = SearchConfig(dataset="digits:30", strategy="shrunk_probe", trials=2, image_size=32,
                       workspace=str(tmp_path / "ws"), cache_dir=str(tmp_path / "cache"), study_name="shrunk")
    result = run_search(cfg)
    assert result.n_complete == 2 and result.best_strategy == "shrunk_probe"
    assert 0.1 <= result.best_params["shrink"] <= 0.9


def test_search_spaces_readme_table_is_the_registry():
    readme = (ROOT / "search_spaces" / "README.md").read_text(encoding="utf-8")
    table = strategies.space_table()
    assert table in readme, ("search_spaces/README.md's parameter table differs from the registry; paste the output of\n"
                             "python -c 'from advisor.strategies import space_table; print(space_table())'\n" + table)


def test_every_runner_and_table_function_resolves():
    for s in strategies.all_strategies():
        assert callable(s.load_runner()), s.name
        assert callable(s.load_tables()), s.name
    with pytest.raises(ValueError, match="tables 'display' must be 'module:function'"):
        Strategy("x", "probe", (), runner="m:f", tables="display")


def test_a_strategy_without_its_own_tables_prints_the_per_task_metrics_when_there_are_any():
    import io

    from rich.console import Console

    from advisor.report.terminal import print_train_extra
    from advisor.train._base import TrainResult

    def printed(per_task):
        r = TrainResult(strategy="last_k", params={}, val_accuracy=0.5, test_accuracy=0.5, val_macro_f1=0.5,
                        test_macro_f1=0.5, history=[], wall_time=1.0, trainable_params=1, per_task=per_task)
        buf = io.StringIO()
        print_train_extra(r, Console(file=buf, width=120))
        return buf.getvalue()

    assert printed({}) == ""
    out = printed({"species": {"val_accuracy": 0.8123}})
    assert "per task" in out and "species" in out and "0.8123" in out


@pytest.mark.parametrize("strategy, params, needle", [
    ("lastk", {}, "did you mean last_k?"),
    ("last_k", {"k": 2, "head_lr": -1}, "head_lr=-1"),
    ("last_k", {"k": 2, "lr": 0.1}, "unknown parameter 'lr'"),
    ("last_k", {}, "last_k needs k"),
    ("multi_task", {"tasks": ["a"]}, "at least 2 tasks"),
])
def test_the_api_and_the_cli_refuse_a_bad_choice_before_loading_data(monkeypatch, capsys, strategy, params, needle):
    import advisor.context
    import advisor.train
    from advisor.train import train

    def no_loading(*a, **k):
        raise AssertionError("data and backbone must not load for a bad choice")

    monkeypatch.setattr(advisor.context, "make_context", no_loading)  # the CLI's
    monkeypatch.setattr(advisor.train, "make_context", no_loading)  # the API's
    with pytest.raises(AdvisorError, match=needle.replace("?", r"\?")):
        train("digits", strategy=strategy, params=params)
    flags = [f"--param={k}={v}" for k, v in params.items()]
    code, _, err = run_cli(["train", "digits", "--strategy", strategy, *flags], capsys)
    _one_line_error(code, err, needle)


def test_equivalences_and_head_kinds_are_declared_on_the_strategy():
    """full_finetune declares that last_k with k = every block (and surgical over every block) is it; reports
    and the advised trial read that; the saved model's head kinds come from the declaration too."""
    import torch

    from advisor.report.collect import canonical
    from advisor.deploy.modelfile import _head_spec

    assert canonical("last_k", {"k": 19}, 19) == "full_finetune" == strategies.canonical("last_k", {"k": 19}, 19)
    assert canonical("last_k", {"k": 18}, 19) == "last_k" and canonical("last_k", {"k": 19}, None) == "last_k"
    assert canonical("surgical", {"first": 0, "last": 18}, 19) == "full_finetune"
    assert canonical("surgical", {"first": 1, "last": 18}, 19) == "surgical"
    assert strategies.expressed_in("full_finetune", {"last_k": None}, 19) == ("last_k", {"k": 19})
    assert strategies.expressed_in("full_finetune", {"surgical": None}, 19) == ("surgical", {"first": 0, "last": 18})
    assert strategies.expressed_in("last_k", {"full_finetune": None}, 19) is None
    assert strategies.get("pipeline_vs_end_to_end").heads == ("linear", "two_stage")
    assert all(s.heads == ("linear",) for s in strategies.all_strategies() if s.name != "pipeline_vs_end_to_end")
    two = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1), torch.nn.Linear(3, 2))
    assert _head_spec(two, ("linear", "two_stage"))["kind"] == "two_stage"
    with pytest.raises(AdvisorError, match="last_k declares heads linear, not a two_stage head"):
        _head_spec(two, strategies.get("last_k").heads, "last_k")
    with pytest.raises(ValueError, match="heads"):
        Strategy("x", "probe", (), runner="m:f", heads=("mlp",))


def test_a_throwaway_strategy_is_checked_advised_saved_predicted_and_exported(shrunk_probe, tmp_path, capsys,
                                                                              one_torch_thread):
    """The same one file, registered: the measured check runs its declared candidates, the advice can name it
    (with its parameters, a search space and the advised trial), and a saved run predicts and exports like
    itself; no other file knows it."""
    import advisor
    from advisor.advise import advise
    from advisor.advise.check import MeasuredCheck, candidates, resolve
    from advisor.advise.rules import DEFAULT_THRESHOLDS
    from advisor.context import make_context
    from advisor.search.space import advice_trial, space_from_advice
    from advisor.train import load_model
    from tests.train.test_train_new_strategies import predicts_and_exports_like_itself

    model = "timm:mobilenetv2_050"
    # checkable: analyze's check runs it, trained on the train split and scored on validation, like any candidate
    a = advisor.analyze("digits:20", model, weights="random", sample=100, image_size=32, check="on")
    chk = a.advice.check
    mine = [r for r in chk.runs if r.strategy == "shrunk_probe"]
    assert [r.params for r in mine] == [{"shrink": 0.91}, {"shrink": 0.01}]  # C = 0.1 and 1.0, its declaration
    offered = candidates(len(a.profile.blocks), a.profile.size.split["train"], "cnn", a.profile)
    # bn_adapt's early SVM takes its block from the best plain early SVM once the probes have run (check.resolve)
    assert [(r.strategy, r.params) for r in chk.runs] == [(s, resolve(p, chk.runs)) for s, p in offered]
    assert all(0.0 <= r.val_accuracy <= 1.0 for r in mine)
    # advisable: where its run is the best validation run the check names it, with its parameters
    best = max(mine, key=lambda r: r.val_accuracy)
    sub = MeasuredCheck(runs=[r for r in chk.runs if r is best or r.val_accuracy < best.val_accuracy],
                        n_val=chk.n_val)
    adv = advise(a.profile, DEFAULT_THRESHOLDS, sub)
    assert adv.strategy == "shrunk_probe" and adv.params == best.params
    assert any(e.name.startswith("measured: shrunk_probe") for e in adv.evidence)
    space = space_from_advice(adv)
    assert space.strategies["shrunk_probe"].params["shrink"].value == best.params["shrink"]
    assert advice_trial(adv, space, len(a.profile.blocks))[0] == "shrunk_probe"
    # savable, predictable, exportable: advisor train --save, then advisor predict and a TorchScript export
    save = tmp_path / "m.pt"
    code, _, err = run_cli(["train", "digits:20", "--model", model, "--weights", "random", "--image-size", "32",
                            "--strategy", "shrunk_probe", "--shrink", "0.3", "--no-cache", "--quiet", "--save",
                            str(save)], capsys)
    assert code == 0, err
    net, meta = load_model(save)
    assert meta["strategy"] == "shrunk_probe" and meta["params"] == {"shrink": 0.3}
    ctx = make_context("digits:20", model, weights="random", image_size=32, seed=0, device="cpu", cache_dir=False)
    rows = predicts_and_exports_like_itself(save, net, meta, ctx, tmp_path, capsys)
    assert len(rows) == len(ctx.dataset)
