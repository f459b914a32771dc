"""Several ``advisor search`` processes on one study (one per machine): who sets up, who refits.

Everything goes through the study's storage, the one thing every host shares:

* **Set-up** runs under :func:`~advisor.search.storage.storage_lock` ``study:NAME`` (a PostgreSQL
  advisory lock; a file lock on one machine): creating or loading the study, failing the trials of dead
  workers, enqueueing the advice on a new study and finding or creating the MLflow parent run happen
  in one host at a time, so N hosts started at once make one study, one advised trial and one parent.
* **The end.** A host whose trials are done (the budget is handed out) looks at the study every few
  seconds, under the same lock:

  - a WAITING trial (a retry of a trial whose worker died) -> it runs trials again;
  - trials still RUNNING on other hosts -> it waits, at most :func:`linger_seconds` (the heartbeat's
    grace period plus one interval: long enough for the trial of a dead worker to be failed and retried,
    which it then runs); after that it leaves, naming the trials that still run (``unfinished``);
  - the study holds its ``--trials`` finished trials and none runs -> it claims the refit: study user
    attribute ``refit`` = ``{"finished": N, "by": "host:pid", "state": "running", "beat": time}``, written
    only when no live claim for the same N exists. Exactly one host wins (the lock), trains the best trial
    again, logs and registers it, and marks the claim ``done`` with the results. The claim's ``beat`` is
    renewed every heartbeat interval; a claim whose beat is older than the grace period (its host died),
    or whose host is this machine and whose process is gone, may be taken over.
  - a live claim of another host -> ``elsewhere``: this host says where the result will appear;
  - a ``done`` claim for this N -> ``recorded``: the results are read from the claim (a rerun of a
    finished study refits nothing and registers no second version).

Clocks: beats compare ``time.time()`` across hosts, so the hosts' clocks must agree to within the grace
period (NTP does much better).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

REFIT_KEY = "refit"
#: Seconds between two looks at the study while waiting for other hosts.
POLL_SECONDS = 2.0


@dataclass
class Ending:
    """What this host does at the end: ``run`` (WAITING retries: run trials again), ``refit``, ``elsewhere``,
    ``recorded`` or ``unfinished``; the claim as read or written; the trials still RUNNING."""

    role: str
    claim: dict = field(default_factory=dict)
    running: list[int] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)


def linger_seconds(study) -> float:
    """How long a host whose trials are done waits for the others: the heartbeat's grace period plus one
    interval on an RDB storage (a dead worker's trial is failed and retried by then); none on a journal
    file, where a dead worker on this machine is seen at once."""
    from advisor.search.storage import heartbeat_seconds
    from advisor.search.trials import is_rdb

    return 3.0 * heartbeat_seconds() if is_rdb(study) else 0.0


def _claim_stale(claim: dict, now: float) -> bool:
    from advisor.search.storage import heartbeat_seconds
    from advisor.search.trials import _pid_alive

    by = str(claim.get("by", ""))
    host, _, pid = by.rpartition(":")
    import socket

    if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
        return True
    return now - float(claim.get("beat", 0.0)) > 2.0 * heartbeat_seconds()


def decide(study, n_trials: int, lock, me: str, now: float | None = None) -> Ending:
    """One look at the study under ``lock`` (a context manager): see the module docstring."""
    from optuna.trial import TrialState

    from advisor.search.trials import _counts, recover_stale_trials

    with lock():
        recover_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        done, pending = _counts(trials)
        if any(t.state == TrialState.WAITING for t in pending) and len(done) < n_trials:
            return Ending("run")
        running = [t for t in pending if t.state == TrialState.RUNNING]
        if running or len(done) < n_trials:
            return Ending("unfinished", running=[t.number for t in running],
                          workers=sorted({str(t.user_attrs.get("worker", "?")) for t in running}))
        now = time.time() if now is None else now
        claim = dict(study.user_attrs.get(REFIT_KEY) or {})
        if claim.get("finished") == len(done):
            if claim.get("state") == "done":
                return Ending("recorded", claim)
            if claim.get("by") != me and not _claim_stale(claim, now):
                return Ending("elsewhere", claim)
        claim = {"finished": len(done), "by": me, "state": "running", "beat": now, "since": now}
        study.set_user_attr(REFIT_KEY, claim)
        return Ending("refit", claim)


def finish_trials(study, n_trials: int, lock, me: str, linger: float, sleep=time.sleep) -> Ending:
    """Look at the study (:func:`decide`) until it says what to do, waiting at most ``linger`` seconds while
    other hosts' trials run."""
    deadline = time.monotonic() + linger
    while True:
        ending = decide(study, n_trials, lock, me)
        if ending.role != "unfinished" or time.monotonic() >= deadline:
            return ending
        sleep(min(POLL_SECONDS, max(0.05, deadline - time.monotonic())))


class ClaimBeat:
    """While the refit runs: renew the claim's ``beat`` every heartbeat interval (only while it is still ours),
    and at the end record its outcome (:meth:`done`)."""

    def __init__(self, study, lock, claim: dict):
        from advisor.search.storage import heartbeat_seconds

        self.study, self.lock, self.claim = study, lock, dict(claim)
        self.interval = float(heartbeat_seconds())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="advisor-refit-beat", daemon=True)

    def __enter__(self) -> ClaimBeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._write(state="running", beat=time.time())
            except Exception:  # noqa: BLE001 - a missed beat is retried next interval; the refit goes on
                pass

    def _write(self, **values: Any) -> bool:
        with self.lock():
            current = dict(self.study.user_attrs.get(REFIT_KEY) or {})
            if current.get("by") != self.claim["by"] or current.get("since") != self.claim["since"]:
                return False  # taken over by another host (this one was thought dead): leave its claim alone
            self.claim.update(values)
            self.study.set_user_attr(REFIT_KEY, self.claim)
            return True

    def done(self, **results: Any) -> None:
        """Mark the claim ``done`` with ``results`` (test metrics, model URI, registered version, error)."""
        self._stop.set()
        self._write(state="done", beat=time.time(), ended=time.time(), **results)
