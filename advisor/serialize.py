"""Dataclasses to and from plain JSON-able dicts.

Profile and Advice are nested dataclasses; ``to_dict`` turns one into plain
Python containers and ``from_dict`` rebuilds the same dataclass from them, using
the field type hints (nested dataclasses, ``list[...]``, ``dict[str, ...]`` and
``X | None``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def to_dict(obj: Any) -> Any:
    """Recursively convert dataclasses, tuples and NumPy scalars to JSON-able values.

    Non-finite floats become ``None`` so the output is strict JSON. Dataclass fields
    declared with ``metadata={"json": False}`` (live objects such as a trained model) are left out.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if f.metadata.get("json", True)}
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if hasattr(obj, "tolist") and getattr(obj, "ndim", 0) > 0:  # NumPy / torch array
        return to_dict(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):  # NumPy / torch scalar
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _build(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _build(args[0], value) if len(args) == 1 else value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value)
    if origin is list:
        (arg,) = typing.get_args(tp) or (Any,)
        return [_build(arg, v) for v in value]
    if origin is dict:
        args = typing.get_args(tp)
        arg = args[1] if len(args) == 2 else Any
        return {k: _build(arg, v) for k, v in value.items()}
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def from_dict(cls: type[T], data: dict) -> T:
    """Rebuild dataclass ``cls`` from ``to_dict`` output; unknown keys are ignored."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _build(hints[f.name], data[f.name])
    return cls(**kwargs)


def json_text(obj: Any) -> str:
    """``obj`` (see :func:`to_dict`) as strict, indented JSON text."""
    return json.dumps(to_dict(obj), indent=2, allow_nan=False) + "\n"


def write_json(obj: Any, path: str | Path, flag: str | None = None) -> Path:
    """``obj`` as JSON at ``path``, atomically (:func:`advisor.outputs.write_outputs`); ``flag`` names the
    option that gave the path in a one-line error."""
    from advisor.outputs import write_text

    return write_text(path, json_text(obj), flag)
