"""The ``advisor.model/2`` file: a :class:`~advisor.deploy.model.TransferModel` saved and loaded without
pretrained weights.

The file written by :func:`save_model` is a ``torch.save`` dictionary of tensors and
plain values (loadable with ``torch.load(..., weights_only=True)``): the architecture is
rebuilt from the model name with random weights and the state dict is loaded on top, so
loading never needs the pretrained weights file. :func:`load_model` reads it as data only and checks
its whole schema first (:mod:`advisor.deploy._model_schema`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from advisor.deploy._model_schema import FORMAT, check_payload, check_state_dict, damaged, read_payload
from advisor.deploy.model import TransferModel
from advisor.errors import AdvisorError
from advisor.models import Layout


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
    (:mod:`advisor.deploy._model_schema`) before anything is built: any problem is one AdvisorError."""
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
