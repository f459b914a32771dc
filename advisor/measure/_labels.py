"""Shared label checks for the metrics."""

from __future__ import annotations

import numpy as np

from advisor.errors import AdvisorError


def encode_labels(labels, n: int) -> tuple[np.ndarray, int]:
    """Labels ``[n]`` of any values -> (indices 0..K-1 ``[n]``, K); K must be at least 2."""
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise AdvisorError(f"labels must have shape [{n}] to match the {n} samples, got {y.shape}",
                           "pass one label per sample")
    _, idx = np.unique(y, return_inverse=True)
    idx = idx.reshape(-1)
    n_classes = int(idx.max()) + 1 if idx.size else 0
    if n_classes < 2:
        raise AdvisorError("labels contain a single class; need at least 2",
                           "use a target dataset with two or more classes")
    return idx, n_classes
