"""Writing a :class:`Space` back as plain data and YAML (``load_space`` of the dump gives an equal Space)."""

from __future__ import annotations

from typing import Any

import yaml

from advisor.search.space._base import ParamSpec, Space


def _spec_to_yaml(spec: ParamSpec) -> Any:
    if spec.kind == "fixed":
        return list(spec.value) if isinstance(spec.value, list) else spec.value
    if spec.kind == "categorical":
        return {"type": "categorical", "choices": list(spec.choices or [])}
    out: dict[str, Any] = {"type": spec.kind, "low": spec.low, "high": spec.high}
    if spec.log:
        out["log"] = True
    if spec.step is not None:
        out["step"] = spec.step
    return out


def space_to_dict(space: Space) -> dict:
    """The space as plain data in the YAML format (``load_space`` of its dump gives an equal Space)."""
    out: dict[str, Any] = {}
    if space.description:
        out["description"] = space.description
    blocks = {s: {n: _spec_to_yaml(p) for n, p in ss.params.items()} for s, ss in space.strategies.items()}
    if len(blocks) == 1:
        (strategy, params), = blocks.items()
        out["strategy"], out["params"] = strategy, params
    else:
        out["strategies"] = blocks
    return out


def space_to_yaml(space: Space) -> str:
    """:func:`space_to_dict` as YAML text (keys in the space's order)."""
    return yaml.safe_dump(space_to_dict(space), sort_keys=False, default_flow_style=None)
