"""The command line: a thin layer over the Python API.

Bad input prints one line ``advisor: error: ...`` to stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys

from advisor import __version__, strategies


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2, no usage dump
        sys.stderr.write(f"advisor: error: {message}; see '{self.prog} --help'\n")
        raise SystemExit(2)


def _shared_options() -> tuple[argparse.ArgumentParser, ...]:
    """The options analyze, train and search share, defined once: the data and backbone, the
    activation cache, and the data-loading processes."""
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
    data.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                      help="where the network runs (default auto: cuda when present)")
    data.add_argument("--seed", type=int, default=0, help="seed of the split, the sample and training (default 0)")
    data.add_argument("--split", default=None, metavar="TRAIN,VAL,TEST",
                      help="train,validation,test fractions of every class (default 0.6,0.2,0.2)")
    data.add_argument("--labels", metavar="COL[,COL...]", default=None,
                      help="CSV manifest or NPZ: label columns (default: all but the path column)")
    data.add_argument("--intermediate", metavar="COL", default=None,
                      help="the label column that is an intermediate label (x -> COL -> final)")
    data.add_argument("--drop-rare-classes", action="store_true",
                      help="leave out classes with too few images for one in each of train, validation and "
                           "test (default: refuse them); one warning line names them")
    cache = argparse.ArgumentParser(add_help=False)
    cache.add_argument("--cache-dir", metavar="DIR", default=None,
                       help="activation cache (default $ADVISOR_CACHE or ~/.cache/advisor/activations)")
    cache.add_argument("--no-cache", action="store_true", help="no activation cache: recompute the frozen part")
    loader = argparse.ArgumentParser(add_help=False)
    loader.add_argument("--loader-workers", type=int, default=0, metavar="N",
                        help="data-loading processes per training run (default 0: in the training process)")
    return data, cache, loader


def _mlflow_options() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """Where a search's runs live (search, predict, export, report), and which trained model to use
    (predict, export), each defined once."""
    tracking = argparse.ArgumentParser(add_help=False)
    tracking.add_argument("--tracking-uri", default=None, metavar="URI",
                          help="MLflow tracking URI (default sqlite:///WORKSPACE/mlflow.db)")
    tracking.add_argument("--workspace", default=None, metavar="DIR",
                          help="the search's folder: default Optuna storage, MLflow store and best models "
                               "(default $ADVISOR_WORKSPACE or ./advisor-workspace)")
    source = argparse.ArgumentParser(add_help=False)
    source.add_argument("model", metavar="MODEL", nargs="?", default=None,
                        help="a --save file, runs:/RUN_ID/model or models:/NAME/VERSION (omit with --experiment)")
    source.add_argument("--experiment", default=None, metavar="NAME",
                        help="instead of MODEL: the best model of the search logged to this MLflow experiment")
    return tracking, source


def _labels(args) -> list[str] | None:
    return [c.strip() for c in args.labels.split(",") if c.strip()] if args.labels else None


def _build() -> argparse.ArgumentParser:
    p = _Parser(prog="advisor", description="Transfer-learning strategy advisor.")
    p.add_argument("--version", action="version", version=f"advisor {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    data, cache, loader = _shared_options()
    tracking, source = _mlflow_options()
    a = sub.add_parser("analyze", parents=[data], help="measure a dataset against a pretrained backbone and "
                                                      "recommend a strategy",
                       description="Measure the target dataset's size and its similarity to the source domain block "
                                   "by block through the pretrained network, then recommend a strategy.")
    a.add_argument("--sample", type=int, default=1000, metavar="N",
                   help="measure at most N training images, stratified (default 1000)")
    a.add_argument("--forward-batch", type=int, default=64, metavar="B",
                   help="images per forward pass while measuring (default 64; memory only, not the numbers)")
    a.add_argument("--source-data", metavar="DATASET", default=None,
                   help="a sample of the source domain (any DATASET form; labels ignored) for Frechet distance "
                        "and domain-classifier accuracy per block")
    a.add_argument("--check", default="auto", choices=["auto", "on", "off"],
                   help="the measured check: run the cheap candidates (probes on every few blocks, one LP-FT "
                        "fine-tune) and let the validation split decide; auto (default): where the training "
                        "split has at most 50 images per class")
    a.add_argument("--check-budget", type=float, default=None, metavar="SECONDS",
                   help="the measured check's time limit: its candidates run cheapest first while their estimates "
                        "(timed on this device before it starts) fit; the skipped ones are named (default: none)")
    a.add_argument("--profile-time", action="store_true",
                   help="print where analyze's time went: loading, forward pass, metrics, and each check run")
    a.add_argument("--json", metavar="PATH", default=None, help="write Profile and Advice as JSON")
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    a.set_defaults(func=_analyze)

    rf = sub.add_parser("reference", parents=[data],
                        help="store a source sample's per-block moments beside the weights, so analyze measures "
                             "the shift of networks without BatchNorm (ViTs)",
                        description="Run a sample of the SOURCE domain (DATASET: any dataset form, labels ignored; "
                                    "all splits) through the network once and store every block's per-channel "
                                    "output moments, keyed by the weights' digest and the image size, in "
                                    "$ADVISOR_REFERENCE_DIR (default: advisor-reference in the torch hub "
                                    "checkpoint folder). analyze then reports the shift against them.")
    rf.add_argument("--sample", type=int, default=1000, metavar="N",
                    help="at most N images of DATASET, stratified (default 1000)")
    rf.add_argument("--forward-batch", type=int, default=64, metavar="B", help="images per forward pass (default 64)")
    rf.set_defaults(func=_reference)

    t = sub.add_parser("train", parents=[data, cache, loader],
                       help="train one strategy and report validation and test metrics",
                       description="Run one transfer-learning strategy on a dataset: "
                                   f"{', '.join(strategies.names())}.")
    t.add_argument("--strategy", required=True, metavar="NAME", help=", ".join(strategies.names()))
    g = t.add_argument_group("strategy parameters (only those given are passed; the rest keep their defaults)")
    _add_strategy_flags(g)
    g.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="any other strategy parameter (value read as YAML: 3, 0.1, true, [a, b])")
    t.add_argument("--json", metavar="PATH", default=None, help="write the result as JSON")
    t.add_argument("--save", metavar="PATH", default=None,
                   help="save the trained model (one PyTorch file; load with advisor.train.load_model)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    s = sub.add_parser("search", parents=[data, cache, loader, tracking],
                       help="search a strategy's freeze depth and learning rates with Optuna, "
                            "every trial logged to MLflow",
                       description="Run (or resume) an Optuna study over freeze depth, learning-rate ratios and "
                                   "the rest of a strategy's search space; every trial is a nested MLflow run.")
    s.add_argument("--strategy", default="auto", metavar="auto|NAME",
                   help="auto (default): analyze first and search the advised strategy, its advised configuration "
                        f"as the first trial; or a strategy name ({', '.join(strategies.names())})")
    s.add_argument("--space", default=None, metavar="PATH|auto",
                   help="search space YAML (default: search_spaces/STRATEGY.yaml; with --strategy auto the "
                        "advice's space); auto: the advice's space")
    s.add_argument("--advice", metavar="PATH", default=None, help="a saved 'advisor analyze --json' to use "
                                                                 "instead of running analyze")
    s.add_argument("--sample", "--analyze-sample", dest="sample", type=int, default=500, metavar="N",
                   help="analyze measures at most N training images, as analyze --sample (default 500)")
    s.add_argument("--trials", type=int, default=20, help="finished trials the study should hold (default 20)")
    s.add_argument("--timeout", type=float, default=None, metavar="S", help="stop starting trials after S seconds")
    s.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna storage: a PATH.journal file or an RDB URL (sqlite:///..., postgresql://...); "
                        "default WORKSPACE/optuna.journal")
    s.add_argument("--study-name", default=None, metavar="NAME",
                   help="the same name resumes the study (default DATASET-MODEL-STRATEGY)")
    s.add_argument("--workers", type=int, default=1, metavar="N",
                   help="search processes sharing the storage, one per GPU (default 1)")
    s.add_argument("--experiment", default=None, metavar="NAME", help="MLflow experiment (default: the study name)")
    s.add_argument("--pruner", default="hyperband", choices=["hyperband", "halving", "none"],
                   help="early stopping of unpromising trials over fine-tuning epochs (default hyperband)")
    s.add_argument("--json", metavar="PATH", default=None, help="write the search result (all trials) as JSON")
    s.add_argument("--register", default=None, metavar="NAME",
                   help="register the best model in the MLflow Model Registry as a new version of NAME")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_search)

    pr = sub.add_parser("predict", parents=[source, tracking], help="predict every image of a dataset with a trained model",
                        description="Predict with a model saved by advisor train --save, an MLflow model URI "
                                    "(runs:/RUN_ID/model, models:/NAME/VERSION) or a study's best model "
                                    "(--experiment NAME). One row per image: its path or index, the predicted "
                                    "class and the top-k probabilities. With labels: accuracy, macro-F1, a "
                                    "per-class table and the confusion matrix.")
    pr.add_argument("data", metavar="DATA",
                    help="any DATASET form of analyze, or a folder of unlabelled images")
    pr.add_argument("--out", default=None, metavar="PATH", help="write the predictions: .csv or .parquet")
    pr.add_argument("--top-k", type=int, default=3, metavar="K", help="probabilities of the K best classes (3)")
    pr.add_argument("--forward-batch", "--batch-size", dest="forward_batch", type=int, default=64, metavar="B",
                    help="images per forward pass (default 64), as analyze --forward-batch")
    pr.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="where the network runs (default auto: cuda when present)")
    pr.add_argument("--unreadable", default="fail", choices=["fail", "skip"],
                    help="an image that cannot be read: stop with its name (fail, default) or leave it out and "
                         "list it (skip)")
    pr.add_argument("--seed", type=int, default=0, help="seed of NAME:K subsets (default 0)")
    pr.add_argument("--labels", metavar="COL[,COL...]", default=None,
                    help="CSV manifest or NPZ: label columns (default: all but the path column)")
    pr.add_argument("--json", metavar="PATH", default=None, help="write the metrics (and failures) as JSON")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(func=_predict)

    ex = sub.add_parser("export", parents=[source, tracking], help="export a model to ONNX or TorchScript, its preprocessing beside it",
                        description="Write MODEL (as for predict) as an ONNX or TorchScript file taking "
                                    "preprocessed images [N, 3, S, S] and returning the logits of the classes; "
                                    "PATH.preprocess.json holds the preprocessing and the class names.")
    ex.add_argument("--format", required=True, choices=["onnx", "torchscript"],
                    help="onnx (needs the advisor[export] extra) or torchscript")
    ex.add_argument("--out", required=True, metavar="PATH", help="the exported model file")
    ex.set_defaults(func=_export)

    r = sub.add_parser("report", parents=[tracking], help="write an HTML page and a Markdown summary of searches, read from MLflow",
                       description="Read the studies of one or more MLflow experiments (parent run and trial runs "
                                   "logged by advisor search) and write OUT/NAME.html -- self-contained, charts "
                                   "inline -- and OUT/NAME.md; several experiments appear side by side. The page "
                                   "is also logged as artifact report/NAME.html on each study's parent run.")
    r.add_argument("--experiment", action="append", required=True, metavar="NAME",
                   help="MLflow experiment of a search (repeat for a side-by-side report)")
    r.add_argument("--out", default="reports", metavar="DIR", help="output folder (default reports)")
    r.add_argument("--name", default=None, metavar="NAME",
                   help="file name stem (default: the experiment names joined by -vs-)")
    r.add_argument("--top", type=int, default=5, metavar="N", help="learning curves of the N best trials (default 5)")
    r.add_argument("--no-attach", action="store_true", help="do not log the page on the parent runs")
    r.set_defaults(func=_report)

    c = sub.add_parser("cache", help="show or empty the activation cache",
                       description="The on-disk activation cache that train and search fill: its folder "
                                   "($ADVISOR_CACHE, default ~/.cache/advisor/activations) is capped at "
                                   "$ADVISOR_CACHE_MAX (default 20G); the least recently used entries make "
                                   "room for new ones.")
    csub = c.add_subparsers(dest="cache_command", metavar="ACTION", parser_class=_Parser)
    csub.required = True
    ci = csub.add_parser("info", help="the folder, its size and cap, and every entry",
                         description="Print the cache folder, its entries, their total size and the cap, and "
                                     "per entry its kind, block, rows done, size and when it was last used.")
    ci.add_argument("--cache-dir", metavar="DIR", default=None,
                    help="activation cache (default $ADVISOR_CACHE or ~/.cache/advisor/activations)")
    ci.add_argument("--json", metavar="PATH", nargs="?", const="-", default=None,
                    help="print JSON instead of the table (or write it to PATH)")
    ci.set_defaults(func=_cache_info)
    cc = csub.add_parser("clear", help="remove entries (all by default)",
                         description="Remove cache entries: all, or those last used before --older-than, or "
                                     "those whose key starts with --key. Entries in use by a running train or "
                                     "search are kept and listed.")
    cc.add_argument("--cache-dir", metavar="DIR", default=None,
                    help="activation cache (default $ADVISOR_CACHE or ~/.cache/advisor/activations)")
    cc.add_argument("--older-than", metavar="AGE", default=None,
                    help="only entries last used more than AGE ago: 90s, 30m, 12h, 7d or plain seconds")
    cc.add_argument("--key", metavar="PREFIX", action="append", default=[],
                    help="only the entry whose key starts with PREFIX, as 'cache info' shows it (repeatable)")
    cc.set_defaults(func=_cache_clear)
    return p


def _open_cache(args):
    from advisor.context.cache import ActivationCache, default_cache_dir

    root = args.cache_dir or default_cache_dir()
    cache = ActivationCache(root)  # reads $ADVISOR_CACHE_MAX: a bad value is one line here too
    if cache.root.exists() and not cache.root.is_dir():
        raise _usage(f"--cache-dir {cache.root} is a file", "pass the cache folder")
    return cache


def _cache_info(args) -> int:
    import json
    import os
    import time

    from rich.table import Table

    from advisor.context.cache import format_size
    from advisor.display import make_console

    cache = _open_cache(args)
    if args.json and args.json != "-":
        from advisor.outputs import check_outputs

        check_outputs(("--json", args.json))
    entries = cache.entries()
    bad = [e for e in entries if e.get("bad")]
    if bad:  # shown (with '?' where meta.json says nothing usable), never trusted, and removable
        sys.stderr.write(f"advisor: warning: {_n_entries(len(bad))} unusable ({bad[0]['key'][:12]}: {bad[0]['bad']}"
                         f"{f'; and {len(bad) - 1} more' if len(bad) > 1 else ''}); advisor cache clear --key "
                         f"{bad[0]['key'][:12]} removes one, training recomputes it\n")
    total = sum(e["bytes"] for e in entries)
    cap_from = "ADVISOR_CACHE_MAX" if os.environ.get("ADVISOR_CACHE_MAX", "").strip() else "default"
    if args.json:
        doc = {"root": str(cache.root), "entries": len(entries), "total_bytes": total,
               "disk_bytes": sum(e["disk_bytes"] for e in entries), "cap_bytes": cache.max_total,
               "cap_from": cap_from, "items": entries}
        text = json.dumps(doc, indent=2) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            from advisor.outputs import write_text

            write_text(args.json, text, "--json")
            sys.stdout.write(f"wrote {args.json}\n")
        return 0
    console = make_console()
    console.print(f"activation cache {cache.root}")
    console.print(f"{_n_entries(len(entries))}, {format_size(total)} "
                  f"({format_size(sum(e['disk_bytes'] for e in entries))} on disk) "
                  f"of a {format_size(cache.max_total)} cap ({cap_from})")
    if entries:
        tab = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("key", "kind", "block", "backbone", "dataset", "device", "rows done", "size", "last used"):
            tab.add_column(col, overflow="fold", no_wrap=col not in ("backbone", "dataset"),
                           justify="right" if col in ("rows done", "size") else "left")
        for e in reversed(entries):  # most recently used first
            rows = "?" if e.get("rows_done") is None else f"{e['rows_done']}/{e['items']}"
            kind = f"boundary {e['boundary']}" if e["kind"] == "boundary" else e["kind"] or "?"
            tab.add_row(e["key"][:12], kind, e["block"] or "?", e["backbone"] or "?", e["dataset"] or "?",
                        e["device"] or "?", rows, format_size(e["bytes"]),
                        time.strftime("%m-%d %H:%M", time.localtime(e["last_used"])))
        console.print(tab)
    return 0


def _n_entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def _parse_age(text: str) -> float:
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smhdw]?)\s*", text, re.IGNORECASE)
    if not m:
        raise _usage(f"bad --older-than {text!r}", "use an age such as 90s, 30m, 12h, 7d or plain seconds")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2).lower()]


def _cache_clear(args) -> int:
    from advisor.context.cache import format_size
    from advisor.display import make_console

    older = None if args.older_than is None else _parse_age(args.older_than)
    cache = _open_cache(args)
    keys = [k.strip().lower() for k in args.key]
    if keys:
        known = [e["key"] for e in cache.entries(rows=False)]
        unknown = [k for k in keys if not k or not any(key.startswith(k) for key in known)]
        if unknown:
            raise _usage(f"no cache entry whose key starts with {unknown[0]!r} in {cache.root}",
                         "see 'advisor cache info' for the keys")
    removed, in_use = cache.clear(older_than=older, keys=keys)
    console = make_console()
    console.print(f"removed {_n_entries(len(removed))} ({format_size(sum(e['bytes'] for e in removed))}) "
                  f"from {cache.root}")
    for e in in_use:
        console.print(f"kept {e['key'][:12]} ({e['kind']} {e['block']}): in use by another process")
    return 0


def _search(args) -> int:
    import os

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from advisor.display import make_console, print_search
    from advisor.search import SearchConfig, run_search
    from advisor.serialize import write_json

    from advisor.outputs import check_folder, check_outputs

    console, err = make_console(), make_console(stderr=True)
    workspace = args.workspace or os.environ.get("ADVISOR_WORKSPACE") or "advisor-workspace"
    check_folder("--workspace", workspace)  # refuse a file or an unwritable place before anything
    check_outputs(("--json", args.json))
    labels = _labels(args)
    cfg = SearchConfig(
        dataset=args.dataset, model=args.model, weights=args.weights, strategy=args.strategy, space=args.space,
        trials=args.trials, timeout=args.timeout, storage=args.storage, study_name=args.study_name,
        workers=args.workers, experiment=args.experiment, tracking_uri=args.tracking_uri, device=args.device,
        image_size=args.image_size, seed=args.seed,
        workspace=workspace,
        cache_dir=False if args.no_cache else args.cache_dir, advice=args.advice, analyze_sample=args.sample,
        pruner=args.pruner, loader_workers=args.loader_workers, register=args.register,
        label_columns=labels, intermediate=args.intermediate, split=args.split,
        drop_rare_classes=args.drop_rare_classes)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[note]}"), console=err, disable=args.quiet) as bar:
        tasks = {}
        names = {"trials": "trials", "measure": "analyze: forward pass", "metrics": "analyze: metrics"}

        def progress(stage, done, total, note=""):
            if stage not in tasks:
                tasks[stage] = bar.add_task(names.get(stage, stage), total=total, note=note)
            bar.update(tasks[stage], completed=done, total=total, note=note)

        result = run_search(cfg, progress=progress)
    print_search(result, console)
    for line in _search_ending(result):
        console.print(line, markup=False)
    if result.model_uri:
        console.print(f"best model: runs:/{result.parent_run_id}/model ({result.model_uri}); "
                      f"advisor predict --experiment {result.experiment} DATA", markup=False)
    if result.registered_version:
        console.print(f"registered as models:/{result.register or args.register}/{result.registered_version}",
                      markup=False)
    if args.json:
        write_json(result, args.json, "--json")
        console.print(f"wrote {args.json}")
    return 0


def _search_ending(result) -> list[str]:
    """How this host's part of the study ended, when another host ends it; the parent run's link, once."""
    where = result.run_url or (f"MLflow run {result.parent_run_id} (experiment {result.experiment!r}, "
                               f"{result.tracking_uri})")
    registry = f" and as a new version of models:/{result.register}" if result.register else ""
    lines = []
    if result.ending == "elsewhere":
        lines.append(f"{result.refit_by} is training the best trial again: its test metrics and model will appear "
                     f"on {where}{registry}")
    elif result.ending == "unfinished":
        lines.append(f"trials {', '.join(map(str, result.still_running))} still run on "
                     f"{', '.join(result.running_on) or 'other hosts'}: the last host to finish trains the best trial "
                     f"again and logs it on {where}{registry}; a host killed meanwhile: run its command again")
    elif result.ending == "recorded":
        lines.append(f"the study's best trial was trained again earlier (by {result.refit_by}): its results are "
                     f"shown, nothing was trained or registered again")
    if result.run_url and result.ending in ("refit", "recorded"):
        lines.append(f"MLflow: {result.run_url}")
    return lines


def _report(args) -> int:
    from rich.table import Table

    from advisor.display import make_console
    from advisor.report import build_report

    console, err = make_console(), make_console(stderr=True)
    if args.top < 0:
        raise _usage(f"bad --top {args.top}: use 0 or a positive integer, e.g. 5")
    result = build_report(args.experiment, tracking_uri=args.tracking_uri, workspace=args.workspace,
                          out_dir=args.out, attach=not args.no_attach, top=args.top, name=args.name)
    tab = Table(title="advisor report", title_justify="left")
    for col in ("experiment", "study", "complete", "pruned", "failed", "best strategy", "best val acc",
                "test acc", "advised", "agrees"):
        tab.add_column(col, overflow="fold", justify="right" if col in ("complete", "pruned", "failed",
                                                                        "best val acc", "test acc") else "left")
    from advisor.report.analysis import agreement
    from advisor.report.content import fmt_acc

    for study in result.studies:
        c, a, best = study.counts(), agreement(study), study.best()
        tab.add_row(study.experiment, study.study_name, str(c["complete"]), str(c["pruned"]), str(c["failed"]),
                    best.strategy if best else "-", fmt_acc(study.best_val_accuracy), fmt_acc(study.test_accuracy),
                    a.advised_strategy or "-", "-" if a.agrees is None else "yes" if a.agrees else "no")
    console.print(tab)
    console.print(f"wrote {result.html_path}")
    console.print(f"wrote {result.md_path}")
    if result.attached:
        console.print(f"attached report/{result.html_path.name} to parent run(s) {', '.join(result.attached)}")
    for problem in result.attach_errors:
        err.print(f"advisor: warning: could not attach the page to {problem}")
    return 0


def _backbone_check(strategy: str, params: dict | None = None):
    """The strategy's check of the backbone and ``params`` (run before the data loads), or None when it declares
    none."""
    return strategies.get(strategy).backbone_checker(params)


def _flag_params() -> dict:
    """Parameter name -> (declaration, strategies that take it) for the parameters with a ``--NAME`` flag."""
    out: dict = {}
    for strategy in strategies.all_strategies():
        for p in strategy.params:
            if p.flag:
                out.setdefault(p.name, (p, []))[1].append(strategy.name)
    return out


def _add_strategy_flags(group) -> None:
    """One ``--NAME`` flag per flagged parameter in the registry, typed by its constraint."""
    networks = sorted(strategies.network_names())
    for name, (p, users) in _flag_params().items():
        who = "network strategies" if sorted(users) == networks else ", ".join(users)
        text = f"{p.help} [{who}" + (f"; {p.unit}" if p.unit else "") + "]"
        if name in strategies.RECIPE_PARAMS:  # a default that follows the backbone's family
            text += f" (default: {p.default_text})"
        kw: dict = {"dest": name, "default": None, "help": text}
        if isinstance(p.constraint, strategies.Boolean):
            kw["action"] = argparse.BooleanOptionalAction
        elif p.base in ("int", "float"):
            kw["type"], kw["metavar"] = (int if p.base == "int" else float), name.upper()
        else:
            kw["metavar"] = name.upper()
        group.add_argument("--" + name.replace("_", "-"), **kw)


def _train_params(args) -> dict:
    import yaml

    params = {}
    for name in _flag_params():
        v = getattr(args, name, None)
        if v is not None:
            params[name] = v
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _usage(f"bad --param '{item}': use KEY=VALUE, e.g. --param dropout=0.1")
        try:
            params[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise _usage(f"bad --param value in '{item}': write a number, true/false, a word or [a, b]") from None
    return params


def _train(args) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from advisor.context import make_context
    from advisor.display import make_console
    from advisor.serialize import json_text
    from advisor.train import run_strategy

    console, err = make_console(), make_console(stderr=True)
    params = _train_params(args)
    strategies.get(args.strategy).validate(params)  # a typo fails here, before data and backbone load
    from advisor.outputs import check_outputs

    check_outputs(("--json", args.json), ("--save", args.save))  # before any training, not after it
    labels = _labels(args)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, disable=args.quiet) as bar:
        tasks = {}

        def progress(stage, done, total):
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        def on_epoch(epoch, val):
            if not args.quiet:
                err.print(f"epoch {epoch}: validation accuracy {val:.4f}")

        ctx = make_context(args.dataset, args.model, weights=args.weights, image_size=args.image_size,
                           device=args.device, seed=args.seed, cache_dir=False if args.no_cache else args.cache_dir,
                           label_columns=labels, intermediate=args.intermediate, workers=args.loader_workers,
                           progress=progress, split=args.split, drop_rare_classes=args.drop_rare_classes,
                           check_backbone=_backbone_check(args.strategy, params))
        result = run_strategy(ctx, args.strategy, params, on_epoch)
    tab = Table(title=f"{result.strategy} on {args.dataset} with {args.model}", title_justify="left")
    for col in ("split", "accuracy", "macro-F1"):
        tab.add_column(col, justify="right" if col != "split" else "left")
    tab.add_row("validation", f"{result.val_accuracy:.4f}", f"{result.val_macro_f1:.4f}")
    tab.add_row("test", f"{result.test_accuracy:.4f}", f"{result.test_macro_f1:.4f}")
    console.print(tab)
    console.print(f"params {result.params}")
    console.print(f"trainable parameters {result.trainable_params:,}; wall time {result.wall_time:.1f} s; "
                  f"best epoch {result.best_epoch} of {len(result.history)}")
    from advisor.display import print_train_extra

    print_train_extra(result, console)
    if ctx.cache is not None and ctx.cache.problem:  # the run finished; only its speed-up was lost
        sys.stderr.write(f"advisor: warning: the activation cache stopped storing ({ctx.cache.problem}); "
                         "the frozen blocks were recomputed instead -- free space or pass --cache-dir\n")
    from advisor.outputs import Output, write_outputs

    outputs = [Output(args.json, json_text(result), "--json")] if args.json else []
    if args.save:
        from advisor.train.export import model_output

        outputs.append(model_output(result, args.save, model_name=args.model, weights=args.weights,
                                    preprocess=ctx.preprocess, dataset_name=ctx.dataset.name,
                                    classes=ctx.dataset.classes, flag="--save"))
    write_outputs(*outputs)  # both or neither
    if args.json:
        console.print(f"wrote {args.json}")
    if args.save:
        console.print(f"saved the model to {args.save}")
    return 0


def _model_args(args) -> dict:
    return {"experiment": args.experiment, "tracking_uri": args.tracking_uri, "workspace": args.workspace}


def _predict(args) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from advisor.deploy.predict import predict_data, predictions_output
    from advisor.deploy.resolve import load_bundle
    from advisor.display import make_console, print_prediction
    from advisor.outputs import Output, check_outputs, write_outputs
    from advisor.serialize import json_text

    console, err = make_console(), make_console(stderr=True)
    if args.forward_batch < 1:
        raise _usage(f"bad --forward-batch {args.forward_batch}: use a positive integer, e.g. 64")
    if args.top_k < 1:
        raise _usage(f"bad --top-k {args.top_k}: use a positive integer, e.g. 3")
    check_outputs(("--out", args.out), ("--json", args.json))
    if args.out and not args.out.lower().endswith((".csv", ".parquet", ".pq")):
        raise _usage(f"unknown output format for --out {args.out}", "end it with .csv or .parquet")
    bundle = load_bundle(args.model, **_model_args(args))
    labels = _labels(args)
    with Progress(TextColumn("predict"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, disable=args.quiet) as bar:
        task = bar.add_task("predict", total=None)
        result = predict_data(bundle, args.data, batch_size=args.forward_batch, device=args.device,
                              skip_unreadable=args.unreadable == "skip", seed=args.seed, label_columns=labels,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))
    print_prediction(result, console, args.top_k, show_rows=args.out is None)
    for f in result.failures:  # one plain line each (no wrapping), for people and for grep
        sys.stderr.write(f"advisor: skipped: {' '.join(str(f['reason']).split())}\n")
    outputs = [predictions_output(result, args.out, args.top_k, "--out")] if args.out else []
    if args.json:
        outputs.append(Output(args.json, json_text({
            "model": result.model, "dataset": result.dataset, "n": len(result.items),
            "images_per_second": result.images_per_second, "metrics": result.metrics,
            "metrics_note": result.metrics_note, "failures": result.failures}), "--json"))
    write_outputs(*outputs)  # both or neither
    if args.out:
        console.print(f"wrote {args.out} ({len(result.items)} rows)")
    if args.json:
        console.print(f"wrote {args.json}")
    return 0


def _export(args) -> int:
    from advisor.deploy.exporting import export_model
    from advisor.deploy.resolve import load_bundle
    from advisor.display import make_console

    from advisor.outputs import check_outputs

    console = make_console()
    check_outputs(("--out", args.out), ("--out", f"{args.out}.preprocess.json"))  # the model and its JSON
    from advisor.deploy.exporting import check_format

    check_format(args.format)  # a missing package is one line before any model loads
    bundle = load_bundle(args.model, **_model_args(args))
    out = export_model(bundle, args.format, args.out, flag="--out")
    console.print(f"wrote {out.model_path} ({args.format}) and {out.preprocess_path}")
    console.print(f"largest difference from PyTorch on {out.n_checked} images: {out.max_abs_diff:.2e} "
                  f"(tolerance {out.tolerance:.2e})")
    return 0


def _analyze(args) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from advisor.api import analyze
    from advisor.display import make_console, print_analysis

    console = make_console()
    err = make_console(stderr=True)
    from advisor.outputs import check_outputs

    check_outputs(("--json", args.json))  # refuse an unwritable output before any measuring, not after it
    labels = _labels(args)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err, disable=args.quiet, transient=False) as bar:
        tasks = {}
        names = {"measure": "forward pass (images)", "source": "source sample (images)", "metrics": "metrics (blocks)",
                 "check": "measured check (est. s)"}

        def announce(plan):
            skipped = f"; {len(plan.skipped)} skipped by --check-budget {plan.budget:g}" if plan.skipped else ""
            err.print(f"measured check: {len(plan.run)} candidates, about {plan.seconds:.0f} s on this device"
                      f"{skipped} (skip it: --check off; limit it: --check-budget SECONDS)")

        def progress(stage, done, total):
            if stage not in tasks:
                tasks[stage] = bar.add_task(names.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        result = analyze(args.dataset, args.model, weights=args.weights, sample=args.sample,
                         image_size=args.image_size, device=args.device, seed=args.seed,
                         batch_size=args.forward_batch, source_data=args.source_data, label_columns=labels,
                         intermediate=args.intermediate, progress=progress, split=args.split, check=args.check,
                         drop_rare_classes=args.drop_rare_classes, check_budget=args.check_budget,
                         on_check_plan=announce)
    print_analysis(result, console)
    if args.profile_time:
        from advisor.display import time_table

        console.print(time_table(result))
    if args.json:
        result.save(args.json, "--json")
        console.print(f"wrote {args.json}")
    t = result.profile.timings
    console.print(f"took {t.get('total', 0):.1f} s (forward {t.get('forward', 0):.1f} s, metrics {t.get('metrics', 0):.1f} s)")
    return 0


def _reference(args) -> int:
    from advisor.api import reference
    from advisor.display import make_console

    console = make_console()
    r = reference(args.dataset, args.model, weights=args.weights, sample=args.sample, image_size=args.image_size,
                  device=args.device, seed=args.seed, batch_size=args.forward_batch, label_columns=_labels(args),
                  split=args.split, intermediate=args.intermediate)
    console.print(f"wrote reference moments of {r.n_images} images of {r.dataset} through {r.model} ({r.weights}) "
                  f"at {r.image_size}px: {r.path} ({r.seconds:.1f} s)")
    return 0


def _usage(msg: str, fix: str = ""):
    from advisor.errors import AdvisorError

    return AdvisorError(msg, fix) if fix else AdvisorError(msg)


def _warnings_as_lines() -> None:
    """Print an AdvisorWarning as one line ``advisor: warning: ...``; other warnings as before."""
    import warnings

    from advisor.errors import AdvisorWarning

    shown = warnings.showwarning
    if getattr(shown, "_advisor", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, AdvisorWarning):
            sys.stderr.write(f"advisor: warning: {' '.join(str(message).split())}\n")
        else:
            shown(message, category, filename, lineno, file, line)

    show._advisor = True
    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    try:
        args = _build().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already reported in one line
        return int(e.code or 0)
    from advisor.errors import AdvisorError

    _warnings_as_lines()
    try:
        return args.func(args)
    except AdvisorError as e:
        sys.stderr.write(f"advisor: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("advisor: interrupted\n")
        return 130
    except BrokenPipeError:  # the reader went away (advisor ... | head): stop quietly, as other tools do
        _stdout_to_devnull()
        return 141
    except OSError as e:  # the environment failed under us (stdout on a full disk, a vanished folder)
        _stdout_to_devnull()
        where = f" {e.filename}" if getattr(e, "filename", None) else " standard output"
        sys.stderr.write(f"advisor: error: cannot write{where} ({e.strerror or e}); "
                         "free some space or send the output elsewhere\n")
        return 2


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null so the interpreter's last flush at exit cannot fail a second time."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    raise SystemExit(main())
