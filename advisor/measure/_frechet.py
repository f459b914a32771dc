"""Fréchet distance between Gaussians fitted to two feature sets.

For ``N(mu_a, S_a)`` and ``N(mu_b, S_b)`` (the 2-Wasserstein distance squared,
as in FID)::

    d^2 = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})

The trace term is evaluated without forming a matrix square root of a
non-symmetric matrix: with any factors ``S_a = R_a^T R_a`` and
``S_b = R_b^T R_b``, the eigenvalues of ``S_a S_b`` are the squared singular
values of ``R_a R_b^T``, so ``Tr (S_a S_b)^{1/2} = sum_k sqrt(lambda_k)`` where
``lambda_k`` are the eigenvalues of the symmetric PSD matrix
``(R_a R_b^T)(R_a R_b^T)^T`` (tiny negative round-off clipped to 0).  The
factors are Cholesky factors (eigendecomposition square roots when a
covariance is singular) or, when a set has fewer samples than dimensions,
its centred data scaled by ``1/sqrt(n-1)``, which keeps the cost at
``O(min(n, D)^3)``.  Units: squared feature units.
"""

from __future__ import annotations

import numpy as np

from advisor.errors import AdvisorError


def _check_samples(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2 or a.shape[1] < 1:
        raise AdvisorError(f"{name} must be a 2-D array [N, D] with N >= 2, got shape {a.shape}",
                           "pass at least two feature vectors")
    if not np.all(np.isfinite(a)):
        raise AdvisorError(f"{name} contains NaN or infinite values", "check the feature extraction")
    return a


def _cov_factor(cov: np.ndarray) -> np.ndarray:
    """``R`` with ``R^T R = cov`` for a symmetric PSD ``[D, D]`` matrix."""
    try:
        return np.linalg.cholesky(cov).T
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(cov)
        return np.sqrt(np.clip(w, 0.0, None))[:, None] * v.T


def _trace_sqrt_product(ra: np.ndarray, rb: np.ndarray) -> float:
    """``Tr (S_a S_b)^{1/2}`` from factors ``S_a = ra^T ra``, ``S_b = rb^T rb``."""
    m = ra @ rb.T
    g = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    lam = np.linalg.eigvalsh(g)
    return float(np.sum(np.sqrt(np.clip(lam, 0.0, None))))


def _sample_factor(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and a covariance factor (unbiased, ``ddof=1``) of samples ``[n, D]``."""
    n, d = x.shape
    mu = x.mean(axis=0)
    xc = (x - mu) / np.sqrt(n - 1.0)
    if n - 1 < d:
        return mu, xc                     # [n, D], rank <= n - 1
    return mu, _cov_factor(xc.T @ xc)     # [D, D]


def frechet_distance(a, b) -> float:
    """Fréchet distance between Gaussians fitted to two sets of feature vectors.

    Means are sample means; covariances are unbiased sample covariances
    (``ddof=1``, like ``np.cov``).

    Args:
        a: ``[Na, D]`` features of the first set (``Na >= 2``).
        b: ``[Nb, D]`` features of the second set (``Nb >= 2``), same ``D``.

    Returns:
        The squared Fréchet (2-Wasserstein) distance, ``>= 0``, in squared
        feature units.
    """
    xa = _check_samples(a, "a")
    xb = _check_samples(b, "b")
    if xa.shape[1] != xb.shape[1]:
        raise AdvisorError(f"a has {xa.shape[1]} features but b has {xb.shape[1]}",
                           "compare features taken from the same layer")
    mu_a, ra = _sample_factor(xa)
    mu_b, rb = _sample_factor(xb)
    diff = mu_a - mu_b
    tr = float(np.sum(ra * ra) + np.sum(rb * rb)) - 2.0 * _trace_sqrt_product(ra, rb)
    return float(max(diff @ diff + tr, 0.0))


def frechet_from_moments(mu_a, cov_a, mu_b, cov_b) -> float:
    """Fréchet distance between ``N(mu_a, cov_a)`` and ``N(mu_b, cov_b)``.

    Args:
        mu_a: ``[D]`` mean of the first Gaussian.
        cov_a: ``[D, D]`` symmetric PSD covariance of the first Gaussian.
        mu_b: ``[D]`` mean of the second Gaussian.
        cov_b: ``[D, D]`` symmetric PSD covariance of the second Gaussian.

    Returns:
        The squared Fréchet distance, ``>= 0``, in squared units of the means.
    """
    ma = np.atleast_1d(np.asarray(mu_a, dtype=np.float64))
    mb = np.atleast_1d(np.asarray(mu_b, dtype=np.float64))
    ca = np.atleast_2d(np.asarray(cov_a, dtype=np.float64))
    cb = np.atleast_2d(np.asarray(cov_b, dtype=np.float64))
    d = ma.shape[0]
    if ma.ndim != 1 or mb.shape != (d,) or ca.shape != (d, d) or cb.shape != (d, d):
        raise AdvisorError(f"moment shapes do not match: mu_a {ma.shape}, cov_a {ca.shape}, "
                           f"mu_b {mb.shape}, cov_b {cb.shape}",
                           "pass means [D] and covariances [D, D] of the same D")
    for name, arr in (("mu_a", ma), ("cov_a", ca), ("mu_b", mb), ("cov_b", cb)):
        if not np.all(np.isfinite(arr)):
            raise AdvisorError(f"{name} contains NaN or infinite values", "check the moments")
    ca = 0.5 * (ca + ca.T)
    cb = 0.5 * (cb + cb.T)
    diff = ma - mb
    tr = float(np.trace(ca) + np.trace(cb)) - 2.0 * _trace_sqrt_product(_cov_factor(ca), _cov_factor(cb))
    return float(max(diff @ diff + tr, 0.0))
