"""A context's frozen backbone run over items through the feature engine: what the cache fills its
entries with, and :func:`extract`, the same values computed without any cache."""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from advisor.block_ref import block_index
from advisor.context.cache._identity import _device
from advisor.context.cache._indices import _boundary_index, _check_indices
from advisor.models import engine


def _forward(ctx, indices: np.ndarray, pooled: Iterable[int], boundaries: Iterable[int], batch_size: int,
             sink: Callable[[engine.Batch], None], stage: str) -> None:
    """Run ``ctx.backbone`` (frozen) over ``ctx.dataset[indices]`` with :func:`advisor.models.engine.passes`,
    as deep as needed, with the context's device, loader workers and progress (under ``stage``)."""
    pooled, boundaries = set(pooled), set(boundaries)
    if not pooled and not boundaries:
        return
    progress = ctx.progress
    if progress is not None:
        progress(stage, 0, int(np.size(indices)))
    engine.passes(ctx.backbone, ctx.dataset, indices, ctx.preprocess, sink, device=_device(ctx),
                  batch_size=batch_size, workers=ctx.workers, pooled=pooled, boundaries=boundaries,
                  progress=None if progress is None else (lambda done, total: progress(stage, done, total)))


def extract(ctx, indices, *, pooled: Sequence = (), boundaries: Sequence[int] = (),
            batch_size: int = 64) -> tuple[dict[int, np.ndarray], dict[int, torch.Tensor]]:
    """Compute, without any cache, pooled block outputs and boundary activations for ``indices``.

    The same forward pass the cache uses. Returns ``(pooled, boundaries)``: ``pooled[i]`` float32
    ``[len(indices), C]`` per requested block index (pooled by the backbone's layout), ``boundaries[b]``
    float32 tensor ``[len(indices), *item shape]`` (``C, H, W`` for a CNN, ``L, C`` tokens for a ViT;
    exact, not rounded to float16) per requested boundary.
    """
    idx = _check_indices(ctx, indices)
    p_set = sorted({block_index(i, ctx.backbone.block_names, ctx.backbone.name) for i in pooled})
    b_set = sorted({_boundary_index(ctx.backbone, b) for b in boundaries})
    p_parts: dict[int, list] = {i: [] for i in p_set}
    b_parts: dict[int, list] = {b: [] for b in b_set}

    def sink(batch: engine.Batch) -> None:
        for i in p_set:
            p_parts[i].append(batch.pooled[i].numpy())
        for b in b_set:
            b_parts[b].append(batch.boundaries[b])

    _forward(ctx, idx, p_set, b_set, batch_size, sink, stage="features")
    out_p = {}
    for i in p_set:
        c = int(ctx.backbone.block_channels[i])
        out_p[i] = np.concatenate(p_parts[i]) if p_parts[i] else np.zeros((0, c), np.float32)
    out_b = {}
    for b in b_set:
        if b_parts[b]:
            out_b[b] = torch.cat(b_parts[b])
        else:
            out_b[b] = torch.zeros((0, *_probe_shape(ctx, b)), dtype=torch.float32)
    return out_p, out_b


def _probe_shape(ctx, boundary: int) -> tuple[int, ...]:
    """Per-item shape of the output of block ``boundary - 1`` at ``ctx.preprocess``'s crop size."""
    backbone = ctx.backbone
    size = int(ctx.preprocess.crop_size)
    device = _device(ctx)
    with engine.frozen(backbone, device):
        x = engine.run(list(backbone.blocks)[:boundary], torch.zeros(1, 3, size, size, device=device))
    return tuple(int(s) for s in x.shape[1:])
