"""Training: one entry point for every strategy the advice can recommend.

    from advisor.train import train
    result = train("digits", "mobilenet_v2", "last_k", params={"k": 2, "epochs": 3}, image_size=64)

Each strategy lives in its own file behind one signature
``run(ctx: TrainContext, params: dict, callback) -> TrainResult``; ``make_context``
builds the shared context once (data, split, backbone, preprocessing, cache), so a
search can run many trials on one context.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import time

from advisor.context import TrainContext, make_context, without_test
from advisor.errors import AdvisorError
from advisor.train._base import EpochCallback, EpochRecord, TrainingPruned, TrainResult

# strategy -> (module, function)
RUNNERS = {
    "linear_probe": ("advisor.train._probe", "run_linear_probe"),
    "svm_early": ("advisor.train._probe", "run_svm_early"),
    "last_k": ("advisor.train._finetune", "run_last_k"),
    "full_finetune": ("advisor.train._finetune", "run_full_finetune"),
    "multi_task": ("advisor.train._multitask", "run_multi_task"),
    "pipeline_vs_end_to_end": ("advisor.train._pipeline", "run_pipeline_vs_end_to_end"),
}

#: The strategies that are one closed-form fit on frozen features (no epochs to prune).
PROBE_STRATEGIES = ("linear_probe", "svm_early")

__all__ = ["PROBE_STRATEGIES", "RUNNERS", "EpochCallback", "EpochRecord", "TrainContext", "TrainResult", "TrainingPruned",
           "evaluate_model", "load_model", "make_context", "run_strategy", "save_model", "train", "without_test"]


def __getattr__(name: str):  # the export helpers import torch; load them on first use
    if name in ("load_model", "save_model", "evaluate_model"):
        from advisor.train import export

        return getattr(export, name)
    raise AttributeError(name)


def run_strategy(ctx: TrainContext, strategy: str, params: dict | None = None,
                 callback: EpochCallback | None = None) -> TrainResult:
    """Run ``strategy`` with ``params`` (plain values) on ``ctx``; the context's backbone stays untouched."""
    import numpy as np
    import torch

    if strategy not in RUNNERS:
        raise AdvisorError(f"unknown strategy '{strategy}'", f"choose one of {', '.join(RUNNERS)}")
    module, fn = RUNNERS[strategy]
    runner = getattr(importlib.import_module(module), fn)
    torch.manual_seed(ctx.seed)
    np.random.seed(ctx.seed)
    # every run trains its own copy, so the cache and later runs always see the pretrained weights
    run_ctx = dataclasses.replace(ctx, backbone=ctx.make_backbone())
    t = time.perf_counter()
    try:
        result = runner(run_ctx, dict(params or {}), callback)
    finally:
        del run_ctx
        if torch.cuda.is_available():
            with contextlib.suppress(RuntimeError):  # a broken CUDA context raises here too: keep the first error
                torch.cuda.empty_cache()
    if not result.wall_time:
        result.wall_time = time.perf_counter() - t
    return result


def train(dataset: str, model: str = "mobilenet_v2", strategy: str = "linear_probe", *, params: dict | None = None,
          callback: EpochCallback | None = None, **context_kwargs) -> TrainResult:
    """Build a context (see ``make_context``) and run one strategy on it."""
    if strategy not in RUNNERS:
        raise AdvisorError(f"unknown strategy '{strategy}'", f"choose one of {', '.join(RUNNERS)}")
    ctx = make_context(dataset, model, **context_kwargs)
    return run_strategy(ctx, strategy, params, callback)
