"""CSV manifest datasets."""

from __future__ import annotations

import numpy as np
import pytest

from advisor.data import FileDataset, load_dataset


@pytest.fixture
def manifest(tmp_path, write_image, write_csv, pixels):
    """A CSV with a relative and an absolute path, two label columns and missing cells."""
    imgs = tmp_path / "imgs"
    arrays = {}
    for k in range(6):
        arrays[k] = pixels(k)
        write_image(imgs / f"{k}.png", arrays[k])
    outside = tmp_path / "elsewhere" / "abs.png"
    arrays[6] = pixels(6)
    write_image(outside, arrays[6])
    rows = [
        ["imgs/0.png", "mammal", "dog"],
        ["imgs/1.png", "mammal", "cat"],
        ["imgs/2.png", "", "cat"],  # missing intermediate
        ["imgs/3.png", "bird", ""],  # missing final label
        ["imgs/4.png", "bird", "sparrow"],
        ["imgs/5.png", "mammal", "dog"],
        [str(outside), "bird", "sparrow"],
    ]
    path = write_csv(tmp_path / "sub" / ".." / "m.csv", ["path", "group", "species"], rows)
    return path.resolve(), arrays


def test_manifest_round_trip(manifest):
    path, arrays = manifest
    ds = load_dataset(str(path))
    assert isinstance(ds, FileDataset)
    assert ds.name == str(path)
    assert len(ds) == 7
    assert ds.tasks == ["group", "species"]
    assert ds.classes == {"group": ["bird", "mammal"], "species": ["cat", "dog", "sparrow"]}
    assert ds.intermediate is None
    assert ds.primary_task == "species"
    assert ds.labels.dtype == np.int64
    assert ds.labels.tolist() == [
        [1, 1], [1, 0], [-1, 0], [0, -1], [0, 2], [1, 1], [0, 2],
    ]
    assert ds.primary_labels.tolist() == [1, 0, 0, -1, 2, 1, 2]
    for i in range(7):  # row order kept; relative paths resolved against the CSV folder
        np.testing.assert_array_equal(np.asarray(ds.load(i)), arrays[i])


def test_manifest_label_columns_and_intermediate(manifest):
    path, _ = manifest
    only = load_dataset(str(path), label_columns=["group"])
    assert only.tasks == ["group"] and only.primary_task == "group"
    assert only.labels[:, 0].tolist() == [1, 1, -1, 0, 0, 1, 0]

    inter = load_dataset(str(path), intermediate="group")
    assert inter.tasks == ["group", "species"]
    assert inter.intermediate == "group"
    assert inter.primary_task == "species"

    # order given by label_columns; the intermediate stays out of primary_task
    rev = load_dataset(str(path), label_columns=["species", "group"], intermediate="group")
    assert rev.tasks == ["species", "group"]
    assert rev.primary_task == "species"
    assert rev.labels[:, 1].tolist() == [1, 1, -1, 0, 0, 1, 0]

    # the intermediate label is added if label_columns leaves it out
    added = load_dataset(str(path), label_columns=["species"], intermediate="group")
    assert added.tasks == ["group", "species"] and added.intermediate == "group"


def test_manifest_alternative_path_column_names(tmp_path, write_image, write_csv, pixels):
    for k in range(4):
        write_image(tmp_path / f"{k}.png", pixels(k))
    for col in ("image", "file", "Filename"):
        path = write_csv(
            tmp_path / f"{col}.csv",
            ["label", col],
            [["b", "0.png"], ["a", "1.png"], ["b", "2.png"], ["a", "3.png"]],
        )
        ds = load_dataset(str(path))
        assert ds.tasks == ["label"]
        assert ds.classes == {"label": ["a", "b"]}
        assert ds.labels[:, 0].tolist() == [1, 0, 1, 0]
        assert [p.name for p in ds.paths] == ["0.png", "1.png", "2.png", "3.png"]


def test_manifest_path_wins_over_other_names_and_bom(tmp_path, write_image, pixels):
    for k in range(2):
        write_image(tmp_path / f"{k}.png", pixels(k))
    # UTF-8 BOM (as Excel writes) and an 'image' column that is a label here
    text = "\ufeffpath,image\n0.png,x\n1.png,y\n\n"
    (tmp_path / "m.csv").write_text(text, encoding="utf-8")
    ds = load_dataset(str(tmp_path / "m.csv"))
    assert ds.tasks == ["image"] and ds.classes["image"] == ["x", "y"]


def test_manifest_errors(tmp_path, manifest, write_csv, expect_error):
    path, _ = manifest
    with expect_error("unknown label column 'colour'", "available columns: path, group, species"):
        load_dataset(str(path), label_columns=["colour"])
    with expect_error("'nope'", "available columns: path, group, species"):
        load_dataset(str(path), intermediate="nope")
    with expect_error("only label column"):
        load_dataset(str(path), label_columns=["group"], intermediate="group")
    with expect_error("holds the image paths"):
        load_dataset(str(path), label_columns=["path"])

    no_label = write_csv(tmp_path / "nolabel.csv", ["path"], [["imgs/0.png"]])
    with expect_error("no label column", str(no_label)):
        load_dataset(str(no_label))

    no_path = write_csv(tmp_path / "nopath.csv", ["picture", "label"], [["imgs/0.png", "a"]])
    with expect_error("no image path column", "picture, label", "path, image, file or filename"):
        load_dataset(str(no_path))

    missing = write_csv(
        tmp_path / "missing.csv", ["path", "label"], [["imgs/0.png", "a"], ["imgs/nothere.png", "b"]]
    )
    with expect_error("do not exist", "nothere.png", "relative to the CSV"):
        load_dataset(str(missing))

    one = write_csv(tmp_path / "one.csv", ["path", "label"], [["imgs/0.png", "cat"], ["imgs/1.png", "cat"]])
    with expect_error("only one class 'cat'", "at least two classes"):
        load_dataset(str(one))

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with expect_error("is empty", str(empty)):
        load_dataset(str(empty))

    header_only = write_csv(tmp_path / "header.csv", ["path", "label"], [])
    with expect_error("no images", str(header_only)):
        load_dataset(str(header_only))

    blank_path = write_csv(tmp_path / "blank.csv", ["path", "label"], [["imgs/0.png", "a"], ["", "b"]])
    with expect_error("row 3", "empty 'path' cell"):
        load_dataset(str(blank_path))

    empty_col = write_csv(
        tmp_path / "emptycol.csv", ["path", "z", "label"], [["imgs/0.png", "", "a"], ["imgs/1.png", "", "b"]]
    )
    with expect_error("label column 'z'", "is empty"):
        load_dataset(str(empty_col))

    dup = tmp_path / "dup.csv"
    dup.write_text("path,label,label\nimgs/0.png,a,b\n")
    with expect_error("appears twice"):
        load_dataset(str(dup))


def test_manifest_corrupt_file_named_on_load(tmp_path, write_image, write_csv, pixels, expect_error):
    write_image(tmp_path / "ok.png", pixels(0))
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    path = write_csv(tmp_path / "m.csv", ["path", "label"], [["ok.png", "a"], ["bad.jpg", "b"]])
    ds = load_dataset(str(path))
    assert ds.load(0).mode == "L"
    with expect_error("cannot read image file", str(tmp_path / "bad.jpg")):
        ds.load(1)
