"""Network strategies' shared pieces above the loop: their parameters, validated against the registry,
and :class:`FittedNetwork`, a trained network that predicts and evaluates (:func:`from_fitted`: as the
deployable :class:`~advisor.deploy.model.TransferModel`).

The training loop is :func:`advisor.train._loop.fit_network`; the network's parts are in
``_model.py``, where its inputs come from in ``_inputs.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from advisor import strategies as _strategies
from advisor.context import TrainContext
from advisor.deploy.model import TransferModel
from advisor.errors import AdvisorError
from advisor.train._base import EpochRecord, accuracy, macro_f1
from advisor.train._inputs import autocast, image_loader, tensor_batches, to_device
from advisor.train._model import Net

# The parameters, their defaults and constraints are declared once, in advisor.strategies.
NETWORK_DEFAULTS = _strategies.NETWORK_DEFAULTS
DEFAULT_WARMUP_EPOCHS = _strategies.DEFAULT_WARMUP_EPOCHS


# =========================================================================== parameters
def check_k(k, n_blocks: int) -> int:
    """``k`` as an int in ``1..n_blocks``, else AdvisorError."""
    return _strategies.get("last_k").param("k").check(k, "last_k", n_blocks)


def check_range(block_range, n_blocks: int) -> tuple[int, int]:
    """``(first, last)`` as 0-based block indices with ``0 <= first <= last < n_blocks``, else AdvisorError."""
    first, last = (int(v) for v in block_range)
    if not 0 <= first <= last < n_blocks:
        raise AdvisorError(f"bad block range {first}..{last}: the blocks are 0..{n_blocks - 1}",
                           f"use 0 <= first <= last <= {n_blocks - 1}")
    return first, last


def parse_network_params(params: dict, *, strategy: str, n_blocks: int, family: str = "cnn") -> dict[str, Any]:
    """Validate plain-value parameters of a network strategy with the registry and fill in the defaults.

    The parameters of the fine-tuning recipe (``lr_ratio``, ``layer_decay``, ``rate_warmup``,
    ``clip_grad``) that ``params`` does not give take the backbone ``family``'s values
    (:func:`advisor.strategies.recipe`; ``family`` is the backbone's ``layout.family``).
    ``warmup`` (bool) and ``warmup_epochs`` are folded together: ``warmup=True`` alone means
    ``DEFAULT_WARMUP_EPOCHS`` heads-only epochs. Every problem is an AdvisorError naming the parameter.
    """
    recipe = _strategies.recipe(family)
    p = _strategies.get(strategy).validate(params, n_blocks=n_blocks)
    for name, value in recipe.defaults().items():
        if name in p and (params or {}).get(name) is None:
            p[name] = value
    warmup, we = p.get("warmup"), p.get("warmup_epochs")
    if we is not None and warmup is not None and warmup != (we > 0):
        raise AdvisorError(f"warmup={warmup} contradicts warmup_epochs={we}", "pass only one of them")
    we = warmup_epochs_of(p)
    p["warmup_epochs"], p["warmup"] = we, we > 0
    return p


def warmup_epochs_of(params: dict) -> int:
    """The heads-only (LP-FT) warm-up epochs a network run does: ``warmup_epochs`` when given, else
    ``DEFAULT_WARMUP_EPOCHS`` for ``warmup=True`` and 0 otherwise."""
    we = params.get("warmup_epochs")
    if we is None:
        we = DEFAULT_WARMUP_EPOCHS if params.get("warmup") else 0
    return int(we)


# =========================================================================== result
@dataclass
class FittedNetwork:
    """A trained network: the backbone's top blocks (best epoch's weights) plus one head per task."""

    ctx: TrainContext
    tasks: list[str]
    k: int
    net: Net
    history: list[EpochRecord]
    best_epoch: int
    trainable_params: int
    param_group_lrs: dict[str, float]
    frozen_blocks: list[str]
    boundary_from_cache: bool
    above_blocks: list[str] = field(default_factory=list)  # frozen blocks above the trained range
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
            batches = ((h, True) for h, _ in tensor_batches(h_all, y_dummy, bs))
        else:
            batches = ((x, False) for x, _ in image_loader(self.ctx, idx, bs))
        with autocast(dev):
            for x, is_boundary in batches:
                x = to_device(x, dev)
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


def from_fitted(fitted: FittedNetwork, heads: dict[str, torch.nn.Module] | None = None,
                primary: str | None = None) -> TransferModel:
    """The network of a ``FittedNetwork`` (all its blocks, its heads) as a TransferModel on the CPU.

    ``heads`` replaces the heads (the pipeline's composed ``z -> y`` head); the modules are copied.
    """
    import copy

    net = fitted.net
    blocks = [copy.deepcopy(b).cpu() for b in list(net.frozen) + list(net.top) + list(net.above)]
    if heads is None:
        heads = {t: copy.deepcopy(h).cpu() for t, h in zip(fitted.tasks, net.heads)}
    model = TransferModel(blocks, heads, primary or fitted.primary_task, layout=net.layout)
    return model.eval().requires_grad_(False)
