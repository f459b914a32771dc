"""``multi_task``: one shared backbone (top k blocks train) with one head per task.

The loss is the sum over tasks of the mean cross-entropy over the labels present, so
images labelled for only some tasks still teach those. Each task is evaluated on the
items labelled for it. With ``compare`` (default) every task is also trained alone
with the same settings, and ``extra`` reports the separate models' metrics and
``multi_minus_separate``, the *validation*-accuracy difference multi-task minus separate:
the verdict on sharing is a choice between configurations, so it is made on the
validation split like every other choice (``compared_on`` says so). The test split
stays a final number, evaluated once per model; the separate models' test metrics are
recorded for evaluating the advisor itself (benchmarks), not for deciding.

Parameters: those of ``last_k`` (``k`` defaults to a quarter of the blocks), plus
``tasks`` (label columns to train, default every column but the intermediate one;
at least two) and ``compare`` (bool, default True).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from advisor.context import TrainContext
from advisor.errors import AdvisorError
from advisor.train._base import EpochCallback, TrainResult
from advisor.train._finetune import fit_kwargs
from advisor.train._loop import fit_network
from advisor.train._network import FittedNetwork, from_fitted, parse_network_params


def _pick_tasks(ctx: TrainContext, requested) -> list[str]:
    ds = ctx.dataset
    if requested is None:
        tasks = [t for t in ds.tasks if t != ds.intermediate]
    else:
        if isinstance(requested, str):
            requested = [t.strip() for t in requested.split(",") if t.strip()]
        if not isinstance(requested, (list, tuple)) or not all(isinstance(t, str) for t in requested):
            raise AdvisorError(f"bad tasks={requested!r}: must be a list of label column names",
                               f"e.g. tasks=[{', '.join(ds.tasks[:2])}]")
        tasks = list(requested)
        for t in tasks:
            if t not in ds.tasks:
                raise AdvisorError(f"unknown task {t!r} in tasks", f"choose from {', '.join(ds.tasks)}")
        if len(set(tasks)) != len(tasks):
            raise AdvisorError(f"task listed twice in tasks={tasks}", "list each label column once")
    if len(tasks) < 2:
        have = ", ".join(tasks) or "none"
        raise AdvisorError(f"multi_task needs at least 2 tasks, got {len(tasks)} ({have})",
                           "pass a dataset with two or more label columns (--labels a,b) or use last_k")
    return tasks


def _metrics(ctx: TrainContext, fitted: FittedNetwork) -> dict[str, dict[str, float]]:
    val = fitted.evaluate(ctx.split.val)
    test = fitted.evaluate(ctx.split.test)
    out = {}
    for t in fitted.tasks:
        y = ctx.labels(ctx.split.train, t)
        out[t] = {
            "val_accuracy": val[t]["accuracy"],
            "val_macro_f1": val[t]["macro_f1"],
            "test_accuracy": test[t]["accuracy"],
            "test_macro_f1": test[t]["macro_f1"],
            "n_train_labelled": int(np.sum(y >= 0)),
        }
    return out


def run_multi_task(ctx: TrainContext, params: dict, callback: EpochCallback | None = None) -> TrainResult:
    """Train one shared network on every task (and, with ``compare``, one network per task)."""
    t0 = time.perf_counter()
    n = len(ctx.backbone.blocks)
    p = parse_network_params(params, strategy="multi_task", n_blocks=n, family=ctx.backbone.layout.family)
    tasks = _pick_tasks(ctx, p["tasks"])
    compare = p["compare"]
    if not isinstance(compare, (bool, np.bool_)):
        raise AdvisorError(f"bad compare={compare!r}: must be true or false", "e.g. compare=true")
    p["tasks"], p["compare"] = tasks, bool(compare)

    fitted = fit_network(ctx, tasks, ctx.split.train, ctx.split.val, callback=callback,
                         progress_stage="multi_task", **fit_kwargs(p))
    per_task = _metrics(ctx, fitted)
    primary = fitted.primary_task
    extra: dict = {
        "frozen_blocks": list(fitted.frozen_blocks),
        "boundary_from_cache": bool(fitted.boundary_from_cache),
        "param_group_lrs": dict(fitted.param_group_lrs),
        "recipe": ctx.backbone.layout.family,
        "primary_task": primary,
    }
    result = TrainResult(
        strategy="multi_task",
        params=dict(p),
        val_accuracy=per_task[primary]["val_accuracy"],
        test_accuracy=per_task[primary]["test_accuracy"],
        val_macro_f1=per_task[primary]["val_macro_f1"],
        test_macro_f1=per_task[primary]["test_macro_f1"],
        history=fitted.history,
        wall_time=0.0,
        trainable_params=fitted.trainable_params,
        best_epoch=fitted.best_epoch,
        per_task=per_task,
        extra=extra,
        model=from_fitted(fitted),
    )
    del fitted

    if p["compare"]:
        separate, diff = {}, {}
        for t in tasks:
            # a fresh pretrained backbone per task; the same seed, split and settings
            alone_ctx = dataclasses.replace(ctx, backbone=ctx.make_backbone())
            alone = fit_network(alone_ctx, [t], ctx.split.train, ctx.split.val,
                                progress_stage=f"{t} alone", **fit_kwargs(p))
            m = _metrics(alone_ctx, alone)[t]
            m["best_epoch"] = alone.best_epoch
            m["trainable_params"] = alone.trainable_params
            separate[t] = m
            diff[t] = per_task[t]["val_accuracy"] - m["val_accuracy"]
            del alone, alone_ctx
        extra["separate"] = separate
        extra["multi_minus_separate"] = diff
        extra["compared_on"] = "validation accuracy"
    result.wall_time = time.perf_counter() - t0
    return result
