import numpy as np
import pytest

from advisor.errors import AdvisorError
from advisor.measure._frechet import frechet_distance, frechet_from_moments


EPS = np.finfo(np.float64).eps


def _product_eigenvalues(cov_a, cov_b):
    """Eigenvalues of S_a S_b, as those of the symmetric sqrt(S_a) S_b sqrt(S_a) (eigendecompositions)."""
    w, v = np.linalg.eigh(cov_a)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    return np.linalg.eigvalsh(root @ cov_b @ root)


def _reference(mu_a, cov_a, mu_b, cov_b):
    """Definition: ||mu_a - mu_b||^2 + Tr S_a + Tr S_b - 2 sum_k sqrt(lambda_k(S_a S_b))."""
    inner = _product_eigenvalues(cov_a, cov_b)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
                 - 2 * np.sum(np.sqrt(np.clip(inner, 0, None))))


def _round_off(mu_a, cov_a, mu_b, cov_b, n):
    """Bound on the absolute round-off in one float64 evaluation of the Frechet distance of these moments.

    ``n`` is the longest sum involved (samples per covariance plus the dimension).  Any backward-stable
    route (covariance, Cholesky or eigen factors, their products, a symmetric eigensolver: the
    implementation's and _reference's alike) yields the eigenvalues of S_a S_b for covariances perturbed
    by ||dS|| <= n eps Tr S, so by Weyl each lambda_k moves by at most
    delta = n eps (Tr S_a ||S_b|| + ||S_a|| Tr S_b).  The ill-conditioned step is the square root: a root
    taken anywhere in [lambda - delta, lambda + delta] is off by at most
    sqrt(lambda + delta) - sqrt(max(lambda - delta, 0)), i.e. delta / sqrt(lambda) (relative condition
    number 1/2) for a well-separated eigenvalue but sqrt(delta) for a zero one, which every rank-deficient
    covariance (fewer samples than dimensions) brings: there the error is ~sqrt(eps), not eps.  The other
    terms are sums of n non-negative numbers: at most n eps (||mu_a - mu_b||^2 + Tr S_a + Tr S_b).
    (Measured over OpenBLAS's kernels, OPENBLAS_CORETYPE=Haswell/Sandybridge/Nehalem/Prescott/...:
    up to 5.8e-7 between the two argument orders and 1.8e-5 from _reference, at [200-15-30] and
    [25-40-60]; the tolerance for two evaluations there is 2.9e-3 and 1.0e-2, 4e-6 of the distance,
    so even a 1e-5 relative asymmetry fails.  Well-conditioned cases get ~1e-10 relative.)
    """
    mu_a, mu_b = np.atleast_1d(mu_a), np.atleast_1d(mu_b)
    cov_a, cov_b = np.atleast_2d(cov_a), np.atleast_2d(cov_b)
    tr_a, tr_b = np.trace(cov_a), np.trace(cov_b)
    delta = n * EPS * (tr_a * np.linalg.norm(cov_b, 2) + np.linalg.norm(cov_a, 2) * tr_b)
    lam = np.clip(_product_eigenvalues(cov_a, cov_b), 0, None)
    roots = np.sum(np.sqrt(lam + delta) - np.sqrt(np.clip(lam - delta, 0, None)))
    return float(n * EPS * (np.sum((mu_a - mu_b) ** 2) + tr_a + tr_b) + 2 * roots)


def _moments(x):
    return x.mean(0), np.atleast_2d(np.cov(x, rowvar=False))


def _samples_round_off(a, b):
    """_round_off for the sample moments of ``a`` [Na, D] and ``b`` [Nb, D]."""
    return _round_off(*_moments(a), *_moments(b), n=len(a) + len(b) + a.shape[1])


def test_identical_samples_are_zero():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 12)) @ rng.standard_normal((12, 12))
    assert frechet_distance(a, a.copy()) == pytest.approx(0.0, abs=_samples_round_off(a, a))
    few = rng.standard_normal((5, 30))               # rank-deficient path
    assert frechet_distance(few, few.copy()) == pytest.approx(0.0, abs=_samples_round_off(few, few))


def test_one_dimensional_closed_form():
    assert frechet_from_moments([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx((1 + 2) ** 2 + (2 - 3) ** 2)
    rng = np.random.default_rng(1)
    a = rng.normal(3.0, 2.0, size=(500, 1))
    b = rng.normal(-1.0, 0.5, size=(700, 1))
    sa, sb = a.std(ddof=1), b.std(ddof=1)
    expected = (a.mean() - b.mean()) ** 2 + (sa - sb) ** 2
    # two evaluations (the closed form's own round-off is within the same bound)
    assert frechet_distance(a, b) == pytest.approx(expected, abs=2 * _samples_round_off(a, b))


def test_diagonal_closed_form():
    mu_a, mu_b = np.array([0.0, 1.0, 2.0, -1.0]), np.array([1.0, 1.0, 0.0, 0.5])
    sd_a, sd_b = np.array([1.0, 2.0, 0.5, 3.0]), np.array([2.0, 2.0, 1.5, 0.1])
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((sd_a - sd_b) ** 2)
    got = frechet_from_moments(mu_a, np.diag(sd_a ** 2), mu_b, np.diag(sd_b ** 2))
    tol = 2 * _round_off(mu_a, np.diag(sd_a ** 2), mu_b, np.diag(sd_b ** 2), n=4)
    assert got == pytest.approx(expected, abs=tol)


def test_rotated_diagonal_closed_form():
    # the same Gaussians in a rotated basis give the same distance
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    sd_a, sd_b = rng.uniform(0.5, 2, 6), rng.uniform(0.5, 2, 6)
    mu_a, mu_b = rng.standard_normal(6), rng.standard_normal(6)
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((sd_a - sd_b) ** 2)
    cov_a, cov_b = q @ np.diag(sd_a ** 2) @ q.T, q @ np.diag(sd_b ** 2) @ q.T
    got = frechet_from_moments(q @ mu_a, cov_a, q @ mu_b, cov_b)
    # (n = 2 D: the rotation q S q^T adds a length-D sum before the distance's own)
    assert got == pytest.approx(expected, abs=2 * _round_off(q @ mu_a, cov_a, q @ mu_b, cov_b, n=12))


@pytest.mark.parametrize("na,nb,d", [(400, 300, 20), (25, 40, 60), (200, 15, 30)])
def test_samples_match_definition_and_are_symmetric(na, nb, d):
    rng = np.random.default_rng(na + nb + d)
    a = rng.standard_normal((na, d)) @ rng.standard_normal((d, d))
    b = 2.0 * rng.standard_normal((nb, d)) + 0.5
    expected = _reference(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    ab, ba = frechet_distance(a, b), frechet_distance(b, a)
    # each comparison is between two evaluations, each within _round_off of the exact value; with
    # nb < d (and na < d) a covariance is singular and the bound is ~sqrt(eps), see _round_off
    tol = 2 * _samples_round_off(a, b)
    assert ab == pytest.approx(expected, abs=tol)
    assert ba == pytest.approx(ab, abs=tol)
    moments = frechet_from_moments(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert moments == pytest.approx(expected, abs=tol)


def test_singular_covariance_is_handled():
    # a dead (constant) feature makes both covariances singular
    rng = np.random.default_rng(3)
    a = rng.standard_normal((200, 5))
    b = rng.standard_normal((200, 5)) + 1.0
    a[:, 2] = 0.0
    b[:, 2] = 0.0
    expected = _reference(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert frechet_distance(a, b) == pytest.approx(expected, abs=2 * _samples_round_off(a, b))


def test_invalid_inputs_raise():
    with pytest.raises(AdvisorError):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(AdvisorError):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(AdvisorError):
        frechet_from_moments(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
