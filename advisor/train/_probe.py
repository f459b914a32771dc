"""Closed-form probes on frozen pooled features: ``linear_probe`` and ``svm_early``.

* ``linear_probe``: multinomial logistic regression (lbfgs) on the standardised pooled output of the
  *last* block. Parameters: ``C`` (inverse L2 strength), ``max_iter``.
* ``svm_early``: linear SVM (``LinearSVC``, squared hinge, one-vs-rest) on the standardised pooled output
  of an earlier block. Parameters: ``block`` (name or index; default the block at 2/3 depth, i.e.
  index ``ceil(2 n / 3) - 1``), ``C``, ``max_iter``.

Their types, bounds and defaults are declared once in :mod:`advisor.strategies`.

Features come from ``ctx.cache`` when it is set, else from one direct forward pass
(:func:`advisor.context.cache.extract`, the same code the cache fills itself with). Train, validation and
test features are extracted together in that one pass. Items whose primary label is missing (-1) are
left out of fitting and evaluation. The fit is one "epoch": ``history`` has one record and the epoch
callback is called once with the validation accuracy.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from advisor.context import TrainContext
from advisor.block_ref import block_index
from advisor.context.cache import extract
from advisor.deploy.model import from_probe
from advisor.errors import AdvisorError
from advisor.train._base import EpochCallback, EpochRecord, TrainResult, accuracy, macro_f1


# ---------------------------------------------------------------------------- params
def _params(strategy: str, params: dict | None, n_blocks: int) -> dict:
    """``params`` checked against the strategy's declaration in ``advisor.strategies``, defaults filled in."""
    from advisor import strategies

    return strategies.get(strategy).validate({} if params is None else params, n_blocks=n_blocks)


def default_svm_block(n_blocks: int) -> int:
    """Index of the block at 2/3 depth: ``ceil(2 n / 3) - 1``."""
    return max(0, min(n_blocks - 1, math.ceil(2 * n_blocks / 3) - 1))


def _svm_block(ctx: TrainContext, value) -> int:
    bb = ctx.backbone
    n = len(bb.block_names)
    if value is None:
        return default_svm_block(n)
    try:
        return block_index(value, bb.block_names, bb.name)
    except AdvisorError:
        raise AdvisorError(
            f"bad svm_early parameter block={value!r} for {bb.name}",
            f"use a block index 0..{n - 1} or a block name ({', '.join(bb.block_names)})",
        ) from None


# ---------------------------------------------------------------------------- data
def _labelled(ctx: TrainContext, indices) -> tuple[np.ndarray, np.ndarray]:
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    y = ctx.labels(idx)
    keep = y >= 0
    return idx[keep], y[keep]


def _features(ctx: TrainContext, block: int, parts: list[np.ndarray]) -> tuple[list[np.ndarray], bool]:
    """Pooled features of ``block`` for each index array in ``parts``, from one pass (cache or direct)."""
    allidx = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if ctx.cache is not None:
        feats = ctx.cache.pooled(ctx, block, allidx)
        from_cache = True
    else:
        feats = extract(ctx, allidx, pooled=(block,))[0][block]
        from_cache = False
    out, start = [], 0
    for p in parts:
        out.append(np.asarray(feats[start : start + len(p)], dtype=np.float64))
        start += len(p)
    return out, from_cache


def _metrics(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    if not len(y):
        return float("nan"), float("nan")
    return accuracy(y, pred), macro_f1(y, pred)


# ---------------------------------------------------------------------------- core
def _run(ctx: TrainContext, strategy: str, params: dict, block: int, make_model, loss_fn,
         callback: EpochCallback | None) -> TrainResult:
    from sklearn.preprocessing import StandardScaler

    t0 = time.perf_counter()
    tr_idx, y_tr = _labelled(ctx, ctx.split.train)
    va_idx, y_va = _labelled(ctx, ctx.split.val)
    te_idx, y_te = _labelled(ctx, ctx.split.test)
    classes = np.unique(y_tr)
    if classes.size < 2:
        raise AdvisorError(
            f"{strategy} needs at least two classes among the labelled training items, found {classes.size}",
            "add labelled images of more classes (or use a larger dataset)",
        )
    (x_tr, x_va, x_te), from_cache = _features(ctx, block, [tr_idx, va_idx, te_idx])
    t_feat = time.perf_counter() - t0

    t1 = time.perf_counter()
    scaler = StandardScaler().fit(x_tr)
    x_tr, x_va, x_te = (scaler.transform(x) if len(x) else x for x in (x_tr, x_va, x_te))
    model = make_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x_tr, y_tr)
    converged = not any("converge" in str(w.message).lower() for w in caught)
    train_loss = loss_fn(model, x_tr, y_tr)
    t_fit = time.perf_counter() - t1

    val_acc, val_f1 = _metrics(y_va, model.predict(x_va) if len(x_va) else np.zeros(0, np.int64))
    val_loss = loss_fn(model, x_va, y_va) if len(x_va) else None
    seconds = time.perf_counter() - t0
    history = [EpochRecord(epoch=1, train_loss=float(train_loss), val_accuracy=val_acc,
                           val_loss=None if val_loss is None or not math.isfinite(val_loss) else float(val_loss),
                           seconds=seconds)]
    if callback is not None:
        callback(1, val_acc)
    test_acc, test_f1 = _metrics(y_te, model.predict(x_te) if len(x_te) else np.zeros(0, np.int64))

    return TrainResult(
        strategy=strategy,
        params=params,
        val_accuracy=val_acc,
        test_accuracy=test_acc,
        val_macro_f1=val_f1,
        test_macro_f1=test_f1,
        history=history,
        wall_time=time.perf_counter() - t0,
        trainable_params=int(model.coef_.size + np.size(model.intercept_)),
        best_epoch=0,
        extra={
            "block": ctx.backbone.block_names[block],
            "block_index": block,
            "feature_dim": int(x_tr.shape[1]),
            "features_from_cache": from_cache,
            "n_train": int(len(y_tr)),
            "n_val": int(len(y_va)),
            "n_test": int(len(y_te)),
            "converged": converged,
            "seconds_features": t_feat,
            "seconds_fit": t_fit,
        },
        model=from_probe(ctx.backbone, block, scaler, model, ctx.dataset.primary_task,
                         len(ctx.dataset.classes[ctx.dataset.primary_task])),
    )


def _safe_loss(fn):
    """A loss that is NaN instead of an error when the labels hold classes the model never saw."""

    def wrapped(model, x, y):
        if not len(y) or not np.isin(y, model.classes_).all():
            return float("nan")
        return float(fn(model, x, y))

    return wrapped


@_safe_loss
def _log_loss(model, x, y):
    from sklearn.metrics import log_loss

    return log_loss(y, model.predict_proba(x), labels=model.classes_)


@_safe_loss
def _hinge(model, x, y):
    from sklearn.metrics import hinge_loss

    return hinge_loss(y, model.decision_function(x), labels=model.classes_)


# ---------------------------------------------------------------------------- entry points
def run_linear_probe(ctx: TrainContext, params: dict, callback: EpochCallback | None = None) -> TrainResult:
    """Logistic regression on the last block's standardised pooled features (see module docstring)."""
    from sklearn.linear_model import LogisticRegression

    p = _params("linear_probe", params, len(ctx.backbone.block_names))
    C, max_iter = p["C"], p["max_iter"]
    used = {"C": C, "max_iter": max_iter}
    block = len(ctx.backbone.block_names) - 1

    def make():
        return LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter, random_state=ctx.seed)

    return _run(ctx, "linear_probe", used, block, make, _log_loss, callback)


def run_svm_early(ctx: TrainContext, params: dict, callback: EpochCallback | None = None) -> TrainResult:
    """Linear SVM on an earlier block's standardised pooled features (see module docstring)."""
    from sklearn.svm import LinearSVC

    p = _params("svm_early", params, len(ctx.backbone.block_names))
    block = _svm_block(ctx, p["block"])
    C, max_iter = p["C"], p["max_iter"]
    used = {"block": ctx.backbone.block_names[block], "C": C, "max_iter": max_iter}

    def make():
        return LinearSVC(C=C, max_iter=max_iter, random_state=ctx.seed)

    return _run(ctx, "svm_early", used, block, make, _hinge, callback)
