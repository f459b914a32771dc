"""The CLI end to end on real data with real pretrained weights, and every error path."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advisor.api import Analysis
from advisor.advise import STRATEGIES
from advisor.cli import main

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def run_cli(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_analyze_digits_end_to_end_with_pretrained_mobilenet(tmp_path, capsys):
    out_json = tmp_path / "a.json"
    code, out, err = run_cli(["analyze", "digits", "--model", "mobilenet_v2", "--sample", "200",
                              "--image-size", "32", "--json", str(out_json), "--quiet"], capsys)
    assert code == 0, err
    assert "Per block" in out and "Advice:" in out and "conv_last" in out
    a = Analysis.load(out_json)
    assert a.profile.weights == "IMAGENET1K_V1"
    assert a.profile.sample_size == 200
    assert [b.name for b in a.profile.blocks][:2] == ["stem", "ir1"] and len(a.profile.blocks) == 19
    assert a.advice.strategy in STRATEGIES
    # real measurements: every MobileNetV2 block has BatchNorm and a finite shift, k-NN well above chance
    assert all(b.shift is not None and b.shift >= 0 for b in a.profile.blocks)
    assert max(b.knn_accuracy["label"] for b in a.profile.blocks) > 0.5
    assert a.profile.source.num_source_classes == 1000
    assert a.profile.size.tasks[0].n_classes == 10 and a.profile.size.n_samples == 1797
    data = json.loads(out_json.read_text())
    assert data["advice"]["strategy"] == a.advice.strategy


@pytest.mark.skipif(not FMNIST.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_analyze_fashion_mnist_subset_console_script(tmp_path):
    """The installed console script, in a fresh process, on real Fashion-MNIST."""
    exe = Path(sys.executable).parent / "advisor"
    out_json = tmp_path / "f.json"
    r = subprocess.run([str(exe), "analyze", "fashion-mnist:20", "--sample", "120", "--image-size", "48",
                        "--check", "off", "--json", str(out_json)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    a = Analysis.load(out_json)
    assert a.profile.size.n_samples == 200
    assert a.profile.size.tasks[0].median_per_class == 12  # the training split's 60% of 20 per class
    assert a.advice.strategy in ("linear_probe", "svm_early")  # 20 per class is small (the rules alone)
    assert a.advice.check is None
    assert "Advice:" in r.stdout


def _one_line_error(code, err, *needles):
    assert code == 2
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("advisor: error:")
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


def _write_png(path, value=128, size=(16, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, np.uint8)).save(path)


def test_missing_path(capsys, tmp_path):
    code, _, err = run_cli(["analyze", str(tmp_path / "nope")], capsys)
    _one_line_error(code, err, "nope")


def test_empty_folder(capsys, tmp_path):
    (tmp_path / "data" / "a").mkdir(parents=True)
    code, _, err = run_cli(["analyze", str(tmp_path / "data")], capsys)
    _one_line_error(code, err)


def test_single_class(capsys, tmp_path):
    for i in range(3):
        _write_png(tmp_path / "data" / "cat" / f"{i}.png")
    code, _, err = run_cli(["analyze", str(tmp_path / "data")], capsys)
    _one_line_error(code, err, "cat")


def test_unreadable_image(capsys, tmp_path):
    for c in ("a", "b"):
        for i in range(5):  # 5: the fewest a class needs for one image in each of train, validation and test
            _write_png(tmp_path / "data" / c / f"{i}.png", value=40 * i)
    for i in range(5):  # analyze decodes the training split: 6 of b's 10 images, so at least one broken one
        (tmp_path / "data" / "b" / f"broken{i}.png").write_bytes(b"not a png at all")
    code, _, err = run_cli(["analyze", str(tmp_path / "data"), "--image-size", "32", "--quiet"], capsys)
    _one_line_error(code, err, "cannot read image file", "broken")


def test_unknown_model(capsys):
    code, _, err = run_cli(["analyze", "digits", "--model", "notanet"], capsys)
    _one_line_error(code, err, "notanet")


def test_missing_weights_names_file_and_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torchhome"))
    code, _, err = run_cli(["analyze", "digits", "--model", "resnet18"], capsys)
    _one_line_error(code, err, "resnet18-", str(tmp_path / "torchhome"))


def test_missing_weights_path(capsys, tmp_path):
    code, _, err = run_cli(["analyze", "digits", "--weights", str(tmp_path / "w.pth")], capsys)
    _one_line_error(code, err, "w.pth")


@pytest.mark.parametrize("size", ["0", "4", "abc"])
def test_bad_image_size(capsys, size):
    code, _, err = run_cli(["analyze", "digits", "--image-size", size], capsys)
    _one_line_error(code, err)


def test_bad_sample(capsys):
    code, _, err = run_cli(["analyze", "digits", "--sample", "1"], capsys)
    _one_line_error(code, err, "sample")


@pytest.mark.parametrize("command", ["analyze", "train"])
def test_a_bad_split_is_one_line(command, capsys):
    extra = ["--strategy", "linear_probe"] if command == "train" else []
    code, _, err = run_cli([command, "digits", *extra, "--split", "0.7,0.2,0.2"], capsys)
    _one_line_error(code, err, "bad split", "0.6,0.2,0.2")


def test_analyze_measures_the_split_it_is_given(tmp_path, capsys):
    out_json = tmp_path / "a.json"
    code, _, err = run_cli(["analyze", "digits:30", "--sample", "60", "--image-size", "32", "--split", "0.5,0.3,0.2",
                            "--json", str(out_json), "--quiet"], capsys)
    assert code == 0, err
    assert Analysis.load(out_json).profile.size.split == {"train": 150, "val": 90, "test": 60}


def test_nothing_written_on_error(capsys, tmp_path):
    out_json = tmp_path / "a.json"
    code, _, _ = run_cli(["analyze", "digits", "--model", "notanet", "--json", str(out_json)], capsys)
    assert code == 2 and not out_json.exists()


def test_one_vocabulary_every_option_has_help_and_shared_flags_mean_one_thing():
    """Each option of every command says what it does, and the options analyze, train and search share
    are one definition (same help, default and choices everywhere)."""
    import argparse

    from advisor.cli import _build

    parser = _build()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    nested = {f"cache {k}": v for k, v in next(a for a in subs["cache"]._actions
                                               if isinstance(a, argparse._SubParsersAction)).choices.items()}
    commands = {**{k: v for k, v in subs.items() if k != "cache"}, **nested}
    missing = [f"{name} {'/'.join(a.option_strings) or a.dest}" for name, p in commands.items()
               for a in p._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
               and not a.help]
    assert missing == []
    seen: dict = {}
    for name in ("analyze", "train", "search"):
        for a in commands[name]._actions:
            for flag in a.option_strings:
                seen.setdefault(flag, set()).add((a.dest, a.help, repr(a.default), repr(a.choices)))
    shared = ["--model", "--weights", "--image-size", "--device", "--seed", "--split", "--labels", "--intermediate",
              "--cache-dir", "--no-cache", "--loader-workers", "--sample", "--json", "--quiet"]
    assert all(flag in seen for flag in shared)
    assert all(len(seen[f]) == 1 for f in ("--model", "--weights", "--image-size", "--device", "--seed", "--split",
                                           "--labels", "--intermediate", "--cache-dir", "--no-cache",
                                           "--loader-workers"))
    # a flag never means two things: the training batch, the measuring batch and the processes are apart
    assert "--batch-size" not in {f for a in commands["analyze"]._actions for f in a.option_strings}
    assert {f for a in commands["train"]._actions for f in a.option_strings} >= {"--batch-size", "--loader-workers"}
    assert "--workers" not in {f for a in commands["train"]._actions for f in a.option_strings}


def test_analyze_refuses_an_unwritable_json_before_loading_anything(tmp_path, capsys):
    from advisor.cli import main

    assert main(["analyze", "no-such-dataset-anywhere", "--json", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # the output path is checked first: the unknown dataset is never reached
    assert len(err) == 1 and "--json" in err[0] and "is a folder" in err[0]


def test_api_validates_the_forward_batch_like_the_cli():
    import advisor
    from advisor.errors import AdvisorError

    with pytest.raises(AdvisorError, match="bad forward batch size 0"):
        advisor.analyze("digits", "mobilenet_v2", batch_size=0)


@pytest.mark.parametrize("flag, key, want", [([], "check_shift", None), (["--check-shift"], "check_shift", True),
                                             (["--check-shift", "off"], "check_shift", False),
                                             ([], "check_rung", None), (["--check-rung", "on"], "check_rung", True),
                                             (["--check-rung", "off"], "check_rung", False),
                                             ([], "check_wide", None), (["--check-wide", "on"], "check_wide", True),
                                             (["--check-wide", "off"], "check_wide", False),
                                             ([], "check_middle", None),
                                             (["--check-middle", "on"], "check_middle", True),
                                             (["--check-middle", "off"], "check_middle", False)])
def test_analyze_check_switches_reach_the_api(monkeypatch, capsys, flag, key, want):
    """``--check-shift [on|off]`` sets the shift's candidates, ``--check-rung on|off`` the check's rung,
    ``--check-wide on|off`` the wide check; without them analyze takes the defaults (None: the modules' switches)."""
    import advisor.api
    from advisor.errors import AdvisorError

    seen = {}

    def fake(*args, **kwargs):
        seen.update(kwargs)
        raise AdvisorError("stopped here", "nothing to fix")

    monkeypatch.setattr(advisor.api, "analyze", fake)
    assert main(["analyze", "digits", "--model", "mobilenet_v2", "--quiet", *flag]) == 2
    assert seen[key] is want
    assert "stopped here" in capsys.readouterr().err
