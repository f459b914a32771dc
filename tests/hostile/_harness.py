"""The hostile-input matrix's one harness: run ``advisor`` as a user would, in a fresh process, and check
what a refusal must look like.

Every case asserts (issue 19, "How to prove it"):
- exit status 2;
- exactly one line on stderr, ours (``advisor: error: ...``), and no traceback anywhere;
- what must not exist afterwards (temporary files, new stores);
- that the stores it pointed at are byte-identical.

Good paths stand beside the bad ones (``run_ok``), so the matrix cannot pass by everything failing.

The command runs as ``python -m advisor.cli`` with ``PYTHONPATH`` set to this checkout, so the code
under test is this tree's, whatever is installed. Pass ``--quiet`` where a command has it: a progress
bar is not an error line.
"""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TMP_PATTERNS = ("*.tmp", ".*.tmp", "*.tmp*", ".*.tmp*")


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def advisor_env(extra: dict | None = None, drop: tuple[str, ...] = ()) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["COLUMNS"] = "200"  # rich wraps long lines at the terminal width; one line must stay one line
    for k in drop:
        env.pop(k, None)
    env.update(extra or {})
    return env


def run_advisor(args: list[str], *, cwd: str | Path | None = None, env: dict | None = None,
                fsize_limit: int | None = None, timeout: float = 900, python: list[str] | None = None) -> Outcome:
    """``advisor ARGS`` in a new process; ``fsize_limit`` caps the bytes any file it writes may reach
    (``RLIMIT_FSIZE``: a write past it fails with EFBIG, as a full disk fails with ENOSPC)."""
    def limit():
        if fsize_limit is not None:
            import signal

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write (EFBIG), do not kill the process
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))

    cmd = (python or [sys.executable, "-m", "advisor.cli"]) + [str(a) for a in args]
    r = subprocess.run(cmd, cwd=str(cwd) if cwd else None, env=env or advisor_env(), capture_output=True,
                       text=True, timeout=timeout, preexec_fn=limit)
    return Outcome(r.returncode, r.stdout, r.stderr)


def assert_refused(out: Outcome, *needles: str) -> str:
    """Exit 2, one line on stderr that is ours and names every needle, no traceback."""
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout, out.stderr[-3000:]
    assert out.code == 2, f"exit {out.code}\nstdout: {out.stdout[-2000:]}\nstderr: {out.stderr[-3000:]}"
    lines = out.err_lines
    assert len(lines) == 1, f"{len(lines)} lines on stderr:\n{out.stderr[-3000:]}"
    line = lines[0]
    assert line.startswith("advisor: error: "), line
    for n in needles:
        assert n.lower() in line.lower(), f"{n!r} not in {line!r}"
    return line


def assert_ok(out: Outcome) -> Outcome:
    assert out.code == 0, f"exit {out.code}\nstdout: {out.stdout[-2000:]}\nstderr: {out.stderr[-3000:]}"
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    return out


def snapshot(*paths: str | Path) -> dict[str, str]:
    """sha256 of every file under ``paths`` (files or folders), by path; a missing path records as absent."""
    out: dict[str, str] = {}
    for p in map(Path, paths):
        if p.is_file():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and not f.is_symlink():
                    out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
        else:
            out[str(p)] = "<absent>"
    return out


def assert_unchanged(before: dict[str, str], *paths: str | Path) -> None:
    after = snapshot(*paths)
    assert after == before, {k: (before.get(k), after.get(k)) for k in set(before) | set(after)
                             if before.get(k) != after.get(k)}


def leftovers(folder: str | Path) -> list[Path]:
    """Temporary files anywhere under ``folder``."""
    found: set[Path] = set()
    for pat in TMP_PATTERNS:
        found.update(Path(folder).rglob(pat))
    return sorted(found)


def assert_no_leftovers(folder: str | Path) -> None:
    left = leftovers(folder)
    assert not left, f"left behind: {left}"
