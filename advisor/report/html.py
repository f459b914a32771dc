"""The report as one self-contained HTML page.

No scripts, no web fonts, no external links to resources: the CSS is in a ``<style>``
element and every chart is an ``<img>`` with a ``data:image/png;base64`` source, so
the file opens the same offline, from an MLflow artifact view, or attached to an email.
Several studies appear side by side: each section has one column per study.
"""

from __future__ import annotations

from html import escape

from advisor.report.content import Report, Section
from advisor.report.view import Block, Figure, Table, View

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#222;
     background:#fafafa;line-height:1.4;font-size:14px}
header{background:#263238;color:#fff;padding:16px 24px}
header h1{margin:0 0 4px 0;font-size:22px}
header p{margin:0;font-size:13px;color:#cfd8dc}
main{padding:8px 24px 40px 24px}
section{background:#fff;border:1px solid #e0e0e0;border-radius:6px;margin:16px 0;padding:12px 16px}
h2{font-size:18px;margin:4px 0 10px 0;border-bottom:2px solid #eceff1;padding-bottom:4px}
h3{font-size:15px;margin:6px 0;color:#37474f}
h4{font-size:13px;margin:10px 0 4px 0;color:#455a64}
.cols{display:grid;gap:16px;grid-template-columns:repeat(var(--n),minmax(0,1fr))}
.col{min-width:0}
.items{display:flex;flex-wrap:wrap;gap:4px 24px;align-items:flex-start}
.item{min-width:0;max-width:100%}
table{border-collapse:collapse;font-size:12.5px;margin:4px 0 8px 0;max-width:100%}
.scroll{overflow-x:auto}
th,td{border:1px solid #e0e0e0;padding:3px 7px;vertical-align:top}
th{background:#eceff1;text-align:left}
td.r{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#fafcfd}
caption{caption-side:bottom;text-align:left;font-size:11.5px;color:#607d8b;padding-top:3px}
figure{margin:6px 0}
figure img{max-width:100%;height:auto;border:1px solid #eceff1}
figcaption{font-size:11.5px;color:#607d8b}
p.na{color:#8d6e63;font-style:italic}
p.verdict{font-size:14px;font-weight:600}
code,pre{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px}
pre{background:#f5f5f5;border:1px solid #e0e0e0;padding:6px 8px;white-space:pre-wrap;word-break:break-all}
ul{margin:4px 0 8px 18px;padding:0;font-size:13px}
footer{font-size:11px;color:#78909c;padding:0 24px 24px 24px}
"""


def _table(t: Table, with_id: bool = False) -> str:
    """A table; ``css_id`` is its class, and also its id when ``with_id`` (unique on the page)."""
    align = t.alignment()
    head = "".join(f"<th>{escape(h)}</th>" for h in t.headers)
    head = f"<thead><tr>{head}</tr></thead>" if any(t.headers) else ""
    body = []
    for row in t.rows:
        cells = "".join(f'<td class="{"r" if align[i:i + 1] == "r" else "l"}">{escape(c)}</td>'
                        for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    caption = f"<caption>{escape(t.caption)}</caption>" if t.caption else ""
    title = f"<h4>{escape(t.title)}</h4>" if t.title else ""
    ident = f' id="{escape(t.css_id)}"' if t.css_id and with_id else ""
    return (f'{title}<div class="scroll"><table{ident} class="{escape(t.css_id or "table")}">{caption}'
            f"{head}<tbody>{''.join(body)}</tbody></table></div>")


def _figure(f: Figure) -> str:
    if not f.uri:
        why = escape(f.missing or "nothing to plot")
        return f'<p class="na" data-plot="{escape(f.key)}">{escape(f.title)}: {why}.</p>'
    caption = f"<figcaption>{escape(f.caption)}</figcaption>" if f.caption else ""
    return (f'<figure data-plot="{escape(f.key)}"><img class="plot" alt="{escape(f.title)}" '
            f'src="{f.uri}">{caption}</figure>')


def _block(b: Block, with_label: bool, verdict: bool) -> str:
    parts = [f"<h3>{escape(b.label)}</h3>"] if with_label else []
    for i, p in enumerate(b.paragraphs):
        cls = ' class="verdict"' if verdict and i == 0 else ""
        parts.append(f"<p{cls}>{escape(p)}</p>")
    items = [_table(t) for t in b.tables] + [_figure(f) for f in b.figures]
    if items:
        parts.append('<div class="items">' + "".join(f'<div class="item">{i}</div>' for i in items) + "</div>")
    if b.code:
        intro = f"<p>{escape(b.code_intro)}</p>" if b.code_intro else ""
        parts.append(f"{intro}<pre><code>{escape(b.code)}</code></pre>")
    if b.bullets:
        parts.append("<ul>" + "".join(f"<li>{escape(x)}</li>" for x in b.bullets) + "</ul>")
    return f'<div class="col">{"".join(parts)}</div>'


def _section(s: Section, n: int) -> str:
    intro = f"<p>{escape(s.intro)}</p>" if s.intro else ""
    cols = "".join(_block(b, n > 1, s.key == "agreement") for b in s.blocks)
    return (f'<section id="{escape(s.key)}"><h2>{escape(s.title)}</h2>{intro}'
            f'<div class="cols" style="--n:{n}">{cols}</div></section>')


def render_view(items: View) -> str:
    """A view's tables and lines (a strategy's own tables, say) as an HTML fragment, in order."""
    return "".join(_table(i) if isinstance(i, Table) else f"<p>{escape(i)}</p>" for i in items)


def render_html(report: Report) -> str:
    """The whole page as a string."""
    n = len(report.studies)
    body = "".join(_section(s, n) for s in report.sections)
    subtitle = (f"{n} {'study' if n == 1 else 'studies side by side'}; MLflow {report.tracking_uri}; "
                f"generated {report.generated} by advisor report")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(report.title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{escape(report.title)}</h1><p>{escape(subtitle)}</p></header><main>"
        f'<section id="summary"><h2>Summary</h2>{_table(report.summary, with_id=True)}</section>'
        f"{body}</main>"
        "<footer>Every number on this page was read from the MLflow runs of the studies: the parent run "
        "(tags, metrics, profile.json, advice.json, best_params.json, strategy_tables.json) and its nested trial "
        "runs.</footer>"
        "</body></html>\n"
    )
