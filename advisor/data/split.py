"""Deterministic stratified train/val/test splits and stratified samples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from advisor.errors import AdvisorError


@dataclass(frozen=True)
class Split:
    """Three disjoint, sorted ``int64`` index arrays covering a dataset."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.val), len(self.test)


def _as_label_vector(labels) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise AdvisorError(
            f"labels for a stratified split must be one column, got shape {y.shape}",
            "pass the labels of one task, e.g. dataset.primary_labels",
        )
    if y.size and not (np.issubdtype(y.dtype, np.integer) or y.dtype == bool):
        raise AdvisorError(
            f"labels for a stratified split must be integers, got {y.dtype}",
            "pass integer class indices (-1 = missing)",
        )
    y = y.astype(np.int64)
    return np.where(y < 0, -1, y)


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    f = np.asarray(fractions, dtype=np.float64).reshape(-1)
    if f.shape != (3,) or not np.all(np.isfinite(f)) or np.any(f < 0) or abs(f.sum() - 1) > 1e-6:
        raise AdvisorError(
            f"bad split fractions {tuple(fractions)}",
            "use three non-negative numbers summing to 1, e.g. (0.6, 0.2, 0.2)",
        )
    return f / f.sum()


def _class_counts(n: int, f: np.ndarray, deficit: np.ndarray) -> np.ndarray:
    """Split ``n`` items into 3 parts, each within one item of ``n * f``.

    Leftover items after flooring go to the parts furthest behind their running
    target (``deficit``), so rounding does not pile up in one part across classes.
    Classes with fewer than 3 items fill train first.
    """
    ideal = n * f
    counts = np.floor(ideal + 1e-9).astype(np.int64)
    if 0 < n < 3 and counts[0] == 0:
        counts[0] = 1
        if counts.sum() > n:
            k = max((k for k in (1, 2) if counts[k] > 0), key=lambda k: counts[k] - ideal[k])
            counts[k] -= 1
    rest = n - int(counts.sum())
    if rest > 0:
        room = ideal - counts > 1e-9  # parts that may take one more and stay within ±1
        order = sorted(
            (k for k in range(3) if room[k]), key=lambda k: (-deficit[k], k)
        )
        for k in order[:rest]:
            counts[k] += 1
        rest = n - int(counts.sum())
        k = 0
        while rest > 0:  # only reachable with degenerate fractions; keep coverage
            counts[k % 3] += 1
            rest -= 1
            k += 1
    return counts


#: Train, validation and test shares of every class when none are given.
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)


def parse_split(text: str | Sequence[float] | None) -> tuple[float, float, float]:
    """``"0.3,0.5,0.2"`` (or three numbers) -> train/val/test fractions; None -> the default.

    All three must be positive (a search needs a validation split, and the best trial a test
    split) and sum to 1 within 0.001.
    """
    if text is None:
        return DEFAULT_FRACTIONS
    fix = "use --split TRAIN,VAL,TEST with three positive fractions summing to 1, e.g. 0.6,0.2,0.2"
    try:
        parts = [float(p) for p in (text.split(",") if isinstance(text, str) else text)]
    except (TypeError, ValueError):
        raise AdvisorError(f"bad split {text!r}: not three numbers", fix) from None
    if len(parts) != 3 or not all(np.isfinite(parts)) or min(parts) <= 0 or abs(sum(parts) - 1) > 1e-3:
        raise AdvisorError(f"bad split {text!r}", fix)
    return parts[0], parts[1], parts[2]


def stratified_split(
    labels: np.ndarray,
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> Split:
    """Deterministic stratified split into train/val/test.

    ``labels`` is ``[n]`` int with ``-1`` = missing (its own stratum). Per class,
    each part gets ``n_c * fraction`` items rounded down or up (so within one
    item of the exact share); classes with fewer than 3 items fill train first.
    The same seed always gives the same split.
    """
    y = _as_label_vector(labels)
    f = _check_fractions(fractions)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    target = np.zeros(3)
    assigned = np.zeros(3)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        n = idx.size
        target += n * f
        counts = _class_counts(n, f, target - assigned)
        assigned += counts
        idx = rng.permutation(idx)
        a, b = counts[0], counts[0] + counts[1]
        for k, piece in enumerate((idx[:a], idx[a:b], idx[b:])):
            parts[k].append(piece)
    out = [
        np.sort(np.concatenate(p)).astype(np.int64) if p else np.zeros(0, np.int64)
        for p in parts
    ]
    return Split(*out)


def stratified_sample(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``n`` items drawn per class in proportion to class size.

    When ``n`` is at least the number of classes, every class gets at least one
    item. ``-1`` (missing) counts as its own class. Deterministic for a seed.
    """
    y = _as_label_vector(labels)
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise AdvisorError(
            f"bad sample size {n!r}", "use a positive integer number of items"
        )
    n = int(n)
    total = y.size
    if n >= total:
        return np.arange(total, dtype=np.int64)
    classes, sizes = np.unique(y, return_counts=True)
    k = classes.size
    rng = np.random.default_rng(seed)
    ideal = n * sizes / total
    if n >= k:
        lower = np.ones(k, dtype=np.int64)
        counts = np.clip(np.floor(ideal).astype(np.int64), lower, sizes)
        while counts.sum() != n:
            d = n - int(counts.sum())
            if d > 0:
                ok = np.flatnonzero(counts < sizes)
                pri = ideal[ok] - counts[ok]
                pick = ok[np.lexsort((ok, -pri))][:d]
                counts[pick] += 1
            else:
                ok = np.flatnonzero(counts > lower)
                pri = counts[ok] - ideal[ok]
                pick = ok[np.lexsort((ok, -pri))][: -d]
                counts[pick] -= 1
    else:
        # Fewer slots than classes: one item from each of the n largest classes
        # (ties broken at random with the seed).
        tie = rng.permutation(k)
        chosen = np.lexsort((tie, -sizes))[:n]
        counts = np.zeros(k, dtype=np.int64)
        counts[chosen] = 1
    picked = []
    for c, m in zip(classes, counts):
        if m:
            idx = np.flatnonzero(y == c)
            picked.append(rng.choice(idx, size=int(m), replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int64)
