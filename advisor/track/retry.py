"""Patience with a tracking server that is briefly gone: retry with backoff, then one line.

Against an ``http(s)://`` tracking server (``mlflow server``), every call our
:class:`~advisor.track.study_runs.StudyTracker` makes goes through :class:`PatientClient`: a call
that fails because the server cannot be reached (connection refused or reset, a timeout, a 5xx
answer while it restarts or its database is down) is tried again after 1, 2, 4, 8, 16, 30, 30 ...
seconds until :func:`patience` seconds have passed; then :class:`TrackingUnavailable` (an
:class:`~advisor.errors.AdvisorError`: one line, exit 2). Any other error (a bad parameter, a
missing run) is raised at once. Local stores (``sqlite:///``) are not wrapped: there is no server
to wait for.

MLflow's own HTTP client would retry a refused connection 7 times with backoff (about 4 minutes)
before it raises, and prints "View run ... at: URL" for every run it ends. :func:`quiet_http_defaults`
sets ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=0`` (our backoff decides instead), a 30 s request timeout and
``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT=true`` -- each only when the user has not set it. The
search prints the run links once, in its own summary.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from advisor.errors import AdvisorError

#: Seconds a tracking server may stay unreachable before the search gives up (``ADVISOR_TRACKING_PATIENCE``).
DEFAULT_PATIENCE = 120.0
_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
_TRANSIENT_CODES = {"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "DEADLINE_EXCEEDED"}
_TRANSIENT_TEXT = ("max retries exceeded", "connection refused", "connection reset", "connection aborted",
                   "remotedisconnected", "timed out", "read timeout", "bad gateway", "service unavailable",
                   "gateway timeout", "server error", "operationalerror", "name or service not known",
                   "could not connect", "connection to server", "server closed the connection")
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
                  "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}


class TrackingUnavailable(AdvisorError):
    """The tracking server stayed unreachable for longer than the patience."""


def patience() -> float:
    """Seconds to keep retrying: ``ADVISOR_TRACKING_PATIENCE`` or :data:`DEFAULT_PATIENCE`."""
    raw = os.environ.get("ADVISOR_TRACKING_PATIENCE", "").strip()
    if not raw:
        return DEFAULT_PATIENCE
    try:
        value = float(raw)
    except ValueError:
        raise AdvisorError(f"bad ADVISOR_TRACKING_PATIENCE {raw!r}", "use a number of seconds, e.g. 120") from None
    if value < 0:
        raise AdvisorError(f"bad ADVISOR_TRACKING_PATIENCE {raw!r}", "use 0 or more seconds, e.g. 120")
    return value


def is_http(uri: str) -> bool:
    return str(uri).lower().startswith(("http://", "https://"))


def quiet_http_defaults(uri: str) -> None:
    """For an HTTP tracking URI: MLflow's own retries off, a shorter timeout, no "View run" lines (setdefault;
    spawned worker processes inherit them)."""
    if is_http(uri):
        for name, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)


def is_transient(e: BaseException) -> bool:
    """Whether ``e`` says the server could not be reached or answered a server-side error (worth a retry)."""
    try:
        import requests

        if isinstance(e, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            return True
    except ImportError:  # pragma: no cover - MLflow depends on requests
        pass
    if isinstance(e, (ConnectionError, TimeoutError)):
        return True
    text = f"{type(e).__name__}: {e}".lower()
    code = str(getattr(e, "error_code", "") or "")
    if code and code not in _TRANSIENT_CODES:
        return False
    return any(t in text for t in _TRANSIENT_TEXT) or code in ("TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED")


def call_patiently(fn: Callable[..., Any], *args, uri: str = "", what: str = "", wait: float | None = None,
                   sleep: Callable[[float], None] = time.sleep, **kwargs) -> Any:
    """``fn(*args, **kwargs)``, retried with backoff while it fails with a transient error, for at most ``wait``
    seconds (:func:`patience` by default); then :class:`TrackingUnavailable`."""
    wait = patience() if wait is None else wait
    start, attempt = time.monotonic(), 0
    while True:
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - sorted below: transient errors retried, others raised
            if isinstance(e, TrackingUnavailable) or not is_transient(e):
                raise
            spent = time.monotonic() - start
            if spent >= wait:
                first = (" ".join(str(e).split()) or type(e).__name__)[:160]
                raise TrackingUnavailable(
                    f"MLflow tracking server {uri or '?'} unreachable for {spent:.0f} s"
                    f"{' while ' + what if what else ''} ({first})",
                    "start it again and rerun the same command: the study keeps every finished trial and "
                    "their runs are logged then (ADVISOR_TRACKING_PATIENCE sets how long to wait)") from None
            sleep(min(_DELAYS[min(attempt, len(_DELAYS) - 1)], max(0.0, wait - spent)) or 0.1)
            attempt += 1


class PatientClient:
    """An ``MlflowClient`` whose every method is called through :func:`call_patiently`."""

    def __init__(self, client: Any, uri: str, wait: float | None = None):
        self._client = client
        self._uri = uri
        self._wait = wait

    @property
    def tracking_uri(self) -> str:
        return self._client.tracking_uri

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def patient(*args, **kwargs):
            return call_patiently(attr, *args, uri=self._uri, what=name.replace("_", " "), wait=self._wait, **kwargs)

        return patient


def patient_client(client: Any, uri: str) -> Any:
    """``client`` wrapped in :class:`PatientClient` for an HTTP tracking server, else ``client`` itself."""
    return PatientClient(client, uri) if is_http(uri) else client
