"""The many-hosts rehearsal, small (benchmarks/many_hosts.py): PostgreSQL and ``mlflow server`` started here,
two ``advisor search`` hosts that share only their URLs, every kind of fault once; the rehearsal's own checks
against both stores must all pass. About 2-3 minutes; skipped, saying why, where PostgreSQL or MLflow's
server cannot run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HAVE_PG = bool(list(Path("/usr/lib/postgresql").glob("*/bin/initdb")))
HAVE_MLFLOW = Path(sys.executable).with_name("mlflow").exists()
ROOT_WITHOUT_POSTGRES_USER = os.geteuid() == 0 and shutil.which("runuser") is None


@pytest.mark.skipif(not HAVE_PG or not HAVE_MLFLOW or ROOT_WITHOUT_POSTGRES_USER,
                    reason="needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin) and the mlflow CLI")
def test_two_hosts_through_every_fault_finish_the_study_exactly_once(tmp_path):
    out = tmp_path / "rehearsal.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "many_hosts.py"), "--hosts", "2", "--workers",
                          "2,1", "--trials", "6", "--seed", "3", "--no-baseline", "--json", str(out)],
                         cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["pass"] and all(c["ok"] for c in result["checks"])
    assert "fault schedule (finished trials: fault): " in run.stdout
    for fault in ("kill-worker", "kill-host", "restart-mlflow", "stop-postgres"):
        assert any(f": {fault}: " in e for e in result["events"]), result["events"]
    assert sorted(result["endings"].values()).count("refit") == 1
    assert result["peak_connections"]["total"] <= result["max_connections"]
