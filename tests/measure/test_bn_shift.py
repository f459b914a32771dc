import numpy as np
import pytest
import torch

from advisor.errors import AdvisorError
from advisor.measure._bn_shift import MomentAccumulator, block_shift, bn_divergence, gaussian_kl


def test_gaussian_kl_closed_form():
    # KL(N(1, 4) || N(0, 1)) = 0.5 * (log(1/4) + (4 + 1)/1 - 1) = 2 - log 2
    assert gaussian_kl(1.0, 4.0, 0.0, 1.0) == pytest.approx(2 - np.log(2), rel=1e-14)
    # KL(N(0, 1) || N(2, 9)) = 0.5 * (log 9 + (1 + 4)/9 - 1)
    assert gaussian_kl(0.0, 1.0, 2.0, 9.0) == pytest.approx(0.5 * (np.log(9) + 5 / 9 - 1), rel=1e-14)
    out = gaussian_kl(np.array([0.0, 1.0]), np.array([1.0, 4.0]), np.array([2.0, 0.0]), np.array([9.0, 1.0]))
    np.testing.assert_allclose(out, [0.5 * (np.log(9) + 5 / 9 - 1), 2 - np.log(2)], rtol=1e-14)


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
    assert bn_divergence(m, v, m, v) == pytest.approx(0.0, abs=1e-15)
    np.testing.assert_allclose(gaussian_kl(m, v + 1, m, v + 1), 0.0, atol=1e-15)


def test_bn_divergence_is_mean_symmetric_kl():
    tm, tv = np.array([0.0, 1.0]), np.array([1.0, 2.0])
    rm, rv = np.array([1.0, 1.0]), np.array([4.0, 0.5])
    eps = 1e-3
    per = 0.5 * (gaussian_kl(tm, tv + eps, rm, rv + eps) + gaussian_kl(rm, rv + eps, tm, tv + eps))
    got = bn_divergence(tm, tv, rm, rv, eps=eps)
    assert got == pytest.approx(float(np.mean(per)), rel=1e-14)
    assert got == pytest.approx(bn_divergence(rm, rv, tm, tv, eps=eps), rel=1e-14)
    # channel 0 by hand (eps = 0): 0.5 * (KL(N(0,1)||N(1,4)) + KL(N(1,4)||N(0,1)))
    kl1 = 0.5 * (np.log(4) + (1 + 1) / 4 - 1)
    kl2 = 0.5 * (np.log(1 / 4) + (4 + 1) / 1 - 1)
    assert bn_divergence([0.0], [1.0], [1.0], [4.0], eps=0.0) == pytest.approx(0.5 * (kl1 + kl2), rel=1e-14)


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
    # per-batch moments are taken in the input's float32 (speed); merged in float64
    np.testing.assert_allclose(mean, data.mean(axis=axes), rtol=1e-6)
    np.testing.assert_allclose(var, data.var(axis=axes), rtol=1e-3)
    assert acc.count == data.size // shape[1]


def test_moment_accumulator_chunks_large_batches(monkeypatch):
    import advisor.measure._bn_shift as mod

    monkeypatch.setattr(mod, "_CHUNK_ELEMENTS", 50)      # forces many chunks
    rng = np.random.default_rng(2)
    x = rng.standard_normal((23, 3, 4, 4))
    acc = MomentAccumulator()
    acc.update(torch.tensor(x))
    mean, var = acc.result()
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(var, x.var(axis=(0, 2, 3)), rtol=1e-12)


def test_moment_accumulator_errors():
    acc = MomentAccumulator()
    with pytest.raises(AdvisorError):
        acc.result()
    acc.update(torch.zeros(2, 3))
    with pytest.raises(AdvisorError):
        acc.update(torch.zeros(2, 4))
    with pytest.raises(AdvisorError):
        acc.update(torch.zeros(5))
