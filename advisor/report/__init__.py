"""``advisor report``: an HTML page and a Markdown summary of searches, read from MLflow only.

:func:`build_report` reads the studies (parent run + nested trial runs) of one or more
experiments, writes ``<out>/<name>.html`` (self-contained: inline CSS, charts as inline
PNG ``data:`` URIs) and ``<out>/<name>.md``, and attaches the page to each study's parent
run. The pieces: :mod:`~advisor.report.collect` (MLflow -> dataclasses),
:mod:`~advisor.report.analysis` (comparisons, agreement with the advice, importances),
:mod:`~advisor.report.plots` (charts), :mod:`~advisor.report.content` (the report's sections),
:mod:`~advisor.report.html` and :mod:`~advisor.report.markdown` (layout).

Every table a person reads, on the terminal too, is one view model (:mod:`~advisor.report.view`), built once
(:mod:`~advisor.report.tables`: analyze's; :mod:`~advisor.report.run_tables`: train's, the strategies' own,
search's, predict's, the cache's) and drawn by :mod:`~advisor.report.terminal` (rich), ``html`` and ``markdown``.
"""

from __future__ import annotations

from advisor.report.build import ReportResult, build_report, report_name
from advisor.report.collect import StudyData, TrialRecord, collect_experiment

__all__ = [
    "ReportResult",
    "StudyData",
    "TrialRecord",
    "build_report",
    "collect_experiment",
    "report_name",
]


from advisor._verb import callable_as  # noqa: E402  (after the verb is defined)

callable_as(__name__, "build_report")  # advisor.report(...) calls build_report
