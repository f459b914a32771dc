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


#: The fields ``advisor cache info`` shows from an entry's meta.json, and the types they must have.
_META_FIELDS = {"format": int, "kind": str, "block": str, "boundary": int, "backbone": str, "dataset_name": str,
                "device": str, "dtype": str, "items": int}


def _read_meta(path: Path) -> tuple[dict, str | None]:
    """An entry's meta.json as a dict of the shown fields, and why it is unusable (None when it is fine).
    A meta.json that is missing, not JSON or of another shape leaves the fields empty; the entry's data
    is never trusted from it (keys are recomputed), so such an entry is shown, flagged, and clearable."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        return {}, f"meta.json unreadable ({e.strerror or e})"
    except ValueError:
        return {}, "meta.json is not JSON"
    if not isinstance(meta, dict):
        return {}, f"meta.json holds a {type(meta).__name__}, not an object"
    wrong = [k for k, t in _META_FIELDS.items()
             if meta.get(k) is not None and (not isinstance(meta[k], t) or isinstance(meta[k], bool))]
    missing = [k for k in ("format", "kind", "block") if meta.get(k) is None]
    if wrong or missing:
        return ({k: v for k, v in meta.items() if k in _META_FIELDS and k not in wrong},
                f"meta.json has {'wrong types for ' + ', '.join(wrong) if wrong else ''}"
                f"{'; ' if wrong and missing else ''}{'no ' + ', '.join(missing) if missing else ''}")
    return meta, None


def _describe(d: Path, rows: bool) -> dict | None:
    """What ``advisor cache info`` shows of the entry folder ``d`` (None if it holds no entry); ``bad`` says
    why an entry is unusable (see :func:`_read_meta`), else None."""
    stats = {name: _stat(d / name) for name in _FILES}
    if stats["data.npy"] is None:
        return None
    meta, bad = _read_meta(d / "meta.json")
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
        "bad": bad,
    }
    if rows:
        try:
            done = np.load(d / "done.npy", mmap_mode="r")  # never unpickles: allow_pickle stays False
            if done.ndim != 1 or done.dtype != bool:
                raise ValueError(f"done.npy is {done.dtype} of shape {done.shape}, not a bool vector")
            info["rows_done"], info["items"] = int(np.count_nonzero(done)), int(done.shape[0])
        except (OSError, ValueError) as e:
            info["rows_done"] = None
            info["bad"] = info["bad"] or f"done.npy unreadable ({' '.join(str(e).split())[:80]})"
    return info
