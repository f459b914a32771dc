"""pipeline_vs_end_to_end and its learning curves (power-law fit, crossing estimate)."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from advisor.errors import AdvisorError
from advisor.train._learning_curve import (
    compare_curves,
    crossing_point,
    extrapolate,
    fit_power_law,
    learning_curves,
)

HAVE_FASHION = (Path("/usr/share/datasets/fashion-mnist") / "t10k-images-idx3-ubyte.gz").is_file()
needs_fashion = pytest.mark.skipif(not HAVE_FASHION, reason="Debian's Fashion-MNIST is absent")


# ------------------------------------------------------------------ power law
@pytest.mark.parametrize("abc", [(2.0, 0.5, 0.05), (5.0, 0.8, 0.0), (0.3, 0.3, 0.1), (50.0, 1.2, 0.02)])
def test_fit_power_law_recovers_noiseless(abc):
    n = np.array([100, 200, 400, 800, 1600, 3200], dtype=float)
    err = extrapolate(abc, n)
    a, b, c = fit_power_law(n, err)
    assert a == pytest.approx(abc[0], rel=1e-3)
    assert b == pytest.approx(abc[1], rel=1e-3, abs=1e-4)
    assert c == pytest.approx(abc[2], abs=1e-4)


def test_fit_power_law_three_points_and_noise():
    n = np.array([250, 500, 1000], dtype=float)
    a, b, c = fit_power_law(n, extrapolate((3.0, 0.5, 0.02), n))
    assert (a, b, c) == pytest.approx((3.0, 0.5, 0.02), rel=1e-3, abs=1e-4)
    rng = np.random.default_rng(0)
    n = np.geomspace(100, 10000, 8)
    noisy = extrapolate((2.0, 0.5, 0.05), n) + rng.normal(0, 0.002, n.size)
    a, b, c = fit_power_law(n, noisy)
    assert b >= 0 and c >= 0 and a >= 0
    assert extrapolate((a, b, c), 20000) == pytest.approx(extrapolate((2.0, 0.5, 0.05), 20000), abs=0.01)


def test_fit_power_law_few_points_falls_back():
    assert fit_power_law([100], [0.3]) == (0.0, 0.0, 0.3)
    a, b, c = fit_power_law([100, 400], [0.4, 0.2])  # c = 0, the line through both in log-log
    assert (a, b, c) == pytest.approx((4.0, 0.5, 0.0))
    assert fit_power_law([100, 400], [0.2, 0.3]) == pytest.approx((0.0, 0.0, 0.25))  # rising: flat
    assert fit_power_law([100, 200, 400], [0.3, 0.3, 0.3]) == pytest.approx((0.0, 0.0, 0.3))
    assert fit_power_law([100, 200, float("nan")], [0.3, 0.2, 0.1])[1] > 0  # NaN point ignored
    with pytest.raises(AdvisorError):
        fit_power_law([], [])
    with pytest.raises(AdvisorError):
        fit_power_law([1, 2], [0.1])


def test_crossing_point_analytic():
    # a * n^-b meets the flat c at n* = (a / c)^(1 / b) = 100
    assert crossing_point((1.0, 0.5, 0.0), (0.0, 0.0, 0.1), 10, 1e6) == pytest.approx(100.0, rel=1e-6)
    assert crossing_point((1.0, 0.5, 0.0), (0.0, 0.0, 0.1), 200, 1e6) is None  # already crossed
    assert crossing_point((1.0, 0.5, 0.1), (1.0, 0.5, 0.2), 10, 1e6) is None  # parallel


def test_compare_curves_more_data_changes_winner():
    # pipeline: better now but nearly flat; end-to-end: worse now, falls fast
    pipe, e2e = (0.05, 0.1, 0.08), (5.0, 0.5, 0.0)
    expected = math.exp(brentq(lambda L: extrapolate(pipe, math.exp(L)) - extrapolate(e2e, math.exp(L)),
                               math.log(1000), math.log(1e7)))
    n = np.array([250, 500, 1000], dtype=float)
    out = compare_curves(n, {"pipeline": extrapolate(pipe, n), "end_to_end": extrapolate(e2e, n)}, 1000)
    assert out["winner_now"] == "pipeline"
    assert out["crossing_n"] == pytest.approx(expected, rel=0.01)
    assert 1000 < expected < 10000
    assert out["winner_10x"] == "end_to_end" and out["winner_after_crossing"] == "end_to_end"
    assert out["more_data_changes_winner"] is True
    for k in ("pipeline", "end_to_end"):
        assert set(out["predicted_error"][k]) == {"now", "2x", "10x"}
        assert out["predicted_error"][k]["10x"] <= out["predicted_error"][k]["now"]
    # no crossing: the winner stays
    out = compare_curves(n, {"pipeline": extrapolate((3, 0.5, 0.02), n),
                             "end_to_end": extrapolate((0.5, 0.2, 0.05), n)}, 1000)
    assert out["crossing_n"] is None and out["more_data_changes_winner"] is False
    assert out["winner_now"] == out["winner_10x"] == "pipeline"


def test_learning_curves_stratified_fractions():
    labels = np.repeat([0, 1, 2, 3], [400, 300, 200, 100])
    train_idx = np.arange(5000, 6000)  # dataset indices of the train split
    seen = []
    pipe, e2e = (0.05, 0.1, 0.08), (5.0, 0.5, 0.0)

    def run_fn(sub):
        seen.append(sub)
        return {"pipeline": extrapolate(pipe, sub.size), "end_to_end": extrapolate(e2e, sub.size)}

    out = learning_curves(run_fn, (1.0, 0.25, 0.5, 0.5), train_idx, labels=labels, seed=0)
    assert out["fractions"] == [0.25, 0.5, 1.0]
    assert out["n"] == [250, 500, 1000] == [s.size for s in seen]
    for sub in seen:
        assert np.isin(sub, train_idx).all() and np.unique(sub).size == sub.size
        counts = np.bincount(labels[sub - 5000], minlength=4) / sub.size
        np.testing.assert_allclose(counts, [0.4, 0.3, 0.2, 0.1], atol=0.01)
    assert out["current_n"] == 1000
    assert out["crossing_n"] is not None and out["more_data_changes_winner"]
    assert out["fits"]["end_to_end"]["b"] == pytest.approx(0.5, rel=1e-3)
    with pytest.raises(AdvisorError):
        learning_curves(run_fn, (0.0, 1.0), train_idx)


def test_learning_curves_leave_out_failed_points():
    def run_fn(sub):
        if sub.size < 300:
            return None  # e.g. too few items of some class to train on
        return {"a": extrapolate((2.0, 0.5, 0.0), sub.size), "b": extrapolate((0.0, 0.0, 0.05), sub.size)}

    out = learning_curves(run_fn, (0.1, 0.5, 1.0), np.arange(1000))
    assert out["fractions"] == [0.5, 1.0] and out["skipped_fractions"] == [0.1]
    assert out["n"] == [500, 1000]
    assert out["fits"]["a"]["b"] == pytest.approx(0.5)  # two points: c = 0, exact in log-log
    assert out["crossing_n"] == pytest.approx(1600.0, rel=1e-6)  # 2 / sqrt(n) = 0.05
    assert out["winner_now"] == "b" and out["winner_10x"] == "a" and out["more_data_changes_winner"]
    with pytest.raises(AdvisorError, match="no learning-curve point"):
        learning_curves(lambda sub: None, (0.5, 1.0), np.arange(10))


# ------------------------------------------------------------------ the strategy


def _context(ds, image_size=32, seed=0):
    from advisor.context import TrainContext
    from advisor.data import Preprocess, stratified_split
    from advisor.models import create_backbone

    pristine = create_backbone("mobilenet_v2")
    pp = pristine.preprocessing
    pre = Preprocess.for_image_size(Preprocess(pp["resize_size"], pp["crop_size"], pp["mean"], pp["std"]),
                                    image_size)
    split = stratified_split(ds.primary_labels, seed=seed)
    return TrainContext(dataset=ds, split=split, backbone=pristine, make_backbone=lambda: copy.deepcopy(pristine),
                        preprocess=pre, device=torch.device("cpu"), seed=seed, cache=None)


def _sha1(idx):
    return hashlib.sha1(np.ascontiguousarray(idx, dtype="<i8").tobytes()).hexdigest()


def test_needs_an_intermediate_label():
    from advisor.context import TrainContext
    from advisor.data import ArrayDataset
    from advisor.train._pipeline import run_pipeline_vs_end_to_end

    ds = ArrayDataset("plain", np.zeros((6, 8, 8), np.uint8), np.array([0, 1] * 3))
    ctx = TrainContext(dataset=ds, split=None, backbone=None, make_backbone=lambda: None, preprocess=None,
                       device=torch.device("cpu"))
    with pytest.raises(AdvisorError) as info:
        run_pipeline_vs_end_to_end(ctx, {})
    msg = str(info.value)
    assert "intermediate" in msg and "--intermediate COL" in msg and "\n" not in msg


@pytest.fixture(scope="module")
def tiny_chain_ctx():
    from advisor.data import load_dataset

    return _context(load_dataset("fashion-chain:5"))


@needs_fashion
@pytest.mark.parametrize("params, fragment", [
    ({"curve_fractions": [0.0, 1.0]}, "curve_fractions"),
    ({"stage2_input": "oof"}, "stage2_input"),
    ({"stage2_C": -1}, "stage2_C"),
    ({"learning_curve": "yes"}, "learning_curve"),
    ({"k": 0}, "k=0"),
    ({"epoch": 2}, "unknown parameter 'epoch'"),
])
def test_bad_params(params, fragment, tiny_chain_ctx):
    from advisor.train._pipeline import run_pipeline_vs_end_to_end

    with pytest.raises(AdvisorError, match=fragment) as info:
        run_pipeline_vs_end_to_end(tiny_chain_ctx, params)
    assert "\n" not in str(info.value) and "; " in str(info.value)


@pytest.fixture(scope="module")
def chain_run(one_thread):
    from advisor.data import load_dataset
    from advisor.train import run_strategy

    ds = load_dataset("fashion-chain:134")
    assert len(ds) == 402
    ctx = _context(ds)
    before = {k: v.clone() for k, v in ctx.backbone.state_dict().items()}
    calls = []
    result = run_strategy(ctx, "pipeline_vs_end_to_end", {"k": 2, "epochs": 2},
                          callback=lambda epoch, acc: calls.append((epoch, acc)))
    return ctx, result, calls, before


@needs_fashion
def test_pipeline_vs_end_to_end_same_test_items(chain_run):
    ctx, r, calls, _ = chain_run
    ex = r.extra
    assert r.strategy == "pipeline_vs_end_to_end"
    assert ex["intermediate"] == "z" and ex["final"] == "y"
    test = np.asarray(ctx.split.test)
    assert ex["test_indices"] == test.tolist()
    pipe, e2e = ex["pipeline"], ex["end_to_end"]
    for rec in (pipe, e2e):
        assert rec["n_test"] == test.size and rec["n_val"] == len(ctx.split.val)
        assert rec["test_indices_sha1"] == _sha1(test)
        for key in ("val_accuracy", "test_accuracy", "val_macro_f1", "test_macro_f1"):
            assert 0.0 <= rec[key] <= 1.0
        assert 1 <= rec["best_epoch"] <= 2 and rec["trainable_params"] > 0
        assert rec["n_train"] == len(ctx.split.train)
    assert 0.0 <= pipe["stage1_val_accuracy"] <= 1.0 and 0.0 <= pipe["stage1_test_accuracy"] <= 1.0
    assert pipe["stage2_params"] == 100 * 3 + 3
    # the winner (by validation accuracy) is reported at the top level
    assert ex["winner"] in ("pipeline", "end_to_end")
    win = ex[ex["winner"]]
    other = ex["end_to_end" if ex["winner"] == "pipeline" else "pipeline"]
    assert win["val_accuracy"] >= other["val_accuracy"]
    assert (r.val_accuracy, r.test_accuracy, r.val_macro_f1, r.test_macro_f1) == (
        win["val_accuracy"], win["test_accuracy"], win["val_macro_f1"], win["test_macro_f1"])
    assert r.best_epoch == win["best_epoch"] and r.trainable_params == win["trainable_params"]
    assert 1 <= len(r.history) <= 2
    assert r.per_task["y"]["test_accuracy"] == r.test_accuracy
    assert r.per_task["z"]["val_accuracy"] == pipe["stage1_val_accuracy"]
    assert r.params["k"] == 2 and r.params["epochs"] == 2 and r.params["curve_fractions"] == [0.25, 0.5, 1.0]
    # the callback saw the end-to-end network's epochs only
    assert [e for e, _ in calls] == list(range(1, len(calls) + 1)) and 1 <= len(calls) <= 2
    assert r.wall_time > 0


@needs_fashion
def test_pipeline_learning_curve_fields(chain_run):
    ctx, r, _, _ = chain_run
    lc = r.extra["learning_curve"]
    n_train = len(ctx.split.train)
    assert lc["fractions"] == [0.25, 0.5, 1.0]
    assert lc["n"][-1] == n_train == lc["current_n"] and lc["n"] == sorted(lc["n"])
    for k in ("pipeline", "end_to_end"):
        assert len(lc["errors"][k]) == 3
        assert all(0 <= e <= 1 for e in lc["errors"][k])
        fit = lc["fits"][k]
        assert fit["a"] >= 0 and fit["b"] >= 0 and fit["c"] >= 0
        assert set(lc["predicted_error"][k]) == {"now", "2x", "10x"}
    # the full-data point is the main run's validation error
    assert lc["errors"]["pipeline"][-1] == pytest.approx(1 - r.extra["pipeline"]["val_accuracy"])
    assert lc["errors"]["end_to_end"][-1] == pytest.approx(1 - r.extra["end_to_end"]["val_accuracy"])
    assert "crossing_n" in lc and isinstance(lc["more_data_changes_winner"], bool)
    assert lc["skipped_fractions"] == []
    assert lc["winner_now"] in ("pipeline", "end_to_end") and lc["winner_10x"] in ("pipeline", "end_to_end")


@needs_fashion
def test_pipeline_result_is_json_and_backbone_untouched(chain_run):
    from advisor.serialize import to_dict

    ctx, r, _, before = chain_run
    json.dumps(to_dict(r), allow_nan=False)
    after = ctx.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@needs_fashion
def test_pipeline_missing_intermediate_labels_and_predicted_stage2(one_thread):
    from advisor.data import ArrayDataset, load_dataset
    from advisor.train._pipeline import run_pipeline_vs_end_to_end

    base = load_dataset("fashion-chain:40")
    labels = base.labels.copy()
    labels[np.random.default_rng(0).choice(len(base), 30, replace=False), 0] = -1  # hide some z
    ds = ArrayDataset("chain-missing-z", base.images, labels, tasks=base.tasks, classes=base.classes,
                      intermediate="z")
    ctx = _context(ds)
    r = run_pipeline_vs_end_to_end(ctx, {"k": 1, "epochs": 1, "learning_curve": False,
                                         "stage2_input": "predicted"})
    pipe, e2e = r.extra["pipeline"], r.extra["end_to_end"]
    train = np.asarray(ctx.split.train)
    assert e2e["n_train"] == train.size
    assert pipe["n_train"] == pipe["n_train_stage2"] == int((labels[train, 0] >= 0).sum()) < train.size
    assert pipe["test_indices_sha1"] == e2e["test_indices_sha1"]
    assert r.extra["learning_curve"] is None and r.extra["stage2_input"] == "predicted"


@needs_fashion
def test_the_winner_exports_as_one_module_with_its_test_accuracy(chain_run):
    from advisor.data import TorchView

    ctx, result, _, _ = chain_run
    test = np.asarray(result.extra["test_indices"])
    view = TorchView(ctx.dataset, test, ctx.preprocess)
    x = torch.stack([view[i][0] for i in range(len(view))])
    with torch.no_grad():
        pred = result.model(x).argmax(1).numpy()
    acc = float(np.mean(pred == ctx.labels(test)))
    assert abs(acc - result.test_accuracy) <= 1.0 / len(test) + 1e-9
    composed = isinstance(result.model.heads[ctx.dataset.primary_task], torch.nn.Sequential)
    assert composed == (result.extra["winner"] == "pipeline")


def test_the_pipeline_table_reports_test_only_for_the_winner_chosen_on_validation():
    """The winner is the higher validation accuracy; only its test accuracy is printed (the final number),
    so the table does not invite a second choice on test."""
    import io

    from rich.console import Console

    from advisor.report.terminal import print_train_extra
    from advisor.train._base import TrainResult

    extra = {"pipeline": {"val_accuracy": 0.71, "test_accuracy": 0.9301, "test_macro_f1": 0.9202,
                          "trainable_params": 10, "seconds": 1.0},
             "end_to_end": {"val_accuracy": 0.74, "test_accuracy": 0.6603, "test_macro_f1": 0.6504,
                            "trainable_params": 12, "seconds": 1.0},
             "winner": "end_to_end", "intermediate": "z", "final": "y", "learning_curve": None}
    r = TrainResult(strategy="pipeline_vs_end_to_end", params={}, val_accuracy=0.74, test_accuracy=0.6603,
                    val_macro_f1=0.7, test_macro_f1=0.6504, history=[], wall_time=1.0, trainable_params=12,
                    extra=extra)
    buf = io.StringIO()
    print_train_extra(r, Console(file=buf, width=200))
    out = buf.getvalue()
    assert "winner: end_to_end" in out
    assert "0.7100" in out and "0.7400" in out  # both validation accuracies: the comparison
    assert "0.6603" in out and "0.6504" in out  # the winner's test numbers
    assert "0.9301" not in out and "0.9202" not in out  # the loser's are not shown
