"""The deployable model: a trained result as one self-contained PyTorch module.

Every strategy ends in the same shape: the backbone's first blocks, pooling by the
backbone's layout (a CNN's spatial mean, a ViT's class token), an optional
standardisation of the pooled features, and one linear head per task. Probes fit that
exactly (a logistic regression or linear SVM on standardised pooled features is a linear
layer on them: :func:`linear_from_sklearn`, :func:`from_probe`); the pipeline's two stages are a head for
``z`` followed by ``softmax`` and stage 2's linear map. So one class,
:class:`TransferModel`, serves every strategy (a network trainer's result becomes one with
:func:`advisor.train._network.from_fitted`), and a search can log the best trial with MLflow's PyTorch flavour.

Its file (``advisor.model/2``) is :mod:`advisor.deploy.modelfile`; its export formats (ONNX, TorchScript)
:mod:`advisor.deploy.exporting` and :mod:`advisor.deploy.formats`; inference on images
:func:`advisor.deploy.inference.infer`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from advisor.models import Layout, engine


class _Standardise(nn.Module):
    def __init__(self, mean: torch.Tensor, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("scale", scale.float().clone())

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return (f - self.mean) / self.scale


class TransferModel(nn.Module):
    """images ``[n, 3, H, W]`` (already preprocessed) -> logits of the primary task ``[n, classes]``.

    ``forward_all`` returns ``{task: logits}`` for every task. ``blocks`` are the backbone
    blocks in order (only as many as the features need), ``layout`` the backbone's
    :class:`~advisor.models.Layout` (how the last block's output is pooled), ``heads`` map
    task -> module on the pooled (and, with ``mean``/``scale``, standardised) features.
    """

    def __init__(self, blocks: list[nn.Module], heads: dict[str, nn.Module], primary: str,
                 mean: torch.Tensor | None = None, scale: torch.Tensor | None = None, *, layout: Layout):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.heads = nn.ModuleDict(heads)
        self.primary = primary
        self.layout = layout
        self.standardise = _Standardise(mean, scale) if mean is not None else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = engine.pooled(self.blocks, x, self.layout)
        return self.standardise(x) if self.standardise is not None else x

    def forward_all(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        return {task: head(f) for task, head in self.heads.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads[self.primary](self.features(x))


def linear_from_sklearn(model, n_classes: int) -> nn.Linear:
    """A ``Linear`` whose argmax and softmax equal a fitted sklearn linear classifier's predictions.

    Classes the model never saw get weight 0 and bias -1e4; a binary model's single
    decision ``d`` becomes logits ``(-d/2, d/2)`` (softmax of those is sigmoid(d)).
    """
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64).reshape(-1)
    seen = np.asarray(model.classes_, dtype=np.int64)
    if coef.shape[0] == 1 and seen.size == 2:
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    lin = nn.Linear(coef.shape[1], n_classes)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.fill_(-1e4)
        lin.weight[torch.from_numpy(seen)] = torch.from_numpy(coef).float()
        lin.bias[torch.from_numpy(seen)] = torch.from_numpy(intercept).float()
    return lin


def from_probe(backbone, block: int, scaler, model, task: str, n_classes: int) -> TransferModel:
    """Backbone blocks ``0..block``, standardisation and the sklearn probe as one module on the CPU."""
    import copy

    blocks = [copy.deepcopy(b).cpu() for b in list(backbone.blocks)[: block + 1]]
    mean = torch.as_tensor(np.asarray(scaler.mean_), dtype=torch.float32)
    scale = torch.as_tensor(np.asarray(scaler.scale_), dtype=torch.float32)
    out = TransferModel(blocks, {task: linear_from_sklearn(model, n_classes)}, task, mean, scale,
                        layout=backbone.layout)
    return out.eval().requires_grad_(False)
