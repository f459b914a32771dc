"""NPZ datasets (arrays x and y)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from advisor.data import ArrayDataset, load_dataset


def _save(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_npz_uint8_round_trip(tmp_path, pixels):
    x = np.stack([pixels(k) for k in range(6)])  # N,H,W uint8
    y = np.array([0, 1, 2, 0, 1, 2])
    ds = load_dataset(_save(tmp_path / "d.npz", x=x, y=y))
    assert isinstance(ds, ArrayDataset)
    assert len(ds) == 6
    assert ds.tasks == ["label"]
    assert ds.classes == {"label": ["0", "1", "2"]}
    assert ds.labels.dtype == np.int64 and ds.labels[:, 0].tolist() == y.tolist()
    for i in range(6):
        img = ds.load(i)
        assert img.mode == "L"
        np.testing.assert_array_equal(np.asarray(img), x[i])


def test_npz_matches_folder_of_pil_written_pngs(tmp_path, make_folder):
    written = make_folder(tmp_path / "folder", {"a": 3, "b": 3}, mode="RGB")
    folder = load_dataset(str(tmp_path / "folder"))
    # decode the PNGs with PIL, store them as an NPZ, and compare item by item
    x = np.stack([np.asarray(Image.open(p)) for p in folder.paths])
    assert x.shape == (6, 10, 12, 3)
    arrays = load_dataset(_save(tmp_path / "d.npz", x=x, y=folder.labels[:, 0]))
    assert arrays.labels.tolist() == folder.labels.tolist()
    for i in range(6):
        a, f = arrays.load(i), folder.load(i)
        assert a.mode == f.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(a), np.asarray(f))
    assert len(written) == 6


@pytest.mark.parametrize(
    "layout, scale",
    [("NCHW", 1.0), ("NHWC", 1.0), ("NCHW", 255.0), ("NHWC1", 255.0), ("NCHW1", 1.0)],
)
def test_npz_float_layouts(tmp_path, pixels, layout, scale):
    rgb = np.stack([pixels(k, mode="RGB") for k in range(4)])  # N,H,W,3 uint8
    grey = np.stack([pixels(k) for k in range(4)])  # N,H,W
    if layout == "NCHW":
        x, expect = rgb.transpose(0, 3, 1, 2), rgb
    elif layout == "NHWC":
        x, expect = rgb, rgb
    elif layout == "NHWC1":
        x, expect = grey[..., None], grey
    else:
        x, expect = grey[:, None], grey
    x = x.astype(np.float32) / 255.0 * scale
    ds = load_dataset(_save(tmp_path / "d.npz", x=x, y=np.array([0, 1, 0, 1])))
    for i in range(4):
        np.testing.assert_array_equal(np.asarray(ds.load(i)), expect[i])
    assert ds.load(0).mode == ("RGB" if expect.ndim == 4 else "L")


def test_npz_multitask_with_names_and_missing(tmp_path, pixels):
    x = np.stack([pixels(k) for k in range(5)])
    y = np.array([[0, 1], [1, 0], [-1, 2], [1, -5], [0, 2]])
    path = _save(tmp_path / "d.npz", x=x, y=y, tasks=np.array(["shape", "kind"]))
    ds = load_dataset(path)
    assert ds.tasks == ["shape", "kind"]
    assert ds.classes == {"shape": ["0", "1"], "kind": ["0", "1", "2"]}
    assert ds.labels.tolist() == [[0, 1], [1, 0], [-1, 2], [1, -1], [0, 2]]
    assert ds.primary_task == "kind"

    inter = load_dataset(path, intermediate="shape")
    assert inter.intermediate == "shape" and inter.primary_task == "kind"
    only = load_dataset(path, label_columns=["shape"])
    assert only.tasks == ["shape"] and only.labels[:, 0].tolist() == [0, 1, -1, 1, 0]

    unnamed = load_dataset(_save(tmp_path / "u.npz", x=x, y=y))
    assert unnamed.tasks == ["label0", "label1"]


def test_npz_class_names(tmp_path, pixels):
    x = np.stack([pixels(k) for k in range(4)])
    path = _save(tmp_path / "d.npz", x=x, y=np.array([0, 1, 1, 0]), classes=np.array(["cat", "dog"]))
    assert load_dataset(path).classes == {"label": ["cat", "dog"]}


def test_npz_errors(tmp_path, pixels, expect_error):
    x = np.stack([pixels(k) for k in range(4)])
    y = np.array([0, 1, 0, 1])
    with expect_error("no array 'x'", "np.savez"):
        load_dataset(_save(tmp_path / "a.npz", images=x, y=y))
    with expect_error("no array 'y'", "np.savez"):
        load_dataset(_save(tmp_path / "b.npz", x=x, labels=y))
    with expect_error("4 images in x but 3 labels in y"):
        load_dataset(_save(tmp_path / "c.npz", x=x, y=y[:3]))
    with expect_error("only one class '0'", "at least two classes"):
        load_dataset(_save(tmp_path / "d.npz", x=x, y=np.zeros(4, int)))
    with expect_error("shape (4, 10)"):
        load_dataset(_save(tmp_path / "e.npz", x=x.reshape(4, -1)[:, :10], y=y))
    with expect_error("span"):
        load_dataset(_save(tmp_path / "f.npz", x=x.astype(np.float32) * 2, y=y))
    with expect_error("non-integer labels"):
        load_dataset(_save(tmp_path / "g.npz", x=x, y=y + 0.5))
    with expect_error("x is empty"):
        load_dataset(_save(tmp_path / "h.npz", x=x[:0], y=y[:0]))
    with expect_error("names 1 tasks"):
        load_dataset(_save(tmp_path / "i.npz", x=x, y=np.stack([y, y], 1), tasks=np.array(["a"])))
    with expect_error("channel axis"):
        load_dataset(_save(tmp_path / "j.npz", x=np.zeros((4, 5, 6, 7), np.uint8), y=y))
    with expect_error("unknown label column 'nope'"):
        load_dataset(_save(tmp_path / "k.npz", x=x, y=y), label_columns=["nope"])
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip file")
    with expect_error("cannot read NPZ file", str(broken)):
        load_dataset(str(broken))
