"""What the commands share, defined once: the parser class, the shared options, the progress bar,
the one-line usage error, and the choices read from their owners."""

from __future__ import annotations

import argparse
import contextlib
import sys
from types import SimpleNamespace


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2, no usage dump
        sys.stderr.write(f"advisor: error: {message}; see '{self.prog} --help'\n")
        raise SystemExit(2)


def usage(msg: str, fix: str = ""):
    """The one-line error of a bad option value (``advisor: error: MSG; FIX``, status 2)."""
    from advisor.errors import AdvisorError

    return AdvisorError(msg, fix) if fix else AdvisorError(msg)


def _device(text: str) -> str:
    """``--device``: any spelling advisor.models.resolve_device reads (cpu, cuda, cuda:N, auto); whether
    the device is present is checked when the command runs."""
    from advisor.errors import AdvisorError
    from advisor.models._device import check_device_text

    try:
        return check_device_text(text)
    except AdvisorError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_device(parser) -> None:
    from advisor.models._device import DEVICE_HELP

    parser.add_argument("--device", default="auto", type=_device, metavar="DEVICE",
                        help=f"where the network runs: {DEVICE_HELP} (default auto: cuda when present)")


def add_labels(parser) -> None:
    parser.add_argument("--labels", metavar="COL[,COL...]", default=None,
                        help="CSV manifest or NPZ: label columns (default: all but the path column)")


def add_json(parser, what: str) -> None:
    parser.add_argument("--json", metavar="PATH", default=None, help=f"write {what} as JSON")


def add_quiet(parser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def shared_options() -> SimpleNamespace:
    """The parent parsers the commands share, each defined once: ``data`` (analyze, reference, train,
    search: the data and backbone), ``cache`` (the activation cache), ``loader`` (data-loading processes),
    ``tracking`` (where a search's runs live: search, predict, export, report) and ``source`` (which
    trained model: predict, export)."""
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("dataset", metavar="DATASET",
                      help="image folder (one sub-folder per class), CSV manifest, NPZ (x, y), or built-in name: "
                           "fashion-mnist, digits, fashion-pairs, fashion-chain (NAME:K keeps K samples per class)")
    data.add_argument("--model", default="mobilenet_v2",
                      help="torchvision model (mobilenet_v2, resnet18, resnet50, efficientnet_b0, convnext_tiny, "
                           "...) or timm:NAME (default: mobilenet_v2)")
    data.add_argument("--weights", metavar="PATH", default=None,
                      help="local state dict instead of the pretrained weights in the torch hub cache; "
                           "'random' for none")
    data.add_argument("--image-size", type=int, default=None, metavar="S",
                      help="input resolution (default: the weights' own, e.g. 224)")
    add_device(data)
    data.add_argument("--seed", type=int, default=0, help="seed of the split, the sample and training (default 0)")
    data.add_argument("--split", default=None, metavar="TRAIN,VAL,TEST",
                      help="train,validation,test fractions of every class (default 0.6,0.2,0.2)")
    add_labels(data)
    data.add_argument("--intermediate", metavar="COL", default=None,
                      help="the label column that is an intermediate label (x -> COL -> final)")
    data.add_argument("--drop-rare-classes", action="store_true",
                      help="leave out classes with too few images for one in each of train, validation and "
                           "test (default: refuse them); one warning line names them")
    cache = argparse.ArgumentParser(add_help=False)
    add_cache_dir(cache)
    cache.add_argument("--no-cache", action="store_true", help="no activation cache: recompute the frozen part")
    loader = argparse.ArgumentParser(add_help=False)
    loader.add_argument("--loader-workers", type=int, default=0, metavar="N",
                        help="data-loading processes per training run (default 0: in the training process)")
    from advisor.track.store import DEFAULT_WORKSPACE

    tracking = argparse.ArgumentParser(add_help=False)
    tracking.add_argument("--tracking-uri", default=None, metavar="URI",
                          help="MLflow tracking URI (default sqlite:///WORKSPACE/mlflow.db)")
    tracking.add_argument("--workspace", default=None, metavar="DIR",
                          help="the search's folder: default Optuna storage, MLflow store and best models "
                               f"(default $ADVISOR_WORKSPACE or ./{DEFAULT_WORKSPACE})")
    source = argparse.ArgumentParser(add_help=False)
    source.add_argument("model", metavar="MODEL", nargs="?", default=None,
                        help="a --save file, runs:/RUN_ID/model or models:/NAME/VERSION (omit with --experiment)")
    source.add_argument("--experiment", default=None, metavar="NAME",
                        help="instead of MODEL: the best model of the search logged to this MLflow experiment")
    return SimpleNamespace(data=data, cache=cache, loader=loader, tracking=tracking, source=source)


def add_cache_dir(parser) -> None:
    parser.add_argument("--cache-dir", metavar="DIR", default=None,
                        help="activation cache (default $ADVISOR_CACHE or ~/.cache/advisor/activations)")


def labels(args) -> list[str] | None:
    return [c.strip() for c in args.labels.split(",") if c.strip()] if args.labels else None


def context_args(args) -> dict:
    """The keyword arguments of advisor.context.make_context that the ``data`` options give."""
    return {"weights": args.weights, "image_size": args.image_size, "device": args.device, "seed": args.seed,
            "label_columns": labels(args), "intermediate": args.intermediate, "split": args.split}


def consoles():
    """The console for results (stdout) and the one for progress and notes (stderr)."""
    from advisor.report.terminal import make_console

    return make_console(), make_console(stderr=True)


@contextlib.contextmanager
def progress_bar(err, quiet: bool, names: dict | None = None, *, remaining: bool = False, note: bool = False):
    """A rich progress bar on ``err`` (none with ``quiet``), one row per stage; yields
    ``progress(stage, done, total, note="")``. ``names``: the row title of a stage (default its name);
    ``remaining``: a time-remaining column; ``note``: a column showing the stage's last note."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    if remaining:
        columns.append(TimeRemainingColumn())
    if note:
        columns.append(TextColumn("{task.fields[note]}"))
    with Progress(*columns, console=err, disable=quiet) as bar:
        tasks = {}

        def progress(stage, done, total, note=""):
            if stage not in tasks:
                tasks[stage] = bar.add_task((names or {}).get(stage, stage), total=total, note=note)
            bar.update(tasks[stage], completed=done, total=total, note=note)

        yield progress


def model_args(args) -> dict:
    """Where predict and export find a trained model besides MODEL (advisor.deploy.resolve.load_bundle)."""
    return {"experiment": args.experiment, "tracking_uri": args.tracking_uri, "workspace": args.workspace}


def write_all(console, *written) -> None:
    """Write each ``(advisor.outputs.Output, message)`` -- all of them or none -- then print the messages."""
    from advisor.outputs import write_outputs

    write_outputs(*(out for out, _ in written))
    for _, message in written:
        console.print(message)
