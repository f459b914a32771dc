"""The loaded context: a dataset, its split, a backbone, the weights' preprocessing and the activation cache.

Loading a dataset with a backbone and a split is its own concept, below everything that uses it:
``advisor.api`` measures a context, ``advisor.train`` trains on one, ``advisor.search`` runs many trials
on one. :func:`make_context` builds it once; :mod:`advisor.context.cache` holds the frozen backbone's
activations it shares between runs and processes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["TrainContext", "make_context", "without_test"]


@dataclass
class TrainContext:
    """Everything analyze, a trainer or a search needs, built once by :func:`make_context`.

    ``dataset`` is an advisor.data.TargetDataset, ``split`` an advisor.data.Split,
    ``backbone`` a *fresh* advisor.models.Backbone (trainers may modify it),
    ``make_backbone`` builds another fresh copy, ``preprocess`` an advisor.data.Preprocess,
    ``cache`` an advisor.context.cache.ActivationCache (or None for no caching).
    """

    dataset: Any
    split: Any
    backbone: Any
    make_backbone: Callable[[], Any]
    preprocess: Any
    device: Any  # torch.device
    seed: int = 0
    cache: Any = None
    progress: Callable[[str, int, int], None] | None = None  # (stage, done, total)
    workers: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # seconds: "data" and "model" loading

    @property
    def task_index(self) -> int:
        return self.dataset.tasks.index(self.dataset.primary_task)

    def labels(self, indices: np.ndarray, task: str | None = None) -> np.ndarray:
        j = self.task_index if task is None else self.dataset.tasks.index(task)
        return self.dataset.labels[np.asarray(indices, dtype=np.int64), j]


def without_test(ctx: TrainContext) -> TrainContext:
    """The same context with an empty test split: trainers then report NaN test metrics.

    A search trains every trial on this, so the test items are never seen until the best
    trial is evaluated once (with ``evaluate_model`` on the original context).
    """
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
    drop_rare_classes: bool = False,
    check_backbone: Callable[[Any], None] | None = None,
) -> TrainContext:
    """Load data, split it, load the backbone once, and set up the activation cache.

    ``cache_dir``: None for the default cache folder, False for no cache, or a path.
    ``split``: train/val/test fractions (``"0.3,0.5,0.2"`` or three numbers); None: 0.6/0.2/0.2.
    A class of the primary task with too few items for one in each part (advisor.data.min_per_class) is
    refused, or with ``drop_rare_classes`` left out with an advisor.errors.AdvisorWarning naming it.
    ``check_backbone(backbone)``: run on the backbone before the data loads (the backbone is then built
    first), e.g. a strategy's :meth:`advisor.strategies.Strategy.check_backbone`.
    """
    import copy
    import time

    from advisor.data import Preprocess, fit_to_split, load_dataset, parse_split, stratified_split
    from advisor.models import create_backbone, resolve_device

    fractions = parse_split(split)
    dev = resolve_device(device)
    pristine = None
    t_model = 0.0
    if check_backbone is not None:  # a strategy that cannot use this backbone fails before the data loads
        t = time.perf_counter()
        pristine = create_backbone(model, weights, device=str(dev), image_size=image_size)
        t_model = time.perf_counter() - t
        check_backbone(pristine)
    t0 = time.perf_counter()
    data = load_dataset(dataset, label_columns=label_columns, intermediate=intermediate, seed=seed)
    data = fit_to_split(data, fractions, drop_rare=drop_rare_classes)
    split = stratified_split(data.labels[:, data.tasks.index(data.primary_task)], seed=seed, fractions=fractions)
    t1 = time.perf_counter()
    if pristine is None:
        pristine = create_backbone(model, weights, device=str(dev), image_size=image_size)
        t_model = time.perf_counter() - t1
    timings = {"data": t1 - t0, "model": t_model}
    pre = Preprocess.from_config(pristine.preprocessing, image_size)
    cache = None
    if cache_dir is not False:
        from advisor.context.cache import ActivationCache, default_cache_dir

        cache = ActivationCache(cache_dir if cache_dir not in (None, True) else default_cache_dir())
    return TrainContext(dataset=data, split=split, backbone=pristine, make_backbone=lambda: copy.deepcopy(pristine),
                        preprocess=pre, device=dev, seed=seed, cache=cache, progress=progress, workers=workers,
                        timings=timings)


