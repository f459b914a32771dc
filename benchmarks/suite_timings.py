"""Timings the test suite used to assert, measured in one run and printed against their old limits.

Wall-clock limits depend on the machine and its load, so the tests check the behaviour behind each
(no download attempted, one bounded request, no data loaded before an argument error) and the times
themselves are measured here:

1. Preprocess of a 28x28 greyscale image to 3x224x224 (was ``< 1 ms`` per image in
   tests/data/test_data_transforms.py).
2. ``advisor search`` stopping on an unreachable ``--tracking-uri`` (was ``< 20 s``) and on a bad
   ``--split`` (was ``< 5 s``), in tests/search/test_search_study.py; timed here as fresh processes,
   imports included, as a user meets them.
3. A missing pretrained file on an offline machine: torchvision resnet18 with the connectivity check
   answering "unreachable", timm resnet18, then resnet18 with the real check (each was ``< 10 s`` in
   tests/models/test_models_errors.py; the first torchvision and the first timm call pay their imports).
4. ``check_tracking`` of an unreachable MLflow server (was ``< 10 s`` in tests/track/test_track.py).
5. A refused ``advisor search`` (a bad search-space YAML, a dead PostgreSQL storage, an unknown storage
   scheme, a web server that is not MLflow) as a fresh process, divided by ``python -c "import torch"``
   measured in the same run (issue 19: a refusal comes in about the time importing torch takes, and
   creates nothing -- the row says whether its workspace stayed absent).

    .venv/bin/python benchmarks/suite_timings.py [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SPACE = """\
strategy: last_k
params:
  k: {type: int, low: 1, high: 3}
  head_lr: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}
  epochs: 3
"""


def preprocess_ms(n: int = 200) -> float:
    """Milliseconds per 28x28 -> 3x224x224 image (after 20 warm-up calls)."""
    import numpy as np
    from PIL import Image

    from advisor.data import Preprocess

    p = Preprocess(256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8))
    for _ in range(20):
        p(img)
    t = time.perf_counter()
    for _ in range(n):
        p(img)
    return (time.perf_counter() - t) / n * 1e3


def cli_seconds(tmp: Path, name: str, *extra: str) -> tuple[float, int, str]:
    """Wall time, exit code and last stderr line of a fresh ``advisor search`` process."""
    tmp.mkdir(parents=True, exist_ok=True)
    space = tmp / "space.yaml"
    space.write_text(SPACE)
    cmd = [sys.executable, "-m", "advisor.cli", "search", "digits:30", "--strategy", "last_k", "--space", str(space),
           "--trials", "2", "--image-size", "32", "--workspace", str(tmp / "ws"), "--cache-dir", str(tmp / "cache"),
           "--study-name", name, "--pruner", "none", "--quiet", *extra]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t
    lines = proc.stderr.strip().splitlines()
    return seconds, proc.returncode, lines[-1] if lines else ""


def import_torch_seconds(repeat: int = 3) -> float:
    """The fastest of ``repeat`` fresh ``python -c "import torch"`` processes (the yardstick of section 5)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True, capture_output=True)
        best = min(best, time.perf_counter() - t)
    return best


def refusals(tmp: Path, torch_s: float) -> list[tuple[str, float, float, str]]:
    """Section 5: each refusal's wall time as a ratio to importing torch (the old limit column is 1.0)."""
    import http.server
    import socket
    import threading

    class NotMlflow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotMlflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    bad_space = tmp / "bad.yaml"
    tmp.mkdir(parents=True, exist_ok=True)
    bad_space.write_text("strategy: !!python/name:os.system\n")
    cases = [("bad search-space YAML", ["--space", str(bad_space)]),
             ("dead PostgreSQL storage", ["--storage", f"postgresql://u@127.0.0.1:{dead}/db"]),
             ("unknown storage scheme", ["--storage", "redis://127.0.0.1/0"]),
             ("web server that is not MLflow", ["--tracking-uri", f"http://127.0.0.1:{server.server_address[1]}"])]
    rows = []
    try:
        for i, (name, extra) in enumerate(cases):
            s, code, line = cli_seconds(tmp / f"r{i}", f"refuse{i}", *extra)
            created = "nothing created" if not (tmp / f"r{i}" / "ws").exists() else "WORKSPACE CREATED"
            rows.append((f"refused search, {name} / import torch (ratio)", s / torch_s, 1.0,
                         f"{s:.2f} s, {created}, exit {code}: {line}"))
    finally:
        server.shutdown()
        server.server_close()
    return rows


def timed_error(fn) -> tuple[float, str]:
    """Seconds until ``fn()`` raises AdvisorError, and its first line (raises if it does not)."""
    from advisor.errors import AdvisorError

    t = time.perf_counter()
    try:
        fn()
    except AdvisorError as e:
        return time.perf_counter() - t, str(e).splitlines()[0]
    raise RuntimeError(f"{fn} did not fail")


def missing_weights(tmp: Path) -> list[tuple[str, float, float, str]]:
    import torch.hub
    from huggingface_hub import constants

    import advisor.models._weights as weights_mod
    from advisor.models import create_backbone

    tmp.mkdir(parents=True, exist_ok=True)
    os.environ["TORCH_HOME"] = str(tmp / "torch_home")
    torch.hub._hub_dir = None
    constants.HF_HUB_CACHE = str(tmp / "hf")
    real = weights_mod.host_reachable
    rows = []
    try:
        weights_mod.host_reachable = lambda *a, **k: False
        s, msg = timed_error(lambda: create_backbone("resnet18"))
        rows.append(("missing resnet18 file, check says offline", s, 10.0, msg))
        s, msg = timed_error(lambda: create_backbone("timm:resnet18"))
        rows.append(("missing timm:resnet18, check says offline", s, 10.0, msg))
    finally:
        weights_mod.host_reachable = real
    s, msg = timed_error(lambda: create_backbone("resnet18"))
    rows.append(("missing resnet18 file, downloads off (the default)", s, 10.0, msg))
    os.environ["HF_HUB_OFFLINE"] = "0"  # the user allows downloads: the real connectivity check runs
    if real("download.pytorch.org"):
        rows.append(("missing resnet18 file, real check", float("nan"), 10.0, "skipped: network reachable"))
    else:
        s, msg = timed_error(lambda: create_backbone("resnet18"))
        rows.append(("missing resnet18 file, real check", s, 10.0, msg))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None, help="also write the rows here")
    a = ap.parse_args()

    rows: list[tuple[str, float, float, str]] = []
    ms = preprocess_ms()
    rows.append(("preprocess 28x28 -> 224x224 (ms per image)", ms, 1.0, ""))
    with tempfile.TemporaryDirectory() as tmp:
        s, code, line = cli_seconds(Path(tmp) / "a", "dead", "--tracking-uri", "http://127.0.0.1:9")
        rows.append(("advisor search, unreachable --tracking-uri (s)", s, 20.0, f"exit {code}: {line}"))
        s, code, line = cli_seconds(Path(tmp) / "b", "badsplit", "--split", "0.5,0.5")
        rows.append(("advisor search, bad --split (s)", s, 5.0, f"exit {code}: {line}"))
        rows += [(name + " (s)", s, limit, msg) for name, s, limit, msg in missing_weights(Path(tmp) / "c")]
        torch_s = import_torch_seconds()
        rows.append(("python -c 'import torch' (s)", torch_s, float("nan"), "the yardstick of the ratios below"))
        rows += refusals(Path(tmp) / "d", torch_s)

    from advisor.track import check_tracking

    s, msg = timed_error(lambda: check_tracking("http://127.0.0.1:9", timeout=2.0))
    rows.append(("check_tracking, unreachable server, timeout 2 s (s)", s, 10.0, msg))

    width = max(len(r[0]) for r in rows)
    print(f"{'timing':<{width}}  {'measured':>9}  {'old limit':>9}  {'ratio':>6}")
    for name, value, limit, note in rows:
        print(f"{name:<{width}}  {value:9.3f}  {limit:9.3f}  {value / limit:6.3f}  {note[:90]}")
    if a.json:
        Path(a.json).write_text(json.dumps([{"timing": n, "measured": None if v != v else v, "old_limit": lim,
                                             "note": note}
                                            for n, v, lim, note in rows], indent=2) + "\n")


if __name__ == "__main__":
    main()
