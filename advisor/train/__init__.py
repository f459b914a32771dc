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
import time
from typing import Callable

from advisor import strategies
from advisor.context import TrainContext, make_context, without_test
from advisor.train._base import EpochCallback, EpochRecord, TrainingPruned, TrainResult, evaluate_model

__all__ = ["PROBE_STRATEGIES", "RUNNERS", "EpochCallback", "EpochRecord", "TrainContext", "TrainResult", "TrainingPruned",
           "evaluate_model", "load_model", "make_context", "run_strategy", "save_model", "train", "without_test"]


def __getattr__(name: str):
    # what the registry (advisor.strategies) declares, read when asked so later registrations count
    if name == "RUNNERS":  # strategy -> (module, function)
        return {s.name: tuple(s.runner.split(":")) for s in strategies.all_strategies()}
    if name == "PROBE_STRATEGIES":  # one closed-form fit on frozen features (no epochs to prune)
        return strategies.probe_names()
    # the model file (advisor.deploy.modelfile) imports torch; load it on first use
    if name in ("load_model", "save_model"):
        from advisor.deploy import modelfile

        return getattr(modelfile, name)
    raise AttributeError(name)


def run_strategy(ctx: TrainContext, strategy: str, params: dict | None = None,
                 callback: EpochCallback | None = None) -> TrainResult:
    """Run ``strategy`` with ``params`` (plain values) on ``ctx``; the context's backbone stays untouched."""
    import numpy as np
    import torch

    runner = strategies.get(strategy).load_runner()
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
          callback: EpochCallback | None = None, on_context: Callable[[TrainContext], None] | None = None,
          **context_kwargs) -> TrainResult:
    """Build a context (see ``make_context``) and run one strategy on it.

    The strategy and its parameters are checked first, so a typo fails before data and backbone load.
    ``on_context(ctx)``: told the context before the run starts (its dataset's name and classes, the
    preprocessing a saved model needs, the activation cache), e.g. to save the model afterwards with
    :func:`advisor.deploy.modelfile.model_output`.
    """
    declared = strategies.get(strategy)
    declared.validate(params)
    if declared.backbone_check:  # checked on the backbone before the data loads
        context_kwargs.setdefault("check_backbone", declared.backbone_checker(params))
    ctx = make_context(dataset, model, **context_kwargs)
    if on_context is not None:
        on_context(ctx)
    return run_strategy(ctx, strategy, params, callback)


from advisor._verb import callable_as  # noqa: E402  (after the verb is defined)

callable_as(__name__, "train")  # advisor.train(...) calls train
