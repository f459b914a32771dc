"""Issue 19, sections 2 and 4: no network call the user did not ask for, and tracking servers that are not
what they claim (a web server that answers /health and 404 elsewhere, one that answers garbage, one that
does not speak HTTP, a dead port).

The network cases run ``advisor`` with an audit hook on ``socket.connect`` and ``socket.getaddrinfo``
installed by a ``sitecustomize`` module on ``PYTHONPATH``, so every Python process of the command (the
CLI, MLflow's helpers, search workers) records where it tried to go -- and is stopped there, so a
regression is seen without anything leaving the machine. These commands are given no server, so any
internet-family destination at all is a call nobody asked for. The environment is a user's: the
test runner's CI markers (which MLflow takes as "do not send telemetry") and advisor's own switches are
removed, so the defaults under test are advisor's.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.hostile._harness import advisor_env, assert_no_leftovers, assert_ok, assert_refused, run_advisor

#: Variables by which MLflow decides it runs in CI or a test (then it sends nothing by itself), and the
#: switches advisor sets: a user's shell has none of them.
USER_DROPS = ("PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "CIRCLECI", "GITLAB_CI", "JENKINS_URL", "TRAVIS",
              "TF_BUILD", "BITBUCKET_BUILD_NUMBER", "CODEBUILD_BUILD_ARN", "BUILDKITE", "TEAMCITY_VERSION",
              "CLOUD_RUN_EXECUTION", "RUNBOT_HOST_URL", "RUNBOT_BUILD_NAME", "RUNBOT_WORKER_ID",
              "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "HF_HUB_DISABLE_TELEMETRY", "HF_HUB_OFFLINE",
              "MLFLOW_TRACKING_URI")
SWITCHES = ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "HF_HUB_DISABLE_TELEMETRY", "HF_HUB_OFFLINE")

AUDIT = '''
import json, os, sys

_LOG = os.environ["ADVISOR_TEST_AUDIT_LOG"]


def _hook(event, args):
    if event not in ("socket.connect", "socket.getaddrinfo"):
        return
    where = args[1] if event == "socket.connect" else [args[0], args[1]]
    try:
        where = json.loads(json.dumps(where, default=str))
    except Exception:
        where = repr(where)
    if isinstance(where, str):  # a local (AF_UNIX) socket
        return
    with open(_LOG, "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "event": event, "where": where}) + "\\n")
    raise OSError("advisor test: no network")  # recorded, and nothing leaves this machine


sys.addaudithook(_hook)
'''

def _user_env(tmp_path: Path, extra: dict | None = None) -> tuple[dict, Path]:
    hook_dir = tmp_path / "audit"
    hook_dir.mkdir(exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(AUDIT)
    log = tmp_path / "audit.jsonl"
    env = advisor_env(drop=USER_DROPS)
    env["PYTHONPATH"] = str(hook_dir) + os.pathsep + env["PYTHONPATH"]
    env["ADVISOR_TEST_AUDIT_LOG"] = str(log)
    env.update(extra or {})
    return env, log


def _events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


# ------------------------------------------------------------------ section 2: no call home
def test_analyze_calls_nobody(tmp_path):
    env, log = _user_env(tmp_path)
    out = run_advisor(["analyze", "digits:10", "--image-size", "32", "--sample", "60", "--check", "off",
                       "--weights", "random", "--quiet"], cwd=tmp_path, env=env)
    assert_ok(out)
    assert _events(log) == []


def test_one_trial_search_calls_nobody(tmp_path):
    """The whole search -- MLflow imported, its database created, a trial, the refit, the model logged (MLflow
    inspects the model in a child process, which the hook covers too) -- opens no connection and looks up
    no name."""
    env, log = _user_env(tmp_path)
    out = run_advisor(["search", "digits:10", "--strategy", "linear_probe", "--trials", "1", "--image-size", "32",
                       "--weights", "random", "--workspace", tmp_path / "ws", "--cache-dir", tmp_path / "cache",
                       "--pruner", "none", "--quiet"], cwd=tmp_path, env=env)
    assert_ok(out)
    assert (tmp_path / "ws" / "mlflow.db").is_file()  # it ran through MLflow
    assert _events(log) == []


def _seen_env(env: dict) -> dict:
    code = ("import json, os; import advisor; import advisor.search._workers; "
            f"print(json.dumps({{k: os.environ.get(k) for k in {list(SWITCHES)!r}}}))")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_switches_are_defaults_and_a_users_choice_stands(tmp_path):
    env, _ = _user_env(tmp_path)
    assert _seen_env(env) == {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                              "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1"}
    # the user wants MLflow's telemetry: advisor adds no DO_NOT_TRACK that would silence it
    seen = _seen_env({**env, "MLFLOW_DISABLE_TELEMETRY": "false"})
    assert seen["MLFLOW_DISABLE_TELEMETRY"] == "false" and seen["DO_NOT_TRACK"] is None
    seen = _seen_env({**env, "DO_NOT_TRACK": "0", "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "0"})
    assert seen == {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "0", "HF_HUB_DISABLE_TELEMETRY": "0",
                    "HF_HUB_OFFLINE": "0"}


def test_mlflow_imported_first_is_told_again(tmp_path):
    """A script that imports MLflow before advisor: the telemetry client MLflow started is dropped."""
    env, _ = _user_env(tmp_path)
    code = ("import mlflow; from mlflow.telemetry import get_telemetry_client as g; before = g() is not None; "
            "import advisor; print(before, g() is None)")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True"]  # MLflow had started one, advisor's switches removed it


# ------------------------------------------------------------------ section 4: servers that are not MLflow
class _NotMlflow(http.server.BaseHTTPRequestHandler):
    """``/health`` 200, everything else 404: a web server, not MLflow."""

    def do_GET(self):  # noqa: N802
        ok = self.path == "/health"
        self.send_response(200 if ok else 404)
        self.end_headers()
        self.wfile.write(b"OK" if ok else b"not found")

    do_POST = do_GET  # noqa: N815

    def log_message(self, *a):
        pass


class _Garbage(_NotMlflow):
    """200 and bytes that are not JSON to every request."""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"\x00\xffgarbage<html>")

    do_POST = do_GET  # noqa: N815


class _NotHttp(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b"\xff\xfe\x00 SSH-2.0-definitely-not-http\r\n\r\n")


@pytest.fixture(scope="module")
def servers():
    made = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotMlflow),
            http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Garbage),
            socketserver.ThreadingTCPServer(("127.0.0.1", 0), _NotHttp)]
    for s in made:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # closed when this block ends: nothing listens there
    urls = {"not-mlflow": f"http://127.0.0.1:{made[0].server_address[1]}",
            "garbage": f"http://127.0.0.1:{made[1].server_address[1]}",
            "not-http": f"http://127.0.0.1:{made[2].server_address[1]}",
            "dead": f"http://127.0.0.1:{dead}"}
    yield urls
    for s in made:
        s.shutdown()
        s.server_close()


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


NEEDLES = {"not-mlflow": "does not look like an MLflow tracking server",
           "garbage": "does not look like an MLflow tracking server",
           "not-http": "not an MLflow tracking server", "dead": "unreachable"}


@pytest.mark.parametrize("kind", ["not-mlflow", "garbage", "not-http", "dead"])
def test_search_refuses_a_tracking_server_that_is_not_mlflow(tmp_path, servers, kind):
    before = _tree(tmp_path)
    out = run_advisor(["search", "digits:10", "--strategy", "linear_probe", "--trials", "1", "--image-size", "32",
                       "--weights", "random", "--workspace", tmp_path / "ws", "--cache-dir", tmp_path / "cache",
                       "--tracking-uri", servers[kind], "--quiet"], cwd=tmp_path)
    assert_refused(out, servers[kind], NEEDLES[kind])
    assert _tree(tmp_path) == before  # no workspace, no journal, no study
    assert_no_leftovers(tmp_path)


@pytest.mark.parametrize("kind", ["not-mlflow", "garbage", "dead"])
def test_report_refuses_a_tracking_server_that_is_not_mlflow(tmp_path, servers, kind):
    before = _tree(tmp_path)
    out = run_advisor(["report", "--experiment", "e", "--tracking-uri", servers[kind], "--out", tmp_path / "r"],
                      cwd=tmp_path)
    assert_refused(out, servers[kind], NEEDLES[kind])
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("kind", ["not-mlflow", "dead"])
def test_predict_refuses_a_tracking_server_that_is_not_mlflow(tmp_path, servers, kind):
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    before = _tree(tmp_path)
    out = run_advisor(["predict", "--experiment", "e", "--tracking-uri", servers[kind], data,
                       "--out", tmp_path / "p.csv"], cwd=tmp_path)
    assert_refused(out, servers[kind], NEEDLES[kind])
    assert _tree(tmp_path) == before
