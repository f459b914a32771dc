"""``last_k`` (train the top k blocks) and ``full_finetune`` (train every block, optionally LP-FT).

Both train a new head for the primary task with :func:`advisor.train._loop.fit_network`
on ``ctx.split.train``, pick the best epoch on ``ctx.split.val`` and evaluate the test
split once with those weights.

Parameters (plain values): ``k`` (last_k: required; full_finetune: all blocks), the learning
rates, decay, epochs, batch size, patience, ``warmup`` / ``warmup_epochs`` (heads-only epochs
before fine-tuning) and ``augment``; their types, bounds and defaults are declared once in
:mod:`advisor.strategies` (``_shared.NETWORK_PARAMS``).
"""

from __future__ import annotations

import time

from advisor.context import TrainContext
from advisor.train._base import EpochCallback, TrainResult
from advisor.train._loop import fit_network
from advisor.train._network import FittedNetwork, from_fitted, parse_network_params

_FIT_KEYS = ("k", "head_lr", "lr_ratio", "layer_decay", "weight_decay", "epochs", "batch_size", "patience",
             "warmup_epochs", "rate_warmup", "clip_grad", "augment")


def fit_kwargs(p: dict) -> dict:
    """The keyword arguments of ``fit_network`` from parsed parameters."""
    return {key: p[key] for key in _FIT_KEYS}


def _result(strategy: str, ctx: TrainContext, fitted: FittedNetwork, p: dict, t0: float) -> TrainResult:
    task = fitted.primary_task
    val = fitted.evaluate(ctx.split.val)[task]
    test = fitted.evaluate(ctx.split.test)[task]
    return TrainResult(
        strategy=strategy,
        params=dict(p),
        val_accuracy=val["accuracy"],
        test_accuracy=test["accuracy"],
        val_macro_f1=val["macro_f1"],
        test_macro_f1=test["macro_f1"],
        history=fitted.history,
        wall_time=time.perf_counter() - t0,
        trainable_params=fitted.trainable_params,
        best_epoch=fitted.best_epoch,
        extra={
            "frozen_blocks": list(fitted.frozen_blocks),
            "boundary_from_cache": bool(fitted.boundary_from_cache),
            "param_group_lrs": dict(fitted.param_group_lrs),
            "recipe": ctx.backbone.layout.family,
        },
        model=from_fitted(fitted),
    )


def _run(strategy: str, ctx: TrainContext, p: dict, callback: EpochCallback | None, t0: float) -> TrainResult:
    fitted = fit_network(ctx, [ctx.dataset.primary_task], ctx.split.train, ctx.split.val,
                         callback=callback, progress_stage=strategy, **fit_kwargs(p))
    return _result(strategy, ctx, fitted, p, t0)


def run_last_k(ctx: TrainContext, params: dict, callback: EpochCallback | None = None) -> TrainResult:
    """Train the top ``params["k"]`` blocks and a new head; the blocks below stay frozen."""
    t0 = time.perf_counter()
    p = parse_network_params(params, strategy="last_k", n_blocks=len(ctx.backbone.blocks),
                             family=ctx.backbone.layout.family)
    return _run("last_k", ctx, p, callback, t0)


def run_full_finetune(ctx: TrainContext, params: dict, callback: EpochCallback | None = None) -> TrainResult:
    """Train every block and a new head (``warmup=True``: 2 heads-only epochs first, LP-FT)."""
    t0 = time.perf_counter()
    n = len(ctx.backbone.blocks)
    p = parse_network_params(params, strategy="full_finetune", n_blocks=n, family=ctx.backbone.layout.family)
    return _run("full_finetune", ctx, p, callback, t0)
