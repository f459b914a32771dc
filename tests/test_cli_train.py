"""advisor train on the command line: a real run, and bad parameters as one-line errors."""

import json

import pytest

from tests.test_cli import _one_line_error, run_cli


def test_train_linear_probe_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    code, stdout, err = run_cli(["train", "digits", "--strategy", "linear_probe", "--image-size", "32",
                                 "--cache-dir", str(tmp_path / "cache"), "--json", str(out), "--quiet"], capsys)
    assert code == 0, err
    data = json.loads(out.read_text())
    assert data["strategy"] == "linear_probe"
    assert data["test_accuracy"] > 0.6  # chance is 0.1
    assert "validation" in stdout and "test" in stdout


def test_train_save_writes_a_loadable_model(tmp_path, capsys):
    from advisor.deploy.modelfile import load_model

    path = tmp_path / "models" / "probe.pt"
    code, stdout, err = run_cli(["train", "digits", "--strategy", "linear_probe", "--image-size", "32",
                                 "--no-cache", "--save", str(path), "--quiet"], capsys)
    assert code == 0, err
    model, meta = load_model(path)
    assert meta["strategy"] == "linear_probe" and meta["preprocess"]["crop_size"] == 32
    assert model.heads["label"].out_features == 10


def test_train_refuses_an_unwritable_save_path_before_training(tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    code, stdout, err = run_cli(["train", "digits", "--strategy", "linear_probe", "--image-size", "32",
                                 "--no-cache", "--save", str(blocker / "m.pt"), "--quiet"], capsys)
    _one_line_error(code, err, "--save")
    assert "validation" not in stdout  # nothing trained


@pytest.mark.parametrize("args, needle", [
    (["--strategy", "last_k", "--k", "25"], "k"),
    (["--strategy", "last_k", "--k", "1", "--head-lr", "-0.1"], "head_lr"),
    (["--strategy", "svm_early", "--block", "nosuchblock"], "nosuchblock"),
    (["--strategy", "svm_early", "--param", "block=--3"], "--3"),  # two signs: no index, one line
    (["--strategy", "surgical", "--param", "first=²", "--param", "last=3"], "²"),  # a digit int() refuses
    (["--strategy", "nosuchstrategy"], "nosuchstrategy"),
    (["--strategy", "last_k", "--k", "1", "--param", "bogus=1"], "bogus"),
    (["--strategy", "last_k", "--param", "novalue"], "novalue"),
])
def test_train_bad_parameters(tmp_path, capsys, args, needle):
    code, _, err = run_cli(["train", "digits", "--image-size", "32", "--no-cache", "--quiet"] + args, capsys)
    _one_line_error(code, err, needle)
