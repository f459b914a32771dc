"""The small public surface: list_models, pooled, forward without head, spec ids."""

from __future__ import annotations

import torch

from advisor.models import Backbone, backbone_spec_id, create_backbone, global_pool, list_models
from tests.models._helpers import batch


def test_list_models_covers_families():
    names = list_models()
    for n in ("mobilenet_v2", "mobilenet_v3_large", "resnet18", "resnet152", "wide_resnet50_2",
              "resnext50_32x4d", "efficientnet_b7", "efficientnet_v2_s", "convnext_large"):
        assert n in names
    assert len(names) == len(set(names))


def test_pooled_and_forward_blocks():
    bb = create_backbone("mobilenet_v3_small", weights="random")
    x = batch()
    with torch.no_grad():
        feats = bb.forward_blocks(x)
    assert len(feats) == len(bb.block_names) == len(bb.block_channels)
    pooled = bb.pool(feats[-1])
    assert pooled.shape == (2, bb.feature_dim)
    assert torch.allclose(pooled, feats[-1].mean(dim=(2, 3)))
    assert torch.equal(pooled, global_pool(feats[-1])) and torch.equal(bb.pooled(feats[-1]), pooled)
    assert bb.pool(pooled) is pooled


def test_forward_without_head_is_pooled_features():
    bb = create_backbone("resnet18", weights="random")
    x = batch()
    with torch.no_grad():
        expected = bb.pooled(bb.forward_blocks(x)[-1])
        bb.head = None
        assert torch.allclose(bb(x), expected)


def test_spec_id_and_name_normalisation():
    bb = create_backbone(" ResNet18 ", weights="random")
    assert bb.name == "resnet18"
    assert backbone_spec_id(bb) == "resnet18@random"
    tb = create_backbone("timm:mobilenetv3_small_100", weights="random")
    assert backbone_spec_id(tb) == "timm:mobilenetv3_small_100@random"


def test_direct_backbone_starts_in_eval_mode():
    blocks = [("stem", torch.nn.Conv2d(3, 4, 3, stride=2)), ("b1", torch.nn.BatchNorm2d(4))]
    head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(1), torch.nn.Linear(4, 5))
    bb = Backbone("toy", "random", blocks, head, 5, {})
    assert not bb.training
    assert bb.block_channels == [4, 4] and bb.feature_dim == 4
    assert bb.num_parameters() == 3 * 4 * 9 + 4 + 8 + 4 * 5 + 5
    assert bb(batch()).shape == (2, 5)
