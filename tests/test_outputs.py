"""advisor.outputs in-process: all or none across several files, checks before work, file modes, links.

The command-level cases (full disks, unwritable places, every command) are in
tests/hostile/test_hostile_outputs.py; these pin the pieces those rely on, on a real file system.
"""

from __future__ import annotations

import os
import stat

import pytest

from advisor.errors import AdvisorError
from advisor.outputs import Output, check_file, check_folder, check_outputs, write_outputs, write_text

OLD = b"earlier\n"


def _temps(folder):
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


def test_a_failed_rename_puts_back_the_file_an_earlier_rename_replaced(tmp_path):
    """The second output's path is a non-empty folder (appeared after the checks): its rename fails after
    the first output already replaced an earlier file; that file comes back byte for byte."""
    (tmp_path / "a.json").write_bytes(OLD)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "inside").write_bytes(OLD)
    with pytest.raises(AdvisorError) as e:
        write_outputs(Output(tmp_path / "a.json", "new", "--json"), Output(tmp_path / "b", b"model", "--save"))
    assert str(tmp_path / "b") in str(e.value) and "--save" in str(e.value)
    assert (tmp_path / "a.json").read_bytes() == OLD
    assert (tmp_path / "b" / "inside").read_bytes() == OLD
    assert _temps(tmp_path) == []


def test_a_failure_removes_the_folders_it_created_and_a_new_first_file(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "inside").write_bytes(OLD)
    with pytest.raises(AdvisorError):
        write_outputs(Output(tmp_path / "new" / "deep" / "a.json", "x"), Output(tmp_path / "b", b"y"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_several_outputs_are_all_written_and_earlier_files_replaced(tmp_path):
    (tmp_path / "a.json").write_bytes(OLD)
    paths = write_outputs(Output(tmp_path / "a.json", "new json"), Output(tmp_path / "x" / "m.pt", b"\x00\x01"))
    assert paths == [tmp_path / "a.json", tmp_path / "x" / "m.pt"]
    assert (tmp_path / "a.json").read_text() == "new json"
    assert (tmp_path / "x" / "m.pt").read_bytes() == b"\x00\x01"
    assert _temps(tmp_path) == []


def test_a_new_file_gets_the_umask_mode_and_a_replaced_file_keeps_its_own(tmp_path):
    mask = os.umask(0o022)
    try:
        write_text(tmp_path / "new.txt", "x")
        (tmp_path / "old.txt").write_bytes(OLD)
        os.chmod(tmp_path / "old.txt", 0o640)
        write_text(tmp_path / "old.txt", "y")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(os.stat(tmp_path / "new.txt").st_mode) == 0o644  # mkstemp alone would give 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "old.txt").st_mode) == 0o640


def test_a_link_to_a_file_is_written_through(tmp_path):
    (tmp_path / "real.json").write_bytes(OLD)
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    write_text(tmp_path / "link.json", "new")
    assert (tmp_path / "link.json").is_symlink()
    assert (tmp_path / "real.json").read_text() == "new"


def test_checks_refuse_before_anything_is_created(tmp_path):
    (tmp_path / "f").write_bytes(OLD)
    (tmp_path / "d").mkdir()
    cases = [
        (lambda: check_file("--json", ""), "empty --json path"),
        (lambda: check_file("--json", tmp_path / "d"), "is a folder"),
        (lambda: check_file("--save", tmp_path / "f" / "sub" / "m.pt"), "is a file, not a folder"),
        (lambda: check_file("--json", "/dev/null"), "not a regular file"),
        (lambda: check_folder("--out", tmp_path / "f"), "is a file, not a folder"),
        (lambda: check_outputs(("--json", tmp_path / "x"), ("--save", f"{tmp_path}/./x")), "both name"),
    ]
    for call, needle in cases:
        with pytest.raises(AdvisorError) as e:
            call()
        assert needle in str(e.value)
        assert "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]


def test_checks_accept_missing_folders_without_creating_them(tmp_path):
    assert check_file("--json", tmp_path / "a" / "b" / "x.json") == tmp_path / "a" / "b" / "x.json"
    assert check_folder("--out", tmp_path / "r" / "s") == tmp_path / "r" / "s"
    assert check_outputs(("--json", None), ("--save", tmp_path / "m.pt")) == [None, tmp_path / "m.pt"]
    assert list(tmp_path.iterdir()) == []
