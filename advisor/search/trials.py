"""The trials of a study: who runs them, which are stale, how they are retried, what counts, which is best.

A trial left RUNNING by a worker that is gone is *stale*. Journal files have no heartbeat, so
:func:`recover_stale_trials` decides there: a RUNNING trial is stale when the process that started it
on this machine no longer exists (each trial records ``worker = "host:pid"`` first thing), or when it
has no ``worker`` yet :data:`UNCLAIMED_GRACE_SECONDS` after it started (its process died between
Optuna starting the trial and the objective recording itself). On an RDB storage Optuna's heartbeat
decides (:mod:`advisor.search.storage`), and :class:`RetryStaleTrial` (Optuna's
``RetryHeartbeatStaleTrialCallback``) enqueues the configuration again. A stale trial is failed (journal:
user attribute ``stale``) and retried as a new trial with the same parameters (user attribute
``retry_of``, up to :data:`MAX_RETRIES` times); a retried trial does not count against ``--trials``.

The budget: :func:`finished_count` counts the trials that count against ``--trials`` (complete,
pruned, failed -- except retried and surplus ones); :func:`claimed_count` adds the RUNNING and WAITING
trials, i.e. the slots already handed out. :func:`best_trial` is the one rule for the best trial:
the highest value, the lowest number among equal values.
"""

from __future__ import annotations

import copy
import os
import socket
from datetime import datetime, timezone

#: Retries of one configuration whose workers kept dying (after that its last attempt counts as failed).
MAX_RETRIES = 3
#: A journal trial RUNNING this long without a ``worker`` attribute was started by a process that died.
UNCLAIMED_GRACE_SECONDS = 60.0
#: User attributes of a trial that describe one attempt, not the configuration: a retry drops them.
_ATTEMPT_ATTRS = ("worker", "stale", "fail_reason", "traceback", "tracking_error", "wall_time",
                  "trainable_params", "surplus", "retry_of")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _started_seconds_ago(trial, now: datetime | None = None) -> float | None:
    start = trial.datetime_start
    if start is None:
        return None
    now = now or datetime.now(timezone.utc)
    # Optuna hands back naive times in this machine's local time zone
    start, now = (t.astimezone() if t.tzinfo is None else t for t in (start, now))
    return (now - start).total_seconds()


def is_stale(trial, host: str | None = None, now: datetime | None = None) -> bool:
    """A RUNNING journal trial whose worker process on this host is gone, or that never recorded a
    worker within :data:`UNCLAIMED_GRACE_SECONDS` of starting."""
    worker = trial.user_attrs.get("worker")
    if not worker:
        age = _started_seconds_ago(trial, now)
        return age is not None and age > UNCLAIMED_GRACE_SECONDS
    if ":" not in str(worker):
        return False
    h, _, pid = str(worker).rpartition(":")
    if h != (host or socket.gethostname()) or not pid.isdigit():
        return False
    return not _pid_alive(int(pid))


def _retry_callback_base():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the class is "experimental" in Optuna 5; older ones call it otherwise
        try:
            from optuna.storages import RetryHeartbeatStaleTrialCallback as base
        except ImportError:  # Optuna < 4.9
            from optuna.storages import RetryFailedTrialCallback as base
    return base


class RetryStaleTrial(_retry_callback_base()):
    """Optuna's retry callback for stale trials: a WAITING copy of the failed trial (same parameters and
    distributions, so it trains the same configuration), with user attribute ``retry_of`` = the failed
    trial's number and without the attributes of the failed attempt (its worker, its reason)."""

    def __init__(self, max_retry: int | None = MAX_RETRIES) -> None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            super().__init__(max_retry=max_retry)

    def __call__(self, study, trial) -> None:
        import warnings

        retry = copy.deepcopy(trial)
        retry.user_attrs = {**{k: v for k, v in trial.user_attrs.items() if k not in _ATTEMPT_ATTRS},
                            "retry_of": trial.number}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            super().__call__(study, retry)


def is_rdb(study) -> bool:
    """Whether the study lives in an RDB storage (Optuna wraps those in a cache: look underneath)."""
    from optuna.storages import RDBStorage

    storage = study._storage
    return isinstance(getattr(storage, "_backend", storage), RDBStorage)


def recover_stale_trials(study) -> list[int]:
    """Fail the trials a dead worker left RUNNING and enqueue their configurations again; returns their numbers.

    RDB storages: Optuna's heartbeat decides (``fail_stale_trials``, whose callback is
    :class:`RetryStaleTrial`; Optuna also runs it before every trial of ``study.optimize``); a
    trial that never beat nor recorded its worker is stale :data:`UNCLAIMED_GRACE_SECONDS` after it
    started, and one whose worker ran on this host and is gone is stale at once (:func:`is_stale`:
    a host restarted after a crash need not wait out the heartbeat's grace period). Journal files:
    :func:`is_stale`. Several processes may call this at once: a trial is
    failed by exactly one of them, and only that one enqueues its retry.
    """
    import warnings

    from optuna.trial import TrialState

    if is_rdb(study):
        from optuna.storages import fail_stale_trials

        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fail_stale_trials(study)
        stale = before & _stale_numbers(study.get_trials(deepcopy=False))  # failed and retried just now
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if is_stale(t) and _fail_and_retry(study, t):  # no worker yet, or a dead process on this host
                stale.add(t.number)
        return sorted(stale)
    return [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if is_stale(t) and _fail_and_retry(study, t)]


def _fail_and_retry(study, trial) -> bool:
    """Fail a stale RUNNING trial and enqueue its retry; False when another process got there first."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage
    try:
        storage.set_trial_user_attr(trial._trial_id, "stale", True)
        storage.set_trial_user_attr(trial._trial_id, "fail_reason", "its worker process died (interrupted)")
        if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            return False
    except UpdateFinishedTrialError:  # another process failed it first and enqueued the retry
        return False
    RetryStaleTrial()(study, storage.get_trial(trial._trial_id))
    return True


def _stale_numbers(trials) -> set[int]:
    """Numbers of the failed trials that were retried (a stale trial whose retries ran out counts as failed)."""
    stale: set[int] = set()
    for t in trials:
        if t.user_attrs.get("retry_of") is not None:
            stale.add(int(t.user_attrs["retry_of"]))
        stale.update(int(n) for n in t.system_attrs.get("retry_history", ()))
    return stale


def _counts(trials) -> tuple[list, list]:
    """(trials that count against ``--trials``, trials RUNNING or WAITING)."""
    from optuna.trial import TrialState

    stale = _stale_numbers(trials)
    done, pending = [], []
    for t in trials:
        if "from_check" in t.user_attrs:  # run by analyze's measured check, not by the search
            continue
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            done.append(t)
        elif t.state == TrialState.FAIL and t.number not in stale and not t.user_attrs.get("surplus"):
            done.append(t)
        elif t.state in (TrialState.RUNNING, TrialState.WAITING):
            pending.append(t)
    return done, pending


def finished_count(study) -> int:
    """Trials that count against ``--trials``: complete, pruned, and failed except retried and surplus ones, and
    except those added from the measured check (``advisor.search._seed``)."""
    return len(_counts(study.get_trials(deepcopy=False))[0])


def claimed_count(study, below: int | None = None) -> int:
    """:func:`finished_count` plus the RUNNING and WAITING trials: the trial slots handed out so far.
    With ``below``, only trials numbered lower than it."""
    trials = study.get_trials(deepcopy=False)
    done, pending = _counts(trials)
    if below is None:
        return len(done) + len(pending)
    return sum(t.number < below for t in done) + sum(t.number < below for t in pending)


def is_surplus(trial) -> bool:
    return bool(trial.user_attrs.get("surplus"))


def best_trial(study):
    """The best complete trial: the highest value, the lowest number among equal values; None if none."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def best_note(study) -> str:
    """"best VALUE (trial N)" for progress lines, or "" before any trial finished."""
    b = best_trial(study)
    return "" if b is None else f"best {b.value:.4f} (trial {b.number})"

