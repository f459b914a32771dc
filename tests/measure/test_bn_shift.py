import numpy as np
import pytest
import torch

from advisor.errors import AdvisorError
from advisor.measure._bn_shift import MomentAccumulator, block_shift, bn_divergence, gaussian_kl


EPS = np.finfo(np.float64).eps
U32 = 2.0 ** -24     # float32 unit round-off


def _kl_round_off(mu_p, var_p, mu_q, var_q):
    """Bound on the absolute round-off of one float64 evaluation of gaussian_kl (elementwise).

    0.5 * (log(var_q / var_p) + (var_p + (mu_p - mu_q)^2) / var_q - 1) is a handful of operations, each
    off by at most eps relative to its result (log: within 2 ulp in any libm, plus eps from the rounded
    quotient since d log x = dx / x), so the sum is off by a few eps times the sum of the magnitudes of
    its terms, not of its (possibly cancelling, here near-zero) result; 4 eps per unit of magnitude.
    """
    mp, vp, mq, vq = (np.asarray(v, dtype=np.float64) for v in (mu_p, var_p, mu_q, var_q))
    bound = 4 * EPS * (np.abs(np.log(vq / vp)) + (vp + (mp - mq) ** 2) / vq + 1.0)
    return bound if bound.ndim else float(bound)


def _sym_round_off(mu_p, var_p, mu_q, var_q):
    """_kl_round_off for the channel mean of the symmetric KL of bn_divergence (variances incl. eps)."""
    per = 0.5 * (_kl_round_off(mu_p, var_p, mu_q, var_q) + _kl_round_off(mu_q, var_q, mu_p, var_p))
    return float(np.mean(per) + 2 * EPS * np.mean(np.abs(gaussian_kl(mu_p, var_p, mu_q, var_q))
                                                   + np.abs(gaussian_kl(mu_q, var_q, mu_p, var_p))))


def test_gaussian_kl_closed_form():
    # KL(N(1, 4) || N(0, 1)) = 0.5 * (log(1/4) + (4 + 1)/1 - 1) = 2 - log 2
    # (tolerances: two evaluations, the function's and the closed form's, each within _kl_round_off)
    assert gaussian_kl(1.0, 4.0, 0.0, 1.0) == pytest.approx(2 - np.log(2), abs=2 * _kl_round_off(1, 4, 0, 1))
    # KL(N(0, 1) || N(2, 9)) = 0.5 * (log 9 + (1 + 4)/9 - 1)
    assert gaussian_kl(0.0, 1.0, 2.0, 9.0) == pytest.approx(0.5 * (np.log(9) + 5 / 9 - 1),
                                                            abs=2 * _kl_round_off(0, 1, 2, 9))
    args = np.array([0.0, 1.0]), np.array([1.0, 4.0]), np.array([2.0, 0.0]), np.array([9.0, 1.0])
    out = gaussian_kl(*args)
    expected = np.array([0.5 * (np.log(9) + 5 / 9 - 1), 2 - np.log(2)])
    assert np.all(np.abs(out - expected) <= 2 * _kl_round_off(*args)), (out, expected)


def test_gaussian_kl_monte_carlo():
    rng = np.random.default_rng(0)
    mp, sp, mq, sq = 0.3, 1.5, -0.4, 0.8
    x = rng.normal(mp, sp, size=2_000_000)
    log_p = -0.5 * ((x - mp) / sp) ** 2 - np.log(sp)
    log_q = -0.5 * ((x - mq) / sq) ** 2 - np.log(sq)
    mc = np.mean(log_p - log_q)
    assert gaussian_kl(mp, sp ** 2, mq, sq ** 2) == pytest.approx(mc, rel=0.01)


def test_identical_moments_are_zero():
    m = np.array([0.1, -2.0, 5.0])
    v = np.array([0.5, 1.0, 0.0])          # a dead channel: eps keeps it finite
    eps = 1e-5                             # bn_divergence's default
    assert bn_divergence(m, v, m, v) == pytest.approx(0.0, abs=_sym_round_off(m, v + eps, m, v + eps))
    assert np.all(np.abs(gaussian_kl(m, v + 1, m, v + 1)) <= _kl_round_off(m, v + 1, m, v + 1))


def test_bn_divergence_is_mean_symmetric_kl():
    tm, tv = np.array([0.0, 1.0]), np.array([1.0, 2.0])
    rm, rv = np.array([1.0, 1.0]), np.array([4.0, 0.5])
    eps = 1e-3
    per = 0.5 * (gaussian_kl(tm, tv + eps, rm, rv + eps) + gaussian_kl(rm, rv + eps, tm, tv + eps))
    got = bn_divergence(tm, tv, rm, rv, eps=eps)
    tol = 2 * _sym_round_off(tm, tv + eps, rm, rv + eps)     # two evaluations
    assert got == pytest.approx(float(np.mean(per)), abs=tol)
    assert got == pytest.approx(bn_divergence(rm, rv, tm, tv, eps=eps), abs=tol)
    # channel 0 by hand (eps = 0): 0.5 * (KL(N(0,1)||N(1,4)) + KL(N(1,4)||N(0,1)))
    kl1 = 0.5 * (np.log(4) + (1 + 1) / 4 - 1)
    kl2 = 0.5 * (np.log(1 / 4) + (4 + 1) / 1 - 1)
    assert bn_divergence([0.0], [1.0], [1.0], [4.0], eps=0.0) == pytest.approx(
        0.5 * (kl1 + kl2), abs=2 * _sym_round_off(0.0, 1.0, 1.0, 4.0))


def test_block_shift_is_mean():
    assert block_shift([0.5, 1.5, 4.0]) == pytest.approx(2.0)
    with pytest.raises(AdvisorError):
        block_shift([])


@pytest.mark.parametrize("shape", [(None, 6, 5, 7), (None, 9)])
def test_moment_accumulator_matches_numpy(shape):
    rng = np.random.default_rng(1)
    acc = MomentAccumulator()
    batches = []
    for n in (3, 17, 1, 40, 8):
        full = (n,) + shape[1:]
        x = (rng.standard_normal(full) * rng.uniform(0.1, 5.0, size=(1, shape[1]) + (1,) * (len(shape) - 2))
             + 1e4)                                  # large offset: naive sum of squares would lose digits
        t = torch.tensor(x, dtype=torch.float32)
        batches.append(t.double().numpy())
        acc.update(t)
    data = np.concatenate(batches)
    axes = (0,) + tuple(range(2, data.ndim))
    mean, var = acc.result()
    assert mean.dtype == np.float64 and mean.shape == (shape[1],)
    # Per-batch moments are taken in the input's float32 (speed) and come back rounded to it (torch's
    # CPU reductions accumulate float32 in float64): each batch mean m_b is off by e_b <= 2 u |m_b|
    # (u = 2^-24; 2u leaves room for the accumulation before the rounding), each batch variance
    # relatively by 2u.  The float64 merge (Chan) adds ~eps per step.  The merged mean is a weighted
    # average of the m_b: off by at most max_b e_b.  The merged M2 = sum_b M2_b + sum_b n_b d_b^2,
    # d_b = m_b - m, is off by at most 2u sum_b M2_b + sum_b n_b (2 |d_b| E + E^2), E = 2 max_b e_b
    # bounding the error of a difference of two computed means.  Per channel: 1e-7 (mean) and 2e-5 to
    # 5e-4 (variance) relative here; the measured error is at most a quarter of the bound.
    m, v, n = data.mean(axis=axes), data.var(axis=axes), data.size // shape[1]
    per_batch = [(b.mean(axis=axes), b.var(axis=axes), b.size // shape[1]) for b in batches]
    merge = 8 * len(batches) * EPS * np.abs(m)
    e = np.max([2 * U32 * np.abs(mb) for mb, _, _ in per_batch], axis=0) + merge
    dm2 = sum(2 * U32 * nb * vb + nb * (2 * np.abs(mb - m) * 2 * e + (2 * e) ** 2) for mb, vb, nb in per_batch)
    assert np.all(np.abs(mean - m) <= e), (mean - m, e)
    assert np.all(np.abs(var - v) <= dm2 / n), (var - v, dm2 / n)
    assert acc.count == n


def test_moment_accumulator_chunks_large_batches(monkeypatch):
    import advisor.measure._bn_shift as mod

    monkeypatch.setattr(mod, "_CHUNK_ELEMENTS", 50)      # forces many chunks
    rng = np.random.default_rng(2)
    x = rng.standard_normal((23, 3, 4, 4))
    acc = MomentAccumulator()
    acc.update(torch.tensor(x))
    mean, var = acc.result()
    # float64 throughout, 23 chunks of one sample (n_b = 16 values per channel): any summation order
    # puts a chunk's mean within n_b eps max|x| and its sum of squared deviations within 2 n_b eps
    # sum x^2; each of the k merges adds at most ~6 eps max|x| to the mean (|delta| <= 2 max|x|) and
    # ~6 eps of the squares to M2; NumPy's pairwise reference adds ~2 log2(N) eps.  The bound
    # c eps max|x| (mean) and c eps mean(x^2) (variance), c = 2 n_b + 6 k + 2 log2 N + 4, is ~1e-13
    # and ~4e-14 here; the error measured is ~2e-17 and ~2e-16.
    k, n_b, n = 23, 16, 23 * 16
    c = 2 * n_b + 6 * k + 2 * np.log2(n) + 4
    assert np.all(np.abs(mean - x.mean(axis=(0, 2, 3))) <= c * EPS * np.abs(x).max(axis=(0, 2, 3)))
    assert np.all(np.abs(var - x.var(axis=(0, 2, 3))) <= c * EPS * (x ** 2).mean(axis=(0, 2, 3)))


def test_moment_accumulator_errors():
    acc = MomentAccumulator()
    with pytest.raises(AdvisorError):
        acc.result()
    acc.update(torch.zeros(2, 3))
    with pytest.raises(AdvisorError):
        acc.update(torch.zeros(2, 4))
    with pytest.raises(AdvisorError):
        acc.update(torch.zeros(5))
