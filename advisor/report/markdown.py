"""The report as a Markdown summary: the same tables and verdicts as the HTML page, no images.

Charts are named with a pointer to the HTML page (or the reason there is none), so the
summary reads well in a pull request, a terminal or an MLflow run description.
"""

from __future__ import annotations

from advisor.report.content import Report
from advisor.report.view import Block, Table, View


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(t: Table) -> list[str]:
    align = t.alignment()
    out = [f"**{t.title}**", ""] if t.title else []
    out.append("| " + " | ".join(_cell(h) for h in t.headers) + " |")
    out.append("|" + "|".join("---:" if align[i:i + 1] == "r" else ":---" for i in range(len(t.headers))) + "|")
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
    if t.caption:
        out += ["", f"_{' '.join(t.caption.splitlines())}_"]
    return out + [""]


def _block(b: Block, with_label: bool, html_name: str) -> list[str]:
    out = [f"### {b.label}", ""] if with_label else []
    for p in b.paragraphs:
        out += [p, ""]
    for t in b.tables:
        out += _table(t)
    if b.code:
        out += ([b.code_intro, ""] if b.code_intro else []) + ["```", b.code, "```", ""]
    for f in b.figures:
        out += [f"_{f.title}: chart in {html_name}._" if f.uri else f"_{f.title}: {f.missing or 'nothing to plot'}._",
                ""]
    if b.bullets:
        out += [f"- {x}" for x in b.bullets] + [""]
    return out


def render_view(items: View) -> str:
    """A view's tables and lines (a strategy's own tables, say) as Markdown, in order."""
    out: list[str] = []
    for i in items:
        out += _table(i) if isinstance(i, Table) else [i, ""]
    return "\n".join(out).rstrip() + "\n"


def render_markdown(report: Report, html_name: str = "the HTML report") -> str:
    """The whole summary as a string."""
    n = len(report.studies)
    out = [f"# {report.title}", "",
           f"{n} {'study' if n == 1 else 'studies side by side'}; MLflow `{report.tracking_uri}`; generated "
           f"{report.generated} by `advisor report`. Charts: {html_name}.", "", "## Summary", ""]
    out += _table(report.summary)
    for s in report.sections:
        out += [f"## {s.title}", ""]
        if s.intro:
            out += [s.intro, ""]
        for b in s.blocks:
            out += _block(b, n > 1, html_name)
    return "\n".join(out).rstrip() + "\n"
