"""last_k / full_finetune and the shared network trainer, on a small real dataset.

300 stratified sklearn digits at 32 x 32 through ImageNet MobileNetV2 (19 blocks), 2-3 epochs;
every context has cache=None except the one test that exercises the activation cache.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from advisor.context import TrainContext
from advisor.context.cache import ActivationCache
from advisor.errors import AdvisorError
from advisor.train._base import TrainingPruned
from advisor.train._finetune import run_full_finetune, run_last_k
from advisor.train._loop import fit_network
from advisor.train._model import Net, augment_batch, make_heads, masked_loss

N_BLOCKS = 19  # mobilenet_v2


@pytest.fixture(scope="module")
def setup(digits300):
    return digits300


def make_ctx(setup, seed: int = 0, cache=None) -> TrainContext:
    ds, split, bb, pre = setup
    return TrainContext(dataset=ds, split=split, backbone=copy.deepcopy(bb), make_backbone=lambda: copy.deepcopy(bb),
                        preprocess=pre, device=torch.device("cpu"), seed=seed, cache=cache)


def block_state(backbone, i: int) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in backbone.blocks[i].state_dict().items()}


def one_line_error(fn, *fragments: str) -> str:
    with pytest.raises(AdvisorError) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg, msg
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"
    return msg


# ----------------------------------------------------------------------------- last_k
def test_last_k_learns_and_keeps_frozen_blocks_bit_identical(setup):
    ctx = make_ctx(setup)
    before = [block_state(ctx.backbone, i) for i in range(N_BLOCKS)]
    seen = []
    r = run_last_k(ctx, {"k": 2, "epochs": 3, "batch_size": 16}, callback=lambda e, v: seen.append((e, v)))

    assert r.strategy == "last_k"
    assert r.val_accuracy > 0.5 and r.test_accuracy > 0.5  # chance is 0.1
    assert 0 <= r.test_macro_f1 <= 1 and 0 <= r.val_macro_f1 <= 1
    assert [h.epoch for h in r.history] == [1, 2, 3] and [e for e, _ in seen] == [1, 2, 3]
    assert [v for _, v in seen] == [h.val_accuracy for h in r.history]
    assert r.val_accuracy == max(h.val_accuracy for h in r.history)
    assert r.history[r.best_epoch - 1].val_accuracy == r.val_accuracy
    assert r.params == {"k": 2, "head_lr": 1e-2, "lr_ratio": 0.1, "layer_decay": 1.0, "weight_decay": 1e-4,
                        "epochs": 3, "batch_size": 16, "patience": 3, "warmup_epochs": 0, "warmup": False,
                        "rate_warmup": False, "clip_grad": 0.0, "augment": False}  # the CNN recipe's
    assert r.extra["frozen_blocks"] == ctx.backbone.block_names[:N_BLOCKS - 2]
    assert r.extra["boundary_from_cache"] is False
    top = ctx.backbone.blocks[N_BLOCKS - 2:]
    assert r.trainable_params == sum(p.numel() for p in top.parameters()) + (1280 + 1) * 10
    assert r.wall_time > 0

    # frozen: every parameter and BatchNorm buffer (running_mean/var, num_batches_tracked) bit-identical
    for i in range(N_BLOCKS - 2):
        after = block_state(ctx.backbone, i)
        assert any("running_mean" in k for k in after)
        for key, value in after.items():
            assert torch.equal(value, before[i][key]), f"frozen {ctx.backbone.block_names[i]}.{key} moved"
    # trainable: weights and BN statistics moved in each of the top two blocks
    for i in range(N_BLOCKS - 2, N_BLOCKS):
        after = block_state(ctx.backbone, i)
        moved = {k for k, v in after.items() if not torch.equal(v, before[i][k])}
        assert any(k.endswith("weight") for k in moved) and any("running_mean" in k for k in moved), moved


def test_seeded_runs_are_reproducible_and_learning_rates_hold_their_ratios(setup):
    split = setup[1]
    kw = dict(k=3, head_lr=0.02, lr_ratio=0.25, layer_decay=0.5, epochs=2, batch_size=32)
    runs = [fit_network(make_ctx(setup, seed=3), ["label"], split.train, split.val, **kw) for _ in range(2)]
    a, b = runs
    strip = [[(h.epoch, h.train_loss, h.val_accuracy, h.val_loss) for h in r.history] for r in runs]
    assert strip[0] == strip[1]
    assert all(np.isfinite(h.train_loss) for h in a.history)
    pa, pb = a.predict_proba(split.test), b.predict_proba(split.test)
    assert np.array_equal(pa["label"], pb["label"])
    assert pa["label"].shape == (len(split.test), 10)
    np.testing.assert_allclose(pa["label"].sum(axis=1), 1.0, rtol=1e-5)

    lrs = a.param_group_lrs
    names = a.ctx.backbone.block_names
    assert set(lrs) == {"head:label", f"block:{names[-1]}", f"block:{names[-2]}", f"block:{names[-3]}"}
    assert lrs["head:label"] == pytest.approx(0.02)
    assert lrs["head:label"] / lrs[f"block:{names[-1]}"] == pytest.approx(1 / 0.25)
    assert lrs[f"block:{names[-2]}"] / lrs[f"block:{names[-1]}"] == pytest.approx(0.5)
    assert lrs[f"block:{names[-3]}"] / lrs[f"block:{names[-2]}"] == pytest.approx(0.5)
    assert a.frozen_blocks == names[:N_BLOCKS - 3]
    # a different seed gives a different run
    c = fit_network(make_ctx(setup, seed=4), ["label"], split.train, split.val, **{**kw, "epochs": 1})
    assert c.history[0].train_loss != a.history[0].train_loss


def test_missing_label_contributes_exactly_zero_gradient(setup):
    ds, split, bb, pre = setup
    torch.manual_seed(0)
    backbone = copy.deepcopy(bb)
    heads = make_heads(backbone.feature_dim, [10, 2], seed=0)
    net = Net(backbone.blocks, N_BLOCKS - 1, heads, backbone.layout)
    net.set_phase("eval")
    items = split.train[:4]
    x = torch.stack([pre(ds.load(int(i))) for i in items])
    digit = torch.as_tensor(ds.primary_labels[items])
    labels = torch.stack([digit, digit % 2], dim=1)
    labels[2, 1] = -1  # sample 2 has no task-b (parity) label

    def grads(inputs, y):
        net.zero_grad(set_to_none=True)
        feats = net.features(net.bottom(inputs))
        loss, per_task = masked_loss(net.heads, feats, y)
        loss.backward()
        return [torch.cat([p.grad.flatten() for p in h.parameters()]) for h in net.heads], feats.detach()

    (ga, gb), feats = grads(x, labels)
    assert gb.abs().sum() > 0
    # the sample's input changed: task b's head gradient is bit-identical, task a's is not
    x2 = x.clone()
    x2[2] = torch.randn_like(x2[2]) * 3
    (ga2, gb2), _ = grads(x2, labels)
    assert torch.equal(gb, gb2)
    assert not torch.equal(ga, ga2)
    # the sample removed (same features for the others): task b's head gradient is bit-identical
    keep = [0, 1, 3]
    for h in net.heads:
        h.zero_grad(set_to_none=True)
    loss, _ = masked_loss(net.heads, feats, labels)
    loss.backward()
    gb_full = torch.cat([p.grad.flatten() for p in net.heads[1].parameters()])
    for h in net.heads:
        h.zero_grad(set_to_none=True)
    loss, _ = masked_loss(net.heads, feats[keep], labels[keep])
    loss.backward()
    gb_removed = torch.cat([p.grad.flatten() for p in net.heads[1].parameters()])
    assert torch.equal(gb_full, gb_removed)
    # a task with no label in the batch is skipped; no label at all gives no loss
    nolab = labels.clone()
    nolab[:, 1] = -1
    _, per_task = masked_loss(net.heads, feats, nolab)
    assert per_task[1] is None and per_task[0] is not None
    assert masked_loss(net.heads, feats, torch.full_like(labels, -1))[0] is None


def test_augmentation_runs_without_the_cache_and_is_seeded(setup):
    x = torch.randn(4, 3, 32, 32)
    a = augment_batch(x, torch.Generator().manual_seed(1))
    b = augment_batch(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    r = run_last_k(make_ctx(setup), {"k": 1, "epochs": 1, "batch_size": 64, "augment": True})
    assert r.params["augment"] is True and r.extra["boundary_from_cache"] is False
    assert len(r.history) == 1 and np.isfinite(r.history[0].train_loss)


# ----------------------------------------------------------------------------- full fine-tuning
def test_weight_decay_shrinks_weights_but_never_biases_or_norm_parameters(setup, monkeypatch):
    """timm's convention: parameters with ndim <= 1 (biases, BatchNorm scales and shifts) are in groups
    with weight_decay 0. Checked on the groups fit_network builds, and by one AdamW step with zero
    gradients (so only the decay can move anything): conv and linear weights shrink, the rest stays."""
    built = []

    class SpyAdamW(torch.optim.AdamW):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(torch.optim, "AdamW", SpyAdamW)
    split = setup[1]
    fitted = fit_network(make_ctx(setup), ["label"], split.train, split.val, k=2, epochs=1, batch_size=64,
                         weight_decay=0.5)
    (opt,) = built
    names = fitted.ctx.backbone.block_names
    assert set(fitted.param_group_lrs) == {"head:label", f"block:{names[-1]}", f"block:{names[-2]}"}
    trained = {id(p) for p in fitted.net.top.parameters()} | {id(p) for p in fitted.net.heads.parameters()}
    assert {id(p) for g in opt.param_groups for p in g["params"]} == trained
    kinds = {"weight": 0, "no_decay": 0}
    for g in opt.param_groups:
        assert g["weight_decay"] == (0.5 if all(p.ndim > 1 for p in g["params"]) else 0.0), g["name"]
        assert all(p.ndim > 1 for p in g["params"]) or all(p.ndim <= 1 for p in g["params"]), g["name"]
        kinds["weight" if g["weight_decay"] else "no_decay"] += 1
    assert kinds["weight"] >= 3 and kinds["no_decay"] >= 3  # every named group split in two

    # behaviour: fresh optimizer state and zero gradients, so one step applies the decay alone
    opt.state.clear()
    params = [p for g in opt.param_groups for p in g["params"]]
    for p in params:
        p.grad = torch.zeros_like(p)
    before = [p.detach().clone() for p in params]
    opt.step()
    bn = [m for m in fitted.net.top.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn
    norm_ids = {id(t) for m in bn for t in (m.weight, m.bias)}
    convs = [m.weight for m in fitted.net.top.modules() if isinstance(m, torch.nn.Conv2d)]
    conv_ids = {id(t) for t in convs}
    assert convs and conv_ids
    for p, b in zip(params, before):
        if p.ndim <= 1:
            assert torch.equal(p, b)  # biases and norm parameters: no decay
        else:
            assert p.abs().sum() < b.abs().sum()  # weights shrink toward zero
    assert norm_ids <= {id(p) for p in params if p.ndim <= 1} and conv_ids <= {id(p) for p in params if p.ndim > 1}


def test_full_finetune_warmup_keeps_the_backbone_frozen_then_trains_it(setup):
    ctx = make_ctx(setup)
    initial = [p.detach().clone() for p in ctx.backbone.blocks.parameters()]
    initial_bn = [b.detach().clone() for b in ctx.backbone.blocks.buffers()]
    moved = {}

    def snapshot(epoch, val):
        same = all(torch.equal(p, q) for p, q in zip(ctx.backbone.blocks.parameters(), initial))
        same_bn = all(torch.equal(p, q) for p, q in zip(ctx.backbone.blocks.buffers(), initial_bn))
        moved[epoch] = (not same, not same_bn)

    r = run_full_finetune(ctx, {"warmup": True, "epochs": 1, "batch_size": 32, "head_lr": 3e-2}, callback=snapshot)
    assert r.params["warmup_epochs"] == 2 and r.params["k"] == N_BLOCKS and r.params["warmup"] is True
    assert [h.epoch for h in r.history] == [1, 2, 3]
    assert moved[1] == (False, False) and moved[2] == (False, False)  # LP warm-up: only the head trained
    assert moved[3] == (True, True)  # then every block
    assert r.extra["frozen_blocks"] == []
    assert r.trainable_params == sum(p.numel() for p in ctx.backbone.blocks.parameters()) + 1281 * 10
    assert r.history[1].val_accuracy > 0.3  # the warmed-up head on frozen features already learns


def test_pruning_callback_stops_training_and_propagates(setup):
    calls = []

    def prune(epoch, val):
        calls.append(epoch)
        raise TrainingPruned(f"pruned at {epoch}")

    with pytest.raises(TrainingPruned, match="pruned at 1"):
        run_last_k(make_ctx(setup), {"k": 1, "epochs": 3, "batch_size": 64}, callback=prune)
    assert calls == [1]


def test_divergence_is_an_advisor_error(setup):
    one_line_error(lambda: run_last_k(make_ctx(setup), {"k": 1, "epochs": 1, "batch_size": 64, "head_lr": 1e30}),
                   "training diverged (loss is", "lower --head-lr")


def test_bad_parameters_are_one_line_advisor_errors(setup):
    ctx = make_ctx(setup)
    msg = one_line_error(lambda: run_last_k(ctx, {"k": 25}))
    assert msg == "k=25 is larger than the backbone's 19 blocks; use 1..19"
    one_line_error(lambda: run_last_k(ctx, {"k": 0}), "k=0", "use 1..19")
    one_line_error(lambda: run_last_k(ctx, {"k": 2.5}), "k=2.5", "use 1..19")
    one_line_error(lambda: run_last_k(ctx, {"k": True}), "k=True")
    one_line_error(lambda: run_last_k(ctx, {}), "needs k")
    one_line_error(lambda: run_last_k(ctx, {"k": 2, "head_lr": -0.1}), "head_lr=-0.1")
    one_line_error(lambda: run_last_k(ctx, {"k": 2, "head_lr": 0}), "head_lr=0")
    one_line_error(lambda: run_last_k(ctx, {"k": 2, "lr_ratio": -1}), "lr_ratio=-1")
    one_line_error(lambda: run_last_k(ctx, {"k": 2, "layer_decay": 1.5}), "layer_decay=1.5", "(0, 1]")
    one_line_error(lambda: run_last_k(ctx, {"k": 2, "layer_decay": 0}), "layer_decay=0")
    one_line_error(lambda: run_last_k(ctx, {"k": 2, "epochs": 0}), "epochs=0")
    one_line_error(lambda: run_last_k(ctx, {"k": 2, "batch_size": 1}), "batch_size=1")
    one_line_error(lambda: run_last_k(ctx, {"k": 2, "weight_decay": -1e-4}), "weight_decay")
    one_line_error(lambda: run_last_k(ctx, {"k": 2, "augment": "yes"}), "augment")
    one_line_error(lambda: run_last_k(ctx, {"k": 2, "warmup": False, "warmup_epochs": 2}), "warmup")
    one_line_error(lambda: run_last_k(ctx, {"k": 2, "head_rl": 0.1}), "unknown parameter 'head_rl'", "head_lr")
    one_line_error(lambda: run_full_finetune(ctx, {"k": 3}), "k=3", "last_k")
    one_line_error(lambda: run_full_finetune(ctx, {"warmup": "yes"}), "warmup")
    one_line_error(lambda: fit_network(ctx, ["label"], ctx.split.train, ctx.split.val, k=20), "k=20")


# ----------------------------------------------------------------------------- activation cache
def test_last_k_reads_the_boundary_from_the_activation_cache(setup, tmp_path):
    cache = ActivationCache(tmp_path / "cache")
    ctx = make_ctx(setup, cache=cache)
    r = run_last_k(ctx, {"k": 2, "epochs": 3, "batch_size": 16})
    assert r.extra["boundary_from_cache"] is True
    assert r.val_accuracy > 0.5 and r.test_accuracy > 0.5
    # the same run recomputing the frozen part sees the same batches in the same order every epoch;
    # only the float16 rounding of the cached boundary separates the two
    plain = run_last_k(make_ctx(setup), {"k": 2, "epochs": 3, "batch_size": 16})
    assert plain.extra["boundary_from_cache"] is False
    # (a BatchNorm training on 1x1 maps amplifies that rounding over the epochs, so compare the first)
    assert r.history[0].train_loss == pytest.approx(plain.history[0].train_loss, rel=0.01)
    assert plain.val_accuracy > 0.5
    # augmentation needs the images, so it bypasses the cache
    r2 = run_last_k(make_ctx(setup, cache=cache), {"k": 2, "epochs": 1, "batch_size": 64, "augment": True})
    assert r2.extra["boundary_from_cache"] is False
