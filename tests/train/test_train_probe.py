"""linear_probe and svm_early on frozen MobileNetV2 features of a small digits sample."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from advisor.context import TrainContext
from advisor.context.cache import ActivationCache
from advisor.data import Preprocess, load_dataset, stratified_split
from advisor.errors import AdvisorError
from advisor.models import create_backbone
from advisor.train import TrainingPruned, run_strategy
from advisor.train._probe import default_svm_block, run_linear_probe, run_svm_early


@pytest.fixture(scope="module")
def ctx():
    ds = load_dataset("digits:40")  # 400 items, 40 per class
    bb = create_backbone("mobilenet_v2")
    pp = bb.preprocessing
    pre = Preprocess.for_image_size(Preprocess(pp["resize_size"], pp["crop_size"], pp["mean"], pp["std"]), 32)
    split = stratified_split(ds.primary_labels, seed=0)
    return TrainContext(dataset=ds, split=split, backbone=bb, make_backbone=lambda: copy.deepcopy(bb),
                        preprocess=pre, device=torch.device("cpu"), seed=0)


@pytest.fixture(scope="module")
def lp(ctx):
    return run_linear_probe(ctx, {})


@pytest.fixture(scope="module")
def svm(ctx):
    return run_svm_early(ctx, {})


def same(a, b):
    """The same run twice (same items in the same batches, one thread): bit-identical, on any machine."""
    assert a.val_accuracy == b.val_accuracy and a.test_accuracy == b.test_accuracy
    assert a.val_macro_f1 == b.val_macro_f1 and a.test_macro_f1 == b.test_macro_f1
    assert a.trainable_params == b.trainable_params and a.params == b.params
    assert a.history[0].train_loss == b.history[0].train_loss


def agree(a, b, ctx):
    """Runs whose features come from different batchings (the cache runs the items in index order, a
    direct pass in train/val/test order): equal up to float32 round-off.

    Which kernel a convolution uses, and so its float32 summation order, may depend on the batch's
    shape and on the CPU: the pooled features then differ in their last bits (measured here: up to
    33 float32 ulps, 2e-6 of the feature scale, between batches of 1, 7 and 64).  Allow 1e-5.  In
    perturbation runs the probes' train loss moved by at most 3.5 times the relative feature change
    (6e-6 between batchings of 1 and 64; rtol=1e-6 would fail there), so rtol 1e-4 with a 3x margin;
    abs 1e-6 for a loss at 0 (separable data), where one margin can move by 1e-5.  A prediction within
    that of a decision boundary may flip (none did, at up to 1e-5): at most one item per split, which
    moves the accuracy by 1 / n and, changing at most two classes' F1 by at most 2 / (n_c + 1) each,
    the macro F1 by at most 4 / (C (n_min + 1)).
    """
    assert a.trainable_params == b.trainable_params and a.params == b.params
    assert a.history[0].train_loss == pytest.approx(b.history[0].train_loss, rel=1e-4, abs=1e-6)
    for part in ("val", "test"):
        y = ctx.labels(getattr(ctx.split, part))
        counts = np.bincount(y[y >= 0])
        counts = counts[counts > 0]                     # the classes macro F1 averages over
        acc_a, acc_b = getattr(a, f"{part}_accuracy"), getattr(b, f"{part}_accuracy")
        f1_a, f1_b = getattr(a, f"{part}_macro_f1"), getattr(b, f"{part}_macro_f1")
        assert abs(acc_a - acc_b) <= 1 / counts.sum() + 1e-12, (part, acc_a, acc_b)
        assert abs(f1_a - f1_b) <= 4 / (len(counts) * (counts.min() + 1)) + 1e-12, (part, f1_a, f1_b)


def test_linear_probe_learns_digits(lp):
    assert lp.strategy == "linear_probe"
    assert lp.val_accuracy > 0.6 and lp.test_accuracy > 0.6
    assert 0 < lp.val_macro_f1 <= 1 and 0 < lp.test_macro_f1 <= 1
    assert lp.params == {"C": 1.0, "max_iter": 1000}
    assert lp.trainable_params == 1280 * 10 + 10
    assert lp.extra["block"] == "conv_last" and lp.extra["feature_dim"] == 1280
    assert lp.extra["features_from_cache"] is False
    assert lp.extra["n_train"] == 240 and lp.extra["n_val"] == 80 and lp.extra["n_test"] == 80
    assert len(lp.history) == 1 and lp.history[0].epoch == 1
    assert lp.history[0].val_accuracy == lp.val_accuracy and lp.history[0].train_loss > 0
    assert lp.best_epoch == 0 and lp.wall_time > 0


def test_svm_early_learns_digits(svm):
    assert svm.strategy == "svm_early"
    assert svm.val_accuracy > 0.6 and svm.test_accuracy > 0.6
    assert default_svm_block(19) == 12
    assert svm.params == {"block": "ir12", "C": 0.1, "max_iter": 5000}
    assert svm.extra["block"] == "ir12" and svm.extra["feature_dim"] == 96
    assert svm.trainable_params == 96 * 10 + 10
    assert len(svm.history) == 1 and svm.history[0].train_loss >= 0


def test_deterministic_for_a_seed(ctx, svm):
    # (linear_probe: its cached runs below must equal the uncached fixture run)
    same(run_svm_early(ctx, {}), svm)
    same(run_svm_early(ctx, {"block": "ir4"}), run_svm_early(ctx, {"block": 4}))


def test_block_by_name_index_or_digit_string(ctx):
    by_name = run_svm_early(ctx, {"block": "ir8", "C": 0.5})
    same(run_svm_early(ctx, {"block": 8, "C": 0.5}), by_name)
    same(run_svm_early(ctx, {"block": "8", "C": 0.5}), by_name)
    assert by_name.extra["block"] == "ir8" and by_name.extra["feature_dim"] == 64


def test_cached_run_equals_uncached_run(ctx, lp, svm, tmp_path):
    cache = ActivationCache(tmp_path)
    cached = dataclasses.replace(ctx, cache=cache)
    first = run_linear_probe(cached, {})
    agree(first, lp, ctx)
    assert first.extra["features_from_cache"] is True
    assert cache.stats["computed"] == 400 and cache.stats["passes"] == 1
    second = run_strategy(cached, "linear_probe", {})  # through the entry point, on a fresh backbone copy
    same(second, first)                                 # both from the cache: the same features
    agree(second, lp, ctx)
    assert cache.stats["computed"] == 400 and cache.stats["served"] == 400
    agree(run_svm_early(cached, {}), svm, ctx)


def test_missing_labels_are_left_out(ctx):
    ds = copy.copy(ctx.dataset)
    ds.labels = ctx.dataset.labels.copy()
    ds._fingerprint = None
    ds.labels[ctx.split.train[:30], 0] = -1
    ds.labels[ctx.split.val[:5], 0] = -1
    res = run_svm_early(dataclasses.replace(ctx, dataset=ds), {})
    assert res.extra["n_train"] == 210 and res.extra["n_val"] == 75 and res.extra["n_test"] == 80
    assert res.val_accuracy > 0.6


def test_callback_called_once_and_may_prune(ctx):
    calls = []
    res = run_svm_early(ctx, {"block": "ir4"}, callback=lambda e, v: calls.append((e, v)))
    assert calls == [(1, res.val_accuracy)]

    def prune(epoch, value):
        raise TrainingPruned()

    with pytest.raises(TrainingPruned):
        run_svm_early(ctx, {"block": "ir4"}, callback=prune)


@pytest.mark.parametrize(
    "runner, params, words",
    [
        (run_linear_probe, {"C": 0}, ["C"]),
        (run_linear_probe, {"C": -1.0}, ["C"]),
        (run_linear_probe, {"C": "big"}, ["C"]),
        (run_linear_probe, {"C": float("nan")}, ["C"]),
        (run_linear_probe, {"max_iter": 0}, ["max_iter"]),
        (run_linear_probe, {"block": "ir3"}, ["block", "max_iter"]),  # linear_probe has no block
        (run_linear_probe, {"lr": 0.1}, ["lr", "C"]),
        (run_svm_early, {"C": 0.0}, ["C"]),
        (run_svm_early, {"block": "ir99"}, ["block", "ir99", "conv_last"]),
        (run_svm_early, {"block": 19}, ["block", "0..18"]),
        (run_svm_early, {"block": -1}, ["block", "0..18"]),
        (run_svm_early, {"block": 2.5}, ["block"]),
        (run_svm_early, {"epochs": 3}, ["epochs", "block"]),
    ],
)
def test_bad_params_raise_one_line(ctx, runner, params, words):
    with pytest.raises(AdvisorError) as err:
        runner(ctx, params)
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg
