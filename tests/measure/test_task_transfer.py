"""Cross-task probe transfer on synthetic features whose sharing is known by construction."""

import numpy as np

from advisor.measure._task_transfer import probe_transfer, task_transfers


def _features(n=400, d=64, seed=0, noise=1.0):
    """An item class (10) and a digit (10) drawn independently, each written into its own random directions."""
    rng = np.random.default_rng(seed)
    item, digit = rng.integers(0, 10, n), rng.integers(0, 10, n)
    item_dirs, digit_dirs = rng.standard_normal((10, d)) * 3, rng.standard_normal((10, d)) * 3
    x = item_dirs[item] + digit_dirs[digit] + noise * rng.standard_normal((n, d))
    return x, item, digit


GROUP = np.array([0, 1, 0, 1, 0, 2, 0, 2, 1, 2])  # tops, shoes, other: a function of the item


def test_a_coarsening_of_the_task_reads_high_and_an_independent_task_low():
    x, item, digit = _features()
    group = GROUP[item]
    shared = probe_transfer(x, item, group)
    independent = probe_transfer(x, item, digit)
    # both targets are read well from the full features: the difference is where their information lies
    assert shared["accuracy_from_features"] > 0.9 and independent["accuracy_from_features"] > 0.9
    assert shared["transfer"] > 0.9
    assert independent["transfer"] < 0.2
    assert abs(independent["chance"] - np.bincount(digit).max() / len(digit)) < 1e-12
    # the reverse direction of the shared pair (3 group outputs cannot name 10 items) is partial, not full
    back = probe_transfer(x, group, item)
    assert 0.1 < back["transfer"] < 0.8


def test_partly_missing_labels_and_too_few_rows():
    x, item, digit = _features(seed=1)
    few = digit.copy()
    few[np.random.default_rng(0).random(len(few)) >= 0.2] = -1  # the digit on about a fifth of the images
    r = probe_transfer(x, item, few)
    assert r["n"] == int((few >= 0).sum()) and r["transfer"] < 0.3
    none = np.full_like(digit, -1)
    none[:10] = digit[:10]
    assert probe_transfer(x, item, none) is None  # fewer than MIN_ROWS images carry the target


def test_a_target_no_probe_reads_has_no_transfer():
    x, item, _ = _features(seed=2)
    noise = np.random.default_rng(3).integers(0, 2, len(item))  # labels unrelated to the features
    r = probe_transfer(x, item, noise)
    assert r is not None and r["transfer"] is None


def test_task_transfers_covers_every_ordered_pair_of_the_final_tasks():
    x, item, digit = _features(seed=4)
    labels = np.stack([GROUP[item], digit, item], axis=1)
    out = task_transfers(x, labels, ["z", "digit", "item"], ["digit", "item"], "last")
    assert {(t.source, t.target) for t in out} == {("digit", "item"), ("item", "digit")}
    assert all(t.block == "last" and t.transfer < 0.2 for t in out)


def test_a_task_the_features_do_not_read_transfers_nothing():
    """Its probe is no better than the null one, so neither direction of its pairs is measured."""
    x, item, _ = _features(seed=5)
    unread = np.random.default_rng(6).integers(0, 3, len(item))
    out = task_transfers(x, np.stack([unread, item], axis=1), ["noise", "item"], ["noise", "item"], "last")
    by = {(t.source, t.target): t for t in out}
    assert by["item", "noise"].transfer is None and by["noise", "item"].transfer is None
    assert by["noise", "item"].accuracy_from_features > 0.9  # the item itself is read well
