"""The LRU store of frozen-backbone activations: :class:`ActivationCache` (see :mod:`advisor.context.cache`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import numbers
import os
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from advisor.block_ref import block_index
from advisor.context.cache._compute import _forward, _probe_shape, extract
from advisor.context.cache._config import default_cache_cap
from advisor.context.cache._digest import _WeightsDigest
from advisor.context.cache._entry import _FILES, FORMAT_VERSION, _describe, _Entry, _stat
from advisor.context.cache._identity import _device, _device_id, _images_fingerprint, _precision, _versions
from advisor.context.cache._indices import _boundary_index, _check_indices
from advisor.context.cache._lock import _Lock
from advisor.errors import AdvisorError
from advisor.models._layout import NCHW

_FP16_MAX = float(np.finfo(np.float16).max)


class ActivationCache:
    """Lazily filled on-disk activations of a frozen backbone; see the module docstring.

    ``max_bytes`` limits one entry, ``max_total`` the whole folder (None: :func:`default_cache_cap`,
    which reads ``$ADVISOR_CACHE_MAX``). ``stats`` counts items: ``computed`` (run through the network by
    this object), ``served`` (requested and already on disk), ``bypassed`` (computed for an entry that
    does not fit, never stored; also in ``computed``) and ``passes`` (forward passes run). ``evicted``
    counts entries this object removed to stay under ``max_total``. One object may be used from several
    threads.
    """

    def __init__(self, root: str | Path, max_bytes: int = 8 * 2**30, max_total: int | None = None):
        self.root = Path(os.path.expanduser(os.fspath(root)))
        if max_total is None:
            max_total = default_cache_cap()
        for name, value in (("cache entry size limit", max_bytes), ("cache folder cap", max_total)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise AdvisorError(f"bad {name} {value!r}", "use a non-negative number of bytes")
        self.max_bytes = int(max_bytes)
        self.max_total = int(max_total)
        self.stats: dict[str, int] = {"computed": 0, "served": 0, "bypassed": 0, "passes": 0, "evicted": 0}
        self._stats_guard = threading.Lock()
        self._digests = _WeightsDigest()
        self._shapes: dict[tuple, tuple[int, ...]] = {}
        #: why this cache stopped storing (a full disk, a file-size limit, an unwritable folder), or None;
        #: from then on every entry is computed and not stored, and callers may say so once
        self.problem: str | None = None

    def __repr__(self) -> str:
        return f"ActivationCache(root={str(self.root)!r}, max_bytes={self.max_bytes}, max_total={self.max_total})"

    def _count(self, **counts: int) -> None:
        with self._stats_guard:
            for name, n in counts.items():
                self.stats[name] += int(n)

    # ------------------------------------------------------------------ keys
    def _entry(self, ctx, kind: str, index: int) -> _Entry:
        from advisor.models import backbone_spec_id

        backbone = ctx.backbone
        depth = index if kind == "pooled" else index - 1
        block = backbone.block_names[depth]
        pre = ctx.preprocess
        device = _device(ctx)
        parts = {
            "format": FORMAT_VERSION,
            "backbone": backbone_spec_id(backbone),
            "weights": self._digests.prefix(backbone, depth),
            "kind": kind,
            "block": block,
            "preprocess": json.loads(json.dumps(pre._key())),
            "images": _images_fingerprint(ctx.dataset),
            "device": _device_id(device),
            "precision": _precision(backbone, device),
            "versions": _versions(),
        }
        if kind == "pooled" and backbone.layout != NCHW:
            # how a ViT's tokens (or Swin's windows) were pooled; CNN keys keep their former parts
            parts["layout"] = backbone.layout.to_dict()
        key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()
        return _Entry(key, self.root / key[:2] / key, kind, index, parts)

    def key(self, ctx, *, pooled=None, boundary: int | None = None) -> str:
        """The key of the entry for pooled block ``pooled`` (index or name) or for ``boundary``."""
        if (pooled is None) == (boundary is None):
            raise AdvisorError("ask for the key of one entry", "pass either pooled=BLOCK or boundary=B")
        if pooled is not None:
            return self._entry(ctx, "pooled", block_index(pooled, ctx.backbone.block_names, ctx.backbone.name)).key
        return self._entry(ctx, "boundary", _boundary_index(ctx.backbone, boundary)).key

    # ------------------------------------------------------------------ sizes
    def _item_shape(self, ctx, kind: str, index: int) -> tuple[int, ...]:
        from advisor.models import backbone_spec_id

        if kind == "pooled":
            return (int(ctx.backbone.block_channels[index]),)
        k = (backbone_spec_id(ctx.backbone), int(ctx.preprocess.crop_size), index)
        if k not in self._shapes:
            self._shapes[k] = _probe_shape(ctx, index)
        return self._shapes[k]

    def _data_bytes(self, ctx, kind: str, index: int) -> int:
        itemsize = 4 if kind == "pooled" else 2
        return len(ctx.dataset) * int(np.prod(self._item_shape(ctx, kind, index))) * itemsize

    def boundary_bytes(self, ctx, boundary: int) -> int:
        """Bytes a whole-dataset float16 entry of ``boundary`` takes (shape probed at the crop size)."""
        return self._data_bytes(ctx, "boundary", _boundary_index(ctx.backbone, boundary))

    def _fits(self, ctx, kind: str, index: int) -> bool:
        if self.problem is not None:  # the disk refused an entry: store nothing more in this process
            return False
        return self._data_bytes(ctx, kind, index) <= min(self.max_bytes, self.max_total)

    def _give_up(self, e: _Entry, err: OSError) -> None:
        """The disk refused entry ``e``: stop storing (see :attr:`problem`); the caller removes the entry."""
        self.problem = f"{e.dir}: {err.strerror or err}"

    def fits(self, ctx, boundary: int) -> bool:
        """Whether ``boundary`` for the whole dataset fits in ``max_bytes`` and ``max_total`` (else it is
        never stored)."""
        return self._fits(ctx, "boundary", _boundary_index(ctx.backbone, boundary))

    # ------------------------------------------------------------------ the folder
    def _entry_dirs(self):
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if len(sub.name) == 2 and sub.is_dir():
                for d in sorted(sub.iterdir()):
                    if d.is_dir() and d.name.startswith(sub.name):
                        yield d

    def entries(self, rows: bool = True) -> list[dict]:
        """Every entry in the folder, least recently used first: key, kind, block, backbone, dataset,
        device, dtype, items, ``rows_done`` (with ``rows``), ``bytes`` (apparent size), ``disk_bytes``
        (blocks in use; entries are sparse until filled), ``last_used`` (epoch seconds)."""
        found = [info for d in self._entry_dirs() if (info := _describe(d, rows)) is not None]
        return sorted(found, key=lambda e: (e["last_used"], e["key"]))

    def total_bytes(self) -> int:
        """Apparent size of all entries: what the cap is checked against."""
        return sum(e["bytes"] for e in self.entries(rows=False))

    def _remove(self, d: Path, blocking: bool) -> bool:
        """Remove the entry folder ``d`` holding its lock alone; False when another holds the lock
        (and ``blocking`` is False)."""
        lock = _Lock(d / "lock", blocking=blocking)
        if not lock.acquire():
            return False
        try:
            for name in _FILES:
                (d / name).unlink(missing_ok=True)
            for leftover in d.glob("*.tmp*"):
                leftover.unlink(missing_ok=True)
            (d / "lock").unlink(missing_ok=True)  # waiters notice and lock the path anew
            with contextlib.suppress(OSError):
                d.rmdir()
            with contextlib.suppress(OSError):
                d.parent.rmdir()  # only if empty
        finally:
            lock.release()
        return True

    def _make_room(self, keep: str, needed: int) -> None:
        """Remove least recently used entries (not ``keep``, not locked) until they and ``needed`` bytes
        (``keep``'s) fit under ``max_total``. Hold the root lock."""
        entries = [e for e in self.entries(rows=False) if e["key"] != keep]
        total = sum(e["bytes"] for e in entries)
        for e in entries:
            if total + needed <= self.max_total:
                break
            if self._remove(Path(e["path"]), blocking=False):
                total -= e["bytes"]
                self._count(evicted=1)

    def clear(self, older_than: float | None = None, keys: Sequence[str] = ()) -> tuple[list[dict], list[dict]]:
        """Remove entries: all, or those last used more than ``older_than`` seconds ago, or whose key
        starts with one of ``keys`` (both: both conditions). Returns ``(removed, in_use)``: entries in use
        by another thread or process are kept."""
        removed, in_use = [], []
        now = time.time()
        for e in self.entries(rows=False):
            if older_than is not None and now - e["last_used"] <= older_than:
                continue
            if keys and not any(e["key"].startswith(k) for k in keys):
                continue
            (removed if self._remove(Path(e["path"]), blocking=False) else in_use).append(e)
        return removed, in_use

    # ------------------------------------------------------------------ storage
    def _write_meta(self, ctx, e: _Entry, shape, dtype) -> None:
        meta = dict(e.parts)
        meta.update(
            key=e.key,
            dataset_name=getattr(ctx.dataset, "name", None),
            items=len(ctx.dataset),
            boundary=e.index if e.kind == "boundary" else None,
            shape=list(shape),
            dtype=str(np.dtype(dtype)),
            created=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        tmp = e.meta.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, e.meta)

    def _open(self, ctx, e: _Entry):
        """(data, done) memmaps of ``e``, opened read-write; created when missing or unusable, after making
        room for them under ``max_total``. Hold e's lock exclusively."""
        n = len(ctx.dataset)
        dtype = np.dtype(np.float32 if e.kind == "pooled" else np.float16)
        shape = (n, *self._item_shape(ctx, e.kind, e.index))
        if e.data.exists() and e.done.exists():
            try:
                data = np.load(e.data, mmap_mode="r+")
                done = np.load(e.done, mmap_mode="r+")
                if data.shape == shape and data.dtype == dtype and done.shape == (n,) and done.dtype == bool:
                    return data, done
                del data, done
            except (OSError, ValueError):
                pass
        with _Lock(self.root / ".lock"):  # one creator at a time, so the cap holds between them
            # new (or unreadable): write the files under temporary names, then move them in place
            e.done.unlink(missing_ok=True)
            tag = f".tmp{os.getpid()}.{threading.get_ident()}.npy"
            tmp = e.data.with_suffix(tag)
            data = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            data.flush()
            del data
            # reserve the blocks now: a full disk fails here with ENOSPC, not later as SIGBUS when a row
            # is written through the (otherwise sparse) memory map
            with open(tmp, "r+b") as f:
                os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
            os.replace(tmp, e.data)
            tmp = e.done.with_suffix(tag)
            np.save(tmp, np.zeros(n, dtype=bool))
            os.replace(tmp, e.done)
            self._write_meta(ctx, e, shape, dtype)
            e.used.touch()
            # the files are sparse: they take no disk space before rows are written, so make room now,
            # knowing the entry's exact size
            self._make_room(e.key, sum(st.st_size for name in _FILES if (st := _stat(e.dir / name))))
        return np.load(e.data, mmap_mode="r+"), np.load(e.done, mmap_mode="r+")

    @staticmethod
    def _all_done(e: _Entry, idx: np.ndarray) -> bool:
        try:
            done = np.load(e.done, mmap_mode="r")
            if done.ndim != 1 or done.dtype != bool:  # not ours: the entry is created anew
                return False
        except (OSError, ValueError):
            return False
        return bool(done.shape[0] > (idx.max() if idx.size else -1) and done[idx].all())

    @staticmethod
    def _touch(e: _Entry) -> None:
        """Mark ``e`` used now (for LRU eviction). Hold e's lock."""
        with contextlib.suppress(OSError):
            e.used.touch()

    def _read(self, e: _Entry, idx: np.ndarray) -> np.ndarray | None:
        """Rows ``idx`` of ``e`` as float32, or None unless every one is on disk. Takes e's lock shared."""
        if not e.data.exists():
            return None
        with _Lock(e.lock, shared=True):
            if not self._all_done(e, idx):
                return None
            try:
                data = np.load(e.data, mmap_mode="r")
                out = np.asarray(data[idx], dtype=np.float32)
            except (OSError, ValueError, IndexError, TypeError):  # unreadable or not the shape it must have
                return None
            self._touch(e)
        return out

    # ------------------------------------------------------------------ API
    def ensure(self, ctx, indices, *, pooled: Sequence = (), boundaries: Sequence[int] = (),
               batch_size: int = 64) -> None:
        """Make sure the requested entries hold every item of ``indices``.

        ``pooled``: block indices (or names); ``boundaries``: ints ``1..n_blocks-1``. Items missing from
        *any* requested entry are run once through the frozen backbone (eval mode, no_grad, only as deep
        as the deepest request; every module's training flag is restored after) and all requested
        entries are filled from that one pass. Entries that do not fit (:meth:`fits`) are skipped.
        """
        backbone = ctx.backbone
        idx = np.unique(_check_indices(ctx, indices))
        wanted = {block_index(i, backbone.block_names, backbone.name) for i in pooled}
        p_set = sorted(i for i in wanted if self._fits(ctx, "pooled", i))
        b_set = sorted(b for b in {_boundary_index(backbone, b) for b in boundaries} if self.fits(ctx, b))
        entries = [self._entry(ctx, "pooled", i) for i in p_set] + [self._entry(ctx, "boundary", b) for b in b_set]
        if not entries or idx.size == 0:
            return
        if all(self._all_done(e, idx) for e in entries):
            self._count(served=idx.size)
            return
        with contextlib.ExitStack() as stack:
            maps = {}
            current = entries[0]
            try:
                for current in sorted(entries, key=lambda e: e.key):  # one global order: no deadlock
                    stack.enter_context(_Lock(current.lock))
                for current in entries:
                    maps[current.key] = self._open(ctx, current)
            except OSError as err:  # a full disk, a file-size limit, an unwritable folder: compute, do not store
                self._give_up(current, err)
                stack.close()  # release our locks, then remove what was made of the entry
                with contextlib.suppress(OSError):
                    self._remove(current.dir, blocking=False)
                return
            missing = np.zeros(idx.size, dtype=bool)
            for data, done in maps.values():
                missing |= ~np.asarray(done[idx])
            todo = idx[missing]
            self._count(served=idx.size - todo.size)
            for e in entries:
                self._touch(e)
            if not todo.size:
                return

            def sink(batch):
                rows = batch.rows
                for e in entries:
                    data, done = maps[e.key]
                    if e.kind == "pooled":
                        out = batch.pooled[e.index].numpy()
                    else:
                        out = batch.boundaries[e.index].clamp_(-_FP16_MAX, _FP16_MAX).to(torch.float16).numpy()
                    new = ~np.asarray(done[rows])
                    if not new.any():
                        continue
                    data[rows[new]] = out[new]
                    data.flush()
                    done[rows[new]] = True
                    done.flush()

            _forward(ctx, todo, p_set, b_set, batch_size, sink, stage="cache")
            self._count(computed=todo.size, passes=1)

    def _get(self, ctx, kind: str, index: int, idx: np.ndarray) -> np.ndarray | torch.Tensor:
        """Rows ``idx`` of an entry: served from disk, filled first if needed, or computed (not stored)
        when the entry does not fit or was evicted between filling and reading."""
        if self._fits(ctx, kind, index):
            e = self._entry(ctx, kind, index)
            got = self._read(e, idx)
            if got is not None:
                self._count(served=idx.size)
                return got
            self.ensure(ctx, idx, **{"pooled" if kind == "pooled" else "boundaries": (index,)})
            got = self._read(e, idx)
            if got is not None:
                return got
        p, b = extract(ctx, idx, **{"pooled" if kind == "pooled" else "boundaries": (index,)})
        self._count(computed=idx.size, bypassed=idx.size, passes=1)
        return p[index] if kind == "pooled" else b[index]

    def pooled(self, ctx, block, indices) -> np.ndarray:
        """Pooled output of ``block`` (index or name): float32 ``[len(indices), C]`` in the order given."""
        i = block_index(block, ctx.backbone.block_names, ctx.backbone.name)
        idx = _check_indices(ctx, indices)
        if not idx.size:
            return np.zeros((0, int(ctx.backbone.block_channels[i])), np.float32)
        return self._get(ctx, "pooled", i, idx)

    def boundary(self, ctx, boundary: int, indices) -> torch.Tensor:
        """Input of block ``boundary``: float32 tensor ``[len(indices), C, H, W]`` in the order given.

        Served from the float16 entry; a boundary that does not :meth:`fit` is recomputed (exactly, in
        float32) on every call and not stored.
        """
        b = _boundary_index(ctx.backbone, boundary)
        idx = _check_indices(ctx, indices)
        if not idx.size:
            return torch.zeros((0, *self._item_shape(ctx, "boundary", b)), dtype=torch.float32)
        got = self._get(ctx, "boundary", b, idx)
        return torch.from_numpy(got) if isinstance(got, np.ndarray) else got
