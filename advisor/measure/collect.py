"""One pass over a sample: every block's pooled output, BatchNorm input moments, block output moments
(for the reference-moment shift) and the source classifier's predictions, from a single forward per batch.

This is the only place analyze runs the network; everything in the Profile is
computed from what this pass returns, so analyze costs one forward pass plus
small linear algebra on pooled features. The pass itself is the feature engine's
(:func:`advisor.models.engine.passes`: its batching, its float32 rule, pooling by the
backbone's layout); what is measurement stays here: forward hooks that gather the
BatchNorm input moments and the block output moments, and the source classifier's
softmax. A network without BatchNorm (a ViT) has no BatchNorm hooks and gets empty
BatchNorm moment lists.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from advisor.measure._block_moments import BlockMoments
from advisor.measure._bn_shift import MomentAccumulator
from advisor.models import engine

ProgressFn = Callable[[int, int], None]


@dataclass
class BNLayerMoments:
    """Target per-channel input moments of one BatchNorm layer, with its running (source) statistics."""

    name: str
    target_mean: np.ndarray
    target_var: np.ndarray
    running_mean: np.ndarray
    running_var: np.ndarray
    eps: float


@dataclass
class Collected:
    pooled: list[np.ndarray]  # per block: [n, C] float32, block output pooled by the backbone's layout
    bn: list[list[BNLayerMoments]]  # per block: its BatchNorm layers, in forward order
    source_probs: np.ndarray | None  # [n, Z] softmax of the source classifier, or None
    labels: np.ndarray  # [n, T] int64, -1 = missing
    seconds: dict[str, float] = field(default_factory=dict)
    n_bn: list[int] = field(default_factory=list)  # per block: its BatchNorm layers with running stats
    moments: list[tuple[np.ndarray, np.ndarray]] | None = None  # per block: output (mean, var) [C]; with_moments


def _bn_layers(block: nn.Module) -> list[tuple[str, nn.Module]]:
    return [
        (name, m)
        for name, m in block.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
    ]


def collect(
    backbone,
    dataset,
    indices: Sequence[int],
    preprocess,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    with_bn: bool = True,
    with_source: bool = True,
    with_moments: bool = False,
    bn_every: int = 4,
    bn_min_images: int = 8,
    workers: int = 0,
    progress: ProgressFn | None = None,
) -> Collected:
    """Run ``backbone`` once over ``dataset[indices]`` and gather what the metrics need.

    Parameters
    ----------
    backbone : advisor.models.Backbone (on ``device``; run in eval mode, its modes restored after)
    dataset : advisor.data.TargetDataset
    indices : item indices to measure
    preprocess : callable PIL image -> float tensor [3, S, S]
    workers : DataLoader worker processes preparing the images (0: in line)
    progress : optional callback ``(images_done, images_total)``
    bn_every, bn_min_images : BatchNorm input moments are taken over the first
        ``max(bn_min_images, batch // bn_every)`` images of every batch: every
        spatial position of a quarter of the sample pins per-channel moments down
        far below the differences that matter, at a quarter of the cost.
    with_moments : also every block OUTPUT's per-channel moments over positions/tokens, through the
        backbone's layout, on the same images (``advisor.measure._block_moments``).
    """
    blocks = list(backbone.blocks)
    accs: list[list[tuple[str, nn.Module, MomentAccumulator]]] = []
    hooks = []
    for block in blocks:
        layers = []
        if with_bn:
            for name, m in _bn_layers(block):
                acc = MomentAccumulator()

                def hook(mod, inputs, acc=acc):
                    t = inputs[0]
                    acc.update(t[: max(bn_min_images, t.shape[0] // bn_every)])

                hooks.append(m.register_forward_pre_hook(hook))
                layers.append((name, m, acc))
        accs.append(layers)

    moments = BlockMoments(backbone.layout, len(blocks), every=bn_every, min_images=bn_min_images) \
        if with_moments else None
    if moments is not None:
        for i, block in enumerate(blocks):
            hooks.append(block.register_forward_hook(lambda mod, inputs, out, i=i: moments.update(i, out)))
    pooled: list[list[torch.Tensor]] = [[] for _ in blocks]
    probs: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    t_forward = 0.0

    def sink(batch: engine.Batch) -> None:
        nonlocal t_forward
        for i, p in batch.pooled.items():
            pooled[i].append(p)
        if batch.logits is not None:
            probs.append(torch.softmax(batch.logits, dim=1).cpu())
        labels.append(batch.labels)
        t_forward += batch.seconds

    t0 = time.perf_counter()
    try:
        engine.passes(backbone, dataset, indices, preprocess, sink, device=device, batch_size=batch_size,
                      workers=workers, pooled=range(len(blocks)), head=with_source and backbone.head is not None,
                      progress=progress)
    finally:
        for h in hooks:
            h.remove()
    total = time.perf_counter() - t0

    bn = []
    for layers in accs:
        out = []
        for name, m, acc in layers:
            if acc.count == 0:
                continue
            mean, var = acc.result()
            out.append(
                BNLayerMoments(
                    name=name,
                    target_mean=mean,
                    target_var=var,
                    running_mean=m.running_mean.detach().double().cpu().numpy(),
                    running_var=m.running_var.detach().double().cpu().numpy(),
                    eps=float(m.eps),
                )
            )
        bn.append(out)
    return Collected(
        pooled=[torch.cat(p).numpy() for p in pooled],
        bn=bn,
        source_probs=torch.cat(probs).double().numpy() if probs else None,
        labels=torch.cat(labels).numpy() if labels else np.zeros((0, dataset.labels.shape[1]), np.int64),
        seconds={"pass": total, "forward": t_forward, "data_wait": total - t_forward},
        n_bn=[len(_bn_layers(block)) for block in blocks],
        moments=moments.result() if moments is not None and labels else None,
    )
