"""Frozen passes fold BatchNorm into the convolution before it (``advisor.models.engine.folded``, issue 22).

The folded network is the same function in eval mode: its outputs must equal the unfolded ones to float32
accumulation error (relative 1e-4, the bound tests/engine/test_engine_reference.py uses between CPU kinds;
measured on MobileNetV2: about 1e-6), the network the caller holds must not change, a norm that does more than
normalise (timm's BatchNormAct2d applies its activation) must not be folded, and a pass a hook watches (analyze's
BatchNorm moments) must run the modules the hook is on. The cache keeps folded and unfolded values apart.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

REL = 1e-4


def _random_stats(module: nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics and affine parameters (a random network's are 0/1: folding them is a no-op)."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max())


@pytest.mark.parametrize("name, pairs", [("mobilenet_v2", 52), ("resnet18", 20)])
def test_a_folded_network_is_the_same_function_and_leaves_the_network_alone(one_torch_thread, name, pairs):
    """Every Conv-BN pair folds: MobileNetV2's sit in Sequentials, ResNet's in BasicBlocks (conv1/bn1, conv2/bn2)
    and in the stem's and the downsampling Sequentials."""
    from advisor.models import engine, registry

    bb = registry.create_backbone(name, weights="random", image_size=32)
    _random_stats(bb)
    blocks = list(bb.blocks)
    before = {k: v.clone() for k, v in bb.state_dict().items()}
    assert sum(len(engine._foldable_pairs(b)) for b in blocks) == pairs
    fold = engine.folded(blocks)
    assert all(f is not b for f, b in zip(fold, blocks))  # copies: every block has a pair
    assert not any(isinstance(m, nn.BatchNorm2d) for f in fold for m in f.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in bb.modules())  # the caller's still has its norms
    x = torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        a, b = engine.run(blocks, x), engine.run(fold, x)
    assert 0 < _rel(a, b) < REL  # other roundoff, the same function
    assert all(torch.equal(v, before[k]) for k, v in bb.state_dict().items())
    # the folded weights keep the channels-last order the registry stores (else every convolution converts)
    conv = next(m for f in fold for m in f.modules() if isinstance(m, nn.Conv2d) and m.out_channels > 8)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_a_norm_that_also_activates_is_not_folded(one_torch_thread):
    """timm's BatchNormAct2d subclasses BatchNorm2d and applies its activation inside: folding it into the
    convolution would drop the activation. Exact types only, in a plain Sequential."""
    from advisor.models import engine

    BatchNormAct2d = pytest.importorskip("timm.layers").BatchNormAct2d

    block = nn.Sequential(nn.Conv2d(3, 8, 3), BatchNormAct2d(8, act_layer=nn.ReLU))
    block.eval()
    assert engine._foldable_pairs(block) == []
    assert engine.folded([block])[0] is block

    class Custom(nn.Sequential):  # a Sequential with its own forward may use its children in any order
        def forward(self, x):
            return self[1](x)

    odd = Custom(nn.BatchNorm2d(3), nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)).eval()
    assert engine._foldable_pairs(odd) == []
    plain = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU()).eval()
    assert len(engine._foldable_pairs(plain)) == 1


def test_a_hooked_pass_runs_the_modules_its_hooks_watch_and_an_unhooked_one_folds(one_torch_thread, monkeypatch):
    from advisor.context import make_context
    from advisor.context.cache import extract
    from advisor.models import engine

    ctx = make_context("digits:10", "mobilenet_v2", weights="random", image_size=32, cache_dir=False)
    _random_stats(ctx.backbone)
    folds = []
    real = engine.folded
    monkeypatch.setattr(engine, "folded", lambda blocks: folds.append(1) or real(blocks))
    idx = np.arange(12)
    plain = extract(ctx, idx, pooled=(5,))[0][5]
    assert folds == [1]
    seen = []
    bn = next(m for m in ctx.backbone.blocks[2].modules() if isinstance(m, nn.BatchNorm2d))
    handle = bn.register_forward_hook(lambda *a: seen.append(1))
    try:
        hooked = extract(ctx, idx, pooled=(5,))[0][5]
    finally:
        handle.remove()
    assert folds == [1] and len(seen) == 1  # one batch, through the very module the hook is on
    assert 0 < np.abs(plain - hooked).max() / np.abs(hooked).max() < REL
    monkeypatch.setattr(engine, "FOLD_BN", False)
    assert np.array_equal(extract(ctx, idx, pooled=(5,))[0][5], hooked)  # off: the unfolded pass, bit for bit


def test_the_cache_keeps_folded_and_unfolded_values_apart(one_torch_thread, tmp_path, monkeypatch):
    from advisor.context import make_context
    from advisor.models import engine

    ctx = make_context("digits:10", "mobilenet_v2", weights="random", image_size=32, cache_dir=tmp_path)
    on = ctx.cache.key(ctx, pooled=3)
    monkeypatch.setattr(engine, "FOLD_BN", False)
    assert ctx.cache.key(ctx, pooled=3) != on
