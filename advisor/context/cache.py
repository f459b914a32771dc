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
``dataset.images_fingerprint()`` (the images only: label variants of the same images share entries),
the device it is computed on (type, and the GPU's name on CUDA), the precision (parameter dtype, and
TF32 on CUDA), the torch/torchvision/timm versions and :data:`FORMAT_VERSION`. The weights digest makes
random-weight backbones and backbones whose *later* blocks were fine-tuned safe: an entry is only ever
served for exactly the weights that produced it; the device, precision and versions make sure an entry
filled on a GPU or by another torch never feeds a CPU run that promises reproducibility.

On disk, under ``root/<key[:2]>/<key>/``::

    data.npy   NumPy memmap [len(dataset), ...]   (created sparse; rows written as computed)
    done.npy   bool [len(dataset)]                (True = row computed)
    meta.json  the key parts, for humans and ``advisor cache info``
    used       empty; its mtime is when the entry was last filled or read (for LRU eviction)
    lock       flock: exclusive to create, fill or remove the entry, shared to read it

Rows are written (and flushed) before their ``done`` flag, and a row is never rewritten once done, so
readers see either "not done" or the final value. Locks are taken on a fresh file descriptor each time,
so they hold between threads of one process as well as between processes.

Size limits. ``max_bytes`` limits one entry: an entry that would take more (see :meth:`boundary_bytes`)
does not *fit*. ``max_total`` (default :func:`default_cache_cap`, ``$ADVISOR_CACHE_MAX``) caps the
whole folder: when a new entry is created, the least recently used entries are removed until the
folder's entries and the new one fit under it (0 stores nothing). Entries another thread or process holds (filling or
reading) are skipped, so the folder can exceed the cap while more than it is in use at once. An entry
bigger than either limit is never stored: :meth:`ensure` skips it and :meth:`pooled` / :meth:`boundary`
compute it on every call (counted in ``stats["bypassed"]``). Trainers that call :meth:`boundary` once
per batch should check :meth:`fits` first and run the frozen blocks themselves when it is False.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import numbers
import os
import re
import threading
import time
import weakref
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from advisor.errors import AdvisorError

#: Bumped whenever the on-disk layout, the key or the meaning of a stored value changes.
FORMAT_VERSION = 2

#: The folder cap when ``$ADVISOR_CACHE_MAX`` is not set.
DEFAULT_CACHE_MAX = 20 * 2**30

_FP16_MAX = float(np.finfo(np.float16).max)


def default_cache_dir() -> Path:
    """``$ADVISOR_CACHE`` if set, else ``~/.cache/advisor/activations``."""
    env = os.environ.get("ADVISOR_CACHE", "").strip()
    if env:
        return Path(os.path.expanduser(env))
    return Path.home() / ".cache" / "advisor" / "activations"


_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text: str, name: str = "size") -> int:
    """``"20G"``, ``"500M"``, ``"1.5GiB"``, ``"123456"`` -> bytes (K, M, G, T are powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:I?B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise AdvisorError(f"bad {name} {text!r}", "use a size such as 20G, 500M or a plain number of bytes")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def default_cache_cap() -> int:
    """``$ADVISOR_CACHE_MAX`` in bytes if set, else :data:`DEFAULT_CACHE_MAX` (20 GiB)."""
    env = os.environ.get("ADVISOR_CACHE_MAX", "").strip()
    return parse_size(env, "ADVISOR_CACHE_MAX") if env else DEFAULT_CACHE_MAX


def format_size(n: float) -> str:
    """Bytes for people: ``"512 B"``, ``"1.5 MiB"``, ``"20.0 GiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""  # pragma: no cover


# ------------------------------------------------------------------------------- locks
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


_BACKBONE_LOCKS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_BACKBONE_LOCKS_GUARD = threading.Lock()


def _backbone_lock(backbone) -> threading.RLock:
    """One lock per backbone object: a forward pass switches it to eval mode and back, so two threads
    must not run it at once (one would restore training mode under the other's pass)."""
    with _BACKBONE_LOCKS_GUARD:
        lock = _BACKBONE_LOCKS.get(backbone)
        if lock is None:
            lock = _BACKBONE_LOCKS[backbone] = threading.RLock()
        return lock


# ------------------------------------------------------------- device, precision, versions
def _package_versions() -> dict[str, str | None]:
    from importlib import metadata

    out = {"torch": torch.__version__}
    for name in ("torchvision", "timm"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


_VERSIONS: dict[str, str | None] = {}


def _versions() -> dict[str, str | None]:
    if not _VERSIONS:
        _VERSIONS.update(_package_versions())
    return dict(_VERSIONS)


def _device_id(device: torch.device) -> str:
    """``cpu``, ``mps``, or ``cuda:<GPU name>`` (kernels differ between GPU models)."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


def _precision(backbone, device: torch.device) -> str:
    """The parameters' floating dtype; on CUDA also whether convolutions and matmuls may use TF32."""
    dtype = next((p.dtype for p in backbone.parameters() if p.is_floating_point()), torch.float32)
    text = str(dtype).replace("torch.", "")
    if device.type == "cuda":
        tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        text += f",tf32(conv={int(tf32[0])},matmul={int(tf32[1])})"
    return text


def _images_fingerprint(dataset) -> str:
    fn = getattr(dataset, "images_fingerprint", None)
    return fn() if fn is not None else dataset.fingerprint()


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
    """Eval mode and no_grad for the duration; every module's own training flag is restored after.

    Holds the backbone's lock (see :func:`_backbone_lock`) throughout."""
    with _backbone_lock(backbone):
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
        self._guard = threading.Lock()

    def block(self, module: torch.nn.Module) -> str:
        with self._guard:
            return self._block(module)

    def _block(self, module: torch.nn.Module) -> str:
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

    def _data_bytes(self, ctx, kind: str, index: int) -> int:
        itemsize = 4 if kind == "pooled" else 2
        return len(ctx.dataset) * int(np.prod(self._item_shape(ctx, kind, index))) * itemsize

    def boundary_bytes(self, ctx, boundary: int) -> int:
        """Bytes a whole-dataset float16 entry of ``boundary`` takes (shape probed at the crop size)."""
        return self._data_bytes(ctx, "boundary", _boundary_index(ctx.backbone, boundary))

    def _fits(self, ctx, kind: str, index: int) -> bool:
        return self._data_bytes(ctx, kind, index) <= min(self.max_bytes, self.max_total)

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
        p_set = sorted(i for i in {_block_index(backbone, i) for i in pooled} if self._fits(ctx, "pooled", i))
        b_set = sorted(b for b in {_boundary_index(backbone, b) for b in boundaries} if self.fits(ctx, b))
        entries = [self._entry(ctx, "pooled", i) for i in p_set] + [self._entry(ctx, "boundary", b) for b in b_set]
        if not entries or idx.size == 0:
            return
        if all(self._all_done(e, idx) for e in entries):
            self._count(served=idx.size)
            return
        with contextlib.ExitStack() as stack:
            for e in sorted(entries, key=lambda e: e.key):  # one global order: no deadlock between fillers
                stack.enter_context(_Lock(e.lock))
            maps = {e.key: self._open(ctx, e) for e in entries}
            missing = np.zeros(idx.size, dtype=bool)
            for data, done in maps.values():
                missing |= ~np.asarray(done[idx])
            todo = idx[missing]
            self._count(served=idx.size - todo.size)
            for e in entries:
                self._touch(e)
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
        i = _block_index(ctx.backbone, block)
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
