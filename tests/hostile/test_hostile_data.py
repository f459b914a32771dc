"""Hostile data (issue 19, section 6): data that is not what it seems, for every command that reads data.

Every refusal runs ``advisor`` in a fresh process through the shared harness and asserts: exit 2, one line
of ours naming the problem, no traceback, nothing written (the ``--json``/``--save``/``--out`` it was
given does not exist, no temporary file anywhere under the test's folder) and the data it pointed at
byte-identical. Good paths stand beside them: a folder with a link loop predicts its one image once, a
link inside the folder is read once, a link out of it is left out with one warning line, a rare class
is dropped with one warning line, a labelled folder of classes the model does not know gets predictions
and no metrics, a manifest with a BOM and with missing labels is read.

Tiny data throughout: 16 px images written here, ``--image-size 32``, ``--weights random``,
``--check off``, ``--sample 20``. ``predict`` uses one model trained once for the module
(``advisor train digits:20 --strategy linear_probe ... --save``).
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.hostile._harness import (assert_no_leftovers, assert_ok, assert_refused, assert_unchanged, run_advisor,
                                    snapshot)

FAST = ["--weights", "random", "--image-size", "32", "--quiet"]
ANALYZE = FAST + ["--check", "off", "--sample", "20"]


# ----------------------------------------------------------------------------- data written here
def _png(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 16), dtype=np.uint8)).save(path)
    return path


def _folder(root: Path, counts: dict[str, int]) -> Path:
    for k, (cls, n) in enumerate(counts.items()):
        for i in range(n):
            _png(root / cls / f"{i}.png", seed=100 * k + i)
    return root


def _two_classes(root: Path, n: int = 6) -> Path:
    return _folder(root, {"a": n, "b": n})


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` greyscale pixels and holds almost none of them: PIL reads the
    size from the header at open, before any decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _manifest(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with open(path, "w", newline="", encoding=encoding) as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _images(folder: Path, n: int = 12) -> list[str]:
    return [str(_png(folder / f"{i}.png", seed=i)) for i in range(n)]


class Payload:
    """Unpickling this object runs ``exec(code)``: an object array holding it is a live payload."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def _marker_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('ran')"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A digits model (classes 0..9, 32 px) saved as ``advisor train --save`` saves it."""
    path = tmp_path_factory.mktemp("hostile-data-model") / "digits.pt"
    assert_ok(run_advisor(["train", "digits:20", "--strategy", "linear_probe", *FAST, "--save", path]))
    return path


def _refused(args: list, tmp: Path, *needles: str, watch: tuple = (), written: tuple = ()) -> str:
    """Run ``advisor ARGS``; assert the refusal, that ``written`` paths do not exist, that nothing temporary is
    left under ``tmp`` and that ``watch`` paths are byte-identical."""
    before = snapshot(*watch)
    line = assert_refused(run_advisor(args, cwd=tmp), *needles)
    for p in written:
        assert not Path(p).exists(), f"{p} was written"
    assert_no_leftovers(tmp)
    assert_unchanged(before, *watch)
    return line


def _analyze_refused(tmp: Path, data, *needles: str, extra: tuple = ()) -> str:
    out = tmp / "analysis.json"
    watch = (data,) if Path(str(data)).exists() else ()
    return _refused(["analyze", data, *ANALYZE, "--json", out, *extra], tmp, *needles, watch=watch, written=(out,))


# ----------------------------------------------------------------------------- classes too small for the split
def test_analyze_refuses_a_class_of_one_image(tmp_path):
    data = _folder(tmp_path / "d", {"cat": 6, "dog": 6, "eel": 1})
    line = _analyze_refused(tmp_path, data, "'eel' (1 image)", "at least 5", "--drop-rare-classes")
    assert "cat" not in line and "dog" not in line  # only the rare class is named


def test_analyze_refuses_a_class_the_split_may_leave_out_of_test(tmp_path):
    # 4 images: 0.6/0.2/0.2 gives train 2, and validation and test share 2 by rounding -- one may get none
    data = _folder(tmp_path / "d", {"cat": 6, "dog": 4})
    _analyze_refused(tmp_path, data, "'dog' (4 images)", "at least 5")


def test_the_minimum_follows_the_split(tmp_path):
    # --split 0.8,0.1,0.1 needs 10 per class for one in validation and one in test: 9 is refused
    data = _folder(tmp_path / "d", {"cat": 10, "dog": 9})
    _analyze_refused(tmp_path, data, "'dog' (9 images)", "0.8,0.1,0.1", "at least 10",
                     extra=("--split", "0.8,0.1,0.1"))


def test_dropping_rare_classes_that_leaves_one_class_is_refused(tmp_path):
    data = _folder(tmp_path / "d", {"cat": 6, "dog": 2, "eel": 1})
    _analyze_refused(tmp_path, data, "leaves 1 class", extra=("--drop-rare-classes",))


def test_train_refuses_a_rare_class_before_training_and_saves_nothing(tmp_path):
    data = _folder(tmp_path / "d", {"cat": 6, "dog": 6, "eel": 1})
    save, js = tmp_path / "m.pt", tmp_path / "t.json"
    _refused(["train", data, "--strategy", "linear_probe", *FAST, "--save", save, "--json", js], tmp_path,
             "'eel' (1 image)", watch=(data,), written=(save, js))


def test_search_refuses_a_rare_class_before_any_trial(tmp_path):
    data = _folder(tmp_path / "d", {"cat": 6, "dog": 6, "eel": 1})
    ws, js = tmp_path / "ws", tmp_path / "s.json"
    _refused(["search", data, "--strategy", "linear_probe", "--trials", "1", *FAST, "--workspace", ws,
              "--json", js], tmp_path, "'eel' (1 image)", watch=(data,), written=(js,))
    # (that the workspace's stores are not even created is section 5's matter: tests/hostile/test_hostile_stores)


# ----------------------------------------------------------------------------- image files that are not images
@pytest.mark.parametrize("kind", ["zero-byte", "truncated", "text", "bomb-warning", "bomb-error"])
def test_train_refuses_an_image_that_is_not_one(tmp_path, kind):
    # train, not analyze: analyze decodes only its --sample of the training split, a linear probe every image
    data = _two_classes(tmp_path / "d")
    bad = data / "b" / "bad.png"
    if kind == "zero-byte":
        bad.write_bytes(b"")
    elif kind == "truncated":
        whole = (data / "b" / "0.png").read_bytes()
        bad.write_bytes(whole[: len(whole) // 2])
    elif kind == "text":
        bad.write_text("a,b\n1,2\n")
    else:  # PIL warns above MAX_IMAGE_PIXELS (~89.5 M) and raises above twice that: both are one line here
        side = 10_000 if kind == "bomb-warning" else 20_000
        bad.write_bytes(_png_header(side, side))
    save = tmp_path / "m.pt"
    line = _refused(["train", data, "--strategy", "linear_probe", *FAST, "--save", save], tmp_path, "bad.png",
                    watch=(data,), written=(save,))
    if kind.startswith("bomb"):
        assert "pixels" in line


def test_the_bomb_warning_is_live_without_our_filter(tmp_path):
    """The 10,000 x 10,000 header really is in PIL's warning zone: a plain open warns (and does not raise)."""
    import warnings

    bad = tmp_path / "big.png"
    bad.write_bytes(_png_header(10_000, 10_000))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        Image.open(bad).close()
    assert any(issubclass(w.category, Image.DecompressionBombWarning) for w in seen)


def test_a_class_folder_linked_to_another_is_the_same_file_twice(tmp_path):
    data = _two_classes(tmp_path / "d")
    os.symlink(os.path.join("..", "b", "0.png"), data / "a" / "also-b0.png")
    _analyze_refused(tmp_path, data, "same file", "class 'a'", "class 'b'")


# ----------------------------------------------------------------------------- NPZ
def test_an_npz_object_array_is_never_unpickled(tmp_path):
    marker = tmp_path / "ran"
    payload = np.empty(20, dtype=object)
    payload[:] = [Payload(_marker_code(marker))] * 20
    data = tmp_path / "evil.npz"
    np.savez(data, x=payload, y=np.repeat([0, 1], 10))
    _analyze_refused(tmp_path, data, "evil.npz", "allow_pickle")
    assert not marker.exists()
    with np.load(data, allow_pickle=True) as z:  # the payload is live: loading it the unsafe way runs it
        z["x"]
    assert marker.read_text() == "ran"


def _npz(tmp: Path, name: str, x, y) -> Path:
    path = tmp / name
    np.savez(path, x=x, y=y)
    return path


_X = np.random.default_rng(0).integers(0, 256, (20, 8, 8), dtype=np.uint8)
_Y = np.repeat([0, 1], 10)


@pytest.mark.parametrize("x, y, needles", [
    (np.zeros(20, np.uint8), _Y, ("shape (20,)",)),                      # not images
    (np.zeros((20, 0, 8), np.uint8), _Y, ("0x8 pixels",)),               # images of no pixels
    (_X, np.full(20, np.nan), ("no labels",)),                           # every label NaN (= missing)
    (_X, np.r_[np.zeros(19, np.int64), 10**12], ("largest class index",)),  # a stray huge label
    (_X, np.array(["cat", "dog"] * 10), ("dtype <U3",)),                 # strings
    (_X.astype(np.complex64), _Y, ("complex64",)),                       # complex pixels
    (np.full((20, 8, 8), np.nan), _Y, ("NaN",)),                         # NaN pixels
], ids=["shape", "zero-pixels", "nan-labels", "huge-label", "string-labels", "complex", "nan-pixels"])
def test_analyze_refuses_a_bad_npz(tmp_path, x, y, needles):
    _analyze_refused(tmp_path, _npz(tmp_path, "d.npz", x, y), *needles)


def test_analyze_refuses_an_npz_of_random_bytes(tmp_path):
    data = tmp_path / "junk.npz"
    data.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    _analyze_refused(tmp_path, data, "junk.npz")


def test_train_refuses_an_npz_label_column_that_is_missing(tmp_path):
    data = _npz(tmp_path, "d.npz", _X, _Y)
    save = tmp_path / "m.pt"
    _refused(["train", data, "--strategy", "linear_probe", *FAST, "--labels", "colour", "--save", save], tmp_path,
             "'colour'", watch=(data,), written=(save,))


# ----------------------------------------------------------------------------- CSV manifests
@pytest.fixture
def pictures(tmp_path) -> list[str]:
    return _images(tmp_path / "img")


def _rows(paths: list[str]) -> list[list[str]]:
    return [[p, "ab"[i % 2]] for i, p in enumerate(paths)]


def test_manifest_without_a_path_column(tmp_path, pictures):
    data = _manifest(tmp_path / "m.csv", ["picture", "label"], _rows(pictures))
    _analyze_refused(tmp_path, data, "no image path column")


def test_manifest_row_of_a_missing_file(tmp_path, pictures):
    data = _manifest(tmp_path / "m.csv", ["path", "label"], _rows(pictures) + [["img/gone.png", "a"]])
    _analyze_refused(tmp_path, data, "do not exist", "gone.png")


def test_manifest_row_that_is_a_folder(tmp_path, pictures):
    data = _manifest(tmp_path / "m.csv", ["path", "label"], _rows(pictures) + [[str(tmp_path / "img"), "a"]])
    _analyze_refused(tmp_path, data, "is a folder")


def test_manifest_row_that_is_a_fifo(tmp_path, pictures):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # reading it would wait forever
    data = _manifest(tmp_path / "m.csv", ["path", "label"], _rows(pictures) + [[str(fifo), "a"]])
    _analyze_refused(tmp_path, data, "not a regular file")


@pytest.mark.parametrize("spelling", ["same", "dot-slash", "other-label"])
def test_manifest_listing_one_file_twice(tmp_path, pictures, spelling):
    again = {"same": [pictures[0], "a"], "dot-slash": ["./img/0.png", "a"], "other-label": [pictures[0], "b"]}
    data = _manifest(tmp_path / "m.csv", ["path", "label"], _rows(pictures) + [again[spelling]])
    _analyze_refused(tmp_path, data, "rows 2 and 14", "same image file")


def test_manifest_whose_labels_are_all_empty_strings(tmp_path, pictures):
    data = _manifest(tmp_path / "m.csv", ["path", "label"], [[p, ""] for p in pictures])
    _analyze_refused(tmp_path, data, "label column 'label'", "empty")


def test_manifest_of_binary_junk(tmp_path):
    data = tmp_path / "m.csv"
    data.write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    _analyze_refused(tmp_path, data, "not UTF-8")


def test_manifest_with_a_nul_in_a_path(tmp_path, pictures):
    data = tmp_path / "m.csv"
    data.write_bytes(b"path,label\n" + pictures[0].encode() + b"\x00,a\n")
    _analyze_refused(tmp_path, data, "control character")


def test_manifest_whose_second_task_is_one_class(tmp_path, pictures):
    # a constant column (here the site the images came from) is a task of one class: it teaches nothing
    data = _manifest(tmp_path / "m.csv", ["path", "site", "label"],
                     [[p, "lab1", lab] for p, lab in _rows(pictures)])
    _analyze_refused(tmp_path, data, "task 'site'", "one class", "--labels label")


def test_manifest_label_column_that_is_missing(tmp_path, pictures):
    data = _manifest(tmp_path / "m.csv", ["path", "label"], _rows(pictures))
    _analyze_refused(tmp_path, data, "unknown label column 'kind'", extra=("--labels", "kind"))


@pytest.mark.parametrize("spec", ["fashion-mnist:0", "digits:-3", "digits:1.5", "digits:"])
def test_builtin_with_a_bad_count(tmp_path, spec):
    _analyze_refused(tmp_path, spec, "bad sample count")


# ----------------------------------------------------------------------------- predict
def test_predict_skip_when_every_image_is_unreadable_writes_nothing(tmp_path, model):
    data = tmp_path / "unlabelled"
    data.mkdir()
    for i in range(3):
        (data / f"{i}.png").write_bytes(b"not an image")
    out, js = tmp_path / "p.csv", tmp_path / "p.json"
    _refused(["predict", model, data, "--unreadable", "skip", "--out", out, "--json", js, "--quiet"], tmp_path,
             "none of the 3 images", watch=(data, model), written=(out, js))


def test_predict_refuses_a_bomb(tmp_path, model):
    data = tmp_path / "unlabelled"
    _png(data / "ok.png")
    (data / "big.png").write_bytes(_png_header(10_000, 10_000))
    out = tmp_path / "p.csv"
    _refused(["predict", model, data, "--out", out, "--quiet"], tmp_path, "big.png", "pixels",
             watch=(data, model), written=(out,))


def test_predict_refuses_an_npz_object_array(tmp_path, model):
    marker = tmp_path / "ran"
    payload = np.empty(4, dtype=object)
    payload[:] = [Payload(_marker_code(marker))] * 4
    data = tmp_path / "evil.npz"
    np.savez(data, x=_X[:4], y=payload)
    out = tmp_path / "p.csv"
    _refused(["predict", model, data, "--out", out, "--quiet"], tmp_path, "allow_pickle",
             watch=(data, model), written=(out,))
    assert not marker.exists()


def test_predict_refuses_a_bad_builtin_count(tmp_path, model):
    out = tmp_path / "p.csv"
    _refused(["predict", model, "digits:0", "--out", out, "--quiet"], tmp_path, "bad sample count",
             watch=(model,), written=(out,))


def test_predict_refuses_one_file_in_two_classes(tmp_path, model):
    data = _two_classes(tmp_path / "d")
    os.link(data / "b" / "0.png", data / "a" / "hard.png")  # a hard link is the same file too
    out = tmp_path / "p.csv"
    _refused(["predict", model, data, "--out", out, "--quiet"], tmp_path, "same file", watch=(model,),
             written=(out,))


# ----------------------------------------------------------------------------- good paths
def _predicted(out: Path) -> list[dict]:
    with open(out, newline="") as f:
        return list(csv.DictReader(f))


def test_a_link_loop_predicts_its_one_image_once(tmp_path, model):
    data = tmp_path / "loop"
    _png(data / "a.png")
    (data / "sub").mkdir()
    os.symlink("..", data / "sub" / "up")  # sub/up/sub/up/... : 41 predictions of one image before
    os.symlink(str(data), data / "sub" / "again")  # an absolute link to the folder itself
    out = tmp_path / "p.csv"
    res = assert_ok(run_advisor(["predict", model, data, "--out", out, "--quiet"], cwd=tmp_path))
    assert [Path(r["item"]).name for r in _predicted(out)] == ["a.png"]
    assert res.stderr.strip() == ""


def test_a_link_inside_the_folder_is_read_once(tmp_path, model):
    data = tmp_path / "flat"
    for i in range(3):
        _png(data / "real" / f"{i}.png", seed=i)
    os.symlink("real", data / "alias")  # a folder link inside the folder: the same three files
    os.symlink(os.path.join("real", "0.png"), data / "zero.png")  # a file link inside the folder
    out = tmp_path / "p.csv"
    assert_ok(run_advisor(["predict", model, data, "--out", out, "--quiet"], cwd=tmp_path))
    items = sorted(os.path.relpath(r["item"], data) for r in _predicted(out))
    assert items == ["alias/0.png", "alias/1.png", "alias/2.png"]  # each file once, under its first path


def test_a_link_out_of_the_folder_is_left_out_with_one_warning(tmp_path, model):
    elsewhere = _png(tmp_path / "elsewhere" / "secret.png")
    data = tmp_path / "d"
    _png(data / "mine.png")
    os.symlink(elsewhere, data / "theirs.png")
    os.mkfifo(data / "pipe.png")  # not a regular file: never opened (it would block)
    out = tmp_path / "p.csv"
    res = assert_ok(run_advisor(["predict", model, data, "--out", out, "--quiet"], cwd=tmp_path, timeout=300))
    assert [Path(r["item"]).name for r in _predicted(out)] == ["mine.png"]
    lines = res.err_lines
    assert len(lines) == 1 and lines[0].startswith("advisor: warning: left out 1 link") and "theirs.png" in lines[0]


def test_drop_rare_classes_analyzes_the_rest_with_one_warning(tmp_path):
    data = _folder(tmp_path / "d", {"cat": 6, "dog": 6, "eel": 1, "fox": 3})
    out = tmp_path / "a.json"
    res = assert_ok(run_advisor(["analyze", data, *ANALYZE, "--drop-rare-classes", "--json", out], cwd=tmp_path))
    lines = res.err_lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("advisor: warning: dropped 2 classes 'eel' (1 image), 'fox' (3 images)"), lines[0]
    size = json.loads(out.read_text())["profile"]["size"]
    assert set(size["tasks"][0]["per_class"]) == {"cat", "dog"}


def test_drop_rare_classes_trains_a_model_without_them(tmp_path, model):
    data = _folder(tmp_path / "d", {"cat": 6, "dog": 6, "eel": 1})
    save = tmp_path / "m.pt"
    assert_ok(run_advisor(["train", data, "--strategy", "linear_probe", *FAST, "--drop-rare-classes",
                           "--save", save], cwd=tmp_path))
    js = tmp_path / "p.json"
    assert_ok(run_advisor(["predict", save, data, "--json", js, "--quiet"], cwd=tmp_path))
    metrics = json.loads(js.read_text())["metrics"]
    assert [c["class"] for c in metrics["per_class"]] == ["cat", "dog"] and metrics["unknown_labels"] == ["eel"]


def test_predict_labels_the_model_does_not_know(tmp_path, model):
    data = _two_classes(tmp_path / "pets")  # classes a and b; the model knows 0..9
    out, js = tmp_path / "p.csv", tmp_path / "p.json"
    res = assert_ok(run_advisor(["predict", model, data, "--out", out, "--json", js, "--quiet"], cwd=tmp_path))
    assert len(_predicted(out)) == 12  # the predictions are there
    doc = json.loads(js.read_text())
    assert doc["metrics"] is None and "accuracy cannot be computed" in doc["metrics_note"]
    assert "accuracy cannot be computed" in res.stdout and "Traceback" not in res.stderr


def test_predict_skip_with_some_unreadable_images(tmp_path, model):
    data = tmp_path / "unlabelled"
    _png(data / "good.png")
    (data / "bad.png").write_bytes(b"")
    out = tmp_path / "p.csv"
    res = assert_ok(run_advisor(["predict", model, data, "--unreadable", "skip", "--out", out, "--quiet"],
                                cwd=tmp_path))
    assert [Path(r["item"]).name for r in _predicted(out)] == ["good.png"]
    assert [ln for ln in res.err_lines if ln.startswith("advisor: skipped:")] and "bad.png" in res.stderr


def test_manifest_with_a_bom_and_missing_labels_is_read(tmp_path, pictures):
    rows = _rows(pictures)
    rows[0][1] = ""  # an empty cell is a missing label, by design
    data = _manifest(tmp_path / "m.csv", ["path", "label"], rows, encoding="utf-8-sig")
    assert data.read_bytes().startswith(b"\xef\xbb\xbf")
    out = tmp_path / "a.json"
    assert_ok(run_advisor(["analyze", data, *ANALYZE, "--json", out], cwd=tmp_path))
    size = json.loads(out.read_text())["profile"]["size"]["tasks"][0]
    assert set(size["per_class"]) == {"a", "b"}
