"""The ``advisor.model/2`` file's schema, checked whole before anything is built from it.

:func:`read_payload` loads the file with ``torch.load(..., weights_only=True)`` (tensors and plain values
only: a pickle that would call anything is refused by torch's restricted unpickler) with library
warnings silenced, so a refusal is our one line. :func:`check_payload` checks every key and its type,
the heads' specs, and :func:`check_state_dict` the state dict against the rebuilt architecture (the same
keys, shapes and dtypes, finite values): a file with the right format tag and anything else wrong is one
:class:`~advisor.errors.AdvisorError`, never a ``KeyError`` deep in PyTorch.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any

from advisor.errors import AdvisorError

FORMAT = "advisor.model/2"  # 2: records the block layout and pooling, and the image size built at
#: formats this package wrote before, refused in one line that says what to do
OLD_FORMATS = {"advisor.model/1": "it was written before advisor recorded the block layout (transformers)"}
FIX = "pass a file written by advisor train --save (or save the model again)"
#: a torchvision name or timm:NAME (a timm name may carry a ``.tag``); no hub prefix, no path: the
#: architecture a file names is built from this package's own list, never fetched
MODEL_NAME = re.compile(r"^(timm:)?[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
HEAD_KINDS = {"linear": ("in", "out"), "two_stage": ("in", "mid", "out")}
_PLAIN = (int, float, str, bool, list, tuple, type(None))


def read_payload(path: Path) -> Any:
    """``torch.load`` of ``path``, data only, quietly; any unreadable file is one line."""
    import torch

    try:
        with warnings.catch_warnings():  # e.g. torch's "Detected pickle protocol": our line comes alone
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file (a refused pickle included) is one message
        detail = " ".join(str(e).split())[:120]
        unpickle = "weights only" in detail.lower() or type(e).__name__ == "UnpicklingError"
        why = "it holds objects that only unpickling code could build" if unpickle else type(e).__name__
        raise AdvisorError(f"{path} is not a readable advisor model ({why})", FIX) from None


def damaged(path: Path, what: str) -> AdvisorError:
    return AdvisorError(f"{path} is a damaged advisor model file: {what}", FIX)


def _int(value: Any, low: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _str_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def check_payload(payload: Any, path: Path) -> None:
    """Every key of an ``advisor.model/2`` payload (:data:`FORMAT`), with its type (the state dict's entries
    included)."""
    import torch

    if isinstance(payload, dict) and payload.get("format") in OLD_FORMATS:
        raise AdvisorError(f"{path} is an {payload['format']} file: {OLD_FORMATS[payload['format']]}",
                           f"train and save it again with this version (format {FORMAT})")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise AdvisorError(f"{path} is not an advisor model file (format {FORMAT})", FIX)
    expect = {"model_name": str, "weights": (str, type(None)), "strategy": str, "params": dict, "dataset": str,
              "n_blocks": int, "layout": dict, "image_size": int, "primary": str, "heads": dict, "standardise": bool, "classes": dict,
              "preprocess": dict, "val_accuracy": (int, float), "test_accuracy": (int, float), "state_dict": dict}
    missing = [k for k in expect if k not in payload]
    if missing:
        raise damaged(path, f"missing {', '.join(missing)}")
    wrong = [k for k, t in expect.items() if not isinstance(payload[k], t)
             or (t is not bool and isinstance(payload[k], bool))]  # True is an int to isinstance
    if wrong:
        k = wrong[0]
        raise damaged(path, f"{k} is a {type(payload[k]).__name__}" + (f" ({len(wrong) - 1} more wrong)" if
                                                                  len(wrong) > 1 else ""))
    if not MODEL_NAME.match(payload["model_name"]):
        raise damaged(path, f"model_name {payload['model_name'][:60]!r} is not a model this package builds")
    if not _int(payload["n_blocks"]):
        raise damaged(path, f"n_blocks {payload['n_blocks']} is not a positive count")
    if not _int(payload["image_size"]) or payload["image_size"] > 8192:
        raise damaged(path, f"image_size {payload['image_size']} is not a side in pixels")
    from advisor.models import Layout

    try:
        Layout.from_dict(payload["layout"])
    except AdvisorError as e:
        raise damaged(path, f"layout: {e.problem}") from None
    heads = payload["heads"]
    if not heads:
        raise damaged(path, "no heads")
    for task, spec in heads.items():
        keys = HEAD_KINDS.get(spec.get("kind")) if isinstance(spec, dict) else None
        if not isinstance(task, str) or keys is None or set(spec) != {"kind", *keys} \
                or not all(_int(spec[k]) for k in keys):
            raise damaged(path, f"head {str(task)[:40]!r} has no valid spec (kind linear: in, out; "
                             "two_stage: in, mid, out; positive integers)")
    if len({spec["in"] for spec in heads.values()}) != 1:
        raise damaged(path, "the heads disagree on the feature width")
    if payload["primary"] not in heads:
        raise damaged(path, f"primary task {payload['primary'][:40]!r} has no head")
    classes = payload["classes"]
    if not all(isinstance(t, str) and _str_list(c) for t, c in classes.items()):
        raise damaged(path, "classes is not a map of task -> list of class names")
    if not all(isinstance(k, str) and isinstance(v, _PLAIN) for k, v in payload["params"].items()):
        raise damaged(path, "params holds something other than plain values")
    state = payload["state_dict"]
    if not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise damaged(path, "state_dict is not a map of names to tensors")
    for key in ("val_accuracy", "test_accuracy"):
        if not _number(payload[key]) or not (math.isnan(payload[key]) or 0.0 <= payload[key] <= 1.0):
            raise damaged(path, f"{key} {payload[key]} is not an accuracy")


def check_state_dict(state: dict, model, path: Path) -> None:
    """``state`` fits ``model`` (the architecture rebuilt from the file's own description): same keys,
    shapes and dtypes, and every floating value finite."""
    import torch

    want = model.state_dict()
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    if missing or extra:
        parts = ([f"{len(missing)} missing (e.g. {missing[0]})"] if missing else []) + \
                ([f"{len(extra)} unexpected (e.g. {extra[0][:60]})"] if extra else [])
        raise damaged(path, "its weights do not fit its architecture: " + ", ".join(parts))
    for k, t in want.items():
        got = state[k]
        if tuple(got.shape) != tuple(t.shape) or got.dtype != t.dtype:
            raise damaged(path, f"weight {k} is {got.dtype} {tuple(got.shape)}, the architecture needs "
                             f"{t.dtype} {tuple(t.shape)}")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise damaged(path, f"weight {k} holds NaN or infinite values")
