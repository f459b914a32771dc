"""Hostile outputs (issue 19, sections 3 and 7): full disks, unwritable places, folders given as files and
files given as folders, for every command that writes something.

Each refusal is one line of ours, exit 2, no traceback, no temporary file anywhere, no new folder, and every
file that was there before is byte-identical (a command with several outputs writes all or none). Good paths
stand beside them: the same commands writing into folders that do not exist yet (created when the command
writes), and replacing files that do.

A full disk is a real write failing: ``RLIMIT_FSIZE`` (the harness's ``fsize_limit``: the write fails with
EFBIG, as a full disk fails with ENOSPC) and, where this machine lets us mount one, a small tmpfs filled to
the last byte. An unwritable folder is really unwritable: ``chmod 0o500`` as a normal user; as root (whom
chmod does not stop) a read-only tmpfs, or ``/proc/self`` where mounting is not permitted. The fixtures
prove the place refuses a write before a case uses it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.hostile._harness import (
    advisor_env,
    assert_no_leftovers,
    assert_ok,
    assert_refused,
    assert_unchanged,
    run_advisor,
    snapshot,
)

TINY = ["--image-size", "32", "--weights", "random"]
ANALYZE = ["analyze", "digits:10", *TINY, "--sample", "60", "--check", "off", "--quiet"]
TRAIN = ["train", "digits:20", "--strategy", "linear_probe", *TINY, "--no-cache", "--quiet"]
OLD = b"an earlier result that must survive\n"


# ----------------------------------------------------------------------------------------------- places
def _really_refuses(folder: Path) -> bool:
    try:
        with open(folder / ".probe", "wb") as f:
            f.write(b"x")
    except OSError:
        return True
    os.unlink(folder / ".probe")
    return False


def _mount_tmpfs(where: Path, options: str) -> str | None:
    """Mount a tmpfs at ``where``; None when done, else why not."""
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True,
                           text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None if r.returncode == 0 else (r.stderr.strip() or f"mount exited {r.returncode}")


@pytest.fixture
def unwritable(tmp_path):
    """A folder no file can be created in, by this process, whoever runs the tests."""
    folder = tmp_path / "locked"
    folder.mkdir()
    mounted = False
    if os.geteuid() != 0:
        folder.chmod(0o500)
    elif _mount_tmpfs(folder, "ro,size=64k") is None:
        mounted = True
    else:
        folder = Path("/proc/self")  # no new file there, even for root
    assert _really_refuses(folder), f"{folder} accepted a write: the cases below would prove nothing"
    yield folder
    if mounted:
        subprocess.run(["umount", "-l", str(tmp_path / "locked")], check=False)
    elif folder.is_relative_to(tmp_path):
        folder.chmod(0o700)


@pytest.fixture
def full_disk(tmp_path):
    """A real, small file system (tmpfs) filled to the last byte, holding one earlier result."""
    folder = tmp_path / "small"
    folder.mkdir()
    why = _mount_tmpfs(folder, "size=64k")
    if why is not None:
        pytest.skip(f"cannot mount a small tmpfs here ({why}); the RLIMIT_FSIZE cases stand for a full disk")
    try:
        (folder / "t.json").write_bytes(OLD)
        fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * 512)
        except OSError:
            pass
        finally:
            os.close(fd)
        assert _really_refuses(folder)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A small saved model (train --save), for predict and export."""
    path = tmp_path_factory.mktemp("model") / "m.pt"
    assert_ok(run_advisor([*TRAIN, "--save", path]))
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A one-trial search's workspace (MLflow store, journal) with experiment e1, for report."""
    ws = tmp_path_factory.mktemp("search") / "ws"
    assert_ok(run_advisor(["search", "digits:10", "--strategy", "linear_probe", "--trials", "1", *TINY,
                           "--no-cache", "--workspace", ws, "--experiment", "e1", "--quiet"]))
    return ws


def _folders(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_dir()}


def refused(args, *needles, watch: Path, fsize: int | None = None, also: tuple = ()) -> str:
    """Run a command that must be refused: one line naming every needle, every file under ``watch`` (and
    ``also``) byte-identical, no new file or folder, no temporary file."""
    before, dirs = snapshot(watch, *also), _folders(watch)
    line = assert_refused(run_advisor(args, fsize_limit=fsize), *needles)
    assert_unchanged(before, watch, *also)
    assert _folders(watch) == dirs, f"new folders: {_folders(watch) - dirs}"
    assert_no_leftovers(watch)
    return line


def _old(path: Path) -> Path:
    path.write_bytes(OLD)
    return path


# ------------------------------------------------------------------------------------------ full disks
def test_analyze_json_on_a_full_disk_keeps_the_earlier_json_and_leaves_no_temp(tmp_path):
    _old(tmp_path / "a.json")
    refused([*ANALYZE, "--json", tmp_path / "a.json"], "a.json", "file-size limit", "needs", "free",
            watch=tmp_path, fsize=1000)


def test_train_save_on_a_full_disk_writes_neither_the_json_nor_the_model(tmp_path):
    """Observed: --json X --save BAD wrote X, then failed; --save left .NAME.PID.tmp behind."""
    _old(tmp_path / "t.json")
    refused([*TRAIN, "--json", tmp_path / "t.json", "--save", tmp_path / "new" / "m.pt"], "m.pt", "file-size limit",
            watch=tmp_path, fsize=1_000_000)  # the JSON (about 1 kB) fits, the model (about 9 MB) does not
    assert not (tmp_path / "new").exists()  # the folder made for --save is gone again


def test_train_json_on_a_full_disk_writes_neither_file(tmp_path):
    _old(tmp_path / "t.json")
    _old(tmp_path / "m.pt")
    refused([*TRAIN, "--json", tmp_path / "t.json", "--save", tmp_path / "m.pt"], "t.json", "file-size limit",
            watch=tmp_path, fsize=200)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_predict_on_a_full_disk_writes_neither_table_nor_json(tmp_path, model, suffix):
    _old(tmp_path / f"p{suffix}")
    refused(["predict", model, "digits:5", "--quiet", "--out", tmp_path / f"p{suffix}", "--json",
             tmp_path / "p.json"], f"p{suffix}", "file-size limit", watch=tmp_path, also=(model,), fsize=300)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_on_a_full_disk_writes_neither_model_nor_json(tmp_path, model, fmt):
    _old(tmp_path / f"m.{fmt}")
    _old(tmp_path / f"m.{fmt}.preprocess.json")
    refused(["export", model, "--format", fmt, "--out", tmp_path / f"m.{fmt}"], f"m.{fmt}", "file-size limit",
            watch=tmp_path, also=(model,), fsize=100_000)


def test_report_on_a_full_disk_leaves_no_empty_html_and_attaches_nothing(tmp_path, workspace):
    """Observed: a 0-byte HTML file."""
    refused(["report", "--experiment", "e1", "--workspace", workspace, "--out", tmp_path / "reports"],
            "e1.html", "file-size limit", watch=tmp_path, also=(workspace,), fsize=20_000)
    assert not (tmp_path / "reports").exists()


def test_report_on_a_full_disk_with_no_font_cache_yet_is_still_one_line(tmp_path, workspace):
    """Observed on a fresh machine: matplotlib builds its font list on first use, cannot save it under the same
    file-size limit, and warned on a second stderr line ("Could not save font_manager cache")."""
    env = advisor_env({"MPLCONFIGDIR": str(tmp_path / "mpl")})  # an empty cache folder: the font list is built here
    out = run_advisor(["report", "--experiment", "e1", "--workspace", workspace, "--out", tmp_path / "reports"],
                      env=env, fsize_limit=20_000)
    assert_refused(out, "e1.html", "file-size limit")
    assert not (tmp_path / "reports").exists()


def test_cache_info_json_on_a_full_disk(tmp_path):
    _old(tmp_path / "c.json")
    refused(["cache", "info", "--cache-dir", tmp_path / "cache", "--json", tmp_path / "c.json"], "c.json",
            "file-size limit", watch=tmp_path, fsize=10)


def test_a_real_full_file_system_is_one_line_with_the_bytes_needed_and_free(tmp_path, full_disk):
    line = refused([*TRAIN, "--json", full_disk / "t.json", "--save", full_disk / "m.pt"], "no space left",
                   "needs", "free", watch=tmp_path)
    assert str(full_disk) in line


# ----------------------------------------------------------------------------------- unwritable places
def test_analyze_json_in_an_unwritable_folder_is_refused_before_measuring(tmp_path, unwritable):
    line = refused([*ANALYZE, "--json", unwritable / "a.json"], "--json", "cannot be written", watch=tmp_path)
    assert str(unwritable) in line


def test_train_save_in_an_unwritable_folder_is_refused_before_training(tmp_path, unwritable):
    refused([*TRAIN, "--json", tmp_path / "t.json", "--save", unwritable / "sub" / "m.pt"], "--save",
            "cannot be written", watch=tmp_path)


def test_predict_out_in_an_unwritable_folder(tmp_path, model, unwritable):
    refused(["predict", model, "digits:5", "--quiet", "--out", unwritable / "p.csv"], "--out", "cannot be written",
            watch=tmp_path)


def test_export_out_in_an_unwritable_folder(tmp_path, model, unwritable):
    refused(["export", model, "--format", "torchscript", "--out", unwritable / "m.ts"], "--out",
            "cannot be written", watch=tmp_path)


def test_report_out_under_an_unwritable_folder(tmp_path, workspace, unwritable):
    refused(["report", "--experiment", "e1", "--workspace", workspace, "--out", unwritable / "reports"], "--out",
            "cannot be written", watch=tmp_path, also=(workspace,))


def test_cache_info_json_in_an_unwritable_folder(tmp_path, unwritable):
    refused(["cache", "info", "--cache-dir", tmp_path / "cache", "--json", unwritable / "c.json"], "--json",
            "cannot be written", watch=tmp_path)


def test_search_json_in_an_unwritable_folder_creates_no_workspace(tmp_path, unwritable):
    refused(["search", "digits:10", "--strategy", "linear_probe", "--trials", "1", *TINY, "--workspace",
             tmp_path / "ws", "--json", unwritable / "s.json", "--quiet"], "--json", "cannot be written",
            watch=tmp_path)
    assert not (tmp_path / "ws").exists()


# ------------------------------------------------------------------------ folders as files, and the reverse
def test_search_workspace_that_is_a_file_is_one_line_and_creates_nothing(tmp_path):
    """Observed: a FileExistsError traceback."""
    _old(tmp_path / "ws")
    refused(["search", "digits:10", "--strategy", "linear_probe", "--trials", "1", *TINY, "--workspace",
             tmp_path / "ws", "--quiet"], "--workspace", "is a file", watch=tmp_path)


def test_train_save_under_a_regular_file(tmp_path):
    _old(tmp_path / "f")
    refused([*TRAIN, "--save", tmp_path / "f" / "m.pt"], "--save", "is a file, not a folder", watch=tmp_path)


def test_report_out_that_is_a_file(tmp_path, workspace):
    _old(tmp_path / "reports")
    refused(["report", "--experiment", "e1", "--workspace", workspace, "--out", tmp_path / "reports"], "--out",
            "is a file", watch=tmp_path, also=(workspace,))


def test_analyze_json_that_is_a_folder(tmp_path):
    (tmp_path / "a.json").mkdir()
    refused([*ANALYZE, "--json", tmp_path / "a.json"], "--json", "is a folder", watch=tmp_path)


def test_predict_out_that_is_a_folder(tmp_path, model):
    (tmp_path / "p.csv").mkdir()
    refused(["predict", model, "digits:5", "--quiet", "--out", tmp_path / "p.csv"], "--out", "is a folder",
            watch=tmp_path)


def test_export_whose_preprocess_json_would_land_on_a_folder_writes_nothing(tmp_path, model):
    (tmp_path / "m.onnx.preprocess.json").mkdir()
    refused(["export", model, "--format", "onnx", "--out", tmp_path / "m.onnx"], "m.onnx.preprocess.json",
            "is a folder", watch=tmp_path)


def test_train_json_and_save_naming_one_file(tmp_path):
    _old(tmp_path / "x")
    refused([*TRAIN, "--json", tmp_path / "x", "--save", tmp_path / "x"], "--json and --save", watch=tmp_path)


def test_cache_info_json_onto_a_device_is_refused(tmp_path):
    refused(["cache", "info", "--cache-dir", tmp_path / "cache", "--json", "/dev/null"], "not a regular file",
            watch=tmp_path)


# ----------------------------------------------------------------------------------------- good paths
def test_train_writes_both_outputs_into_new_folders_and_replaces_an_earlier_json(tmp_path):
    _old(tmp_path / "t.json")
    out = assert_ok(run_advisor([*TRAIN, "--json", tmp_path / "t.json", "--save", tmp_path / "a" / "b" / "m.pt"]))
    assert out.stderr.strip() == ""
    import json

    import torch

    assert json.loads((tmp_path / "t.json").read_text())["strategy"] == "linear_probe"
    payload = torch.load(tmp_path / "a" / "b" / "m.pt", weights_only=True)
    assert payload["format"] == "advisor.model/2"
    assert_no_leftovers(tmp_path)


def test_predict_writes_into_missing_folders(tmp_path, model):
    """Observed: predict --out in a missing folder printed all its tables, then said it cannot write."""
    out = assert_ok(run_advisor(["predict", model, "digits:5", "--quiet", "--out", tmp_path / "x" / "p.parquet",
                                 "--json", tmp_path / "y" / "p.json"]))
    assert out.stderr.strip() == ""
    import json

    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "x" / "p.parquet").num_rows == 50
    assert json.loads((tmp_path / "y" / "p.json").read_text())["n"] == 50
    assert_no_leftovers(tmp_path)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_into_a_missing_folder_replacing_nothing_else(tmp_path, model, fmt):
    _old(tmp_path / "keep.txt")
    out = assert_ok(run_advisor(["export", model, "--format", fmt, "--out", tmp_path / "new" / f"m.{fmt}"]))
    assert out.stderr.strip() == ""  # the exporters' deprecation notices are not the user's business
    import json

    assert (tmp_path / "new" / f"m.{fmt}").stat().st_size > 0
    assert json.loads((tmp_path / "new" / f"m.{fmt}.preprocess.json").read_text())["model_file"] == f"m.{fmt}"
    assert (tmp_path / "keep.txt").read_bytes() == OLD
    assert_no_leftovers(tmp_path)


def test_report_into_a_missing_folder(tmp_path, workspace):
    before = snapshot(workspace)
    out = assert_ok(run_advisor(["report", "--experiment", "e1", "--workspace", workspace, "--no-attach", "--out",
                                 tmp_path / "r" / "s"]))
    assert out.stderr.strip() == ""
    html = (tmp_path / "r" / "s" / "e1.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert (tmp_path / "r" / "s" / "e1.md").read_text().startswith("# ")
    assert_unchanged(before, workspace)  # --no-attach: the store is only read
    assert_no_leftovers(tmp_path)


def test_cache_info_json_into_a_missing_folder(tmp_path):
    """Observed: a FileNotFoundError traceback."""
    import json

    assert_ok(run_advisor(["cache", "info", "--cache-dir", tmp_path / "cache", "--json", tmp_path / "n" / "c.json"]))
    assert json.loads((tmp_path / "n" / "c.json").read_text())["entries"] == 0


def test_analyze_json_replaces_an_earlier_one(tmp_path):
    import json

    _old(tmp_path / "a.json")
    out = assert_ok(run_advisor([*ANALYZE, "--json", tmp_path / "a.json"]))
    assert out.stderr.strip() == ""
    assert set(json.loads((tmp_path / "a.json").read_text())) == {"profile", "advice"}
    assert_no_leftovers(tmp_path)
