"""The command line: a thin layer over the Python API.

Bad input prints one line ``advisor: error: ...`` to stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys

from advisor import __version__


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2, no usage dump
        sys.stderr.write(f"advisor: error: {message}; see '{self.prog} --help'\n")
        raise SystemExit(2)


def _build() -> argparse.ArgumentParser:
    p = _Parser(prog="advisor", description="Transfer-learning strategy advisor.")
    p.add_argument("--version", action="version", version=f"advisor {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    a = sub.add_parser("analyze", help="measure a dataset against a pretrained backbone and recommend a strategy",
                       description="Measure the target dataset's size and its similarity to the source domain block "
                                   "by block through the pretrained network, then recommend a strategy.")
    a.add_argument("dataset", metavar="DATASET",
                   help="image folder (one sub-folder per class), CSV manifest, NPZ (x, y), or built-in "
                        "name: fashion-mnist, digits (NAME:K keeps K samples per class)")
    a.add_argument("--model", default="mobilenet_v2",
                   help="torchvision model (mobilenet_v2, resnet18, resnet50, efficientnet_b0, convnext_tiny, ...) "
                        "or timm:NAME (default: mobilenet_v2)")
    a.add_argument("--weights", metavar="PATH", default=None,
                   help="local state dict instead of the pretrained weights in the torch hub cache; 'random' for none")
    a.add_argument("--sample", type=int, default=1000, metavar="N",
                   help="measure at most N training images, stratified (default 1000)")
    a.add_argument("--image-size", type=int, default=None, metavar="S",
                   help="input resolution (default: the weights' own, e.g. 224)")
    a.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default auto")
    a.add_argument("--batch-size", type=int, default=64, metavar="B")
    a.add_argument("--seed", type=int, default=0, help="seed of the split and the sample (default 0)")
    a.add_argument("--labels", metavar="COL[,COL...]", default=None,
                   help="CSV manifest: label columns (default: all but the path column)")
    a.add_argument("--intermediate", metavar="COL", default=None,
                   help="CSV manifest: the label column that is an intermediate label (x -> COL -> final)")
    a.add_argument("--source-data", metavar="DATASET", default=None,
                   help="a sample of the source domain (any DATASET form; labels ignored) for Frechet distance "
                        "and domain-classifier accuracy per block")
    a.add_argument("--json", metavar="PATH", default=None, help="write Profile and Advice as JSON")
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    a.set_defaults(func=_analyze)
    return p


def _analyze(args) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from advisor.api import analyze
    from advisor.display import make_console, print_analysis

    console = make_console()
    err = make_console(stderr=True)
    if args.batch_size < 1:
        raise _usage(f"bad --batch-size {args.batch_size}: use a positive integer, e.g. 64")
    labels = [c.strip() for c in args.labels.split(",") if c.strip()] if args.labels else None
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err, disable=args.quiet, transient=False) as bar:
        tasks = {}
        names = {"measure": "forward pass (images)", "source": "source sample (images)", "metrics": "metrics (blocks)"}

        def progress(stage, done, total):
            if stage not in tasks:
                tasks[stage] = bar.add_task(names.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        result = analyze(args.dataset, args.model, weights=args.weights, sample=args.sample,
                         image_size=args.image_size, device=args.device, seed=args.seed,
                         batch_size=args.batch_size, source_data=args.source_data, label_columns=labels,
                         intermediate=args.intermediate, progress=progress)
    print_analysis(result, console)
    if args.json:
        result.save(args.json)
        console.print(f"wrote {args.json}")
    t = result.profile.timings
    console.print(f"took {t.get('total', 0):.1f} s (forward {t.get('forward', 0):.1f} s, metrics {t.get('metrics', 0):.1f} s)")
    return 0


def _usage(msg: str):
    from advisor.errors import AdvisorError

    return AdvisorError(msg)


def main(argv: list[str] | None = None) -> int:
    try:
        args = _build().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already reported in one line
        return int(e.code or 0)
    from advisor.errors import AdvisorError

    try:
        return args.func(args)
    except AdvisorError as e:
        sys.stderr.write(f"advisor: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("advisor: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
