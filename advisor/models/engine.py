"""The feature engine: every forward pass over a backbone's blocks runs through this module.

Two levels:

* on a tensor -- :func:`run` (the last block's output), :func:`run_each` (every block's output) and
  :func:`pooled` (the last output pooled by the backbone's :class:`~advisor.models._layout.Layout`).
  The :class:`~advisor.models._backbone.Backbone` itself, a trainer's ``Net`` (frozen bottom,
  trainable top) and the exported ``TransferModel`` are these calls on their own blocks, so a
  ViT's tokens pool by class token (or patch mean) wherever a CNN's maps pool by spatial mean;
* over a dataset -- :func:`passes` runs a frozen backbone over items in batches, as deep as the
  deepest request, and hands each batch's pooled block outputs, boundary activations (a block's
  unpooled output, the input of the next) and source logits to a callback. Measurement
  (``advisor.measure.collect``) and the activation cache (its fill and ``extract``) both use it.

One precision rule for measuring and caching, :func:`float32`: float32, autocast off (even one a
caller opened), and no TF32 in CUDA convolutions and matmuls (cuDNN's default would use it), so the
numbers analyze thresholds and the activations the cache stores do not depend on the device's
defaults. Training keeps its own mixed precision (``advisor.train._inputs.autocast``) around
``Net``'s calls; the tensor-level functions never change precision.

Batching: a ``torch.utils.data.DataLoader`` over :class:`advisor.data.TorchView`, with the
context's loader workers and ``pin_memory`` on CUDA. It is the loader every trainer uses, so the same
images reach a network in training in the same batches everywhere (a saved model's inference,
``advisor predict`` and ``evaluate_model``, has its own loop: :func:`advisor.deploy.inference.run_model`);
with ``workers=0`` (the default, and the right choice on a CPU, where the network already uses every
core and a preparing thread only competes with it) batches are made in line, and on a GPU
``--loader-workers N`` decodes in N processes while the device computes -- the overlap the former
one-thread prefetch gave, without a second way to batch.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from advisor.models._layout import Layout


# ----------------------------------------------------------------------------- on a tensor
def run(blocks: Iterable[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """``x`` through ``blocks`` in order: the last block's output (``x`` itself for no blocks)."""
    for block in blocks:
        x = block(x)
    return x


def run_each(blocks: Iterable[nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    """``x`` through ``blocks`` in order: every block's output."""
    outs = []
    for block in blocks:
        x = block(x)
        outs.append(x)
    return outs


def pooled(blocks: Iterable[nn.Module], x: torch.Tensor, layout: Layout) -> torch.Tensor:
    """``x`` through ``blocks``, the output pooled as ``layout`` declares: ``(N, C)``."""
    return layout.pool_tensor(run(blocks, x))


# ----------------------------------------------------------------------------- precision
@contextlib.contextmanager
def float32(device: torch.device | str) -> Iterator[None]:
    """The precision rule of measuring and caching: full float32 on every device.

    No autocast (not even one a caller opened) and, on CUDA, no TF32 in convolutions and matmuls.
    The TF32 switches are restored afterwards.
    """
    device = torch.device(device)
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = cudnn.allow_tf32, matmul.allow_tf32
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    try:
        with torch.autocast(device_type=device.type, enabled=False):
            yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = before


#: What :func:`float32` allows, as the activation cache writes it into its keys on CUDA.
TF32_OFF = "tf32(conv=0,matmul=0)"

_LOCKS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def backbone_lock(backbone: nn.Module) -> threading.RLock:
    """One lock per backbone object: a frozen pass switches it to eval mode and back, so two threads
    must not run it at once (one would restore training mode under the other's pass)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(backbone)
        if lock is None:
            lock = _LOCKS[backbone] = threading.RLock()
        return lock


@contextlib.contextmanager
def frozen(backbone: nn.Module, device: torch.device | str) -> Iterator[None]:
    """Eval mode, no_grad and :func:`float32` for the duration, holding :func:`backbone_lock`; every
    module's own training flag is restored after."""
    with backbone_lock(backbone):
        modes = [(m, m.training) for m in backbone.modules()]
        try:
            backbone.eval()
            with torch.no_grad(), float32(device):
                yield
        finally:
            for m, was in modes:
                m.training = was


# ----------------------------------------------------------------------------- over a dataset
@dataclass
class Batch:
    """What :func:`passes` computed for one batch.

    ``rows``: the batch's item indices; ``labels``: int64 ``[B, n_tasks]`` (-1 = missing);
    ``pooled[i]``: float32 CPU ``[B, C]``, block ``i``'s output pooled by the backbone's layout;
    ``boundaries[b]``: float32 CPU copy of block ``b - 1``'s output (the input of block ``b``);
    ``logits``: the source head's output as float32, on the device (None unless asked for);
    ``seconds``: time spent moving the batch to the device and running it (synchronised on CUDA).
    """

    rows: np.ndarray
    labels: torch.Tensor
    pooled: dict[int, torch.Tensor] = field(default_factory=dict)
    boundaries: dict[int, torch.Tensor] = field(default_factory=dict)
    logits: torch.Tensor | None = None
    seconds: float = 0.0


def passes(backbone, dataset, indices: Sequence[int] | np.ndarray, preprocess, sink: Callable[[Batch], None], *,
           device: torch.device | str, batch_size: int = 64, workers: int = 0, pooled: Iterable[int] = (),
           boundaries: Iterable[int] = (), head: bool = False,
           progress: Callable[[int, int], None] | None = None) -> None:
    """Run the frozen ``backbone`` over ``dataset[indices]`` (in that order) and call ``sink`` per batch.

    Only as deep as needed: the deepest of ``pooled`` (block indices), ``boundaries`` (``b`` = the
    output of block ``b - 1``) and, with ``head``, every block and the source head. Runs under
    :func:`frozen` (eval, no_grad, the float32 rule, the backbone's lock). Forward hooks on the
    backbone's modules (BatchNorm moments) see every batch. ``progress(done, total)`` after each.
    """
    from advisor.data import TorchView

    pooled = set(pooled)
    boundaries = set(boundaries)
    head_module = backbone.head if head else None
    n_blocks = len(backbone.block_names)
    if head_module is not None:
        depth = n_blocks - 1
    elif pooled or boundaries:
        depth = max(pooled | {b - 1 for b in boundaries})
    else:
        return
    blocks = list(backbone.blocks)[: depth + 1]
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    device = torch.device(device)
    cuda = device.type == "cuda"
    loader = torch.utils.data.DataLoader(
        TorchView(dataset, idx, preprocess), batch_size=max(1, int(batch_size)), shuffle=False,
        num_workers=max(0, int(workers or 0)), pin_memory=cuda,
    )
    total, done = int(idx.size), 0
    with frozen(backbone, device):
        for x, y in loader:
            t = time.perf_counter()
            out = Batch(rows=idx[done: done + x.shape[0]], labels=y)
            x = x.to(device, non_blocking=cuda)
            for i, block in enumerate(blocks):
                x = block(x)
                if i in pooled:
                    out.pooled[i] = backbone.pool(x.float()).cpu()
                if i + 1 in boundaries:
                    out.boundaries[i + 1] = x.detach().to("cpu", torch.float32, copy=True)
            if head_module is not None:
                out.logits = head_module(x).float()
            if cuda:
                torch.cuda.synchronize(device)
            out.seconds = time.perf_counter() - t
            sink(out)
            done += len(out.rows)
            if progress is not None:
                progress(done, total)
