"""Where a study lives: Optuna's journal file by default, or any Optuna RDB URL; resuming one; its budget.

* ``None`` -> a journal file ``<workspace>/optuna.journal`` (``JournalFileBackend``: several
  processes on one machine share it safely).
* a path ending in ``.journal`` / ``.log``, or ``journal:PATH`` -> that journal file.
* ``sqlite:///...``, ``postgresql://...``, ``mysql://...`` -> ``RDBStorage`` with Optuna's heartbeat
  (``heartbeat_interval``, ``grace_period``): a trial whose worker stopped beating is failed by Optuna
  itself and :class:`RetryStaleTrial` (Optuna's ``RetryHeartbeatStaleTrialCallback``) enqueues its
  configuration again (PostgreSQL for several machines).

A trial left RUNNING by a worker that is gone is *stale*. Journal files have no heartbeat, so
:func:`recover_stale_trials` decides there: a RUNNING trial is stale when the process that started it
on this machine no longer exists (each trial records ``worker = "host:pid"`` first thing), or when it
has no ``worker`` yet :data:`UNCLAIMED_GRACE_SECONDS` after it started (its process died between
Optuna starting the trial and the objective recording itself). A stale trial is failed (journal:
user attribute ``stale``) and retried as a new trial with the same parameters (user attribute
``retry_of``, up to :data:`MAX_RETRIES` times); a retried trial does not count against ``--trials``.

The budget: :func:`finished_count` counts the trials that count against ``--trials`` (complete,
pruned, failed -- except retried and surplus ones); :func:`claimed_count` adds the RUNNING and WAITING
trials, i.e. the slots already handed out. :func:`best_trial` is the one rule for the best trial:
the highest value, the lowest number among equal values.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import socket
import zlib
from datetime import datetime, timezone
from pathlib import Path

from advisor.errors import AdvisorError

#: Optuna's heartbeat interval for RDB storages; a trial is stale after twice this (``ADVISOR_HEARTBEAT_SECONDS``).
HEARTBEAT_SECONDS = 30
#: Seconds a database may stay unreachable before a storage call gives up (``ADVISOR_STORAGE_PATIENCE``).
STORAGE_PATIENCE = 120.0
#: Retries of one configuration whose workers kept dying (after that its last attempt counts as failed).
MAX_RETRIES = 3
#: A journal trial RUNNING this long without a ``worker`` attribute was started by a process that died.
UNCLAIMED_GRACE_SECONDS = 60.0
#: User attributes of a trial that describe one attempt, not the configuration: a retry drops them.
_ATTEMPT_ATTRS = ("worker", "stale", "fail_reason", "traceback", "tracking_error", "wall_time",
                  "trainable_params", "surplus", "retry_of")
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


_STORAGE_FIX = "use a journal file (PATH.journal), sqlite:///PATH.db or postgresql://USER@HOST/DB"
_DB_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433, "oracle": 1521}
#: Seconds a live writer may take to finish the journal's last line (see :func:`check_journal`).
_PARTIAL_LINE_WAIT = 0.5


def check_storage(url: str | None, workspace: str | Path, timeout: float = 5.0) -> None:
    """What :func:`open_storage` would refuse, found without creating or changing anything: the scheme,
    a journal's folder and content, an SQLite file's header, a database server's port. AdvisorError otherwise."""
    from advisor.track.store import check_creatable, check_sqlite_file, check_tcp, sqlite_path

    desc = describe_storage(url, workspace)
    fix = "pass --storage with a writable path or --workspace DIR"
    if desc.startswith("journal:"):
        path = Path(desc[len("journal:"):])
        check_creatable(path.parent, "the study journal's folder", fix)
        if path.exists():
            check_journal(path)
        return
    if not desc.startswith(_RDB_PREFIXES):
        raise AdvisorError(f"unknown study storage {desc!r}", _STORAGE_FIX)
    if desc.startswith("sqlite:"):
        db = sqlite_path(desc)
        if db is not None and db.name not in ("", ":memory:"):
            check_creatable(db.absolute().parent, "the study database's folder", fix)
            if db.exists():
                check_sqlite_file(db.absolute(), "pass another --storage or drop it for the local journal",
                                  what="study database")
        return
    scheme = desc.split(":", 1)[0].split("+", 1)[0].lower()
    check_tcp(desc, _DB_PORTS.get(scheme, 0), timeout, f"cannot open the study storage {desc}:",
              "start the database, or drop --storage for the local journal")


def check_journal(path: Path) -> None:
    """An existing journal file must hold Optuna's log: one JSON object with an ``op_code`` per line, the
    last one complete, and Optuna must be able to replay it. A last line without its newline is a write
    cut short -- unless it grows within :data:`_PARTIAL_LINE_WAIT` seconds (another process writing)."""
    fix = f"restore {path.name} from a copy, or pass another --storage for a new study"
    for attempt in range(2):
        try:
            data = path.read_bytes()
        except OSError as e:
            raise AdvisorError(f"cannot read the study journal {path} ({e.strerror or e})", fix) from None
        if attempt == 0:
            _check_lines(path, data[:data.rfind(b"\n") + 1], fix)  # the complete lines first
        if not data or data.endswith(b"\n"):
            break
        if attempt == 0:
            import time

            time.sleep(_PARTIAL_LINE_WAIT)
            if path.stat().st_size != len(data):
                continue
        raise AdvisorError(f"the study journal {path} ends in a partial line (a write was cut short)",
                           f"remove the last line (everything after the last newline), or {fix}")
    try:
        import warnings

        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            JournalStorage(JournalFileBackend(str(path)))  # replays the whole log; the file exists, so unchanged
    except Exception as e:  # noqa: BLE001 - any replay failure is a journal Optuna cannot read
        raise AdvisorError(f"Optuna cannot replay the study journal {path} ({type(e).__name__}: "
                           f"{' '.join(str(e).split())[:120]})", fix) from None


def _check_lines(path: Path, data: bytes, fix: str) -> None:
    """Every line of ``data`` is one JSON object with an integer ``op_code`` (Optuna's journal log entry)."""
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            entry = json.loads(line.decode("utf-8"))
        except ValueError:
            raise AdvisorError(f"the study journal {path} is corrupt (line {number} is not JSON)", fix) from None
        if not isinstance(entry, dict) or not isinstance(entry.get("op_code"), int):
            raise AdvisorError(f"{path} is not an Optuna journal (line {number} is not an Optuna log entry)", fix)


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
        raise AdvisorError(f"unknown study storage {desc!r}", _STORAGE_FIX)
    beat = heartbeat_seconds()
    try:
        import warnings

        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna, and what we need
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            import inspect

            # Optuna >= 4.9 names the callback heartbeat_stale_trial_callback, older ones failed_trial_callback
            key = ("heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback"
                   in inspect.signature(RDBStorage).parameters else "failed_trial_callback")
            with storage_lock(desc, workspace, "schema"):  # hosts starting together create the tables once
                return _patient_rdb()(desc, heartbeat_interval=beat, grace_period=2 * beat,
                                   engine_kwargs=_engine_kwargs(desc),
                                   **{key: RetryStaleTrial(max_retry=MAX_RETRIES)})
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


def _env_seconds(name: str, default: float, minimum: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value >= minimum:
        raise AdvisorError(f"bad {name} {raw!r}", f"use a number of seconds of at least {minimum:g}")
    return value


def heartbeat_seconds() -> int:
    """Optuna's heartbeat interval: ``ADVISOR_HEARTBEAT_SECONDS`` (whole seconds, at least 1) or 30."""
    return int(_env_seconds("ADVISOR_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS, 1))


def storage_patience() -> float:
    return _env_seconds("ADVISOR_STORAGE_PATIENCE", STORAGE_PATIENCE, 0)


@contextlib.contextmanager
def storage_lock(desc: str, workspace: str | Path, name: str):
    """Hold a lock named ``name`` that every process using the storage ``desc`` sees, for the ``with`` block.

    PostgreSQL: a session advisory lock (``pg_advisory_lock``) on its own connection; MySQL: ``GET_LOCK``;
    a journal or SQLite file (one machine): an exclusive ``flock`` (:func:`advisor.track.store.file_lock`).
    Other databases: no lock (say so in the docs). A process that dies releases its lock with its
    connection or its file descriptor."""
    key = f"advisor:{name}"
    desc = describe_storage(desc if desc else None, workspace)
    if desc.startswith(("postgresql", "postgres:", "mysql")):
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        pg = desc.startswith("postgres")
        engine = sqlalchemy.create_engine(desc, poolclass=NullPool, **({"connect_args": {"connect_timeout": 10}}
                                                                       if pg else {}))
        try:
            with engine.connect() as conn:
                if pg:
                    number = zlib.crc32(key.encode()) - (1 << 31)  # a signed 32-bit key
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": number})
                    conn.commit()
                    try:
                        yield
                    finally:
                        conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": number})
                        conn.commit()
                else:
                    conn.execute(sqlalchemy.text("SELECT GET_LOCK(:k, 600)"), {"k": key})
                    try:
                        yield
                    finally:
                        conn.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:k)"), {"k": key})
        finally:
            engine.dispose()
        return
    path = None
    if desc.startswith("journal:"):
        path = Path(desc[len("journal:"):])
    elif desc.startswith("sqlite:"):
        from advisor.track.store import sqlite_path

        db = sqlite_path(desc)
        path = db.absolute() if db is not None and db.name not in ("", ":memory:") else None
    if path is None:
        yield
        return
    from advisor.track.store import file_lock

    with file_lock(path.with_name(f"{path.name}.{name.replace('/', '_')}")):
        yield


def _patient(method):
    """``method`` of an RDBStorage, retried while the database cannot be reached (see :class:`PatientRDBStorage`)."""
    import functools

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        import time

        import sqlalchemy.exc
        from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError

        start, delay, retried = time.monotonic(), 0.5, False
        while True:
            try:
                return method(self, *args, **kwargs)
            except UpdateFinishedTrialError:
                if retried and method.__name__ == "set_trial_state_values":
                    return True  # the first attempt was committed, only its answer was lost
                raise
            except (StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as e:
                cause = e.__cause__ if isinstance(e, StorageInternalError) else e
                if not _lost_connection(cause) or time.monotonic() - start >= storage_patience():
                    raise
                retried = True
                try:  # this thread's session holds the dead connection's transaction: start afresh
                    self.remove_session()
                except Exception:  # noqa: BLE001 - the next attempt says whether the database is back
                    pass
                time.sleep(delay)
                delay = min(2 * delay, 8.0)

    return call


def _lost_connection(e) -> bool:
    """Whether a SQLAlchemy error says the database could not be reached or the connection died (worth a retry),
    rather than that the statement was wrong."""
    import sqlalchemy.exc

    if isinstance(e, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
                      sqlalchemy.exc.PendingRollbackError)):
        return True
    return isinstance(e, sqlalchemy.exc.DBAPIError) and bool(getattr(e, "connection_invalidated", False))


def _patient_rdb_class():
    from optuna.storages import RDBStorage

    names = ("create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
             "get_study_id_from_name", "get_study_name_from_id", "get_study_directions", "get_study_user_attrs",
             "get_study_system_attrs", "get_trial_user_attrs", "get_trial_system_attrs", "get_all_studies",
             "create_new_trial", "set_trial_param", "get_trial_param", "set_trial_state_values",
             "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
             "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials", "get_best_trial",
             "record_heartbeat", "_get_stale_trial_ids",
             # what Optuna's _CachedStorage calls on the RDB storage it wraps
             "_create_new_trial", "_get_best_trial_id", "_get_trials", "_set_trial_param")
    methods = {n: _patient(getattr(RDBStorage, n)) for n in names if hasattr(RDBStorage, n)}
    doc = ("Optuna's RDBStorage, patient with a database that is briefly gone: a call that fails because the "
           "server cannot be reached (a restart, a network cut) is retried with backoff for "
           "ADVISOR_STORAGE_PATIENCE seconds (120) before it raises. A trial that finished during an outage is "
           "recorded when the database is back; a running trial keeps running, and its heartbeat resumes.")
    return type("PatientRDBStorage", (RDBStorage,), {**methods, "__doc__": doc, "__module__": __name__})


_PATIENT: list = []


def _patient_rdb():
    """The class :class:`PatientRDBStorage`, built on first use (importing this module must not import Optuna)."""
    if not _PATIENT:
        _PATIENT.append(_patient_rdb_class())
    return _PATIENT[0]


def __getattr__(name: str):
    if name == "PatientRDBStorage":
        return _patient_rdb()
    raise AttributeError(name)


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
