"""Where MLflow runs are stored: resolve the tracking URI and check it up front.

MLflow 3 keeps runs in a database by default; a plain ``./mlruns`` folder (a
"file store") is deprecated and raises. :func:`resolve_tracking_uri` therefore
maps "nothing given" to an SQLite database inside the workspace (:func:`default_workspace`)
and refuses folder paths with a hint, and :func:`check_tracking` fails fast -- with one
:class:`~advisor.errors.AdvisorError` -- before any training starts, instead of
letting MLflow's client retry an unreachable server for minutes. Commands that only read
what a search wrote (``advisor report``, ``predict``, ``export``) open the store with
:func:`store_to_read`, which never creates one.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from advisor.errors import AdvisorError

SQLITE_PREFIX = "sqlite:///"
DB_FILENAME = "mlflow.db"
#: The workspace when neither ``--workspace`` nor ``$ADVISOR_WORKSPACE`` names one.
DEFAULT_WORKSPACE = "advisor-workspace"
_DB_SCHEMES = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
_FILE_STORE_FIX = (
    "MLflow 3 no longer supports folder (file) stores: use sqlite:///PATH/mlflow.db "
    "or a tracking server URL such as http://127.0.0.1:5000"
)


def default_workspace(workspace: str | Path | None = None) -> str | Path:
    """``workspace``, else ``$ADVISOR_WORKSPACE``, else :data:`DEFAULT_WORKSPACE`."""
    return workspace or os.environ.get("ADVISOR_WORKSPACE") or DEFAULT_WORKSPACE


def default_tracking_uri(workspace: str | Path) -> str:
    """The local SQLite store for ``workspace``: ``sqlite:///<abs workspace>/mlflow.db``."""
    folder = Path(workspace).expanduser().absolute()
    return SQLITE_PREFIX + (folder / DB_FILENAME).as_posix()


def sqlite_path(uri: str) -> Path | None:
    """The database file of an ``sqlite:///`` URI, or ``None`` for other URIs."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    return Path(uri[len(SQLITE_PREFIX):].split("?", 1)[0])


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment's artifacts go: next to a local SQLite database.

    MLflow would otherwise put them in ``./mlruns`` under the *current working
    directory*. ``<db folder>/mlartifacts/<experiment>`` keeps the store
    self-contained. ``None`` (let the server decide) for every other store.
    """
    path = sqlite_path(uri)
    if path is None:
        return None
    safe = re.sub(r"[^\w.-]", "_", experiment).strip("._") or "experiment"
    if safe != experiment:  # keep distinct names distinct after sanitizing
        safe += "-" + hashlib.sha1(experiment.encode()).hexdigest()[:8]
    return (path.absolute().parent / "mlartifacts" / safe).as_uri()


def resolve_tracking_uri(uri: str | None, workspace: str | Path) -> str:
    """Turn the ``--tracking-uri`` option into a URI MLflow 3 accepts.

    ``None`` (or empty) means the local store ``sqlite:///<abs workspace>/mlflow.db``
    (nothing is created here: :func:`check_tracking` does that). Database URIs (``sqlite``, ``postgresql``,
    ``mysql``, ``mssql``), ``http(s)://`` servers and ``databricks`` pass through.
    Relative SQLite paths are made absolute (workers and resumes must find the same
    file). A plain path ending in ``.db`` becomes an absolute ``sqlite:///`` URI; any other
    plain path or ``file:`` URI raises :class:`AdvisorError` (file stores are gone).
    """
    if uri is None or not str(uri).strip():
        return default_tracking_uri(workspace)
    uri = str(uri).strip()
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    base_scheme = scheme.split("+", 1)[0]  # postgresql+psycopg2, mysql+pymysql, ...
    if scheme == "sqlite":
        if not uri.startswith(SQLITE_PREFIX):
            raise AdvisorError(f"SQLite tracking URI {uri!r} is malformed", "use sqlite:///PATH/mlflow.db")
        if sqlite_path(uri) in (Path(":memory:"), Path("")):
            raise AdvisorError(
                "an in-memory SQLite tracking store cannot be shared by the search workers",
                "use sqlite:///PATH/mlflow.db",
            )
        path, query = uri[len(SQLITE_PREFIX):], ""
        if "?" in path:
            path, query = path.split("?", 1)
            query = "?" + query
        # absolute, so worker processes and later resumes find the same file
        return SQLITE_PREFIX + Path(path).expanduser().absolute().as_posix() + query
    if base_scheme in _DB_SCHEMES or scheme in ("http", "https"):
        return uri.rstrip("/") if scheme in ("http", "https") else uri
    if scheme == "databricks" or uri == "databricks":
        return uri
    if scheme == "file":
        raise AdvisorError(f"tracking URI {uri!r} is an MLflow file store", _FILE_STORE_FIX)
    if scheme and len(scheme) > 1:  # "C:" would be a Windows drive, not a scheme
        raise AdvisorError(
            f"tracking URI scheme {scheme!r} is not supported",
            "use sqlite:///PATH/mlflow.db, postgresql://..., mysql://..., http(s)://HOST:PORT or databricks",
        )
    path = Path(uri).expanduser()
    if path.suffix.lower() in (".db", ".sqlite", ".sqlite3"):
        return SQLITE_PREFIX + path.absolute().as_posix()
    raise AdvisorError(
        f"tracking URI {uri!r} is a folder path",
        f"{_FILE_STORE_FIX}; e.g. --tracking-uri {SQLITE_PREFIX}{path.absolute().as_posix()}/{DB_FILENAME}",
    )


def store_to_read(tracking_uri: str | None, workspace: str | Path | None = None) -> str:
    """The tracking URI a search with the same ``--tracking-uri``/``--workspace`` used, checked, for reading it.

    Reading creates nothing: a local SQLite store that does not exist is refused in one line (no workspace,
    no database is made); a server or database that cannot be reached is one line too (:func:`check_tracking`).
    """
    workspace = default_workspace(workspace)
    local = default_tracking_uri(workspace)
    uri = resolve_tracking_uri(tracking_uri, workspace)
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        where = "--workspace" if uri == local else "--tracking-uri"
        raise AdvisorError(f"no MLflow store at {db}",
                           f"run advisor search first, or pass the {where} that the search used")
    check_tracking(uri, local_store=local)
    return uri


def check_tracking(uri: str, timeout: float = 5.0, *, local_store: str | None = None, create: bool = True) -> None:
    """Fail fast, with one :class:`AdvisorError`, if runs cannot be logged to ``uri``.

    * ``http(s)``: one short request to ``/health``, then one to the experiments search endpoint, which
      must answer a JSON object (a web server that answers ``/health`` and 404 elsewhere is not MLflow);
      never goes through MLflow's retrying client.
    * ``sqlite``: the database folder must exist or be creatable, and be writable; an existing file
      must be an SQLite database. With ``create`` the store is then opened once (this creates or
      migrates the schema); without it nothing is created or changed.
    * ``postgresql``/``mysql``/``mssql``: a TCP connection to the host and port.
    * ``databricks``: not checked here (credentials are MLflow's business).

    ``local_store`` (e.g. ``default_tracking_uri(workspace)``) is named in the
    suggested fix ("drop --tracking-uri to use the local store ...").
    """
    hint = _local_hint(local_store) if local_store != uri else "pick another --workspace"
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else uri.lower()
    if scheme in ("http", "https"):
        _check_http(uri.rstrip("/"), timeout, hint)
    elif scheme == "sqlite":
        _check_sqlite(uri, hint, create)
    elif scheme.split("+", 1)[0] in _DB_SCHEMES:
        _check_tcp(uri, _DB_SCHEMES[scheme.split("+", 1)[0]], timeout, hint)


def _local_hint(local_store: str | None) -> str:
    return f"drop --tracking-uri to use the local store {local_store or SQLITE_PREFIX + '<workspace>/' + DB_FILENAME}"


def _unreachable(uri: str, reason: object, hint: str) -> AdvisorError:
    host = urllib.parse.urlsplit(uri)
    host_opt = host.hostname or "127.0.0.1"
    port_opt = host.port or (443 if host.scheme == "https" else 5000)
    return AdvisorError(
        f"MLflow tracking server {uri} is unreachable ({reason})",
        f"start it (mlflow server --host {host_opt} --port {port_opt}) or {hint}",
    )


def _request(url: str, timeout: float) -> tuple[int, bytes]:
    """GET ``url``; the HTTP status (also for 4xx/5xx) and the first MiB of the body. Network failures
    raise ``URLError``, an answer that is not HTTP ``http.client.HTTPException``."""
    headers = {"User-Agent": "advisor-tracking-check"}
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif user and password:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    context = None
    if url.startswith("https") and os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        context = ssl._create_unverified_context()  # the user asked MLflow to skip TLS checks too
    req = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return int(resp.status), resp.read(1 << 20)
    except urllib.error.HTTPError as exc:
        return int(exc.code), b""


def _json_object(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body.decode("utf-8")), dict)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
        return False


def _check_http(uri: str, timeout: float, hint: str) -> None:
    """See :func:`check_tracking`. A server that answers 5xx (it is there, its backend store is not: a restart,
    a database outage) is asked again with backoff for ``ADVISOR_TRACKING_PATIENCE`` seconds."""
    import time

    from advisor.track.retry import patience

    start, delay = time.monotonic(), 1.0
    while True:
        try:
            status, body = _ask_http(uri, timeout, hint)
        except _Busy as busy:  # it accepted the connection but did not answer in time: a busy server
            status, body = 0, b""
            if time.monotonic() - start >= patience():
                raise _unreachable(uri, busy.reason, hint) from None
        spent = time.monotonic() - start
        if 0 < status < 500 or spent >= patience():
            break
        time.sleep(min(delay, max(0.1, patience() - spent)))
        delay = min(2 * delay, 30.0)
    if status >= 500:
        raise AdvisorError(f"MLflow tracking server {uri} answered HTTP {status} for {spent:.0f} s (its backend "
                           f"store may be down)", "check the server's log and its database, or " + hint)
    _check_answer(uri, status, body, hint)


class _Busy(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _ask_http(uri: str, timeout: float, hint: str) -> tuple[int, bytes]:
    try:
        _request(f"{uri}/health", timeout)  # a proxy may lack /health: the API below decides
        return _request(f"{uri}/api/2.0/mlflow/experiments/search?max_results=1", timeout)
    except TimeoutError:  # connected, no answer in time (a connect timeout is a URLError below)
        raise _Busy("timed out") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise _unreachable(uri, getattr(reason, "strerror", None) or reason, hint) from None
    except http.client.HTTPException as exc:  # it answered, but not in HTTP
        raise AdvisorError(f"{uri} is not an MLflow tracking server (its answer is not HTTP: "
                           f"{type(exc).__name__})", "check the URL and port, or " + hint) from None
    except (OSError, ValueError) as exc:  # socket timeout, malformed URL, ...
        raise _unreachable(uri, str(exc) or type(exc).__name__, hint) from None


def _check_answer(uri: str, status: int, body: bytes, hint: str) -> None:
    if status in (401, 403):
        raise AdvisorError(
            f"MLflow tracking server {uri} refused access (HTTP {status})",
            "set MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN, or " + hint,
        )
    if not 200 <= status < 300 or not _json_object(body):
        what = f"HTTP {status}" if not 200 <= status < 300 else "something that is not MLflow's JSON"
        raise AdvisorError(
            f"{uri} answered {what} to MLflow's experiments API and does not look like an MLflow tracking server",
            "check the URL (e.g. http://HOST:5000 without a path) or " + hint,
        )


def _check_tcp(uri: str, default_port: int, timeout: float, hint: str) -> None:
    check_tcp(uri, default_port, timeout, "tracking database", f"start the database or {hint}")


def check_tcp(uri: str, default_port: int, timeout: float, what: str, fix: str) -> None:
    """One TCP connection to the host and port of database URL ``uri``; AdvisorError naming ``what`` if it fails."""
    parts = urllib.parse.urlsplit(uri)
    try:
        host, port = parts.hostname, parts.port or default_port
    except ValueError as exc:  # a port that is not a number
        raise AdvisorError(f"{what} URL {uri} is malformed ({exc})", fix) from None
    if not host:
        return  # unix socket or driver-specific form: leave it to the driver
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise AdvisorError(f"{what} {host}:{port} is unreachable ({exc.strerror or exc})", fix) from None


#: The first bytes of every SQLite 3 database file.
_SQLITE_HEADER = b"SQLite format 3\x00"


def _check_sqlite(uri: str, hint: str, create: bool = True) -> None:
    path = sqlite_path(uri)
    if path is None:
        raise AdvisorError(f"SQLite tracking URI {uri!r} is malformed", "use sqlite:///PATH/mlflow.db")
    folder = path.absolute().parent
    fix = f"pick a writable location, e.g. --tracking-uri {SQLITE_PREFIX}/tmp/advisor/{DB_FILENAME}, or {hint}"
    if path.exists():
        check_sqlite_file(path.absolute(), fix)
    if not create:
        check_creatable(folder, "the tracking database folder", fix)
        if not path.exists() and not writable(_existing_ancestor(folder)):
            raise AdvisorError(f"tracking database {path.absolute()} cannot be created (its folder is not writable)",
                               fix)
        if path.exists() and (not writable(folder) or not os.access(path, os.W_OK)):
            raise AdvisorError(f"tracking database {path.absolute()} is not writable", fix)
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AdvisorError(
            f"cannot create the tracking database folder {folder} ({exc.strerror or exc})", fix
        ) from None
    if not writable(folder) or (path.exists() and not os.access(path, os.W_OK)):
        raise AdvisorError(f"tracking database {path.absolute()} is not writable", fix)
    try:
        from mlflow import MlflowClient

        with file_lock(path.absolute()):  # processes started together: one creates (migrates) the schema
            MlflowClient(uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any store failure becomes one clear line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise AdvisorError(
            f"cannot open the MLflow tracking database {path.absolute()} ({first[:300]})",
            f"delete or move the file if it is not an MLflow database, or {fix}",
        ) from None


@contextlib.contextmanager
def file_lock(path: Path):
    """An exclusive ``flock`` for the ``with`` block on a lock file named after ``path``'s absolute path, in this
    machine's temporary folder (``<tmp>/advisor-locks-UID/``): processes on this machine that create or change the same
    file take turns, and the user's folders get no lock files (a refused command leaves nothing behind). Released
    when the process dies."""
    import fcntl

    folder = Path(tempfile.gettempdir()) / f"advisor-locks-{os.getuid()}"
    folder.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(str(Path(path).absolute()).encode()).hexdigest()[:24]
    with open(folder / f"{Path(path).name[:40]}-{key}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def check_sqlite_file(path: Path, fix: str, what: str = "tracking database") -> None:
    """An existing file must be an SQLite database (or empty, which SQLite makes one): checked by its header."""
    if not path.is_file():
        raise AdvisorError(f"{what} {path} is not a file", fix)
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise AdvisorError(f"cannot read the {what} {path} ({exc.strerror or exc})", fix) from None
    if head and head != _SQLITE_HEADER:
        raise AdvisorError(f"{path} is not an SQLite database", f"delete or move the file if it is not yours, or {fix}")


def _existing_ancestor(folder: Path) -> Path:
    """``folder`` or the closest of its parents that exists."""
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_creatable(folder: Path, what: str, fix: str) -> None:
    """``folder`` exists as a folder, or could be created: its closest existing ancestor is a folder."""
    ancestor = _existing_ancestor(folder)
    if not ancestor.is_dir():
        raise AdvisorError(f"cannot create {what} {folder} ({ancestor} is not a folder)", fix)


def writable(folder: Path) -> bool:
    """Whether a file can really be created in ``folder`` (``os.access`` lies for root)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".advisor-write-check-"):
            return True
    except OSError:
        return False
