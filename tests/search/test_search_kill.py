"""kill -9 at each stage of ``advisor search``, then a re-run: nothing finished is lost, no half-written
activation-cache entry is served, no MLflow run is duplicated or left RUNNING.

The search runs in a subprocess that ``ADVISOR_PAUSE_AT`` (see :mod:`advisor.track.pause`) stops at
the stage; the test kills it there with SIGKILL and re-runs the same command in this process. Tiny
searches: 300 digits at 32 px, last_k over the top 1-3 blocks, 2 epochs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from advisor.cli import main
from advisor.search import SearchConfig, run_search
from tests.search.test_search_study import _study

ROOT = Path(__file__).resolve().parents[2]

KILL_SPACE = """\
strategy: last_k
params:
  k: {type: int, low: 1, high: 3}
  head_lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
  lr_ratio: {type: float, low: 0.01, high: 1.0, log: true}
  epochs: 2
  batch_size: 32
  patience: 2
"""


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    """See tests/conftest.py."""


def _args(tmp: Path, trials: int, *extra: str, strategy: str = "last_k") -> list[str]:
    space = tmp / "kill.yaml"
    space.write_text(KILL_SPACE)
    return ["search", "digits:30", "--strategy", strategy, "--space", str(space), "--trials", str(trials),
            "--image-size", "32", "--workspace", str(tmp / "ws"), "--cache-dir", str(tmp / "cache"),
            "--study-name", "k", "--experiment", "k", "--pruner", "none", "--analyze-sample", "100", "--quiet",
            *extra]


def _run_until_paused(tmp: Path, args: list[str], stage: str) -> None:
    """Start ``advisor search`` in a subprocess, wait until it pauses at ``stage``, and kill -9 it there."""
    flag = tmp / "paused"
    env = dict(os.environ, OMP_NUM_THREADS="1", ADVISOR_PAUSE_AT=stage, ADVISOR_PAUSE_FILE=str(flag))
    proc = subprocess.Popen([sys.executable, "-m", "advisor.cli", *args], cwd=str(ROOT), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while not flag.exists():
            assert proc.poll() is None, f"the search ended before {stage}: " + proc.stderr.read().decode()[-3000:]
            assert time.time() < deadline, f"the search never reached {stage}"
            time.sleep(0.1)
        assert int(flag.read_text()) == proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _finished(tmp: Path) -> dict[int, tuple[str, float | None, dict]]:
    """The trials the killed study had finished: number -> (state, value, params)."""
    journal = tmp / "ws" / "optuna.journal"
    if not journal.exists() or '"k"' not in journal.read_text():
        return {}
    return {t.number: (t.state.name, t.value, dict(t.params)) for t in _study(tmp / "ws", "k").trials
            if t.state.is_finished()}


def _all_runs(uri: str, experiment: str = "k"):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=1000)


def _rerun_and_check(tmp: Path, args: list[str], before: dict, trials: int) -> dict:
    """Re-run the search and check what every stage must hold afterwards; returns the JSON result."""
    assert main([*args, "--json", str(tmp / "r.json")]) == 0
    result = json.loads((tmp / "r.json").read_text())
    study = _study(tmp / "ws", "k")
    by_number = {t.number: t for t in study.trials}
    for n, (state, value, params) in before.items():  # nothing finished is lost or changed
        assert (by_number[n].state.name, by_number[n].value, by_number[n].params) == (state, value, params)
    counted = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")
               or (t.state.name == "FAIL" and not t.user_attrs.get("stale") and not t.user_attrs.get("surplus"))]
    assert len(counted) == trials
    assert {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED", "FAIL"}  # nothing RUNNING or WAITING
    for t in study.trials:  # a stale trial was tried again with its configuration
        if t.user_attrs.get("stale"):
            assert [r.params for r in study.trials if r.user_attrs.get("retry_of") == t.number] == [t.params]

    runs = _all_runs(result["tracking_uri"])
    assert [r.info.status for r in runs if r.info.status not in ("FINISHED", "FAILED", "KILLED")] == []
    parents = [r for r in runs if r.data.tags.get("advisor.kind") == "study"]
    assert [p.info.run_id for p in parents] == [result["parent_run_id"]]  # one parent run, resumed
    numbers = [int(r.data.tags["advisor.trial_number"]) for r in runs if r.data.tags.get("advisor.kind") == "trial"]
    logged = [t.number for t in study.trials if not t.user_attrs.get("surplus")]
    assert sorted(numbers) == sorted(set(numbers)) == logged  # one run per trial, none twice
    state = {int(r.data.tags["advisor.trial_number"]): r.data.tags["advisor.state"] for r in runs
             if r.data.tags.get("advisor.kind") == "trial"}
    assert all(state[t.number] == {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}[t.state.name]
               for t in study.trials if t.number in state)
    assert result["test_accuracy"] is not None and result["refit_reproduced"] is True
    return result


def test_kill_during_analyze(tmp_path):
    """Killed while analyze measures: no trial and no MLflow run existed; the re-run does it all once."""
    args = _args(tmp_path, 1, strategy="auto")
    _run_until_paused(tmp_path, args, "analyze")
    assert _finished(tmp_path) == {} and _all_runs(f"sqlite:///{tmp_path / 'ws' / 'mlflow.db'}") == []
    result = _rerun_and_check(tmp_path, args, {}, trials=1)
    assert result["advice_strategy"] is not None


def test_kill_during_a_trial(tmp_path):
    """Killed after trial 1's first epoch: trial 0 is kept as it was, trial 1 is failed as stale (its MLflow
    run says so) and its configuration runs again."""
    args = _args(tmp_path, 2)
    _run_until_paused(tmp_path, args, "trial:1")
    before = _finished(tmp_path)
    assert [s for s, _, _ in before.values()] == ["COMPLETE"]
    result = _rerun_and_check(tmp_path, args, before, trials=2)
    assert result["retried"] == [1]
    failed = [r for r in _all_runs(result["tracking_uri"]) if r.data.tags.get("advisor.trial_number") == "1"]
    assert failed[0].info.status == "FAILED" and "worker process died" in failed[0].data.tags["advisor.fail_reason"]


def test_kill_during_mlflow_logging(tmp_path):
    """Killed while trial 1's MLflow run is half written (created, no metrics, RUNNING): the re-run replaces
    it with one ended run, and the trial, which Optuna never heard back from, runs again."""
    args = _args(tmp_path, 2)
    _run_until_paused(tmp_path, args, "log_trial:1")
    runs = _all_runs(f"sqlite:///{tmp_path / 'ws' / 'mlflow.db'}")
    half = [r for r in runs if r.data.tags.get("advisor.trial_number") == "1"]
    assert len(half) == 1 and half[0].info.status == "RUNNING" and not half[0].data.metrics
    before = _finished(tmp_path)
    result = _rerun_and_check(tmp_path, args, before, trials=2)
    assert result["retried"] == [1]


def test_kill_during_an_activation_cache_write(tmp_path):
    """Killed while the first trial fills the activation cache (some rows done, not all): the re-run's
    retry of that trial reads the half-filled entry, fills the rest and gets exactly the value a clean
    search (its own workspace and cache) gets for the same configuration."""
    args = _args(tmp_path, 1)
    _run_until_paused(tmp_path, args, "cache")
    partial = [np.load(p) for p in (tmp_path / "cache").rglob("done.npy")]
    assert partial and any(0 < d.sum() < d.size for d in partial)  # a half-written entry was left behind
    assert _finished(tmp_path) == {}
    result = _rerun_and_check(tmp_path, args, {}, trials=1)
    assert result["retried"] == [0]
    retry = next(t for t in _study(tmp_path / "ws", "k").trials if t.user_attrs.get("retry_of") == 0)

    clean = tmp_path / "clean"
    space = tmp_path / "kill.yaml"
    ref = run_search(SearchConfig(dataset="digits:30", strategy="last_k", space=str(space), trials=1, image_size=32,
                                  workspace=str(clean / "ws"), cache_dir=str(clean / "cache"), pruner="none",
                                  study_name="k", experiment="k"))
    first = _study(clean / "ws", "k").trials[0]
    assert first.params == retry.params  # the same seeded first configuration
    assert retry.state.name == first.state.name == "COMPLETE" and retry.value == first.value
    assert result["test_accuracy"] == ref.test_accuracy


def test_a_killed_worker_is_one_line_and_the_same_command_resumes(tmp_path):
    """kill -9 one of two worker processes in its trial: the host ends with one line naming the signal and
    the fix (no 'see the error' hint: there is none to see), exit 2; the same command then finishes the study."""
    args = _args(tmp_path, 3, "--workers", "2")
    flag = tmp_path / "paused"
    env = dict(os.environ, OMP_NUM_THREADS="1", ADVISOR_PAUSE_AT="trial:1", ADVISOR_PAUSE_FILE=str(flag))
    proc = subprocess.Popen([sys.executable, "-m", "advisor.cli", *args], cwd=str(ROOT), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not flag.exists():
        assert proc.poll() is None, "the search ended before trial 1: " + proc.stderr.read()[-3000:]
        assert time.time() < deadline, "no worker reached trial 1"
        time.sleep(0.1)
    worker = int(flag.read_text())
    assert worker != proc.pid  # a spawned worker, not the host
    os.kill(worker, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert "1 of 2 search workers were killed (SIGKILL)" in lines[-1] and "run the same command again" in lines[-1]
    assert "Traceback" not in err
    before = _finished(tmp_path)
    _rerun_and_check(tmp_path, args, before, trials=3)
