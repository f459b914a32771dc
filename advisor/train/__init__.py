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
from pathlib import Path

from advisor.errors import AdvisorError
from advisor.train._base import EpochCallback, EpochRecord, TrainContext, TrainingPruned, TrainResult

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


def without_test(ctx: TrainContext) -> TrainContext:
    """The same context with an empty test split: trainers then report NaN test metrics.

    A search trains every trial on this, so the test items are never seen until the best
    trial is evaluated once (with ``evaluate_model`` on the original context).
    """
    import numpy as np

    from advisor.data.split import Split

    empty = np.zeros(0, dtype=np.int64)
    return dataclasses.replace(ctx, split=Split(ctx.split.train, ctx.split.val, empty))


def make_context(
    dataset: str,
    model: str = "mobilenet_v2",
    *,
    weights: str | None = None,
    image_size: int | None = None,
    device: str = "auto",
    seed: int = 0,
    cache_dir: str | Path | None | bool = None,
    label_columns: list[str] | None = None,
    intermediate: str | None = None,
    workers: int = 0,
    progress=None,
    split=None,
) -> TrainContext:
    """Load data, split it, load the backbone once, and set up the activation cache.

    ``cache_dir``: None for the default cache folder, False for no cache, or a path.
    ``split``: train/val/test fractions (``"0.3,0.5,0.2"`` or three numbers); None: 0.6/0.2/0.2.
    """
    import copy
    import time

    from advisor.data import Preprocess, load_dataset, parse_split, stratified_split
    from advisor.models import create_backbone, resolve_device

    fractions = parse_split(split)
    dev = resolve_device(device)
    t0 = time.perf_counter()
    data = load_dataset(dataset, label_columns=label_columns, intermediate=intermediate, seed=seed)
    split = stratified_split(data.labels[:, data.tasks.index(data.primary_task)], seed=seed, fractions=fractions)
    t1 = time.perf_counter()
    pristine = create_backbone(model, weights, device=str(dev))
    timings = {"data": t1 - t0, "model": time.perf_counter() - t1}
    pre = Preprocess.from_config(pristine.preprocessing, image_size)
    cache = None
    if cache_dir is not False:
        from advisor.train.cache import ActivationCache, default_cache_dir

        cache = ActivationCache(cache_dir if cache_dir not in (None, True) else default_cache_dir())
    return TrainContext(dataset=data, split=split, backbone=pristine, make_backbone=lambda: copy.deepcopy(pristine),
                        preprocess=pre, device=dev, seed=seed, cache=cache, progress=progress, workers=workers,
                        timings=timings)


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
