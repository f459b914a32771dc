"""One value from a space file (a fixed value, a bound or a choice) checked against the parameter's
declaration in the registry. Files are a little more lenient than the trainer: numeric text such as
``"1e-4"`` is a number, and ``k`` and ``block`` take percentages of the backbone's depth."""

from __future__ import annotations

import math
import numbers
from typing import Any

from advisor.search.space._base import fail, is_bool, percent
from advisor.strategies import Param
from advisor.strategies._constraints import _Bad


def number(raw: object, dom: Param, src: str, where: str, *, percent_ok: bool) -> float | int | str:
    """``raw`` as a number of ``dom`` (numeric strings such as ``"1e-4"`` converted), or a percent string."""
    if isinstance(raw, str):
        pct = percent(raw)
        if pct is not None:
            if not (dom.depth and percent_ok):
                raise fail(src, where, f"is a percentage ({raw.strip()!r}); percentages are only for k and block",
                           f"write {dom.describe()}, e.g. {dom.example}")
            if pct > 100:
                raise fail(src, where, f"is {raw.strip()}, more than the whole backbone", "use 0% to 100%")
            return raw.strip()
        try:
            num: float = float(raw)
        except ValueError:
            raise fail(src, where, f"must be a number, got {raw!r}",
                       f"write {dom.describe()}, e.g. {dom.example}") from None
    elif isinstance(raw, numbers.Real) and not is_bool(raw):
        num = float(raw)
    else:
        raise fail(src, where, f"must be a number, got {raw!r}", f"write {dom.describe()}, e.g. {dom.example}")
    if not math.isfinite(num):
        raise fail(src, where, f"must be a finite number, got {raw!r}", f"write {dom.describe()}")
    out: float | int = num
    if dom.base in ("int", "block"):
        if not num.is_integer():
            raise fail(src, where, f"must be a whole number, got {raw!r}", f"write {dom.describe()}, e.g. {dom.example}")
        out = int(num)
    too_low = dom.low is not None and (num <= dom.low if dom.low_open else num < dom.low)
    too_high = dom.high is not None and num > dom.high
    if too_low or too_high:
        raise fail(src, where, f"must be {dom.describe()}, got {raw!r}", f"e.g. {dom.example}")
    return out


def value(raw: object, dom: Param, src: str, where: str) -> Any:
    """A fixed value or a categorical choice of the parameter ``dom``."""
    if dom.base == "bool":
        if not is_bool(raw):
            raise fail(src, where, f"must be true or false, got {raw!r}", "write true or false (no quotes)")
        return bool(raw)
    if dom.base == "text":
        if raw not in dom.options:
            raise fail(src, where, f"must be {dom.describe()}, got {raw!r}", f"quote it, e.g. \"{dom.options[0]}\"")
        return raw
    if dom.base == "pattern":
        try:
            return dom.constraint.check(raw)
        except _Bad as bad:
            raise fail(src, where, f"{bad.problem}, got {raw!r}",
                       bad.fix or f"e.g. {dom.name}: {dom.example}") from None
    if dom.listed:
        if not isinstance(raw, list):
            raise fail(src, where, f"must be a list, got {raw!r}", f"e.g. {dom.name}: {dom.example}")
        try:
            return dom.constraint.check(raw)
        except _Bad as bad:
            raise fail(src, where, f"{bad.problem}: {raw}", bad.fix or f"e.g. {dom.name}: {dom.example}") from None
    if dom.base == "block" and isinstance(raw, str) and percent(raw) is None:
        if not raw.strip():
            raise fail(src, where, "is an empty block name", "write a block name such as ir13")
        return raw.strip()
    return number(raw, dom, src, where, percent_ok=True)
