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


def min_per_class(fractions: Sequence[float] = DEFAULT_FRACTIONS) -> int:
    """The fewest items a class needs for :func:`stratified_split` to give it at least one in each part
    with a positive fraction, whatever the other classes: the smallest ``n`` with ``floor(n * f) >= 1``
    for every such part (5 for 0.6/0.2/0.2, 10 for 0.8/0.1/0.1). Fewer may or may not leave a part
    without the class, depending on the rounding the other classes leave behind."""
    f = _check_fractions(fractions)
    f = f[f > 0]
    n = max(1, int(np.ceil(1.0 / f.min())) - 1)
    while np.any(np.floor(n * f + 1e-9) < 1):
        n += 1
    return n


def _fmt_fractions(f: Sequence[float]) -> str:
    return ",".join(f"{float(v):g}" for v in f)


def fit_to_split(ds, fractions: Sequence[float] = DEFAULT_FRACTIONS, *, drop_rare: bool = False):
    """``ds`` if every class of its primary task has :func:`min_per_class` items or more (a class with
    none is left alone); otherwise an AdvisorError naming the classes and their counts, or with
    ``drop_rare`` a view without them (one :class:`advisor.errors.AdvisorWarning` names them)."""
    from advisor.data._base import check_usable
    from advisor.errors import warn

    need = min_per_class(fractions)
    task = ds.primary_task
    names = ds.classes[task]
    col = ds.task_labels(task)
    counts = np.bincount(col[col >= 0], minlength=len(names))
    rare = [int(c) for c in np.flatnonzero((counts > 0) & (counts < need))]
    if not rare:
        return ds
    listed = ", ".join(f"{names[c]!r} ({counts[c]} image{'s' if counts[c] != 1 else ''})" for c in rare[:5])
    listed += f" and {len(rare) - 5} more" if len(rare) > 5 else ""
    what = f"{'class' if len(rare) == 1 else f'{len(rare)} classes'} {listed} of {ds.name}"
    why = (f"the split {_fmt_fractions(fractions)} needs at least {need} images per class "
           "(one each in train, validation and test)")
    if not drop_rare:
        raise AdvisorError(f"{what}: too few, {why}",
                           "add images, pass --drop-rare-classes to leave such classes out, "
                           "or give validation and test larger shares with --split")
    kept = int(np.count_nonzero(counts)) - len(rare)
    if kept < 2:
        raise AdvisorError(f"dropping {what} leaves {kept} class{'es' if kept != 1 else ''} with enough images: "
                           f"{why}", "add images to the classes")
    out = check_usable(ds.without_classes(task, rare), ds.name)
    warn(f"dropped {what}: {why}")
    return out
