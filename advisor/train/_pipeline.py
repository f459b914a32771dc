"""Pipeline vs end-to-end, for data with an intermediate label ``z`` in ``x -> z -> y``.

* **pipeline**: stage 1 fine-tunes a fresh backbone (top ``k`` blocks) with one head for ``z``
  (``x -> z``); stage 2 is a scikit-learn ``LogisticRegression`` for ``z -> y``. Stage 2 is
  fitted on the *true* ``z`` of the train items as one-hot vectors (``stage2_input="true"``,
  the default): it costs no extra networks, learns the ``z -> y`` map exactly when ``y`` is a
  function of ``z``, and cannot overfit to stage 1's in-sample confidence. At prediction time
  it reads stage 1's predicted ``z`` probabilities, so its scores are a probability-weighted
  vote of the ``z -> y`` map. ``stage2_input="predicted"`` fits it on stage 1's (in-sample)
  predicted probabilities of the train items instead. Out-of-fold stage-1 predictions would
  be the principled middle ground but cost one network per fold, so they are not offered.
* **end-to-end**: a fresh backbone (top ``k`` blocks) with one head for ``y`` (``x -> y``).

Both are evaluated on the same items: the validation and test items of ``ctx.split`` whose
final label is known. The winner is the approach with the higher validation accuracy (a tie
goes to end-to-end, which needs no ``z`` labels); its metrics are the result's top-level
metrics. A learning curve (both approaches on growing stratified fractions of the train split,
a power law per approach) estimates whether more data would change the winner.

Parameters (``params``): the network parameters of ``last_k``, passed to both networks (``k``
defaults to 2), plus ``stage2_input`` ("true" | "predicted"), ``stage2_C`` (stage 2's inverse
regularisation), ``learning_curve`` and ``curve_fractions``; their types, bounds and defaults are
declared once in :mod:`advisor.strategies` (``_pipeline.py``).

The epoch callback sees the end-to-end network's epochs (validation accuracy of ``y``, the
primary task); it is not called for stage 1 (whose metric is ``z``) nor for learning-curve runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time

import numpy as np

from advisor.context import TrainContext
from advisor.errors import AdvisorError
from advisor.train._base import EpochCallback, TrainResult, accuracy, macro_f1

STRATEGY = "pipeline_vs_end_to_end"
PIPELINE, END_TO_END = "pipeline", "end_to_end"

_NETWORK_KEYS = ("head_lr", "lr_ratio", "layer_decay", "weight_decay", "epochs", "batch_size", "patience",
                 "warmup_epochs", "rate_warmup", "clip_grad", "augment")


def _check_params(params: dict | None, n_blocks: int, family: str = "cnn") -> dict:
    """The parameters as declared in ``advisor.strategies`` (``k`` defaults to 2), defaults filled in
    (those of the fine-tuning recipe from the backbone's ``family``)."""
    from advisor.train._network import parse_network_params

    return parse_network_params(params or {}, strategy=STRATEGY, n_blocks=n_blocks, family=family)


def _indices_sha1(idx: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(idx, dtype="<i8").tobytes()).hexdigest()


def _fresh(ctx: TrainContext) -> TrainContext:
    return dataclasses.replace(ctx, backbone=ctx.make_backbone())


def _proba(net, indices: np.ndarray, task: str, n_classes: int) -> np.ndarray:
    if indices.size == 0:
        return np.zeros((0, n_classes))
    p = np.asarray(net.predict_proba(indices)[task], dtype=np.float64)
    if p.shape[1] < n_classes:  # defensive: pad classes a head does not produce
        p = np.concatenate([p, np.zeros((p.shape[0], n_classes - p.shape[1]))], axis=1)
    return p


class _Stage2:
    """``z -> y``: logistic regression on z probability vectors (or a constant with one class)."""

    def __init__(self, features: np.ndarray, y: np.ndarray, n_y: int, C: float, seed: int):
        self.n_y = n_y
        self.constant = None
        self.model = None
        present = np.unique(y)
        if present.size < 2:
            self.constant = int(present[0])
            self.params = 0
            return
        from sklearn.linear_model import LogisticRegression

        self.model = LogisticRegression(C=C, max_iter=2000, random_state=seed)
        self.model.fit(features, y)
        self.params = int(self.model.coef_.size + self.model.intercept_.size)

    def predict_proba(self, pz: np.ndarray) -> np.ndarray:
        out = np.zeros((pz.shape[0], self.n_y))
        if self.constant is not None:
            out[:, self.constant] = 1.0
        elif pz.shape[0]:
            out[:, self.model.classes_] = self.model.predict_proba(pz)
        return out


def _metrics(truth: np.ndarray, proba: np.ndarray, prefix: str) -> dict[str, float]:
    pred = proba.argmax(axis=1) if proba.shape[0] else np.zeros(0, np.int64)
    return {f"{prefix}_accuracy": accuracy(truth, pred), f"{prefix}_macro_f1": macro_f1(truth, pred)
            if truth.size else float("nan")}


class _Runner:
    """Fits both approaches on (part of) the train split and evaluates them on fixed val/test items."""

    def __init__(self, ctx: TrainContext, p: dict):
        ds = ctx.dataset
        self.ctx, self.p = ctx, p
        self.z, self.y = ds.intermediate, ds.primary_task
        self.zl, self.yl = ds.task_labels(self.z), ds.task_labels(self.y)
        self.n_z, self.n_y = len(ds.classes[self.z]), len(ds.classes[self.y])
        split = ctx.split
        self.train = np.asarray(split.train, dtype=np.int64)
        val = np.asarray(split.val, dtype=np.int64)
        test = np.asarray(split.test, dtype=np.int64)
        self.val_y, self.test_y = val[self.yl[val] >= 0], test[self.yl[test] >= 0]
        self.val_z, self.test_z = val[self.zl[val] >= 0], test[self.zl[test] >= 0]
        for what, idx, label in (("validation", self.val_y, self.y), ("test", self.test_y, self.y),
                                 ("validation", self.val_z, self.z)):
            if idx.size == 0 and not (what == "test" and test.size == 0):  # a search holds the test split out
                raise AdvisorError(
                    f"no {label!r} labels in the {what} split of {ds.name}",
                    f"label more items with {label!r} (or use a larger dataset)",
                )
        self.net_kw = {key: p[key] for key in _NETWORK_KEYS}

    def _fit(self, tasks, train_idx, val_idx, callback, stage):
        from advisor.train._loop import fit_network

        # every fit starts from the pretrained weights (fit_network seeds torch itself)
        return fit_network(_fresh(self.ctx), tasks, train_idx, val_idx, k=self.p["k"], callback=callback,
                           progress_stage=stage, **self.net_kw)

    def end_to_end(self, train_idx: np.ndarray, callback: EpochCallback | None = None, stage: str = "",
                   keep: bool = False) -> dict:
        t = time.perf_counter()
        ty = train_idx[self.yl[train_idx] >= 0]
        if np.unique(self.yl[ty]).size < 2:
            raise AdvisorError(f"fewer than two {self.y!r} classes among the training items",
                               "use a larger dataset or a larger learning-curve fraction")
        net = self._fit([self.y], ty, self.val_y, callback, f"{stage}end-to-end (x -> y)")
        out = {
            **_metrics(self.yl[self.val_y], _proba(net, self.val_y, self.y, self.n_y), "val"),
            **_metrics(self.yl[self.test_y], _proba(net, self.test_y, self.y, self.n_y), "test"),
            "best_epoch": int(net.best_epoch),
            "trainable_params": int(net.trainable_params),
            "n_train": int(ty.size),
            "history": list(net.history),
        }
        if keep:
            from advisor.train._network import from_fitted

            out["model"] = from_fitted(net)
        del net
        out["seconds"] = time.perf_counter() - t
        return out

    def pipeline(self, train_idx: np.ndarray, stage: str = "", keep: bool = False) -> dict:
        t = time.perf_counter()
        tz = train_idx[self.zl[train_idx] >= 0]
        if np.unique(self.zl[tz]).size < 2:
            raise AdvisorError(f"fewer than two {self.z!r} classes among the training items",
                               f"label more items with the intermediate label {self.z!r}")
        net = self._fit([self.z], tz, self.val_z, None, f"{stage}pipeline stage 1 (x -> z)")
        # stage 2 on the items with both labels
        rows = train_idx[(self.zl[train_idx] >= 0) & (self.yl[train_idx] >= 0)]
        if rows.size == 0:
            raise AdvisorError(f"no training item has both {self.z!r} and {self.y!r} labels",
                               "label some items with both the intermediate and the final label")
        if self.p["stage2_input"] == "true":
            from scipy.sparse import csr_matrix  # one-hot, sparse: z may have many classes

            feats = csr_matrix((np.ones(rows.size), (np.arange(rows.size), self.zl[rows])),
                               shape=(rows.size, self.n_z))
        else:
            feats = _proba(net, rows, self.z, self.n_z)
        stage2 = _Stage2(feats, self.yl[rows], self.n_y, self.p["stage2_C"], self.ctx.seed)
        val_items = np.union1d(self.val_y, self.val_z)
        test_items = np.union1d(self.test_y, self.test_z)
        pz_val = _proba(net, val_items, self.z, self.n_z)
        pz_test = _proba(net, test_items, self.z, self.n_z)

        def rows_of(items, subset):
            return np.searchsorted(items, subset)

        vy, ty_ = rows_of(val_items, self.val_y), rows_of(test_items, self.test_y)
        vz, tz_ = rows_of(val_items, self.val_z), rows_of(test_items, self.test_z)
        out = {
            **_metrics(self.yl[self.val_y], stage2.predict_proba(pz_val[vy]), "val"),
            **_metrics(self.yl[self.test_y], stage2.predict_proba(pz_test[ty_]), "test"),
            "stage1_val_accuracy": accuracy(self.zl[self.val_z], pz_val[vz].argmax(1)),
            "stage1_test_accuracy": accuracy(self.zl[self.test_z], pz_test[tz_].argmax(1))
            if tz_.size else float("nan"),
            "best_epoch": int(net.best_epoch),
            "trainable_params": int(net.trainable_params) + stage2.params,
            "stage2_params": stage2.params,
            "n_train": int(tz.size),
            "n_train_stage2": int(rows.size),
            "history": list(net.history),
        }
        if keep:
            out["model"] = self._composed(net, stage2)
        del net
        out["seconds"] = time.perf_counter() - t
        return out

    def _composed(self, net, stage2: _Stage2):
        """Stage 1's network with a ``z`` head followed by softmax and stage 2's linear map, as one module."""
        import copy

        import torch
        from torch import nn

        from advisor.deploy.model import linear_from_sklearn
        from advisor.train._network import from_fitted

        if stage2.model is not None:
            lin = linear_from_sklearn(stage2.model, self.n_y)
        else:
            lin = nn.Linear(self.n_z, self.n_y)
            with torch.no_grad():
                lin.weight.zero_()
                lin.bias.fill_(-1e4)
                lin.bias[stage2.constant] = 0.0
        head = nn.Sequential(copy.deepcopy(net.net.heads[0]).cpu(), nn.Softmax(dim=1), lin)
        return from_fitted(net, heads={self.y: head}, primary=self.y)

    def _eval_record(self, res: dict) -> dict:
        rec = {k: v for k, v in res.items() if k not in ("history", "model")}
        rec["n_val"], rec["n_test"] = int(self.val_y.size), int(self.test_y.size)
        rec["test_indices_sha1"] = _indices_sha1(self.test_y)
        return rec


def run_pipeline_vs_end_to_end(ctx: TrainContext, params: dict | None = None,
                               callback: EpochCallback | None = None) -> TrainResult:
    """Compare ``x -> z -> y`` (two stages) with ``x -> y`` (one network) on the same split; see the module doc."""
    t0 = time.perf_counter()
    ds = ctx.dataset
    if ds.intermediate is None:
        raise AdvisorError(
            f"strategy {STRATEGY} needs an intermediate label, and dataset {ds.name} has none",
            "mark one label column as the intermediate label z of x -> z -> y with --intermediate COL "
            "(intermediate=COL in the API), or try the example dataset fashion-chain",
        )
    p = _check_params(params, len(ctx.backbone.blocks), ctx.backbone.layout.family)
    run = _Runner(ctx, p)

    e2e = run.end_to_end(run.train, callback, keep=True)
    pipe = run.pipeline(run.train, keep=True)
    results = {PIPELINE: pipe, END_TO_END: e2e}
    winner = PIPELINE if pipe["val_accuracy"] > e2e["val_accuracy"] else END_TO_END

    curve = None
    if p["learning_curve"]:
        from advisor.train._learning_curve import learning_curves

        def run_fn(sub: np.ndarray) -> dict[str, float] | None:
            if sub.size == run.train.size:  # the full split: reuse the runs above
                got = results
            else:
                stage = f"learning curve n={sub.size}: "
                try:
                    got = {PIPELINE: run.pipeline(sub, stage), END_TO_END: run.end_to_end(sub, stage=stage)}
                except AdvisorError:  # e.g. a small fraction without two classes: leave the point out
                    return None
            return {k: 1.0 - got[k]["val_accuracy"] for k in (PIPELINE, END_TO_END)}

        curve = learning_curves(run_fn, p["curve_fractions"], run.train, labels=run.yl[run.train], seed=ctx.seed)
        curve["error"] = "validation error (1 - validation accuracy of the final label)"

    best = results[winner]
    extra = {
        PIPELINE: run._eval_record(pipe),
        END_TO_END: run._eval_record(e2e),
        "winner": winner,
        "learning_curve": curve,
        "intermediate": run.z,
        "final": run.y,
        "stage2_input": p["stage2_input"],
        "test_indices": run.test_y.tolist(),
        "history_of": "pipeline stage 1 (x -> z; val_accuracy is of z)" if winner == PIPELINE
        else "end-to-end network (x -> y)",
    }
    keys = ("val_accuracy", "test_accuracy", "val_macro_f1", "test_macro_f1")
    per_task = {
        run.y: {k: best[k] for k in keys},
        run.z: {"val_accuracy": pipe["stage1_val_accuracy"], "test_accuracy": pipe["stage1_test_accuracy"]},
    }
    params_used = dict(p)
    return TrainResult(
        strategy=STRATEGY,
        params=params_used,
        val_accuracy=best["val_accuracy"],
        test_accuracy=best["test_accuracy"],
        val_macro_f1=best["val_macro_f1"],
        test_macro_f1=best["test_macro_f1"],
        history=best["history"],
        wall_time=time.perf_counter() - t0,
        trainable_params=best["trainable_params"],
        best_epoch=best["best_epoch"],
        per_task=per_task,
        extra=extra,
        model=best["model"],
    )
