"""A search on a real PostgreSQL server: the storage advisor recommends for several machines.

``scripts/test.sh`` starts a throwaway server (``scripts/postgres.sh``) and passes its URL in
``ADVISOR_TEST_POSTGRES``; without one these tests skip and say so.
"""

from __future__ import annotations

import os
import uuid

import pytest

from advisor.cli import main
from advisor.search import SearchConfig, run_search
from advisor.search.storage import worker_id
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
