"""A transformer through the one feature engine: analyze, the activation cache and every trainer on a ViT.

A random-weight ``timm:vit_tiny_patch16_224`` at 32 px (2 x 2 patches and a class token: blocks output
``(N, 5, 192)`` tokens) on scikit-learn's digits. The cache's values are compared with a direct
computation on the same batch in the same process (the same CPU kernels on the same inputs: equal
bit for bit), pooled by the class token written out here (``x[:, 0]``), not through the layout.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from advisor.models import engine

VIT, SIZE, DATA = "timm:vit_tiny_patch16_224", 32, "digits:10"


@pytest.fixture(scope="module")
def ctx(one_torch_thread, tmp_path_factory):
    from advisor.context import make_context

    return make_context(DATA, VIT, weights="random", image_size=SIZE, seed=0, device="cpu",
                        cache_dir=tmp_path_factory.mktemp("acts"))


def images(ctx, idx) -> torch.Tensor:
    return torch.stack([ctx.preprocess(ctx.dataset.load(int(i))) for i in idx])


def test_the_context_builds_the_vit_at_the_image_size(ctx):
    bb = ctx.backbone
    assert bb.layout.kind == "nlc" and bb.layout.pool == "token" and bb.layout.n_prefix == 1
    assert ctx.preprocess.crop_size == SIZE
    with torch.no_grad():
        outs = bb.forward_blocks(images(ctx, [0, 1]))
    assert [tuple(o.shape) for o in outs[1:]] == [(2, 1 + (SIZE // 16) ** 2, 192)] * (len(outs) - 1)


def test_analyze_measures_a_vit_without_batchnorm():
    import advisor

    a = advisor.analyze(DATA, VIT, weights="random", sample=50, image_size=SIZE, seed=0, device="cpu", check="off")
    p = a.profile
    assert len(p.blocks) == 13 and [b.channels for b in p.blocks] == [192] * 13  # stem + 12 transformer blocks
    # no BatchNorm in a ViT and no reference moments for these random weights: no shift, not zero, not a crash
    assert all(b.n_bn_layers == 0 and b.shift is None for b in p.blocks)
    assert p.shift_measure.measure == "none" and "BatchNorm" in p.shift_measure.reason
    assert all(math.isfinite(b.linear_probe_accuracy["label"]) for b in p.blocks)
    assert a.advice.strategy


def test_the_cache_serves_class_tokens_and_token_boundaries_equal_to_a_direct_pass(ctx):
    idx = np.arange(0, 80, 2)  # 40 items: one batch, as the direct pass below
    last, b = len(ctx.backbone.block_names) - 1, 4
    cache = ctx.cache
    cache.ensure(ctx, idx, pooled=(last,), boundaries=(b,))
    computed = cache.stats["computed"]
    got_pooled = cache.pooled(ctx, last, idx)
    got_boundary = cache.boundary(ctx, b, idx)
    assert cache.stats["computed"] == computed  # both served from disk
    with torch.no_grad():
        outs = ctx.backbone.forward_blocks(images(ctx, idx))
    np.testing.assert_array_equal(got_pooled, outs[last][:, 0].numpy())
    assert got_boundary.shape == (40, 5, 192)  # (L, C) tokens per item, stored as float16
    assert torch.equal(got_boundary, outs[b - 1].to(torch.float16).float())
    # what the cache fills with is the engine's extract, exact (no float16 rounding)
    pooled, boundary = cache_extract(ctx, idx, last, b)
    np.testing.assert_array_equal(pooled, got_pooled)
    assert torch.equal(boundary, outs[b - 1])


def cache_extract(ctx, idx, last, b):
    from advisor.context.cache import extract

    p, bd = extract(ctx, idx, pooled=(last,), boundaries=(b,))
    return p[last], bd[b]


def test_pooling_by_class_token_and_by_patch_mean_are_different_entries(ctx):
    import copy
    import dataclasses

    from advisor.context.cache import ActivationCache

    avg_bb = copy.deepcopy(ctx.backbone)
    avg_bb.set_pool("avg")
    avg = dataclasses.replace(ctx, backbone=avg_bb)
    last = len(ctx.backbone.block_names) - 1
    cache = ActivationCache(ctx.cache.root)
    assert cache.key(avg, pooled=last) != cache.key(ctx, pooled=last)
    # a boundary does not depend on the pooling: one entry serves both
    assert cache.key(avg, boundary=3) == cache.key(ctx, boundary=3)
    idx = np.arange(6)
    with torch.no_grad():
        out = ctx.backbone.forward_features(images(ctx, idx))
    np.testing.assert_allclose(cache.pooled(avg, last, idx), out[:, 1:].mean(dim=1).numpy(), rtol=1e-6, atol=1e-6)
    # the cache ran these images in another batch than this direct pass: equal to float32 roundoff (on AVX512 the
    # batch's size picks the matmul kernel), and far from the patch mean above
    np.testing.assert_allclose(cache.pooled(ctx, last, idx), out[:, 0].numpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(out[:, 0].numpy(), out[:, 1:].mean(dim=1).numpy(), rtol=1e-3, atol=1e-3)


def test_the_engine_pools_by_the_layout_it_is_given(ctx):
    x = images(ctx, [3, 4])
    bb = ctx.backbone
    with torch.no_grad():
        assert torch.equal(engine.pooled(bb.blocks, x, bb.layout), bb.forward_features(x)[:, 0])
        assert torch.equal(engine.run_each(bb.blocks, x)[-1], engine.run(bb.blocks, x))


STRATEGIES = {
    "linear_probe": {},
    "svm_early": {"block": "blocks.9"},
    "last_k": {"k": 2, "epochs": 1, "batch_size": 32},
    "full_finetune": {"epochs": 1, "batch_size": 32},
}


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_strategy_trains_on_a_vit_and_its_model_round_trips(ctx, strategy, tmp_path):
    from advisor.train import run_strategy
    from advisor.deploy.modelfile import load_model, save_model

    r = run_strategy(ctx, strategy, STRATEGIES[strategy])
    assert 0.0 <= r.val_accuracy <= 1.0
    model = r.model
    assert model.layout == ctx.backbone.layout
    x = images(ctx, ctx.split.val[:8])
    with torch.no_grad():
        want = model(x)
    path = save_model(r, tmp_path / "vit.pt", model_name=VIT, weights="random", preprocess=ctx.preprocess)
    loaded, meta = load_model(path)
    with torch.no_grad():
        got = loaded(x)
    assert meta["strategy"] == strategy
    assert torch.equal(got, want)


def test_a_vit_pooled_by_patch_mean_round_trips(ctx, tmp_path):
    import copy
    import dataclasses

    from advisor.train import run_strategy
    from advisor.deploy.modelfile import load_model, save_model

    bb = copy.deepcopy(ctx.backbone)
    bb.set_pool("avg")
    avg = dataclasses.replace(ctx, backbone=bb, make_backbone=lambda: copy.deepcopy(bb))
    r = run_strategy(avg, "linear_probe", {})
    assert r.model.layout.pool == "avg"
    x = images(ctx, ctx.split.val[:8])
    loaded, _ = load_model(save_model(r, tmp_path / "avg.pt", model_name=VIT, weights="random",
                                      preprocess=ctx.preprocess))
    assert loaded.layout == r.model.layout
    with torch.no_grad():
        assert torch.equal(loaded(x), r.model(x))


def test_the_boundary_cache_keeps_swin_windows_channels_last(one_torch_thread, tmp_path):
    from advisor.context import make_context

    swin = make_context("digits:5", "swin_t", weights="random", image_size=SIZE, seed=0, device="cpu",
                        cache_dir=tmp_path)
    assert swin.backbone.layout.kind == "nhwc"
    idx = np.arange(len(swin.dataset))
    got = swin.cache.boundary(swin, 2, idx)
    pooled = swin.cache.pooled(swin, 2, idx)
    with torch.no_grad():
        outs = swin.backbone.forward_blocks(images(swin, idx))
    c = swin.backbone.block_channels[1]
    assert got.shape[1:] == outs[1].shape[1:] and got.shape[-1] == c  # (H, W, C) per item
    assert torch.equal(got, outs[1].to(torch.float16).float())
    np.testing.assert_array_equal(pooled, outs[2].mean(dim=(1, 2)).numpy())


def test_a_torchvision_vit_saved_at_its_image_size_round_trips(one_torch_thread, tmp_path):
    """torchvision's ViT is built at the image size (its position embedding interpolated): the file
    records the size, so loading rebuilds the same architecture."""
    from advisor.context import make_context
    from advisor.train import run_strategy
    from advisor.deploy.modelfile import load_model, save_model

    tv = make_context("digits:5", "vit_b_16", weights="random", image_size=SIZE, seed=0, device="cpu",
                      cache_dir=False)
    r = run_strategy(tv, "linear_probe", {})
    x = images(tv, tv.split.val[:4])
    loaded, meta = load_model(save_model(r, tmp_path / "tv.pt", model_name="vit_b_16", weights="random",
                                         preprocess=tv.preprocess))
    assert meta["image_size"] == SIZE and meta["layout"] == {"kind": "nlc", "pool": "token", "n_prefix": 1}
    with torch.no_grad():
        assert torch.equal(loaded(x), r.model(x))


def test_an_old_model_file_without_the_layout_is_refused_in_one_line(tmp_path):
    """A file of the format before the layout was recorded: one line naming the format and the fix."""
    import torch as _torch

    from advisor.errors import AdvisorError
    from advisor.deploy.modelfile import load_model

    path = tmp_path / "old.pt"
    _torch.save({"format": "advisor.model/1", "model_name": "mobilenet_v2", "state_dict": {}}, path)
    with pytest.raises(AdvisorError) as info:
        load_model(path)
    msg = str(info.value)
    assert "\n" not in msg and "advisor.model/1" in msg and "save it again" in msg
