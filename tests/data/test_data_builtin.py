"""Builtin datasets: digits and fashion-mnist (with NAME:K subsets)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from advisor.data import BUILTIN_DATASETS, load_dataset
from advisor.data import builtin

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
HAVE_FASHION = all(
    (DEBIAN_DIR / f).is_file()
    for f in (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    )
)
needs_fashion = pytest.mark.skipif(
    not HAVE_FASHION,
    reason="Debian's Fashion-MNIST idx files are absent from /usr/share/datasets/fashion-mnist "
    "(install the package dataset-fashion-mnist)",
)


def test_builtin_names():
    assert set(BUILTIN_DATASETS) == {"fashion-mnist", "digits"}


def test_digits():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits")
    assert ds.name == "digits"
    assert len(ds) == 1797
    assert ds.tasks == ["label"]
    assert ds.classes == {"label": [str(i) for i in range(10)]}
    assert len(set(ds.primary_labels.tolist())) == 10
    ref = load_digits()
    assert ds.primary_labels.tolist() == ref.target.tolist()
    img = ds.load(0)
    assert img.mode == "L" and img.size == (8, 8)
    arr = np.asarray(img)
    np.testing.assert_array_equal(arr, np.rint(ref.images[0] * 255 / 16).astype(np.uint8))
    assert ds.images.max() == 255 and ds.images.min() == 0


def test_digits_per_class_subset_seeded():
    a = load_dataset("digits:5")
    assert len(a) == 50
    assert np.bincount(a.primary_labels).tolist() == [5] * 10
    again = load_dataset("digits:5")
    assert a.fingerprint() == again.fingerprint()
    other = load_dataset("digits:5", seed=1)
    assert other.fingerprint() != a.fingerprint()
    # more per class than exist: every item of each class
    assert len(load_dataset("digits:100000")) == 1797


@needs_fashion
def test_fashion_mnist_full():
    ds = load_dataset("fashion-mnist")
    assert len(ds) == 70000
    assert ds.classes["label"] == [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]
    assert np.bincount(ds.primary_labels).tolist() == [7000] * 10
    # train first (starts 9, 0, 0, 3, 0), then t10k (starts 9, 2, 1, 1, 6)
    assert ds.primary_labels[:5].tolist() == [9, 0, 0, 3, 0]
    assert ds.primary_labels[60000:60005].tolist() == [9, 2, 1, 1, 6]
    img = ds.load(0)
    assert img.mode == "L" and img.size == (28, 28)
    assert ds.images.dtype == np.uint8 and ds.images.shape == (70000, 28, 28)


@needs_fashion
def test_fashion_mnist_k_per_class():
    ds = load_dataset("fashion-mnist:10")
    assert ds.name == "fashion-mnist:10"
    assert len(ds) == 100
    assert np.bincount(ds.primary_labels, minlength=10).tolist() == [10] * 10
    assert len(ds.classes["label"]) == 10
    assert load_dataset("fashion-mnist:10").fingerprint() == ds.fingerprint()
    assert load_dataset("fashion-mnist:10", seed=3).fingerprint() != ds.fingerprint()


@pytest.mark.parametrize("spec", ["digits:0", "digits:-2", "digits:abc", "digits:1.5", "fashion-mnist:"])
def test_bad_per_class_count(spec, expect_error):
    with expect_error("bad sample count", "positive integer"):
        load_dataset(spec)


def test_fashion_mnist_missing_and_no_download(tmp_path, monkeypatch, expect_error):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nno network")

    monkeypatch.setattr(builtin, "FASHION_MNIST_DIR", tmp_path / "absent")
    monkeypatch.setattr(builtin, "DOWNLOAD_ROOT", tmp_path / "cache")
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    builtin._fashion_from_torchvision.cache_clear()
    with expect_error(
        "Fashion-MNIST not found at",
        "could not be downloaded",
        "install the Debian package dataset-fashion-mnist or connect to the internet",
    ):
        load_dataset("fashion-mnist")


def test_read_idx_round_trip(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 0x08, 3]) + np.array(arr.shape, ">u4").tobytes()
    raw = tmp_path / "x-idx3-ubyte"
    raw.write_bytes(header + arr.tobytes())
    with gzip.open(tmp_path / "x-idx3-ubyte.gz", "wb") as f:
        f.write(header + arr.tobytes())
    np.testing.assert_array_equal(builtin.read_idx(raw), arr)
    np.testing.assert_array_equal(builtin.read_idx(tmp_path / "x-idx3-ubyte.gz"), arr)
    raw.write_bytes(header + arr.tobytes()[:5])
    with pytest.raises(ValueError, match="truncated"):
        builtin.read_idx(raw)
