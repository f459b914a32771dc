"""Every load_dataset error path is a one-line AdvisorError naming the problem and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from advisor.data import load_dataset
from advisor.errors import AdvisorError


def test_error_is_a_value_error(tmp_path):
    with pytest.raises(ValueError):
        load_dataset(str(tmp_path / "nope"))


def test_path_does_not_exist(tmp_path, expect_error):
    missing = tmp_path / "x" / "y"
    with expect_error(
        f"no such dataset path: {missing}",
        "pass an image folder, a .csv manifest, a .npz file or one of: fashion-mnist, digits",
    ):
        load_dataset(str(missing))
    with expect_error("no such dataset path: missing.csv"):
        load_dataset("missing.csv")


def test_unknown_builtin(expect_error):
    with expect_error("unknown dataset 'mnist'", "fashion-mnist, digits"):
        load_dataset("mnist")
    with expect_error("did you mean fashion-mnist?"):
        load_dataset("fashion-mnst:10")


def test_unsupported_file_type(tmp_path, expect_error):
    f = tmp_path / "data.txt"
    f.write_text("hello")
    with expect_error("unsupported dataset file type '.txt'", str(f), ".csv manifest"):
        load_dataset(str(f))


def test_empty_folder(tmp_path, expect_error):
    empty = tmp_path / "empty"
    empty.mkdir()
    with expect_error("no images found in", str(empty), "sub-folder"):
        load_dataset(str(empty))


def test_images_without_class_subfolders(tmp_path, write_image, pixels, expect_error):
    for k in range(3):
        write_image(tmp_path / "flat" / f"{k}.png", pixels(k))
    with expect_error("no class sub-folders", "found 3 images directly", "own sub-folder"):
        load_dataset(str(tmp_path / "flat"))


def test_class_subfolders_without_images(tmp_path, expect_error):
    root = tmp_path / "d"
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        (root / cls / "readme.txt").write_text("no images here")
    with expect_error("class sub-folders", "cat, dog", "contain no images"):
        load_dataset(str(root))


def test_single_class_folder(tmp_path, make_folder, expect_error):
    root = tmp_path / "d"
    make_folder(root, {"cat": 3})
    (root / "dog").mkdir()  # empty class folder does not count
    with expect_error(f"only one class 'cat' in {root}", "a classifier needs at least two classes"):
        load_dataset(str(root))


def test_folder_label_options(tmp_path, make_folder, expect_error):
    root = tmp_path / "d"
    make_folder(root, {"a": 2, "b": 2})
    assert load_dataset(str(root), label_columns=["label"]).tasks == ["label"]
    with expect_error("unknown label column 'species'"):
        load_dataset(str(root), label_columns=["species"])
    with expect_error("only label column"):
        load_dataset(str(root), intermediate="label")


def test_csv_without_label_column(tmp_path, write_image, write_csv, pixels, expect_error):
    write_image(tmp_path / "0.png", pixels(0))
    m = write_csv(tmp_path / "m.csv", ["path"], [["0.png"]])
    with expect_error("has no label column", str(m)):
        load_dataset(str(m))


def test_npz_missing_arrays_and_mismatch(tmp_path, expect_error):
    x = np.zeros((3, 8, 8), np.uint8)
    np.savez(tmp_path / "nox.npz", y=np.arange(3))
    np.savez(tmp_path / "noy.npz", x=x)
    np.savez(tmp_path / "mismatch.npz", x=x, y=np.arange(5))
    with expect_error("no array 'x'"):
        load_dataset(str(tmp_path / "nox.npz"))
    with expect_error("no array 'y'"):
        load_dataset(str(tmp_path / "noy.npz"))
    with expect_error("3 images in x but 5 labels in y"):
        load_dataset(str(tmp_path / "mismatch.npz"))


def test_bad_k_suffix(expect_error):
    with expect_error("bad sample count 'zero'", "e.g. digits:100"):
        load_dataset("digits:zero")


def test_messages_have_no_traceback_chain(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(AdvisorError) as info:
        load_dataset(str(bad))
    assert info.value.__suppress_context__ and info.value.__cause__ is None
