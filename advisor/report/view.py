"""The view model every renderer draws: tables, figures and blocks of them, with numbers formatted once.

A table is built once (:mod:`advisor.report.tables`, :mod:`advisor.report.run_tables`) as a :class:`Table`
of strings; :mod:`advisor.report.terminal` (rich), :mod:`advisor.report.html` and
:mod:`advisor.report.markdown` only lay it out, so the three show the same rows, the same starred
block and the same caption. A renderable list (``View``) is tables and lines of text, in order.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Union

from advisor.track.names import STRATEGY_KEY

# ------------------------------------------------------------------ formatting: the one number formatter


def fmt_num(v: Any, digits: int = 3, fixed: bool = False) -> str:
    """A number for a table cell: ``-`` for None, NaN or infinity; ``true``/``false`` for a bool; a float
    with ``digits`` decimals, or (unless ``fixed``) ``digits`` significant digits where it is below 0.01
    or at least 10,000 in size; anything else as ``str``."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        if not fixed and v and (abs(v) < 1e-2 or abs(v) >= 1e4):
            return f"{v:.{digits}g}"
        return f"{v:.{digits}f}"
    return str(v)


def fmt_acc(v: float | None) -> str:
    """Accuracies and F1: four decimals."""
    return fmt_num(None if v is None else float(v), 4, fixed=True)


def fmt_int(v: int | None) -> str:
    return "-" if v is None else f"{int(v):,}"


def fmt_seconds(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} s"


def fmt_params(params: dict[str, Any]) -> str:
    """``k=2 head_lr=0.00704 ...`` without the strategy."""
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                    for k, v in params.items() if k != STRATEGY_KEY)


def fmt_points(v: float | None) -> str:
    return "-" if v is None else f"{v:+.1f} points"


# ------------------------------------------------------------------ the view model
@dataclass
class Table:
    """A table of strings. ``align``: one letter per column, l or r (default: first l, rest r).
    How the terminal draws it besides (HTML and Markdown have one look): ``centre_caption`` (rich's
    default, where a table always had it), ``fold`` (long cells fold instead of being cut), ``bare``
    (no box and no edge padding, bold headers), ``no_wrap`` (columns kept on one line), ``muted``
    (rows shown dim)."""

    headers: list[str]
    rows: list[list[str]]
    title: str = ""
    caption: str = ""
    align: str = ""
    css_id: str = ""
    centre_caption: bool = False
    fold: bool = False
    bare: bool = False
    no_wrap: tuple[int, ...] = ()
    muted: tuple[int, ...] = ()

    def alignment(self) -> str:
        return self.align or ("l" + "r" * (len(self.headers) - 1))


#: what a view function returns: tables and lines of text, in the order a person reads them
View = list[Union[Table, str]]


@dataclass
class Figure:
    key: str
    title: str
    uri: str | None
    missing: str = ""  # why there is no image
    caption: str = ""


@dataclass
class Block:
    """One study's part of a section (or one run's tables)."""

    label: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    code: str = ""
    code_intro: str = ""  # a sentence shown just before ``code``


def view_to_data(items: View) -> list:
    """A view as JSON-ready data (a table: its fields; a line of text: the string), to store beside a run."""
    return [asdict(i) if isinstance(i, Table) else str(i) for i in items]


def view_from_data(data: Any) -> View:
    """The view :func:`view_to_data` stored; anything that is not a table's fields or a string is left out (a
    file written by a later version may hold more)."""
    names = {f.name for f in fields(Table)}
    out: View = []
    for item in data if isinstance(data, list) else []:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and isinstance(item.get("headers"), list) and isinstance(item.get("rows"), list):
            kw = {k: v for k, v in item.items() if k in names}
            for k in ("no_wrap", "muted"):
                if k in kw:
                    kw[k] = tuple(kw[k] or ())
            out.append(Table(**kw))
    return out
