"""timm CNNs cut through feature_info: names, exact reproduction, parameter partition, channels, layout.

Transformers (which used to be refused here) are in test_models_transformers.py."""

from __future__ import annotations

import copy

import pytest
import timm
import torch

from advisor.models import create_backbone
from advisor.models._layout import NCHW
from advisor.models._timm import cut_timm
from tests.models._helpers import assert_params_partitioned, batch, raises_one_line, run_cut

CASES = {
    "resnet18": (["stem", "layer1", "layer2", "layer3", "layer4"], [64, 64, 128, 256, 512]),
    "efficientnet_b0": (
        ["stem", "blocks.0", "blocks.1", "blocks.2", "blocks.4", "blocks.6"],
        [32, 16, 24, 40, 112, 1280],
    ),
    "convnext_tiny": (["stem", "stages.0", "stages.1", "stages.2", "stages.3"], [96, 96, 192, 384, 768]),
    "mobilenetv3_small_100": (["stem", "blocks.0", "blocks.1", "blocks.3", "blocks.5"], [16, 16, 24, 48, 576]),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    name = request.param
    torch.manual_seed(0)
    return name, timm.create_model(name, pretrained=False).eval()


def test_cut_reproduces_reference(case):
    name, reference = case
    names, channels = CASES[name]
    model = copy.deepcopy(reference)
    cut = cut_timm(model, name)
    assert [n for n, _ in cut.blocks] == names
    x = batch()
    with torch.no_grad():
        expected = reference(x)
    out = run_cut([m for _, m in cut.blocks], cut.head, x)
    assert out.shape == expected.shape == (2, 1000)
    assert torch.allclose(out, expected, atol=1e-5, rtol=1e-5)
    assert_params_partitioned(model, [m for _, m in cut.blocks], cut.head)


def test_create_backbone_from_reference_state_dict(case, tmp_path):
    name, reference = case
    names, channels = CASES[name]
    path = tmp_path / "w.pth"
    torch.save(reference.state_dict(), path)
    bb = create_backbone(f"timm:{name}", weights=str(path))
    assert bb.name == f"timm:{name}"
    assert bb.block_names == names
    assert bb.layout == NCHW and bb.patch_size == 1
    assert bb.block_channels == channels and bb.feature_dim == channels[-1]
    x = batch(3)
    with torch.no_grad():
        expected = reference(x)
        out = bb(x)
    assert torch.allclose(out, expected, atol=1e-5, rtol=1e-5)
    assert bb.num_parameters() == sum(p.numel() for p in reference.parameters())
    assert bb.num_source_classes == 1000
    assert bb.preprocessing["crop_size"] == 224 and bb.preprocessing["interpolation"] == "bicubic"


def test_random_timm_backbone_train_eval_mode_reaches_head():
    bb = create_backbone("timm:resnet18", weights="random")
    assert bb.weights_id == "random" and not bb.training
    bb.train()
    assert bb.head.net.training and bb.blocks[0].training
    bb.eval()
    assert not bb.head.net.training


def test_timm_ten_class_state_dict(tmp_path):
    torch.manual_seed(1)
    ref = timm.create_model("resnet18", pretrained=False, num_classes=10).eval()
    path = tmp_path / "ten.pth"
    torch.save(ref.state_dict(), path)
    bb = create_backbone("timm:resnet18", weights=str(path))
    assert bb.num_source_classes == 10
    x = batch(4)
    with torch.no_grad():
        assert torch.allclose(bb(x), ref(x), atol=1e-5, rtol=1e-5)
