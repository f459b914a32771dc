"""Image-folder datasets: one sub-folder per class."""

from __future__ import annotations

import numpy as np
from PIL import Image

from advisor.data import FileDataset, TargetDataset, load_dataset


def test_folder_round_trip(tmp_path, make_folder, write_image, pixels):
    root = tmp_path / "pets"
    written = make_folder(root, {"dog": 3, "cat": 2, "bird": 4})
    # extra files: upper-case extension, nested folder, jpeg; ignored: text, hidden, other ext
    write_image(root / "cat" / "UPPER.PNG", pixels(100))
    write_image(root / "bird" / "nested" / "deep.bmp", pixels(101))
    write_image(root / "dog" / "photo.jpeg", pixels(102, mode="RGB"))
    (root / "cat" / "notes.txt").write_text("not an image")
    write_image(root / "cat" / ".hidden.png", pixels(103))
    (root / "dog" / "data.npy").write_bytes(b"\x00" * 10)
    (root / "README.md").write_text("top-level file, ignored")

    ds = load_dataset(str(root))
    assert isinstance(ds, TargetDataset) and isinstance(ds, FileDataset)
    assert ds.name == str(root)
    assert ds.tasks == ["label"]
    assert ds.classes == {"label": ["bird", "cat", "dog"]}
    assert ds.intermediate is None
    assert ds.primary_task == "label"
    assert len(ds) == 4 + 1 + 2 + 1 + 3 + 1
    assert ds.labels.dtype == np.int64 and ds.labels.shape == (12, 1)
    # items ordered by class, then by relative path
    names = [p.relative_to(root).as_posix() for p in ds.paths]
    assert names == [
        "bird/img00.png", "bird/img01.png", "bird/img02.png", "bird/img03.png",
        "bird/nested/deep.bmp",
        "cat/UPPER.PNG", "cat/img00.png", "cat/img01.png",
        "dog/img00.png", "dog/img01.png", "dog/img02.png", "dog/photo.jpeg",
    ]
    assert ds.labels[:, 0].tolist() == [0] * 5 + [1] * 3 + [2] * 4
    assert np.bincount(ds.primary_labels).tolist() == [5, 3, 4]

    # lossless PNG pixels come back exactly, in mode L
    for i, rel in enumerate(names):
        if rel in written:
            img = ds.load(i)
            assert isinstance(img, Image.Image) and img.mode == "L"
            np.testing.assert_array_equal(np.asarray(img), written[rel])
    jpeg = ds.load(names.index("dog/photo.jpeg"))
    assert jpeg.mode == "RGB" and jpeg.size == (12, 10)
    assert ds.load(-1).size == (12, 10)


def test_folder_ignores_empty_class_folders(tmp_path, make_folder):
    root = tmp_path / "d"
    make_folder(root, {"a": 2, "b": 2})
    (root / "empty").mkdir()
    (root / "only_text").mkdir()
    (root / "only_text" / "x.txt").write_text("x")
    ds = load_dataset(str(root))
    assert ds.classes["label"] == ["a", "b"]
    assert len(ds) == 4


def test_folder_subset_is_a_view(tmp_path, make_folder):
    root = tmp_path / "d"
    written = make_folder(root, {"a": 3, "b": 3})
    ds = load_dataset(str(root))
    sub = ds.subset([5, 0, 3])
    assert len(sub) == 3
    assert sub.tasks == ds.tasks and sub.classes == ds.classes
    assert sub.labels[:, 0].tolist() == [1, 0, 1]
    np.testing.assert_array_equal(np.asarray(sub.load(0)), written["b/img02.png"])
    np.testing.assert_array_equal(np.asarray(sub.load(1)), written["a/img00.png"])
    assert len(ds) == 6  # the original is unchanged
    mask = ds.subset(ds.primary_labels == 0)
    assert len(mask) == 3 and set(mask.primary_labels.tolist()) == {0}


def test_folder_modes_converted(tmp_path, make_folder):
    root = tmp_path / "d"
    make_folder(root, {"a": 1, "b": 1})
    # RGBA, palette and 16-bit images come back as RGB / L
    Image.new("RGBA", (5, 4), (1, 2, 3, 4)).save(root / "a" / "rgba.png")
    Image.new("P", (5, 4), 7).save(root / "a" / "pal.gif")
    Image.fromarray(np.full((4, 5), 65535, dtype=np.uint16)).save(root / "b" / "deep.png")
    ds = load_dataset(str(root))
    modes = {p.name: ds.load(i).mode for i, p in enumerate(ds.paths)}
    assert modes["rgba.png"] == "RGB"
    assert modes["pal.gif"] == "RGB"
    assert modes["deep.png"] == "L"
    deep = ds.load([p.name for p in ds.paths].index("deep.png"))
    assert np.asarray(deep).max() == 255


def test_corrupt_image_fails_on_load_not_at_load_time(tmp_path, make_folder, expect_error):
    root = tmp_path / "d"
    make_folder(root, {"a": 2, "b": 2})
    bad = root / "b" / "broken.png"
    bad.write_bytes(b"this is not a png at all")
    good_png = (root / "a" / "img00.png").read_bytes()
    truncated = root / "a" / "truncated.png"
    truncated.write_bytes(good_png[: len(good_png) // 2])

    ds = load_dataset(str(root))  # no decoding up front
    assert len(ds) == 6
    i_bad = ds.paths.index(bad)
    i_trunc = ds.paths.index(truncated)
    with expect_error("cannot read image file", str(bad)):
        ds.load(i_bad)
    with expect_error("cannot read image file", str(truncated)):
        ds.load(i_trunc)
    assert ds.load(0).size == (12, 10)  # other items still load
