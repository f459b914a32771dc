"""The README's strategy table, written from the registry (a test checks that the README holds it)."""

from __future__ import annotations

from advisor.strategies._base import Param, Strategy, is_bool
from advisor.strategies.registry import all_strategies


def _value(v) -> str:
    if is_bool(v):
        return "true" if v else "false"
    if isinstance(v, float):
        text = f"{v:g}"
        return text if any(c in text for c in ".e") else text + ".0"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)


def _default(p: Param) -> str:
    if p.required:
        return "required"
    if p.default_text:
        return p.default_text
    return "" if p.default is None or callable(p.default) else _value(p.default)


def _item(p: Param) -> str:
    d = _default(p)
    return f"`{p.name}`" + (f" ({d})" if d else "")


def _settable(s: Strategy) -> list[Param]:
    return [p for p in s.params if p.base != "all_blocks"]


def _params_cell(s: Strategy, earlier: list[Strategy]) -> str:
    """``k` (required), `head_lr` (0.01), ...``, or ``as last_k ... plus ...`` when it extends an earlier one."""
    own = _settable(s)
    names = {p.name for p in own}
    base = max(earlier, key=lambda b: len(names & {p.name for p in _settable(b)}), default=None)
    shared = names & {p.name for p in _settable(base)} if base else set()
    if base is None or len(shared) < 3:
        return ", ".join(_item(p) for p in own)
    changed = [p for p in own if p.name in shared and _default(p) != _default(base.param(p.name))]
    missing = [p.name for p in _settable(base) if p.name not in names]
    extra = [p for p in own if p.name not in shared]
    text = f"as {base.name}"
    if missing:
        text += " without " + ", ".join(f"`{n}`" for n in missing)
    if changed:
        text += " (" + ", ".join(f"`{p.name}` {_default(p)}" for p in changed) + ")"
    if extra:
        text += " plus " + ", ".join(_item(p) for p in extra)
    return text


def parameter_table() -> str:
    """The Markdown table of every registered strategy: what trains, its parameters and their defaults."""
    rows = ["| strategy | what trains | parameters (default) |", "|---|---|---|"]
    seen: list[Strategy] = []
    for s in all_strategies():
        rows.append(f"| `{s.name}` | {s.summary} | {_params_cell(s, seen)} |")
        seen.append(s)
    return "\n".join(rows)
