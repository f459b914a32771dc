"""The terminal renderer: view-model tables (:mod:`advisor.report.view`) drawn with rich for people.
Programs read the JSON instead; the HTML and Markdown renderers draw the same tables."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table as RichTable

from advisor.report.view import Table, View


def rich_table(t: Table) -> RichTable:
    """``t`` as a rich table: left-justified title, one column per header aligned as ``t.alignment()``."""
    look = {"box": None, "pad_edge": False, "header_style": "bold"} if t.bare else {}
    out = RichTable(title=t.title or None, title_justify="left", **look)
    align = t.alignment()
    for i, h in enumerate(t.headers):
        out.add_column(h, justify="right" if align[i:i + 1] == "r" else "left", no_wrap=i in t.no_wrap,
                       **({"overflow": "fold"} if t.fold else {}))
    for i, row in enumerate(t.rows):
        if i in t.muted:  # the first cell dim, as a skipped candidate
            row = [f"[dim]{row[0]}[/dim]", *row[1:]]
        out.add_row(*row)
    if t.caption:
        out.caption = t.caption
        if not t.centre_caption:
            out.caption_justify = "left"
    return out


def make_console(stderr: bool = False) -> Console:
    """A console that stays 120 columns wide when output goes to a file or pipe."""
    c = Console(stderr=stderr)
    if not c.is_terminal:
        c = Console(stderr=stderr, width=120)
    return c


def print_view(items: View, console: Console) -> None:
    """Every table (drawn by :func:`rich_table`) and line of ``items``, in order; lines are plain text."""
    for item in items:
        if isinstance(item, Table):
            console.print(rich_table(item))
        else:
            console.print(item, markup=False)


def print_analysis(analysis, console: Console | None = None) -> None:
    """``advisor analyze``'s tables: size, per block, advice, and the measured check when it ran."""
    from advisor.report.tables import analysis_view

    print_view(analysis_view(analysis), console or make_console())


def print_train_extra(result, console: Console) -> None:
    """The tables of a TrainResult that its strategy declares (``Strategy.tables``): per-task metrics,
    multi_task's separate-model comparison, pipeline against end-to-end with the learning curve."""
    from advisor.report.run_tables import strategy_view

    print_view(strategy_view(result), console)


def print_search(result, console: Console) -> None:
    """The study in three tables: counts, the best trial against the advised one, the top trials."""
    from advisor.report.run_tables import search_view

    print_view(search_view(result), console)


def print_prediction(pred, console: Console | None = None, k: int = 3, show_rows: bool = True,
                     max_rows: int = 20) -> None:
    """``advisor predict``'s tables: the first rows (when no --out), metrics, per-class table, confusion matrix."""
    from advisor.report.run_tables import prediction_view

    print_view(prediction_view(pred, k, show_rows, max_rows), console or make_console())
