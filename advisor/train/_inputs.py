"""Where a trained network's inputs come from: image loaders and their seeded order, tensors in
batches, the device, mixed precision, and :class:`TopInputs`, which feeds the trainable top part either
the cached boundary activations or the images through the frozen blocks."""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Iterator, Sequence

import numpy as np
import torch

from advisor.context import TrainContext
from advisor.errors import AdvisorError
from advisor.train._model import augment_batch

#: Boundary activations up to this many bytes are moved to the GPU once instead of per batch.
GPU_RESIDENT_BYTES = 2 << 30


def task_columns(ctx: TrainContext, tasks: Sequence[str]) -> list[int]:
    return [ctx.dataset.tasks.index(t) for t in tasks]


def image_loader(ctx: TrainContext, indices: np.ndarray, batch_size: int, *,
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
    """One ``randperm`` from ``generator`` per epoch: the same order ``tensor_batches`` draws.

    (torch's RandomSampler draws a second, unused permutation at the end of each epoch, so
    the image path and the cached-boundary path would see different batches from epoch 2 on.)
    """

    def __init__(self, n: int, generator: torch.Generator):
        self.n, self.generator = n, generator

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=self.generator).tolist())


def tensor_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int,
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


def to_device(x: torch.Tensor, dev: torch.device) -> torch.Tensor:
    x = x.to(dev, non_blocking=True)
    if dev.type == "cuda" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def amp_dtype(dev: torch.device):
    if dev.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(dev: torch.device):
    dtype = amp_dtype(dev)
    return torch.autocast(device_type="cuda", dtype=dtype) if dtype is not None else nullcontext()


def check_finite(loss: float, head_lr: float) -> None:
    if not math.isfinite(loss):
        word = "nan" if math.isnan(loss) else "inf"
        raise AdvisorError(f"training diverged (loss is {word}) at head_lr={head_lr:g}",
                           f"lower --head-lr (e.g. {head_lr / 10:g}) or --lr-ratio")


class TopInputs:
    """The batches the trainable top part sees, for the training and the validation items.

    Without augmentation and with ``n_frozen > 0`` the frozen part's output (the boundary) comes from
    the activation cache when there is one and it fits (``from_cache``); otherwise images go through
    the frozen blocks per batch. Pooled features of a split are kept while the top blocks do not train
    (LP-FT's heads-only epochs) and dropped with :meth:`forget_features`.
    """

    def __init__(self, ctx: TrainContext, net, train_idx: np.ndarray, val_idx: np.ndarray, y_train: torch.Tensor,
                 y_val: torch.Tensor, cols: list[int], *, n_frozen: int, batch_size: int, augment: bool,
                 order_gen: torch.Generator, aug_gen: torch.Generator):
        self.ctx, self.net, self.cols = ctx, net, cols
        self.train_idx, self.val_idx, self.y = train_idx, val_idx, {"train": y_train, "val": y_val}
        self.batch_size, self.augment, self.order_gen, self.aug_gen = batch_size, augment, order_gen, aug_gen
        self.dev = torch.device(ctx.device)
        cuda = self.dev.type == "cuda"
        self.from_cache = (not augment and n_frozen > 0 and ctx.cache is not None
                           and bool(ctx.cache.fits(ctx, n_frozen)))
        self.boundary: dict[str, torch.Tensor] = {}
        self.features_kept: dict[str, torch.Tensor] = {}
        self.train_loader = None
        if self.from_cache:
            both = np.concatenate([train_idx, val_idx])
            h = torch.as_tensor(ctx.cache.boundary(ctx, n_frozen, both), dtype=torch.float32)
            if cuda and h.numel() * 4 <= GPU_RESIDENT_BYTES:
                h = to_device(h, self.dev)
            elif cuda:
                h = h.pin_memory()  # per-batch copies can then overlap with compute
            self.boundary = {"train": h[:train_idx.size], "val": h[train_idx.size:]}
        else:
            self.train_loader = image_loader(ctx, train_idx, batch_size, generator=order_gen, persistent=True)

    def batches(self, which: str, shuffle: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor, bool]]:
        """``(input on the device, labels [n, n_tasks] on the CPU, input is a boundary)`` per batch."""
        y_all = self.y[which]
        bs = self.batch_size if which == "train" else max(2 * self.batch_size, 32)
        if self.from_cache:
            for x, y in tensor_batches(self.boundary[which], y_all, bs, self.order_gen if shuffle else None):
                yield to_device(x, self.dev), y, True
            return
        if which == "train" and shuffle:
            loader = self.train_loader
        else:
            loader = image_loader(self.ctx, self.train_idx if which == "train" else self.val_idx, bs)
        for x, y in loader:
            x = to_device(x, self.dev)
            if self.augment and which == "train":
                x = to_device(augment_batch(x, self.aug_gen), self.dev)
            yield x, y[:, self.cols], False

    @torch.no_grad()
    def pooled(self, which: str) -> torch.Tensor:
        """The pooled top-part features of every item of ``which``, in order (eval mode)."""
        self.net.set_phase("eval")
        fs = []
        with autocast(self.dev):
            for x, _, is_boundary in self.batches(which, shuffle=False):
                fs.append(self.net.features(x if is_boundary else self.net.bottom(x)).float())
        return torch.cat(fs)

    def features(self, which: str, keep: bool = False) -> torch.Tensor:
        """Pooled features of ``which``: the kept ones if any, else computed (and kept when ``keep``)."""
        if which in self.features_kept:
            return self.features_kept[which]
        f = self.pooled(which)
        if keep:
            self.features_kept[which] = f
        return f

    def forget_features(self) -> None:
        self.features_kept.clear()

    def clear(self) -> None:
        self.boundary.clear()
        self.features_kept.clear()
        self.train_loader = None
