"""File locks between processes and between threads of one process (``flock``; ``filelock`` on Windows)."""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: exclusive locks only, through filelock
    fcntl = None


class _Lock:
    """A lock on the file ``path``, between processes and between threads of one process.

    ``shared``: readers share it, writers (``shared=False``) hold it alone. Every acquisition opens
    the file anew (flock locks belong to the open file, so two threads conflict like two processes).
    The file may be removed by whoever holds it exclusively (eviction); a waiter that then gets the
    lock of the removed file notices (another inode at the path, or none) and locks the path again.
    """

    def __init__(self, path: Path, shared: bool = False, blocking: bool = True):
        self.path, self.shared, self.blocking = Path(path), shared, blocking
        self._fd: int | None = None
        self._fallback = None

    def acquire(self) -> bool:
        if fcntl is None:  # pragma: no cover
            from filelock import FileLock, Timeout

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fallback = FileLock(str(self.path), timeout=-1 if self.blocking else 0)
            try:
                self._fallback.acquire()
            except Timeout:
                self._fallback = None
                return False
            return True
        flags = (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | (0 if self.blocking else fcntl.LOCK_NB)
        while True:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except FileNotFoundError:  # the folder was removed between the two calls
                continue
            try:
                fcntl.flock(fd, flags)
            except BlockingIOError:
                os.close(fd)
                return False
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return True
            os.close(fd)  # removed while we waited: lock the file now at the path

    def release(self) -> None:
        if self._fallback is not None:  # pragma: no cover
            self._fallback.release()
            self._fallback = None
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor of the open file releases the flock
            self._fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
