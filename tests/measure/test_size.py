"""Size measurements count what the learner sees: the training split."""

from __future__ import annotations

import numpy as np

from advisor.advise import advise
from advisor.data._base import ArrayDataset
from advisor.data.split import stratified_split
from advisor.measure.size import size_profile


def _dataset(per_class=100, classes=4):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(classes), per_class)
    return ArrayDataset("t", rng.integers(0, 255, (len(y), 8, 8), dtype=np.uint8), y)


def test_per_class_counts_are_the_training_splits():
    ds = _dataset()
    split = stratified_split(ds.labels[:, 0], seed=0, fractions=(0.3, 0.5, 0.2))
    s = size_profile(ds, split)
    t = s.task("label")
    assert s.n_samples == 400 and s.split == {"train": 120, "val": 200, "test": 80}
    assert t.per_class == {"0": 30, "1": 30, "2": 30, "3": 30}  # not the whole dataset's 100
    assert t.median_per_class == 30 and t.n_labelled == 120


def test_the_split_changes_the_size_band_of_the_advice(tmp_path):
    """100 images per class: a 0.5 training share is 50 per class (small), 0.9 is 90 (medium)."""
    from tests.advise.test_rules import RISING, make_profile

    ds = _dataset()
    bands = []
    for frac in ((0.5, 0.3, 0.2), (0.9, 0.05, 0.05)):
        split = stratified_split(ds.labels[:, 0], seed=0, fractions=frac)
        per_class = size_profile(ds, split).task("label").median_per_class
        bands.append(advise(make_profile(int(per_class), RISING)).strategy)
    assert bands[0] in ("linear_probe", "svm_early") and bands[1] == "last_k"
