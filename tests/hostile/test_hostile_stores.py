"""Issue 19, sections 4 and 5: stores that are not what they claim (corrupt Optuna journals, a file that is
not an SQLite database, dead databases, unknown schemes), files that are not what they claim (a saved
advice, a search space), cache entries whose files are of the wrong shape -- and a refused search creates
nothing: no workspace, no ``mlflow.db``, no journal, and a store it was pointed at stays byte-identical.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

from tests.hostile._harness import (assert_no_leftovers, assert_ok, assert_refused, assert_unchanged, run_advisor,
                                    snapshot)

#: A journal Optuna wrote: one study with one trial, as three log lines.
GOOD_LOG = [
    {"op_code": 0, "worker_id": "w-0", "study_name": "s", "directions": [1]},
    {"op_code": 4, "worker_id": "w-0", "study_id": 0, "datetime_start": "2026-01-01T00:00:00.000000"},
]


def _journal(path: Path, tail: bytes = b"", lines=GOOD_LOG) -> Path:
    path.write_bytes(b"".join(json.dumps(x).encode() + b"\n" for x in lines) + tail)
    return path


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _search(tmp_path: Path, *extra) -> list:
    return ["search", "digits:10", "--strategy", "linear_probe", "--trials", "1", "--image-size", "32",
            "--weights", "random", "--workspace", tmp_path / "ws", "--cache-dir", tmp_path / "cache", "--quiet",
            *extra]


def _refused_creating_nothing(tmp_path: Path, args: list, *needles: str, stores: tuple = ()) -> str:
    before, digests = _tree(tmp_path), snapshot(*stores)
    line = assert_refused(run_advisor(args, cwd=tmp_path), *needles)
    assert _tree(tmp_path) == before  # nothing created: no workspace, no mlflow.db, no journal
    assert_unchanged(digests, *stores)
    assert_no_leftovers(tmp_path)
    return line


# ------------------------------------------------------------------ corrupt journals
@pytest.mark.parametrize("name, tail, lines, needle", [
    ("bad-json-line", b'{"op_code": 5, "worker_id": "w-0", "trial_id": 0, "param_na\n' + b'{"op_code": 1}\n',
     GOOD_LOG, "line 3 is not JSON"),
    ("truncated", b'{"op_code": 6, "worker_id": "w-0", "trial_id": 0, "sta', GOOD_LOG, "partial line"),
    ("binary", b"", [], "line 1 is not JSON"),
    ("wrong-shape", b"", [[1, 2], {"no": "op_code"}], "not an Optuna journal"),
])
def test_corrupt_journal_is_one_line_and_untouched(tmp_path, name, tail, lines, needle):
    path = tmp_path / f"{name}.journal"
    if name == "binary":
        path.write_bytes(bytes(range(256)) * 8)
    else:
        _journal(path, tail, lines)
    _refused_creating_nothing(tmp_path, _search(tmp_path, "--storage", path), str(path), needle, stores=(path,))


def test_good_journal_is_accepted_by_the_check(tmp_path):
    """The check reads Optuna's own journal as Optuna does (the good path beside the corrupt ones)."""
    import optuna

    from advisor.search.storage import check_journal

    path = tmp_path / "real.journal"
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(path))), study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    digest = snapshot(path)
    check_journal(path)
    assert_unchanged(digest, path)
    _journal(tmp_path / "mine.journal")
    check_journal(tmp_path / "mine.journal")


# ------------------------------------------------------------------ storages and tracking stores
def test_unknown_storage_scheme(tmp_path):
    _refused_creating_nothing(tmp_path, _search(tmp_path, "--storage", "redis://127.0.0.1/0"),
                              "unknown study storage", "redis://")


def test_dead_postgresql_storage(tmp_path):
    port = _dead_port()
    _refused_creating_nothing(tmp_path, _search(tmp_path, "--storage", f"postgresql://u@127.0.0.1:{port}/db"),
                              "study storage", f"127.0.0.1:{port}", "unreachable")


def test_dead_postgresql_tracking(tmp_path):
    port = _dead_port()
    _refused_creating_nothing(tmp_path, _search(tmp_path, "--tracking-uri", f"postgresql://u@127.0.0.1:{port}/db"),
                              "tracking database", f"127.0.0.1:{port}", "unreachable")


def test_tracking_db_that_is_not_sqlite(tmp_path):
    db = tmp_path / "runs.db"
    db.write_bytes(b"PK\x03\x04 this is a zip, not a database" * 50)
    _refused_creating_nothing(tmp_path, _search(tmp_path, "--tracking-uri", f"sqlite:///{db}"),
                              str(db), "not an SQLite database", stores=(db,))


def test_storage_db_that_is_not_sqlite(tmp_path):
    db = tmp_path / "study.db"
    db.write_text("id,name\n1,not a database\n")
    _refused_creating_nothing(tmp_path, _search(tmp_path, "--storage", f"sqlite:///{db}"),
                              str(db), "not an SQLite database", stores=(db,))


def test_workspace_that_is_a_file(tmp_path):
    ws = tmp_path / "ws"
    ws.write_text("a file")
    _refused_creating_nothing(tmp_path, _search(tmp_path), str(ws), "not a folder", stores=(ws,))


# ------------------------------------------------------------------ files that are not what they claim
@pytest.mark.parametrize("name, text, needle", [
    ("python-tag", '!!python/object/apply:os.system ["touch PWNED"]\n', "not valid YAML"),
    ("python-name", "strategy: !!python/name:os.system\nparams: {}\n", "not valid YAML"),
    ("list", "- strategy\n- linear_probe\n", "must be a mapping"),
])
def test_search_space_refused_before_anything(tmp_path, name, text, needle):
    space = tmp_path / f"{name}.yaml"
    space.write_text(text)
    _refused_creating_nothing(tmp_path, _search(tmp_path, "--space", space), str(space), needle, stores=(space,))
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("name, text", [
    ("list", "[1, 2, 3]"),
    ("not-json", "strategy: linear_probe\n"),
    ("wrong-shape", json.dumps({"profile": {"sizes": 3}, "advice": ["linear_probe"]})),
])
def test_advice_that_is_not_an_analysis(tmp_path, name, text):
    advice = tmp_path / f"{name}.json"
    advice.write_text(text)
    _refused_creating_nothing(tmp_path, _search(tmp_path, "--advice", advice), str(advice),
                              "not an advisor analysis", stores=(advice,))


# ------------------------------------------------------------------ cache entries of the wrong shape
def _entry(root: Path, key: str, meta: bytes | None, done=None) -> Path:
    d = root / key[:2] / key
    d.mkdir(parents=True)
    np.save(d / "data.npy", np.zeros((4, 3), dtype=np.float32))
    np.save(d / "done.npy", np.ones(4, dtype=bool) if done is None else done, allow_pickle=True)
    if meta is not None:
        (d / "meta.json").write_bytes(meta)
    (d / "used").touch()
    return d


BAD_METAS = {
    "list": b"[1, 2, 3]",
    "missing-keys": b'{"dtype": "float32"}',
    "wrong-types": b'{"format": "two", "kind": ["pooled"], "block": {"a": 1}, "items": "many"}',
    "not-json": b"\x00\xff not json",
}


def test_cache_info_and_clear_with_entries_of_the_wrong_shape(tmp_path):
    """Bad entries are listed with one warning line (exit 0, the good entry still shown) and removable;
    an object-array done.npy is never unpickled."""
    root = tmp_path / "cache"
    good = _entry(root, "aa" + "0" * 62, json.dumps({"format": 2, "kind": "pooled", "block": "stem", "items": 4,
                                                     "backbone": "b", "dataset_name": "d", "device": "cpu",
                                                     "dtype": "float32"}).encode())
    bad = [_entry(root, f"b{i}" + str(i) * 62, meta) for i, meta in enumerate(BAD_METAS.values())]
    bad.append(_entry(root, "c0" + "1" * 62, b'{"format": 2, "kind": "pooled", "block": "stem"}',
                      done=np.array([{"x": 1}, None], dtype=object)))
    digests = snapshot(root)
    out = assert_ok(run_advisor(["cache", "info", "--cache-dir", root, "--json", "-"], cwd=tmp_path))
    doc = json.loads(out.stdout)
    assert doc["entries"] == 6
    by_key = {e["key"]: e for e in doc["items"]}
    assert by_key[good.name]["bad"] is None and by_key[good.name]["rows_done"] == 4
    assert all(by_key[d.name]["bad"] for d in bad), by_key
    assert "object" in by_key[bad[-1].name]["bad"] or "pickle" in by_key[bad[-1].name]["bad"]
    lines = out.err_lines
    assert len(lines) == 1 and lines[0].startswith("advisor: warning: 5 entries unusable"), out.stderr
    assert "Traceback" not in out.stderr
    assert_unchanged(digests, root)  # info changes nothing
    out = assert_ok(run_advisor(["cache", "info", "--cache-dir", root], cwd=tmp_path))  # the table, too
    assert good.name[:12] in out.stdout and bad[0].name[:12] in out.stdout
    out = assert_ok(run_advisor(["cache", "clear", "--cache-dir", root, "--key", bad[0].name[:12],
                                 "--key", bad[1].name[:12]], cwd=tmp_path))
    assert not bad[0].exists() and not bad[1].exists() and good.is_dir() and bad[2].is_dir()
    assert_ok(run_advisor(["cache", "clear", "--cache-dir", root], cwd=tmp_path))
    assert not any(root.rglob("*.npy"))


def test_train_recomputes_an_entry_whose_files_are_of_the_wrong_shape(tmp_path):
    """The entry ``train`` reads has a 0-d done.npy and an object-array data.npy: it is computed anew."""
    cache = tmp_path / "cache"
    args = ["train", "digits:10", "--strategy", "linear_probe", "--image-size", "32", "--weights", "random",
            "--cache-dir", cache, "--quiet"]
    first = assert_ok(run_advisor(args, cwd=tmp_path))
    entries = sorted(p.parent for p in cache.rglob("data.npy"))
    assert entries
    for d in entries:
        np.save(d / "data.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
        np.save(d / "done.npy", np.array(True))
        (d / "meta.json").write_text("[]")
    again = assert_ok(run_advisor(args, cwd=tmp_path))
    assert "Traceback" not in again.stderr
    def accuracies(text):
        return [line for line in text.splitlines() if "accuracy" in line.lower()]

    assert accuracies(first.stdout) and accuracies(again.stdout) == accuracies(first.stdout)  # as from a fresh cache
    assert all(np.load(d / "done.npy").dtype == bool for d in entries)


def test_the_api_reads_the_workspace_from_the_environment_like_the_cli(tmp_path, monkeypatch):
    """``SearchConfig`` without a workspace takes ``$ADVISOR_WORKSPACE``, as the command line does: here a file
    there is refused by name before anything loads (before, the API went to ./advisor-workspace instead)."""
    from advisor.errors import AdvisorError
    from advisor.search import SearchConfig
    from advisor.search.study import run_search

    ws = tmp_path / "env-ws"
    ws.write_text("a file")
    monkeypatch.setenv("ADVISOR_WORKSPACE", str(ws))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AdvisorError, match="env-ws"):
        run_search(SearchConfig(dataset="digits:10", strategy="linear_probe", trials=1))
    assert ws.read_text() == "a file" and not (tmp_path / "advisor-workspace").exists()
