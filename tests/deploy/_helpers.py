"""Helpers shared by the deployment tests: real image files, the CLI's predict, and `mlflow models serve`
started on a loopback port and queried over HTTP."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from advisor.cli import main

ROOT = Path(__file__).resolve().parents[2]


def png(array: np.ndarray, path: Path) -> Path:
    from PIL import Image

    Image.fromarray(array).save(path)
    return path


def digit_images(n: int, offset: int = 0):
    """sklearn digits 8x8 (0..16) as uint8 greyscale, with their labels (the last images, not used by digits:30)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = np.arange(len(d.target) - offset - n, len(d.target) - offset)
    return (d.images[idx] * (255.0 / 16.0)).round().astype(np.uint8), d.target[idx]


def labelled_folder(folder: Path, images, labels) -> Path:
    """One sub-folder per label, one PNG per image."""
    for k, (img, y) in enumerate(zip(images, labels)):
        (folder / str(y)).mkdir(parents=True, exist_ok=True)
        png(img, folder / str(y) / f"{k:03d}.png")
    return folder


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def predict(model_args: list[str], data, out: Path, *extra: str) -> list[dict] | None:
    """``advisor predict MODEL DATA --out OUT --quiet EXTRA...`` in this process; the CSV's rows."""
    code = main(["predict", *model_args, str(data), "--out", str(out), "--quiet", *extra])
    assert code == 0
    return rows(out) if out.suffix == ".csv" else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def skip_without_serving() -> None:
    import importlib.util

    missing = [m for m in ("uvicorn", "fastapi") if importlib.util.find_spec(m) is None]
    if missing:  # both are MLflow's own dependencies; a trimmed install can lack them
        pytest.skip(f"mlflow models serve needs {', '.join(missing)}, not installed here")


@contextlib.contextmanager
def serving(model_uri: str, tracking_uri: str, log_path: Path, timeout: float = 240):
    """``mlflow models serve -m MODEL_URI`` on a free loopback port (this checkout on PYTHONPATH, one torch
    thread), waited for until ``/ping`` answers; yields ``post(payload) -> predictions``. The server's
    process group is ended on the way out."""
    port = free_port()
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PATH": bindir + os.pathsep + os.environ["PATH"],
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
                             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, log_path.read_text()[-2000:]
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).status == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            assert time.monotonic() < deadline, f"server did not answer /ping in {timeout:g} s"
            time.sleep(1)

        def post(payload):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", json.dumps(payload).encode(),
                                         {"Content-Type": "application/json"})
            return json.loads(urllib.request.urlopen(req, timeout=120).read())["predictions"]

        yield post
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def images_payloads(files: list[Path]) -> tuple[dict, dict]:
    """The same files as a ``dataframe_split`` of base64 bytes and as ``dataframe_records`` of paths."""
    import base64

    as_bytes = {"dataframe_split": {"columns": ["image"],
                                    "data": [[base64.b64encode(f.read_bytes()).decode()] for f in files]}}
    as_paths = {"dataframe_records": [{"path": str(f)} for f in files]}
    return as_bytes, as_paths
