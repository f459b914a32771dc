"""The tables of strategies and their parameters that the READMEs show, written from the registry
(tests check that README.md and search_spaces/README.md hold them)."""

from __future__ import annotations

from typing import Callable

from advisor.strategies._base import Param, Strategy
from advisor.strategies._constraints import is_bool
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


def _accepts(p: Param) -> str:
    """What a space file may give the parameter, in a few words."""
    short = {"bool": "bool", "int": "int " + p.describe().removeprefix("a whole number "),
             "float": p.describe().removeprefix("a number "),
             "text": " or ".join(f'`"{o}"`' for o in p.options) + ", quoted",
             "pattern": "a regular expression, quoted"}
    text = "1..n or percent" if p.base == "int" and p.depth else \
        "name, index or percent" if p.base == "block" else short.get(p.base, p.describe().removeprefix("a "))
    if p.required:
        return text + ", required"
    return text + (", optional" if callable(p.default) else "")


def _item(p: Param, detail: Callable[[Param], str] = _default) -> str:
    d = detail(p)
    return f"`{p.name}`" + (f" ({d})" if d else "")


def _settable(s: Strategy) -> list[Param]:
    return [p for p in s.params if p.base != "all_blocks"]


def _params_cell(s: Strategy, earlier: list[Strategy], detail: Callable[[Param], str] = _default) -> str:
    """``k` (required), `head_lr` (0.01), ...``, or ``as last_k ... plus ...`` when it extends an earlier one."""
    own = _settable(s)
    names = {p.name for p in own}
    base = max(earlier, key=lambda b: len(names & {p.name for p in _settable(b)}), default=None)
    shared = names & {p.name for p in _settable(base)} if base else set()
    if base is None or len(shared) < 3:
        return ", ".join(_item(p, detail) for p in own)
    changed = [p for p in own if p.name in shared and detail(p) != detail(base.param(p.name))]
    missing = [p.name for p in _settable(base) if p.name not in names]
    extra = [p for p in own if p.name not in shared]
    text = f"as {base.name}"
    if missing:
        text += " without " + ", ".join(f"`{n}`" for n in missing)
    if changed:
        text += " (" + ", ".join(f"`{p.name}` {detail(p)}" for p in changed) + ")"
    if extra:
        text += " plus " + ", ".join(_item(p, detail) for p in extra)
    return text


def _table(header: list[str], detail) -> str:
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    seen: list[Strategy] = []
    for s in all_strategies():
        cells = [f"`{s.name}`", s.summary][:len(header) - 1] + [_params_cell(s, seen, detail)]
        rows.append("| " + " | ".join(cells) + " |")
        seen.append(s)
    return "\n".join(rows)


def parameter_table() -> str:
    """The Markdown table of every registered strategy: what trains, its parameters and their defaults."""
    return _table(["strategy", "what trains", "parameters (default)"], _default)


def space_table() -> str:
    """The Markdown table of what a search-space file may give each strategy's parameters."""
    return _table(["strategy", "parameters"], _accepts)
