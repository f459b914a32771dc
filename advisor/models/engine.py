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

A frozen pass folds BatchNorm into the convolution before it (:func:`folded`, :data:`FOLD_BN`): the same function
in eval mode, to float32 roundoff, without the normalisation's own pass over every activation map. Not while a
forward hook watches the blocks (analyze's BatchNorm moments read each layer's input).

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
import copy
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


# ----------------------------------------------------------------------------- folding BatchNorm
#: Frozen passes (:func:`passes`: analyze's check, the activation cache, bn_adapt's features) run on copies of the
#: blocks with every BatchNorm that follows a convolution in an ``nn.Sequential`` folded into it (:func:`folded`).
#: In eval mode that is the same affine map, so the outputs agree to float32 roundoff, not bit for bit; the pass
#: no longer reads and writes every activation map a second time to normalise it. MobileNetV2 at 224 px on this
#: 2-core CPU, channels-last, 64 images: 1.03 s folded against 1.67 s (1.62x; benchmarks/fold_bn.py).
FOLD_BN = True


def _sequential(module: nn.Module) -> bool:
    """An ``nn.Sequential`` whose forward is Sequential's own: its children run in order, each on the last's output."""
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def _foldable_pairs(block: nn.Module) -> list[tuple[nn.Sequential, str, str]]:
    """``(container, conv name, bn name)`` for each plain ``Conv2d`` directly followed by a plain ``BatchNorm2d`` with
    running statistics in a :func:`_sequential` container of ``block``, or paired by a residual block whose forward
    is known (:func:`_known_pairs`). Subclasses are left alone: timm's ``BatchNormAct2d`` applies its activation
    inside the norm, which folding would drop."""
    out = []
    for m in block.modules():
        if _sequential(m):
            names = list(m._modules)
            candidates = zip(names, names[1:])
        else:
            candidates = _known_pairs(m)
        for a, b in candidates:
            conv, bn = m._modules.get(a), m._modules.get(b)
            if type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.track_running_stats \
                    and bn.running_mean is not None and bn.running_var is not None \
                    and conv.out_channels == bn.num_features:
                out.append((m, a, b))
    return out


def _known_pairs(module: nn.Module) -> list[tuple[str, str]]:
    """Conv-BN pairs of torchvision's residual blocks, whose forward calls ``bnI(convI(x))`` and uses neither alone
    (exact types with their own forward only): ResNet's BasicBlock and Bottleneck."""
    from torchvision.models import resnet

    for cls, n in ((resnet.BasicBlock, 2), (resnet.Bottleneck, 3)):
        if type(module) is cls and type(module).forward is cls.forward:
            return [(f"conv{i}", f"bn{i}") for i in range(1, n + 1)]
    return []


def folded(blocks: Iterable[nn.Module]) -> list[nn.Module]:
    """``blocks`` for an eval-mode pass, each BatchNorm of a :func:`_foldable_pairs` pair folded into its convolution
    (``torch.nn.utils.fusion.fuse_conv_bn_eval``: weight scaled by ``gamma / sqrt(var + eps)``, bias shifted). A block
    with such a pair is copied and the copy folded; one without is returned itself. ``blocks`` never change. The
    blocks must be in eval mode (the folded map is the eval-mode one: running statistics, not the batch's)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    out = []
    for block in blocks:
        if not _foldable_pairs(block):
            out.append(block)
            continue
        twin = copy.deepcopy(block)
        for seq, a, b in _foldable_pairs(twin):  # the twin's own modules: the same pairs, in the copy
            conv = seq._modules[a]
            fused = fuse_conv_bn_eval(conv, seq._modules[b])
            if conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous():
                fused.weight.data = fused.weight.data.contiguous(memory_format=torch.channels_last)
            seq._modules[a] = fused
            seq._modules[b] = nn.Identity()
        out.append(twin)
    return out


def hooked(blocks: Iterable[nn.Module]) -> bool:
    """Whether a forward hook (a module's or a global one) would see a pass over ``blocks``: then no folding, so the
    hook sees the modules it was registered on."""
    from torch.nn.modules import module as _module

    if any(getattr(_module, name, None) for name in ("_global_forward_hooks", "_global_forward_pre_hooks")):
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for b in blocks for m in b.modules())


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
    :func:`frozen` (eval, no_grad, the float32 rule, the backbone's lock), on :func:`folded` copies of the blocks
    unless :data:`FOLD_BN` is off or a forward hook is registered (:func:`hooked`): hooks on the backbone's
    modules (BatchNorm moments) see every batch. ``progress(done, total)`` after each.
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
        if FOLD_BN and not hooked(blocks):
            blocks = folded(blocks)
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
