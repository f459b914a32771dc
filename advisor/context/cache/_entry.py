"""One entry on disk, under ``root/<key[:2]>/<key>/`` (see :mod:`advisor.context.cache`): its files, its
lock, and what ``advisor cache info`` shows of it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

#: Bumped whenever the on-disk layout, the key or the meaning of a stored value changes.
FORMAT_VERSION = 2

_FILES = ("data.npy", "done.npy", "meta.json", "used")


class _Entry:
    __slots__ = ("key", "dir", "kind", "index", "parts")

    def __init__(self, key: str, dir: Path, kind: str, index: int, parts: dict):
        self.key, self.dir, self.kind, self.index, self.parts = key, dir, kind, index, parts

    data = property(lambda self: self.dir / "data.npy")
    done = property(lambda self: self.dir / "done.npy")
    lock = property(lambda self: self.dir / "lock")
    meta = property(lambda self: self.dir / "meta.json")
    used = property(lambda self: self.dir / "used")


def _stat(path: Path):
    try:
        return path.stat()
    except OSError:
        return None


def _describe(d: Path, rows: bool) -> dict | None:
    """What ``advisor cache info`` shows of the entry folder ``d`` (None if it holds no entry)."""
    stats = {name: _stat(d / name) for name in _FILES}
    if stats["data.npy"] is None:
        return None
    try:
        meta = json.loads((d / "meta.json").read_text())
    except (OSError, ValueError):
        meta = {}
    used = stats["used"] or stats["meta.json"] or stats["data.npy"]
    info = {
        "key": d.name, "path": str(d), "format": meta.get("format"), "kind": meta.get("kind"),
        "block": meta.get("block"), "boundary": meta.get("boundary"), "backbone": meta.get("backbone"),
        "dataset": meta.get("dataset_name"), "device": meta.get("device"), "dtype": meta.get("dtype"),
        "items": meta.get("items"),
        "bytes": sum(st.st_size for st in stats.values() if st is not None),
        "disk_bytes": sum(getattr(st, "st_blocks", math.ceil(st.st_size / 512)) * 512
                          for st in stats.values() if st is not None),
        "last_used": used.st_mtime,
    }
    if rows:
        try:
            done = np.load(d / "done.npy", mmap_mode="r")
            info["rows_done"], info["items"] = int(np.count_nonzero(done)), int(done.shape[0])
        except (OSError, ValueError):
            info["rows_done"] = None
    return info
