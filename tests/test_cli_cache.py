"""advisor cache info / clear on the command line, on entries that a real `advisor train` filled."""

import json
import shutil

import pytest

from advisor.train.cache import _Lock
from tests.test_cli import _one_line_error, run_cli


@pytest.fixture(scope="module")
def filled(tmp_path_factory, one_torch_thread):
    """A cache folder holding the two pooled entries that a linear probe and an early SVM filled."""
    from advisor.cli import main

    root = tmp_path_factory.mktemp("filled") / "cache"
    for strategy in ("linear_probe", "svm_early"):
        assert main(["train", "digits:20", "--strategy", strategy, "--image-size", "32", "--cache-dir", str(root),
                     "--quiet"]) == 0
    return root


@pytest.fixture
def cache_dir(filled, tmp_path, monkeypatch):
    """A copy of ``filled`` to change, with ADVISOR_CACHE_MAX unset."""
    monkeypatch.delenv("ADVISOR_CACHE_MAX", raising=False)
    return shutil.copytree(filled, tmp_path / "cache")


def _info(cache_dir, capsys):
    code, out, err = run_cli(["cache", "info", "--cache-dir", str(cache_dir), "--json"], capsys)
    assert code == 0, err
    return json.loads(out)


def test_cache_info_for_people_and_for_programs(cache_dir, capsys, monkeypatch):
    doc = _info(cache_dir, capsys)
    assert doc["root"] == str(cache_dir) and doc["entries"] == 2 and len(doc["items"]) == 2
    assert doc["cap_bytes"] == 20 * 2**30 and doc["cap_from"] == "default"
    assert doc["total_bytes"] == sum(e["bytes"] for e in doc["items"]) > 200 * 1280 * 4
    blocks = {e["block"] for e in doc["items"]}
    assert "conv_last" in blocks and len(blocks) == 2
    for e in doc["items"]:
        assert e["kind"] == "pooled" and e["rows_done"] == e["items"] == 200 and e["device"] == "cpu"
        assert e["backbone"].startswith("mobilenet_v2@") and e["dataset"] == "digits:20"

    monkeypatch.setenv("ADVISOR_CACHE_MAX", "1.5G")
    code, out, err = run_cli(["cache", "info", "--cache-dir", str(cache_dir)], capsys)
    assert code == 0, err
    assert str(cache_dir) in out.replace("\n", "")
    assert "2 entries" in out and "of a 1.5 GiB cap (ADVISOR_CACHE_MAX)" in out
    for e in doc["items"]:
        assert e["key"][:12] in out and e["block"] in out
    assert out.count("200/200") == 2 and "pooled" in out

    path = cache_dir.parent / "info.json"
    code, out, err = run_cli(["cache", "info", "--cache-dir", str(cache_dir), "--json", str(path)], capsys)
    assert code == 0 and json.loads(path.read_text())["cap_bytes"] == 3 * 2**29


def test_cache_info_on_a_missing_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ADVISOR_CACHE", str(tmp_path / "nothing"))
    code, out, err = run_cli(["cache", "info"], capsys)
    assert code == 0, err
    assert "0 entries" in out and str(tmp_path / "nothing") in out.replace("\n", "")


def test_cache_clear_by_key_by_age_and_all(cache_dir, capsys):
    first, second = _info(cache_dir, capsys)["items"]
    code, out, err = run_cli(["cache", "clear", "--cache-dir", str(cache_dir), "--key", first["key"][:10]], capsys)
    assert code == 0, err
    assert "removed 1 entry" in out
    assert [e["key"] for e in _info(cache_dir, capsys)["items"]] == [second["key"]]
    code, out, err = run_cli(["cache", "clear", "--cache-dir", str(cache_dir), "--older-than", "1h"], capsys)
    assert code == 0 and "removed 0 entries" in out and _info(cache_dir, capsys)["entries"] == 1
    code, out, err = run_cli(["cache", "clear", "--cache-dir", str(cache_dir)], capsys)
    assert code == 0 and "removed 1 entry" in out and _info(cache_dir, capsys)["entries"] == 0


def test_cache_clear_keeps_an_entry_in_use(cache_dir, capsys):
    first, second = _info(cache_dir, capsys)["items"]
    with _Lock(cache_dir / first["key"][:2] / first["key"] / "lock", shared=True):  # a reader elsewhere
        code, out, err = run_cli(["cache", "clear", "--cache-dir", str(cache_dir)], capsys)
    assert code == 0, err
    assert "removed 1 entry" in out and f"kept {first['key'][:12]}" in out and "in use" in out
    assert [e["key"] for e in _info(cache_dir, capsys)["items"]] == [first["key"]]


def test_cache_errors_are_one_line(cache_dir, capsys, monkeypatch):
    code, out, err = run_cli(["cache", "clear", "--cache-dir", str(cache_dir), "--older-than", "soon"], capsys)
    _one_line_error(code, err, "--older-than", "'soon'", "7d")
    code, out, err = run_cli(["cache", "clear", "--cache-dir", str(cache_dir), "--key", "zzzz"], capsys)
    _one_line_error(code, err, "'zzzz'", "cache info")
    assert _info(cache_dir, capsys)["entries"] == 2  # nothing removed by a bad command
    monkeypatch.setenv("ADVISOR_CACHE_MAX", "20 gigs")
    for action in ("info", "clear"):
        code, out, err = run_cli(["cache", action, "--cache-dir", str(cache_dir)], capsys)
        _one_line_error(code, err, "ADVISOR_CACHE_MAX", "'20 gigs'", "20G")
    code, out, err = run_cli(["train", "digits", "--strategy", "linear_probe", "--cache-dir", str(cache_dir),
                              "--quiet"], capsys)
    _one_line_error(code, err, "ADVISOR_CACHE_MAX")
    monkeypatch.delenv("ADVISOR_CACHE_MAX")
    code, out, err = run_cli(["cache", "info", "--cache-dir", str(cache_dir / "00" / "nofile")], capsys)
    assert code == 0
    afile = cache_dir.parent / "afile"
    afile.write_text("x")
    code, out, err = run_cli(["cache", "info", "--cache-dir", str(afile)], capsys)
    _one_line_error(code, err, "is a file")
    code, out, err = run_cli(["cache"], capsys)
    assert code == 2 and "advisor: error:" in err


def test_a_train_on_a_full_cache_evicts_the_least_recently_used(cache_dir, capsys, monkeypatch):
    items = _info(cache_dir, capsys)["items"]
    monkeypatch.setenv("ADVISOR_CACHE_MAX", str(sum(e["bytes"] for e in items)))  # full
    code, out, err = run_cli(["train", "digits:20", "--strategy", "svm_early", "--block", "ir5", "--image-size",
                              "32", "--cache-dir", str(cache_dir), "--quiet"], capsys)
    assert code == 0, err
    after = _info(cache_dir, capsys)["items"]
    assert items[0]["key"] not in {e["key"] for e in after} and items[1]["key"] in {e["key"] for e in after}
    assert after[-1]["block"] == "ir5" and sum(e["bytes"] for e in after) <= sum(e["bytes"] for e in items)
