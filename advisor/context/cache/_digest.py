"""Digests of a backbone's weights per block, so an entry is only ever served for the weights that made it."""

from __future__ import annotations

import hashlib
import threading
import weakref

import torch

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
