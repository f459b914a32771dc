"""The activation cache on a full disk: the cache is a speed-up, so a disk that refuses an entry costs the
speed-up and nothing else -- the run finishes, says so in one warning line, and leaves no entry behind.

A file-size limit (``RLIMIT_FSIZE``) stands for the full disk: the cache reserves an entry's blocks when it
creates it (``posix_fallocate``), so a real full disk fails at the same place (ENOSPC) instead of as SIGBUS
on a later write through the memory map."""

from __future__ import annotations

import json

from tests.hostile._harness import assert_ok, run_advisor


def test_train_on_a_full_cache_disk_finishes_with_one_warning_and_no_entry(tmp_path):
    cache = tmp_path / "cache"
    out = run_advisor(["train", "digits:10", "--strategy", "last_k", "--k", "1", "--epochs", "1",
                       "--image-size", "32", "--weights", "random", "--cache-dir", cache, "--quiet",
                       "--json", tmp_path / "r.json"], fsize_limit=20_000)
    assert_ok(out)
    assert len(out.err_lines) == 1, out.stderr
    assert out.err_lines[0].startswith("advisor: warning: the activation cache stopped storing"), out.err_lines
    assert "File too large" in out.err_lines[0]
    left = [p.relative_to(cache) for p in cache.rglob("*") if p.is_file() and p.name != ".lock"]
    assert left == [], left
    assert json.loads((tmp_path / "r.json").read_text())["strategy"] == "last_k"


def test_train_with_room_for_the_cache_stores_its_entry_and_warns_nothing(tmp_path):
    cache = tmp_path / "cache"
    out = run_advisor(["train", "digits:10", "--strategy", "last_k", "--k", "1", "--epochs", "1",
                       "--image-size", "32", "--weights", "random", "--cache-dir", cache, "--quiet"])
    assert_ok(out)
    assert out.err_lines == [], out.stderr
    assert list(cache.rglob("data.npy")), "the boundary entry was not stored"
