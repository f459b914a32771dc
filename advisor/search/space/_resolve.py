"""A space against one backbone: percentages of its depth resolved to block counts and indices, bounds,
indices and names checked, and sampled values turned into what the trainer takes."""

from __future__ import annotations

import math
from typing import Any, Sequence

from advisor.search.space._base import ParamSpec, Space, fail, param_of, percent
from advisor.search.space._base import where as where_of  # "where" names the key in messages here
from advisor.strategies import Param


def depth(value: Any, dom: Param, n: int) -> Any:
    """A percent string as a block count (k) or block index (block), rounded half up and clamped to 1..n."""
    pct = percent(value) if isinstance(value, str) else None
    if pct is None:
        return value
    count = min(max(math.floor(pct / 100.0 * n + 0.5), 1), n)
    return count - 1 if dom.base == "block" else count


def check_depth(value: Any, dom: Param, n: int, names: Sequence[str] | None,
                src: str, where: str) -> None:
    if dom.base == "block":
        if isinstance(value, str):
            if names is not None and value not in names:
                raise fail(src, where, f"names block {value!r}, which this backbone does not have",
                           f"use one of {', '.join(names)}")
        elif value > n - 1:
            raise fail(src, where, f"is block index {value}, but the backbone's blocks are 0..{n - 1}",
                       f"use 0..{n - 1} or a percentage such as \"60%\"")
    elif dom.depth and value > n:
        raise fail(src, where, f"is {value}, more than the backbone's {n} blocks",
                   f"use 1..{n} or a percentage such as \"50%\"")


def bounds(space: Space, strategy: str, spec: ParamSpec, n: int) -> tuple[Any, Any]:
    """``(low, high)`` with percentages resolved against ``n`` blocks, checked against the backbone."""
    dom = param_of(strategy, spec.name)
    where = where_of(space, strategy, spec.name)
    low, high = depth(spec.low, dom, n), depth(spec.high, dom, n)
    if dom.depth:
        check_depth(low, dom, n, None, space.source, f"{where}.low")
        check_depth(high, dom, n, None, space.source, f"{where}.high")
        if low > high:
            raise fail(space.source, where, f"resolves to low {low} above high {high} for {n} blocks "
                       f"({spec.low!r}..{spec.high!r})", "widen the range")
    return low, high


def check_space(space: Space, block_names: Sequence[str]) -> None:
    """Check depth bounds, indices and block names against a backbone; AdvisorError on the first problem."""
    n = len(block_names)
    for strategy, ss in space.strategies.items():
        for spec in ss.params.values():
            dom = param_of(strategy, spec.name)
            if not dom.depth:
                continue
            where = where_of(space, strategy, spec.name)
            if spec.kind in ("int", "float"):
                bounds(space, strategy, spec, n)
            elif spec.kind == "fixed":
                check_depth(depth(spec.value, dom, n), dom, n, block_names, space.source, where)
            else:
                for i, c in enumerate(spec.choices or []):
                    check_depth(c, dom, n, block_names, space.source, f"{where}.choices[{i}]")


def plain(value: Any, dom: Param, block_names: Sequence[str]) -> Any:
    """A trial value as ``run_strategy`` takes it (block index -> name, list copied)."""
    if dom.base == "block" and not isinstance(value, str):
        return block_names[int(value)]
    if isinstance(value, list):
        return list(value)
    if dom.base == "float":
        return float(value)
    if dom.base == "int":
        return int(value)
    return value
