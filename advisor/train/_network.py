"""The network trainer shared by ``last_k``, ``full_finetune`` and ``multi_task``.

``fit_network`` trains the top ``k`` blocks of ``ctx.backbone`` plus one new head per
task (global average pool + linear layer) with AdamW; weight decay applies to weights
(conv kernels, linear matrices), never to biases and norm parameters (``decay_groups``):

* blocks below the top ``k`` are frozen: no gradient, and kept in eval mode so their
  BatchNorm running statistics never move;
* discriminative learning rates (ULMFiT): each head at ``head_lr``, the trainable block
  ``t`` places from the top at ``head_lr * lr_ratio * layer_decay ** t``;
* the loss is the sum over tasks of the mean cross-entropy over the samples whose label
  for that task is present (``-1`` = missing contributes nothing, exactly);
* without augmentation the frozen part's output (the "boundary") comes from the
  activation cache when there is one and it fits, else it is recomputed per batch;
* LP-FT: ``warmup_epochs`` epochs train the heads alone (whole backbone frozen) first;
* early stopping on the primary task's validation accuracy; the best epoch's weights
  are restored at the end.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from advisor import strategies as _strategies
from advisor.context import TrainContext
from advisor.errors import AdvisorError
from advisor.models import global_pool
from advisor.train._base import EpochCallback, EpochRecord, accuracy, macro_f1

#: Boundary activations up to this many bytes are moved to the GPU once instead of per batch.
GPU_RESIDENT_BYTES = 2 << 30

# The parameters, their defaults and constraints are declared once, in advisor.strategies.
NETWORK_DEFAULTS = _strategies.NETWORK_DEFAULTS
DEFAULT_WARMUP_EPOCHS = _strategies.DEFAULT_WARMUP_EPOCHS


# =========================================================================== parameters
def check_k(k, n_blocks: int) -> int:
    """``k`` as an int in ``1..n_blocks``, else AdvisorError."""
    return _strategies.get("last_k").param("k").check(k, "last_k", n_blocks)


def parse_network_params(params: dict, *, strategy: str, n_blocks: int) -> dict[str, Any]:
    """Validate plain-value parameters of a network strategy with the registry and fill in the defaults.

    ``warmup`` (bool) and ``warmup_epochs`` are folded together: ``warmup=True`` alone means
    ``DEFAULT_WARMUP_EPOCHS`` heads-only epochs. Every problem is an AdvisorError naming the parameter.
    """
    p = _strategies.get(strategy).validate(params, n_blocks=n_blocks)
    warmup, we = p.get("warmup"), p.get("warmup_epochs")
    if we is not None:
        if warmup is not None and warmup != (we > 0):
            raise AdvisorError(f"warmup={warmup} contradicts warmup_epochs={we}", "pass only one of them")
    else:
        we = DEFAULT_WARMUP_EPOCHS if warmup else 0
    p["warmup_epochs"], p["warmup"] = we, we > 0
    return p


# =========================================================================== pieces
def make_heads(feature_dim: int, n_classes: Sequence[int], seed: int) -> nn.ModuleList:
    """One ``Linear(feature_dim, c)`` per task, initialised like PyTorch's default from a seeded generator."""
    heads = []
    bound = 1.0 / math.sqrt(feature_dim)
    for j, c in enumerate(n_classes):
        g = torch.Generator().manual_seed((int(seed) * 1_000_003 + 7919 * (j + 1)) % (2**63))
        head = nn.Linear(feature_dim, int(c))
        with torch.no_grad():
            head.weight.uniform_(-bound, bound, generator=g)
            head.bias.uniform_(-bound, bound, generator=g)
        heads.append(head)
    return nn.ModuleList(heads)


def decay_groups(params, *, lr: float, weight_decay: float, name: str) -> list[dict[str, Any]]:
    """Optimizer groups for ``params`` at ``lr``: weight decay on the weights, none on biases and norm parameters.

    timm's convention: a parameter with at most one dimension (a bias, a BatchNorm/LayerNorm
    scale or shift) gets ``weight_decay=0``; pulling a norm's scale toward zero changes what the
    layer computes instead of regularising it. Both groups carry ``name``; an empty one is left out.
    """
    params = list(params)
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [{"params": ps, "lr": lr, "weight_decay": wd, "name": name}
            for ps, wd in ((decay, weight_decay), (no_decay, 0.0)) if ps]


def masked_loss(heads: Sequence[nn.Module], feats: torch.Tensor,
                labels: torch.Tensor) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
    """Sum over tasks of the mean cross-entropy over the samples whose label is present.

    ``feats`` is ``[n, D]`` (pooled features), ``labels`` is ``[n, n_tasks]`` int64 with
    ``-1`` = missing (on any device; the masks are built on the CPU, so there is no GPU
    sync). Each head only ever sees the rows labelled for its task, so a sample with a
    missing label contributes exactly zero gradient to that task's head. A task with no
    label in the batch is skipped (its entry is None); the total is None when every task is.
    """
    labels = labels.cpu()
    total: torch.Tensor | None = None
    per_task: list[torch.Tensor | None] = []
    for j, head in enumerate(heads):
        y = labels[:, j]
        rows = torch.nonzero(y >= 0).squeeze(1)
        if rows.numel() == 0:
            per_task.append(None)
            continue
        target = y.index_select(0, rows).to(feats.device, non_blocking=True)
        if rows.numel() != y.numel():
            x = feats.index_select(0, rows.to(feats.device, non_blocking=True))
        else:
            x = feats
        loss = F.cross_entropy(head(x).float(), target)
        per_task.append(loss)
        total = loss if total is None else total + loss
    return total, per_task


def augment_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip + random resized crop (area 0.8-1, aspect 3/4-4/3) of a batch ``[n, C, H, W]``.

    One affine resampling per image (bilinear); the random numbers come from ``generator``
    (a CPU generator), so augmentation is reproducible.
    """
    n = x.shape[0]
    area = torch.empty(n).uniform_(0.8, 1.0, generator=generator)
    ratio = torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3), generator=generator).exp()
    w = (area * ratio).sqrt().clamp(max=1.0)
    h = (area / ratio).sqrt().clamp(max=1.0)
    cx = (torch.rand(n, generator=generator) * 2 - 1) * (1 - w)
    cy = (torch.rand(n, generator=generator) * 2 - 1) * (1 - h)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


class _Net(nn.Module):
    """Frozen bottom blocks, trainable top blocks and the task heads (modules shared with the backbone)."""

    def __init__(self, blocks: Sequence[nn.Module], n_frozen: int, heads: nn.ModuleList):
        super().__init__()
        self.frozen = nn.ModuleList(list(blocks)[:n_frozen])
        self.top = nn.ModuleList(list(blocks)[n_frozen:])
        self.heads = heads

    def bottom(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            for block in self.frozen:
                x = block(x)
        return x

    def features(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.top:
            h = block(h)
        return global_pool(h)

    def set_phase(self, phase: str) -> None:
        """``"eval"``: everything in eval mode; ``"heads"``: only heads train; ``"top"``: top blocks train too."""
        self.eval()
        for p in self.frozen.parameters():
            p.requires_grad_(False)
        for p in self.top.parameters():
            p.requires_grad_(phase == "top")
        if phase == "top":
            self.top.train()
        if phase in ("heads", "top"):
            self.heads.train()

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self._trainable().state_dict().items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        self._trainable().load_state_dict(state)

    def _trainable(self) -> nn.Module:
        return nn.ModuleDict({"top": self.top, "heads": self.heads})


# =========================================================================== inputs
def _task_columns(ctx: TrainContext, tasks: Sequence[str]) -> list[int]:
    return [ctx.dataset.tasks.index(t) for t in tasks]


def _image_loader(ctx: TrainContext, indices: np.ndarray, batch_size: int, *,
                  generator: torch.Generator | None = None, persistent: bool = False):
    from advisor.data import TorchView

    view = TorchView(ctx.dataset, indices, ctx.preprocess)
    sampler = _Permutation(len(view), generator) if generator is not None else None
    workers = int(ctx.workers or 0)
    return torch.utils.data.DataLoader(
        view, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=workers,
        pin_memory=torch.device(ctx.device).type == "cuda",
        persistent_workers=persistent and workers > 0,
    )


class _Permutation(torch.utils.data.Sampler):
    """One ``randperm`` from ``generator`` per epoch: the same order ``_tensor_batches`` draws.

    (torch's RandomSampler draws a second, unused permutation at the end of each epoch, so
    the image path and the cached-boundary path would see different batches from epoch 2 on.)
    """

    def __init__(self, n: int, generator: torch.Generator):
        self.n, self.generator = n, generator

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=self.generator).tolist())


def _tensor_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int,
                    generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    n = x.shape[0]
    if generator is not None:
        order = torch.randperm(n, generator=generator)
        for s in range(0, n, batch_size):
            rows = order[s:s + batch_size]
            yield x[rows.to(x.device)], y[rows]
    else:
        for s in range(0, n, batch_size):
            yield x[s:s + batch_size], y[s:s + batch_size]


# =========================================================================== result
@dataclass
class FittedNetwork:
    """A trained network: the backbone's top blocks (best epoch's weights) plus one head per task."""

    ctx: TrainContext
    tasks: list[str]
    k: int
    net: _Net
    history: list[EpochRecord]
    best_epoch: int
    trainable_params: int
    param_group_lrs: dict[str, float]
    frozen_blocks: list[str]
    boundary_from_cache: bool
    batch_size: int = 64
    primary_task: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_frozen(self) -> int:
        return len(self.frozen_blocks)

    def logits(self, indices) -> list[torch.Tensor]:
        """Float32 CPU logits ``[n, classes]`` per task for dataset items ``indices`` (eval mode, batches)."""
        with torch.no_grad():
            return self._logits(indices)

    def _logits(self, indices) -> list[torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        outs: list[list[torch.Tensor]] = [[] for _ in self.tasks]
        if idx.size == 0:
            return [torch.zeros(0, len(self.ctx.dataset.classes[t])) for t in self.tasks]
        self.net.set_phase("eval")
        dev = torch.device(self.ctx.device)
        bs = max(2 * self.batch_size, 32)
        y_dummy = torch.zeros(idx.size, 1, dtype=torch.int64)
        if self.boundary_from_cache:
            h_all = torch.as_tensor(self.ctx.cache.boundary(self.ctx, self.n_frozen, idx), dtype=torch.float32)
            batches = ((h, True) for h, _ in _tensor_batches(h_all, y_dummy, bs))
        else:
            batches = ((x, False) for x, _ in _image_loader(self.ctx, idx, bs))
        with _autocast(dev):
            for x, is_boundary in batches:
                x = _to_device(x, dev)
                h = x if is_boundary else self.net.bottom(x)
                f = self.net.features(h)
                for j, head in enumerate(self.net.heads):
                    outs[j].append(head(f).float().cpu())
        return [torch.cat(o) for o in outs]

    def predict_proba(self, indices) -> dict[str, np.ndarray]:
        """Class probabilities ``{task: [n, classes]}`` for dataset items ``indices``."""
        return {t: torch.softmax(z, dim=1).numpy() for t, z in zip(self.tasks, self.logits(indices))}

    def predict(self, indices) -> dict[str, np.ndarray]:
        """Predicted class per task ``{task: [n]}``."""
        return {t: z.argmax(dim=1).numpy() for t, z in zip(self.tasks, self.logits(indices))}

    def evaluate(self, indices) -> dict[str, dict[str, float]]:
        """``{task: {accuracy, macro_f1, n}}`` over the items of ``indices`` labelled for each task."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        pred = self.predict(idx)
        out = {}
        for t in self.tasks:
            y = self.ctx.labels(idx, t)
            m = y >= 0
            out[t] = {
                "accuracy": accuracy(y[m], pred[t][m]),
                "macro_f1": macro_f1(y[m], pred[t][m]) if m.any() else float("nan"),
                "n": int(m.sum()),
            }
        return out


# =========================================================================== training
def _to_device(x: torch.Tensor, dev: torch.device) -> torch.Tensor:
    x = x.to(dev, non_blocking=True)
    if dev.type == "cuda" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _amp_dtype(dev: torch.device):
    if dev.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _autocast(dev: torch.device):
    dtype = _amp_dtype(dev)
    return torch.autocast(device_type="cuda", dtype=dtype) if dtype is not None else nullcontext()


def _check_finite(loss: float, head_lr: float) -> None:
    if not math.isfinite(loss):
        word = "nan" if math.isnan(loss) else "inf"
        raise AdvisorError(f"training diverged (loss is {word}) at head_lr={head_lr:g}",
                           f"lower --head-lr (e.g. {head_lr / 10:g}) or --lr-ratio")


def fit_network(
    ctx: TrainContext,
    tasks: list[str],
    train_idx,
    val_idx,
    *,
    k: int,
    head_lr: float = 1e-2,
    lr_ratio: float = 0.1,
    layer_decay: float = 1.0,
    weight_decay: float = 1e-4,
    epochs: int = 10,
    batch_size: int = 64,
    patience: int = 3,
    warmup_epochs: int = 0,
    augment: bool = False,
    callback: EpochCallback | None = None,
    progress_stage: str = "train",
) -> FittedNetwork:
    """Train the top ``k`` blocks of ``ctx.backbone`` plus one new head per task; see the module docstring.

    ``epochs`` fine-tuning epochs follow ``warmup_epochs`` heads-only epochs. Validation
    accuracy of the primary task (``ctx.dataset.primary_task`` if in ``tasks``, else
    ``tasks[0]``) drives the callback, early stopping and the choice of the best epoch.
    ``callback(epoch, val_acc)`` may raise TrainingPruned, which propagates.
    """
    t_start = time.perf_counter()
    backbone = ctx.backbone
    n_blocks = len(backbone.blocks)
    k = check_k(k, n_blocks)
    tasks = [str(t) for t in tasks]
    if not tasks:
        raise AdvisorError("no task to train", "pass at least one label column")
    for t in tasks:
        if t not in ctx.dataset.tasks:
            raise AdvisorError(f"unknown task {t!r}", f"choose from {', '.join(ctx.dataset.tasks)}")
    primary = ctx.dataset.primary_task if ctx.dataset.primary_task in tasks else tasks[0]
    p_col = tasks.index(primary)
    cols = _task_columns(ctx, tasks)
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

    n_frozen = n_blocks - k
    heads = make_heads(int(backbone.feature_dim), [len(ctx.dataset.classes[t]) for t in tasks], ctx.seed)
    net = _Net(backbone.blocks, n_frozen, heads).to(dev)
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    for p in backbone.parameters():  # the source head and the frozen blocks never train
        p.requires_grad_(False)
    net.set_phase("eval")

    # parameter groups: heads at head_lr, block t from the top at head_lr * lr_ratio * layer_decay**t;
    # each split into weights that decay and biases / norm parameters that do not (decay_groups)
    groups = []
    for t, head in zip(tasks, heads):
        groups += decay_groups(head.parameters(), lr=head_lr, weight_decay=weight_decay, name=f"head:{t}")
    top_names = backbone.block_names[n_frozen:]
    for depth, (name, block) in enumerate(zip(reversed(top_names), reversed(list(net.top)))):
        groups += decay_groups(block.parameters(), lr=head_lr * lr_ratio * layer_decay ** depth,
                               weight_decay=weight_decay, name=f"block:{name}")
    opt = torch.optim.AdamW(groups, lr=head_lr, weight_decay=weight_decay)
    amp_dtype = _amp_dtype(dev)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    # where the top part's input comes from
    use_cache = (not augment and n_frozen > 0 and ctx.cache is not None
                 and bool(ctx.cache.fits(ctx, n_frozen)))
    state: dict[str, Any] = {}
    try:
        if use_cache:
            both = np.concatenate([train_idx, val_idx])
            h = torch.as_tensor(ctx.cache.boundary(ctx, n_frozen, both), dtype=torch.float32)
            if cuda and h.numel() * 4 <= GPU_RESIDENT_BYTES:
                h = _to_device(h, dev)
            elif cuda:
                h = h.pin_memory()  # per-batch copies can then overlap with compute
            state["h_train"], state["h_val"] = h[:train_idx.size], h[train_idx.size:]
            del h
        else:
            state["train_loader"] = _image_loader(ctx, train_idx, batch_size, generator=order_gen, persistent=True)

        def batches(which: str, shuffle: bool):
            """``(input on the device, labels [n, n_tasks] on the CPU, input is a boundary)`` per batch."""
            y_all = y_train if which == "train" else y_val
            bs = batch_size if which == "train" else max(2 * batch_size, 32)
            if use_cache:
                h_all = state["h_" + which]
                for x, y in _tensor_batches(h_all, y_all, bs, order_gen if shuffle else None):
                    yield _to_device(x, dev), y, True
                return
            if which == "train" and shuffle:
                loader = state["train_loader"]
            else:
                loader = _image_loader(ctx, train_idx if which == "train" else val_idx, bs)
            for x, y in loader:
                x = _to_device(x, dev)
                if augment and which == "train":
                    x = _to_device(augment_batch(x, aug_gen), dev)
                yield x, y[:, cols], False

        @torch.no_grad()
        def pooled(batches) -> tuple[torch.Tensor, torch.Tensor]:
            net.set_phase("eval")
            fs, ys = [], []
            with _autocast(dev):
                for x, y, is_boundary in batches:
                    fs.append(net.features(x if is_boundary else net.bottom(x)).float())
                    ys.append(y)
            return torch.cat(fs), torch.cat(ys)

        def step(loss: torch.Tensor) -> None:
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

        def run_train_epoch(phase: str) -> float:
            total = torch.zeros((), device=dev)
            seen = 0
            if phase == "heads" and not augment:
                # heads-only on fixed inputs: the pooled features are computed once for all warm-up epochs
                if "f_train" not in state:
                    state["f_train"], _ = pooled(batches("train", shuffle=False))
                source = ((f, y, None) for f, y in _tensor_batches(state["f_train"], y_train, batch_size, order_gen))
            else:
                source = batches("train", shuffle=True)
            net.set_phase(phase)
            for x, y, is_boundary in source:
                if phase == "top" and x.shape[0] < 2:
                    continue  # BatchNorm cannot train on a batch of one
                with _autocast(dev):
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
                step(loss)
                total += loss.detach().float() * x.shape[0]
                seen += x.shape[0]
            value = float(total.item()) / max(seen, 1)
            _check_finite(value, head_lr)
            return value

        @torch.no_grad()
        def evaluate() -> tuple[float, float]:
            if state.get("f_val") is not None:
                f_val = state["f_val"]
            else:
                f_val, _ = pooled(batches("val", shuffle=False))
            net.set_phase("eval")
            _, per_task = masked_loss(net.heads, f_val, y_val)
            val_loss = float(sum(float(v) for v in per_task if v is not None))
            yp = y_val[:, p_col].numpy()
            m = yp >= 0
            logits = net.heads[p_col](f_val[torch.from_numpy(np.flatnonzero(m)).to(f_val.device)])
            return accuracy(yp[m], logits.argmax(1).cpu().numpy()), val_loss

        history: list[EpochRecord] = []
        best_acc, best_epoch, since_best = -math.inf, 0, 0
        total_epochs = warmup_epochs + epochs
        state["best"] = net.trainable_state()
        for epoch in range(1, total_epochs + 1):
            t0 = time.perf_counter()
            phase = "heads" if epoch <= warmup_epochs else "top"
            if phase == "top" and epoch == warmup_epochs + 1:
                since_best = 0
                state.pop("f_train", None)
                state.pop("f_val", None)
            if phase == "heads" and not augment and "f_val" not in state:
                state["f_val"], _ = pooled(batches("val", shuffle=False))
            train_loss = run_train_epoch(phase)
            val_acc, val_loss = evaluate()
            history.append(EpochRecord(epoch=epoch, train_loss=train_loss, val_accuracy=val_acc,
                                       val_loss=val_loss, seconds=time.perf_counter() - t0))
            if val_acc > best_acc:
                best_acc, best_epoch, since_best = val_acc, epoch, 0
                state["best"] = net.trainable_state()
            else:
                since_best += 1
            if ctx.progress is not None:
                ctx.progress(progress_stage, epoch, total_epochs)
            if callback is not None:
                callback(epoch, val_acc)
            if phase == "top" and since_best > 0 and since_best >= patience:
                break
        net.load_trainable_state(state["best"])
    except BaseException:
        # free activations, optimizer state and weight copies before the exception travels up
        state.clear()
        opt.state.clear()
        if cuda:
            with suppress(RuntimeError):  # after a device-side assert this raises too; report the first error
                torch.cuda.empty_cache()
        raise
    state.clear()

    net.set_phase("top")
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    net.set_phase("eval")
    for p in net.parameters():
        p.requires_grad_(False)
    opt.state.clear()
    return FittedNetwork(
        ctx=ctx, tasks=tasks, k=k, net=net, history=history, best_epoch=best_epoch,
        trainable_params=int(trainable),
        param_group_lrs={g["name"]: float(g["lr"]) for g in opt.param_groups},
        frozen_blocks=list(backbone.block_names[:n_frozen]), boundary_from_cache=use_cache,
        batch_size=batch_size, primary_task=primary, seconds=time.perf_counter() - t_start,
    )
