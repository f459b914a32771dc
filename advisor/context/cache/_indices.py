"""Which entry and which items a caller means: a boundary, item indices (a block by index or name:
:func:`advisor.block_ref.block_index`)."""

from __future__ import annotations

import numbers

import numpy as np

from advisor.errors import AdvisorError


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
