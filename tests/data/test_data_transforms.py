"""Preprocess (resize, crop, normalise) and TorchView."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from advisor.data import Preprocess, TorchView, load_dataset, with_image_size

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def test_output_shape_and_dtype():
    p = Preprocess(256, 224, IMAGENET_MEAN, IMAGENET_STD)
    for img in (
        Image.new("L", (28, 28), 3),
        Image.new("RGB", (500, 375), (1, 2, 3)),
        Image.new("RGBA", (64, 80), (1, 2, 3, 4)),
        Image.new("P", (30, 40), 5),
        Image.new("1", (30, 40), 1),
        Image.fromarray(np.full((20, 30), 40000, dtype=np.uint16)),  # 16-bit greyscale
    ):
        x = p(img)
        assert x.shape == (3, 224, 224), img.mode
        assert x.dtype == torch.float32


def test_greyscale_gives_three_identical_channels():
    arr = np.random.default_rng(0).integers(0, 256, size=(28, 28), dtype=np.uint8)
    x = Preprocess(32, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))(Image.fromarray(arr))
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    assert x.std() > 0.1
    # with per-channel stats, undoing the normalisation gives identical channels
    y = Preprocess(32, 32, IMAGENET_MEAN, IMAGENET_STD)(Image.fromarray(arr))
    m = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    s = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    raw = y * s + m
    torch.testing.assert_close(raw[0], raw[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(raw[0], raw[2], atol=1e-5, rtol=0)
    # the grey image equals the same image converted to RGB first
    z = Preprocess(32, 32, IMAGENET_MEAN, IMAGENET_STD)(Image.fromarray(arr).convert("RGB"))
    torch.testing.assert_close(y, z, atol=1e-5, rtol=0)


@pytest.mark.parametrize("value", [0, 77, 255])
def test_constant_image_normalisation(value):
    p = Preprocess(40, 32, IMAGENET_MEAN, IMAGENET_STD)
    x = p(Image.new("RGB", (50, 60), (value, value, value)))
    for c in range(3):
        expect = (value / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        torch.testing.assert_close(x[c], torch.full((32, 32), expect), atol=1e-5, rtol=0)
    rgb = p(Image.new("RGB", (50, 60), (10, 128, 250)))
    for c, v in enumerate((10, 128, 250)):
        expect = (v / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert abs(float(rgb[c].mean()) - expect) < 1e-5


def test_resize_shorter_side_then_centre_crop():
    # left half black, right half white, 40 wide x 20 high
    arr = np.zeros((20, 40), dtype=np.uint8)
    arr[:, 20:] = 255
    p = Preprocess(10, 10, (0.0,) * 3, (1.0,) * 3)
    out = p.resized_crop(Image.fromarray(arr))
    assert out.size == (10, 10)
    x = p(Image.fromarray(arr))  # resized to 20x10, crop columns 5..14
    assert torch.all(x[:, :, :3] == 0)  # left part of the crop is black
    assert torch.all(x[:, :, -3:] == 1)  # right part white
    tall = p.resized_crop(Image.new("L", (16, 64)))
    assert tall.size == (10, 10)


def test_with_image_size():
    base = Preprocess(256, 224, IMAGENET_MEAN, IMAGENET_STD)
    p = Preprocess.for_image_size(base, 112)
    assert (p.resize_size, p.crop_size) == (128, 112)
    assert p.mean == base.mean and p.std == base.std
    q = with_image_size(base, 96)
    assert (q.resize_size, q.crop_size) == (round(96 * 256 / 224), 96)
    assert base.with_image_size(112) == p
    assert p(Image.new("L", (28, 28))).shape == (3, 112, 112)


@pytest.mark.parametrize("bad", [0, 7, -224, 224.0, "224", True, None])
def test_bad_image_sizes(bad, expect_error):
    with expect_error("bad image size", "use an integer of at least 8, e.g. --image-size 224"):
        Preprocess(bad, 224, IMAGENET_MEAN, IMAGENET_STD)
    with expect_error("bad image size"):
        Preprocess(256, bad, IMAGENET_MEAN, IMAGENET_STD)
    with expect_error("bad image size"):
        Preprocess.for_image_size(Preprocess(256, 224), bad)


def test_bad_stats(expect_error):
    with expect_error("bad normalisation std"):
        Preprocess(256, 224, IMAGENET_MEAN, (0.2, 0.0, 0.2))
    with expect_error("bad normalisation mean"):
        Preprocess(256, 224, (0.1, 0.2), IMAGENET_STD)


def test_torch_view(tmp_path, write_image, write_csv, pixels):
    for k in range(4):
        write_image(tmp_path / f"{k}.png", pixels(k))
    m = write_csv(
        tmp_path / "m.csv",
        ["path", "z", "y"],
        [["0.png", "p", "a"], ["1.png", "", "b"], ["2.png", "q", ""], ["3.png", "q", "b"]],
    )
    ds = load_dataset(str(m), intermediate="z")
    p = Preprocess(16, 16, (0.5,) * 3, (0.5,) * 3)
    view = TorchView(ds, [3, 1, 2], p)
    assert len(view) == 3
    x, y = view[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.shape == (2,)
    assert y.tolist() == [1, 1]
    assert view[1][1].tolist() == [-1, 1]
    assert view[2][1].tolist() == [1, -1]
    torch.testing.assert_close(x, p(ds.load(3)))
    loader = torch.utils.data.DataLoader(view, batch_size=2)
    xb, yb = next(iter(loader))
    assert xb.shape == (2, 3, 16, 16) and yb.shape == (2, 2)
    assert len(TorchView(ds, None, p)) == 4
