"""Our preprocessing equals each weights' own evaluation transform on a real photograph.

The reference is the library's transform itself: torchvision's ``weights.transforms()`` for every
torchvision family advisor can cut, and timm's ``resolve_data_config`` + ``create_transform`` for
timm models. Both resize PIL images with PIL and then compute ``(x / 255 - mean) / std`` in float32;
we compute the same affine map as ``x * scale + bias`` with float32 constants, so the two differ by
float32 rounding only: a few ulps of values below ``(1 - mean) / std < 2.7``, i.e. under 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from advisor.data import Preprocess
from advisor.models import create_backbone
from advisor.models._weights import timm_preprocessing, torchvision_default_weights, torchvision_preprocessing
from advisor.models.registry import list_models

TOL = 1e-6
TIMM_MODELS = ("mobilenetv2_050", "resnet18", "efficientnet_b0", "convnext_tiny", "mobilenetv3_large_100")


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    from sklearn.datasets import load_sample_image

    return Image.fromarray(load_sample_image("china.jpg"))  # 427 x 640 RGB, bundled with scikit-learn


def _max_diff(ours: torch.Tensor, ref: torch.Tensor) -> float:
    assert ours.shape == ref.shape and ours.dtype == ref.dtype == torch.float32
    return float((ours - ref).abs().max())


@pytest.mark.parametrize("name", list_models())
def test_torchvision_family_matches_weights_transforms(name, photo):
    weights = torchvision_default_weights(name)
    ours = Preprocess.from_config(torchvision_preprocessing(weights))
    assert _max_diff(ours(photo), weights.transforms()(photo)) < TOL


@pytest.mark.parametrize("name", TIMM_MODELS)
def test_timm_model_matches_create_transform(name, photo):
    from timm.data import create_transform, resolve_data_config
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name).to_dict()
    ours = Preprocess.from_config(timm_preprocessing(cfg))
    ref = create_transform(**resolve_data_config({}, pretrained_cfg=cfg), is_training=False)
    assert _max_diff(ours(photo), ref(photo)) < TOL


def test_bicubic_weights_are_not_fed_bilinear_images(photo):
    """The families whose weights were evaluated with bicubic resizing get bicubic, and it matters."""
    from torchvision.models import EfficientNet_B0_Weights

    pp = torchvision_preprocessing(EfficientNet_B0_Weights.IMAGENET1K_V1)
    assert pp["interpolation"] == "bicubic"
    bicubic = Preprocess.from_config(pp)
    bilinear = Preprocess(pp["resize_size"], pp["crop_size"], pp["mean"], pp["std"], "bilinear")
    assert bicubic != bilinear and hash(bicubic._key()) != hash(bilinear._key())  # so the cache keys differ
    assert _max_diff(bilinear(photo), bicubic(photo)) > 100 * TOL


def test_timm_backbone_carries_bicubic_into_the_context(photo):
    """A timm backbone built the normal way hands its interpolation to every smaller image size too."""
    bb = create_backbone("timm:mobilenetv2_050", "random")
    assert bb.preprocessing["interpolation"] == "bicubic"
    small = Preprocess.from_config(bb.preprocessing, 64)
    assert (small.crop_size, small.resize_size, small.interpolation) == (64, 73, "bicubic")
    from torchvision import transforms as T  # the library's PIL pipeline at the same sizes

    ref = T.Compose([T.Resize(73, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(64), T.ToTensor(),
                     T.Normalize(small.mean, small.std)])
    assert _max_diff(small(photo), ref(photo)) < TOL


def test_greyscale_is_the_rgb_transform_of_the_grey_image(photo):
    from torchvision.models import ResNet18_Weights

    weights = ResNet18_Weights.IMAGENET1K_V1
    grey = photo.convert("L")
    ours = Preprocess.from_config(torchvision_preprocessing(weights))(grey)
    assert _max_diff(ours, weights.transforms()(grey.convert("RGB"))) < TOL
    assert np.allclose(ours[0].numpy() * weights.transforms().std[0] + weights.transforms().mean[0],
                       ours[1].numpy() * weights.transforms().std[1] + weights.transforms().mean[1], atol=TOL * 4)


def test_unknown_interpolation_is_one_clear_error():
    from advisor.errors import AdvisorError

    with pytest.raises(AdvisorError, match="unknown interpolation 'cubic'"):
        Preprocess(256, 224, interpolation="cubic")


def test_preprocess_pickles_with_its_interpolation():
    import pickle

    pre = Preprocess(73, 64, interpolation="bicubic")
    back = pickle.loads(pickle.dumps(pre))
    assert back == pre and back.interpolation == "bicubic"
