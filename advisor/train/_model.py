"""The parts of a trained network: task heads, the frozen-bottom / trainable-top split, the optimizer's
parameter groups, the masked multi-task loss and batch augmentation."""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from advisor.models import Layout, engine


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


def by_shape(name: str, param: torch.Tensor) -> bool:
    """timm's default rule: a parameter with more than one dimension takes weight decay; a bias or a
    BatchNorm/LayerNorm scale or shift does not (pulling a norm's scale toward zero changes what the
    layer computes instead of regularising it)."""
    return param.ndim > 1


def decay_groups(named_params, *, lr: float, weight_decay: float, name: str,
                 decays: Callable[[str, torch.Tensor], bool] = by_shape) -> list[dict[str, Any]]:
    """Optimizer groups for ``named_params`` (``(name, parameter)`` pairs) at ``lr``: weight decay on what
    ``decays(name, parameter)`` accepts, none on the rest.

    ``decays`` defaults to :func:`by_shape` (biases and norm parameters free); a backbone passes its
    own :meth:`~advisor.models.Backbone.decays`, which also frees what the model declares (position
    embeddings, class/register tokens, Swin's relative-position tables). Both groups carry ``name``
    and the same ``lr``; an empty one is left out. Order within a group is the parameters' order.
    """
    named = list(named_params)
    flags = [bool(decays(n, p)) for n, p in named]
    decay = [p for (_, p), f in zip(named, flags) if f]
    no_decay = [p for (_, p), f in zip(named, flags) if not f]
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


#: The normalisation layers whose affine parameters ``norm_tune`` trains (timm's norms subclass these).
NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def norm_and_bias_params(modules: Sequence[nn.Module]) -> list[torch.Tensor]:
    """The parameters of ``modules`` that ``norm_tune`` trains (BitFit, TinyTL): every normalisation layer's
    own parameters (scale and shift) and every bias; nothing else (no kernel, matrix, embedding or token)."""
    out: dict[int, torch.Tensor] = {}
    for m in modules:
        for sub in m.modules():
            for name, p in sub.named_parameters(recurse=False):
                if isinstance(sub, NORM_LAYERS) or name == "bias":
                    out[id(p)] = p
    return list(out.values())


class Net(nn.Module):
    """Frozen bottom blocks, trainable top blocks, frozen blocks above them, and the task heads (modules
    shared with the backbone).

    ``blocks[:n_frozen]`` are the frozen bottom (run without gradient; their output is what the activation
    cache holds), ``blocks[n_frozen:last + 1]`` the trainable ``top`` and ``blocks[last + 1:]`` the frozen
    ``above`` (``last`` None: the last block, so nothing is above, which is last_k). Gradients flow
    through the blocks above to the top, but their parameters never train and they stay in eval mode,
    like the bottom, so their BatchNorm statistics never move. ``only`` (parameters of the top blocks):
    of the top's parameters only these train (norm_tune's norms and biases); None: all of them.
    ``layout`` is the backbone's :class:`~advisor.models.Layout`: the last block's output is pooled by it
    (a CNN's maps by spatial mean, a ViT's tokens by class token or patch mean). Every part runs through
    the feature engine (:mod:`advisor.models.engine`), under the trainer's own precision.
    """

    def __init__(self, blocks: Sequence[nn.Module], n_frozen: int, heads: nn.ModuleList, layout: Layout, *,
                 last: int | None = None, only: Sequence[torch.Tensor] | None = None):
        super().__init__()
        blocks = list(blocks)
        end = len(blocks) if last is None else int(last) + 1
        self.frozen = nn.ModuleList(blocks[:n_frozen])
        self.top = nn.ModuleList(blocks[n_frozen:end])
        self.above = nn.ModuleList(blocks[end:])
        self.heads = heads
        self.layout = layout
        self._only = None if only is None else frozenset(id(p) for p in only)

    def bottom(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return engine.run(self.frozen, x)

    def features(self, h: torch.Tensor) -> torch.Tensor:
        if not len(self.above):
            return engine.pooled(self.top, h, self.layout)
        return engine.pooled([*self.top, *self.above], h, self.layout)

    def trains(self, p: torch.Tensor) -> bool:
        """Whether a parameter of the top blocks trains (in the "top" phase)."""
        return self._only is None or id(p) in self._only

    def set_phase(self, phase: str) -> None:
        """``"eval"``: everything in eval mode; ``"heads"``: only heads train; ``"top"``: top blocks train too
        (those of their parameters that :meth:`trains` accepts)."""
        self.eval()
        for p in self.frozen.parameters():
            p.requires_grad_(False)
        for p in self.above.parameters():
            p.requires_grad_(False)
        for p in self.top.parameters():
            p.requires_grad_(phase == "top" and self.trains(p))
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


def param_groups(tasks: Sequence[str], net: Net, top_names: Sequence[str], *, head_lr: float, lr_ratio: float,
                 layer_decay: float, weight_decay: float,
                 decays: Callable[[str, torch.Tensor], bool] = by_shape) -> list[dict[str, Any]]:
    """Heads at ``head_lr``; the trainable block ``t`` places from the top of the trained range at
    ``head_lr * lr_ratio * layer_decay**t`` (only the parameters :meth:`Net.trains` accepts); each split by :func:`decay_groups` into weights that decay and parameters that do not.

    Each group carries its own ``lr`` (layer-wise decay counts blocks: a ViT's transformer blocks); timm's
    ``lr_scale`` is never set, since only timm's own scheduler reads it. Block parameters are named as in
    the backbone's ``state_dict`` (``blocks.I.…``, ``I`` counted from the first frozen block) for
    ``decays`` (the backbone's :meth:`~advisor.models.Backbone.decays`); heads follow :func:`by_shape`.
    """
    groups = []
    for t, head in zip(tasks, net.heads):
        groups += decay_groups(head.named_parameters(), lr=head_lr, weight_decay=weight_decay, name=f"head:{t}")
    n_frozen = len(net.frozen)
    top = list(enumerate(zip(top_names, net.top), start=n_frozen))
    for depth, (i, (name, block)) in enumerate(reversed(top)):
        named = ((f"blocks.{i}.{k}", p) for k, p in block.named_parameters() if net.trains(p))
        groups += decay_groups(named, lr=head_lr * lr_ratio * layer_decay ** depth,
                               weight_decay=weight_decay, name=f"block:{name}", decays=decays)
    return groups
