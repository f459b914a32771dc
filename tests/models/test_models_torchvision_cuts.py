"""torchvision families: block names, exact reproduction, parameter partition, channels."""

from __future__ import annotations

import copy

import pytest
import torch
from torchvision.models import get_model

from advisor.models import Backbone, create_backbone
from advisor.models._convnext import cut_convnext
from advisor.models._efficientnet import cut_efficientnet
from advisor.models._layout import NCHW
from advisor.models._mobilenet import cut_mobilenet
from advisor.models._resnet import cut_resnet
from tests.models._helpers import assert_params_partitioned, batch, run_cut


def _resnet_names(layers):
    return ["stem"] + [f"layer{i + 1}.{j}" for i, n in enumerate(layers) for j in range(n)]


EFFNET_B0 = ["stem"] + [f"stage{s}.{j}" for s, n in enumerate([1, 2, 2, 3, 3, 4, 1], 1) for j in range(n)]
CASES = {
    "mobilenet_v2": (cut_mobilenet, ["stem"] + [f"ir{i}" for i in range(1, 18)] + ["conv_last"], 32, 1280),
    "mobilenet_v3_small": (cut_mobilenet, ["stem"] + [f"ir{i}" for i in range(1, 12)] + ["conv_last"], 16, 576),
    "resnet18": (cut_resnet, _resnet_names([2, 2, 2, 2]), 64, 512),
    "resnet50": (cut_resnet, _resnet_names([3, 4, 6, 3]), 64, 2048),
    "efficientnet_b0": (cut_efficientnet, EFFNET_B0 + ["conv_last"], 32, 1280),
    "convnext_tiny": (
        cut_convnext,
        ["stem"] + [f"stage{s}.{j}" for s, n in enumerate([3, 3, 9, 3], 1) for j in range(n)],
        96,
        768,
    ),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    name = request.param
    torch.manual_seed(0)
    reference = get_model(name, weights=None).eval()
    return name, reference


def test_cut_reproduces_reference(case):
    name, reference = case
    cut_fn, names, stem_ch, last_ch = CASES[name]
    model = copy.deepcopy(reference)
    cut = cut_fn(model)
    assert [n for n, _ in cut.blocks] == names
    x = batch()
    with torch.no_grad():
        expected = reference(x)
    out = run_cut([m for _, m in cut.blocks], cut.head, x)
    assert out.shape == expected.shape == (2, 1000)
    assert torch.allclose(out, expected, atol=1e-5, rtol=1e-5)
    assert_params_partitioned(model, [m for _, m in cut.blocks], cut.head)


def test_create_backbone_random_matches_reference_weights(case, tmp_path):
    """The public path: the reference's state dict loaded by create_backbone gives the same logits."""
    name, reference = case
    _, names, stem_ch, last_ch = CASES[name]
    path = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), path)
    bb = create_backbone(name, weights=str(path))
    assert isinstance(bb, Backbone) and not bb.training
    # create_backbone stores a CNN's convolutions channels-last (advisor.models.registry.CHANNELS_LAST): the
    # reference in the same memory order computes in the same order (tests/engine compares the two orders)
    convs = [p for p in bb.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    reference = copy.deepcopy(reference).to(memory_format=torch.channels_last)
    assert bb.block_names == names
    assert bb.layout == NCHW and bb.layout.to_dict() == {"kind": "nchw", "pool": "avg", "n_prefix": 0}
    assert bb.patch_size == 1 and bb.fixed_size is None
    assert bb.block_channels[0] == stem_ch and bb.block_channels[-1] == last_ch == bb.feature_dim
    x = batch(1)
    with torch.no_grad():
        expected = reference(x)
        feats = bb.forward_blocks(x)
        out = bb(x)
    assert [f.shape[1] for f in feats] == bb.block_channels
    assert len(feats) == len(names)
    assert torch.allclose(out, expected, atol=1e-5, rtol=1e-5)
    assert torch.allclose(bb.head(feats[-1]), expected, atol=1e-5, rtol=1e-5)
    assert bb.num_parameters() == sum(p.numel() for p in reference.parameters())
    assert bb.num_source_classes == 1000


def test_random_weights_backbone():
    bb = create_backbone("resnet18", weights="random")
    assert bb.weights_id == "random"
    assert bb.num_source_classes == 1000
    assert bb.preprocessing["crop_size"] == 224 and bb.preprocessing["resize_size"] == 256
    assert bb.preprocessing["mean"] == (0.485, 0.456, 0.406)
    assert bb.preprocessing["std"] == (0.229, 0.224, 0.225)
    none = create_backbone("resnet18", weights="none")
    assert none.weights_id == "random"


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "timm:mobilenetv3_small_100"])
def test_random_weights_are_one_network_and_leave_the_callers_random_state(name):
    """"random" is a cache key: two builds must be the same weights, or a cache would serve one's features to the
    other; and building one must not move the caller's seed."""
    import torch

    torch.manual_seed(123)
    expect = torch.rand(3)
    torch.manual_seed(123)
    a = create_backbone(name, weights="random")
    after = torch.rand(3)
    b = create_backbone(name, weights="random")
    assert torch.equal(after, expect)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_convnext_downsample_merged_into_first_block():
    bb = create_backbone("convnext_tiny", weights="random")
    first = bb.blocks[bb.block_index("stage2.0")]
    assert isinstance(first, torch.nn.Sequential) and len(first) == 2
    assert type(first[1]).__name__ == "CNBlock"
    assert type(bb.blocks[bb.block_index("stage1.0")]).__name__ == "CNBlock"
    assert bb.block_channels[bb.block_index("stage2.0")] == 192


def test_mobilenet_v3_head_keeps_hidden_layer():
    bb = create_backbone("mobilenet_v3_small", weights="random")
    linears = [m for m in bb.head.modules() if isinstance(m, torch.nn.Linear)]
    assert [tuple(l.weight.shape) for l in linears] == [(1024, 576), (1000, 1024)]
