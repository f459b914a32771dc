"""NCE: negative conditional entropy (Tran et al., ICCV 2019).

With hard source labels ``z_i`` (e.g. the source classifier's arg-max) and
target labels ``y_i`` on the same ``N`` samples, the empirical joint
``P(y, z) = #{i: y_i = y, z_i = z} / N`` gives::

    NCE = -H(Y | Z) = sum_{y,z} P(y, z) log( P(y, z) / P(z) )

Units: nats; always <= 0, and exactly 0 when ``y`` is a function of ``z``.
"""

from __future__ import annotations

import numpy as np

from advisor.errors import AdvisorError


def nce(source_labels, labels) -> float:
    """Negative conditional entropy ``-H(Y|Z)`` of target labels given source labels.

    Args:
        source_labels: ``[N]`` hard source labels ``z`` (any values; one
            distinct value is allowed).
        labels: ``[N]`` target labels ``y``, at least 2 distinct classes.

    Returns:
        ``-H(Y|Z)`` in nats (<= 0; higher means more transferable).
    """
    z = np.asarray(source_labels)
    y = np.asarray(labels)
    if z.ndim != 1 or y.ndim != 1:
        raise AdvisorError(f"source_labels and labels must be 1-D, got shapes {z.shape} and {y.shape}",
                           "pass one hard label per sample")
    if z.shape[0] != y.shape[0]:
        raise AdvisorError(f"source_labels has {z.shape[0]} samples but labels has {y.shape[0]}",
                           "pass one source and one target label per sample")
    if y.shape[0] < 2:
        raise AdvisorError("need at least 2 samples", "pass more samples")
    _, zi = np.unique(z, return_inverse=True)
    _, yi = np.unique(y, return_inverse=True)
    zi, yi = zi.reshape(-1), yi.reshape(-1)
    n_z, n_y = int(zi.max()) + 1, int(yi.max()) + 1
    if n_y < 2:
        raise AdvisorError("labels contain a single class; need at least 2",
                           "use a target dataset with two or more classes")
    joint = np.bincount(yi * n_z + zi, minlength=n_y * n_z).reshape(n_y, n_z) / y.shape[0]
    pz = joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    value = np.sum(joint[nz] * np.log((joint / np.where(pz > 0, pz, 1.0))[nz]))
    return float(min(value, 0.0))
