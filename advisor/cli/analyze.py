"""``advisor analyze``: measure a dataset against a pretrained backbone and recommend a strategy
(advisor.api.analyze)."""

from __future__ import annotations

from advisor.cli import _common

HELP = "measure a dataset against a pretrained backbone and recommend a strategy"
PARENTS = ("data",)
DESCRIPTION = ("Measure the target dataset's size and its similarity to the source domain block "
               "by block through the pretrained network, then recommend a strategy.")


def options(a) -> None:
    from advisor.advise.thresholds import DEFAULT_THRESHOLDS
    from advisor.api import CHECK_MODES

    a.add_argument("--sample", type=int, default=1000, metavar="N",
                   help="measure at most N training images, stratified (default 1000)")
    a.add_argument("--forward-batch", type=int, default=64, metavar="B",
                   help="images per forward pass while measuring (default 64; memory only, not the numbers)")
    a.add_argument("--source-data", metavar="DATASET", default=None,
                   help="a sample of the source domain (any DATASET form; labels ignored) for Frechet distance "
                        "and domain-classifier accuracy per block")
    a.add_argument("--check", default="auto", choices=list(CHECK_MODES),
                   help="the measured check: run the cheap candidates (probes on every few blocks, one LP-FT "
                        "fine-tune) and let the validation split decide; auto (default): where the training "
                        f"split has at most {DEFAULT_THRESHOLDS.check_per_class:g} images per class")
    a.add_argument("--check-budget", type=float, default=None, metavar="SECONDS",
                   help="the measured check's time limit: its candidates run cheapest first while their estimates "
                        "(timed on this device before it starts) fit; the skipped ones are named (default: none)")
    a.add_argument("--check-shift", nargs="?", const="on", choices=("on", "off"), default=None,
                   help="on small data, the shift's candidates in the check: bn_adapt, and surgical on the third of "
                        "the blocks holding the largest shift (default: on, as a held-out part written before its "
                        "results decided; off saves about half the check's time)")
    a.add_argument("--check-rung", choices=("on", "off"), default=None,
                   help="stop each of the check's fine-tunes after a quarter of its epochs when it is by then more "
                        "than two standard errors below the best probe (default: on, since the ninth held-out "
                        "part judged it; off: every fine-tune runs to its end)")
    a.add_argument("--check-wide", choices=("on", "off"), default=None,
                   help="on a CNN, the check also fine-tunes the top tenth of the blocks and runs LP-FT at rate "
                        "ratio 0.5 beside 0.1 (default: off, as the eleventh held-out part judged: 0.08 points less "
                        "regret, not worth about 1.4x the check's time)")
    a.add_argument("--check-middle", choices=("on", "off"), default=None,
                   help="on a CNN, the check also runs LP-FT at rate ratio 0.5 beside 0.1 and, on small data, surgical "
                        "on the middle third of the blocks (W of protocol s13; default: off, as the thirteenth "
                        "held-out part judged: 0.07 points less regret, not worth about 1.8x the check's time)")
    a.add_argument("--profile-time", action="store_true",
                   help="print where analyze's time went: loading, forward pass, metrics, and each check run")
    _common.add_json(a, "Profile and Advice")
    _common.add_quiet(a)


STAGES = {"measure": "forward pass (images)", "source": "source sample (images)", "metrics": "metrics (blocks)",
          "check": "measured check (est. s)"}


def run(args) -> int:
    from advisor.api import analyze
    from advisor.report.terminal import print_analysis
    from advisor.outputs import check_outputs

    console, err = _common.consoles()
    check_outputs(("--json", args.json))  # refuse an unwritable output before any measuring, not after it

    def announce(plan):
        skipped = f"; {len(plan.skipped)} skipped by --check-budget {plan.budget:g}" if plan.skipped else ""
        cheap = plan.budget_without_fine_tunes()
        # the check without its fine-tunes, priced: what a user on a slow machine can choose, knowing what it costs
        cheap = "" if plan.skipped or cheap is None else \
            f"; without its fine-tunes, at most {plan.without_fine_tunes_seconds:.0f} s: --check-budget {cheap}"
        err.print(f"measured check: {len(plan.run)} candidates, "
                  f"{'at most' if plan.rung else 'about'} {plan.seconds:.0f} s on this device"
                  f"{' (its rung stops a fine-tune that falls behind)' if plan.rung else ''}"
                  f"{skipped} (skip it: --check off{cheap}; limit it: --check-budget SECONDS)")

    with _common.progress_bar(err, args.quiet, STAGES, remaining=True) as progress:
        result = analyze(args.dataset, args.model, sample=args.sample, batch_size=args.forward_batch,
                         source_data=args.source_data, progress=progress, check=args.check,
                         drop_rare_classes=args.drop_rare_classes, check_budget=args.check_budget,
                         check_shift=None if args.check_shift is None else args.check_shift == "on",
                         check_rung=None if args.check_rung is None else args.check_rung == "on",
                         check_wide=None if args.check_wide is None else args.check_wide == "on",
                         check_middle=None if args.check_middle is None else args.check_middle == "on",
                         on_check_plan=announce, **_common.context_args(args))
    print_analysis(result, console)
    if args.profile_time:
        from advisor.report.tables import time_table
        from advisor.report.terminal import print_view

        print_view([time_table(result)], console)
    if args.json:
        result.save(args.json, "--json")
        console.print(f"wrote {args.json}")
    t = result.profile.timings
    console.print(f"took {t.get('total', 0):.1f} s (forward {t.get('forward', 0):.1f} s, metrics {t.get('metrics', 0):.1f} s)")
    return 0
