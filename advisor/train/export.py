"""A trained result as one self-contained PyTorch module, saved and loaded without pretrained weights.

Every strategy ends in the same shape: the backbone's first blocks, pooling by the
backbone's layout (a CNN's spatial mean, a ViT's class token), an optional
standardisation of the pooled features, and one linear head per task. Probes fit that
exactly (a logistic regression or linear SVM on standardised pooled features is a linear
layer on them); the pipeline's two stages are a head for
``z`` followed by ``softmax`` and stage 2's linear map. So one class,
:class:`TransferModel`, serves every strategy, and a search can log the best trial with
MLflow's PyTorch flavour.

The file written by :func:`save_model` is a ``torch.save`` dictionary of tensors and
plain values (loadable with ``torch.load(..., weights_only=True)``): the architecture is
rebuilt from the model name with random weights and the state dict is loaded on top, so
loading never needs the pretrained weights file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from advisor.errors import AdvisorError
from advisor.models import Layout, engine
from advisor.train._model_schema import FORMAT, check_payload, check_state_dict, damaged, read_payload


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


def from_fitted(fitted, heads: dict[str, nn.Module] | None = None, primary: str | None = None) -> TransferModel:
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


def from_probe(backbone, block: int, scaler, model, task: str, n_classes: int) -> TransferModel:
    """Backbone blocks ``0..block``, standardisation and the sklearn probe as one module on the CPU."""
    import copy

    blocks = [copy.deepcopy(b).cpu() for b in list(backbone.blocks)[: block + 1]]
    mean = torch.as_tensor(np.asarray(scaler.mean_), dtype=torch.float32)
    scale = torch.as_tensor(np.asarray(scaler.scale_), dtype=torch.float32)
    out = TransferModel(blocks, {task: linear_from_sklearn(model, n_classes)}, task, mean, scale,
                        layout=backbone.layout)
    return out.eval().requires_grad_(False)


# --------------------------------------------------------------------------- files
def _head_spec(head: nn.Module, allowed: tuple[str, ...] | None = None, strategy: str = "") -> dict:
    """Enough to rebuild a head's architecture: a Linear, or Linear -> Softmax -> Linear; ``allowed``: the
    head kinds the strategy declares (``Strategy.heads``; all of :data:`advisor.strategies.HEADS` if None)."""
    from advisor.strategies import HEADS

    if isinstance(head, nn.Linear):
        spec = {"kind": "linear", "in": head.in_features, "out": head.out_features}
    elif isinstance(head, nn.Sequential) and len(head) == 3 and isinstance(head[0], nn.Linear) \
            and isinstance(head[1], nn.Softmax) and isinstance(head[2], nn.Linear):
        spec = {"kind": "two_stage", "in": head[0].in_features, "mid": head[0].out_features,
                "out": head[2].out_features}
    else:
        raise AdvisorError(f"cannot save a head of type {type(head).__name__}", f"use one of: {', '.join(HEADS)}")
    if allowed is not None and spec["kind"] not in allowed:
        raise AdvisorError(f"{strategy or 'this strategy'} declares heads {', '.join(allowed)}, not a {spec['kind']} "
                           f"head", "declare the head kind in the strategy's heads")
    return spec


def _declared_heads(strategy: str) -> tuple[str, ...] | None:
    from advisor import strategies

    return strategies.get(strategy).heads if strategy in strategies.names() else None


def _head_from_spec(spec: dict) -> nn.Module:
    if spec["kind"] == "linear":
        return nn.Linear(spec["in"], spec["out"])
    return nn.Sequential(nn.Linear(spec["in"], spec["mid"]), nn.Softmax(dim=1), nn.Linear(spec["mid"], spec["out"]))


def preprocess_state(preprocess) -> dict:
    """``preprocess.__getstate__()`` as plain values (tuples become lists); ``Preprocess(**state)`` rebuilds it,
    with every attribute the class serialises (resolution, mean/std, and interpolation where it has one)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in preprocess.__getstate__().items()}


def save_model(result, path: str | Path, *, model_name: str, weights: str | None, preprocess,
               dataset_name: str = "", classes: dict[str, list[str]] | None = None, flag: str | None = None) -> Path:
    """Write ``result.model`` (a TransferModel) with what is needed to use it again, atomically; returns the
    path. ``flag`` names the option that gave ``path`` in a one-line error."""
    from advisor.outputs import write_outputs

    out = model_output(result, path, model_name=model_name, weights=weights, preprocess=preprocess,
                       dataset_name=dataset_name, classes=classes, flag=flag)
    return write_outputs(out)[0]


def model_output(result, path: str | Path, *, model_name: str, weights: str | None, preprocess,
                 dataset_name: str = "", classes: dict[str, list[str]] | None = None, flag: str | None = None):
    """The model file of :func:`save_model`, rendered in memory: an :class:`advisor.outputs.Output` to write
    (with other outputs, all or none)."""
    import io

    from advisor.outputs import Output

    module = getattr(result, "model", None)
    if module is None:
        raise AdvisorError(f"the {result.strategy} run kept no model to save", "run it again with a save path")
    payload: dict[str, Any] = {
        "format": FORMAT,
        "model_name": model_name,
        "weights": weights,
        "strategy": result.strategy,
        "params": {k: v for k, v in result.params.items() if isinstance(v, (int, float, str, bool, list, tuple))},
        "dataset": dataset_name,
        "n_blocks": len(module.blocks),
        "layout": module.layout.to_dict(),
        "image_size": int(preprocess.crop_size),
        "primary": module.primary,
        "heads": {t: _head_spec(h, _declared_heads(result.strategy), result.strategy)
                  for t, h in module.heads.items()},
        "standardise": module.standardise is not None,
        "classes": classes or {},
        "preprocess": preprocess_state(preprocess),
        "val_accuracy": float(result.val_accuracy),
        "test_accuracy": float(result.test_accuracy),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
    }
    buf = io.BytesIO()  # in memory first: no serialiser error can leave a file, and the size is known
    torch.save(payload, buf)
    return Output(path, buf.getvalue(), flag)


def load_model(path: str | Path, device: str = "cpu") -> tuple[TransferModel, dict]:
    """Rebuild a saved TransferModel (random-weight architecture + saved state) and its metadata.

    The file is read as data only (``weights_only=True``) and its whole schema checked
    (:mod:`advisor.train._model_schema`) before anything is built: any problem is one AdvisorError."""
    from advisor.models import create_backbone

    path = Path(path)
    if not path.is_file():
        what = "a folder" if path.is_dir() else "missing"
        raise AdvisorError(f"no saved model at {path} ({what})", "pass the path given to --save")
    payload = read_payload(path)
    check_payload(payload, path)
    layout = Layout.from_dict(payload["layout"])
    try:  # the architecture at the size it was trained at (a torchvision ViT's position embedding), pooled as saved
        backbone = create_backbone(payload["model_name"], "random", device="cpu", image_size=payload["image_size"],
                                   pool=layout.pool)
    except AdvisorError as e:
        raise damaged(path, f"model_name: {e.problem}") from None
    if backbone.layout != layout:
        raise damaged(path, f"layout {layout.to_dict()} is not {payload['model_name']}'s "
                            f"({backbone.layout.to_dict()})")
    n_blocks, heads_spec = payload["n_blocks"], payload["heads"]
    if n_blocks > len(backbone.blocks):
        raise damaged(path, f"{n_blocks} blocks, {payload['model_name']} has {len(backbone.blocks)}")
    blocks = list(backbone.blocks)[:n_blocks]
    feat_dim = next(iter(heads_spec.values()))["in"]
    width = backbone.block_channels[n_blocks - 1]
    if feat_dim != width:
        raise damaged(path, f"its heads take {feat_dim} features, block {n_blocks} of {payload['model_name']} "
                            f"gives {width}")
    heads = {t: _head_from_spec(s) for t, s in heads_spec.items()}
    mean = torch.zeros(feat_dim) if payload["standardise"] else None
    scale = torch.ones(feat_dim) if payload["standardise"] else None
    model = TransferModel(blocks, heads, payload["primary"], mean, scale, layout=layout)
    check_state_dict(payload["state_dict"], model, path)
    model.load_state_dict(payload["state_dict"])
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model.eval().to(device), meta


def evaluate_model(model: TransferModel, ctx, indices, task: str | None = None,
                   batch_size: int = 128) -> dict[str, float]:
    """Accuracy and macro-F1 of ``model`` on dataset items ``indices`` of ``ctx`` (items with a label only).

    Runs on ``ctx.device`` in eval mode; the images go through ``ctx.preprocess``.
    """
    from advisor.data import TorchView
    from advisor.train._base import accuracy, macro_f1

    task = task or model.primary
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    y = ctx.labels(idx, task)
    idx, y = idx[y >= 0], y[y >= 0]
    if idx.size == 0:
        return {"accuracy": float("nan"), "macro_f1": float("nan"), "n": 0}
    dev = torch.device(ctx.device)
    model = model.to(dev).eval()
    loader = torch.utils.data.DataLoader(TorchView(ctx.dataset, idx, ctx.preprocess), batch_size=batch_size,
                                         num_workers=int(ctx.workers or 0), pin_memory=dev.type == "cuda")
    preds = []
    with torch.no_grad():
        for x, _ in loader:
            out = model.forward_all(x.to(dev, non_blocking=True))[task]
            preds.append(out.argmax(1).cpu().numpy())
    pred = np.concatenate(preds)
    return {"accuracy": accuracy(y, pred), "macro_f1": macro_f1(y, pred), "n": int(idx.size)}
