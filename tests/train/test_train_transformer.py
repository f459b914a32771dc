"""Training a transformer (issue 20, sections 2 and 5): the optimizer's groups (weight decay skips what the
backbone declares free of it; each group carries its own learning rate, counted in transformer blocks),
LP-FT on a ViT, multi_task and pipeline_vs_end_to_end on a ViT, and augmentation on a token backbone.

Small random-weight ``timm:vit_tiny_patch16_224`` networks at 32 px (2 x 2 patches and a class token).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

VIT, SIZE = "timm:vit_tiny_patch16_224", 32


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    """See tests/conftest.py."""


def _context(data: str, model: str = VIT, **kwargs):
    from advisor.context import make_context

    return make_context(data, model, weights="random", image_size=SIZE, seed=0, device="cpu", **kwargs)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return _context("digits:8", cache_dir=tmp_path_factory.mktemp("acts"))


# ----------------------------------------------------------------------------- optimizer groups
def _vit_net(k: int):
    from advisor.models import create_backbone
    from advisor.train._model import Net, make_heads

    bb = create_backbone(VIT, "random")
    n_frozen = len(bb.blocks) - k
    return bb, Net(bb.blocks, n_frozen, make_heads(bb.feature_dim, [3], seed=0), bb.layout)


def test_weight_decay_skips_position_embedding_class_token_norms_and_biases_on_a_vit():
    """One real AdamW step with zero gradients applies the decay alone: the transformer weights shrink by
    exactly ``1 - lr * wd``; the position embedding, class token, LayerNorm parameters and biases stay."""
    from advisor.train._model import param_groups

    bb, net = _vit_net(k=len(_vit_net(1)[0].blocks))  # every block trains, the stem with its tokens too
    lr, wd = 0.1, 0.5
    groups = param_groups(["y"], net, bb.block_names, head_lr=lr, lr_ratio=1.0, layer_decay=1.0,
                          weight_decay=wd, decays=bb.decays)
    named = dict(bb.named_parameters())
    free = {"blocks.0.net.pos_embed", "blocks.0.net.cls_token"}
    assert free <= bb.no_decay and all(named[n].ndim == 3 for n in free)  # shape alone would decay them
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=wd)
    for g in opt.param_groups:
        for p in g["params"]:
            p.grad = torch.zeros_like(p)
    before = {n: p.detach().clone() for n, p in named.items()}
    opt.step()
    factor = torch.tensor(1 - lr * wd, dtype=torch.float32)
    decayed = kept = 0
    for n, p in named.items():
        if n.startswith("head."):
            continue  # the source head is not trained
        if n in free or p.ndim <= 1:
            assert torch.equal(p, before[n]), n
            kept += 1
        else:
            torch.testing.assert_close(p, before[n] * factor, rtol=2 ** -23, atol=0)
            assert not torch.equal(p, before[n]), n
            decayed += 1
    assert decayed >= 4 * 12 + 1 and kept >= 8 * 12 + 2  # qkv, proj, fc1, fc2 per block + patch conv


def test_each_transformer_block_is_a_group_with_its_own_rate_and_no_lr_scale():
    """Layer-wise decay counts transformer blocks and the groups carry their learning rates themselves:
    nothing relies on timm's ``lr_scale``, which only timm's own scheduler reads."""
    from advisor.train._model import param_groups

    bb, net = _vit_net(k=4)
    top = bb.block_names[-4:]
    assert top == ["blocks.8", "blocks.9", "blocks.10", "blocks.11"]
    groups = param_groups(["y"], net, top, head_lr=1e-2, lr_ratio=0.5, layer_decay=0.7, weight_decay=0.05,
                          decays=bb.decays)
    opt = torch.optim.AdamW(groups, lr=123.0)  # a default lr no group may fall back to
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == pytest.approx({"head:y": 1e-2, **{f"block:{n}": 1e-2 * 0.5 * 0.7 ** d
                                                      for d, n in enumerate(reversed(top))}})
    assert all("lr_scale" not in g for g in opt.param_groups)
    trained = {id(p) for p in net.top.parameters()} | {id(p) for p in net.heads.parameters()}
    assert {id(p) for g in groups for p in g["params"]} == trained


def test_swin_relative_position_tables_take_no_weight_decay():
    """torchvision's Swin declares nothing itself: its relative-position bias tables (2-D) are freed as
    timm frees them in its own Swin."""
    from advisor.models import create_backbone

    bb = create_backbone("swin_t", "random")
    named = dict(bb.named_parameters())
    tables = [n for n in named if n.endswith("relative_position_bias_table")]
    assert len(tables) == 12 and set(tables) == set(bb.no_decay)
    assert all(named[n].ndim == 2 and not bb.decays(n, named[n]) for n in tables)
    assert bb.decays("blocks.1.0.attn.qkv.weight", named["blocks.1.0.attn.qkv.weight"])


def test_fit_network_hands_the_backbone_declarations_to_the_optimizer(digits, monkeypatch):
    """The groups fit_network builds for a full fine-tune of a ViT: the position embedding and class token
    in groups without decay, the transformer weights with it."""
    import advisor.train._loop as loop
    from advisor.train._loop import fit_network

    built = []

    class Recording(loop.Stepper):
        def __init__(self, groups, **kwargs):
            super().__init__(groups, **kwargs)
            built.append(self.opt)

    monkeypatch.setattr(loop, "Stepper", Recording)
    bb = digits.make_backbone()
    import dataclasses

    ctx = dataclasses.replace(digits, backbone=bb)
    fit_network(ctx, ["label"], ctx.split.train, ctx.split.val, k=len(bb.blocks), epochs=1, batch_size=32,
                 weight_decay=0.3)
    (opt,) = built
    wd = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    named = dict(bb.named_parameters())
    assert wd[id(named["blocks.0.net.pos_embed"])] == 0.0 and wd[id(named["blocks.0.net.cls_token"])] == 0.0
    assert wd[id(named["blocks.5.attn.qkv.weight"])] == 0.3 and wd[id(named["blocks.5.norm1.weight"])] == 0.0


# ----------------------------------------------------------------------------- strategies
def test_full_finetune_with_lp_ft_on_a_vit_trains_the_head_first_then_every_block(digits):
    """LP-FT: the warm-up epoch trains the head alone; then the stem's position embedding and every block move."""
    from advisor.train import run_strategy

    r = run_strategy(digits, "full_finetune", {"warmup_epochs": 1, "epochs": 1, "batch_size": 32, "patience": 5})
    assert [e.epoch for e in r.history] == [1, 2] and r.params["warmup"] is True
    assert r.extra["frozen_blocks"] == [] and r.extra["boundary_from_cache"] is False
    assert set(r.extra["param_group_lrs"]) == {"head:label", *(f"block:{n}" for n in digits.backbone.block_names)}
    pretrained = dict(digits.backbone.named_parameters())
    trained = dict(r.model.named_parameters())
    if r.best_epoch == 2:  # the fine-tuned weights were kept: every transformer block and the tokens moved
        assert not torch.equal(trained["blocks.0.net.pos_embed"], pretrained["blocks.0.net.pos_embed"])
        assert not torch.equal(trained["blocks.11.attn.qkv.weight"], pretrained["blocks.11.attn.qkv.weight"])
    else:  # the head-only epoch was best: the blocks are exactly the pretrained ones
        assert torch.equal(trained["blocks.0.net.pos_embed"], pretrained["blocks.0.net.pos_embed"])
    assert 0.0 <= r.val_accuracy <= 1.0


def test_multi_task_trains_two_heads_on_shared_vit_blocks(tmp_path):
    from advisor.train import run_strategy

    ctx = _context("fashion-pairs:16", cache_dir=tmp_path)
    r = run_strategy(ctx, "multi_task", {"k": 2, "epochs": 2, "batch_size": 16, "compare": True})
    tasks = r.params["tasks"]
    assert len(tasks) >= 2 and set(tasks) <= set(ctx.dataset.tasks) and set(r.per_task) == set(tasks)
    assert set(r.model.heads) == set(tasks) and r.model.layout == ctx.backbone.layout
    x = torch.stack([ctx.preprocess(ctx.dataset.load(int(i))) for i in ctx.split.test[:4]])
    with torch.no_grad():
        out = r.model.forward_all(x)
    assert {t: tuple(v.shape) for t, v in out.items()} == {t: (4, len(ctx.dataset.classes[t])) for t in tasks}
    # the separate ViTs trained too and were compared, task by task
    assert set(r.extra["multi_minus_separate"]) == set(tasks)
    assert all(np.isfinite(d) for d in r.extra["multi_minus_separate"].values())


def test_pipeline_vs_end_to_end_runs_both_approaches_on_a_vit(tmp_path):
    from advisor.train import run_strategy

    ctx = _context("fashion-chain:12", cache_dir=tmp_path)
    r = run_strategy(ctx, "pipeline_vs_end_to_end", {"k": 1, "epochs": 1, "batch_size": 16, "learning_curve": False})
    assert r.extra["winner"] in ("pipeline", "end_to_end")
    assert 0.0 <= r.val_accuracy <= 1.0 and r.model.layout == ctx.backbone.layout
    x = torch.stack([ctx.preprocess(ctx.dataset.load(int(i))) for i in ctx.split.test[:3]])
    with torch.no_grad():
        logits = r.model(x)
    assert logits.shape == (3, len(ctx.dataset.classes[ctx.dataset.primary_task]))


def test_augmentation_acts_on_images_for_a_token_backbone(digits):
    """augment_batch resamples the images (N, 3, H, W) before any block runs, so it needs nothing of the
    backbone's layout: a ViT trains with it (images through the frozen blocks, not cached boundaries), and
    the augmented batch keeps the images' shape."""
    from advisor.train import run_strategy
    from advisor.train._model import augment_batch

    x = torch.stack([digits.preprocess(digits.dataset.load(i)) for i in range(4)])
    y = augment_batch(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.equal(y, x)
    plain = run_strategy(digits, "last_k", {"k": 1, "epochs": 1, "batch_size": 32})
    aug = run_strategy(digits, "last_k", {"k": 1, "epochs": 1, "batch_size": 32, "augment": True})
    assert plain.extra["boundary_from_cache"] is True and aug.extra["boundary_from_cache"] is False
    assert aug.history[0].train_loss != plain.history[0].train_loss  # it saw other inputs
    assert np.isfinite(aug.history[0].train_loss)


# ----------------------------------------------------------------------------- the transformer recipe
def test_the_recipe_fills_what_is_not_given_by_the_backbone_family():
    """A CNN keeps the defaults every CNN result was trained with; a transformer gets its recipe wherever a
    value is not given; a given value always wins, on either family."""
    from advisor.strategies import NETWORK_DEFAULTS, RECIPE_PARAMS
    from advisor.train._network import parse_network_params

    cnn = parse_network_params({}, strategy="full_finetune", n_blocks=12)
    assert {k: cnn[k] for k in RECIPE_PARAMS} == {"lr_ratio": 0.1, "layer_decay": 1.0, "rate_warmup": False,
                                                  "clip_grad": 0.0}
    assert {k: cnn[k] for k in RECIPE_PARAMS} == {k: NETWORK_DEFAULTS[k] for k in RECIPE_PARAMS}
    vit = parse_network_params({}, strategy="full_finetune", n_blocks=12, family="transformer")
    assert {k: vit[k] for k in RECIPE_PARAMS} == {"lr_ratio": 0.01, "layer_decay": 0.75, "rate_warmup": True,
                                                  "clip_grad": 1.0}
    given = {"lr_ratio": 0.1, "layer_decay": 1.0, "rate_warmup": False, "clip_grad": 0.0}
    mine = parse_network_params({"k": 2, **given}, strategy="last_k", n_blocks=12, family="transformer")
    assert {k: mine[k] for k in RECIPE_PARAMS} == given
    assert parse_network_params({"k": 1, "clip_grad": 2.5}, strategy="last_k", n_blocks=12)["clip_grad"] == 2.5


def test_rate_warm_up_raises_the_block_rates_linearly_and_leaves_the_heads_alone():
    """Step s of W runs the block groups at s/W of their rate (the heads at theirs from the first step),
    then at their own; clipping bounds the gradient norm the optimizer sees."""
    from advisor.train._loop import Stepper, warmup_steps
    from advisor.train._model import param_groups

    bb, net = _vit_net(k=2)
    net.set_phase("top")
    groups = param_groups(["y"], net, bb.block_names[-2:], head_lr=1e-2, lr_ratio=0.1, layer_decay=0.5,
                          weight_decay=0.0, decays=bb.decays)
    stepper = Stepper(groups, head_lr=1e-2, weight_decay=0.0, dev=torch.device("cpu"), clip_grad=0.5)
    base = dict(stepper.base_lrs)
    stepper.warm_up_blocks(4)
    x = torch.randn(3, 3, 32, 32)
    seen, norms = [], []
    orig = stepper.opt.step

    def recording_step(*a, **k):  # what the optimizer sees at each step: rates and gradient norm
        seen.append({g["name"]: g["lr"] for g in stepper.opt.param_groups})
        norms.append(float(torch.norm(torch.stack([p.grad.norm() for g in stepper.opt.param_groups
                                                    for p in g["params"] if p.grad is not None]))))
        return orig(*a, **k)

    stepper.opt.step = recording_step
    for _ in range(6):
        loss = 1e3 * net.heads[0](net.features(net.bottom(x))).pow(2).mean()  # a large gradient to clip
        stepper.step(loss)
    for s, lrs in enumerate(seen, start=1):
        for name, lr in lrs.items():
            want = base[name] * (min(s, 4) / 4 if name.startswith("block:") else 1.0)
            assert lr == pytest.approx(want, rel=1e-12), (s, name)
    assert max(norms) <= 0.5 * (1 + 1e-5)
    # one epoch of steps, or a tenth of the fine-tuning's, whichever is more
    assert warmup_steps(600, 64, 6) == 10 and warmup_steps(600, 64, 20) == 20 and warmup_steps(50, 64, 20) == 2


def test_a_vit_trains_with_its_recipe_and_the_warm_up_starts_with_the_blocks(digits, monkeypatch):
    """full_finetune on a ViT without rates given: the transformer recipe's values are used and recorded;
    the rate warm-up starts when the blocks start training (after the LP-FT heads epoch), not before."""
    import advisor.train._loop as loop
    from advisor.train import run_strategy

    calls = []

    class Recording(loop.Stepper):
        def warm_up_blocks(self, steps):
            calls.append((steps, self.opt.state and len(self.opt.state)))
            super().warm_up_blocks(steps)

    monkeypatch.setattr(loop, "Stepper", Recording)
    r = run_strategy(digits, "full_finetune", {"warmup_epochs": 1, "epochs": 2, "batch_size": 32, "patience": 5})
    assert {k: r.params[k] for k in ("lr_ratio", "layer_decay", "rate_warmup", "clip_grad")} == \
        {"lr_ratio": 0.01, "layer_decay": 0.75, "rate_warmup": True, "clip_grad": 1.0}
    assert r.extra["recipe"] == "transformer"
    n_train = len(digits.split.train)
    assert len(calls) == 1 and calls[0][0] == loop.warmup_steps(n_train, 32, 2)
    assert calls[0][1] > 0  # the heads epoch had already stepped the optimizer: the warm-up began after it
    lrs = r.extra["param_group_lrs"]  # the groups' own rates, not where the warm-up left them
    top = digits.backbone.block_names[-1]
    assert lrs[f"block:{top}"] == pytest.approx(1e-2 * 0.01) and lrs["head:label"] == pytest.approx(1e-2)
