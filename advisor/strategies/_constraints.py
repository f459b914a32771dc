"""What a parameter accepts: one constraint class per kind of value, in the manner of scikit-learn's
``_parameter_constraints``. ``check`` returns the value as the trainer takes it or raises ``_Bad``; the
attributes describe the domain to the YAML space loader and the tables.
"""

from __future__ import annotations

import difflib
import math
import numbers
from dataclasses import dataclass
from typing import Any


def is_bool(v: object) -> bool:
    """True for ``bool`` and numpy's ``bool_`` (numpy is not imported)."""
    return isinstance(v, bool) or type(v).__name__ == "bool_"


def is_int(v: object) -> bool:
    """A whole number that is not a bool."""
    return isinstance(v, numbers.Integral) and not is_bool(v)


def is_real(v: object) -> bool:
    """A finite real number that is not a bool."""
    return isinstance(v, numbers.Real) and not is_bool(v) and math.isfinite(float(v))


def _whole(v: Any) -> Any:
    """An integral float (``3.0``, as YAML or JSON may give it) as an int; anything else unchanged."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


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
        if self.type is int:
            value = _whole(value)
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
        value = _whole(value)
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
        value = _whole(value)
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


@dataclass(frozen=True)
class Pattern(Constraint):
    """A regular expression (Python ``re`` syntax), searched in names (lora's ``target``: module names)."""

    base = "pattern"

    def describe(self) -> str:
        return "a regular expression"

    def check(self, value, n_blocks=None):
        import re

        if not isinstance(value, str) or not value.strip():
            raise _Bad("must be a non-empty regular expression", "e.g. target='conv_pw|conv_pwl' or 'qkv|fc1'")
        try:
            re.compile(value)
        except re.error as e:
            raise _Bad(f"is not a regular expression ({e})",
                       "escape special characters, e.g. 'blocks\\.3\\.'") from None
        return value
