"""``advisor report``: an HTML page and a Markdown summary of searches, read from MLflow
(advisor.report.build_report)."""

from __future__ import annotations

from advisor.cli import _common

HELP = "write an HTML page and a Markdown summary of searches, read from MLflow"
PARENTS = ("tracking",)
DESCRIPTION = ("Read the studies of one or more MLflow experiments (parent run and trial runs "
               "logged by advisor search) and write OUT/NAME.html -- self-contained, charts "
               "inline -- and OUT/NAME.md; several experiments appear side by side. The page "
               "is also logged as artifact report/NAME.html on each study's parent run.")


def options(r) -> None:
    r.add_argument("--experiment", action="append", required=True, metavar="NAME",
                   help="MLflow experiment of a search (repeat for a side-by-side report)")
    r.add_argument("--out", default="reports", metavar="DIR", help="output folder (default reports)")
    r.add_argument("--name", default=None, metavar="NAME",
                   help="file name stem (default: the experiment names joined by -vs-)")
    r.add_argument("--top", type=int, default=5, metavar="N", help="learning curves of the N best trials (default 5)")
    r.add_argument("--no-attach", action="store_true", help="do not log the page on the parent runs")


def run(args) -> int:
    from advisor.report import build_report
    from advisor.report.run_tables import report_summary
    from advisor.report.terminal import print_view

    console, err = _common.consoles()
    if args.top < 0:
        raise _common.usage(f"bad --top {args.top}: use 0 or a positive integer, e.g. 5")
    result = build_report(args.experiment, tracking_uri=args.tracking_uri, workspace=args.workspace,
                          out_dir=args.out, attach=not args.no_attach, top=args.top, name=args.name)
    print_view([report_summary(result.studies)], console)
    console.print(f"wrote {result.html_path}")
    console.print(f"wrote {result.md_path}")
    if result.attached:
        console.print(f"attached report/{result.html_path.name} to parent run(s) {', '.join(result.attached)}")
    for problem in result.attach_errors:
        err.print(f"advisor: warning: could not attach the page to {problem}")
    return 0
