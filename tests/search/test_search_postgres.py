"""A search on a real PostgreSQL server: the storage advisor recommends for several machines.

``scripts/test.sh`` starts a throwaway server (``scripts/postgres.sh``) and passes its URL in
``ADVISOR_TEST_POSTGRES``; without one these tests skip and say so.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from advisor.cli import main
from advisor.search import SearchConfig, run_search
from advisor.search.trials import _counts, worker_id
from tests.search.test_search_study import TINY_SPACE, _counted, _nested

URL = os.environ.get("ADVISOR_TEST_POSTGRES", "")
needs_server = pytest.mark.skipif(not URL, reason="no PostgreSQL server (ADVISOR_TEST_POSTGRES unset; "
                                                "scripts/test.sh starts one with scripts/postgres.sh)")


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    """See tests/conftest.py."""


@needs_server
def test_two_workers_share_a_postgresql_study_and_a_rerun_resumes_it(tmp_path):
    import optuna

    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    name = f"pg-{uuid.uuid4().hex[:12]}"  # the database outlives the test: a fresh study every run
    cfg = SearchConfig(dataset="digits:30", strategy="last_k", space=str(space), trials=4, image_size=32,
                       workspace=str(tmp_path / "ws"), cache_dir=str(tmp_path / "cache"), pruner="none",
                       study_name=name, storage=URL, workers=2)
    first = run_search(cfg)
    study = optuna.load_study(study_name=name, storage=URL)  # read back from the server, not from us
    counted = _counted(study)  # a surplus trial (two workers racing for the last slot) withdrew
    assert [t.state.name for t in counted] == ["COMPLETE"] * 4
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert 1 <= len(workers) <= 2 and worker_id() not in workers  # the worker processes ran them
    _, parent, runs = _nested(first.tracking_uri, first.parent_run_id)
    assert sorted(int(r.data.tags["advisor.trial_number"]) for r in runs) == [t.number for t in counted]
    assert parent.data.tags["advisor.storage"] == URL
    assert not (tmp_path / "ws" / "optuna.journal").exists()

    again = run_search(SearchConfig(**{**cfg.__dict__, "trials": 5, "workers": 1}))  # one more trial, resumed
    study = optuna.load_study(study_name=name, storage=URL)
    assert again.resumed_from == 4 and len(_counted(study)) == 5 and again.test_accuracy is not None
    assert again.parent_run_id == first.parent_run_id
    optuna.delete_study(study_name=name, storage=URL)


@needs_server
def test_a_postgresql_server_that_is_down_is_one_line_before_any_training(tmp_path, capsys):
    dead = URL.rsplit(":", 1)[0] + ":9/advisor_test"  # the same server address on a closed port
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    code = main(["search", "digits:30", "--strategy", "last_k", "--space", str(space), "--trials", "1",
                 "--workspace", str(tmp_path / "ws"), "--storage", dead, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "cannot open the study storage" in err and ":9/advisor_test" in err


def test_a_missing_database_driver_names_what_to_install(tmp_path):
    from advisor.errors import AdvisorError
    from advisor.search.storage import open_storage

    with pytest.raises(AdvisorError) as e:  # mysqlclient is not among advisor's dependencies
        open_storage("mysql://user@127.0.0.1:9/db", tmp_path)
    assert "driver for mysql is not installed (MySQLdb)" in str(e.value) and "pip install mysqlclient" in str(e.value)


def _fresh_database() -> tuple[str, callable]:
    """A new, empty database on the test server: its URL and a function that drops it."""
    import sqlalchemy

    name = f"fresh_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(URL.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))

    def drop():
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()

    return URL.rsplit("/", 1)[0] + "/" + name, drop


def _open_at(url: str, out: str, n: int) -> None:
    """In a child process: say it is ready, wait until all ``n`` are (they start together), open the storage
    and make the study."""
    import time as _t

    import optuna

    from advisor.search.storage import open_storage

    folder = Path(out).parent
    Path(out + ".ready").write_text("")
    while len(list(folder.glob("*.ready"))) < n:
        _t.sleep(0.01)
    try:
        study = optuna.create_study(study_name="race", storage=open_storage(url, "/tmp"), direction="maximize",
                                    load_if_exists=True)
        text = f"ok {study._study_id}"
    except Exception as e:  # noqa: BLE001 - the test reports what each child saw
        text = f"{type(e).__name__}: {e}"
    Path(out).write_text(text)


@needs_server
def test_eight_processes_opening_a_fresh_database_at_the_same_moment_all_get_one_study(tmp_path):
    """Optuna creates its tables and stamps its schema version on first use; processes that do it at once
    raced (UniqueViolation on alembic_version_pkc or pg_type_typname_nsp_index). The advisory lock serialises it."""
    import multiprocessing as mp

    url, drop = _fresh_database()
    try:
        spawn = mp.get_context("spawn")
        outs = [str(tmp_path / f"out{i}") for i in range(8)]
        procs = [spawn.Process(target=_open_at, args=(url, o, len(outs))) for o in outs]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        said = [Path(o).read_text() for o in outs]
        assert all(s.startswith("ok ") for s in said), said
        assert len(set(said)) == 1  # one study, the same id for all
    finally:
        drop()


def _search_args(tmp: Path, url: str, host: int, name: str) -> list[str]:
    space = tmp / "tiny.yaml"
    space.write_text(TINY_SPACE.replace("epochs: 3", "epochs: 1"))
    home = tmp / f"host{host}"
    return ["search", "digits:30", "--strategy", "last_k", "--space", str(space), "--trials", "6",
            "--image-size", "32", "--weights", "random", "--workspace", str(home / "ws"),
            "--cache-dir", str(home / "cache"), "--study-name", name, "--experiment", name, "--pruner", "none",
            "--storage", url, "--tracking-uri", f"sqlite:///{tmp / 'mlflow.db'}", "--register", name,
            "--json", str(home / "result.json"), "--quiet"]


@needs_server
def test_four_hosts_started_at_once_on_a_fresh_database_share_one_study_and_refit_once(tmp_path):
    import json
    import subprocess
    import sys

    import optuna
    from mlflow import MlflowClient

    from tests.search.test_search_study import ROOT

    url, drop = _fresh_database()
    name = "hosts"
    try:
        env = dict(os.environ, OMP_NUM_THREADS="1", ADVISOR_HEARTBEAT_SECONDS="5")
        procs = []
        for host in range(4):
            (tmp_path / f"host{host}").mkdir()
            procs.append(subprocess.Popen([sys.executable, "-m", "advisor.cli", *_search_args(tmp_path, url, host,
                                                                                              name)],
                                          cwd=str(tmp_path / f"host{host}"), env={**env, "PYTHONPATH": str(ROOT)},
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outs = [p.communicate(timeout=600) for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, [o[1][-600:] for o in outs]
        results = [json.loads((tmp_path / f"host{h}" / "result.json").read_text()) for h in range(4)]
        study = optuna.load_study(study_name=name, storage=url)
        # what counts against --trials: a trial failed as stale on a loaded machine (no beat within the grace
        # period) and retried counts once, by its retry
        counted, pending = _counts(study.trials)
        assert len(counted) == 6 and all(t.state.name == "COMPLETE" for t in counted) and not pending
        endings = sorted(r["ending"] for r in results)
        assert endings.count("refit") == 1, endings  # one host trained the best trial again, once
        assert set(endings) <= {"refit", "elsewhere", "unfinished", "recorded"}
        refit = next(r for r in results if r["ending"] == "refit")
        assert study.user_attrs["refit"]["state"] == "done" and study.user_attrs["refit"]["by"] == refit["refit_by"]
        assert len({r["parent_run_id"] for r in results}) == 1  # one MLflow parent run for the study
        client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
        versions = client.search_model_versions(f"name = '{name}'")
        assert [str(v.version) for v in versions] == ["1"] and refit["registered_version"] == "1"
        others = [o[0] for p, o, r in zip(procs, outs, results) if r["ending"] == "elsewhere"]
        assert all("is training the best trial again" in text and f"models:/{name}" in text for text in others)
        _, parent, runs = _nested(f"sqlite:///{tmp_path / 'mlflow.db'}", refit["parent_run_id"])
        assert parent.info.status == "FINISHED" and "test_accuracy" in parent.data.metrics
        assert sorted(int(r.data.tags["advisor.trial_number"]) for r in runs) == [t.number for t in counted]
        assert all(r.info.status == "FINISHED" for r in runs)
    finally:
        drop()
