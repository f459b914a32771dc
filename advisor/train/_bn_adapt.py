"""``bn_adapt``: re-estimate every BatchNorm layer's running statistics on the target, then fit a probe.

No gradient step (AdaBN, Li et al. 2017; Schneider et al. 2020 on ImageNet-C). The statistics of every
BatchNorm layer of the blocks the probe reads (blocks ``0..block``) are reset and re-estimated in one pass over
the target's training split, in eval mode except for those layers, with ``momentum=None``: PyTorch's cumulative
average, each batch's mean and variance counted equally, so the order of the batches does not matter.
Then the probe (``probe``: ``linear_probe``, logistic regression on the last block, or ``svm_early``, a linear
SVM on an earlier block; ``C``, ``max_iter`` and ``block`` default to that probe's own) is fitted on the
adapted network's standardised pooled features, computed directly (never from the activation cache, which holds
the pretrained network's). The adapted statistics are buffers of the blocks, so the saved model
(:class:`advisor.deploy.model.TransferModel`) carries them: predict and export reproduce the accuracy.

The last adaptation is kept for the next run on the same context (:func:`reused`): the measured check runs
bn_adapt up to three times on one split (the linear probe at two C values, the early SVM), a search many. A run
whose blocks lie within it takes the adapted statistics as they were (the statistics of block ``i`` depend only on
blocks ``0..i``, so adapting further up changes none below) and the features of a block already extracted, so it
repeats neither pass; the result is the same as a run from scratch. A feature pass keeps every adapted block's
pooled output while they are small (:data:`ALL_BLOCKS_MAX_BYTES`), so a later run on a lower block makes no pass.

A network without BatchNorm (a ViT: LayerNorm only) is refused in one line: by ``advisor train`` and
:func:`advisor.train.train` before the data loads (the strategy's ``backbone_check``), and by the trainer
before any image is read.
"""

from __future__ import annotations

import dataclasses
import time
import weakref
from typing import Sequence

import numpy as np
import torch
from torch import nn

from advisor import strategies
from advisor.context import TrainContext
from advisor.errors import AdvisorError
from advisor.models import engine
from advisor.train._base import EpochCallback, TrainResult
from advisor.train._inputs import image_loader, to_device

_PROBE_DEFAULTS = {name: strategies.get(name) for name in ("linear_probe", "svm_early")}


def batchnorm_layers(blocks: Sequence[nn.Module]) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer (1d, 2d, 3d, timm's subclasses) of ``blocks`` that keeps running statistics."""
    return [m for b in blocks for m in b.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def check_has_batchnorm(backbone, params: dict | None = None) -> None:
    """One-line AdvisorError when ``backbone`` has no BatchNorm layer with running statistics."""
    if not batchnorm_layers(list(backbone.blocks)):
        raise AdvisorError(f"bn_adapt needs BatchNorm layers and {backbone.name} has none "
                           f"(a {backbone.layout.family} normalises each input on its own)",
                           "use linear_probe, norm_tune or a CNN with BatchNorm")


@torch.no_grad()
def adapt_batchnorm(ctx: TrainContext, blocks: Sequence[nn.Module], indices, batch_size: int = 64) -> dict:
    """Reset and re-estimate the running statistics of every BatchNorm layer of ``blocks`` on dataset items
    ``indices`` (one pass, cumulative average); nothing else changes. Returns what it did."""
    layers = batchnorm_layers(blocks)
    modes = [(m, m.training) for b in blocks for m in b.modules()]
    momenta = [(m, m.momentum) for m in layers]
    dev = torch.device(ctx.device)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    seen = batches = 0
    try:
        for b in blocks:
            b.eval()
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the pass
            m.train()
        with engine.float32(dev):
            for x, _ in image_loader(ctx, idx, batch_size):
                if x.shape[0] < 2:
                    continue  # a batch of one has no spread to measure
                engine.run(blocks, to_device(x, dev))
                seen += int(x.shape[0])
                batches += 1
    finally:
        for m, momentum in momenta:
            m.momentum = momentum
        for m, was in modes:
            m.training = was
    if not batches:
        raise AdvisorError(f"bn_adapt needs at least 2 training images, got {idx.size}", "use a larger dataset")
    return {"layers": len(layers), "images": seen, "batches": batches}


#: the last adaptation (see the module docstring): the context it was made on, its key, the adapted statistics of
#: blocks ``0..upto`` and the pooled features extracted from them so far, by block
_LAST: dict = {}


def _key(ctx: TrainContext, batch_size: int) -> tuple:
    """What an adaptation and its features depend on besides the objects :func:`_sources` names: the device, the
    batch size and the split's items."""
    s = ctx.split
    return (str(ctx.device), int(batch_size),
            *(np.asarray(a, dtype=np.int64).tobytes() for a in (s.train, s.val, s.test)))


def _sources(ctx: TrainContext) -> tuple:
    """The objects an adaptation was made from, compared by identity: the network's builder (every run's backbone
    is a fresh copy of its weights), the data and the preprocessing."""
    return ctx.make_backbone, ctx.dataset, ctx.preprocess


def reused(ctx: TrainContext, block: int, batch_size: int) -> dict | None:
    """The last adaptation when it serves a run on ``ctx`` reading ``block`` (made on the same context, up to
    ``block`` or above), else None."""
    last = _LAST.get("entry")
    if last is None or last["key"] != _key(ctx, batch_size) or block > last["upto"]:
        return None
    if any(ref() is not obj for ref, obj in zip(last["refs"], _sources(ctx))):
        return None  # another context's (or one gone)
    return last


def _remember(ctx: TrainContext, blocks, upto: int, batch_size: int, adapted: dict) -> dict:
    """Keep this adaptation (statistics of blocks ``0..upto``) as the last one, replacing the one before."""
    state = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in batchnorm_layers(blocks[:upto + 1])]
    entry = {"key": _key(ctx, batch_size), "upto": upto, "state": state, "adapted": dict(adapted), "features": {}}
    try:  # weak: the last adaptation must not keep a finished context's data alive
        entry["refs"] = tuple(weakref.ref(o) for o in _sources(ctx))
    except TypeError:  # an object that takes no weak reference: this adaptation serves this run only
        _LAST.pop("entry", None)
        return entry
    _LAST["entry"] = entry
    return entry


#: A feature pass of an adaptation keeps the pooled output of every adapted block, not only the one asked for, while
#: they take at most this many bytes: a later run on another block (the check's early SVM after its linear probe)
#: then reads them instead of making its own pass. Above it (a large training split) only the block asked for.
ALL_BLOCKS_MAX_BYTES = 256 * 2**20


class _Features:
    """The pooled features one adaptation gave, served as the probe reads a cache (``pooled(ctx, block, idx)``)."""

    def __init__(self, entry: dict):
        self.entry = entry

    def pooled(self, ctx, block: int, indices) -> np.ndarray:
        from advisor.context.cache import extract

        idx = np.asarray(indices, dtype=np.int64)
        got = self.entry["features"].get(block)
        if got is None or not np.array_equal(got[0], idx):
            upto = int(self.entry["upto"])
            channels = [int(c) for c in ctx.backbone.block_channels[:upto + 1]]
            every = sum(channels) * 4 * idx.size <= ALL_BLOCKS_MAX_BYTES
            wanted = tuple(range(upto + 1)) if every else (block,)
            # one pass: the blocks below ``block`` cost no extra forward, and those up to ``upto`` are adapted too
            feats = extract(ctx, idx, pooled=wanted)[0]
            for i, f in feats.items():
                self.entry["features"][i] = (idx.copy(), f)
            got = self.entry["features"][block]
        return got[1]


def run_bn_adapt(ctx: TrainContext, params: dict, callback: EpochCallback | None = None) -> TrainResult:
    """Adapt the BatchNorm statistics to the train split, then fit the probe (see the module docstring)."""
    from advisor.train import _probe

    t0 = time.perf_counter()
    bb = ctx.backbone
    n = len(bb.block_names)
    p = strategies.get("bn_adapt").validate(params, n_blocks=n)
    check_has_batchnorm(bb)  # before any image is read
    probe = p["probe"]
    own = _PROBE_DEFAULTS[probe].validate({}, n_blocks=n)
    C = own["C"] if p["C"] is None else p["C"]
    max_iter = own["max_iter"] if p["max_iter"] is None else p["max_iter"]
    if probe == "svm_early":
        block = _probe._svm_block(ctx, p["block"])
    else:
        block = n - 1 if p["block"] is None else _probe._svm_block(ctx, p["block"])
    used = {"probe": probe, "block": bb.block_names[block], "C": C, "max_iter": max_iter,
            "adapt_batch_size": p["adapt_batch_size"]}

    labelled = np.asarray(ctx.split.train, dtype=np.int64)
    t1 = time.perf_counter()
    blocks = list(bb.blocks)
    entry = reused(ctx, block, p["adapt_batch_size"])
    adaptation_reused = entry is not None
    if adaptation_reused:  # the same statistics as a new pass would give: copied, not re-estimated
        for m, state in zip(batchnorm_layers(blocks[:block + 1]), entry["state"]):
            m.load_state_dict(state)
        adapted = entry["adapted"]
    else:
        adapted = adapt_batchnorm(ctx, blocks[:block + 1], labelled, p["adapt_batch_size"])
        entry = _remember(ctx, blocks, block, p["adapt_batch_size"], adapted)
    seconds_adapt = time.perf_counter() - t1
    features_reused = block in entry["features"]

    if probe == "svm_early":
        from sklearn.svm import LinearSVC

        def make():
            return LinearSVC(C=C, max_iter=max_iter, random_state=ctx.seed)

        loss = _probe._hinge
    else:
        from sklearn.linear_model import LogisticRegression

        def make():
            return LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter, random_state=ctx.seed)

        loss = _probe._log_loss
    # the cache holds the pretrained network's activations: the adapted features are computed here, once per block
    # for the adaptation (_Features)
    result = _probe._run(dataclasses.replace(ctx, cache=_Features(entry)), "bn_adapt", used, block, make, loss,
                         callback)
    result.extra.update({"probe": probe, "adapted_bn_layers": adapted["layers"], "adapt_images": adapted["images"],
                         "seconds_adapt": seconds_adapt, "features_from_cache": False,
                         "adaptation_reused": adaptation_reused,
                         "features_reused": features_reused})
    result.wall_time = time.perf_counter() - t0
    return result
