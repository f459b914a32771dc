"""Domain classifier and proxy A-distance (Ben-David et al., 2007/2010).

A classifier is trained to tell set ``a`` (label 0) from set ``b`` (label 1);
its cross-validated error ``eps`` gives the proxy A-distance
``PAD = 2 (1 - 2 eps)``, 0 when the sets are indistinguishable and 2 when
they are perfectly separable.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from advisor.errors import AdvisorError

_MAX_ITER = 100
_TOL = 1e-3   # lbfgs stopping tolerance; 1e-4 costs ~3x the time for the same held-out accuracy


def _check_samples(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise AdvisorError(f"{name} must be a 2-D array [N, D], got shape {arr.shape}",
                           "pass one feature vector per sample")
    if not np.all(np.isfinite(arr)):
        raise AdvisorError(f"{name} contains NaN or infinite values", "check the feature extraction")
    return arr


def domain_classifier(a, b, *, folds: int = 5, seed: int = 0) -> tuple[float, float]:
    """Cross-validated accuracy of a logistic-regression a-vs-b classifier, and the PAD.

    The larger set is subsampled (without replacement, seeded) to the size
    ``n`` of the smaller one, so chance level is exactly 0.5.  Stratified
    K-fold cross-validation (``min(folds, n)`` folds, shuffled with ``seed``);
    in each fold the features are standardised with the training-fold mean
    and standard deviation and an L2-regularised logistic regression
    (sklearn, ``C=1``, lbfgs, ``tol=1e-3``, at most 100 iterations) is
    fitted.  Accuracy is pooled over all ``2n`` held-out predictions.

    Args:
        a: ``[Na, D]`` features of the first domain (e.g. source).
        b: ``[Nb, D]`` features of the second domain (e.g. target), same ``D``.
        folds: requested number of folds (>= 2).
        seed: seed of the subsampling and of the fold shuffle.

    Returns:
        ``(accuracy, pad)``: accuracy in ``[0, 1]`` and the proxy A-distance
        ``2 (1 - 2 eps)`` with ``eps = 1 - accuracy``, clipped to ``[0, 2]``.
    """
    xa = _check_samples(a, "a")
    xb = _check_samples(b, "b")
    if xa.shape[1] != xb.shape[1]:
        raise AdvisorError(f"a has {xa.shape[1]} features but b has {xb.shape[1]}",
                           "compare features taken from the same layer")
    if int(folds) != folds or folds < 2:
        raise AdvisorError(f"folds must be an integer >= 2, got {folds}", "pass folds=5")
    n = min(xa.shape[0], xb.shape[0])
    if n < 2:
        raise AdvisorError(f"each set needs at least 2 samples, got {xa.shape[0]} and {xb.shape[0]}",
                           "pass more samples")
    rng = np.random.default_rng(seed)
    if xa.shape[0] > n:
        xa = xa[np.sort(rng.choice(xa.shape[0], n, replace=False))]
    if xb.shape[0] > n:
        xb = xb[np.sort(rng.choice(xb.shape[0], n, replace=False))]
    x = np.concatenate([xa, xb])
    y = np.repeat([0, 1], n)

    n_folds = int(min(int(folds), n))
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    correct = 0
    for tr, te in splitter.split(x, y):
        z_tr = x[tr]                                   # fancy indexing copies: safe in place
        mu = z_tr.mean(axis=0)
        z_tr -= mu
        sd = np.sqrt(np.einsum("ij,ij->j", z_tr, z_tr) / z_tr.shape[0])
        const = (sd <= 1e-12 * np.abs(mu)) | (sd == 0)     # (numerically) constant features -> 0
        sd = np.where(const, np.inf, sd)
        z_tr /= sd
        z_te = x[te]
        z_te -= mu
        z_te /= sd
        clf = LogisticRegression(C=1.0, max_iter=_MAX_ITER, tol=_TOL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(z_tr, y[tr])
        correct += int(np.sum(clf.predict(z_te) == y[te]))
    acc = correct / (2 * n)
    pad = float(np.clip(2.0 * (1.0 - 2.0 * (1.0 - acc)), 0.0, 2.0))
    return float(acc), pad
