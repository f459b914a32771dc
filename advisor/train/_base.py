"""What every trainer shares: the context it runs in, the per-epoch callback, its result and its scores
(:func:`accuracy`, :func:`macro_f1`; :func:`evaluate_model` scores a saved model the same way).

One entry point (``advisor.train.train``) dispatches to one trainer per strategy file
(``_probe.py``, ``_finetune.py``, ``_multitask.py``, ``_pipeline.py``). Each trainer is
a function ``run(ctx: TrainContext, params: dict, callback: EpochCallback | None) -> TrainResult``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


class TrainingPruned(Exception):
    """Raised by an epoch callback to stop a run early (a search pruner's decision)."""


# callback(epoch (1-based), validation metric (accuracy in [0, 1], of the primary task)).
# It may raise TrainingPruned; the trainer lets that propagate after releasing memory.
EpochCallback = Callable[[int, float], None]


@dataclass
class EpochRecord:
    epoch: int  # 1-based
    train_loss: float
    val_accuracy: float
    val_loss: float | None = None
    seconds: float = 0.0


@dataclass
class TrainResult:
    """The result of one training run. Accuracies and macro-F1 are fractions in [0, 1]."""

    strategy: str
    params: dict[str, Any]  # the parameters actually used, defaults filled in
    val_accuracy: float  # at the best epoch (early stopping picks it)
    test_accuracy: float  # evaluated once, with the best epoch's weights
    val_macro_f1: float
    test_macro_f1: float
    history: list[EpochRecord]
    wall_time: float  # seconds, whole run including feature extraction / cache reads
    trainable_params: int
    best_epoch: int = 0  # 0 for closed-form fits (probes)
    per_task: dict[str, dict[str, float]] = field(default_factory=dict)  # multi-task: task -> metrics
    extra: dict[str, Any] = field(default_factory=dict)  # strategy-specific (comparisons, learning curve)
    # the trained model as an advisor.deploy.model.TransferModel on the CPU (not serialised; its file:
    # advisor.deploy.modelfile)
    model: Any = field(default=None, repr=False, compare=False, metadata={"json": False})


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro-averaged F1 over the classes present in ``y_true`` (sklearn's definition)."""
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, average="macro", labels=np.unique(y_true), zero_division=0))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred))) if len(y_true) else float("nan")


def evaluate_model(model, ctx, indices, task: str | None = None, batch_size: int = 128) -> dict[str, float]:
    """Accuracy and macro-F1 of a :class:`~advisor.deploy.model.TransferModel` on dataset items ``indices`` of
    ``ctx`` (items with a label only).

    Runs on ``ctx.device`` in eval mode through the one inference loop
    (:func:`advisor.deploy.inference.run_model`); the images go through ``ctx.preprocess``.
    """
    from advisor.deploy.inference import run_model

    task = task or model.primary
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    y = ctx.labels(idx, task)
    idx, y = idx[y >= 0], y[y >= 0]
    if idx.size == 0:
        return {"accuracy": float("nan"), "macro_f1": float("nan"), "n": 0}

    def predicted(net, x) -> np.ndarray:
        return net.forward_all(x)[task].argmax(1).cpu().numpy()

    preds, _, _ = run_model(model, ctx.preprocess, idx.tolist(), ctx.dataset.load, predicted,
                            batch_size=batch_size, device=ctx.device)
    pred = np.concatenate(preds)
    return {"accuracy": accuracy(y, pred), "macro_f1": macro_f1(y, pred), "n": int(idx.size)}
