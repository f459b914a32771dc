"""The end of a study, on the one host that claims it: every finished trial gets exactly one ended MLflow run,
the best trial is trained again and tested once, and its model is logged (and registered) on the parent run."""

from __future__ import annotations

import logging
import math
import time

from advisor.errors import AdvisorError
from advisor.track import names as N
from advisor.track.retry import TrackingUnavailable

_log = logging.getLogger(__name__)


def reconcile_runs(study, tracker, only: int | None = None) -> None:
    """Give every finished trial exactly one ended MLflow run in its state: a trial whose process was killed
    before or while it logged (or whose logging failed), and a stale trial failed here, are logged from
    the study's record; an unfinished run left behind is replaced (:meth:`StudyTracker.log_trial`).
    ``only``: that trial number alone (a worker whose trial was failed as stale while it logged)."""
    from collections import defaultdict

    from advisor.search.trials import _stale_numbers, is_surplus
    from advisor.track.study_runs import RUN_STATUS, normalize_state

    trials = study.get_trials(deepcopy=False)
    retried = _stale_numbers(trials)
    retry_of = {int(t.user_attrs["retry_of"]): t.number for t in trials if t.user_attrs.get("retry_of") is not None}
    runs = defaultdict(list)
    for run in tracker.trial_runs():
        if str(run.data.tags.get(N.TRIAL_TAG, "")).lstrip("-").isdigit():
            runs[int(run.data.tags[N.TRIAL_TAG])].append(run)
    for t in trials:
        if not t.state.is_finished() or is_surplus(t) or (only is not None and t.number != only):
            continue
        state = normalize_state(t.state)
        mine = runs.get(t.number, [])
        good = [r for r in mine if r.data.tags.get(N.STATE_TAG) == state and r.info.status == RUN_STATUS[state]]
        if good:  # keep one; delete duplicates and unfinished leftovers
            for other in mine:
                if other is not good[0]:
                    tracker.client.delete_run(other.info.run_id)
            continue
        reason = t.user_attrs.get("fail_reason")
        if t.number in retried:
            reason = "its worker process died" + (f"; retried as trial {retry_of[t.number]}"
                                                   if t.number in retry_of else "")
        params = {N.STRATEGY_KEY: t.user_attrs.get("strategy"), **(t.user_attrs.get("params") or dict(t.params))}
        warm = int(t.user_attrs.get("warmup_epochs") or 0)  # steps count fine-tuning epochs only
        history = [{"epoch": int(s) + warm, "val_accuracy": float(v)} for s, v in sorted(t.intermediate_values.items())]
        tags = {N.ADVISED_TAG: "true"} if t.user_attrs.get("advice") else {}
        if "from_check" in t.user_attrs:  # trained by analyze's measured check on this split, not by the search
            tags[N.FROM_CHECK_TAG] = "true"
        try:
            tracker.log_trial(t.number, params, state, t.value if state == "complete" else None, history,
                              t.user_attrs.get("wall_time"), reason=reason, extra_tags=tags,
                              metrics={"trainable_params": t.user_attrs.get("trainable_params")})
        except Exception as e:  # noqa: BLE001 - one run that cannot be written must not stop the others
            _log.warning("could not log trial %d to MLflow: %s", t.number, e)


def refit_and_log(study, ctx, cfg, tracker, uri, result, study_name, experiment, status, spent) -> None:
    """Step 7: refit the best trial, record it on the parent run, log (and register) its model into ``result``
    (seconds spent on each, ``refit`` and ``log_best``, into ``spent``)."""
    from advisor.search.trials import best_trial

    best = best_trial(study)
    if best is None:
        return
    mark = time.perf_counter()
    refit = _refit_best(best, ctx)
    spent["refit"] = time.perf_counter() - mark
    mark = time.perf_counter()
    result.test_accuracy, result.test_macro_f1 = refit["test_accuracy"], refit["test_macro_f1"]
    result.refit_val_accuracy, result.refit_reproduced = refit["val_accuracy"], refit["reproduced"]
    result.refit_error = refit["error"]
    extra = {"refit_val_accuracy": refit["val_accuracy"]}
    tags = {N.REFIT_REPRODUCED_TAG: _flag(refit["reproduced"])}
    if refit["error"]:
        tags[N.REFIT_ERROR_TAG] = refit["error"]
    tracker.log_best(best.number, {N.STRATEGY_KEY: best.user_attrs.get("strategy"),
                                   **(best.user_attrs.get("params") or {})},
                     {"test_accuracy": result.test_accuracy, "test_macro_f1": result.test_macro_f1},
                     value=best.value, extra_metrics=extra, extra_tags=tags)
    if refit["tables"]:  # the strategy's own tables of the refit, for advisor report
        tracker.log_artifacts({N.STRATEGY_TABLES: refit["tables"]})
    if refit["result"] is None:
        spent["log_best"] = time.perf_counter() - mark
        return
    try:
        result.model_uri, result.registered_version = _log_best_model(
            refit["result"], ctx, cfg, tracker, uri, {
                N.STUDY_TAG: study_name, N.DATASET_TAG: cfg.dataset,
                N.FINGERPRINT_TAG: ctx.dataset.fingerprint(), N.MODEL_TAG: cfg.model,
                N.STRATEGY_TAG: best.user_attrs.get("strategy"), N.BEST_TAG: best.number,
                N.TEST_ACCURACY_TAG: result.test_accuracy, N.EXPERIMENT_TAG: experiment,
                N.RUN_ID_TAG: tracker.parent_run_id})
    except TrackingUnavailable:
        raise
    except Exception as e:  # the trials and the best trial's record are kept: end the run, then say why
        tracker.finish(status)
        if isinstance(e, AdvisorError):
            raise
        raise AdvisorError(f"the search finished (all trials recorded) but its best model could not be "
                           f"logged: {type(e).__name__}: {' '.join(str(e).split())[:300]}",
                           "check the tracking store's artifact location") from None
    spent["log_best"] = time.perf_counter() - mark


def _refit_best(best, ctx) -> dict:
    """Train the best trial's configuration again on ``ctx`` (test split included) and test it, once.

    Trainers are seeded by ``ctx.seed``, so on the CPU the refit is the trial again; ``reproduced``
    says whether its validation accuracy equals the trial's value (GPU kernels need not be
    deterministic). A refit that fails leaves the test metrics None and says why in ``error``.
    """
    import gc

    import torch

    from advisor.train import run_strategy

    out = {"test_accuracy": None, "test_macro_f1": None, "val_accuracy": None, "reproduced": None,
           "model": None, "result": None, "error": None, "tables": []}
    strategy, params = best.user_attrs.get("strategy"), best.user_attrs.get("params")
    if strategy is None or params is None:
        out["error"] = f"trial {best.number} recorded no configuration"
        return out
    try:
        result = run_strategy(ctx, strategy, dict(params))
    except torch.cuda.OutOfMemoryError:
        out["error"] = "out of GPU memory"
    except Exception as e:  # noqa: BLE001 - the study's record must still be written
        out["error"] = (f"{type(e).__name__}: {e}".splitlines() or ["?"])[0][:500]
    else:
        val = float(result.val_accuracy)
        out.update(test_accuracy=N.finite(result.test_accuracy), test_macro_f1=N.finite(result.test_macro_f1),
                   val_accuracy=val, reproduced=math.isclose(val, float(best.value), rel_tol=0.0, abs_tol=1e-12),
                   model=result.model, result=result if result.model is not None else None,
                   tables=_strategy_tables(result))
    if out["error"]:
        _log.warning("refitting the best trial %d failed (%s): no test accuracy", best.number, out["error"])
    elif not out["reproduced"]:
        _log.warning("the refit of trial %d reached validation accuracy %.6f, the trial %.6f", best.number,
                     out["val_accuracy"], best.value)
    gc.collect()
    return out


def _log_best_model(refit, ctx, cfg, tracker, uri, tags) -> tuple[str | None, str | None]:
    """Log the refit model as the advisor pyfunc ``model`` on the parent run (network, preprocessing, class
    names); with ``cfg.register``, register it as a new version tagged with ``tags``. Returns the model's URI and
    the registered version."""
    from advisor.deploy.pyfunc import log_result, register

    info = log_result(uri, tracker.parent_run_id, refit, model_name=cfg.model, weights=cfg.weights,
                      preprocess=ctx.preprocess, dataset=ctx.dataset, experiment_id=tracker.experiment_id)
    version = None
    if cfg.register:
        version = register(uri, info.model_uri, cfg.register,
                           {k: "" if v is None else str(v) for k, v in tags.items()}).version
    return info.model_uri, None if version is None else str(version)


def _strategy_tables(result) -> list:
    """The tables the refit's strategy declares (``Strategy.tables``), as data for ``strategy_tables.json``."""
    from advisor.report.run_tables import strategy_view
    from advisor.report.view import view_to_data

    try:
        return view_to_data(strategy_view(result))
    except Exception as e:  # noqa: BLE001 - a table that cannot be drawn must not lose the refit
        _log.warning("the %s tables of the refit could not be made: %s", result.strategy, e)
        return []


def _flag(value: bool | None) -> str:
    return "unknown" if value is None else ("true" if value else "false")


def log_timings(tracker, result) -> None:
    """The search's time breakdown and this process's cache counts as metrics of the parent run
    (``time_<stage>_s``, ``cache_<count>``)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(f"time_{k}_s", float(v), now, 0) for k, v in result.timings.items()]
    metrics += [Metric(f"cache_{k}", float(v), now, 0) for k, v in (result.cache_stats or {}).items()]
    try:
        tracker.client.log_batch(tracker.parent_run_id, metrics=metrics)
    except Exception as e:  # noqa: BLE001 - the breakdown must not lose a finished search
        _log.warning("could not log the time breakdown: %s", e)
