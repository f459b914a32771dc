"""Stratified splits and samples."""

from __future__ import annotations

import numpy as np
import pytest

from advisor.data import Split, parse_split, stratified_sample, stratified_split


def _labels():
    # uneven classes, a missing-label stratum (-1) and tiny classes of 1 and 2 items
    sizes = {0: 50, 1: 31, 2: 17, 3: 7, 4: 2, 5: 1, -1: 9}
    y = np.concatenate([np.full(n, c) for c, n in sizes.items()])
    return np.random.default_rng(123).permutation(y), sizes


def test_split_properties():
    y, sizes = _labels()
    fr = (0.6, 0.2, 0.2)
    s = stratified_split(y, seed=0, fractions=fr)
    assert isinstance(s, Split)
    parts = [s.train, s.val, s.test]
    for p in parts:
        assert p.dtype == np.int64
        assert np.all(np.diff(p) > 0), "sorted and unique"
    allidx = np.concatenate(parts)
    assert len(allidx) == len(y) and len(np.unique(allidx)) == len(y), "disjoint and covering"
    for c, n in sizes.items():
        counts = [int(np.sum(y[p] == c)) for p in parts]
        assert sum(counts) == n
        for k in range(3):
            assert abs(counts[k] - fr[k] * n) <= 1, (c, counts)
    # tiny classes go to train first
    assert np.sum(y[s.train] == 5) == 1
    assert np.sum(y[s.train] == 4) >= 1
    # overall sizes close to the fractions too
    for k, p in enumerate(parts):
        assert abs(len(p) - fr[k] * len(y)) <= 2


def test_split_deterministic_and_seeded():
    y, _ = _labels()
    a = stratified_split(y, seed=0)
    b = stratified_split(y.copy(), seed=0)
    for p, q in zip((a.train, a.val, a.test), (b.train, b.val, b.test)):
        np.testing.assert_array_equal(p, q)
    c = stratified_split(y, seed=1)
    assert not np.array_equal(a.test, c.test)
    assert a.sizes() == c.sizes()


def test_split_other_fractions_and_2d_labels():
    y = np.repeat(np.arange(4), 25)
    s = stratified_split(y[:, None], seed=5, fractions=(0.8, 0.1, 0.1))
    assert s.sizes() == (80, 10, 10)
    for c in range(4):
        assert [int(np.sum(y[p] == c)) for p in (s.train, s.val, s.test)] in ([20, 3, 2], [20, 2, 3])


def test_split_random_label_sets():
    rng = np.random.default_rng(0)
    for trial in range(40):
        n = int(rng.integers(1, 300))
        y = rng.integers(-1, int(rng.integers(1, 12)), size=n)
        fr = rng.dirichlet([2, 1, 1])
        s = stratified_split(y, seed=trial, fractions=tuple(fr))
        allidx = np.concatenate([s.train, s.val, s.test])
        assert np.array_equal(np.sort(allidx), np.arange(n))
        for c in np.unique(y):
            m = int(np.sum(y == c))
            for k, p in enumerate((s.train, s.val, s.test)):
                assert abs(int(np.sum(y[p] == c)) - fr[k] * m) <= 1
            if m < 3:
                assert np.sum(y[s.train] == c) >= 1


def test_split_bad_input(expect_error):
    with expect_error("bad split fractions"):
        stratified_split(np.arange(10) % 2, fractions=(0.5, 0.5, 0.5))
    with expect_error("bad split fractions"):
        stratified_split(np.arange(10) % 2, fractions=(0.5, 0.5))
    with expect_error("one column"):
        stratified_split(np.zeros((4, 2), int))


def test_stratified_sample():
    y, sizes = _labels()
    idx = stratified_sample(y, 40, seed=0)
    assert idx.dtype == np.int64 and len(idx) == 40
    assert np.all(np.diff(idx) > 0)
    got = {c: int(np.sum(y[idx] == c)) for c in sizes}
    assert all(v >= 1 for v in got.values()), got  # one per class (7 strata <= 40)
    total = len(y)
    for c, n in sizes.items():
        assert abs(got[c] - 40 * n / total) <= 1.5, (c, got)
    np.testing.assert_array_equal(idx, stratified_sample(y, 40, seed=0))
    assert not np.array_equal(idx, stratified_sample(y, 40, seed=1))
    # n >= size: everything
    np.testing.assert_array_equal(stratified_sample(y, 10_000, seed=0), np.arange(len(y)))
    # fewer slots than classes: at most one per class, the largest classes
    few = stratified_sample(y, 3, seed=0)
    assert len(few) == 3 and sorted(y[few].tolist()) == [0, 1, 2]


@pytest.mark.parametrize("n", [0, -1, 2.5])
def test_stratified_sample_bad_n(n, expect_error):
    with expect_error("bad sample size"):
        stratified_sample(np.arange(10) % 2, n, seed=0)


def test_parse_split():
    assert parse_split(None) == (0.6, 0.2, 0.2)
    assert parse_split("0.3,0.5,0.2") == (0.3, 0.5, 0.2)
    assert parse_split(" 0.5, 0.25 ,0.25") == (0.5, 0.25, 0.25)
    assert parse_split([0.7, 0.2, 0.1]) == (0.7, 0.2, 0.1)


@pytest.mark.parametrize("text", ["0.5,0.5", "0.6,0.2,0.3", "a,b,c", "0.8,0.2,0", "1.2,-0.1,-0.1", "nan,0.5,0.5", ""])
def test_parse_split_rejects(text, expect_error):
    with expect_error("bad split"):
        parse_split(text)
