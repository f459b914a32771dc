"""The training loop shared by ``last_k``, ``full_finetune``, ``surgical``, ``norm_tune``, ``lora``, ``auto_rgn``
and ``multi_task``.

``fit_network`` trains the top ``k`` blocks of ``ctx.backbone`` (or any contiguous range of blocks
``first..last``, ``block_range``) plus one new head per
task (pooling by the backbone's layout + linear layer) with AdamW; weight decay applies to weights
(conv kernels, linear matrices), never to biases, norm parameters and what the backbone declares free
of it (position embeddings, class tokens, Swin's relative-position tables: ``Backbone.decays``):

* blocks below the top ``k`` (below ``first``, and above ``last``) are frozen: no gradient, and kept in
  eval mode so their BatchNorm running statistics never move; the blocks above still run forward and
  pass gradients down to the trained range;
* ``only(blocks)``: of the trained blocks' parameters only these train (norm_tune: norms and biases; lora: the
  adapters, which its trainer injects into the blocks first);
* ``rgn``: Auto-RGN, each tensor's rate scaled at every step by its relative gradient norm over the largest;
* discriminative learning rates (ULMFiT): each head at ``head_lr``, the trainable block
  ``t`` places from the top of the trained range at ``head_lr * lr_ratio * layer_decay ** t``;
* the loss is the sum over tasks of the mean cross-entropy over the samples whose label
  for that task is present (``-1`` = missing contributes nothing, exactly);
* without augmentation the frozen part's output (the "boundary") comes from the
  activation cache when there is one and it fits, else it is recomputed per batch;
* LP-FT: ``warmup_epochs`` epochs train the heads alone (whole backbone frozen) first;
* ``rate_warmup``: when the blocks start training (after LP-FT's heads epochs), their rates rise
  linearly from ``1/W`` of their value to it over their first ``W`` optimiser steps, ``W`` one epoch
  of steps or a tenth of the fine-tuning steps, whichever is more; ``clip_grad > 0`` clips the
  gradient norm of every trainable parameter to it (after unscaling, under float16 autocast). Both
  are the transformer recipe's (``advisor.strategies._recipes``); a CNN has neither by default;
* early stopping on the primary task's validation accuracy; the best epoch's weights
  are restored at the end.
"""

from __future__ import annotations

import math
import time
from contextlib import suppress
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from advisor.context import TrainContext
from advisor.errors import AdvisorError
from advisor.train._base import EpochCallback, EpochRecord, accuracy
from advisor.train._inputs import TopInputs, amp_dtype, autocast, check_finite, task_columns, tensor_batches
from advisor.train._model import Net, make_heads, masked_loss, param_groups
from advisor.train._network import FittedNetwork, check_k, check_range


class Stepper:
    """AdamW over the parameter groups, with a gradient scaler for float16 autocast on CUDA, optional
    gradient-norm clipping (``clip_grad > 0``), a linear warm-up of the block groups' rates
    (:meth:`warm_up_blocks`) and, with ``rgn``, Auto-RGN's per-tensor rates (:meth:`scale_by_rgn`)."""

    def __init__(self, groups, *, head_lr: float, weight_decay: float, dev: torch.device, clip_grad: float = 0.0,
                 rgn: bool = False):
        self.opt = torch.optim.AdamW(groups, lr=head_lr, weight_decay=weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype(dev) == torch.float16)
        self.clip_grad = float(clip_grad)
        #: each group's own rate, which the warm-up rises to
        self.base_lrs = {g["name"]: float(g["lr"]) for g in self.opt.param_groups}
        self._warm_steps = self._warm_done = 0
        self._block_factor = 1.0  # the warm-up's fraction of the block groups' rates (1 when not warming up)
        self.rgn = bool(rgn)
        if self.rgn and any(len(g["params"]) != 1 for g in self.opt.param_groups):
            raise ValueError("Auto-RGN scales each tensor's rate: give every tensor its own parameter group")
        #: Auto-RGN: per group name, the sum of the scales applied and the number of tensor-steps (their mean)
        self.rgn_sums: dict[str, list[float]] = {}

    def warm_up_blocks(self, steps: int) -> None:
        """From the next step on, the block groups' rates rise linearly to their own over ``steps`` steps
        (step ``s`` of ``steps``: ``s / steps`` of the rate); the heads keep theirs."""
        self._warm_steps, self._warm_done = max(0, int(steps)), 0

    def step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self._warm_done < self._warm_steps:
            self._warm_done += 1
            f = self._warm_done / self._warm_steps
            self._block_factor = f
            for g in self.opt.param_groups:
                if g["name"].startswith("block:"):
                    g["lr"] = self.base_lrs[g["name"]] * f
        unscaled = False
        if self.clip_grad > 0:
            self.scaler.unscale_(self.opt)
            unscaled = True
            torch.nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"] if p.grad is not None],
                                           self.clip_grad)
        if self.rgn:
            if not unscaled and self.scaler.is_enabled():
                self.scaler.unscale_(self.opt)  # the norms of the true gradients
            self.scale_by_rgn()
        self.scaler.step(self.opt)
        self.scaler.update()

    @torch.no_grad()
    def scale_by_rgn(self) -> None:
        """Auto-RGN (Lee et al. 2023): every tensor ``i`` with a gradient steps at its group's rate times
        ``r_i / max_j r_j``, ``r_i = |g_i| / |w_i|`` (Frobenius norms, before the step; the maximum over the
        tensors with a gradient in this step). A tensor whose norm is 0 (a bias initialised to zero) has no
        relative gradient: it steps at its group's full rate and does not enter the maximum. Non-finite
        gradients (a float16 overflow, whose step the scaler skips) count as a scale of 0."""
        live = [g for g in self.opt.param_groups if g["params"][0].grad is not None]
        if not live:
            return
        grads = torch.stack([torch.linalg.vector_norm(g["params"][0].grad.float()) for g in live])
        weights = torch.stack([torch.linalg.vector_norm(g["params"][0].detach().float()) for g in live])
        has_norm = weights > 0
        ratio = torch.where(has_norm, grads / torch.where(has_norm, weights, torch.ones_like(weights)),
                            torch.zeros_like(grads))
        ratio = torch.nan_to_num(ratio, nan=0.0, posinf=0.0, neginf=0.0)
        top = ratio.max()
        scale = torch.where(top > 0, ratio / torch.where(top > 0, top, torch.ones_like(top)), torch.zeros_like(ratio))
        scale = torch.where(has_norm, scale, torch.ones_like(scale))
        for g, s in zip(live, scale.tolist()):
            factor = self._block_factor if g["name"].startswith("block:") else 1.0
            g["lr"] = self.base_lrs[g["name"]] * factor * s
            acc = self.rgn_sums.setdefault(g["name"], [0.0, 0])
            acc[0] += s
            acc[1] += 1

    def rgn_mean_scales(self) -> dict[str, float]:
        """Auto-RGN: each group name's mean scale over its tensors and steps (which blocks it let move)."""
        return {name: total / count for name, (total, count) in self.rgn_sums.items() if count}


def warmup_steps(n_train: int, batch_size: int, epochs: int) -> int:
    """The rate warm-up's length in optimiser steps: one epoch of steps, or a tenth of ``epochs``
    epochs' steps, whichever is more."""
    per_epoch = max(1, math.ceil(n_train / batch_size))
    return max(per_epoch, math.ceil(0.1 * per_epoch * epochs))


def train_epoch(net: Net, inputs: TopInputs, stepper: Stepper, phase: str, *, head_lr: float) -> float:
    """One epoch of ``phase`` ("heads": the heads alone; "top": the top blocks too); the mean training loss.

    Heads-only epochs without augmentation train on the pooled features, computed once for all of them.
    """
    dev = inputs.dev
    total = torch.zeros((), device=dev)
    seen = 0
    if phase == "heads" and not inputs.augment:
        f_train = inputs.features("train", keep=True)
        source = ((f, y, None) for f, y in tensor_batches(f_train, inputs.y["train"], inputs.batch_size,
                                                           inputs.order_gen))
    else:
        source = inputs.batches("train", shuffle=True)
    net.set_phase(phase)
    for x, y, is_boundary in source:
        if phase == "top" and x.shape[0] < 2:
            continue  # BatchNorm cannot train on a batch of one
        with autocast(dev):
            if is_boundary is None:
                f = x
            elif phase == "heads":
                with torch.no_grad():
                    f = net.features(x if is_boundary else net.bottom(x))
            else:
                f = net.features(x if is_boundary else net.bottom(x))
            loss, _ = masked_loss(net.heads, f, y)
        if loss is None:
            continue
        stepper.step(loss)
        total += loss.detach().float() * x.shape[0]
        seen += x.shape[0]
    value = float(total.item()) / max(seen, 1)
    check_finite(value, head_lr)
    return value


@torch.no_grad()
def validate(net: Net, inputs: TopInputs, p_col: int) -> tuple[float, float]:
    """(validation accuracy of the primary task, summed validation loss of every task)."""
    f_val = inputs.features("val")
    net.set_phase("eval")
    y_val = inputs.y["val"]
    _, per_task = masked_loss(net.heads, f_val, y_val)
    val_loss = float(sum(float(v) for v in per_task if v is not None))
    yp = y_val[:, p_col].numpy()
    m = yp >= 0
    logits = net.heads[p_col](f_val[torch.from_numpy(np.flatnonzero(m)).to(f_val.device)])
    return accuracy(yp[m], logits.argmax(1).cpu().numpy()), val_loss


class EarlyStopping:
    """Keeps the best epoch's trainable weights; stops the fine-tuning after ``patience`` epochs without
    a better validation accuracy (heads-only warm-up epochs never stop it, and the count restarts when
    the top blocks start training)."""

    def __init__(self, net: Net, patience: int):
        self.net, self.patience = net, patience
        self.best_acc, self.best_epoch, self.since_best = -math.inf, 0, 0
        self.best_state = net.trainable_state()

    def restart(self) -> None:
        self.since_best = 0

    def update(self, epoch: int, val_acc: float) -> None:
        if val_acc > self.best_acc:
            self.best_acc, self.best_epoch, self.since_best = val_acc, epoch, 0
            self.best_state = self.net.trainable_state()
        else:
            self.since_best += 1

    def should_stop(self, phase: str) -> bool:
        return phase == "top" and self.since_best > 0 and self.since_best >= self.patience

    def restore(self) -> None:
        self.net.load_trainable_state(self.best_state)


def fit_network(
    ctx: TrainContext,
    tasks: list[str],
    train_idx,
    val_idx,
    *,
    k: int | None = None,
    block_range: tuple[int, int] | None = None,
    only: Callable[[Sequence[nn.Module]], Sequence[torch.Tensor]] | None = None,
    head_lr: float = 1e-2,
    lr_ratio: float = 0.1,
    layer_decay: float = 1.0,
    weight_decay: float = 1e-4,
    epochs: int = 10,
    batch_size: int = 64,
    patience: int = 3,
    warmup_epochs: int = 0,
    rate_warmup: bool = False,
    clip_grad: float = 0.0,
    augment: bool = False,
    rgn: bool = False,
    callback: EpochCallback | None = None,
    progress_stage: str = "train",
) -> FittedNetwork:
    """Train the top ``k`` blocks of ``ctx.backbone`` (or blocks ``first..last`` of ``block_range``, 0-based and
    inclusive; exactly one of the two) plus one new head per task; see the module docstring.

    ``epochs`` fine-tuning epochs follow ``warmup_epochs`` heads-only epochs. Validation
    accuracy of the primary task (``ctx.dataset.primary_task`` if in ``tasks``, else
    ``tasks[0]``) drives the callback, early stopping and the choice of the best epoch.
    ``callback(epoch, val_acc)`` may raise TrainingPruned, which propagates. ``rgn``: Auto-RGN, each tensor in a
    group of its own whose rate :meth:`Stepper.scale_by_rgn` scales at every step.
    """
    t_start = time.perf_counter()
    backbone = ctx.backbone
    n_blocks = len(backbone.blocks)
    if (k is None) == (block_range is None):
        raise ValueError("fit_network takes k or block_range, exactly one")
    if block_range is None:
        k = check_k(k, n_blocks)
        first, last = n_blocks - k, n_blocks - 1
    else:
        first, last = check_range(block_range, n_blocks)
        k = last - first + 1
    tasks = [str(t) for t in tasks]
    if not tasks:
        raise AdvisorError("no task to train", "pass at least one label column")
    for t in tasks:
        if t not in ctx.dataset.tasks:
            raise AdvisorError(f"unknown task {t!r}", f"choose from {', '.join(ctx.dataset.tasks)}")
    primary = ctx.dataset.primary_task if ctx.dataset.primary_task in tasks else tasks[0]
    p_col = tasks.index(primary)
    cols = task_columns(ctx, tasks)
    dev = torch.device(ctx.device)
    cuda = dev.type == "cuda"

    # items without any label for these tasks cannot teach anything
    labels_np = ctx.dataset.labels[:, cols]
    train_idx = np.asarray(train_idx, dtype=np.int64).reshape(-1)
    val_idx = np.asarray(val_idx, dtype=np.int64).reshape(-1)
    train_idx = train_idx[(labels_np[train_idx] >= 0).any(axis=1)]
    if train_idx.size == 0:
        raise AdvisorError(f"no training item has a label for {', '.join(tasks)}", "label some training images")
    if not (labels_np[val_idx, p_col] >= 0).any():
        raise AdvisorError(f"no validation item has a label for task {primary!r}",
                           "label more images or use a larger dataset")
    y_train = torch.from_numpy(labels_np[train_idx].copy())
    y_val = torch.from_numpy(labels_np[val_idx].copy())

    torch.manual_seed(ctx.seed)
    order_gen = torch.Generator().manual_seed(int(ctx.seed))
    aug_gen = torch.Generator().manual_seed(int(ctx.seed) + 1)

    n_frozen = first
    heads = make_heads(int(backbone.feature_dim), [len(ctx.dataset.classes[t]) for t in tasks], ctx.seed)
    trained = list(backbone.blocks)[first:last + 1]
    net = Net(backbone.blocks, n_frozen, heads, backbone.layout, last=None if last == n_blocks - 1 else last,
              only=None if only is None else list(only(trained))).to(dev)
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    for p in backbone.parameters():  # the source head and the frozen blocks never train
        p.requires_grad_(False)
    net.set_phase("eval")
    groups = param_groups(tasks, net, backbone.block_names[n_frozen:last + 1], head_lr=head_lr, lr_ratio=lr_ratio,
                          layer_decay=layer_decay, weight_decay=weight_decay, decays=backbone.decays)
    if rgn:  # one tensor per group: Auto-RGN gives each its own rate
        groups = [{**g, "params": [p]} for g in groups for p in g["params"]]
    stepper = Stepper(groups, head_lr=head_lr, weight_decay=weight_decay, dev=dev, clip_grad=clip_grad, rgn=rgn)

    inputs = None
    try:
        inputs = TopInputs(ctx, net, train_idx, val_idx, y_train, y_val, cols, n_frozen=n_frozen,
                           batch_size=batch_size, augment=augment, order_gen=order_gen, aug_gen=aug_gen)
        history: list[EpochRecord] = []
        stop = EarlyStopping(net, patience)
        total_epochs = warmup_epochs + epochs
        for epoch in range(1, total_epochs + 1):
            t0 = time.perf_counter()
            phase = "heads" if epoch <= warmup_epochs else "top"
            if phase == "top" and epoch == warmup_epochs + 1:
                stop.restart()
                inputs.forget_features()  # the top blocks move from now on
                if rate_warmup:
                    stepper.warm_up_blocks(warmup_steps(len(train_idx), batch_size, epochs))
            if phase == "heads" and not augment:
                inputs.features("val", keep=True)
            train_loss = train_epoch(net, inputs, stepper, phase, head_lr=head_lr)
            val_acc, val_loss = validate(net, inputs, p_col)
            history.append(EpochRecord(epoch=epoch, train_loss=train_loss, val_accuracy=val_acc,
                                       val_loss=val_loss, seconds=time.perf_counter() - t0))
            stop.update(epoch, val_acc)
            if ctx.progress is not None:
                ctx.progress(progress_stage, epoch, total_epochs)
            if callback is not None:
                callback(epoch, val_acc)
            if stop.should_stop(phase):
                break
        stop.restore()
        from_cache = inputs.from_cache
    except BaseException:
        # free activations, optimizer state and weight copies before the exception travels up
        if inputs is not None:
            inputs.clear()
        stepper.opt.state.clear()
        if cuda:
            with suppress(RuntimeError):  # after a device-side assert this raises too; report the first error
                torch.cuda.empty_cache()
        raise
    inputs.clear()

    net.set_phase("top")
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    net.set_phase("eval")
    for p in net.parameters():
        p.requires_grad_(False)
    stepper.opt.state.clear()
    return FittedNetwork(
        ctx=ctx, tasks=tasks, k=k, net=net, history=history, best_epoch=stop.best_epoch,
        trainable_params=int(trainable),
        param_group_lrs=dict(stepper.base_lrs),
        frozen_blocks=list(backbone.block_names[:n_frozen]), boundary_from_cache=from_cache,
        above_blocks=list(backbone.block_names[last + 1:]),
        batch_size=batch_size, primary_task=primary, seconds=time.perf_counter() - t_start,
        extra={"rgn_mean_scale": stepper.rgn_mean_scales()} if rgn else {},
    )
