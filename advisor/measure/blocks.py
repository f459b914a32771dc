"""Per-block measurements from one collected pass: shift and transferability."""

from __future__ import annotations

from typing import Callable

import numpy as np

from advisor.measure._domain import domain_classifier
from advisor.measure._frechet import frechet_distance
from advisor.measure._knn import knn_accuracy, linear_probe_accuracy
from advisor.measure._logme import logme
from advisor.measure.profile import BlockProfile


def _labelled(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows with a label, and those labels re-indexed to 0..K-1."""
    rows = np.flatnonzero(labels >= 0)
    _, y = np.unique(labels[rows], return_inverse=True)
    return rows, y


def block_profiles(
    collected,
    block_names: list[str],
    tasks: list[str],
    *,
    seed: int = 0,
    shifts: list[float | None] | None = None,
    source_pooled: list[np.ndarray] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[BlockProfile]:
    """Shift and transferability for every block.

    ``collected`` is an ``advisor.measure.collect.Collected``; ``shifts`` one value per block from the
    shift measure (``advisor.measure.shift``; ``None``: no shift); ``source_pooled`` the pooled block
    outputs of an optional source-domain sample (same blocks).
    Tasks with fewer than two classes present in the sample are left out.
    """
    per_task = []
    for j, task in enumerate(tasks):
        rows, y = _labelled(collected.labels[:, j])
        if np.unique(y).size >= 2:
            per_task.append((task, rows, y))
    out = []
    for i, name in enumerate(block_names):
        feats = collected.pooled[i]
        shift = None if shifts is None else shifts[i]
        bp = BlockProfile(
            index=i,
            name=name,
            channels=int(feats.shape[1]),
            n_bn_layers=int(collected.n_bn[i]),
            shift=None if shift is None else float(shift),
            logme={t: float(logme(feats[r], y)) for t, r, y in per_task},
            knn_accuracy={t: float(knn_accuracy(feats[r], y, seed=seed)) for t, r, y in per_task},
            linear_probe_accuracy={t: float(linear_probe_accuracy(feats[r], y, seed=seed)) for t, r, y in per_task},
        )
        if source_pooled is not None:
            bp.frechet = float(frechet_distance(feats, source_pooled[i]))
            acc, pad = domain_classifier(feats, source_pooled[i], seed=seed)
            bp.domain_accuracy, bp.proxy_a_distance = float(acc), float(pad)
        out.append(bp)
        if progress is not None:
            progress(i + 1, len(block_names))
    return out
