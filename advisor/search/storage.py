"""Where a study lives: Optuna's journal file by default, or any Optuna RDB URL; and resuming one.

* ``None`` -> a journal file ``<workspace>/optuna.journal`` (``JournalFileBackend``: several
  processes on one machine share it safely).
* a path ending in ``.journal`` / ``.log``, or ``journal:PATH`` -> that journal file.
* ``sqlite:///...``, ``postgresql://...``, ``mysql://...`` -> ``RDBStorage`` with a heartbeat, so
  trials of a worker that died are failed by Optuna itself (PostgreSQL for several machines).

A trial left RUNNING by a process that is gone is *stale*: :func:`recover_stale_trials` marks it
failed (user attribute ``stale``) and enqueues its configuration again. Journal files have no
heartbeat, so there a RUNNING trial is stale when it was started on this machine by a process id
that no longer exists (each trial records ``worker = "host:pid"``).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from advisor.errors import AdvisorError

HEARTBEAT_SECONDS = 30
_RDB_PREFIXES = ("sqlite:", "postgresql", "postgres:", "mysql", "oracle", "mssql")
#: Missing module -> what to install (SQLAlchemy 2 drives postgresql:// with psycopg 3: advisor[postgres]).
_DRIVERS = {"psycopg": "'psycopg[binary]' (or advisor[postgres])", "psycopg2": "psycopg2-binary",
            "MySQLdb": "mysqlclient (or use mysql+pymysql:// with pymysql)", "pymysql": "pymysql"}


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def describe_storage(url: str | None, workspace: str | Path) -> str:
    """The storage as a URL-like string that :func:`open_storage` accepts again (for messages and logs)."""
    if url is None:
        return f"journal:{(Path(workspace) / 'optuna.journal').resolve()}"
    if url.startswith("journal:"):
        return f"journal:{Path(url[len('journal:'):]).expanduser().resolve()}"
    if url.endswith((".journal", ".log")) and "://" not in url:
        return f"journal:{Path(url).expanduser().resolve()}"
    return url


def open_storage(url: str | None, workspace: str | Path):
    """An Optuna storage for ``url`` (see the module docstring), checked to work; AdvisorError otherwise."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    desc = describe_storage(url, workspace)
    if desc.startswith("journal:"):
        path = Path(desc[len("journal:"):])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a"):
                pass
        except OSError as e:
            raise AdvisorError(f"cannot write the study journal {path} ({e.strerror})",
                               "pass --storage with a writable path or --workspace DIR") from None
        return JournalStorage(JournalFileBackend(str(path)))
    if not desc.startswith(_RDB_PREFIXES):
        raise AdvisorError(f"unknown study storage {desc!r}",
                           "use a journal file (PATH.journal), sqlite:///PATH.db or postgresql://USER@HOST/DB")
    try:
        import warnings

        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna, and what we need
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(desc, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=2 * HEARTBEAT_SECONDS,
                              failed_trial_callback=None, engine_kwargs=_engine_kwargs(desc))
    except ImportError as e:  # Optuna re-raises SQLAlchemy's missing driver module as a plain ImportError
        missing = getattr(e.__cause__, "name", None) or getattr(e, "name", None) or "its driver module"
        hint = _DRIVERS.get(missing, missing)
        raise AdvisorError(f"the database driver for {desc.split(':')[0]} is not installed ({missing})",
                           f"pip install {hint}") from None
    except Exception as e:  # noqa: BLE001 - connection errors come in many types
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise AdvisorError(f"cannot open the study storage {desc} ({reason})",
                           "check the URL and that the database is running, or drop --storage for the local journal"
                           ) from None
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite:"):
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}} if url.startswith("postgres") else {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(trial, host: str | None = None) -> bool:
    """A RUNNING journal trial whose recorded worker process on this host is gone."""
    worker = trial.user_attrs.get("worker") or trial.system_attrs.get("advisor:worker")
    if not worker or ":" not in str(worker):
        return False
    h, _, pid = str(worker).rpartition(":")
    if h != (host or socket.gethostname()) or not pid.isdigit():
        return False
    return not _pid_alive(int(pid))


def recover_stale_trials(study) -> list[int]:
    """Fail the trials a dead worker left RUNNING and enqueue their configurations again; returns their numbers."""
    from optuna.storages import RDBStorage
    from optuna.trial import TrialState

    storage = study._storage
    if isinstance(storage, RDBStorage):
        from optuna.storages import fail_stale_trials

        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        fail_stale_trials(study)
        after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        failed = sorted(before - after)
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        for n in failed:
            t = by_number[n]
            storage.set_trial_user_attr(t._trial_id, "stale", True)
            study.enqueue_trial(dict(t.params), user_attrs={"retry_of": n}, skip_if_exists=False)
        return failed
    stale = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if is_stale(t):
            storage.set_trial_user_attr(t._trial_id, "stale", True)
            storage.set_trial_user_attr(t._trial_id, "fail_reason", "its worker process died (interrupted)")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number}, skip_if_exists=False)
            stale.append(t.number)
    return stale


def finished_count(study) -> int:
    """Trials that count against ``--trials``: complete, pruned, and failed except those interrupted."""
    from optuna.trial import TrialState

    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            n += 1
        elif t.state == TrialState.FAIL and not t.user_attrs.get("stale"):
            n += 1
    return n
