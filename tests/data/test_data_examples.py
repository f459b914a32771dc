"""Example datasets built from real Fashion-MNIST images: fashion-pairs and fashion-chain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from advisor.data import EXAMPLE_DATASETS, load_dataset
from advisor.data.builtin import FASHION_MNIST_CLASSES, fashion_mnist_arrays
from advisor.data.examples import COARSE_GROUPS, DEFAULT_SIZE, GROUP_OF, final_relation

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
HAVE_FASHION = all(
    (DEBIAN_DIR / f).is_file()
    for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
)
pytestmark = pytest.mark.skipif(
    not HAVE_FASHION, reason="Debian's Fashion-MNIST is absent (install the package dataset-fashion-mnist)"
)


@pytest.fixture(scope="module")
def pairs():
    return load_dataset("fashion-pairs")


@pytest.fixture(scope="module")
def chain():
    return load_dataset("fashion-chain")


def _is_real_item(x: np.ndarray, y: np.ndarray, patch: np.ndarray, cls: int) -> bool:
    members = x[y == cls]
    return bool(np.any(np.all(members.reshape(len(members), -1) == patch.reshape(1, -1), axis=1)))


def test_names_registered():
    assert set(EXAMPLE_DATASETS) == {"fashion-pairs", "fashion-chain"}
    assert load_dataset("fashion-chain:5").tasks == ["z", "y"]


def test_groups_partition_the_classes():
    members = sorted(c for g in COARSE_GROUPS.values() for c in g)
    assert members == list(range(10))
    names = {g: [FASHION_MNIST_CLASSES[c] for c in m] for g, m in COARSE_GROUPS.items()}
    assert names["tops"] == ["T-shirt/top", "Pullover", "Coat", "Shirt"]  # the upper-body garments
    assert names["shoes"] == ["Sandal", "Sneaker", "Ankle boot"]
    assert names["other"] == ["Trouser", "Dress", "Bag"]


def test_fashion_pairs_format(pairs):
    ds = pairs
    assert len(ds) == DEFAULT_SIZE == 6000
    assert ds.tasks == ["left", "right", "same_group"]
    assert ds.intermediate is None and ds.primary_task == "same_group"
    assert ds.classes["left"] == FASHION_MNIST_CLASSES == ds.classes["right"]
    assert ds.classes["same_group"] == ["different", "same"]
    assert ds.images.shape == (6000, 56, 56) and ds.images.dtype == np.uint8
    img = ds.load(0)
    assert img.mode == "L" and img.size == (56, 56)
    # black bands above and below the two items
    assert not ds.images[:, :14].any() and not ds.images[:, 42:].any()
    # missing shares: none of left, 30% of right, 20% of same_group
    missing = (ds.labels == -1).mean(axis=0)
    assert missing[0] == 0
    assert abs(missing[1] - 0.30) <= 0.02
    assert abs(missing[2] - 0.20) <= 0.02
    # classes in range, every class present
    for j, t in enumerate(ds.tasks):
        col = ds.labels[:, j]
        assert set(np.unique(col[col >= 0])) == set(range(len(ds.classes[t])))


def test_fashion_pairs_labels_are_a_relation(pairs):
    left, right, same = pairs.labels.T
    both = (right >= 0) & (same >= 0)
    assert both.sum() > 3000
    # same_group is exactly "both items in one coarse group" where both labels are shown
    np.testing.assert_array_equal(same[both], (GROUP_OF[left[both]] == GROUP_OF[right[both]]).astype(int))
    # about half of the pairs are same-group
    shown = same[same >= 0]
    assert 0.45 < shown.mean() < 0.55
    # not a relabelling of the left item: for every left class both answers occur
    for c in range(10):
        values = set(same[(left == c) & (same >= 0)].tolist())
        assert values == {0, 1}, c
    i = np.flatnonzero((left == 3) & (same == 0))[0]
    j = np.flatnonzero((left == 3) & (same == 1))[0]
    assert left[i] == left[j] and same[i] != same[j]


def test_fashion_pairs_images_are_real_items(pairs):
    x, y = fashion_mnist_arrays()
    rng = np.random.default_rng(0)
    for i in rng.choice(len(pairs), size=5, replace=False):
        img = pairs.images[i]
        left = int(pairs.labels[i, 0])
        assert _is_real_item(x, y, img[14:42, :28], left)
        if pairs.labels[i, 1] >= 0:
            assert _is_real_item(x, y, img[14:42, 28:], int(pairs.labels[i, 1]))


def test_fashion_chain_format(chain):
    ds = chain
    assert len(ds) == 6000
    assert ds.tasks == ["z", "y"]
    assert ds.intermediate == "z" and ds.primary_task == "y"
    assert len(ds.classes["z"]) == 100 and ds.classes["z"][10 * 4 + 5] == "Coat + Sandal"
    assert ds.classes["y"] == ["same class", "same group", "different group"]
    assert ds.images.shape == (6000, 56, 56)
    assert (ds.labels >= 0).all()
    z, y = ds.labels.T
    assert np.unique(z).size == 100
    assert np.bincount(y).tolist() == [2000, 2000, 2000]
    # y is a function of z ...
    np.testing.assert_array_equal(y, final_relation(z // 10, z % 10))
    # ... but not of either item's class alone
    for side in (z // 10, z % 10):
        for c in range(10):
            assert np.unique(y[side == c]).size == 3
    x, fy = fashion_mnist_arrays()
    for i in (0, 1, 2):
        assert _is_real_item(x, fy, ds.images[i][14:42, :28], int(z[i] // 10))
        assert _is_real_item(x, fy, ds.images[i][14:42, 28:], int(z[i] % 10))


def test_deterministic_per_seed(pairs, chain):
    assert load_dataset("fashion-pairs").fingerprint() == pairs.fingerprint()
    assert load_dataset("fashion-chain", seed=0).fingerprint() == chain.fingerprint()
    other = load_dataset("fashion-chain", seed=1)
    assert other.fingerprint() != chain.fingerprint()
    assert not np.array_equal(other.labels, chain.labels)
    a, b = load_dataset("fashion-pairs:40", seed=3), load_dataset("fashion-pairs:40", seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_per_class_size():
    chain = load_dataset("fashion-chain:50")
    assert chain.name == "fashion-chain:50" and len(chain) == 150
    assert np.bincount(chain.primary_labels).tolist() == [50, 50, 50]
    pairs = load_dataset("fashion-pairs:50", seed=2)
    assert len(pairs) == 100
    missing = (pairs.labels == -1).sum(axis=0).tolist()
    assert missing == [0, 30, 20]


def test_label_column_selection():
    ds = load_dataset("fashion-pairs:30", label_columns=["left", "same_group"])
    assert ds.tasks == ["left", "same_group"]
    ds = load_dataset("fashion-chain:30", label_columns=["y"])
    assert ds.tasks == ["y"] and ds.intermediate is None


@pytest.mark.parametrize("spec", ["fashion-chain:0", "fashion-pairs:abc", "fashion-chain:"])
def test_bad_sample_count(spec, expect_error):
    with expect_error("bad sample count", "e.g. fashion-"):
        load_dataset(spec)


def test_misspelt_name(expect_error):
    with expect_error("did you mean fashion-chain?", "fashion-pairs, fashion-chain"):
        load_dataset("fashion-chian")
