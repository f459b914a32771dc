"""LEEP: log expected empirical prediction (Nguyen et al., ICML 2020).

Given the source model's class-probability outputs ``theta(x_i)`` (shape
``[N, Z]`` over the ``Z`` source classes) on the target samples and their
target labels ``y_i``::

    P(y, z)  = (1/N) sum_i theta_z(x_i) [y_i = y]      empirical joint, [C, Z]
    P(y | z) = P(y, z) / P(z),  P(z) = sum_y P(y, z)
    LEEP     = (1/N) sum_i log sum_z P(y_i | z) theta_z(x_i)

Units: nats per sample; always <= 0, and 0 when the source prediction
determines the target label.
"""

from __future__ import annotations

import numpy as np

from advisor.errors import AdvisorError
from advisor.measure._labels import encode_labels


def _check_probs(source_probs, name: str = "source_probs") -> np.ndarray:
    p = np.asarray(source_probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1:
        raise AdvisorError(f"{name} must be a non-empty 2-D array [N, Z], got shape {p.shape}",
                           "pass the softmax outputs of the source classifier")
    if not np.all(np.isfinite(p)):
        raise AdvisorError(f"{name} contains NaN or infinite values", "check the source model outputs")
    if np.any(p < -1e-6):
        raise AdvisorError(f"{name} has negative entries", "apply softmax to the logits first")
    rows = p.sum(axis=1)
    if np.any(np.abs(rows - 1.0) > 1e-3):
        raise AdvisorError(f"{name} rows must sum to 1 (found sums from {rows.min():.4g} to {rows.max():.4g})",
                           "apply softmax to the logits first")
    p = np.clip(p, 0.0, None)
    return p / p.sum(axis=1, keepdims=True)


def leep(source_probs, labels) -> float:
    """LEEP score of a source classifier for the target labels.

    Args:
        source_probs: ``[N, Z]`` source-class probabilities of the target
            samples; rows must sum to 1 (within 1e-3; renormalised).
        labels: ``[N]`` target labels (any values), at least 2 distinct classes.

    Returns:
        LEEP in nats per sample (<= 0; higher means more transferable).
    """
    theta = _check_probs(source_probs)
    n = theta.shape[0]
    idx, n_classes = encode_labels(labels, n)
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), idx] = 1.0
    joint = (onehot.T @ theta) / n        # P(y, z) = mean_i theta_z(x_i) [y_i = y], [C, Z]
    pz = joint.sum(axis=0)
    cond = np.divide(joint, pz, out=np.zeros_like(joint), where=pz > 0)   # P(y | z)
    eep = np.einsum("iz,iz->i", theta, cond[idx])                        # sum_z P(y_i|z) theta_z(x_i)
    return float(np.mean(np.log(np.maximum(eep, np.finfo(np.float64).tiny))))
