"""``advisor search``: an Optuna study over a strategy's space, every trial logged to MLflow.

The order of work, chosen so that bad input fails before anything expensive:

1. everything cheap is checked, and nothing is created: the options, the strategy, a saved advice, the
   search space, the tracking store and the study storage (their schemes, a server's answer, a
   database's port, a journal's content, that the folders can be created) -- a refusal here comes
   in about the time importing torch takes and leaves nothing behind;
2. data and backbone load once (:func:`advisor.context.make_context`);
3. with ``strategy="auto"`` or ``space="auto"``: the Advice (run analyze, or read a saved one);
4. only now the stores are created (the workspace, MLflow's database, the journal), and the study is
   created or resumed: trials a dead worker left RUNNING are failed and their
   configurations enqueued again; on a new study the advised configuration is enqueued first; all of
   this, and finding or creating the MLflow parent run, under the study's lock, so that hosts started
   together make one study and one parent run (:mod:`advisor.search._hosts`);
5. the trials run (seeded TPE, Hyperband over fine-tuning epochs) in this process or in ``workers``
   processes sharing the storage, handed out one at a time until the study holds exactly
   ``trials`` finished trials (:class:`~advisor.search._budget.TrialBudget`);
6. when other hosts work on the same study, this one waits for their trials (a retry of a dead
   worker's trial it runs itself) and then either claims the refit -- exactly one host does -- or
   says where the result will appear (:mod:`advisor.search._hosts`); the claimant goes on: every
   finished trial has exactly one ended MLflow run (runs a killed process left unfinished
   are replaced; this step and the next: :mod:`advisor.search._finish`);
7. the best trial (highest validation accuracy, lowest number among ties) is trained again here
   on the full context -- trainers are seeded by ``ctx.seed``, so this reproduces the trial (the
   result says whether its validation accuracy came out the same) -- and that model is evaluated
   on the test split, once, and logged; what the invocation answers is a
   :class:`~advisor.search._results.SearchResult`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable

from advisor import strategies
from advisor.errors import AdvisorError
from advisor.search._config import SearchConfig
from advisor.search._finish import log_timings, reconcile_runs, refit_and_log
from advisor.search._objective import QuietFatalTrials
from advisor.search._pruners import make_pruner
from advisor.search._results import RECORDED, SearchResult, recorded, run_url, summarise, time_it
from advisor.track import names as N
from advisor.track.retry import TrackingUnavailable
from advisor.track.store import default_workspace

_log = logging.getLogger(__name__)

#: The shipped spaces: ``search_spaces/`` beside the package in a source checkout (editable
#: install), else where a wheel installs them (``<prefix>/share/advisor/search_spaces``).
SPACES_DIRS = (Path(__file__).resolve().parents[2] / "search_spaces",
               Path(sys.prefix) / "share" / "advisor" / "search_spaces")


def shipped_space(strategy: str) -> Path | None:
    """The shipped YAML space for ``strategy``, or None."""
    return next((d / f"{strategy}.yaml" for d in SPACES_DIRS if (d / f"{strategy}.yaml").is_file()), None)


def default_study_name(dataset: str, model: str, strategy: str) -> str:
    return f"{Path(dataset).name}-{model}-{strategy}".replace(":", "_").replace("/", "_")


def _load_space(cfg: SearchConfig, advice) -> Any:
    from advisor.search.space import default_space, load_space, space_from_advice

    if cfg.space == "auto" or (cfg.space is None and cfg.strategy == "auto"):
        if advice is None:
            raise AdvisorError("--space auto needs the advice", "pass --strategy auto or --advice PATH")
        return space_from_advice(advice)
    if cfg.space is None:
        path = shipped_space(cfg.strategy)
        # no shipped file: the ranges the strategy declares in the registry
        space = load_space(path) if path is not None else default_space(cfg.strategy)
    else:
        space = load_space(cfg.space)
    if cfg.strategy != "auto" and cfg.strategy not in space.strategies:
        raise AdvisorError(f"search space {cfg.space} has no strategy {cfg.strategy!r} "
                           f"(it has {', '.join(space.strategies)})",
                           f"pass --strategy {next(iter(space.strategies))} or another --space")
    if cfg.strategy != "auto" and len(space.strategies) > 1:
        space = dataclasses.replace(space, strategies={cfg.strategy: space.strategies[cfg.strategy]})
    return space


def _read_advice(cfg: SearchConfig):
    """The saved Analysis ``--advice`` names (read and checked), or None without one."""
    from advisor.api import Analysis

    if not cfg.advice:
        return None
    if not Path(cfg.advice).is_file():
        raise AdvisorError(f"no saved advice at {cfg.advice}", "write one with advisor analyze ... --json PATH")
    return Analysis.load(cfg.advice)


def _get_advice(cfg: SearchConfig, ctx, progress, saved=None):
    """The Analysis (profile + advice) when the search needs one, else None: ``saved`` (from
    :func:`_read_advice`), else a fresh analysis, which measures the data and backbone ``ctx``
    already holds instead of loading them again."""
    from advisor.api import analyze_context
    from advisor.track.pause import pause_point

    def analyze_progress(stage, done, total):
        pause_point("analyze")
        if progress is not None:
            progress(stage, done, total)

    if saved is not None:
        return saved
    if cfg.strategy != "auto" and cfg.space != "auto":
        return None
    return analyze_context(ctx, cfg.dataset, cfg.model, sample=cfg.analyze_sample, progress=analyze_progress)


def _first_unseen(advice, space, block_names, study, advised: dict | None = None) -> tuple[str, dict] | None:
    """``(what, optuna params)``: the advised configuration inside ``space`` (``advised``: its Optuna parameters)
    unless a trial of ``study`` already holds it (the check ran it), else the first of the advice's alternatives
    that none holds; None when every one is held or outside the space."""
    from advisor.search.space import advice_trial

    held = [dict(t.params) for t in study.get_trials(deepcopy=False)]
    if advised is not None and advised not in held:
        return "advice", advised
    options = [] if advised is not None else [("advice", advice)]
    options += [(f"alternative {i}", dataclasses.replace(advice, strategy=a.strategy, params=dict(a.params or {})))
                for i, a in enumerate(advice.alternatives, 1)]
    for what, option in options:
        got = advice_trial(option, space, len(block_names), block_names)
        if got is not None and got[1] not in held:
            return what, got[1]
    return None


def run_search(cfg: SearchConfig, progress: Callable[[str, int, int, str], None] | None = None) -> SearchResult:
    """Run (or resume) the study described by ``cfg``; see the module docstring.

    ``progress(stage, done, total, note)`` is called as trials finish (stage ``"trials"``,
    note = the best value so far) and during analyze.
    """
    import optuna

    from advisor.context import make_context
    from advisor.search._seed import advised_run, hold_check, same_split, seed_study
    from advisor.search.space import advice_trial, check_space, space_to_yaml
    from advisor.search.storage import check_storage, describe_storage, open_storage, storage_lock
    from advisor.search.trials import finished_count, recover_stale_trials
    from advisor.track import StudyTracker, check_tracking, default_tracking_uri, resolve_tracking_uri
    from advisor.track.retry import quiet_http_defaults
    from advisor.track.store import sqlite_path

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

    # 1. everything that can fail fast, creating nothing
    if cfg.strategy != "auto":
        strategies.get(cfg.strategy)  # an unknown name fails before data and backbone load
    saved_analysis = _read_advice(cfg)
    if cfg.space not in (None, "auto"):
        _load_space(cfg, None)
    workspace = Path(default_workspace(cfg.workspace)).expanduser().resolve()
    local_store = default_tracking_uri(workspace)
    uri = resolve_tracking_uri(cfg.tracking_uri, workspace)
    check_tracking(uri, local_store=local_store, create=False)
    quiet_http_defaults(uri)  # a server: our backoff instead of MLflow's, no "View run" line per trial
    check_storage(cfg.storage, workspace)
    storage_desc = describe_storage(cfg.storage, workspace)

    def stage_progress(stage):
        return (lambda s, d, t: progress(s, d, t, "")) if progress else None

    # 2-3. data, backbone, advice
    ctx = make_context(cfg.dataset, cfg.model, weights=cfg.weights, image_size=cfg.image_size, device=cfg.device,
                       seed=cfg.seed, cache_dir=cfg.cache_dir, label_columns=cfg.label_columns,
                       intermediate=cfg.intermediate, workers=cfg.loader_workers, split=cfg.split,
                       drop_rare_classes=cfg.drop_rare_classes)
    mark = time.perf_counter()
    analysis = _get_advice(cfg, ctx, stage_progress("analyze"), saved_analysis)
    spent = {"load": sum(float(ctx.timings.get(k, 0.0)) for k in ("data", "model")),
             "analyze": time.perf_counter() - mark}
    if analysis is not None and saved_analysis is None:
        spent["analyze_check"] = float(analysis.profile.timings.get("check", 0.0))
    advice = analysis.advice if analysis is not None else None
    space = _load_space(cfg, advice)
    block_names = list(ctx.backbone.block_names)
    if space.source == "auto" and advice is not None and advice.check is not None:
        # the space the advice suggests holds the check's fine-tunes as they ran: their budget, sized for this
        # split, and their rates, so they become trials and the advised one is the configuration the check chose
        space = hold_check(space, advice.check, block_names, ctx.backbone.layout.family)
    check_space(space, block_names)
    strategy_tag = cfg.strategy if cfg.strategy != "auto" else (advice.strategy if advice else "auto")
    # named after what was asked, not what analyze answered, so that a re-run resumes the same study
    study_name = cfg.study_name or default_study_name(cfg.dataset, cfg.model, cfg.strategy)
    experiment = cfg.experiment or study_name

    # 4. the stores, created only now, then the study
    mark = time.perf_counter()
    import mlflow  # noqa: F401 - its import configures the "mlflow" logger, so quieten it afterwards

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no INFO lines about database migrations
    try:
        workspace.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AdvisorError(f"cannot create the workspace {workspace} ({e.strerror or e})",
                           "pass a writable --workspace DIR") from None
    if sqlite_path(uri) is not None:
        check_tracking(uri, local_store=local_store)  # creates or migrates MLflow's database
    storage = open_storage(cfg.storage, workspace)
    lock = functools.partial(storage_lock, storage_desc, workspace, f"study:{study_name}")
    sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=5)
    with lock():  # hosts started together: one creates the study, seeds it and makes the parent run
        study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize", sampler=sampler,
                                    pruner=make_pruner(cfg.pruner, space), load_if_exists=True)
        before = finished_count(study)
        retried = recover_stale_trials(study)
        advice_params = None
        seeded, left_out, seed_note = [], [], None
        if advice is not None:
            new_study = not study.get_trials(deepcopy=False)
            advised = advice_trial(advice, space, len(block_names), block_names)
            if advised is not None:
                advice_params = advised[1]
            # decided by the check: the advised configuration is the run it trained, exactly (rates, budget)
            advice_params = advised_run(advice, space, block_names, ctx.backbone.layout.family) or advice_params
            if new_study and advice.check is not None:
                # the measured check's runs are trials already run on this split: added, never trained again
                # (the one holding the advised configuration is the advised trial)
                seed_note = same_split(analysis.profile, ctx) if saved_analysis is not None else None
                if seed_note is None:
                    seeded, left_out = seed_study(study, advice.check, space, block_names,
                                                  ctx.backbone.layout.family, advised=advice_params)
            if new_study:
                # the first trained trial: the advice, or, when the check already ran it, the advice's first
                # alternative that has not run
                first = _first_unseen(advice, space, block_names, study, advice_params)
                if first is not None:
                    study.enqueue_trial(first[1], user_attrs={"advice": first[0] == "advice",
                                                              "advised_as": first[0]})
        study.set_user_attr("dataset", cfg.dataset)
        study.set_user_attr("model", cfg.model)

        tags = {
            N.DATASET_TAG: cfg.dataset,
            N.FINGERPRINT_TAG: ctx.dataset.fingerprint(),
            N.MODEL_TAG: cfg.model,
            N.STRATEGY_TAG: strategy_tag,
            N.STUDY_TAG: study_name,
            N.STORAGE_TAG: storage_desc,
            N.IMAGE_SIZE_TAG: str(ctx.preprocess.crop_size),
            N.DEVICE_TAG: str(ctx.device),
            N.SEED_TAG: str(cfg.seed),
            N.SPLIT_TAG: ",".join(f"{f:g}" for f in fractions),
        }
        if advice is not None:
            tags.update({N.ADVICE_STRATEGY_TAG: advice.strategy,
                         N.ADVICE_CONFIDENCE_TAG: str(advice.confidence),
                         N.ADVICE_SUMMARY_TAG: advice.summary[:4000],
                         N.ADVICE_IN_SPACE_TAG: "true" if advice_params is not None else "false",
                         N.TRIALS_FROM_CHECK_TAG: str(len(seeded))})
            if seed_note:
                tags[N.CHECK_NOT_REUSED_TAG] = seed_note
        tracker = StudyTracker.open(uri, experiment, study_name, tags=tags, resume=True)
    files: dict[str, Any] = {"search_space.yaml": space_to_yaml(space)}
    if analysis is not None:
        files["profile.json"] = analysis.profile
        files["advice.json"] = analysis.advice
    tracker.log_artifacts(files)

    # 5. the trials; then, with the other hosts, who refits (advisor/search/_hosts.py)
    from advisor.search._hosts import ClaimBeat, finish_trials, linger_seconds
    from advisor.search.trials import worker_id

    spent["stores"] = time.perf_counter() - mark
    mark = time.perf_counter()

    status = "FINISHED"
    me = worker_id()
    try:
        for _ in range(MAX_ROUNDS):
            remaining = max(0, cfg.trials - finished_count(study))
            if remaining:
                if cfg.workers == 1:
                    _optimize_here(study, ctx, space, tracker, cfg, remaining, progress, lock)
                else:
                    from advisor.search._workers import optimize_in_processes

                    # the same study object: one storage engine (one connection pool) per process
                    optimize_in_processes(cfg, study_name, storage_desc, uri, tracker.parent_run_id, remaining,
                                          workspace, progress, space=space, study=study)
            ending = finish_trials(study, cfg.trials, lock, me, linger_seconds(study))
            if ending.role != "run":
                break
    except TrackingUnavailable:
        raise  # the server is gone: nothing more can be logged; the study keeps the trials, a rerun logs them
    except KeyboardInterrupt:
        status = "KILLED"
        tracker.finish("KILLED")
        raise
    except AdvisorError:
        # a fatal device error (or a crashed worker) stops the search: the finished trials stay in the
        # study, every one of them gets its ended MLflow run, and the parent run ends FAILED, not RUNNING
        try:
            with lock():  # one host at a time: two hosts reconciling at once would both replace a run
                reconcile_runs(study, tracker)
        except Exception as e:  # noqa: BLE001 - the error that stopped the search is the one to report
            _log.warning("could not bring the MLflow runs up to date: %s", e)
        tracker.finish("FAILED")
        raise

    spent["trials"] = time.perf_counter() - mark
    result = summarise(study, cfg, study_name, storage_desc, uri, experiment, tracker.parent_run_id, advice,
                        advice_params, before, retried, t_start)
    result.from_check, result.check_left_out, result.check_not_reused = len(seeded), left_out, seed_note
    result.ending, result.refit_by = ending.role, ending.claim.get("by")
    result.still_running, result.running_on = ending.running, ending.workers
    result.register = ending.claim.get("register", cfg.register)
    result.run_url = run_url(uri, tracker.experiment_id, tracker.parent_run_id)
    if ending.role in ("elsewhere", "recorded"):
        # a worker of this host that logged late (its trial failed as stale during an outage) may have written
        # over a run the refitting host reconciled: bring the runs up to date again, one host at a time
        try:
            with lock():
                reconcile_runs(study, tracker)
        except TrackingUnavailable:
            raise
        except Exception as e:  # noqa: BLE001 - the study's result stands; the runs are reconciled by any rerun
            _log.warning("could not bring the MLflow runs up to date: %s", e)
    if ending.role in ("elsewhere", "unfinished"):
        # another host ends the study: it reconciles the runs, refits, registers and ends the parent run
        time_it(result, spent, ctx, t_start)
        return result
    if ending.role == "recorded":  # the study's refit was done by an earlier run or another host: report it
        recorded(result, ending.claim)
        time_it(result, spent, ctx, t_start)
        tracker.finish(status)
        return result

    # 6. MLflow holds one ended run per finished trial
    mark = time.perf_counter()
    with lock():
        reconcile_runs(study, tracker)
    spent["reconcile_runs"] = time.perf_counter() - mark

    # 7. the best trial, trained again on the full context and evaluated on the test split once
    beat = ClaimBeat(study, lock, {**ending.claim})
    with beat:
        refit_and_log(study, ctx, cfg, tracker, uri, result, study_name, experiment, status, spent)
    beat.done(**{k: getattr(result, k) for k in RECORDED}, register=cfg.register)
    if cfg.register and result.registered_version is None:
        _log.warning("nothing registered as %s: the search has no refit best model", cfg.register)
    time_it(result, spent, ctx, t_start)
    log_timings(tracker, result)
    tracker.finish(status)
    return result


#: Rounds of "run trials, then look at the study" (a round runs the retries of trials whose workers died).
MAX_ROUNDS = 10
def _optimize_here(study, ctx, space, tracker, cfg, n_trials, progress, lock=None) -> None:
    from advisor.search._budget import TrialBudget
    from advisor.search._objective import Objective, optimize
    from advisor.search.trials import best_note, finished_count

    budget = TrialBudget(cfg.trials)
    objective = Objective(ctx, space, tracker, budget=budget, fail_on=set(cfg.fail_trials), lock=lock)
    start = finished_count(study)

    def on_trial(study, trial) -> None:
        if progress:
            progress("trials", finished_count(study) - start, n_trials, best_note(study))

    if progress:
        progress("trials", 0, n_trials, "")
    with QuietFatalTrials(objective):
        optimize(study, objective, cfg.timeout, [budget, on_trial])
    if objective.fatal:
        raise objective.fatal_error or AdvisorError(objective.fatal)
