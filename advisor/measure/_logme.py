"""LogME: logarithm of the maximum label evidence (You et al., ICML 2021).

For every target class ``c`` the one-hot column ``y_c`` (shape ``[N]``, values
0/1) is modelled by Bayesian linear regression on the frozen features
``F`` (shape ``[N, D]``)::

    y = F w + e,   w ~ N(0, alpha^-1 I_D),   e ~ N(0, beta^-1 I_N)

so that marginally ``y ~ N(0, beta^-1 I_N + alpha^-1 F F^T)``.  The log of this
marginal likelihood (the *evidence*) is maximised over ``alpha, beta > 0`` with
MacKay's fixed-point iteration, as in the paper's Algorithm 1::

    gamma = sum_k beta s_k / (alpha + beta s_k)
    m     = beta (alpha I + beta F^T F)^-1 F^T y
    alpha = gamma / (m^T m)
    beta  = (N - gamma) / ||F m - y||^2

where ``s_k`` are the eigenvalues of ``F^T F`` (squared singular values of F).
Everything is evaluated in the eigenbasis of the smaller Gram matrix
(``F^T F`` when ``N >= D``, ``F F^T`` when ``N < D``), i.e. the SVD of ``F``,
computed once per call and shared by all classes; the iterations themselves
are vectorised over classes.  Where the fixed point converges slowly (strong
alpha/beta coupling, optimum near a boundary) it is finished by safeguarded
Newton steps on the one-dimensional profile evidence in ``log(alpha/beta)``,
and the two boundary limits (``alpha -> inf``: labels unrelated to the
features; ``beta -> inf`` with ``N <= D``: exact interpolation) are evaluated in
closed form and reported where they are larger.  The maximised evidence is
divided by ``N`` and averaged over classes.  Units: nats per sample.  Features are used as given
(no centring or scaling), as in the paper.
"""

from __future__ import annotations

import numpy as np

from advisor.errors import AdvisorError
from advisor.measure._labels import encode_labels

_LOG_2PI = float(np.log(2.0 * np.pi))
_MAX_ITER = 100
_NEWTON_ITER = 50
_TOL = 1e-10  # stop when no class's evidence per sample moves by more than this (nats)


def _check_features(features, name: str = "features") -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise AdvisorError(f"{name} must be a 2-D array [N, D], got shape {x.shape}",
                           "flatten or pool the activations to one vector per sample")
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise AdvisorError(f"{name} has shape {x.shape}; need at least 2 samples and 1 feature",
                           "pass more samples")
    if not np.all(np.isfinite(x)):
        raise AdvisorError(f"{name} contains NaN or infinite values",
                           "check the feature extraction for overflow")
    return x


def _profile(t, sig, z2, yy, n):
    """Evidence profile over t = log(alpha / beta) (beta optimal), its first and second derivatives.

    ``sig``: ``[K, 1]`` eigenvalues of the Gram matrix; ``z2``: ``[K, C]``
    squared projections ``(s_k u_k^T y)^2``; ``yy``: ``[C]`` ``||y||^2``.
    Returns three ``[C]`` arrays (not divided by N).
    """
    lam = np.exp(t)
    den = lam + sig                                              # [K, C]
    q = np.maximum(yy - np.sum(z2 / den, axis=0), yy * 1e-14)    # y^T (I + F F^T / lam)^-1 y
    a = np.sum(z2 / den ** 2, axis=0)
    b = np.sum(z2 / den ** 3, axis=0)
    value = (-0.5 * n * (_LOG_2PI + 1.0) - 0.5 * n * np.log(q / n)
             - 0.5 * np.sum(np.log1p(sig / lam), axis=0))
    dq = lam * a
    grad = -0.5 * n * dq / q + 0.5 * np.sum(sig / den, axis=0)
    hess = (-0.5 * n * ((lam * a - 2.0 * lam * lam * b) / q - (dq / q) ** 2)
            - 0.5 * np.sum(sig * lam / den ** 2, axis=0))
    return value, grad, hess


def logme_per_class(features, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class maximised LogME evidence and the maximising hyper-parameters.

    Args:
        features: ``[N, D]`` real features (any float dtype; used in float64).
        labels: ``[N]`` class labels (any values; mapped to ``0..C-1`` in sorted order).

    Returns:
        ``(evidence, alpha, beta)``, each ``[C]``: the maximum log evidence of
        the one-hot column of each class divided by ``N`` (nats per sample),
        and the prior precision ``alpha`` and noise precision ``beta`` at which
        it is attained (``alpha = inf`` or ``beta = inf`` for a supremum at a
        boundary; :func:`log_evidence` accepts those values).
    """
    f = _check_features(features)
    n, d = f.shape
    idx, n_classes = encode_labels(labels, n)
    y = np.zeros((n, n_classes), dtype=np.float64)
    y[np.arange(n), idx] = 1.0

    # One eigendecomposition of the smaller Gram matrix == the SVD of F.
    if n >= d:
        sig, v = np.linalg.eigh(f.T @ f)               # [D], [D, D]
        z2 = (v.T @ (f.T @ y)) ** 2                    # (s_k u_k^T y)^2, [D, C]
    else:
        sig, u = np.linalg.eigh(f @ f.T)               # [N], [N, N]
        sig = np.clip(sig, 0.0, None)
        z2 = sig[:, None] * (u.T @ y) ** 2             # (s_k u_k^T y)^2, [N, C]
    sig = np.clip(sig, 0.0, None)[:, None]             # [K, 1]
    k = sig.shape[0]                                   # K = min(N, D)
    yy = np.sum(y * y, axis=0)                         # [C]
    tiny = np.finfo(np.float64).tiny
    smax = float(sig.max())
    if smax <= 0.0:
        # all-zero features explain nothing: the evidence is the alpha -> inf limit
        beta0 = n / yy
        return -0.5 * (_LOG_2PI + 1.0 + np.log(yy / n)), np.full(n_classes, np.inf), beta0

    def evaluate(alpha, beta):
        """Posterior summaries and log evidence (not yet divided by N) at (alpha, beta)."""
        denom = alpha + beta * sig                     # [K, C]
        gamma = np.sum(beta * sig / denom, axis=0)
        mm = np.sum(beta * beta * z2 / denom ** 2, axis=0)                      # m^T m
        fit = np.sum(z2 * beta * (2.0 * alpha + beta * sig) / denom ** 2, axis=0)
        res = np.maximum(yy - fit, yy * 1e-14)        # ||F m - y||^2
        logdet_a = np.sum(np.log(denom), axis=0) + (d - k) * np.log(alpha)   # log|alpha I + beta F^T F|
        ev = (0.5 * n * np.log(beta) + 0.5 * d * np.log(alpha) - 0.5 * n * _LOG_2PI
              - 0.5 * beta * res - 0.5 * alpha * mm - 0.5 * logdet_a)
        return gamma, np.maximum(mm, tiny), res, ev

    alpha = np.ones(n_classes)
    beta = np.ones(n_classes)
    gamma, mm, res, evidence = evaluate(alpha, beta)
    for _ in range(_MAX_ITER):
        beta = np.clip((n - gamma) / res, 1e-150, 1e150)
        # alpha / beta below 1e-16 * max eigenvalue is numerically zero: keep it above
        alpha = np.clip(np.maximum(gamma / mm, 1e-16 * smax * beta), 1e-150, 1e150)
        gamma, mm, res, new_evidence = evaluate(alpha, beta)
        converged = np.all(np.abs(new_evidence - evidence) <= _TOL * n)
        evidence = new_evidence
        if converged:
            break

    # Polish.  Near a boundary, or when alpha and beta are strongly coupled, the
    # fixed point creeps.  For a fixed ratio lam = alpha / beta the best beta is
    # N / q(lam), q(lam) = y^T (I + F F^T / lam)^-1 y, so the evidence profile
    #   P(t) = -N/2 (log 2pi + 1) - N/2 log(q / N) - 1/2 sum_k log(1 + s_k / lam),
    # t = log lam, is one-dimensional: finish with safeguarded Newton steps on it
    # (vectorised over classes, monotone) and keep whichever point is better.
    t_min, t_max = np.log(1e-16 * smax), np.log(1e16 * smax)   # beyond: numerically 0 / inf
    t = np.clip(np.log(alpha / beta), t_min, t_max)
    p_val, grad, hess = _profile(t, sig, z2, yy, n)
    for _ in range(_NEWTON_ITER):
        step = np.where(hess < 0, -grad / np.where(hess < 0, hess, -1.0), np.sign(grad))
        step = np.clip(step, -5.0, 5.0)
        for _ in range(40):                      # halve until the profile does not drop
            cand = np.clip(t + step, t_min, t_max)
            p_new, g_new, h_new = _profile(cand, sig, z2, yy, n)
            worse = p_new < p_val - 1e-13 * np.abs(p_val)     # ignore round-off
            if not worse.any():
                break
            step = np.where(worse, 0.5 * step, step)
        take = p_new >= p_val - 1e-13 * np.abs(p_val)
        gain = np.max(np.where(take, p_new - p_val, 0.0))
        t = np.where(take, cand, t)
        p_val, grad, hess = (np.where(take, p_new, p_val), np.where(take, g_new, grad),
                             np.where(take, h_new, hess))
        if gain <= 1e-13 * n or np.all(np.abs(step) < 1e-12):
            break
    lam = np.exp(t)
    q = np.maximum(yy - np.sum(z2 / (lam + sig), axis=0), yy * 1e-14)
    beta_p = np.clip(n / q, 1e-150, 1e150)
    alpha_p = np.clip(lam * beta_p, 1e-150, 1e150)
    ev_p = evaluate(alpha_p, beta_p)[3]
    better = ev_p > evidence
    evidence = np.where(better, ev_p, evidence)
    alpha = np.where(better, alpha_p, alpha)
    beta = np.where(better, beta_p, beta)

    # When the evidence keeps growing as alpha -> inf (labels unrelated to the
    # features: w -> 0) the fixed point creeps towards the boundary; its limit
    # is y ~ N(0, beta^-1 I) with beta = N / ||y||^2.  Report it where larger.
    beta_inf = n / yy
    ev_inf = -0.5 * n * (_LOG_2PI + 1.0 + np.log(yy / n))
    at_inf = ev_inf >= evidence - 1e-12 * np.abs(evidence)   # prefer the exact limit over round-off
    evidence = np.where(at_inf, ev_inf, evidence)
    alpha = np.where(at_inf, np.inf, alpha)
    beta = np.where(at_inf, beta_inf, beta)

    # With N <= D and F F^T non-singular the features can interpolate y exactly,
    # and the evidence may keep growing as beta -> inf (noise-free limit
    # y ~ N(0, F F^T / alpha), best alpha = N / y^T (F F^T)^-1 y).  Report it where larger.
    if k == n and sig.min() > 1e-10 * sig.max():
        s = sig[:, 0]
        alpha_lim = n / np.sum(z2 / (s * s)[:, None], axis=0)          # y^T (F F^T)^-1 y = sum z2 / s^2
        ev_lim = (-0.5 * n * _LOG_2PI - 0.5 * np.sum(np.log(s)) + 0.5 * n * np.log(alpha_lim)
                  - 0.5 * n)
        at_lim = ev_lim > evidence
        evidence = np.where(at_lim, ev_lim, evidence)
        alpha = np.where(at_lim, alpha_lim, alpha)
        beta = np.where(at_lim, np.inf, beta)
    return evidence / n, alpha, beta


def logme(features, labels) -> float:
    """LogME transferability score of ``features`` for the target ``labels``.

    Args:
        features: ``[N, D]`` features of the target samples from the network.
        labels: ``[N]`` integer target labels, at least 2 distinct classes.

    Returns:
        Mean over classes of the maximised log evidence divided by ``N``
        (nats per sample; higher means more transferable).
    """
    evidence, _, _ = logme_per_class(features, labels)
    return float(np.mean(evidence))


def log_evidence(features, y, alpha: float, beta: float) -> float:
    """Log evidence ``log N(y; 0, beta^-1 I + alpha^-1 F F^T) / N`` computed directly.

    Builds the explicit ``[N, N]`` covariance; ``O(N^3)``, meant for tests and
    small problems only.

    Args:
        features: ``[N, D]`` features ``F``.
        y: ``[N]`` real targets (e.g. a one-hot column).
        alpha: prior precision of the weights (> 0; ``inf`` allowed).
        beta: noise precision (> 0; ``inf`` allowed when ``F F^T`` is non-singular).

    Returns:
        The log marginal likelihood divided by ``N`` (nats per sample).
    """
    f = _check_features(features)
    t = np.asarray(y, dtype=np.float64).reshape(-1)
    n = f.shape[0]
    if t.shape[0] != n:
        raise AdvisorError(f"features have {n} samples but y has {t.shape[0]}",
                           "pass one target per feature row")
    if not (alpha > 0 and beta > 0):
        raise AdvisorError(f"alpha and beta must be positive, got {alpha}, {beta}",
                           "pass positive precisions")
    cov = np.eye(n) / beta + (f @ f.T) / alpha
    sign, logdet = np.linalg.slogdet(cov)
    if sign <= 0:
        raise AdvisorError("covariance is not positive definite", "check alpha and beta")
    quad = float(t @ np.linalg.solve(cov, t))
    return float((-0.5 * n * _LOG_2PI - 0.5 * logdet - 0.5 * quad) / n)
