"""One view model, three renderers: the terminal (rich), HTML and Markdown draw the same tables."""

from __future__ import annotations

import re
from html import unescape

from rich.console import Console

from advisor.report import html, markdown, plots
from advisor.report.tables import best_index, blocks_table
from advisor.report.terminal import print_view
from advisor.report.view import Table
from tests.advise.test_rules import PEAKED, make_profile


def _profile():
    p = make_profile(10, PEAKED)  # k-NN peaks at b2, the ridge probe (the advice's measure) at b3
    for b in p.blocks:
        b.knn_accuracy = {"label": 0.95 if b.index == 2 else 0.5}
        b.logme = {"label": -0.00123 if b.index == 0 else 1.5}
    return p


def _terminal_rows(items) -> list[list[str]]:
    console = Console(width=200, record=True)
    print_view(items, console)
    return [[c.strip() for c in line.strip().strip("│").split("│")]
            for line in console.export_text().splitlines() if line.startswith("│")]


def _html_rows(items) -> list[list[str]]:
    return [[unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", html.render_view(items)) if "<td" in row]


def _markdown_rows(items) -> list[list[str]]:
    lines = markdown.render_view(items).splitlines()
    body = [line for i, line in enumerate(lines) if line.startswith("| ") and i > 0 and lines[i - 1].startswith("|")
            and not line.startswith("|---") and not lines[i - 1].startswith("**")]
    return [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]] for line in body]


def test_the_per_block_table_shows_the_same_rows_and_star_in_every_renderer():
    p = _profile()
    table = blocks_table(p)
    rows = table.rows
    assert [r[1] for r in rows if r[1].endswith(" *")] == ["b3 *"]  # the advice's block, not k-NN's peak (b2)
    assert rows[0][4] == "-0.00123"  # the one number formatter: significant digits below 0.01
    assert _terminal_rows([table]) == rows
    assert _html_rows([table]) == rows
    assert _markdown_rows([table]) == rows
    text = markdown.render_view([table])
    assert "LogME: log evidence per sample." in text and "best block" in text


def test_the_chart_stars_the_block_the_tables_star(monkeypatch):
    p = _profile()
    monkeypatch.setattr(plots, "to_data_uri", lambda fig: fig)
    fig = plots.block_chart(p)
    stars = [line for ax in fig.axes for line in ax.get_lines() if line.get_label().startswith("best block")]
    assert len(stars) == 1 and stars[0].get_label() == f"best block: {p.blocks[best_index(p)].name}" == "best block: b3"
    assert list(stars[0].get_xdata()) == [3]


def test_a_strategys_declared_view_is_drawn_by_all_three_renderers():
    from advisor import strategies
    from advisor.report.run_tables import strategy_view
    from advisor.train._base import TrainResult

    r = TrainResult(strategy="multi_task", params={}, val_accuracy=0.8, test_accuracy=0.7, val_macro_f1=0.8,
                    test_macro_f1=0.7, history=[], wall_time=1.0, trainable_params=1,
                    per_task={"digit": {"val_accuracy": 0.81, "test_accuracy": 0.7301, "n_train_labelled": 180}},
                    extra={"separate": {"digit": {"val_accuracy": 0.75}}, "multi_minus_separate": {"digit": 0.06}})
    items = strategy_view(r)
    assert strategies.get("multi_task").tables.endswith(":multi_task_tables")
    tables = [i for i in items if isinstance(i, Table)]
    rows = [row for t in tables for row in t.rows]
    assert rows == [["digit", "0.8100", "0.7500", "+6.0 pt", "shared", "180"]]
    assert _terminal_rows(items) == _html_rows(items) == _markdown_rows(items) == rows
    assert "digit 0.7301" in html.render_view(items) and "digit 0.7301" in markdown.render_view(items)
