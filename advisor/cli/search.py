"""``advisor search``: an Optuna study over a strategy's search space, every trial logged to MLflow
(advisor.search.run_search)."""

from __future__ import annotations

from advisor import strategies
from advisor.cli import _common

HELP = "search a strategy's freeze depth and learning rates with Optuna, every trial logged to MLflow"
PARENTS = ("data", "cache", "loader", "tracking")
DESCRIPTION = ("Run (or resume) an Optuna study over freeze depth, learning-rate ratios and "
               "the rest of a strategy's search space; every trial is a nested MLflow run.")


def options(s) -> None:
    from advisor.search._pruners import PRUNERS

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
    s.add_argument("--pruner", default=PRUNERS[0], choices=list(PRUNERS),
                   help=f"early stopping of unpromising trials over fine-tuning epochs (default {PRUNERS[0]})")
    _common.add_json(s, "the search result (all trials)")
    s.add_argument("--register", default=None, metavar="NAME",
                   help="register the best model in the MLflow Model Registry as a new version of NAME")
    _common.add_quiet(s)


STAGES = {"trials": "trials", "measure": "analyze: forward pass", "metrics": "analyze: metrics"}


def run(args) -> int:
    from advisor.report.terminal import print_search
    from advisor.outputs import check_folder, check_outputs
    from advisor.search import SearchConfig, run_search
    from advisor.serialize import write_json
    from advisor.track.store import default_workspace

    console, err = _common.consoles()
    workspace = default_workspace(args.workspace)
    check_folder("--workspace", workspace)  # refuse a file or an unwritable place before anything
    check_outputs(("--json", args.json))
    cfg = SearchConfig(
        dataset=args.dataset, model=args.model, weights=args.weights, strategy=args.strategy, space=args.space,
        trials=args.trials, timeout=args.timeout, storage=args.storage, study_name=args.study_name,
        workers=args.workers, experiment=args.experiment, tracking_uri=args.tracking_uri, device=args.device,
        image_size=args.image_size, seed=args.seed, workspace=workspace,
        cache_dir=False if args.no_cache else args.cache_dir, advice=args.advice, analyze_sample=args.sample,
        pruner=args.pruner, loader_workers=args.loader_workers, register=args.register,
        label_columns=_common.labels(args), intermediate=args.intermediate, split=args.split,
        drop_rare_classes=args.drop_rare_classes)
    with _common.progress_bar(err, args.quiet, STAGES, note=True) as progress:
        result = run_search(cfg, progress=progress)
    print_search(result, console)
    for line in ending(result):
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


def ending(result) -> list[str]:
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
