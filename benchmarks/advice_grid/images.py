"""The pieces every target data builder shares: rows of Fashion-MNIST and digits, seeds, splits, transforms."""

from __future__ import annotations

import zlib

import numpy as np

FASHION_TRAIN_ROWS = 60000
VAL_PER_CLASS = 100  # Fashion-MNIST targets: validation images per class (from the official test part)
DIGITS_VAL, DIGITS_TEST = 30, 50  # digits: per class (it has about 180 per class in all)


def _seed(*parts) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def _take(rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if n > len(rows):
        raise ValueError(f"asked for {n} of {len(rows)} rows")
    return np.sort(rng.choice(rows, n, replace=False))


def _transform(images: np.ndarray, family: str, rows: np.ndarray) -> np.ndarray:
    """The documented input transforms (deterministic: noise seeded by each image's row)."""
    x = images.astype(np.float32)
    if family.endswith("-invert"):
        x = 255.0 - x
    elif family.endswith("-lowcontrast"):
        x = 128.0 + 0.3 * (x - 128.0)
    elif family.endswith("-blur"):
        from PIL import Image, ImageFilter

        x = np.stack([np.asarray(Image.fromarray(im.astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.5)),
                                 dtype=np.float32) for im in x])
    elif family.endswith("-rot90"):
        x = np.rot90(x, 1, axes=(1, 2))
    elif family.endswith("-pixelate"):
        n, h, w = x.shape
        x = np.repeat(np.repeat(x.reshape(n, h // 4, 4, w // 4, 4).mean(axis=(2, 4)), 4, axis=1), 4, axis=2)
    elif family.endswith("-noise"):
        x = x + np.stack([np.random.default_rng(int(r)).normal(0.0, 50.0, im.shape) for r, im in zip(rows, x)])
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _fashion_rows(y: np.ndarray, fam: str, per_group: int, groups: list[list[int]], val_per_group: int,
                  test_per_group: int):
    """Rows of Fashion-MNIST for a target whose label ``g`` covers the member classes ``groups[g]``:
    ``per_group`` training rows per label (from the official training part, never an image the controlled
    source trained on) and fixed validation and test rows (from the official test part, disjoint, the same
    for every size), each count split evenly over the member classes. Returns (rows, group labels, sizes)."""
    from controlled_source import source_rows

    seen = np.zeros(len(y), bool)
    seen[source_rows(y)] = True  # never use an image the controlled source trained on
    rng = np.random.default_rng(_seed("grid", fam, per_group))
    parts = {"train": [], "val": [], "test": []}
    labels = {"train": [], "val": [], "test": []}
    for g, members in enumerate(groups):
        # split a group's count evenly over its member classes
        def share(total):
            base = [total // len(members)] * len(members)
            for i in range(total - sum(base)):
                base[i] += 1
            return base

        for c, n_tr, n_va, n_te in zip(members, share(per_group), share(val_per_group), share(test_per_group)):
            pool_tr = np.flatnonzero((y == c) & ~seen & (np.arange(len(y)) < FASHION_TRAIN_ROWS))
            pool_te = np.flatnonzero((y == c) & (np.arange(len(y)) >= FASHION_TRAIN_ROWS))
            # validation and test from the official test part, disjoint; the same for every size
            fixed = np.random.default_rng(_seed("grid-eval", fam, c))
            ev = fixed.permutation(pool_te)
            parts["train"].append(_take(pool_tr, n_tr, rng))
            parts["val"].append(np.sort(ev[:n_va]))
            parts["test"].append(np.sort(ev[n_va:n_va + n_te]))
            for k, n in (("train", n_tr), ("val", n_va), ("test", n_te)):
                labels[k].append(np.full(n, g))
    rows = np.concatenate([np.concatenate(parts[k]) for k in ("train", "val", "test")])
    lab = np.concatenate([np.concatenate(labels[k]) for k in ("train", "val", "test")])
    sizes = [sum(map(len, parts[k])) for k in ("train", "val", "test")]
    return rows, lab, sizes


def _index_split(sizes) -> "object":
    from advisor.data.split import Split

    a, b, c = sizes
    idx = np.arange(a + b + c, dtype=np.int64)
    return Split(idx[:a], idx[a:a + b], idx[a + b:a + b + c])


def _digits_28(pick: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn digits ``pick`` resized to 28x28 (bilinear) and their labels."""
    from PIL import Image

    from advisor.data.builtin import digits_arrays

    dx, dy = digits_arrays()
    return (np.stack([np.asarray(Image.fromarray(dx[i]).resize((28, 28), Image.BILINEAR)) for i in pick]),
            dy[pick].astype(np.int64))


def _redraw(labels: np.ndarray, n_classes: int, rng: np.random.Generator, share: float = 0.4) -> None:
    """Replace about ``share`` of ``labels`` (in place) by labels drawn uniformly from ``n_classes``."""
    noisy = rng.random(len(labels)) < share
    labels[noisy] = rng.integers(0, n_classes, int(noisy.sum()))
