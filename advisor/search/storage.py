"""Where a study lives: Optuna's journal file by default, or any Optuna RDB URL; checking, opening and locking it.

* ``None`` -> a journal file ``<workspace>/optuna.journal`` (``JournalFileBackend``: several
  processes on one machine share it safely).
* a path ending in ``.journal`` / ``.log``, or ``journal:PATH`` -> that journal file.
* ``sqlite:///...``, ``postgresql://...``, ``mysql://...`` -> ``RDBStorage`` with Optuna's heartbeat
  (``heartbeat_interval``, ``grace_period``): a trial whose worker stopped beating is failed by Optuna
  itself and :class:`~advisor.search.trials.RetryStaleTrial` (Optuna's ``RetryHeartbeatStaleTrialCallback``)
  enqueues its configuration again (PostgreSQL for several machines).

The trials in it -- stale ones and their retries, what counts against ``--trials``, the best -- are
:mod:`advisor.search.trials`.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from pathlib import Path

from advisor.errors import AdvisorError
from advisor.search.trials import MAX_RETRIES, RetryStaleTrial

#: Optuna's heartbeat interval for RDB storages; a trial is stale after twice this (``ADVISOR_HEARTBEAT_SECONDS``).
HEARTBEAT_SECONDS = 30
#: Seconds a database may stay unreachable before a storage call gives up (``ADVISOR_STORAGE_PATIENCE``).
STORAGE_PATIENCE = 120.0
_RDB_PREFIXES = ("sqlite:", "postgresql", "postgres:", "mysql", "oracle", "mssql")
#: Missing module -> what to install (SQLAlchemy 2 drives postgresql:// with psycopg 3: advisor[postgres]).
_DRIVERS = {"psycopg": "'psycopg[binary]' (or advisor[postgres])", "psycopg2": "psycopg2-binary",
            "MySQLdb": "mysqlclient (or use mysql+pymysql:// with pymysql)", "pymysql": "pymysql"}


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
