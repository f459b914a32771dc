"""BatchNorm statistics shift: target activation moments vs. the BN running stats.

A BatchNorm layer's ``running_mean`` / ``running_var`` are the per-channel
moments of its input on the source data.  Collecting the same moments on the
target data (:class:`MomentAccumulator`) and comparing the two per-channel
Gaussians with the KL divergence measures how far the target inputs of that
layer have moved from the source. :class:`BNStatsShift` is that measure behind the shift interface
(:mod:`advisor.measure._shift_base`).
"""

from __future__ import annotations

import numpy as np

from advisor.errors import AdvisorError
from advisor.measure._shift_base import BN_INPUTS, ShiftMeasure

_CHUNK_ELEMENTS = 1 << 24   # float64 working copies are made in chunks of at most 128 MiB


def gaussian_kl(mu_p, var_p, mu_q, var_q) -> np.ndarray:
    """Elementwise ``KL(N(mu_p, var_p) || N(mu_q, var_q))``.

    ``0.5 * (log(var_q / var_p) + (var_p + (mu_p - mu_q)^2) / var_q - 1)``.

    Args:
        mu_p, var_p, mu_q, var_q: broadcastable arrays (typically ``[C]``, one
            entry per channel); variances must be > 0.

    Returns:
        The KL divergence per element (float64 array of the broadcast shape),
        in nats.
    """
    mp, vp, mq, vq = (np.asarray(v, dtype=np.float64) for v in (mu_p, var_p, mu_q, var_q))
    try:
        mp, vp, mq, vq = np.broadcast_arrays(mp, vp, mq, vq)
    except ValueError:
        raise AdvisorError(f"moment shapes do not broadcast: {mp.shape}, {vp.shape}, {mq.shape}, {vq.shape}",
                           "pass per-channel means and variances of the same length") from None
    if not (np.all(np.isfinite(mp)) and np.all(np.isfinite(mq))
            and np.all(np.isfinite(vp)) and np.all(np.isfinite(vq))):
        raise AdvisorError("moments contain NaN or infinite values", "check the collected statistics")
    if np.any(vp <= 0) or np.any(vq <= 0):
        raise AdvisorError("variances must be positive", "add the BatchNorm eps to the variances")
    return 0.5 * (np.log(vq / vp) + (vp + (mp - mq) ** 2) / vq - 1.0)


def bn_divergence(target_mean, target_var, running_mean, running_var, eps: float = 1e-5) -> float:
    """Symmetric KL between the target's per-channel moments and a BN layer's running stats.

    Both variances get ``eps`` added (the BatchNorm ``eps``; keeps dead
    channels finite).  The per-channel symmetric divergence is
    ``0.5 * (KL(target || source) + KL(source || target))``.

    Args:
        target_mean: ``[C]`` per-channel mean of the layer input on the target data.
        target_var: ``[C]`` per-channel (population) variance on the target data.
        running_mean: ``[C]`` the BN layer's ``running_mean`` (source moments).
        running_var: ``[C]`` the BN layer's ``running_var``.
        eps: added to both variances (>= 0).

    Returns:
        The symmetric KL averaged over channels, in nats.
    """
    arrays = [np.asarray(v, dtype=np.float64).reshape(-1)
              for v in (target_mean, target_var, running_mean, running_var)]
    c = arrays[0].shape[0]
    if c == 0 or any(a.shape[0] != c for a in arrays):
        raise AdvisorError(f"channel counts differ or are zero: {[a.shape[0] for a in arrays]}",
                           "pass the statistics of the BN layer's input channels")
    if not eps >= 0:
        raise AdvisorError(f"eps must be >= 0, got {eps}", "pass the BatchNorm layer's eps")
    tm, tv, rm, rv = arrays
    if np.any(tv < 0) or np.any(rv < 0):
        raise AdvisorError("variances must be non-negative", "check the collected statistics")
    tv = tv + eps
    rv = rv + eps
    sym = 0.5 * (gaussian_kl(tm, tv, rm, rv) + gaussian_kl(rm, rv, tm, tv))
    return float(np.mean(sym))


def block_shift(per_layer: list[float]) -> float:
    """Aggregate the :func:`bn_divergence` values of a block's BN layers (their mean).

    Args:
        per_layer: one divergence (nats) per BatchNorm layer of the block.

    Returns:
        The mean divergence in nats.  Raises :class:`AdvisorError` for an
        empty list (a block without BatchNorm layers has no BN shift).
    """
    values = np.asarray(list(per_layer), dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise AdvisorError("block has no BatchNorm layers to aggregate",
                           "skip the BN shift for blocks without BatchNorm")
    if not np.all(np.isfinite(values)):
        raise AdvisorError("a BN divergence is NaN or infinite", "check the collected statistics")
    return float(np.mean(values))


class MomentAccumulator:
    """Running per-channel mean and population variance of activation batches.

    Each batch (a torch tensor ``[N, C, ...]``, e.g. ``[N, C, H, W]`` or
    ``[N, C]``; channel axis 1) is reduced over every axis but the channel
    axis in float64 on the tensor's own device; batch results are merged with
    Chan et al.'s pairwise update of (count, mean, M2), so no large sums of
    squares are ever subtracted.  Large batches are processed in chunks to
    bound the float64 working memory.

    Use ``update(t)`` per batch, then ``result()`` for ``(mean, var)`` as
    NumPy float64 arrays ``[C]``; ``count`` is the number of values per
    channel seen so far.
    """

    def __init__(self) -> None:
        self.count = 0
        self._mean = None   # torch float64 [C]
        self._m2 = None     # torch float64 [C], sum of squared deviations

    @property
    def channels(self) -> int | None:
        """Number of channels, or None before the first update."""
        return None if self._mean is None else int(self._mean.shape[0])

    def update(self, t) -> None:
        """Add one batch of activations ``[N, C, ...]`` (torch tensor or array)."""
        import torch

        x = t.detach() if isinstance(t, torch.Tensor) else torch.as_tensor(np.asarray(t))
        if x.dim() < 2:
            raise AdvisorError(f"activations must have shape [N, C, ...], got {tuple(x.shape)}",
                               "pass a batch of activations with the channel axis at position 1")
        c = int(x.shape[1])
        if self._mean is not None and c != self._mean.shape[0]:
            raise AdvisorError(f"batch has {c} channels but earlier batches had {self._mean.shape[0]}",
                               "use one accumulator per layer")
        if x.shape[0] == 0 or x.numel() == 0:
            return
        if self._mean is None:
            self._mean = torch.zeros(c, dtype=torch.float64, device=x.device)
            self._m2 = torch.zeros(c, dtype=torch.float64, device=x.device)
        per_sample = x.numel() // x.shape[0]
        step = max(1, _CHUNK_ELEMENTS // max(per_sample, 1))
        for chunk in torch.split(x, step, dim=0):
            self._merge(chunk)

    def _merge(self, chunk) -> None:
        import torch

        # Per-batch moments in the activation's own precision (one fused pass; float64
        # copies of whole activations would cost more than the convolutions), then a
        # float64 merge across batches (Chan et al.), so many batches lose nothing.
        v = chunk if chunk.dtype in (torch.float32, torch.float64) else chunk.float()
        dims = [0] + list(range(2, v.dim()))                  # every axis but the channels
        n_b = v.numel() // v.shape[1]
        var_b, mean_b = torch.var_mean(v, dim=dims, correction=0)
        mean_b = mean_b.to(device=self._mean.device, dtype=torch.float64)
        m2_b = var_b.to(device=self._mean.device, dtype=torch.float64) * n_b
        n_a = self.count
        n = n_a + n_b
        delta = mean_b - self._mean
        self._mean += delta * (n_b / n)
        self._m2 += m2_b + delta * delta * (n_a * n_b / n)
        self.count = n

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, var)``: per-channel mean and population variance, NumPy float64 ``[C]``."""
        if self._mean is None or self.count == 0:
            raise AdvisorError("no activations were accumulated", "call update() with at least one batch")
        mean = self._mean.detach().cpu().numpy().copy()
        var = (self._m2 / self.count).detach().cpu().numpy().copy()
        return mean, np.clip(var, 0.0, None)


class BNStatsShift(ShiftMeasure):
    """Shift from a BatchNorm network's running statistics: no source data needed.

    Per block: the mean over its BatchNorm layers of :func:`bn_divergence` between the target's
    per-channel input moments (gathered by the analyze pass) and the layer's running statistics; a
    block without BatchNorm layers has no value.
    """

    name = "bn_stats"
    label = "BN shift"
    needs = "BatchNorm layers with running statistics (they hold the source's moments)"
    collects = frozenset({BN_INPUTS})
    threshold = "shift_different"
    caption = "BN shift: symmetric KL (nats) of target moments vs BatchNorm running stats."

    def prepare(self, backbone, image_size: int) -> str | None:
        from torch import nn

        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
               for m in backbone.modules()):
            return None
        return "no BatchNorm layers with running statistics"

    def block_shifts(self, collected) -> list[float | None]:
        return [
            float(block_shift([bn_divergence(m.target_mean, m.target_var, m.running_mean, m.running_var, m.eps)
                               for m in layers]))
            if layers else None
            for layers in collected.bn
        ]
