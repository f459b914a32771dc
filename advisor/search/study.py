"""``advisor search``: an Optuna study over a strategy's space, every trial logged to MLflow.

The order of work, chosen so that bad input fails before anything expensive:

1. tracking store reachable, study storage opens, search space valid (all in seconds);
2. data and backbone load once (:func:`advisor.train.make_context`);
3. with ``strategy="auto"`` or ``space="auto"``: the Advice (run analyze, or read a saved one);
4. the study is created or resumed: trials a dead worker left RUNNING are failed and their
   configurations enqueued again; on a new study the advised configuration is enqueued first;
5. the trials run (seeded TPE, Hyperband over epochs) in this process or in ``workers``
   processes sharing the storage, until the study holds ``trials`` finished trials;
6. the best trial's saved model is evaluated on the test split, once, and logged.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from advisor.errors import AdvisorError

#: The shipped spaces: ``search_spaces/`` beside the package in a source checkout (editable
#: install), else where a wheel installs them (``<prefix>/share/advisor/search_spaces``).
SPACES_DIRS = (Path(__file__).resolve().parents[2] / "search_spaces",
               Path(sys.prefix) / "share" / "advisor" / "search_spaces")


def shipped_space(strategy: str) -> Path | None:
    """The shipped YAML space for ``strategy``, or None."""
    return next((d / f"{strategy}.yaml" for d in SPACES_DIRS if (d / f"{strategy}.yaml").is_file()), None)


@dataclass
class SearchConfig:
    dataset: str
    model: str = "mobilenet_v2"
    weights: str | None = None
    strategy: str = "auto"  # "auto" or a strategy name
    space: str | None = None  # None: the strategy's shipped file (auto: the advice's space); "auto"; or a path
    trials: int = 20
    timeout: float | None = None  # seconds for this invocation
    storage: str | None = None  # None: <workspace>/optuna.journal
    study_name: str | None = None
    workers: int = 1
    experiment: str | None = None
    tracking_uri: str | None = None  # None: sqlite in the workspace
    device: str = "auto"
    image_size: int | None = None
    seed: int = 0
    workspace: str = "advisor-workspace"
    cache_dir: str | None = None
    advice: str | None = None  # a saved analyze JSON to read instead of running analyze
    analyze_sample: int = 500
    split: str | None = None  # train/val/test fractions, e.g. "0.3,0.5,0.2"; None: 0.6,0.2,0.2
    pruner: str = "hyperband"  # hyperband | halving | none
    label_columns: list[str] | None = None
    intermediate: str | None = None
    loader_workers: int = 0
    fail_trials: list[int] = field(default_factory=list)  # inject failures (tests)


@dataclass
class SearchResult:
    study_name: str
    storage: str
    tracking_uri: str
    experiment: str
    parent_run_id: str | None
    n_trials: int
    n_complete: int
    n_pruned: int
    n_failed: int
    best_trial: int | None
    best_value: float | None
    best_strategy: str | None
    best_params: dict
    test_accuracy: float | None
    test_macro_f1: float | None
    advice_strategy: str | None
    advice_params: dict | None
    advice_trial: int | None
    advice_value: float | None
    resumed_from: int  # finished trials the study held before this invocation
    retried: list[int]
    wall_time: float
    trials: list[dict] = field(default_factory=list)


def default_study_name(dataset: str, model: str, strategy: str) -> str:
    return f"{Path(dataset).name}-{model}-{strategy}".replace(":", "_").replace("/", "_")


def _make_pruner(name: str, space):
    """The pruner over epochs: it first judges a trial at :func:`min_epochs` (after any warm-up)."""
    import optuna

    from advisor.search.space import max_epochs, min_epochs

    top = max(1, max_epochs(space))
    first = min(min_epochs(space), top)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=first, max_resource=top, reduction_factor=3)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise AdvisorError(f"unknown pruner {name!r}", "use hyperband, halving or none")


def _load_space(cfg: SearchConfig, advice) -> Any:
    from advisor.search.space import load_space, space_from_advice

    if cfg.space == "auto" or (cfg.space is None and cfg.strategy == "auto"):
        if advice is None:
            raise AdvisorError("--space auto needs the advice", "pass --strategy auto or --advice PATH")
        return space_from_advice(advice)
    if cfg.space is None:
        path = shipped_space(cfg.strategy)
        if path is None:
            raise AdvisorError(f"no shipped search space for strategy {cfg.strategy!r} "
                               f"({' or '.join(str(d / (cfg.strategy + '.yaml')) for d in SPACES_DIRS)} missing)",
                               "pass --space PATH or --space auto")
        space = load_space(path)
    else:
        space = load_space(cfg.space)
    if cfg.strategy != "auto" and cfg.strategy not in space.strategies:
        raise AdvisorError(f"search space {cfg.space} has no strategy {cfg.strategy!r} "
                           f"(it has {', '.join(space.strategies)})",
                           f"pass --strategy {next(iter(space.strategies))} or another --space")
    if cfg.strategy != "auto" and len(space.strategies) > 1:
        space = dataclasses.replace(space, strategies={cfg.strategy: space.strategies[cfg.strategy]})
    return space


def _get_advice(cfg: SearchConfig, ctx, progress):
    """The Analysis (profile + advice) when the search needs one, else None. A fresh analysis
    measures the data and backbone ``ctx`` already holds instead of loading them again."""
    from advisor.api import Analysis, analyze_context

    if cfg.advice:
        if not Path(cfg.advice).is_file():
            raise AdvisorError(f"no saved advice at {cfg.advice}", "write one with advisor analyze ... --json PATH")
        return Analysis.load(cfg.advice)
    if cfg.strategy != "auto" and cfg.space != "auto":
        return None
    return analyze_context(ctx, cfg.dataset, cfg.model, sample=cfg.analyze_sample, progress=progress)


def _counts(study) -> dict[str, int]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    return {
        "complete": sum(t.state == TrialState.COMPLETE for t in trials),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "running": sum(t.state == TrialState.RUNNING for t in trials),
    }


def run_search(cfg: SearchConfig, progress: Callable[[str, int, int, str], None] | None = None) -> SearchResult:
    """Run (or resume) the study described by ``cfg``; see the module docstring.

    ``progress(stage, done, total, note)`` is called as trials finish (stage ``"trials"``,
    note = the best value so far) and during analyze.
    """
    import optuna

    from advisor.search.space import advice_trial, check_space, space_to_yaml
    from advisor.search.storage import describe_storage, finished_count, open_storage, recover_stale_trials
    from advisor.track import StudyTracker, check_tracking, default_tracking_uri, resolve_tracking_uri
    from advisor.train import make_context

    t_start = time.perf_counter()
    if cfg.trials < 1:
        raise AdvisorError(f"bad --trials {cfg.trials}", "use a positive number of trials, e.g. 20")
    if cfg.workers < 1:
        raise AdvisorError(f"bad --workers {cfg.workers}", "use 1 or more worker processes")
    if cfg.timeout is not None and cfg.timeout <= 0:
        raise AdvisorError(f"bad --timeout {cfg.timeout}", "use a positive number of seconds")
    from advisor.data import parse_split

    fractions = parse_split(cfg.split)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import logging

    import mlflow  # noqa: F401 - its import configures the "mlflow" logger, so quieten it afterwards

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no INFO lines about database migrations
    workspace = Path(cfg.workspace).expanduser().resolve()
    workspace.mkdir(parents=True, exist_ok=True)

    # 1. everything that can fail fast
    uri = resolve_tracking_uri(cfg.tracking_uri, workspace)
    check_tracking(uri, local_store=default_tracking_uri(workspace))
    storage = open_storage(cfg.storage, workspace)
    storage_desc = describe_storage(cfg.storage, workspace)
    if cfg.space not in (None, "auto"):
        _load_space(cfg, None)

    def stage_progress(stage):
        return (lambda s, d, t: progress(s, d, t, "")) if progress else None

    # 2-3. data, backbone, advice
    ctx = make_context(cfg.dataset, cfg.model, weights=cfg.weights, image_size=cfg.image_size, device=cfg.device,
                       seed=cfg.seed, cache_dir=cfg.cache_dir, label_columns=cfg.label_columns,
                       intermediate=cfg.intermediate, workers=cfg.loader_workers, split=cfg.split)
    analysis = _get_advice(cfg, ctx, stage_progress("analyze"))
    advice = analysis.advice if analysis is not None else None
    space = _load_space(cfg, advice)
    block_names = list(ctx.backbone.block_names)
    check_space(space, block_names)
    strategy_tag = cfg.strategy if cfg.strategy != "auto" else (advice.strategy if advice else "auto")
    # named after what was asked, not what analyze answered, so that a re-run resumes the same study
    study_name = cfg.study_name or default_study_name(cfg.dataset, cfg.model, cfg.strategy)
    experiment = cfg.experiment or study_name

    # 4. the study
    sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=5)
    study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize", sampler=sampler,
                                pruner=_make_pruner(cfg.pruner, space), load_if_exists=True)
    before = finished_count(study)
    retried = recover_stale_trials(study)
    advice_params = None
    if advice is not None:
        advised = advice_trial(advice, space, len(block_names), block_names)
        if advised is not None:
            advice_params = advised[1]
            if not study.get_trials(deepcopy=False):
                study.enqueue_trial(advice_params, user_attrs={"advice": True})
    study.set_user_attr("dataset", cfg.dataset)
    study.set_user_attr("model", cfg.model)

    tags = {
        "advisor.dataset": cfg.dataset,
        "advisor.dataset_fingerprint": ctx.dataset.fingerprint(),
        "advisor.model": cfg.model,
        "advisor.strategy": strategy_tag,
        "advisor.study_name": study_name,
        "advisor.storage": storage_desc,
        "advisor.image_size": str(ctx.preprocess.crop_size),
        "advisor.device": str(ctx.device),
        "advisor.seed": str(cfg.seed),
        "advisor.split": ",".join(f"{f:g}" for f in fractions),
    }
    if advice is not None:
        tags.update({"advisor.advice_strategy": advice.strategy, "advisor.advice_confidence": str(advice.confidence),
                     "advisor.advice_summary": advice.summary[:4000],
                     "advisor.advice_in_space": "true" if advice_params is not None else "false"})
    tracker = StudyTracker.open(uri, experiment, study_name, tags=tags, resume=True)
    files: dict[str, Any] = {"search_space.yaml": space_to_yaml(space)}
    if analysis is not None:
        files["profile.json"] = analysis.profile
        files["advice.json"] = analysis.advice
    tracker.log_artifacts(files)

    # 5. the trials
    status = "FINISHED"
    try:
        remaining = max(0, cfg.trials - finished_count(study))
        if remaining:
            if cfg.workers == 1:
                _optimize_here(study, ctx, space, tracker, cfg, workspace, study_name, remaining, progress)
            else:
                from advisor.search._workers import optimize_in_processes

                optimize_in_processes(cfg, study_name, storage_desc, uri, tracker.parent_run_id, remaining,
                                      workspace, progress, space=space)
                study = optuna.load_study(study_name=study_name, storage=open_storage(cfg.storage, workspace))
    except KeyboardInterrupt:
        status = "KILLED"
        tracker.finish("KILLED")
        raise

    # 6. the best trial, on the test split once
    result = _summarise(study, cfg, study_name, storage_desc, uri, experiment, tracker.parent_run_id, advice,
                        advice_params, before, retried, t_start)
    best = _best_trial(study)
    if best is not None:
        test = _evaluate_best(best, ctx)
        result.test_accuracy, result.test_macro_f1 = test.get("accuracy"), test.get("macro_f1")
        model = test.pop("model", None)
        tracker.log_best(best.number, {"strategy": best.user_attrs.get("strategy"),
                                       **(best.user_attrs.get("params") or {})},
                         {"test_accuracy": result.test_accuracy, "test_macro_f1": result.test_macro_f1},
                         model=model, value=best.value)
    tracker.finish(status)
    result.wall_time = time.perf_counter() - t_start
    return result


def _optimize_here(study, ctx, space, tracker, cfg, workspace, study_name, n_trials, progress) -> None:
    from advisor.search._objective import Objective, TrialFailed

    objective = Objective(ctx, space, tracker, workspace=workspace, study_name=study_name, model_name=cfg.model,
                          weights=cfg.weights, fail_on=set(cfg.fail_trials))
    done = [0]

    def on_trial(study, trial) -> None:
        done[0] += 1
        if progress:
            progress("trials", done[0], n_trials, _best_note(study))

    if progress:
        progress("trials", 0, n_trials, "")
    study.optimize(objective, n_trials=n_trials, timeout=cfg.timeout, catch=(TrialFailed,), callbacks=[on_trial])


def _best_note(study) -> str:
    b = _best_trial(study)
    return "" if b is None else f"best {b.value:.4f} (trial {b.number})"


def _best_trial(study):
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def _evaluate_best(best, ctx) -> dict:
    """Test accuracy of the best trial's saved model, computed here once."""
    from advisor.train.export import evaluate_model, load_model

    path = best.user_attrs.get("model_path")
    if not path or not Path(path).is_file():
        return {"accuracy": None, "macro_f1": None}
    model, _ = load_model(path, device=str(ctx.device))
    out = evaluate_model(model, ctx, ctx.split.test)
    out["model"] = model.cpu()
    return out


def _summarise(study, cfg, study_name, storage_desc, uri, experiment, parent_run_id, advice, advice_params,
               before, retried, t_start) -> SearchResult:
    trials = []
    advice_number, advice_value = None, None
    for t in study.get_trials(deepcopy=False):
        rec = {"number": t.number, "state": t.state.name.lower(),
               "value": t.value if t.state.name == "COMPLETE" else None,  # a pruned trial's is its last report
               "strategy": t.user_attrs.get("strategy"), "params": t.user_attrs.get("params") or dict(t.params),
               "fail_reason": t.user_attrs.get("fail_reason"), "wall_time": t.user_attrs.get("wall_time"),
               "epochs": len(t.intermediate_values), "advice": bool(t.user_attrs.get("advice"))}
        trials.append(rec)
        if rec["advice"] and advice_number is None:
            advice_number, advice_value = t.number, t.value
    counts = _counts(study)
    best = _best_trial(study)
    return SearchResult(
        study_name=study_name, storage=storage_desc, tracking_uri=uri, experiment=experiment,
        parent_run_id=parent_run_id, n_trials=len(trials), n_complete=counts["complete"],
        n_pruned=counts["pruned"], n_failed=counts["failed"],
        best_trial=best.number if best else None, best_value=best.value if best else None,
        best_strategy=best.user_attrs.get("strategy") if best else None,
        best_params=(best.user_attrs.get("params") or {}) if best else {},
        test_accuracy=None, test_macro_f1=None,
        advice_strategy=advice.strategy if advice else None, advice_params=advice.params if advice else None,
        advice_trial=advice_number, advice_value=advice_value, resumed_from=before, retried=list(retried),
        wall_time=time.perf_counter() - t_start, trials=trials,
    )
