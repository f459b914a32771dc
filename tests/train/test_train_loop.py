"""The training loop's parts, each on its own: early stopping, the parameter groups, the optimizer step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advisor.models._layout import NCHW
from advisor.train._loop import EarlyStopping, Stepper
from advisor.train._model import Net, make_heads, param_groups


def _net(n_blocks=3, n_frozen=1):
    torch.manual_seed(0)
    blocks = [nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)) for _ in range(n_blocks)]
    return Net(blocks, n_frozen, make_heads(3, [4, 2], seed=0), NCHW)


def test_early_stopping_keeps_the_best_epoch_and_waits_for_the_top_blocks():
    net = _net()
    stop = EarlyStopping(net, patience=2)
    head = net.heads[0].weight
    stop.update(1, 0.5)  # best so far: epoch 1
    best = head.detach().clone()
    with torch.no_grad():
        head.add_(1.0)
    stop.update(2, 0.4)
    stop.update(3, 0.4)
    assert stop.since_best == 2 and not stop.should_stop("heads")  # a warm-up epoch never stops the run
    assert stop.should_stop("top")
    stop.restart()  # the top blocks start training: the count starts again
    assert not stop.should_stop("top")
    stop.restore()
    assert stop.best_epoch == 1 and torch.equal(head, best)


def test_param_groups_follow_the_depth_rule_and_never_decay_norms_or_biases():
    net = _net(n_blocks=3, n_frozen=1)
    groups = param_groups(["a", "b"], net, ["b1", "b2"], head_lr=0.1, lr_ratio=0.5, layer_decay=0.8,
                          weight_decay=1e-2)
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs == pytest.approx({"head:a": 0.1, "head:b": 0.1, "block:b2": 0.1 * 0.5, "block:b1": 0.1 * 0.5 * 0.8})
    for g in groups:
        assert all(p.ndim > 1 for p in g["params"]) if g["weight_decay"] else all(p.ndim <= 1 for p in g["params"])
    frozen = {id(p) for p in net.frozen.parameters()}
    assert not frozen & {id(p) for g in groups for p in g["params"]}  # the frozen block is in no group


def test_stepper_moves_what_has_a_gradient_and_nothing_else():
    net = _net()
    groups = param_groups(["a", "b"], net, ["b1", "b2"], head_lr=0.1, lr_ratio=0.5, layer_decay=1.0,
                          weight_decay=0.0)
    stepper = Stepper(groups, head_lr=0.1, weight_decay=0.0, dev=torch.device("cpu"))
    before_a, before_b = net.heads[0].weight.detach().clone(), net.heads[1].weight.detach().clone()
    loss = net.heads[0](torch.ones(2, 3)).sum()  # only head a takes part
    stepper.step(loss)
    assert not torch.equal(net.heads[0].weight, before_a)
    assert torch.equal(net.heads[1].weight, before_b)
