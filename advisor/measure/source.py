"""Scores from the source classifier's predictions: LEEP, NCE, prediction entropy."""

from __future__ import annotations

import numpy as np

from advisor.measure._entropy import prediction_entropy
from advisor.measure._leep import leep
from advisor.measure._nce import nce
from advisor.measure.profile import SourceProfile


def source_profile(source_probs: np.ndarray, labels: np.ndarray) -> SourceProfile | None:
    """``source_probs`` [n, Z] softmax outputs, ``labels`` [n] target labels (-1 = missing)."""
    rows = np.flatnonzero(labels >= 0)
    if rows.size == 0:
        return None
    _, y = np.unique(labels[rows], return_inverse=True)
    probs = source_probs[rows]
    ent, ent_norm = prediction_entropy(probs)
    return SourceProfile(
        num_source_classes=int(probs.shape[1]),
        leep=float(leep(probs, y)),
        nce=float(nce(probs.argmax(axis=1), y)),
        entropy=float(ent),
        entropy_normalised=float(ent_norm),
    )
