"""Cross-validated probes of frozen features: k-nearest-neighbour and ridge.

Both probes use the same stratified K-fold split and return the pooled
accuracy (fraction of all ``N`` samples predicted correctly when they were in
the held-out fold), a number in ``[0, 1]``.

Fold planning (shared):

* each class's samples are shuffled (seeded) and dealt round-robin to the
  folds, so every class is spread as evenly as possible;
* the number of folds is ``min(folds, smallest class size)`` but at least 2;
  a class with a single member therefore still has it evaluated once,
  "leave-one-out style": it is predicted from all the other folds, which hold
  no member of its class, so it always counts as an error (as it would in
  leave-one-out cross-validation);
* at least 4 samples are required (2 folds of 2).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from advisor.errors import AdvisorError
from advisor.measure._labels import encode_labels


def _check_inputs(features, labels) -> tuple[np.ndarray, np.ndarray, int]:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise AdvisorError(f"features must be a 2-D array [N, D], got shape {x.shape}",
                           "flatten or pool the activations to one vector per sample")
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise AdvisorError(f"features have {x.shape[0]} samples but labels have shape {y.shape}",
                           "pass one label per feature row")
    if not np.all(np.isfinite(x)):
        raise AdvisorError("features contain NaN or infinite values", "check the feature extraction")
    if x.shape[0] < 4:
        raise AdvisorError(f"only {x.shape[0]} samples; cross-validation needs at least 4",
                           "pass more samples")
    idx, n_classes = encode_labels(y, x.shape[0])
    return x, idx, n_classes


def _effective_folds(class_idx: np.ndarray, folds: int) -> int:
    if int(folds) != folds or folds < 2:
        raise AdvisorError(f"folds must be an integer >= 2, got {folds}", "pass folds=5")
    smallest = int(np.bincount(class_idx).min())
    return int(max(2, min(int(folds), smallest)))


def stratified_folds(class_idx, folds: int, seed: int = 0) -> np.ndarray:
    """Stratified fold assignment.

    Args:
        class_idx: ``[N]`` integer class indices ``0..C-1``.
        folds: number of folds (>= 2; not reduced here).
        seed: seed of the shuffle.

    Returns:
        ``[N]`` fold id in ``0..folds-1`` per sample.  Samples are shuffled,
        grouped by class (stable) and dealt round-robin, so each class's
        members are spread over the folds with counts differing by at most 1
        and fold sizes differ by at most 1.
    """
    c = np.asarray(class_idx).reshape(-1)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(c.shape[0])
    order = perm[np.argsort(c[perm], kind="stable")]
    fold_id = np.empty(c.shape[0], dtype=np.int64)
    fold_id[order] = np.arange(c.shape[0]) % folds
    return fold_id


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norm = np.sqrt(np.einsum("ij,ij->i", x, x))
    return x / np.maximum(norm, 1e-12)[:, None]


def knn_accuracy(features, labels, *, k: int = 10, folds: int = 5, seed: int = 0) -> float:
    """Stratified K-fold accuracy of a cosine k-nearest-neighbour classifier.

    In each fold the features are centred with the training-fold mean and
    L2-normalised; a held-out sample takes the majority label of its ``k``
    training neighbours with the highest cosine similarity, ties between
    labels broken by the larger summed similarity (then the lower class
    index).  ``k`` is capped at ``floor(m (F-1) / F)`` (at least 1), where
    ``m`` is the smallest class size and ``F`` the effective number of folds,
    i.e. at about the number of training members of the smallest class, so a
    tiny class can still win a vote.  See the module docstring for the folds.

    Args:
        features: ``[N, D]`` features.
        labels: ``[N]`` labels (any values), at least 2 classes, ``N >= 4``.
        k: number of neighbours before capping (>= 1).
        folds: requested number of folds (>= 2).
        seed: seed of the fold shuffle; results are deterministic per seed.

    Returns:
        Pooled cross-validated accuracy in ``[0, 1]``.
    """
    x, y, n_classes = _check_inputs(features, labels)
    if int(k) != k or k < 1:
        raise AdvisorError(f"k must be an integer >= 1, got {k}", "pass k=10")
    n_folds = _effective_folds(y, folds)
    smallest = int(np.bincount(y).min())
    k_eff = int(max(1, min(int(k), (smallest * (n_folds - 1)) // n_folds)))
    fold_id = stratified_folds(y, n_folds, seed)
    correct = 0
    for f in range(n_folds):
        te = fold_id == f
        tr = ~te
        mu = x[tr].mean(axis=0)
        a = _unit_rows(x[tr] - mu)                          # [n_tr, D]
        b = _unit_rows(x[te] - mu)                          # [n_te, D]
        sim = b @ a.T                                       # cosine similarities [n_te, n_tr]
        kk = min(k_eff, a.shape[0])
        nn = np.argpartition(-sim, kk - 1, axis=1)[:, :kk]  # k most similar (unordered)
        nn_sim = np.take_along_axis(sim, nn, axis=1)
        nn_lab = y[tr][nn]
        n_te = b.shape[0]
        slot = (np.arange(n_te)[:, None] * n_classes + nn_lab).ravel()
        votes = np.bincount(slot, minlength=n_te * n_classes).reshape(n_te, n_classes)
        simsum = np.bincount(slot, weights=nn_sim.ravel(),
                             minlength=n_te * n_classes).reshape(n_te, n_classes)
        # votes dominate (|simsum| <= kk), summed similarity breaks ties.
        score = votes * (2.0 * kk + 2.0) + simsum
        correct += int(np.sum(np.argmax(score, axis=1) == y[te]))
    return correct / x.shape[0]


def linear_probe_accuracy(features, labels, *, folds: int = 5, seed: int = 0,
                          l2: float = 1.0) -> float:
    """Stratified K-fold accuracy of a closed-form ridge-regression classifier.

    Features are standardised to zero mean and unit variance per feature
    with the statistics of all ``N`` samples (label-free; constant features
    become 0).  In each fold, ridge regression with an unpenalised intercept
    (equivalently: training-fold centring) is fitted to the one-hot targets,
    minimising ``||X W + 1 b^T - Y||_F^2 + l2 ||W||_F^2`` over the training
    fold; a held-out sample is assigned the class with the largest output.
    The solve is primal (``[D, D]`` systems from one shared Gram matrix) or
    dual (``[n_train, n_train]`` systems from one shared ``[N, N]`` kernel),
    whichever costs fewer flops; both give the same answer.  Folds as in the
    module docstring.

    Args:
        features: ``[N, D]`` features.
        labels: ``[N]`` labels (any values), at least 2 classes, ``N >= 4``.
        folds: requested number of folds (>= 2).
        seed: seed of the fold shuffle.
        l2: ridge penalty (> 0), in units of squared standardised features.

    Returns:
        Pooled cross-validated accuracy in ``[0, 1]``.
    """
    x, y, n_classes = _check_inputs(features, labels)
    if not (np.isfinite(l2) and l2 > 0):
        raise AdvisorError(f"l2 must be a positive number, got {l2}", "pass l2=1.0")
    n_folds = _effective_folds(y, folds)
    fold_id = stratified_folds(y, n_folds, seed)
    n, d = x.shape
    z = _standardise(x)
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), y] = 1.0

    n_tr_max = n - int(np.bincount(fold_id).min())
    primal_cost = 4.0 * n * d * d + n_folds * (d ** 3 / 3.0)
    dual_cost = 2.0 * n * n * d + n_folds * (n_tr_max ** 3 / 3.0 + 2.0 * n * n_tr_max)
    primal = primal_cost <= dual_cost
    shared = z.T @ z if primal else z @ z.T        # [D, D] Gram or [N, N] kernel

    correct = 0
    for f in range(n_folds):
        te = fold_id == f
        tr = ~te
        n_tr = int(tr.sum())
        ybar = onehot[tr].mean(axis=0)
        if primal:
            ztr, zte = z[tr], z[te]
            mu = ztr.mean(axis=0)
            lhs = shared - zte.T @ zte - n_tr * np.outer(mu, mu)   # centred training scatter
            lhs[np.diag_indices_from(lhs)] += l2
            rhs = ztr.T @ onehot[tr] - n_tr * np.outer(mu, ybar)
            w = cho_solve(cho_factor(lhs, lower=True, check_finite=False), rhs, check_finite=False)
            out = (zte - mu) @ w + ybar
        else:
            # centre the kernel with the training mean: (z_i - mu).(z_j - mu)
            m = shared[:, tr].mean(axis=1)                        # z_i . mu
            mm = m[tr].mean()                                     # mu . mu
            k_tr = shared[np.ix_(tr, tr)] - m[tr][:, None] - m[tr][None, :] + mm
            k_te = shared[np.ix_(te, tr)] - m[te][:, None] - m[tr][None, :] + mm
            k_tr[np.diag_indices_from(k_tr)] += l2
            coef = cho_solve(cho_factor(k_tr, lower=True, check_finite=False),
                             onehot[tr] - ybar, check_finite=False)
            out = k_te @ coef + ybar
        correct += int(np.sum(np.argmax(out, axis=1) == y[te]))
    return correct / n


def _standardise(x: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-variance columns; (numerically) constant columns become 0."""
    mean = x.mean(axis=0)
    z = x - mean
    sd = np.sqrt(np.einsum("ij,ij->j", z, z) / x.shape[0])
    const = sd <= 1e-12 * np.abs(mean)
    const |= sd == 0
    z /= np.where(const, 1.0, sd)
    z[:, const] = 0.0
    return z
