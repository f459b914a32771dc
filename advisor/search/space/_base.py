"""What a search space is (:class:`Space` of :class:`StrategySpace` of :class:`ParamSpec`) and the
small helpers every part of the space code shares: the registry's parameters, errors, values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Iterator

from advisor import strategies
from advisor.errors import AdvisorError
from advisor.strategies import Param
from advisor.strategies._constraints import closest, is_bool

#: Spec kinds: the three searched ones plus a fixed value.
KINDS = ("int", "float", "categorical", "fixed")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")

__all__ = ["KINDS", "PARAMS", "ParamSpec", "Space", "StrategySpace", "closest", "fail", "is_bool", "optuna_name",
           "param_of", "percent", "same", "where"]


# =========================================================================== data classes
@dataclass
class ParamSpec:
    """How one parameter is chosen.

    ``kind`` "int" / "float": ``low``..``high`` inclusive (``low``/``high`` of ``k`` and
    ``block`` may be percent strings such as ``"50%"``), optional ``log`` and ``step``;
    "categorical": one of ``choices``; "fixed": always ``value``.
    """

    name: str
    kind: str
    low: float | int | str | None = None
    high: float | int | str | None = None
    log: bool = False
    step: float | int | None = None
    choices: list | None = None
    value: Any = None


@dataclass
class StrategySpace:
    """The parameters of one strategy; those not listed take the trainer's defaults."""

    strategy: str
    params: dict[str, ParamSpec] = field(default_factory=dict)


@dataclass
class Space:
    """A whole search space: one or more strategies (several = compared in one study).

    ``source`` (the file's path, or ``"auto"`` when built from an Advice) and
    ``description`` are for messages and do not take part in equality.
    """

    strategies: dict[str, StrategySpace]
    source: str = field(default="auto", compare=False)
    description: str | None = field(default=None, compare=False)


# =========================================================================== the registry's parameters
class _Params(Mapping):
    """strategy -> parameter name -> :class:`~advisor.strategies.Param`, read from the registry when asked."""

    def __getitem__(self, strategy: str) -> dict[str, Param]:
        if strategy not in strategies.names():
            raise KeyError(strategy)
        return {p.name: p for p in strategies.get(strategy).params}

    def __iter__(self) -> Iterator[str]:
        return iter(strategies.names())

    def __len__(self) -> int:
        return len(strategies.names())


#: strategy -> parameter -> what it accepts (a live view of :mod:`advisor.strategies`).
PARAMS: Mapping[str, dict[str, Param]] = _Params()


def param_of(strategy: str, name: str) -> Param:
    """The registry's declaration of parameter ``name`` of ``strategy``."""
    return strategies.get(strategy).param(name)


# =========================================================================== errors and values
def fail(src: str, where: str, problem: str, fix: str) -> AdvisorError:
    """``search space SRC: WHERE PROBLEM; FIX`` as an AdvisorError."""
    head = f"search space {src}" + (f": {where} " if where else " ")
    return AdvisorError(head + problem, fix)


def percent(text: object) -> float | None:
    """The number in a percent string such as ``"50%"``, else None."""
    m = _PERCENT.match(text) if isinstance(text, str) else None
    return float(m.group(1)) if m else None


def same(a: object, b: object) -> bool:
    """Equality that keeps ``True`` apart from ``1``."""
    return is_bool(a) == is_bool(b) and a == b


def where(space: Space, strategy: str, name: str) -> str:
    """Where a parameter sits in the file, for messages: ``params.k`` or ``strategies.last_k.k``."""
    return f"strategies.{strategy}.{name}" if len(space.strategies) > 1 else f"params.{name}"


def optuna_name(space: Space, strategy: str, name: str) -> str:
    """The parameter's name in Optuna: prefixed by its strategy when the space has several."""
    return f"{strategy}.{name}" if len(space.strategies) > 1 else name
