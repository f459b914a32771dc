"""Transformer backbones: declared layouts and pooling, cuts of timm and torchvision ViT / Swin, image sizes,
per-block parameter groups, preprocessing and bad inputs (one line each).

Random weights throughout, inputs of 64-70 px. The cuts run exactly the model's own operations in the
model's own order on the CPU, so blocks then head reproduce ``model(x)`` bit for bit (``torch.equal``).
"""

from __future__ import annotations

import copy

import pytest
import timm
import torch
from torchvision.models import get_model

from advisor.models import create_backbone, global_pool
from advisor.models._layout import NCHW, Layout
from advisor.models._swin import cut_swin
from advisor.models._timm import cut_timm, dynamic_twin
from advisor.models._vit import build_vit, cut_vit
from tests.models._helpers import assert_params_partitioned, batch, raises_one_line, run_cut

torch.set_num_threads(1)


# --------------------------------------------------------------------------- layouts and pooling
def tokens(n=2, length=5, width=3, seed=0) -> torch.Tensor:
    """(N, L, C) tokens with L != C, so pooling over the wrong axis changes the shape."""
    return torch.randn(n, length, width, generator=torch.Generator().manual_seed(seed))


def test_global_pool_refuses_tokens_it_would_pool_over_channels():
    x = tokens()
    # the old global_pool read (N, L, C) as (N, C, L) and averaged the channels away: (2, 5), not (2, 3)
    assert x.mean(dim=2).shape == (2, 5)
    with raises_one_line("cannot pool a 3-D tensor of shape (2, 5, 3) without a declared layout", "backbone.pool"):
        global_pool(x)
    maps = torch.randn(2, 4, 3, 3)
    assert torch.equal(global_pool(maps), maps.mean(dim=(2, 3)))


def test_token_layout_pools_the_class_token_or_the_patch_tokens():
    x = tokens(length=6)
    assert torch.equal(Layout("nlc", "token", 1).pool_tensor(x), x[:, 0])
    # two prefix tokens (class + register) stay out of the mean
    avg = Layout("nlc", "avg", 2).pool_tensor(x)
    assert torch.allclose(avg, x[:, 2:].sum(dim=1) / 4, rtol=1e-6, atol=1e-7)
    assert not torch.allclose(avg, x.mean(dim=1))
    assert Layout("nlc", "avg", 0).pool_tensor(x).shape == (2, 3)
    pooled = x[:, 0]
    assert Layout("nlc", "token", 1).pool_tensor(pooled) is pooled


def test_channels_last_layout_pools_over_positions():
    x = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(Layout("nhwc", "avg").pool_tensor(x), x.mean(dim=(1, 2)))
    assert Layout("nhwc").channels(x) == 5 and NCHW.channels(x) == 3
    with raises_one_line("cannot pool a tensor of shape (2, 5, 3) as a nhwc block output", "(N, H, W, C)"):
        Layout("nhwc").pool_tensor(tokens())


def test_layout_round_trips_and_refuses_what_does_not_apply():
    for layout in (NCHW, Layout("nlc", "token", 1), Layout("nlc", "avg", 5), Layout("nhwc")):
        assert Layout.from_dict(layout.to_dict()) == layout
    with raises_one_line("pooling 'token' does not apply to nchw", "avg"):
        Layout("nchw", "token")
    with raises_one_line("class-token pooling needs a class token", "pool='avg'"):
        Layout("nlc", "token", 0)
    with raises_one_line("unknown block layout 'ncl'"):
        Layout("ncl")
    with raises_one_line("a block layout needs kind and pool", "Layout.to_dict()"):
        Layout.from_dict({"kind": "nlc"})
    with raises_one_line("a nchw layout has no prefix tokens"):
        Layout.from_dict({"kind": "nchw", "pool": "avg", "n_prefix": 1})


# --------------------------------------------------------------------------- timm cuts
TIMM = {
    # name: (probe side, block count, layout, width)
    "vit_tiny_patch16_224": (64, 13, Layout("nlc", "token", 1), 192),
    "deit_tiny_patch16_224": (64, 13, Layout("nlc", "token", 1), 192),
    "vit_small_patch14_dinov2": (70, 13, Layout("nlc", "token", 1), 384),
    "swin_tiny_patch4_window7_224": (64, 5, Layout("nhwc", "avg", 0), 768),
}


@pytest.fixture(scope="module", params=sorted(TIMM))
def timm_case(request):
    name = request.param
    torch.manual_seed(0)
    return name, dynamic_twin(timm.create_model(name, pretrained=False), name).eval()


def test_timm_transformer_cut_reproduces_the_model(timm_case):
    name, reference = timm_case
    side, count, layout, width = TIMM[name]
    model = copy.deepcopy(reference)
    cut = cut_timm(model, name)
    names = [n for n, _ in cut.blocks]
    feature_modules = [f["module"] for f in reference.feature_info]
    assert names == ["stem"] + feature_modules and len(names) == count
    assert cut.layout == layout and cut.probe_size == side
    x = batch(side=side)
    with torch.no_grad():
        expected = reference(x)
    assert torch.equal(run_cut([m for _, m in cut.blocks], cut.head, x), expected)
    assert_params_partitioned(model, [m for _, m in cut.blocks], cut.head)
    # the model's own tokens and position embedding belong to the stem
    stem_params = {id(p) for p in cut.blocks[0][1].parameters()}
    assert {id(p) for p in model._parameters.values()} <= stem_params


@pytest.mark.parametrize("name", [n for n in sorted(TIMM) if n.startswith(("vit", "deit"))])
def test_vit_blocks_are_timms_own_blocks(name):
    """Each block's patch tokens equal timm's forward_intermediates; the last block carries the final norm."""
    torch.manual_seed(1)
    reference = dynamic_twin(timm.create_model(name, pretrained=False), name).eval()
    cut = cut_timm(copy.deepcopy(reference), name)
    x = batch(2, side=TIMM[name][0])
    with torch.no_grad():
        inter = reference.forward_intermediates(x, output_fmt="NLC", intermediates_only=True)
        outs, y = [], x
        for _, b in cut.blocks:
            y = b(y)
            outs.append(y)
        last_normed = reference.forward_features(x)
    assert len(inter) == len(outs) - 1
    for got, want in zip(outs[1:-1], inter[:-1]):
        assert torch.equal(got[:, 1:], want)
    assert torch.equal(outs[-1], last_normed) and not torch.equal(outs[-1][:, 1:], inter[-1])


def test_timm_backbone_pools_like_its_head_and_counts_blocks(timm_case, tmp_path):
    name, reference = timm_case
    side, count, layout, width = TIMM[name]
    path = tmp_path / "w.pth"
    torch.save(reference.state_dict(), path)
    bb = create_backbone(f"timm:{name}", weights=str(path))
    assert bb.layout == layout and len(bb.block_channels) == count and bb.block_channels[-1] == bb.feature_dim == width
    x = batch(3, side=side)
    with torch.no_grad():
        feats = bb.forward_blocks(x)
        assert torch.equal(bb(x), reference(x))
        pre_logits = reference.forward_head(reference.forward_features(x), pre_logits=True)
    # the default pooling is the source head's own (class token for ViTs, mean for Swin)
    assert torch.allclose(bb.pool(feats[-1]), pre_logits, rtol=1e-5, atol=1e-6)
    assert all(bb.pool(f).shape == (2, c) for f, c in zip(feats, bb.block_channels))
    # one parameter group per block (each transformer block its own) then the head; all parameters once
    groups = bb.block_parameter_groups()
    has_head = name != "vit_small_patch14_dinov2"  # DINOv2 is a feature-only model: no classifier
    assert (bb.head is not None) == has_head
    assert [g for g, _ in groups] == bb.block_names + ["head"] * has_head
    flat = [id(p) for _, ps in groups for _, p in ps]
    assert len(flat) == len(set(flat)) == len(list(bb.parameters()))
    named = dict(bb.named_parameters())
    assert all(named[k] is p for _, ps in groups for k, p in ps)


def test_vit_mean_of_patch_tokens_on_request():
    bb = create_backbone("timm:vit_tiny_patch16_224", "random", pool="avg")
    assert bb.layout == Layout("nlc", "avg", 1)
    with torch.no_grad():
        last = bb.forward_features(batch())
    assert torch.allclose(bb.pool(last), last[:, 1:].mean(dim=1), rtol=1e-6, atol=1e-7)
    assert not torch.allclose(bb.pool(last), last[:, 0])
    bb.set_pool("token")
    assert torch.equal(bb.pool(last), last[:, 0])
    with raises_one_line("pooling 'token' does not apply to nchw block outputs", "avg"):
        create_backbone("timm:resnet18", "random", pool="token")


def test_position_embeddings_and_tokens_take_no_weight_decay():
    bb = create_backbone("timm:deit_tiny_patch16_224", "random")
    named = dict(bb.named_parameters())
    assert bb.no_decay == {"blocks.0.net.cls_token", "blocks.0.net.pos_embed"}
    assert not bb.decays("blocks.0.net.pos_embed", named["blocks.0.net.pos_embed"])
    assert not bb.decays("blocks.1.norm1.weight", named["blocks.1.norm1.weight"])
    assert bb.decays("blocks.1.attn.qkv.weight", named["blocks.1.attn.qkv.weight"])


# --------------------------------------------------------------------------- torchvision
def test_torchvision_vit_cut_reproduces_the_model():
    torch.manual_seed(0)
    reference = get_model("vit_b_16", weights=None, image_size=64).eval()
    model = copy.deepcopy(reference)
    cut = cut_vit(model)
    assert [n for n, _ in cut.blocks] == ["stem"] + [f"encoder_layer_{i}" for i in range(12)]
    assert cut.layout == Layout("nlc", "token", 1) and (cut.patch_size, cut.fixed_size) == (16, 64)
    x = batch()
    with torch.no_grad():
        assert torch.equal(run_cut([m for _, m in cut.blocks], cut.head, x), reference(x))
    assert_params_partitioned(model, [m for _, m in cut.blocks], cut.head)


def test_torchvision_swin_cut_reproduces_the_model():
    torch.manual_seed(0)
    reference = get_model("swin_t", weights=None).eval()
    model = copy.deepcopy(reference)
    cut = cut_swin(model)
    assert [n for n, _ in cut.blocks] == ["stem", "stage1", "stage2", "stage3", "stage4"]
    assert cut.layout == Layout("nhwc", "avg", 0)
    x = batch()
    with torch.no_grad():
        assert torch.equal(run_cut([m for _, m in cut.blocks], cut.head, x), reference(x))
        y = x
        for _, b in cut.blocks:
            y = b(y)
        assert y.shape == (2, 2, 2, 768)
        # the layout's mean over positions is the head's own average pool (a sum of 4 float32 values)
        assert torch.allclose(cut.layout.pool_tensor(y), cut.head[:3](y), rtol=1e-6, atol=1e-6)
    assert_params_partitioned(model, [m for _, m in cut.blocks], cut.head)


def test_torchvision_vit_weights_interpolated_to_the_image_size(tmp_path):
    """A 224 px state dict at --image-size 64: torchvision's bicubic interpolation of the position embedding."""
    from torchvision.models.vision_transformer import interpolate_embeddings

    torch.manual_seed(2)
    ref224 = get_model("vit_b_16", weights=None).eval()
    path = tmp_path / "vit.pth"
    torch.save(ref224.state_dict(), path)
    bb = create_backbone("vit_b_16", weights=str(path), image_size=64)
    assert bb.fixed_size == 64 and bb.patch_size == 16 and bb.probe_size == 64
    want = interpolate_embeddings(64, 16, ref224.state_dict())["encoder.pos_embedding"]
    assert want.shape == (1, 17, 768) and torch.equal(bb.blocks[0].pos_embedding, want)
    # class token row kept, other weights untouched
    assert torch.equal(want[:, :1], ref224.encoder.pos_embedding[:, :1])
    assert torch.equal(bb.blocks[1].mlp[0].weight, ref224.encoder.layers[0].mlp[0].weight)
    reference = build_vit("vit_b_16", 64, ref224.state_dict())
    x = batch(5)
    with torch.no_grad():
        assert torch.equal(bb(x), reference(x))
    assert bb.preprocessing["crop_size"] == 224 and bb.preprocessing["interpolation"] == "bilinear"
    with raises_one_line("vit_b_16 was built for 64 px inputs, not 96"):
        bb.check_image_size(96)


# --------------------------------------------------------------------------- image size
def test_timm_vit_runs_any_whole_number_of_patches_as_timm_resamples_at_load():
    """dynamic_img_size gives what timm gives for a model created at img_size=96 whose 224 px position
    embedding was resampled at load (timm's checkpoint_filter_fn)."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    name = "vit_tiny_patch16_224"
    torch.manual_seed(3)
    native = timm.create_model(name).eval()
    at96 = timm.create_model(name, img_size=96).eval()
    at96.load_state_dict(checkpoint_filter_fn(native.state_dict(), at96))
    dyn = dynamic_twin(native, name)
    cut = cut_timm(dyn, name)
    x = batch(6, side=96)
    with torch.no_grad():
        out = run_cut([m for _, m in cut.blocks], cut.head, x)
        want = at96(x)
        stem = cut.blocks[0][1]
        assert stem(x).shape == (2, 37, 192) and stem(batch(side=64)).shape == (2, 17, 192)
    # the same resampling function, computed at load or at each call: identical within float32 rounding
    assert torch.allclose(out, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, on_meta", [("vit_tiny_patch16_224", True),
                                           ("swin_tiny_patch4_window7_224", False)])
def test_dynamic_twin_built_on_meta_is_the_plain_twin(name, on_meta):
    """The twin is built on the meta device and takes copies of the model's tensors (no random
    initialisation to overwrite); a model with a buffer outside its state dict (Swin's relative
    position index) is built the plain way. Either way the twin computes exactly what the plain
    twin computes, leaves the model's tensors its own, and the global random state as it was."""
    from advisor.models._timm import _twin_on_meta

    torch.manual_seed(4)
    model = timm.create_model(name, pretrained=False).eval()
    with torch.random.fork_rng(devices=[]):
        plain = timm.create_model(name, pretrained=False, dynamic_img_size=True)
    plain.load_state_dict(model.state_dict())
    assert (_twin_on_meta(model, name) is not None) == on_meta
    state = torch.get_rng_state()
    twin = dynamic_twin(model, name)
    assert torch.equal(torch.get_rng_state(), state)
    assert twin is not model and twin.dynamic_img_size is True
    assert not any(t.is_meta for t in (*twin.parameters(), *twin.buffers()))
    own = {t.data_ptr() for t in model.state_dict().values()}
    assert not own & {t.data_ptr() for t in twin.state_dict().values()}
    x = batch(side=64)
    with torch.no_grad():
        assert torch.equal(twin.eval()(x), plain.eval()(x))


@pytest.mark.parametrize("model, side, fix", [
    ("timm:vit_tiny_patch16_224", 60, "--image-size 48 or 64"),
    ("timm:vit_small_patch14_dinov2", 64, "--image-size 56 or 70"),
    ("vit_b_16", 100, "--image-size 96 or 112"),
])
def test_image_size_not_a_multiple_of_the_patch_is_one_line(model, side, fix):
    with raises_one_line(f"image size {side} is not a multiple of", "patch size", fix):
        create_backbone(model, "random", image_size=side)


def test_swin_and_cnn_accept_odd_sides():
    create_backbone("swin_t", "random", image_size=65).check_image_size(65)
    bb = create_backbone("timm:swin_tiny_patch4_window7_224", "random")
    assert bb.patch_size == 4
    bb.check_image_size(68)
    with raises_one_line("image size 65 is not a multiple of", "--image-size 64 or 68"):
        bb.check_image_size(65)
    create_backbone("mobilenet_v3_small", "random", image_size=65)


# --------------------------------------------------------------------------- bad inputs, preprocessing
def test_transformer_whose_blocks_cannot_be_found_is_one_line():
    # EVA-02 runs its blocks in a loop with a rotary embedding: no block is a sequential step
    with raises_one_line("timm model eva02_tiny_patch14_224 cannot be cut into sequential blocks",
                         "timm:vit_small_patch14_dinov2"):
        create_backbone("timm:eva02_tiny_patch14_224", "random")


def test_weights_for_another_transformer_are_one_line(tmp_path):
    other = tmp_path / "deit.pth"
    torch.save(timm.create_model("deit_tiny_patch16_224").state_dict(), other)
    with raises_one_line("does not fit timm:vit_small_patch14_dinov2", "of another shape",
                         "pass a state dict saved from timm:vit_small_patch14_dinov2"):
        create_backbone("timm:vit_small_patch14_dinov2", weights=str(other))
    cnn = tmp_path / "resnet.pth"
    torch.save(get_model("resnet18", weights=None).state_dict(), cnn)
    with raises_one_line("does not fit vit_b_16", "missing", "unexpected"):
        create_backbone("vit_b_16", weights=str(cnn), image_size=64)


def test_preprocessing_comes_from_the_weights_config():
    vit = create_backbone("timm:vit_tiny_patch16_224", "random")
    assert vit.preprocessing["mean"] == (0.5, 0.5, 0.5) and vit.preprocessing["interpolation"] == "bicubic"
    assert vit.preprocessing["crop_size"] == 224 and vit.preprocessing["resize_size"] == 248  # crop_pct 0.9
    dino = create_backbone("timm:vit_small_patch14_dinov2", "random")
    assert dino.preprocessing["crop_size"] == dino.preprocessing["resize_size"] == 518  # crop_pct 1.0
    assert dino.preprocessing["mean"] == (0.485, 0.456, 0.406)
