"""On-disk cache of frozen-backbone activations, shared by trainers and search workers.

Two kinds of entries, each covering *all* items of a dataset and filled lazily:

* ``pooled`` block ``i``: the global average pool of block ``i``'s output, float32 ``[C]`` per item
  (what the probes fit on);
* ``boundary`` ``b`` (``1 <= b < n_blocks``): the unpooled output of block ``b - 1``, i.e. the input of
  block ``b``, float16 ``[C, H, W]`` per item (what a trainer that freezes blocks ``0..b-1`` feeds to
  the part it trains). Boundary 0 would be the preprocessed image itself; it is never cached (callers
  compute it) and asking for it raises :class:`AdvisorError`.

An entry is keyed by the sha256 of: ``backbone_spec_id(backbone)``, a digest of the weights (parameters
and buffers) of the blocks the entry depends on, the entry kind and block name, the preprocessing key,
``dataset.fingerprint()`` and :data:`FORMAT_VERSION`. The weights digest makes random-weight backbones
and backbones whose *later* blocks were fine-tuned safe: an entry is only ever served for exactly the
weights that produced it.

On disk, under ``root/<key[:2]>/<key>/``::

    data.npy   NumPy memmap [len(dataset), ...]   (created sparse; rows written as computed)
    done.npy   bool [len(dataset)]                (True = row computed)
    meta.json  the key parts, for humans
    lock       a filelock, so several processes (search workers) can fill and read one entry

Rows are written (and flushed) before their ``done`` flag, and a row is never rewritten once done, so
readers see either "not done" or the final value.

A boundary whose whole-dataset entry would take more than ``max_bytes`` (see :meth:`boundary_bytes`)
does not *fit*: :meth:`ensure` skips it and :meth:`boundary` recomputes it on every call without storing
it (counted in ``stats["bypassed"]``). Trainers that call :meth:`boundary` once per batch should check
:meth:`fits` first and run the frozen blocks themselves when it is False (one forward instead of two).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import numbers
import os
import time
import weakref
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from advisor.errors import AdvisorError

#: Bumped whenever the on-disk layout or the meaning of a stored value changes.
FORMAT_VERSION = 1

_FP16_MAX = float(np.finfo(np.float16).max)


def default_cache_dir() -> Path:
    """``$ADVISOR_CACHE`` if set, else ``~/.cache/advisor/activations``."""
    env = os.environ.get("ADVISOR_CACHE", "").strip()
    if env:
        return Path(os.path.expanduser(env))
    return Path.home() / ".cache" / "advisor" / "activations"


# ---------------------------------------------------------------------------- helpers
def _block_index(backbone, block) -> int:
    """A block given by index (int, numpy int, digit string) or name -> its index."""
    n = len(backbone.block_names)
    if isinstance(block, str):
        if block in backbone.block_names:
            return backbone.block_names.index(block)
        text = block.strip()
        if text.lstrip("-").isdigit():
            block = int(text)
        else:
            raise AdvisorError(
                f"unknown block '{block}' for {backbone.name}",
                f"choose a block index 0..{n - 1} or one of {', '.join(backbone.block_names)}",
            )
    if isinstance(block, bool) or not isinstance(block, numbers.Integral):
        raise AdvisorError(
            f"bad block {block!r}", f"use a block index 0..{n - 1} or one of {', '.join(backbone.block_names)}"
        )
    i = int(block)
    if not 0 <= i < n:
        raise AdvisorError(f"block index {i} out of range for {backbone.name}", f"use 0..{n - 1}")
    return i


def _boundary_index(backbone, boundary) -> int:
    n = len(backbone.block_names)
    if isinstance(boundary, bool) or not isinstance(boundary, numbers.Integral):
        raise AdvisorError(f"bad boundary {boundary!r}", f"use an integer 1..{n - 1} (the input of that block)")
    b = int(boundary)
    if b == 0:
        raise AdvisorError(
            "boundary 0 (the preprocessed image) is not cached",
            "compute it with ctx.preprocess, or ask for a boundary 1..%d" % (n - 1),
        )
    if not 1 <= b < n:
        raise AdvisorError(f"boundary {b} out of range for {backbone.name}", f"use 1..{n - 1} (the input of that block)")
    return b


def _check_indices(ctx, indices) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.dtype == bool:
        idx = np.flatnonzero(idx)
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise IndexError(f"item indices must be integers, got {idx.dtype}")
    idx = idx.astype(np.int64, copy=False).reshape(-1)
    n = len(ctx.dataset)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"item indices out of range for a dataset of {n} items")
    return idx


def _device(ctx) -> torch.device:
    return torch.device(ctx.device) if ctx.device is not None else ctx.backbone.device


@contextlib.contextmanager
def _frozen_eval(backbone):
    """Eval mode and no_grad for the duration; every module's own training flag is restored after."""
    modes = [(m, m.training) for m in backbone.modules()]
    try:
        backbone.eval()
        with torch.no_grad():
            yield
    finally:
        for m, was in modes:
            m.training = was


_Sink = Callable[[np.ndarray, dict, dict], None]


def _forward(ctx, indices: np.ndarray, pooled: Iterable[int], boundaries: Iterable[int], batch_size: int,
             sink: _Sink, stage: str) -> None:
    """Run ``ctx.backbone`` (frozen, eval) over ``ctx.dataset[indices]`` as deep as needed.

    For every batch calls ``sink(rows, pooled_outs, boundary_outs)`` with ``rows`` the batch's item
    indices, ``pooled_outs[i]`` float32 numpy ``[B, C]`` and ``boundary_outs[b]`` a float32 CPU tensor
    (output of block ``b - 1``).
    """
    from advisor.data import TorchView

    pooled = set(pooled)
    boundaries = set(boundaries)
    if not pooled and not boundaries:
        return
    backbone = ctx.backbone
    depth = max(pooled | {b - 1 for b in boundaries})
    blocks = list(backbone.blocks)[: depth + 1]
    device = _device(ctx)
    cuda = device.type == "cuda"
    batch_size = max(1, int(batch_size))
    loader = torch.utils.data.DataLoader(
        TorchView(ctx.dataset, indices, ctx.preprocess), batch_size=batch_size, shuffle=False,
        num_workers=max(0, int(ctx.workers or 0)), pin_memory=cuda,
    )
    total = int(indices.size)
    done = 0
    progress = ctx.progress
    if progress is not None:
        progress(stage, 0, total)
    with _frozen_eval(backbone):
        for x, _ in loader:
            rows = indices[done : done + x.shape[0]]
            x = x.to(device, non_blocking=cuda)
            p_out: dict[int, np.ndarray] = {}
            b_out: dict[int, torch.Tensor] = {}
            for i, block in enumerate(blocks):
                x = block(x)
                if i in pooled:
                    p_out[i] = backbone.pooled(x.float()).cpu().numpy().astype(np.float32, copy=False)
                if i + 1 in boundaries:
                    b_out[i + 1] = x.detach().to("cpu", torch.float32, copy=True)
            sink(rows, p_out, b_out)
            done += len(rows)
            if progress is not None:
                progress(stage, done, total)


def extract(ctx, indices, *, pooled: Sequence = (), boundaries: Sequence[int] = (),
            batch_size: int = 64) -> tuple[dict[int, np.ndarray], dict[int, torch.Tensor]]:
    """Compute, without any cache, pooled block outputs and boundary activations for ``indices``.

    The same forward pass the cache uses. Returns ``(pooled, boundaries)``: ``pooled[i]`` float32
    ``[len(indices), C]`` per requested block index, ``boundaries[b]`` float32 tensor
    ``[len(indices), C, H, W]`` (exact, not rounded to float16) per requested boundary.
    """
    idx = _check_indices(ctx, indices)
    p_set = sorted({_block_index(ctx.backbone, i) for i in pooled})
    b_set = sorted({_boundary_index(ctx.backbone, b) for b in boundaries})
    p_parts: dict[int, list] = {i: [] for i in p_set}
    b_parts: dict[int, list] = {b: [] for b in b_set}

    def sink(rows, p_out, b_out):
        for i in p_set:
            p_parts[i].append(p_out[i])
        for b in b_set:
            b_parts[b].append(b_out[b])

    _forward(ctx, idx, p_set, b_set, batch_size, sink, stage="features")
    out_p = {}
    for i in p_set:
        c = int(ctx.backbone.block_channels[i])
        out_p[i] = np.concatenate(p_parts[i]) if p_parts[i] else np.zeros((0, c), np.float32)
    out_b = {}
    for b in b_set:
        if b_parts[b]:
            out_b[b] = torch.cat(b_parts[b])
        else:
            out_b[b] = torch.zeros((0, *_probe_shape(ctx, b)), dtype=torch.float32)
    return out_p, out_b


def _probe_shape(ctx, boundary: int) -> tuple[int, ...]:
    """Per-item shape of the output of block ``boundary - 1`` at ``ctx.preprocess``'s crop size."""
    backbone = ctx.backbone
    size = int(ctx.preprocess.crop_size)
    x = torch.zeros(1, 3, size, size, device=_device(ctx))
    with _frozen_eval(backbone):
        for block in list(backbone.blocks)[:boundary]:
            x = block(x)
    return tuple(int(s) for s in x.shape[1:])


# --------------------------------------------------------------------- weights digest
class _WeightsDigest:
    """Per-block digests of parameters and buffers, memoised on (storage, in-place version) of each tensor.

    In-place updates through the tensor itself (optimizer steps, ``load_state_dict``) bump its version
    and invalidate the memo; writes through ``tensor.data`` do not, so code that edits weights that way
    must not reuse the cache for those blocks.
    """

    def __init__(self):
        self._memo: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

    def block(self, module: torch.nn.Module) -> str:
        tensors = list(module.state_dict(keep_vars=True).items())
        sig = tuple(
            (name, t.data_ptr(), t._version, tuple(t.shape), str(t.dtype), str(t.device)) for name, t in tensors
        )
        hit = self._memo.get(module)
        if hit is not None and hit[0] == sig:
            return hit[1]
        h = hashlib.sha256()
        for name, t in tensors:
            a = t.detach().cpu().contiguous()
            h.update(f"{name}:{a.dtype}:{tuple(a.shape)};".encode())
            if a.dtype == torch.bfloat16:
                a = a.view(torch.int16)
            h.update(memoryview(a.numpy()).cast("B"))
        digest = h.hexdigest()
        self._memo[module] = (sig, digest)
        return digest

    def prefix(self, backbone, depth: int) -> str:
        """Digest of blocks ``0..depth``."""
        h = hashlib.sha256()
        for block in list(backbone.blocks)[: depth + 1]:
            h.update(self.block(block).encode())
        return h.hexdigest()[:32]


# ------------------------------------------------------------------------------ cache
class _Entry:
    __slots__ = ("key", "dir", "kind", "index", "parts")

    def __init__(self, key: str, dir: Path, kind: str, index: int, parts: dict):
        self.key, self.dir, self.kind, self.index, self.parts = key, dir, kind, index, parts

    data = property(lambda self: self.dir / "data.npy")
    done = property(lambda self: self.dir / "done.npy")
    lock = property(lambda self: self.dir / "lock")
    meta = property(lambda self: self.dir / "meta.json")


class ActivationCache:
    """Lazily filled on-disk activations of a frozen backbone; see the module docstring.

    ``stats`` counts items: ``computed`` (run through the network by this object), ``served`` (requested
    and already on disk), ``bypassed`` (computed for a boundary that does not fit, never stored; also in
    ``computed``) and ``passes`` (forward passes run).
    """

    def __init__(self, root: str | Path, max_bytes: int = 8 * 2**30):
        self.root = Path(os.path.expanduser(os.fspath(root)))
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, numbers.Integral) or max_bytes < 0:
            raise AdvisorError(f"bad cache size limit {max_bytes!r}", "use a non-negative number of bytes")
        self.max_bytes = int(max_bytes)
        self.stats: dict[str, int] = {"computed": 0, "served": 0, "bypassed": 0, "passes": 0}
        self._digests = _WeightsDigest()
        self._shapes: dict[tuple, tuple[int, ...]] = {}

    def __repr__(self) -> str:
        return f"ActivationCache(root={str(self.root)!r}, max_bytes={self.max_bytes})"

    # ------------------------------------------------------------------ keys
    def _entry(self, ctx, kind: str, index: int) -> _Entry:
        from advisor.models import backbone_spec_id

        backbone = ctx.backbone
        depth = index if kind == "pooled" else index - 1
        block = backbone.block_names[depth]
        pre = ctx.preprocess
        parts = {
            "format": FORMAT_VERSION,
            "backbone": backbone_spec_id(backbone),
            "weights": self._digests.prefix(backbone, depth),
            "kind": kind,
            "block": block,
            "preprocess": json.loads(json.dumps(pre._key())),
            "dataset": ctx.dataset.fingerprint(),
        }
        key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()
        return _Entry(key, self.root / key[:2] / key, kind, index, parts)

    def key(self, ctx, *, pooled=None, boundary: int | None = None) -> str:
        """The key of the entry for pooled block ``pooled`` (index or name) or for ``boundary``."""
        if (pooled is None) == (boundary is None):
            raise AdvisorError("ask for the key of one entry", "pass either pooled=BLOCK or boundary=B")
        if pooled is not None:
            return self._entry(ctx, "pooled", _block_index(ctx.backbone, pooled)).key
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

    def boundary_bytes(self, ctx, boundary: int) -> int:
        """Bytes a whole-dataset float16 entry of ``boundary`` takes (shape probed at the crop size)."""
        b = _boundary_index(ctx.backbone, boundary)
        return len(ctx.dataset) * int(np.prod(self._item_shape(ctx, "boundary", b))) * 2

    def fits(self, ctx, boundary: int) -> bool:
        """Whether ``boundary`` for the whole dataset fits in ``max_bytes`` (else it is never stored)."""
        return self.boundary_bytes(ctx, boundary) <= self.max_bytes

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
        tmp = e.meta.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, e.meta)

    def _open(self, ctx, e: _Entry):
        """(data, done) memmaps of ``e``, opened read-write; created when missing or unusable. Hold e's lock."""
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
        # new (or unreadable): write the files under temporary names, then move them in place
        e.done.unlink(missing_ok=True)
        tag = f".tmp{os.getpid()}.npy"
        tmp = e.data.with_suffix(tag)
        data = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        data.flush()
        del data
        os.replace(tmp, e.data)
        tmp = e.done.with_suffix(tag)
        np.save(tmp, np.zeros(n, dtype=bool))
        os.replace(tmp, e.done)
        self._write_meta(ctx, e, shape, dtype)
        return np.load(e.data, mmap_mode="r+"), np.load(e.done, mmap_mode="r+")

    @staticmethod
    def _all_done(e: _Entry, idx: np.ndarray) -> bool:
        try:
            done = np.load(e.done, mmap_mode="r")
        except (OSError, ValueError):
            return False
        return bool(done.shape[0] > (idx.max() if idx.size else -1) and done[idx].all())

    # ------------------------------------------------------------------ API
    def ensure(self, ctx, indices, *, pooled: Sequence = (), boundaries: Sequence[int] = (),
               batch_size: int = 64) -> None:
        """Make sure the requested entries hold every item of ``indices``.

        ``pooled``: block indices (or names); ``boundaries``: ints ``1..n_blocks-1``. Items missing from
        *any* requested entry are run once through the frozen backbone (eval mode, no_grad, only as deep
        as the deepest request; every module's training flag is restored after) and all requested
        entries are filled from that one pass. Boundaries that do not :meth:`fit` are skipped.
        """
        backbone = ctx.backbone
        idx = np.unique(_check_indices(ctx, indices))
        p_set = sorted({_block_index(backbone, i) for i in pooled})
        b_set = sorted({_boundary_index(backbone, b) for b in boundaries})
        b_set = [b for b in b_set if self.fits(ctx, b)]
        entries = [self._entry(ctx, "pooled", i) for i in p_set] + [self._entry(ctx, "boundary", b) for b in b_set]
        if not entries or idx.size == 0:
            return
        if all(self._all_done(e, idx) for e in entries):
            self.stats["served"] += int(idx.size)
            return
        from filelock import FileLock

        with contextlib.ExitStack() as stack:
            for e in sorted(entries, key=lambda e: e.key):  # one global order: no deadlock between processes
                e.dir.mkdir(parents=True, exist_ok=True)
                stack.enter_context(FileLock(str(e.lock)))
            maps = {e.key: self._open(ctx, e) for e in entries}
            missing = np.zeros(idx.size, dtype=bool)
            for data, done in maps.values():
                missing |= ~np.asarray(done[idx])
            todo = idx[missing]
            self.stats["served"] += int(idx.size - todo.size)
            if not todo.size:
                return

            def sink(rows, p_out, b_out):
                for e in entries:
                    data, done = maps[e.key]
                    if e.kind == "pooled":
                        out = p_out[e.index]
                    else:
                        out = b_out[e.index].clamp_(-_FP16_MAX, _FP16_MAX).to(torch.float16).numpy()
                    new = ~np.asarray(done[rows])
                    if not new.any():
                        continue
                    data[rows[new]] = out[new]
                    data.flush()
                    done[rows[new]] = True
                    done.flush()

            _forward(ctx, todo, p_set, b_set, batch_size, sink, stage="cache")
            self.stats["computed"] += int(todo.size)
            self.stats["passes"] += 1

    def pooled(self, ctx, block, indices) -> np.ndarray:
        """Pooled output of ``block`` (index or name): float32 ``[len(indices), C]`` in the order given."""
        i = _block_index(ctx.backbone, block)
        idx = _check_indices(ctx, indices)
        self.ensure(ctx, idx, pooled=(i,))
        if not idx.size:
            return np.zeros((0, int(ctx.backbone.block_channels[i])), np.float32)
        e = self._entry(ctx, "pooled", i)
        data = np.load(e.data, mmap_mode="r")
        return np.asarray(data[idx], dtype=np.float32)

    def boundary(self, ctx, boundary: int, indices) -> torch.Tensor:
        """Input of block ``boundary``: float32 tensor ``[len(indices), C, H, W]`` in the order given.

        Served from the float16 entry; a boundary that does not :meth:`fit` is recomputed (exactly, in
        float32) on every call and not stored.
        """
        b = _boundary_index(ctx.backbone, boundary)
        idx = _check_indices(ctx, indices)
        if not self.fits(ctx, b):
            _, out = extract(ctx, idx, boundaries=(b,))
            self.stats["computed"] += int(idx.size)
            self.stats["bypassed"] += int(idx.size)
            self.stats["passes"] += 1
            return out[b]
        self.ensure(ctx, idx, boundaries=(b,))
        if not idx.size:
            return torch.zeros((0, *self._item_shape(ctx, "boundary", b)), dtype=torch.float32)
        e = self._entry(ctx, "boundary", b)
        data = np.load(e.data, mmap_mode="r")
        return torch.from_numpy(np.asarray(data[idx], dtype=np.float32))

    def disk_bytes(self) -> int:
        """Bytes the cache folder actually occupies on disk (entries are sparse files)."""
        total = 0
        if self.root.exists():
            for p in self.root.rglob("*"):
                try:
                    if p.is_file():
                        st = p.stat()
                        total += getattr(st, "st_blocks", math.ceil(st.st_size / 512)) * 512
                except OSError:
                    pass
        return total
