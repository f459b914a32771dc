"""Weights: the offline ImageNet file, local state-dict files, checkpoints, headless checkpoints."""

from __future__ import annotations

import hashlib
import os

import pytest
import torch
from torchvision.models import get_model

from advisor.models import backbone_spec_id, create_backbone
from tests.models._helpers import batch

MOBILENET_FILE = os.path.join(torch.hub.get_dir(), "checkpoints", "mobilenet_v2-b0353104.pth")
needs_mobilenet_file = pytest.mark.skipif(
    not os.path.isfile(MOBILENET_FILE), reason="offline mobilenet_v2 ImageNet file not in the torch hub cache"
)


@pytest.fixture(scope="module")
def pretrained_mobilenet():
    return create_backbone("mobilenet_v2")


@needs_mobilenet_file
def test_pretrained_mobilenet_v2_loads_offline(pretrained_mobilenet):
    bb = pretrained_mobilenet
    assert bb.name == "mobilenet_v2"
    assert bb.weights_id == "IMAGENET1K_V1"
    assert backbone_spec_id(bb) == "mobilenet_v2@IMAGENET1K_V1"
    assert bb.num_source_classes == 1000
    assert len(bb.block_names) == 19 and bb.feature_dim == 1280
    assert bb.preprocessing == {
        "resize_size": 256,
        "crop_size": 224,
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "interpolation": "bilinear",
    }
    assert not bb.training
    # real ImageNet statistics, not a fresh init
    bn = bb.blocks[0][1]
    assert isinstance(bn, torch.nn.BatchNorm2d)
    assert bn.running_mean.abs().sum() > 0
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))


@needs_mobilenet_file
def test_pretrained_top1_is_deterministic(pretrained_mobilenet):
    x = batch(7)
    with torch.no_grad():
        a = pretrained_mobilenet(x).argmax(1)
        b = pretrained_mobilenet(x).argmax(1)
    assert torch.equal(a, b)
    assert a.shape == (2,) and int(a.max()) < 1000


@needs_mobilenet_file
def test_pretrained_matches_torchvision(pretrained_mobilenet):
    ref = get_model("mobilenet_v2", weights="IMAGENET1K_V1").eval()
    x = batch(8)
    with torch.no_grad():
        assert torch.allclose(pretrained_mobilenet(x), ref(x), atol=1e-5, rtol=1e-5)


@needs_mobilenet_file
def test_named_torchvision_weights():
    bb = create_backbone("mobilenet_v2", weights="imagenet1k_v1")
    assert bb.weights_id == "IMAGENET1K_V1" and bb.num_source_classes == 1000


def _mobilenet(num_classes: int = 1000, seed: int = 0):
    torch.manual_seed(seed)
    return get_model("mobilenet_v2", weights=None, num_classes=num_classes).eval()


def test_weights_path_round_trip(tmp_path):
    ref = _mobilenet()
    path = tmp_path / "mnv2.pth"
    torch.save(ref.state_dict(), path)
    bb = create_backbone("mobilenet_v2", weights=str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert bb.weights_id == f"file:{digest}"
    assert backbone_spec_id(bb) == f"mobilenet_v2@file:{digest}"
    assert bb.preprocessing["crop_size"] == 224 and bb.preprocessing["resize_size"] == 256
    x = batch(2)
    with torch.no_grad():
        assert torch.allclose(bb(x), ref(x), atol=1e-5, rtol=1e-5)


def test_weights_path_ten_classes(tmp_path):
    ref = _mobilenet(num_classes=10, seed=3)
    path = tmp_path / "ten.pth"
    torch.save(ref.state_dict(), path)
    bb = create_backbone("mobilenet_v2", weights=path)  # os.PathLike works too
    assert bb.num_source_classes == 10
    x = batch(5)
    with torch.no_grad():
        out = bb(x)
        assert out.shape == (2, 10)
        assert torch.allclose(out, ref(x), atol=1e-5, rtol=1e-5)


def test_wrapped_checkpoint_with_module_prefix(tmp_path):
    ref = _mobilenet(seed=4)
    sd = {f"module.{k}": v for k, v in ref.state_dict().items()}
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": sd, "optimizer": {"lr": 0.1}}, path)
    bb = create_backbone("mobilenet_v2", weights=str(path))
    x = batch(6)
    with torch.no_grad():
        assert torch.allclose(bb(x), ref(x), atol=1e-5, rtol=1e-5)


def test_model_key_checkpoint(tmp_path):
    torch.manual_seed(5)
    ref = get_model("resnet18", weights=None).eval()
    path = tmp_path / "m.pth"
    torch.save({"model": ref.state_dict()}, path)
    bb = create_backbone("resnet18", weights=str(path))
    x = batch(9)
    with torch.no_grad():
        assert torch.allclose(bb(x), ref(x), atol=1e-5, rtol=1e-5)


def test_headless_checkpoint_gives_no_head(tmp_path):
    torch.manual_seed(6)
    ref = get_model("resnet18", weights=None).eval()
    sd = {k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    path = tmp_path / "body.pth"
    torch.save(sd, path)
    bb = create_backbone("resnet18", weights=str(path))
    assert bb.head is None and bb.num_source_classes is None
    x = batch(10)
    with torch.no_grad():
        out = bb(x)
        body = torch.nn.Sequential(*list(ref.children())[:-1])
        assert out.shape == (2, 512)
        assert torch.allclose(out, body(x).flatten(1), atol=1e-5, rtol=1e-5)
