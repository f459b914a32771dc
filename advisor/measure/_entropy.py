"""Mean prediction entropy of a source classifier on the target samples."""

from __future__ import annotations

import numpy as np
from scipy.special import xlogy

from advisor.errors import AdvisorError


def prediction_entropy(source_probs) -> tuple[float, float]:
    """Mean Shannon entropy of the per-sample source-class distributions.

    Args:
        source_probs: ``[N, Z]`` source-class probabilities, ``Z >= 2``; rows
            must sum to 1 (within 1e-3; renormalised).

    Returns:
        ``(mean_entropy, normalised)``: the mean over samples of
        ``-sum_z p_z log p_z`` in nats (``0 log 0 = 0``), and that mean divided
        by ``log Z`` (in ``[0, 1]``; 1 means uniform predictions).
    """
    p = np.asarray(source_probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1:
        raise AdvisorError(f"source_probs must be a non-empty 2-D array [N, Z], got shape {p.shape}",
                           "pass the softmax outputs of the source classifier")
    if p.shape[1] < 2:
        raise AdvisorError(f"source_probs has {p.shape[1]} column(s); need at least 2 source classes",
                           "pass the full class-probability vectors")
    if not np.all(np.isfinite(p)) or np.any(p < -1e-6):
        raise AdvisorError("source_probs has NaN, infinite or negative entries",
                           "apply softmax to the logits first")
    rows = p.sum(axis=1)
    if np.any(np.abs(rows - 1.0) > 1e-3):
        raise AdvisorError(f"source_probs rows must sum to 1 (found sums from {rows.min():.4g} to {rows.max():.4g})",
                           "apply softmax to the logits first")
    p = np.clip(p, 0.0, None)
    p /= p.sum(axis=1, keepdims=True)
    mean_h = float(np.mean(-np.sum(xlogy(p, p), axis=1)))
    return mean_h, mean_h / float(np.log(p.shape[1]))
