"""Multi-task and pipeline targets: two items side by side, one centred item (its class, its group or a digit
blended into it), and the fashion-chain example."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from advisor.data.builtin import FASHION_MNIST_CLASSES
from advisor.data.examples import COARSE_GROUPS

from .families import _S5_INPUT
from .images import _digits_28, _fashion_rows, _index_split, _redraw, _seed, _transform
from .single import _s5_transform

if TYPE_CHECKING:
    from .scenarios import Scenario


def _pairs(sc: Scenario):
    """Multi-task: two items on the 56x56 canvas of advisor.data.examples (left item at columns 0-27, right at
    28-55, rows 14-41)."""
    from advisor.data.builtin import FASHION_MNIST_CLASSES, digits_arrays, fashion_mnist_arrays
    from advisor.data.examples import place_pair

    from controlled_source import source_rows

    x, y = fashion_mnist_arrays()
    seen = np.zeros(len(y), bool)
    seen[source_rows(y)] = True
    rng = np.random.default_rng(_seed("grid", sc.family, sc.per_class))
    n_train, n_val, n_test = 10 * sc.per_class, 500, 1000
    n = n_train + n_val + n_test
    left_cls = np.concatenate([np.repeat(np.arange(10), sc.per_class), rng.integers(0, 10, n_val + n_test)])
    pool = [rng.permutation(np.flatnonzero((y == c) & ~seen)) for c in range(10)]
    used = [0] * 10

    def draw(c):
        r = pool[c][used[c]]
        used[c] += 1
        return r

    left = np.array([draw(c) for c in left_cls])
    if sc.family.startswith("mt-unshared"):
        right, right_cls = _digits_28(rng.integers(0, len(digits_arrays()[1]), n))
        right_names = [str(d) for d in range(10)]
    else:
        right_cls = rng.integers(0, 10, n)
        right = x[np.array([draw(c) for c in right_cls])]
        right_names = list(FASHION_MNIST_CLASSES)
    canvas = place_pair(x[left], right)  # the fashion-pairs example's canvas
    right_lab = right_cls.copy()
    if sc.family.endswith("unbalanced"):
        hide = rng.random(n_train) >= 0.10
        right_lab[:n_train][hide] = -1
    if sc.family.endswith("-invert"):
        canvas = 255 - canvas
    # the primary (final) task is the last column: the left item, labelled everywhere
    labels = np.stack([right_lab, left_cls], axis=1).astype(np.int64)
    classes = {"right": right_names, "left": list(FASHION_MNIST_CLASSES)}
    return canvas, labels, classes, _index_split((n_train, n_val, n_test))


#: The groups of one item's class (the y of item-chain, the second task of mt-item-group): the package's one
#: grouping, advisor.data.examples.COARSE_GROUPS (tops are the upper-body garments, so Dress is "other", as in
#: fm-src-coarse and s5-breeds), which fashion-pairs and fashion-chain label with too.
ITEM_GROUPS = tuple(list(members) for members in COARSE_GROUPS.values())
ITEM_GROUP_NAMES = [f"{name.removesuffix('s')} ({', '.join(FASHION_MNIST_CLASSES[c].split('/')[0] for c in members)})"
                    for name, members in COARSE_GROUPS.items()]


def _items(sc: Scenario):
    """One centred Fashion-MNIST item per image (never one the controlled source trained on). Multi-task:
    ``per_class`` training items per class, 50 validation and 100 test per class; tasks (second, item).
    Pipeline: ``per_class`` training items per group (y), 100 validation and 334 test per group; (z, y)."""
    from advisor.data.builtin import FASHION_MNIST_CLASSES, digits_arrays, fashion_mnist_arrays

    x, y = fashion_mnist_arrays()
    fam = sc.family
    group_of = np.zeros(10, np.int64)
    for g, members in enumerate(ITEM_GROUPS):
        group_of[members] = g
    if sc.kind == "pipeline":
        rows, _, sizes = _fashion_rows(y, fam, sc.per_class, list(ITEM_GROUPS), 100, 334)
    else:
        rows, _, sizes = _fashion_rows(y, fam, sc.per_class, [[c] for c in range(10)], 50, 100)
    item = y[rows].astype(np.int64)
    images = x[rows].copy()
    rng = np.random.default_rng(_seed("grid-items", fam, sc.per_class))
    if fam.endswith("item-digit") or fam.startswith("s5-") and "item-digit" in fam:
        big, second = _digits_28(rng.integers(0, len(digits_arrays()[1]), len(rows)))
        images = np.clip(np.rint(0.5 * images.astype(np.float32) + 0.5 * big), 0, 255).astype(np.uint8)
        second_names, name = [str(d) for d in range(10)], "digit"
    else:
        second, second_names, name = group_of[item], list(ITEM_GROUP_NAMES), "group"
    if sc.kind == "pipeline":
        z = item.copy()
        if fam.endswith("-noisyz"):
            _redraw(z[:sizes[0]], 10, rng)
        labels = np.stack([z, second], axis=1)
        classes = {"z": list(FASHION_MNIST_CLASSES), "y": second_names}
        return images, labels, classes, _index_split(sizes), ("z", "y")
    if fam.endswith("-unbalanced"):
        second = second.copy()
        second[:sizes[0]][rng.random(sizes[0]) >= 0.10] = -1
    if fam in _S5_INPUT:
        images = _s5_transform(images, fam, rows)
    elif fam.startswith("s5-") and fam.endswith("-invert"):
        images = 255 - images
    labels = np.stack([second, item], axis=1)  # the primary (final) task is the last column: the item
    return images, labels, {name: second_names, "item": list(FASHION_MNIST_CLASSES)}, _index_split(sizes), (name, "item")


def _chain(sc: Scenario):
    from advisor.data.examples import CHAIN_Y_CLASSES, example_arrays

    extra = 400 + 100  # per final class: 100 validation and about 333 test items
    n = 3 * (sc.per_class + extra)
    images, labels, _, _ = example_arrays("fashion-chain", n, _seed("grid", sc.family) % 1000)
    labels = np.array(labels)
    y = labels[:, 1]
    tr, va, te = [], [], []
    for c in range(3):
        rows = np.flatnonzero(y == c)
        tr.append(rows[:sc.per_class])
        va.append(rows[sc.per_class:sc.per_class + 100])
        te.append(rows[sc.per_class + 100:sc.per_class + extra])
    order = np.concatenate([np.concatenate(p) for p in (tr, va, te)])
    sizes = [sum(map(len, p)) for p in (tr, va, te)]
    labels = labels[order]
    if sc.family == "chain-noisyz":
        _redraw(labels[:sizes[0], 0], 100, np.random.default_rng(_seed("noisyz")))
    elif sc.family == "chain-scarcez":
        keep = np.random.default_rng(_seed("scarcez", sc.per_class)).random(sizes[0]) < 0.2
        labels[:sizes[0], 0][~keep] = -1
    images = images[order]
    if sc.family.endswith("-blur"):
        images = _transform(images, sc.family, order)
    from advisor.data.builtin import FASHION_MNIST_CLASSES as names

    classes = {"z": [f"{a} + {b}" for a in names for b in names], "y": list(CHAIN_Y_CLASSES)}
    return images, labels, classes, _index_split(sizes)
