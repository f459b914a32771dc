"""What one ``advisor search`` invocation answers: :class:`SearchResult`, filled from the study and the refit."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

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
    refit_val_accuracy: float | None = None  # the best configuration trained again at the end
    refit_reproduced: bool | None = None  # whether that equals the best trial's validation accuracy
    refit_error: str | None = None  # why the refit failed (then there is no test accuracy)
    model_uri: str | None = None  # the best model, logged as the advisor pyfunc (models:/MODEL_ID)
    registered_version: str | None = None  # its version in the Model Registry (--register NAME)
    from_check: int = 0  # trials added from the measured check's runs (trained by analyze, not again)
    check_left_out: list[str] = field(default_factory=list)  # check runs outside the space, and why
    check_not_reused: str | None = None  # why a saved analysis's check runs were not added
    timings: dict = field(default_factory=dict)  # seconds per stage: load, analyze (its check), stores, trials, ...
    cache_stats: dict | None = None  # this process's activation cache: items computed (fills), served (hits), ...
    # several hosts on one study (advisor/search/_hosts.py): how this invocation ended -- "refit" (it trained the
    # best trial again), "recorded" (the study's refit was already done: its results), "elsewhere" (another host
    # refits), "unfinished" (trials still run on other hosts; the last to finish refits)
    ending: str = "refit"
    refit_by: str | None = None  # host:pid of the process that refits (or refitted) the study's best trial
    still_running: list[int] = field(default_factory=list)  # trials other hosts ran when this one left
    running_on: list[str] = field(default_factory=list)  # their workers (host:pid)
    register: str | None = None  # the registered model name the refitting host uses
    run_url: str | None = None  # the parent run's page on a tracking server


def state_counts(study) -> dict[str, int]:
    from optuna.trial import TrialState

    from advisor.search.trials import is_surplus

    trials = [t for t in study.get_trials(deepcopy=False) if not is_surplus(t)]
    return {
        "complete": sum(t.state == TrialState.COMPLETE for t in trials),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "running": sum(t.state == TrialState.RUNNING for t in trials),
    }


def summarise(study, cfg, study_name, storage_desc, uri, experiment, parent_run_id, advice, advice_params,
              before, retried, t_start) -> SearchResult:
    from advisor.search.trials import _stale_numbers, best_trial, is_surplus

    trials = []
    advice_number, advice_value = None, None
    all_trials = study.get_trials(deepcopy=False)
    retried_numbers = _stale_numbers(all_trials)
    for t in all_trials:
        if is_surplus(t):
            continue
        rec = {"number": t.number, "state": t.state.name.lower(),
               "value": t.value if t.state.name == "COMPLETE" else None,  # a pruned trial's is its last report
               "strategy": t.user_attrs.get("strategy"), "params": t.user_attrs.get("params") or dict(t.params),
               "fail_reason": t.user_attrs.get("fail_reason"), "wall_time": t.user_attrs.get("wall_time"),
               "epochs": _epochs_run(t), "advice": bool(t.user_attrs.get("advice")),
               "from_check": "from_check" in t.user_attrs}
        trials.append(rec)
        if rec["advice"] and advice_number is None and t.number not in retried_numbers:
            advice_number, advice_value = t.number, t.value
    counts = state_counts(study)
    best = best_trial(study)
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


def _epochs_run(t) -> int:
    """Trainer epochs a trial reported: its pruner steps plus the warm-up epochs before the first."""
    steps = len(t.intermediate_values)
    return steps + int(t.user_attrs.get("warmup_epochs") or 0) if steps else 0


def time_it(result: SearchResult, spent: dict, ctx, t_start: float) -> None:
    """The invocation's wall time, its seconds per stage and this process's cache counts, into ``result``."""
    result.wall_time = time.perf_counter() - t_start
    result.timings = {k: round(v, 3) for k, v in spent.items()}
    result.timings["total"] = round(result.wall_time, 3)
    if ctx.cache is not None:  # this process's cache (worker processes keep their own counts)
        result.cache_stats = dict(ctx.cache.stats)


#: Results of the refit that the claim records, so that other hosts and reruns report them.
RECORDED = ("test_accuracy", "test_macro_f1", "refit_val_accuracy", "refit_reproduced", "refit_error",
            "model_uri", "registered_version")


def recorded(result: SearchResult, claim: dict) -> None:
    for k in RECORDED:
        if k in claim:
            setattr(result, k, claim[k])
    result.refit_by = claim.get("by")


def run_url(uri: str, experiment_id: str, run_id: str) -> str | None:
    """The parent run's page on a tracking server (``http(s)://``), else None."""
    if not str(uri).lower().startswith(("http://", "https://")):
        return None
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
