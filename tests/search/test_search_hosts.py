"""Several hosts on one study (advisor/search/_hosts.py) and a tracking server that goes away
(advisor/track/retry.py): the decisions, on real Optuna journal studies, without training."""

from __future__ import annotations

import functools
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from advisor.errors import AdvisorError
from advisor.search._hosts import REFIT_KEY, ClaimBeat, decide, finish_trials
from advisor.search.storage import open_storage, storage_lock
from advisor.track.retry import PatientClient, TrackingUnavailable, call_patiently, is_transient, quiet_http_defaults


def _study(tmp_path, done: int = 2, running: int = 0):
    storage = open_storage(None, tmp_path)
    study = optuna.create_study(study_name="h", storage=storage, direction="maximize")
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for i in range(done):
        study.add_trial(optuna.create_trial(params={"x": i / 10}, distributions=dist, value=i / 10))
    for _ in range(running):
        t = study.ask()
        t.set_user_attr("worker", "elsewhere:1")  # another machine: alive as far as this one can tell
    lock = functools.partial(storage_lock, f"journal:{tmp_path / 'optuna.journal'}", tmp_path, "study:h")
    return study, lock


def test_the_first_host_to_find_the_study_finished_claims_the_refit_and_the_next_one_sees_it(tmp_path):
    study, lock = _study(tmp_path)
    first = decide(study, 2, lock, "me:1")
    assert first.role == "refit" and study.user_attrs[REFIT_KEY]["by"] == "me:1"
    second = decide(study, 2, lock, "other:2")  # "me" is another machine's process: its claim is live
    assert second.role == "elsewhere" and second.claim["by"] == "me:1"
    with ClaimBeat(study, lock, first.claim) as beat:
        beat.done(test_accuracy=0.5, model_uri="models:/m-1", registered_version="1")
    third = decide(study, 2, lock, "other:3")
    assert third.role == "recorded" and third.claim["test_accuracy"] == 0.5 and third.claim["registered_version"] == "1"


def test_more_trials_asked_later_make_a_new_refit(tmp_path):
    study, lock = _study(tmp_path)
    claim = decide(study, 2, lock, "me:1").claim
    ClaimBeat(study, lock, claim).done(test_accuracy=0.5)
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    study.add_trial(optuna.create_trial(params={"x": 0.9}, distributions=dist, value=0.9))
    again = decide(study, 3, lock, "other:2")
    assert again.role == "refit" and again.claim["finished"] == 3


def test_a_claim_whose_host_stopped_beating_or_whose_process_died_here_is_taken_over(tmp_path, monkeypatch):
    import socket

    study, lock = _study(tmp_path)
    study.set_user_attr(REFIT_KEY, {"finished": 2, "by": "far:1", "state": "running", "beat": time.time() - 61,
                                    "since": 0})
    assert decide(study, 2, lock, "me:1").role == "refit"  # 61 s without a beat: the grace period is 60 s
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    study.set_user_attr(REFIT_KEY, {"finished": 2, "by": f"{socket.gethostname()}:{dead.pid}", "state": "running",
                                    "beat": time.time(), "since": 0})
    assert decide(study, 2, lock, "me:1").role == "refit"  # this machine, process gone: no need to wait


def test_a_beat_never_overwrites_a_claim_another_host_took_over(tmp_path):
    study, lock = _study(tmp_path)
    mine = decide(study, 2, lock, "me:1").claim
    study.set_user_attr(REFIT_KEY, {**mine, "by": "other:2", "since": mine["since"] + 1})
    ClaimBeat(study, lock, mine).done(test_accuracy=0.1)
    assert study.user_attrs[REFIT_KEY]["by"] == "other:2" and "test_accuracy" not in study.user_attrs[REFIT_KEY]


def test_a_host_leaves_unfinished_trials_of_other_hosts_after_waiting_and_runs_retries_itself(tmp_path):
    study, lock = _study(tmp_path, done=1, running=1)
    t0 = time.monotonic()
    ending = finish_trials(study, 2, lock, "me:1", linger=0.3, sleep=lambda s: time.sleep(min(s, 0.1)))
    assert ending.role == "unfinished" and ending.running == [1] and ending.workers == ["elsewhere:1"]
    assert time.monotonic() - t0 >= 0.3 and REFIT_KEY not in study.user_attrs
    study.enqueue_trial({"x": 0.5})
    running = study.get_trials(states=(TrialState.RUNNING,))[0]
    study.tell(running.number, 0.2)
    assert decide(study, 3, lock, "me:1").role == "run"  # a WAITING trial (a retry): this host runs it


def test_the_study_lock_excludes_another_process(tmp_path):
    _, lock = _study(tmp_path)
    code = ("import sys, time; from advisor.search.storage import storage_lock\n"
            f"with storage_lock('journal:{tmp_path / 'optuna.journal'}', '{tmp_path}', 'study:h'):\n"
            "    print('in', flush=True); time.sleep(1.5)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "in"
    t0 = time.monotonic()
    with lock():
        waited = time.monotonic() - t0
    child.wait()
    assert waited > 0.5  # held by the child until it left


def test_a_tracking_call_is_retried_with_backoff_while_the_server_is_gone_then_succeeds():
    import requests

    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise requests.exceptions.ConnectionError("Max retries exceeded: Connection refused")
        return "logged"

    assert call_patiently(flaky, uri="http://x", wait=60, sleep=sleeps.append) == "logged"
    assert len(calls) == 4 and sleeps == [1.0, 2.0, 4.0]


def test_a_server_that_stays_gone_is_one_line_and_other_errors_are_not_retried():
    from mlflow.exceptions import MlflowException

    def gone():
        raise MlflowException("API request to http://127.0.0.1:9/api failed with exception "
                              "HTTPConnectionPool: Max retries exceeded (Connection refused)")

    with pytest.raises(TrackingUnavailable) as e:
        call_patiently(gone, uri="http://127.0.0.1:9", what="log batch", wait=0.3, sleep=lambda s: time.sleep(0.05))
    assert isinstance(e.value, AdvisorError) and "\n" not in str(e.value)
    assert "http://127.0.0.1:9 unreachable" in str(e.value) and "rerun the same command" in str(e.value)
    bad = MlflowException("Run 'abc' not found", error_code="RESOURCE_DOES_NOT_EXIST")
    assert not is_transient(bad)
    calls = []

    def missing():
        calls.append(1)
        raise bad

    with pytest.raises(MlflowException):
        call_patiently(missing, uri="http://x", wait=60, sleep=lambda s: None)
    assert calls == [1]


def test_against_a_server_mlflow_neither_retries_by_itself_nor_prints_a_link_per_run(monkeypatch):
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"):
        monkeypatch.setenv(name, "-")  # so that the test's end restores whatever was there
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")  # the user's own setting is kept
    quiet_http_defaults("sqlite:////tmp/x.db")
    import os

    assert "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT" not in os.environ
    quiet_http_defaults("http://127.0.0.1:5000")
    assert os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == "true"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0" and os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"


def test_a_patient_client_wraps_every_method():
    class Client:
        tracking_uri = "http://x"

        def __init__(self):
            self.n = 0

        def get_run(self, run_id):
            self.n += 1
            if self.n == 1:
                raise ConnectionError("connection reset")
            return run_id

    client = PatientClient(Client(), "http://x", wait=5)
    assert client.get_run("r1") == "r1" and client.tracking_uri == "http://x"


def test_a_tracking_server_that_stays_gone_stops_the_search_with_one_line_and_the_study_keeps_the_trial(
        tmp_path, capsys, monkeypatch, one_torch_thread):
    from advisor.cli import main
    from advisor.track.study_runs import StudyTracker
    from tests.search.test_search_study import TINY_SPACE, _nested, _study

    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE.replace("epochs: 3", "epochs: 1"))
    args = ["search", "digits:30", "--strategy", "last_k", "--space", str(space), "--trials", "3", "--image-size",
            "32", "--weights", "random", "--workspace", str(tmp_path / "ws"), "--cache-dir", str(tmp_path / "cache"),
            "--study-name", "gone", "--experiment", "gone", "--pruner", "none", "--quiet"]
    real = StudyTracker.log_trial

    def gone(self, number, *a, **k):
        if number == 1:
            raise TrackingUnavailable("MLflow tracking server http://x unreachable for 120 s while log batch (...)",
                                      "start it again and rerun the same command")
        return real(self, number, *a, **k)

    monkeypatch.setattr(StudyTracker, "log_trial", gone)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unreachable for 120 s" in err and "Traceback" not in err
    study = _study(tmp_path / "ws", "gone")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]  # trial 1 kept; no trial 2 started
    assert "unreachable" in study.trials[1].user_attrs["tracking_error"]
    monkeypatch.setattr(StudyTracker, "log_trial", real)  # the server is back: the same command resumes
    assert main(args) == 0
    out = capsys.readouterr().out
    study = _study(tmp_path / "ws", "gone")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3 and study.user_attrs["refit"]["state"] == "done"
    parent_id = next(line for line in out.split("parent run ")[1:]).split()[0]
    _, parent, runs = _nested(f"sqlite:///{tmp_path / 'ws' / 'mlflow.db'}", parent_id)
    assert [int(r.data.tags["advisor.trial_number"]) for r in runs] == [0, 1, 2]  # trial 1's run logged on resume
    assert all(r.info.status == "FINISHED" for r in runs) and parent.info.status == "FINISHED"


def test_a_storage_call_is_retried_while_the_database_is_unreachable_and_a_wrong_statement_is_not(monkeypatch):
    import sqlalchemy.exc
    from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError

    from advisor.search.storage import _patient

    class Fake:
        removed = 0

        def remove_session(self):
            self.removed += 1

    calls = []

    def get_trial(self, trial_id):
        calls.append(trial_id)
        if len(calls) < 3:
            try:
                raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("server closed the connection"))
            except sqlalchemy.exc.OperationalError as e:
                raise StorageInternalError("An exception is raised during the commit.") from e
        return "trial"

    fake = Fake()
    assert _patient(get_trial)(fake, 7) == "trial" and calls == [7, 7, 7] and fake.removed == 2

    def set_trial_state_values(self, trial_id, state):
        calls.append(state)
        if calls.count(state) == 1:
            raise sqlalchemy.exc.OperationalError("UPDATE", {}, Exception("connection reset"))
        raise UpdateFinishedTrialError("already finished")  # the first attempt was committed

    assert _patient(set_trial_state_values)(fake, 1, "COMPLETE") is True

    def bad(self):
        calls.append("bad")
        try:
            raise sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
        except sqlalchemy.exc.IntegrityError as e:
            raise StorageInternalError("commit") from e

    with pytest.raises(StorageInternalError):
        _patient(bad)(fake)
    assert calls.count("bad") == 1
    monkeypatch.setenv("ADVISOR_STORAGE_PATIENCE", "0")  # a database that stays gone: the error, at once

    def gone(self):
        raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("connection refused"))

    with pytest.raises(sqlalchemy.exc.OperationalError):
        _patient(gone)(fake)
