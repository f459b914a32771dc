import numpy as np
import pytest

from advisor.errors import AdvisorError
from advisor.measure._logme import log_evidence, logme, logme_per_class


EPS = np.finfo(np.float64).eps


def _round_off(f, y, alpha, beta):
    """Bound on the round-off (nats per sample) in one float64 evaluation of the log evidence at (alpha, beta).

    The evidence per sample is -1/2 log 2 pi - 1/2 log|C| / N - 1/2 y^T C^-1 y / N with
    C = I / beta + F F^T / alpha (alpha or beta may be inf).  Both routes in these tests (the fast
    path's eigendecomposition of the Gram matrix and log_evidence's slogdet and solve of C) are backward
    stable: with m = max(N, D) the longest sum, each eigenvalue/pivot c_k of C is off by at most
    m eps c_max, i.e. relatively by m eps kappa(C), and so is y^T C^-1 y.  Hence
    |error| <= m eps kappa(C) (1 + y^T C^-1 y / N) / 2, taken 4x for the constants of LAPACK's bounds.
    (Measured over OpenBLAS's kernels, OPENBLAS_CORETYPE=Haswell/Sandybridge/Nehalem/Prescott/...:
    at most 2.4e-15 between the two routes; this bound is 8e-14 to 2e-12 here.)
    """
    f = np.asarray(f, dtype=np.float64)
    n = f.shape[0]
    s, u = np.linalg.eigh(f @ f.T)
    c = np.clip(s, 0, None) / alpha + 1.0 / beta          # eigenvalues of C (1 / inf = 0)
    quad = float(np.sum((u.T @ y) ** 2 / c))
    return 2.0 * max(f.shape) * EPS * (c.max() / c.min()) * (1.0 + quad / n)


def _predictable(n, d, classes, seed, noise=0.5):
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((n, d))
    w = rng.standard_normal((d, classes))
    y = np.argmax(f @ w + noise * rng.standard_normal((n, classes)), axis=1)
    return f, y


@pytest.mark.parametrize("n,d", [(150, 20), (40, 90), (60, 60)])
def test_fast_path_matches_direct_evidence(n, d):
    f, y = _predictable(n, d, 3, seed=n + d)
    ev, alpha, beta = logme_per_class(f, y)
    assert ev.shape == (3,)
    tols = []
    for c in range(3):
        assert alpha[c] > 0 and beta[c] > 0       # beta may be inf (N < D interpolation limit)
        yc = (y == c).astype(float)
        direct = log_evidence(f, yc, alpha[c], beta[c])
        tols.append(2 * _round_off(f, yc, alpha[c], beta[c]))   # two evaluations
        assert ev[c] == pytest.approx(direct, abs=tols[c])
    # the same computation again (identical unless the BLAS reorders sums between calls)
    assert logme(f, y) == pytest.approx(float(np.mean(ev)), abs=max(tols))


@pytest.mark.parametrize("n,d", [(150, 20), (40, 90)])
def test_returned_evidence_is_a_maximum(n, d):
    f, y = _predictable(n, d, 3, seed=7 * n + d)
    ev, alpha, beta = logme_per_class(f, y)
    factors = [0.2, 0.5, 0.8, 0.95, 1.0, 1.05, 1.25, 2.0, 5.0]
    for c in range(3):
        yc = (y == c).astype(float)
        betas = beta[c] * np.array(factors) if np.isfinite(beta[c]) else [1.0, 10.0, 1e3, 1e5, 1e7, np.inf]
        grid = [log_evidence(f, yc, alpha[c] * fa, b) for fa in factors for b in betas]
        # the grid holds (alpha, beta) itself: two evaluations of one value may differ by round-off
        tol = max(_round_off(f, yc, alpha[c] * fa, b) for fa in factors for b in betas)
        assert ev[c] >= max(grid) - tol - _round_off(f, yc, alpha[c], beta[c])
        # and strictly above points away from the optimum (alpha is interior here;
        # with N < D beta may run to the interpolation limit, where L is flat in beta)
        assert ev[c] > log_evidence(f, yc, alpha[c] * 5.0, beta[c]) + 1e-6
        assert ev[c] > log_evidence(f, yc, alpha[c] * 0.2, beta[c]) + 1e-6
        if np.isfinite(beta[c]):
            assert ev[c] > log_evidence(f, yc, alpha[c], beta[c] * 0.2) + 1e-6


def test_interpolation_limit_is_a_candidate():
    # N < D: y lies in the column space of F and the evidence may grow as
    # beta -> inf; that limit is y ~ N(0, F F^T / alpha) with alpha = N / y^T (F F^T)^-1 y.
    f, y = _predictable(40, 90, 3, seed=7 * 40 + 90)
    ev, alpha, beta = logme_per_class(f, y)
    gram = f @ f.T
    limits, tols = [], []
    for c in range(3):
        yc = (y == c).astype(float)
        a_lim = 40 / (yc @ np.linalg.solve(gram, yc))
        logdet = np.linalg.slogdet(gram / a_lim)[1]
        limit = (-20 * np.log(2 * np.pi) - 0.5 * logdet - 20) / 40
        limits.append(limit)
        tols.append(2 * _round_off(f, yc, a_lim, np.inf))          # two evaluations of the limit
        assert ev[c] >= limit - tols[c]
        assert log_evidence(f, yc, a_lim, np.inf) == pytest.approx(limit, abs=tols[c])
        if np.isinf(beta[c]):       # approached from below along beta
            vals = [log_evidence(f, yc, a_lim, b) for b in (1e3, 1e5, 1e7)]
            assert vals[0] < vals[1] < vals[2] < limit
    at_limit = np.isinf(beta)
    assert at_limit.any() and not at_limit.all()
    assert np.all(np.abs(ev - np.array(limits))[at_limit] <= np.array(tols)[at_limit])


def test_orthogonal_features_reach_the_alpha_infinity_limit():
    # features orthogonal to every label column: F^T y = 0, so the evidence only
    # grows as alpha -> inf; the limit is y ~ N(0, beta^-1 I), beta = N / ||y||^2.
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1, 2], [20, 20, 20])
    onehot = np.eye(3)[y]
    f = rng.standard_normal((60, 5))
    f -= onehot @ np.linalg.lstsq(onehot, f, rcond=None)[0]
    ev, alpha, beta = logme_per_class(f, y)
    expected = -0.5 * (np.log(2 * np.pi) + 1 + np.log(20 / 60))
    tol = 2 * _round_off(f, onehot[:, 0], np.inf, 3.0)             # C = I / 3 for every class
    np.testing.assert_allclose(ev, expected, rtol=0, atol=tol)
    assert np.all(np.isinf(alpha))
    np.testing.assert_allclose(beta, 3.0)
    for c in range(3):
        yc = (y == c).astype(float)
        assert ev[c] >= log_evidence(f, yc, 1e8, 3.0) - tol - _round_off(f, yc, 1e8, 3.0)
        assert ev[c] > log_evidence(f, yc, 1.0, 3.0)


@pytest.mark.parametrize("n,d", [(300, 40), (80, 200)])
def test_predictable_labels_score_higher_than_random(n, d):
    f, y = _predictable(n, d, 4, seed=11, noise=0.1)
    rng = np.random.default_rng(5)
    random_labels = rng.permutation(y)
    assert logme(f, y) > logme(f, random_labels) + 0.02


def test_label_values_are_arbitrary():
    f, y = _predictable(100, 10, 3, seed=2)
    names = np.array(["cat", "dog", "emu"])[y]
    ev, alpha, beta = logme_per_class(f, y)
    tol = 2 * max(_round_off(f, (y == c).astype(float), alpha[c], beta[c]) for c in range(3))
    assert logme(f, names) == pytest.approx(logme(f, y), abs=tol)


def test_invalid_inputs_raise():
    f = np.zeros((10, 3))
    with pytest.raises(AdvisorError):
        logme(f, np.zeros(10, dtype=int))            # one class
    with pytest.raises(AdvisorError):
        logme(f, np.arange(9) % 2)                   # length mismatch
    with pytest.raises(AdvisorError):
        logme(np.full((10, 3), np.nan), np.arange(10) % 2)
    with pytest.raises(AdvisorError):
        log_evidence(f, np.ones(10), -1.0, 1.0)
