"""``advisor report``: read studies from MLflow, write ``<name>.html`` and ``<name>.md``, attach the page.

The order is chosen so that bad input fails fast with one :class:`AdvisorError`: the
output folder is checked (:mod:`advisor.outputs`), the tracking store is found and checked,
every experiment is read (unknown experiment, no study run, no completed trial), and only
then are the charts drawn and both files written together (all or none; a missing output
folder is created then). The HTML page is logged as artifact
``report/<name>.html`` on the parent run of every study in it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from advisor.errors import AdvisorError
from advisor.report.collect import StudyData, collect_experiment, open_client

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


def default_workspace(workspace: str | None = None) -> str:
    """``workspace``, else ``$ADVISOR_WORKSPACE``, else ``advisor-workspace`` (as ``advisor search``)."""
    return workspace or os.environ.get("ADVISOR_WORKSPACE") or "advisor-workspace"


def tracking_store(tracking_uri: str | None, workspace: str | None = None) -> str:
    """The tracking URI to read, checked; a local SQLite store must already exist (nothing is created)."""
    from advisor.track.store import check_tracking, default_tracking_uri, resolve_tracking_uri, sqlite_path

    workspace = default_workspace(workspace)
    local = default_tracking_uri(workspace)
    uri = local if not (tracking_uri or "").strip() else resolve_tracking_uri(tracking_uri, workspace)
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        where = "--workspace" if uri == local else "--tracking-uri"
        raise AdvisorError(f"no MLflow store at {db}",
                           f"run advisor search first, or pass the {where} that the search used")
    check_tracking(uri, local_store=local)
    return uri


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
    uri = tracking_store(tracking_uri, workspace)
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
