"""One pass over a sample: every block's pooled output, BatchNorm input moments, block output moments
(for the reference-moment shift) and the source classifier's predictions, from a single forward per batch.

This is the only place analyze runs the network; everything in the Profile is
computed from what this pass returns, so analyze costs one forward pass plus
small linear algebra on pooled features.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from advisor.measure._block_moments import BlockMoments
from advisor.measure._bn_shift import MomentAccumulator

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
    pooled: list[np.ndarray]  # per block: [n, C] float32, global-average-pooled block output
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


def _batches(dataset, indices: Sequence[int], preprocess, batch_size: int, pin: bool):
    """Yield (images, labels) batches.

    With ``pin`` (CUDA) the next batch is prepared in a thread while the GPU computes.
    On the CPU the batches are made in line: the convolutions already use every core
    and a preparing thread would only compete with them.
    """

    def make(chunk):
        x = torch.stack([preprocess(dataset.load(int(i))) for i in chunk])
        y = torch.as_tensor(dataset.labels[np.asarray(chunk, dtype=np.int64)])
        return (x.pin_memory(), y) if pin else (x, y)

    chunks = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    if not chunks:
        return
    if not pin:
        for chunk in chunks:
            yield make(chunk)
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(make, chunks[0])
        for nxt in chunks[1:]:
            batch = fut.result()
            fut = pool.submit(make, nxt)
            yield batch
        yield fut.result()


@contextmanager
def float32(device: torch.device) -> Iterator[None]:
    """Full float32 for the measuring forward pass, on every device.

    Analyze's numbers feed thresholds, so they must not depend on the device: no autocast (not
    even one a caller opened) and, on CUDA, no TF32 in convolutions and matmuls (PyTorch lets
    cuDNN use TF32 by default). The TF32 switches are restored afterwards. Training keeps its
    mixed precision (``advisor.train._loop``).
    """
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = cudnn.allow_tf32, matmul.allow_tf32
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    try:
        with torch.autocast(device_type=device.type, enabled=False):
            yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = before


@torch.no_grad()
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
    progress: ProgressFn | None = None,
) -> Collected:
    """Run ``backbone`` once over ``dataset[indices]`` and gather what the metrics need.

    Parameters
    ----------
    backbone : advisor.models.Backbone (eval mode, on ``device``)
    dataset : advisor.data.TargetDataset
    indices : item indices to measure
    preprocess : callable PIL image -> float tensor [3, S, S]
    progress : optional callback ``(images_done, images_total)``
    bn_every, bn_min_images : BatchNorm input moments are taken over the first
        ``max(bn_min_images, batch // bn_every)`` images of every batch: every
        spatial position of a quarter of the sample pins per-channel moments down
        far below the differences that matter, at a quarter of the cost.
    with_moments : also every block OUTPUT's per-channel moments over positions/tokens, through the
        backbone's layout, on the same images (``advisor.measure._block_moments``).
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
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
    pooled: list[list[torch.Tensor]] = [[] for _ in blocks]
    probs: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    head = backbone.head if with_source else None
    t_forward = 0.0
    t0 = time.perf_counter()
    done = 0
    try:
        for x, y in _batches(dataset, list(indices), preprocess, batch_size, pin=cuda):
            t1 = time.perf_counter()
            x = x.to(device, non_blocking=True)
            with float32(device):
                for i, block in enumerate(blocks):
                    x = block(x)
                    pooled[i].append(backbone.pool(x.float()).cpu())
                    if moments is not None:
                        moments.update(i, x)
                if head is not None:
                    probs.append(torch.softmax(head(x).float(), dim=1).cpu())
            if cuda:
                torch.cuda.synchronize(device)
            t_forward += time.perf_counter() - t1
            labels.append(y)
            done += len(y)
            if progress is not None:
                progress(done, len(indices))
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
        moments=moments.result() if moments is not None and done else None,
    )
