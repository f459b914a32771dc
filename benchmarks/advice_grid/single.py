"""Single-task targets: Fashion-MNIST families (new classes, the source's own, regrouped, transformed; the fifth
part's corruptions, BREEDS-like groups, mixes and flipped labels) and scikit-learn digits."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .families import _S5_INPUT, FAMILIES, S5_BREEDS
from .images import (DIGITS_TEST, DIGITS_VAL, VAL_PER_CLASS, _fashion_rows, _index_split, _seed, _take,
                     _transform)

if TYPE_CHECKING:
    from .scenarios import Scenario


def _fashion_single(sc: Scenario):
    """(images, labels, classes, (train, val, test)) of a single-task Fashion-MNIST family."""
    from advisor.data.builtin import FASHION_MNIST_CLASSES, fashion_mnist_arrays

    x, y = fashion_mnist_arrays()
    fam = sc.data
    if fam.startswith("s5-"):
        return _s5_single(sc, x, y)
    if fam.startswith(("s6-", "s7-", "s8-", "s9-", "s10-", "s11-", "s12-", "s13-")):
        return _s6_single(sc, x, y)
    if fam == "fm-new-coarse":
        groups = [[5, 7, 9], [6, 8]]
        names = ["shoes (Sandal, Sneaker, Ankle boot)", "other (Shirt, Bag)"]
    elif fam.startswith("fm-new"):
        groups = [[c] for c in (5, 6, 7, 8, 9)]
        names = [FASHION_MNIST_CLASSES[c] for c in (5, 6, 7, 8, 9)]
    elif fam == "fm-src-coarse":
        groups = [[0, 2, 4], [1, 3]]
        names = ["top (T-shirt, Pullover, Coat)", "other (Trouser, Dress)"]
    elif fam.startswith("fm-src"):
        groups = [[c] for c in (0, 1, 2, 3, 4)]
        names = [FASHION_MNIST_CLASSES[c] for c in (0, 1, 2, 3, 4)]
    else:  # in-fashion
        groups = [[c] for c in range(10)]
        names = list(FASHION_MNIST_CLASSES)
    rows, lab, sizes = _fashion_rows(y, fam, sc.per_class, groups, VAL_PER_CLASS,
                                     max(200, math.ceil(1000 / len(groups))))  # >= 1000 test images
    images = _transform(x[rows], fam, rows)
    return images, lab, names, _index_split(sizes)


def _s5_single(sc: Scenario, x: np.ndarray, y: np.ndarray):
    """The fifth held-out part's single-task Fashion-MNIST targets (SHIFT_HELDOUT)."""
    from advisor.data.builtin import FASHION_MNIST_CLASSES

    fam = sc.data
    test_for = lambda groups: max(200, math.ceil(1000 / len(groups)))  # noqa: E731 - >= 1000 test images
    if fam.endswith("breeds"):  # BREEDS-like: the groups' training members differ from their test members
        train_groups = [members for _, members, _ in S5_BREEDS]
        eval_groups = [members for _, _, members in S5_BREEDS]
        tr_rows, tr_lab, (n_tr, _, _) = _fashion_rows(y, fam, sc.per_class, train_groups, 0, 0)
        ev_rows, ev_lab, (_, n_va, n_te) = _fashion_rows(y, fam + "-eval", 0, eval_groups, VAL_PER_CLASS,
                                                         test_for(eval_groups))
        rows, lab = np.concatenate([tr_rows, ev_rows]), np.concatenate([tr_lab, ev_lab])
        names = [f"{g} ({', '.join(FASHION_MNIST_CLASSES[c] for c in a)}; tested on "
                 f"{', '.join(FASHION_MNIST_CLASSES[c] for c in b)})" for g, a, b in S5_BREEDS]
        sizes = [n_tr, n_va, n_te]
    else:
        if fam == "s5-new-regroup":
            groups = [[5, 6], [7, 8, 9]]
        elif fam == "s5-mix":
            groups = [[0], [2], [5], [7], [9]]
        elif fam.startswith("s5-src-"):
            groups = [[c] for c in (0, 1, 2, 3, 4)]
        elif fam.startswith("s5-new-"):
            groups = [[c] for c in (5, 6, 7, 8, 9)]
        else:  # s5-in-fashion-*
            groups = [[c] for c in range(10)]
        names = [" + ".join(FASHION_MNIST_CLASSES[c] for c in g) for g in groups]
        rows, lab, sizes = _fashion_rows(y, fam, sc.per_class, groups, VAL_PER_CLASS, test_for(groups))
    lab = lab.copy()
    if fam.endswith("-flip20"):  # a fifth of the training labels moved to another class, seeded; val/test clean
        rng = np.random.default_rng(_seed("grid-flip", fam, sc.per_class))
        flip = rng.random(sizes[0]) < 0.2
        lab[:sizes[0]][flip] = (lab[:sizes[0]][flip] + rng.integers(1, len(names), int(flip.sum()))) % len(names)
    images = _s5_transform(x[rows], fam, rows) if fam in _S5_INPUT else x[rows].copy()
    return images, lab, names, _index_split(sizes)


def _s6_single(sc: Scenario, x: np.ndarray, y: np.ndarray):
    """The sixth and seventh held-out parts' single-task Fashion-MNIST targets: each family declares its
    groups, input transform, flipped share or BREEDS-like groups in families.py."""
    from advisor.data.builtin import FASHION_MNIST_CLASSES

    fam, spec = sc.data, sc.spec
    test_for = lambda groups: max(200, math.ceil(1000 / len(groups)))  # noqa: E731 - >= 1000 test images
    if "breeds" in spec:
        train_groups = [members for _, members, _ in spec["breeds"]]
        eval_groups = [members for _, _, members in spec["breeds"]]
        tr_rows, tr_lab, (n_tr, _, _) = _fashion_rows(y, fam, sc.per_class, train_groups, 0, 0)
        ev_rows, ev_lab, (_, n_va, n_te) = _fashion_rows(y, fam + "-eval", 0, eval_groups, VAL_PER_CLASS,
                                                         test_for(eval_groups))
        rows, lab = np.concatenate([tr_rows, ev_rows]), np.concatenate([tr_lab, ev_lab])
        names = [f"{g} ({', '.join(FASHION_MNIST_CLASSES[c] for c in a)}; tested on "
                 f"{', '.join(FASHION_MNIST_CLASSES[c] for c in b)})" for g, a, b in spec["breeds"]]
        sizes = [n_tr, n_va, n_te]
    else:
        groups = spec["groups"]
        names = [" + ".join(FASHION_MNIST_CLASSES[c] for c in g) for g in groups]
        rows, lab, sizes = _fashion_rows(y, fam, sc.per_class, groups, VAL_PER_CLASS, test_for(groups))
    lab = lab.copy()
    if spec.get("flip"):  # that share of the training labels moved to another class, seeded; val/test clean
        rng = np.random.default_rng(_seed("grid-flip", fam, sc.per_class))
        flip = rng.random(sizes[0]) < spec["flip"]
        lab[:sizes[0]][flip] = (lab[:sizes[0]][flip] + rng.integers(1, len(names), int(flip.sum()))) % len(names)
    images = _s5_transform(x[rows], fam, rows) if "input" in spec else x[rows].copy()
    return images, lab, names, _index_split(sizes)


def _s5_transform(images: np.ndarray, family: str, rows: np.ndarray) -> np.ndarray:
    """The fifth and sixth parts' input transforms (the fifth's in _S5_INPUT, a sixth-part family's in its
    ``input``), deterministic per image (seeded by its row)."""
    kind, level = _S5_INPUT[family] if family in _S5_INPUT else FAMILIES[family]["input"]
    x = images.astype(np.float32)
    if kind == "blur":
        from PIL import Image, ImageFilter

        x = np.stack([np.asarray(Image.fromarray(im.astype(np.uint8)).filter(ImageFilter.GaussianBlur(level)),
                                 dtype=np.float32) for im in x])
    elif kind == "pixelate":  # box-average level x level blocks, blown up again
        n, h, w = x.shape
        f = int(level)
        x = np.repeat(np.repeat(x.reshape(n, h // f, f, w // f, f).mean(axis=(2, 4)), f, axis=1), f, axis=2)
    elif kind == "contrast":
        x = 128.0 + level * (x - 128.0)
    elif kind == "noise":
        x = x + np.stack([np.random.default_rng(int(r)).normal(0.0, level, im.shape) for r, im in zip(rows, x)])
    elif kind == "jpeg":
        import io

        from PIL import Image

        def jpeg(im):
            buf = io.BytesIO()
            Image.fromarray(im.astype(np.uint8)).save(buf, format="JPEG", quality=int(level))
            return np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32)

        x = np.stack([jpeg(im) for im in x])
    else:  # elastic (Simard et al., 2003): a smoothed random displacement field of amplitude ``level`` px
        from scipy.ndimage import gaussian_filter, map_coordinates

        n, h, w = x.shape
        gy, gx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        out = []
        for r, im in zip(rows, x):
            rng = np.random.default_rng(_seed("elastic", int(r)))
            dy, dx = (gaussian_filter(rng.uniform(-1, 1, (h, w)), 3.0) for _ in range(2))
            scale = level / max(np.abs(dy).max(), np.abs(dx).max(), 1e-6)
            out.append(map_coordinates(im, [gy + scale * dy, gx + scale * dx], order=1, mode="constant"))
        x = np.stack(out)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _digits_single(sc: Scenario):
    from advisor.data.builtin import digits_arrays

    x, y = digits_arrays()
    rng = np.random.default_rng(_seed("grid", sc.data, sc.per_class))
    fixed = np.random.default_rng(_seed("grid-eval", "digits"))
    tr, va, te = [], [], []
    for c in range(10):
        rows = fixed.permutation(np.flatnonzero(y == c))
        va.append(np.sort(rows[:DIGITS_VAL]))
        te.append(np.sort(rows[DIGITS_VAL:DIGITS_VAL + DIGITS_TEST]))
        tr.append(_take(rows[DIGITS_VAL + DIGITS_TEST:], min(sc.per_class, len(rows) - DIGITS_VAL - DIGITS_TEST), rng))
    order = np.concatenate([np.concatenate(p) for p in (tr, va, te)])
    sizes = [sum(map(len, p)) for p in (tr, va, te)]
    return x[order], y[order], [str(d) for d in range(10)], _index_split(sizes)
