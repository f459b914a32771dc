"""``advisor report``: read studies from MLflow, write ``<name>.html`` and ``<name>.md``, attach the page.

The order is chosen so that bad input fails fast with one :class:`AdvisorError`: the
output folder is checked (:mod:`advisor.outputs`), the tracking store is found and checked,
every experiment is read (unknown experiment, no study run, no completed trial), and only
then are the charts drawn and both files written together (all or none; a missing output
folder is created then). The HTML page is logged as artifact
``report/<name>.html`` on the parent run of every study in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from advisor.errors import AdvisorError
from advisor.report.collect import StudyData, collect_experiment, open_client
from advisor.track.store import store_to_read

ARTIFACT_DIR = "report"
DEFAULT_OUT = "reports"


@dataclass
class ReportResult:
    html_path: Path
    md_path: Path
    tracking_uri: str
    studies: list[StudyData]
    attached: list[str] = field(default_factory=list)  # parent run ids holding the page
    attach_errors: list[str] = field(default_factory=list)


def report_name(experiments: list[str]) -> str:
    """A file-name-safe stem: the experiment name, or ``a-vs-b`` for several."""
    parts = [re.sub(r"[^\w.-]+", "_", e).strip("._") or "experiment" for e in experiments]
    return "-vs-".join(parts)[:150]


def build_report(experiments: list[str], tracking_uri: str | None = None, workspace: str | None = None,
                 out_dir: str | Path = DEFAULT_OUT, attach: bool = True, top: int = 5,
                 name: str | None = None) -> ReportResult:
    """Write the HTML page and Markdown summary of ``experiments`` (side by side when several).

    Returns the paths and the studies read. ``attach`` logs the page on each study's parent
    run; a store that refuses the artifact is reported in ``attach_errors``, not raised.
    """
    from advisor.report.content import build_content
    from advisor.report.html import render_html
    from advisor.report.markdown import render_markdown

    from advisor.outputs import Output, check_folder, write_outputs

    experiments = list(dict.fromkeys(e for e in experiments if e))
    if not experiments:
        raise AdvisorError("no experiment to report on", "pass --experiment NAME (the one advisor search used)")
    folder = check_folder("--out", out_dir)  # created only when the files are written
    uri = store_to_read(tracking_uri, workspace)
    client = open_client(uri)
    studies: list[StudyData] = []
    for experiment in experiments:
        studies += collect_experiment(client, experiment, uri, top=top)
    stem = report_name([name] if name else experiments)
    html_path, md_path = folder / f"{stem}.html", folder / f"{stem}.md"
    content = build_content(studies, uri, top=top)
    html_path, md_path = write_outputs(Output(html_path, render_html(content), "--out"),
                                       Output(md_path, render_markdown(content, html_name=html_path.name), "--out"))
    result = ReportResult(html_path, md_path, uri, studies)
    if attach:
        for run_id in dict.fromkeys(s.parent_run_id for s in studies):
            try:
                client.log_artifact(run_id, str(html_path), artifact_path=ARTIFACT_DIR)
                result.attached.append(run_id)
            except Exception as exc:  # noqa: BLE001 - the files are written; say why the copy failed
                result.attach_errors.append(f"run {run_id}: {str(exc).splitlines()[0][:200] if str(exc) else exc}")
    return result
