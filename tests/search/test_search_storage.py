"""The study bookkeeping of advisor search without any training: the trial budget over concurrent
workers, stale trials on journal files and on RDB storages (Optuna's heartbeat), the best-trial rule.
Real Optuna storages (journal files, SQLite) under tmp_path; the objectives are stubs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta

import optuna
import pytest
from optuna.trial import TrialState

from advisor.search import storage as storage_mod
from advisor.search import trials as trials_mod
from advisor.search._budget import TrialBudget
from advisor.search._objective import TrialFailed
from advisor.search.storage import open_storage
from advisor.search.trials import best_trial, finished_count, recover_stale_trials

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _journal_study(tmp_path, name="s"):
    return optuna.create_study(study_name=name, storage=open_storage(str(tmp_path / "o.journal"), tmp_path),
                               direction="maximize")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no process has it (pids are not reused this quickly)


def test_two_workers_racing_for_the_last_slot_finish_exactly_the_budget(tmp_path):
    """Two threads finish trials 2 and 3 together (a barrier after the budget's callback), so both see
    one slot left and both start a trial: the later-numbered one withdraws as surplus and the study
    holds exactly 5 counted trials. The old split-up-front budget had no such check."""
    study = _journal_study(tmp_path)
    budget = TrialBudget(5)
    barrier = threading.Barrier(2)

    def objective(trial):
        if not budget.claim(trial):
            raise TrialFailed("surplus")
        return trial.suggest_float("x", 0.0, 1.0)

    def together(study, trial):
        if trial.number in (2, 3):
            barrier.wait(timeout=60)

    study.optimize(objective, n_jobs=2, catch=(TrialFailed,), callbacks=[budget, together])
    trials = study.get_trials()
    assert finished_count(study) == 5
    assert [t.number for t in trials if t.state == TrialState.COMPLETE] == [0, 1, 2, 3, 4]
    surplus = [t for t in trials if t.user_attrs.get("surplus")]
    assert [(t.number, t.state, t.params) for t in surplus] == [(5, TrialState.FAIL, {})]  # the race happened
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_a_trial_running_in_another_worker_holds_its_slot(tmp_path):
    """Two trials done and one running elsewhere fill a budget of three: this worker's next trial withdraws
    and its callback stops the loop (``n_trials=None``: only the budget stops it)."""
    study = _journal_study(tmp_path)
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for x in (0.1, 0.2):
        study.add_trial(optuna.create_trial(params={"x": x}, distributions=dist, value=x))
    elsewhere = study.ask()
    elsewhere.set_user_attr("worker", f"elsewhere:{os.getpid()}")
    budget = TrialBudget(3)
    ran = []

    def objective(trial):
        if not budget.claim(trial):
            raise TrialFailed("surplus")
        ran.append(trial.number)
        return 0.0

    study.optimize(objective, catch=(TrialFailed,), callbacks=[budget])
    trials = study.get_trials()
    assert ran == [] and len(trials) == 4 and trials[3].user_attrs["surplus"] is True
    assert finished_count(study) == 2 and trials[2].state == TrialState.RUNNING


def test_a_journal_trial_killed_before_it_recorded_its_worker_is_stale_after_the_grace_period(tmp_path, monkeypatch):
    """Optuna starts a trial (RUNNING) before the objective records ``worker``: a process killed in between
    left a trial no process check can judge. It is stale once it is UNCLAIMED_GRACE_SECONDS old (on the old
    code it stayed RUNNING forever); trials of live or dead workers are judged by their process."""
    study = _journal_study(tmp_path)
    orphan = study.ask()
    orphan.suggest_float("x", 0.0, 1.0)
    live = study.ask()
    live.set_user_attr("worker", trials_mod.worker_id())
    dead = study.ask()
    dead.suggest_float("x", 0.0, 1.0)
    dead.set_user_attr("worker", f"{trials_mod.socket.gethostname()}:{_dead_pid()}")
    frozen = {t.number: t for t in study.get_trials()}
    assert not trials_mod.is_stale(frozen[orphan.number])  # just started: its objective may be on the way
    later = frozen[orphan.number].datetime_start + timedelta(seconds=trials_mod.UNCLAIMED_GRACE_SECONDS + 1)
    assert trials_mod.is_stale(frozen[orphan.number], now=later)
    assert not trials_mod.is_stale(frozen[live.number], now=later) and trials_mod.is_stale(frozen[dead.number])

    assert recover_stale_trials(study) == [dead.number]
    monkeypatch.setattr(trials_mod, "UNCLAIMED_GRACE_SECONDS", 0.0)
    assert recover_stale_trials(study) == [orphan.number]
    trials = study.get_trials()
    assert trials[orphan.number].state == TrialState.FAIL and trials[orphan.number].user_attrs["stale"] is True
    assert trials[live.number].state == TrialState.RUNNING
    retries = {t.user_attrs["retry_of"]: t for t in trials if "retry_of" in t.user_attrs}
    assert set(retries) == {orphan.number, dead.number}
    for n, retry in retries.items():  # the same configuration, waiting for the next worker
        assert retry.state == TrialState.WAITING and retry.params == trials[n].params
        assert "worker" not in retry.user_attrs
    assert finished_count(study) == 0  # retried trials do not count against --trials
    assert recover_stale_trials(study) == []  # and nothing is retried twice


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the test plays the worker without study.optimize
def test_an_rdb_trial_whose_heartbeat_stopped_is_failed_and_retried_by_optuna(tmp_path, monkeypatch):
    monkeypatch.setattr(storage_mod, "HEARTBEAT_SECONDS", 1)
    url = f"sqlite:///{tmp_path / 'o.db'}"
    study = optuna.create_study(study_name="h", storage=open_storage(url, tmp_path), direction="maximize")
    trial = study.ask()
    x = trial.suggest_float("x", 0.0, 1.0)
    trial.set_user_attr("worker", "gone:1")
    study._storage.record_heartbeat(trial._trial_id)  # what Optuna's heartbeat thread does, then the worker dies
    assert recover_stale_trials(study) == []  # within the grace period (2 s)
    time.sleep(3.5)
    assert recover_stale_trials(study) == [trial.number]
    failed, retry = study.get_trials()
    assert failed.state == TrialState.FAIL
    assert retry.state == TrialState.WAITING and retry.user_attrs["retry_of"] == 0 and retry.params == {"x": x}
    assert "worker" not in retry.user_attrs and finished_count(study) == 0

    budget = TrialBudget(1)
    seen = []

    def objective(t):
        assert budget.claim(t)
        seen.append(t.suggest_float("x", 0.0, 1.0))
        return 1.0

    study.optimize(objective, callbacks=[budget])  # the next worker takes the retry, and that is the budget
    assert seen == [x] and finished_count(study) == 1 and len(study.get_trials()) == 2

    # a trial whose process died before its first heartbeat and before it recorded its worker
    orphan = study.ask()
    assert recover_stale_trials(study) == []
    monkeypatch.setattr(trials_mod, "UNCLAIMED_GRACE_SECONDS", 0.0)
    assert recover_stale_trials(study) == [orphan.number]
    assert study.get_trials()[-1].user_attrs["retry_of"] == orphan.number


def test_the_best_trial_is_the_highest_value_and_the_lowest_number_among_ties(tmp_path):
    study = _journal_study(tmp_path)
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for v in (0.5, 0.9, 0.7, 0.9, 0.9):
        study.add_trial(optuna.create_trial(params={"x": v}, distributions=dist, value=v))
    study.add_trial(optuna.create_trial(state=TrialState.FAIL))
    assert best_trial(study).number == 1
    empty = _journal_study(tmp_path, "empty")
    empty.add_trial(optuna.create_trial(state=TrialState.FAIL))
    assert best_trial(empty) is None
