"""What a strategy is: its name, its typed parameters and where its trainer lives.

A :class:`Strategy` declares each parameter once as a :class:`Param`: the name, a
constraint (:class:`Interval`, :class:`Boolean`, :class:`Options`, :class:`BlockCount`,
:class:`AllBlocks`, :class:`BlockRef`, :class:`Labels`, :class:`Fractions`), the default,
the unit, a help line and the range a search tries by default (in the YAML form of
``search_spaces/README.md``, so it maps to an Optuna distribution through the same loader).
In the manner of scikit-learn's ``_parameter_constraints`` there is one validator for all:
:meth:`Strategy.validate`. The trainer, the YAML space loader, the command line, the advice
and the tables a person reads all read these declarations.

This module imports nothing heavier than the standard library: the trainer is named as
``"module:function"`` and imported only when a strategy runs.
"""

from __future__ import annotations

import difflib
import importlib
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable

from advisor.errors import AdvisorError

#: Strategy kinds: one closed-form fit on frozen features, one network, one network per task
#: (shared), or a comparison of a two-stage pipeline with an end-to-end network.
KINDS = ("probe", "network", "multi", "pipeline")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of a parameter that must be given.
REQUIRED: Any = _Required()


def is_bool(v: object) -> bool:
    """True for ``bool`` and numpy's ``bool_`` (numpy is not imported)."""
    return isinstance(v, bool) or type(v).__name__ == "bool_"


def is_int(v: object) -> bool:
    """A whole number that is not a bool."""
    return isinstance(v, numbers.Integral) and not is_bool(v)


def is_real(v: object) -> bool:
    """A finite real number that is not a bool."""
    return isinstance(v, numbers.Real) and not is_bool(v) and math.isfinite(float(v))


def closest(word: object, options) -> str:
    """``"did you mean X? "`` for the option closest to ``word``, or ``""``."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.5)
    return f"did you mean {close[0]}? " if close else ""


class _Bad(Exception):
    """A value a constraint refuses. ``problem`` follows "name=value": a requirement ("must be ...",
    shown as ``bad name=value: must be ...``) or a statement ("is larger than ...", shown as
    ``name=value is larger than ...``); ``{strategy}`` in it is replaced by the strategy's name."""

    def __init__(self, problem: str, fix: str = ""):
        super().__init__(problem)
        self.problem, self.fix = problem, fix


# =========================================================================== constraints
class Constraint:
    """What one parameter accepts. ``check`` returns the value as the trainer takes it or raises ``_Bad``.

    The attributes describe the domain to the YAML space loader: ``base`` ("int", "float",
    "bool", "text", "block", "tasks", "fractions", "all_blocks"), bounds ``low``/``high``
    (``low_open``: ``low`` itself excluded), ``depth`` (percent of the backbone's blocks
    allowed in a search space), ``options`` (text choices) and ``listed`` (the value is a list).
    """

    base = "any"
    low: float | None = None
    low_open = False
    high: float | None = None
    depth = False
    options: tuple = ()
    listed = False

    def check(self, value: Any, n_blocks: int | None = None) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Interval(Constraint):
    """A number of ``type`` (int or float) in ``low``..``high``; ``closed`` says which ends are included."""

    type: type
    low: float | None = None
    high: float | None = None
    closed: str = "both"  # "both", "left", "right" or "neither"

    @property
    def base(self) -> str:  # type: ignore[override]
        return "int" if self.type is int else "float"

    @property
    def low_open(self) -> bool:  # type: ignore[override]
        return self.closed in ("right", "neither")

    def describe(self) -> str:
        what = "a whole number" if self.type is int else "a number"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.closed in ('left', 'neither') else '<='} {self.high:g}")
        return what + (" " + " and ".join(parts) if parts else "")

    def check(self, value, n_blocks=None):
        if self.type is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        ok = is_int(value) if self.type is int else is_real(value)
        if ok:
            v = float(value)
            ok = (self.low is None or (v > self.low if self.low_open else v >= self.low)) and \
                 (self.high is None or (v < self.high if self.closed in ("left", "neither") else v <= self.high))
        if not ok:
            raise _Bad(f"must be {self.describe()}" + (f", in {self.notation()}" if self.notation() else ""))
        return int(value) if self.type is int else float(value)

    def notation(self) -> str:
        """``(0, 1]`` for a range bounded on both sides, else ``""``."""
        if self.low is None or self.high is None:
            return ""
        left = "(" if self.low_open else "["
        right = ")" if self.closed in ("left", "neither") else "]"
        return f"{left}{self.low:g}, {self.high:g}{right}"


@dataclass(frozen=True)
class Boolean(Constraint):
    """``true`` or ``false``."""

    base = "bool"

    def describe(self) -> str:
        return "true or false"

    def check(self, value, n_blocks=None):
        if not is_bool(value):
            raise _Bad("must be true or false")
        return bool(value)


@dataclass(frozen=True)
class Options(Constraint):
    """One of a few words."""

    options: tuple = ()
    base = "text"

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)

    def check(self, value, n_blocks=None):
        if value not in self.options:
            raise _Bad(f"must be {self.describe()}")
        return value


@dataclass(frozen=True)
class BlockCount(Constraint):
    """How many of the backbone's top blocks train: 1..n (percent allowed in a search space)."""

    base = "int"
    low = 1
    depth = True

    def describe(self) -> str:
        return "a whole number >= 1"

    def check(self, value, n_blocks=None):
        use = f"use 1..{n_blocks}" if n_blocks else "use 1 or more"
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not is_int(value):
            raise _Bad("is not a whole number of blocks", use)
        if n_blocks is not None and value > n_blocks:
            raise _Bad(f"is larger than the backbone's {n_blocks} blocks", use)
        if value < 1:
            raise _Bad("trains no backbone block (a frozen backbone is linear_probe)", use)
        return int(value)


@dataclass(frozen=True)
class AllBlocks(Constraint):
    """Only the backbone's block count itself: a strategy that trains every block (``k`` may be left out)."""

    base = "all_blocks"

    def describe(self) -> str:
        return "every block"

    def check(self, value, n_blocks=None):
        if not is_int(value) or (n_blocks is not None and int(value) != n_blocks):
            every = f"all {n_blocks} blocks" if n_blocks is not None else "every block"
            raise _Bad(f"is not allowed for {{strategy}}, which trains {every}", "drop k or use the last_k strategy")
        return int(value)


@dataclass(frozen=True)
class BlockRef(Constraint):
    """One block, by name or 0-based index (percent of the depth allowed in a search space)."""

    base = "block"
    low = 0
    depth = True

    def describe(self) -> str:
        return "a whole number >= 0"

    def check(self, value, n_blocks=None):
        fix = f"use a block index 0..{n_blocks - 1} or a block name" if n_blocks else "use a block index or name"
        if isinstance(value, str):
            if not value.strip():
                raise _Bad("is an empty block name", fix)
            return value.strip()
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not is_int(value) or value < 0 or (n_blocks is not None and value >= n_blocks):
            raise _Bad("is not a block of the backbone", fix)
        return int(value)


@dataclass(frozen=True)
class Labels(Constraint):
    """Label columns to train together: a list (or comma-separated text) of at least ``minimum`` distinct names."""

    minimum: int = 2
    base = "tasks"
    listed = True

    def describe(self) -> str:
        return f"a list of at least {self.minimum} label column names"

    def check(self, value, n_blocks=None):
        if isinstance(value, str):
            value = [t.strip() for t in value.split(",") if t.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(t, str) and t for t in value):
            raise _Bad("must be a list of label column names", "e.g. [species, genus]")
        if len(set(value)) != len(value):
            raise _Bad("lists a label column twice", "list each label column once")
        if len(value) < self.minimum:
            raise _Bad(f"needs at least {self.minimum} tasks (label columns), got {len(value)}",
                       "list two or more, or leave tasks out to use every column")
        return list(value)


@dataclass(frozen=True)
class Fractions(Constraint):
    """One or more fractions in (0, 1], returned sorted without repeats."""

    base = "fractions"
    low = 0.0
    low_open = True
    high = 1.0
    listed = True

    def describe(self) -> str:
        return "a list of fractions in (0, 1]"

    def check(self, value, n_blocks=None):
        items = list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray" else [value]
        if not items or not all(is_real(f) and 0 < float(f) <= 1 for f in items):
            raise _Bad("must be fractions in (0, 1]", "e.g. [0.25, 0.5, 1.0]")
        return sorted({float(f) for f in items})


# =========================================================================== parameters
@dataclass(frozen=True)
class Param:
    """One parameter of a strategy.

    ``default``: a value, None (optional, the trainer decides), :data:`REQUIRED`, or a
    function of the backbone's block count (``default_text`` then says it in words).
    ``search``: the range a search tries when no space file names this parameter, as a
    YAML spec (``{"type": "float", "low": 1e-4, "high": 0.1, "log": True}``) or a plain
    value (fixed); None: left at its default. ``flag``: ``advisor train`` has ``--NAME``.
    """

    name: str
    constraint: Constraint
    default: Any = None
    help: str = ""
    unit: str = ""
    example: str = "1.0"
    search: Any = None
    flag: bool = False
    default_text: str = ""

    # the domain, as the YAML space loader reads it
    @property
    def base(self) -> str:
        return self.constraint.base

    @property
    def low(self):
        return self.constraint.low

    @property
    def low_open(self) -> bool:
        return self.constraint.low_open

    @property
    def high(self):
        return self.constraint.high

    @property
    def depth(self) -> bool:
        return self.constraint.depth

    @property
    def options(self) -> tuple:
        return self.constraint.options

    @property
    def listed(self) -> bool:
        return self.constraint.listed

    def describe(self) -> str:
        """The accepted values in words, e.g. ``a number > 0``."""
        return self.constraint.describe()

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def default_for(self, n_blocks: int | None) -> Any:
        """The default value (None when it depends on an unknown block count)."""
        if callable(self.default):
            return None if n_blocks is None else self.default(n_blocks)
        return None if self.default is REQUIRED else self.default

    def check(self, value: Any, strategy: str, n_blocks: int | None = None) -> Any:
        """``value`` as the trainer takes it; AdvisorError naming the parameter and what it accepts."""
        try:
            return self.constraint.check(value, n_blocks)
        except _Bad as bad:
            problem = bad.problem.replace("{strategy}", strategy)
            head = f"bad {self.name}={value!r}: {problem}" if problem.startswith("must") \
                else f"{self.name}={value!r} {problem}"
            raise AdvisorError(head, bad.fix or f"e.g. {self.name}={self.example}") from None


# =========================================================================== strategies
@dataclass(frozen=True)
class Strategy:
    """One strategy: name, kind, parameters, trainer (``"module:function"``) and a line for tables."""

    name: str
    kind: str
    params: tuple[Param, ...]
    runner: str
    summary: str = ""  # what trains, one line for tables

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"strategy {self.name}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"strategy {self.name}: a parameter is declared twice in {names}")
        if ":" not in self.runner:
            raise ValueError(f"strategy {self.name}: runner {self.runner!r} must be 'module:function'")

    @property
    def trains_network(self) -> bool:
        """Whether a run trains a network over epochs (so a pruner can stop it); probes are one fit."""
        return self.kind != "probe"

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def has(self, name: str) -> bool:
        return any(p.name == name for p in self.params)

    def check_keys(self, params: dict) -> None:
        """AdvisorError for the first key that is not a parameter of this strategy."""
        if not isinstance(params, dict):
            raise AdvisorError(f"{self.name} parameters must be a mapping, got {type(params).__name__}",
                               f"pass a dict with keys from: {', '.join(self.names)}")
        for key in params:
            if not self.has(key):
                raise AdvisorError(f"unknown parameter {key!r} for {self.name}",
                                   f"{closest(key, self.names)}use {', '.join(self.names)}")

    def validate(self, params: dict | None, n_blocks: int | None = None) -> dict[str, Any]:
        """Check plain-value ``params`` and fill in the defaults; the one validator of every strategy.

        ``n_blocks`` (the backbone's block count) also checks depths and fills defaults that
        depend on it; without it (before the backbone loads) those wait for the trainer.
        Every problem is an AdvisorError on one line naming the parameter.
        """
        params = {} if params is None else params
        self.check_keys(params)
        out: dict[str, Any] = {}
        for p in self.params:
            value = params.get(p.name)
            if value is None:
                if p.required:
                    raise AdvisorError(f"{self.name} needs {p.name}" + (f", {p.help}" if p.help else ""),
                                       f"pass {p.name}" + (f" in 1..{n_blocks}" if p.depth and n_blocks else "")
                                       + f", e.g. {p.name}={p.example}")
                value = p.default_for(n_blocks)
                if value is None:
                    out[p.name] = None
                    continue
            out[p.name] = p.check(value, self.name, n_blocks)
        return out

    def load_runner(self) -> Callable:
        """The trainer ``run(ctx, params, callback) -> TrainResult``, imported now."""
        module, _, fn = self.runner.partition(":")
        return getattr(importlib.import_module(module), fn)
