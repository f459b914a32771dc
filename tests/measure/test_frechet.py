import numpy as np
import pytest

from advisor.errors import AdvisorError
from advisor.measure._frechet import frechet_distance, frechet_from_moments


def _reference(mu_a, cov_a, mu_b, cov_b):
    """Definition via the symmetric square root sqrt(S_a) S_b sqrt(S_a) (eigendecompositions)."""
    w, v = np.linalg.eigh(cov_a)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root @ cov_b @ root)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
                 - 2 * np.sum(np.sqrt(np.clip(inner, 0, None))))


def test_identical_samples_are_zero():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 12)) @ rng.standard_normal((12, 12))
    assert frechet_distance(a, a.copy()) == pytest.approx(0.0, abs=1e-9)
    few = rng.standard_normal((5, 30))               # rank-deficient path
    assert frechet_distance(few, few.copy()) == pytest.approx(0.0, abs=1e-9)


def test_one_dimensional_closed_form():
    assert frechet_from_moments([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx((1 + 2) ** 2 + (2 - 3) ** 2)
    rng = np.random.default_rng(1)
    a = rng.normal(3.0, 2.0, size=(500, 1))
    b = rng.normal(-1.0, 0.5, size=(700, 1))
    sa, sb = a.std(ddof=1), b.std(ddof=1)
    expected = (a.mean() - b.mean()) ** 2 + (sa - sb) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-10)


def test_diagonal_closed_form():
    mu_a, mu_b = np.array([0.0, 1.0, 2.0, -1.0]), np.array([1.0, 1.0, 0.0, 0.5])
    sd_a, sd_b = np.array([1.0, 2.0, 0.5, 3.0]), np.array([2.0, 2.0, 1.5, 0.1])
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((sd_a - sd_b) ** 2)
    got = frechet_from_moments(mu_a, np.diag(sd_a ** 2), mu_b, np.diag(sd_b ** 2))
    assert got == pytest.approx(expected, rel=1e-12)


def test_rotated_diagonal_closed_form():
    # the same Gaussians in a rotated basis give the same distance
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    sd_a, sd_b = rng.uniform(0.5, 2, 6), rng.uniform(0.5, 2, 6)
    mu_a, mu_b = rng.standard_normal(6), rng.standard_normal(6)
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((sd_a - sd_b) ** 2)
    got = frechet_from_moments(q @ mu_a, q @ np.diag(sd_a ** 2) @ q.T, q @ mu_b, q @ np.diag(sd_b ** 2) @ q.T)
    assert got == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("na,nb,d", [(400, 300, 20), (25, 40, 60), (200, 15, 30)])
def test_samples_match_definition_and_are_symmetric(na, nb, d):
    rng = np.random.default_rng(na + nb + d)
    a = rng.standard_normal((na, d)) @ rng.standard_normal((d, d))
    b = 2.0 * rng.standard_normal((nb, d)) + 0.5
    expected = _reference(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    ab, ba = frechet_distance(a, b), frechet_distance(b, a)
    assert ab == pytest.approx(expected, rel=1e-8)
    assert ba == pytest.approx(ab, rel=1e-10)
    moments = frechet_from_moments(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert moments == pytest.approx(expected, rel=1e-8)


def test_singular_covariance_is_handled():
    # a dead (constant) feature makes both covariances singular
    rng = np.random.default_rng(3)
    a = rng.standard_normal((200, 5))
    b = rng.standard_normal((200, 5)) + 1.0
    a[:, 2] = 0.0
    b[:, 2] = 0.0
    expected = _reference(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)


def test_invalid_inputs_raise():
    with pytest.raises(AdvisorError):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(AdvisorError):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(AdvisorError):
        frechet_from_moments(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
