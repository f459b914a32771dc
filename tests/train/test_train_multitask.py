"""multi_task: one shared backbone, one head per task, masked summed loss; the separate-model comparison.

Two tasks on 300 stratified sklearn digits at 32 x 32 (MobileNetV2): ``digit`` (10 classes) and
``parity`` (2 classes) with 30% of the parity labels missing. Contexts have cache=None.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from advisor.context import TrainContext
from advisor.data import ArrayDataset, Preprocess, load_dataset, stratified_sample, stratified_split
from advisor.errors import AdvisorError
from advisor.train._multitask import run_multi_task


@pytest.fixture(scope="module")
def setup():
    from advisor.models import create_backbone

    digits = load_dataset("digits")
    digits = digits.subset(stratified_sample(digits.primary_labels, 300, seed=0))
    digit = digits.primary_labels.copy()
    parity = digit % 2
    rng = np.random.default_rng(0)
    parity[rng.choice(len(parity), size=int(0.3 * len(parity)), replace=False)] = -1
    big = (digit >= 5).astype(np.int64)
    classes = {"digit": [str(d) for d in range(10)], "parity": ["even", "odd"], "big": ["0-4", "5-9"]}
    two = ArrayDataset("digits-parity", digits.images, np.stack([digit, parity], axis=1),
                       tasks=("digit", "parity"), classes=classes)
    three = ArrayDataset("digits-three", digits.images, np.stack([digit, parity, big], axis=1),
                         tasks=("digit", "parity", "big"), classes=classes, intermediate="digit")
    bb = create_backbone("mobilenet_v2")
    pp = bb.preprocessing
    pre = Preprocess(pp["resize_size"], pp["crop_size"], pp["mean"], pp["std"]).with_image_size(32)
    return {"two": two, "three": three, "single": digits, "bb": bb, "pre": pre}


def make_ctx(setup, which: str = "two") -> TrainContext:
    ds, bb = setup[which], setup["bb"]
    split = stratified_split(ds.primary_labels, seed=0)
    return TrainContext(dataset=ds, split=split, backbone=copy.deepcopy(bb), make_backbone=lambda: copy.deepcopy(bb),
                        preprocess=setup["pre"], device=torch.device("cpu"), seed=0, cache=None)


def test_multi_task_learns_both_tasks_and_compares_with_separate_models(setup):
    ctx = make_ctx(setup)
    assert ctx.dataset.primary_task == "parity"
    epochs = []
    r = run_multi_task(ctx, {"k": 2, "epochs": 3, "batch_size": 16}, callback=lambda e, v: epochs.append(e))

    assert r.strategy == "multi_task" and r.params["tasks"] == ["digit", "parity"] and r.params["compare"] is True
    assert epochs == [h.epoch for h in r.history] == [1, 2, 3]  # the callback follows the shared model only
    assert set(r.per_task) == {"digit", "parity"}
    digit, parity = r.per_task["digit"], r.per_task["parity"]
    assert digit["test_accuracy"] > 0.3 and digit["val_accuracy"] > 0.3  # chance 0.1
    assert parity["test_accuracy"] > 0.6 and parity["val_accuracy"] > 0.6  # chance 0.5
    for m in (digit, parity):
        assert 0 <= m["test_macro_f1"] <= 1
    train = ctx.split.train
    assert digit["n_train_labelled"] == len(train)
    assert parity["n_train_labelled"] == int((ctx.dataset.labels[train, 1] >= 0).sum()) < len(train)
    # the result's headline metrics are the primary task's
    assert r.val_accuracy == parity["val_accuracy"] and r.test_accuracy == parity["test_accuracy"]
    assert r.trainable_params == (sum(p.numel() for p in ctx.backbone.blocks[-2:].parameters())
                                  + 1281 * 10 + 1281 * 2)
    # one separate single-task model per task, same settings
    assert set(r.extra["separate"]) == {"digit", "parity"}
    for t in ("digit", "parity"):
        alone = r.extra["separate"][t]
        assert alone["test_accuracy"] > (0.3 if t == "digit" else 0.6)
        assert alone["n_train_labelled"] == r.per_task[t]["n_train_labelled"]
        # the verdict on sharing is a choice: made on validation, never on test
        assert r.extra["multi_minus_separate"][t] == pytest.approx(
            r.per_task[t]["val_accuracy"] - alone["val_accuracy"])
    assert r.extra["compared_on"] == "validation accuracy"


def test_multi_task_defaults_skip_the_intermediate_label_and_train_a_quarter_of_the_blocks(setup):
    ctx = make_ctx(setup, "three")
    r = run_multi_task(ctx, {"epochs": 1, "batch_size": 64, "compare": False})
    assert r.params["tasks"] == ["parity", "big"] and r.params["k"] == 19 // 4
    assert set(r.per_task) == {"parity", "big"} and "separate" not in r.extra
    assert len(r.extra["frozen_blocks"]) == 19 - 4
    assert all(np.isfinite(m["test_accuracy"]) for m in r.per_task.values())


def test_multi_task_parameter_errors(setup):
    def one_line(fn, *fragments):
        with pytest.raises(AdvisorError) as info:
            fn()
        msg = str(info.value)
        assert "\n" not in msg
        for f in fragments:
            assert f in msg, msg

    one_line(lambda: run_multi_task(make_ctx(setup, "single"), {}), "at least 2 tasks")
    ctx = make_ctx(setup)
    one_line(lambda: run_multi_task(ctx, {"tasks": ["digit"]}), "at least 2 tasks")
    one_line(lambda: run_multi_task(ctx, {"tasks": ["digit", "colour"]}), "unknown task 'colour'")
    one_line(lambda: run_multi_task(ctx, {"tasks": ["digit", "digit"]}), "twice")
    one_line(lambda: run_multi_task(ctx, {"compare": "yes"}), "compare")
    one_line(lambda: run_multi_task(ctx, {"k": 25}), "k=25 is larger than the backbone's 19 blocks; use 1..19")
    one_line(lambda: run_multi_task(ctx, {"k": 2, "lr": 0.1}), "unknown parameter 'lr'")


def _printed(result) -> str:
    import io

    from rich.console import Console

    from advisor.report.terminal import print_train_extra

    buf = io.StringIO()
    print_train_extra(result, Console(file=buf, width=200))
    return buf.getvalue()


def test_the_sharing_verdict_is_shown_on_validation_and_test_only_once():
    """Validation decides shared against separate, so the table compares validation accuracies; the
    shared model's test accuracy is printed once as the final number, the separate ones' never."""
    from advisor.train._base import TrainResult

    per_task = {"digit": {"val_accuracy": 0.81, "test_accuracy": 0.7301, "n_train_labelled": 180},
                "parity": {"val_accuracy": 0.62, "test_accuracy": 0.9402, "n_train_labelled": 126}}
    separate = {"digit": {"val_accuracy": 0.75, "test_accuracy": 0.8803},
                "parity": {"val_accuracy": 0.66, "test_accuracy": 0.5104}}
    r = TrainResult(strategy="multi_task", params={}, val_accuracy=0.62, test_accuracy=0.9402, val_macro_f1=0.6,
                    test_macro_f1=0.9, history=[], wall_time=1.0, trainable_params=1, per_task=per_task,
                    extra={"separate": separate, "multi_minus_separate": {"digit": 0.06, "parity": -0.04},
                           "compared_on": "validation accuracy"})
    out = _printed(r)
    assert "(validation accuracy)" in out and "(test accuracy)" not in out
    digit = next(line for line in out.splitlines() if line.strip("│┃ ").startswith("digit"))
    parity = next(line for line in out.splitlines() if line.strip("│┃ ").startswith("parity"))
    assert "0.8100" in digit and "0.7500" in digit and "+6.0 pt" in digit and "shared" in digit
    assert "0.6200" in parity and "0.6600" in parity and "-4.0 pt" in parity and "separate" in parity
    assert out.count("0.7301") == 1 and out.count("0.9402") == 1  # the final numbers, once
    assert "0.8803" not in out and "0.5104" not in out  # the separate models' test accuracy decides nothing
