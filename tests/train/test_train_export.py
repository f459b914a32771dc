"""Every trained result exports as one module that reproduces the run's test predictions, saved and reloaded."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from advisor.context import TrainContext
from advisor.data import TorchView
from advisor.deploy.model import TransferModel
from advisor.deploy.modelfile import load_model, save_model
from advisor.errors import AdvisorError
from advisor.train import run_strategy


@pytest.fixture(scope="module")
def ctx(digits300):
    ds, split, bb, pre = digits300
    return TrainContext(dataset=ds, split=split, backbone=bb, make_backbone=lambda: copy.deepcopy(bb),
                        preprocess=pre, device=torch.device("cpu"), seed=0, cache=None)


def test_accuracy(model: TransferModel, ctx) -> tuple[float, torch.Tensor]:
    view = TorchView(ctx.dataset, ctx.split.test, ctx.preprocess)
    x = torch.stack([view[i][0] for i in range(len(view))])
    with torch.no_grad():
        logits = model(x)
    y = ctx.labels(ctx.split.test)
    return float(np.mean(logits.argmax(1).numpy() == y)), logits


test_accuracy.__test__ = False  # a helper, not a test


@pytest.mark.parametrize("strategy, params", [
    ("linear_probe", {}),
    ("svm_early", {"block": "ir10"}),
    ("last_k", {"k": 2, "epochs": 2}),
])
def test_exported_model_reproduces_the_test_accuracy_after_save_and_load(ctx, tmp_path, strategy, params):
    result = run_strategy(ctx, strategy, params)
    assert isinstance(result.model, TransferModel)
    acc, logits = test_accuracy(result.model, ctx)
    n = len(ctx.split.test)
    assert abs(acc - result.test_accuracy) <= 1.0 / n + 1e-9  # at most one borderline item flips
    assert acc > 0.4  # chance is 0.1 (last_k at 2 epochs sits near 0.5: 29 or 30 of 59, one borderline item)

    path = save_model(result, tmp_path / "m.pt", model_name="mobilenet_v2", weights=None,
                      preprocess=ctx.preprocess, dataset_name=ctx.dataset.name, classes=ctx.dataset.classes)
    loaded, meta = load_model(path)
    assert meta["strategy"] == strategy and meta["classes"]["label"] == ctx.dataset.classes["label"]
    _, logits2 = test_accuracy(loaded, ctx)
    torch.testing.assert_close(logits2, logits)  # the same function, rebuilt without pretrained weights


def test_load_model_refuses_other_files(tmp_path):
    bad = tmp_path / "x.pt"
    torch.save({"hello": torch.zeros(1)}, bad)
    with pytest.raises(AdvisorError, match="not an advisor model"):
        load_model(bad)
    with pytest.raises(AdvisorError, match="no saved model"):
        load_model(tmp_path / "missing.pt")
