"""Built-in example datasets made from real Fashion-MNIST images: ``fashion-pairs`` and ``fashion-chain``.

Both compose two real Fashion-MNIST items side by side, so their labels describe a *relation*
between two photographs and are not a relabelling of one item's class. They exist to try the
multi-task and the pipeline-vs-end-to-end strategies without bringing data.

Image format (both datasets)
    56x56 greyscale uint8. The *left* 28x28 item fills columns 0-27 and the *right* item
    columns 28-55 of rows 14-41; rows 0-13 and 42-55 are black. The canvas is square on
    purpose: every backbone's preprocessing resizes the shorter side and takes a square centre
    crop, which on a 28x56 strip would cut away the outer half of both items.

Coarse groups of the ten Fashion-MNIST classes (:data:`COARSE_GROUPS`)
    tops  = T-shirt/top, Pullover, Coat, Shirt (classes 0, 2, 4, 6): the upper-body garments
    shoes = Sandal, Sneaker, Ankle boot        (classes 5, 7, 9)
    other = Trouser, Dress, Bag                (classes 1, 3, 8)
    A dress is not a top (an upper-body garment), so it is "other". Until 2026-12-06 it was a top here while
    the advice grid's item groups put it in "other"; this is now the one grouping, which the grid reads too.
    The grid's stored results of its fashion-chain scenarios (code versions up to 1d28899bc36b) were made with
    the dress among the tops.

``fashion-pairs`` (multi-task; the final task is ``same_group``)
    ``left``        10 classes: Fashion-MNIST class of the left item.
    ``right``       10 classes: Fashion-MNIST class of the right item; 30% missing (-1).
    ``same_group``  2 classes ``different``/``same``: both items in the same coarse group
                    (two items of the same class count as ``same``); 20% missing (-1).
    Exactly half of the pairs are same-group (before the labels are hidden). The hidden
    labels are chosen at random (seeded), independently per column, in exact shares.

``fashion-chain`` (pipeline ``x -> z -> y``; ``intermediate="z"``, final task ``y``)
    ``z``  100 classes: the pair of classes, ``z = 10 * left_class + right_class``; class
           names read ``"Coat + Sandal"``.
    ``y``  3 classes, a function of ``z`` that no single item's class determines:
           ``same class`` (both items of one class), ``same group`` (same coarse group,
           different classes) or ``different group``. Each ``y`` class is one third of the
           items. No labels are missing.

Size and seed
    ``fashion-pairs`` and ``fashion-chain`` hold :data:`DEFAULT_SIZE` (6,000) items.
    ``NAME:K`` builds ``K`` items per class of the final label instead (``fashion-pairs:100``
    = 200 items, ``fashion-chain:100`` = 300 items), drawn the same way. The dataset is a pure
    function of the seed (``load_dataset(..., seed=...)``, default 0): the same seed gives the
    same images and labels. Items are drawn from all 70,000 Fashion-MNIST images, without
    reusing an image until its class's pool is used up.

Bringing your own data: a CSV manifest
    One header row, one row per image: a path column (named ``path``, ``image``, ``file`` or
    ``filename``; relative paths are relative to the CSV's folder) and one column per label,
    holding class names as text; an empty cell is a missing label::

        path,left,right,same_group
        img/0001.png,Coat,Sandal,different
        img/0002.png,Shirt,,same

    ``--labels left,same_group`` (``label_columns=`` in the API) picks the label columns used
    as tasks (default: every column but the path). ``--intermediate COL`` (``intermediate=``)
    marks one column as the intermediate label ``z`` of ``x -> z -> y``; the final label ``y``
    is then the last of the other label columns::

        path,parts,verdict
        img/0001.png,Coat + Sandal,different group

    loaded with ``--intermediate parts``, gives ``z = parts`` and ``y = verdict``.
"""

from __future__ import annotations

import functools

import numpy as np

from advisor.data._base import ArrayDataset, check_usable
from advisor.data.builtin import FASHION_MNIST_CLASSES, fashion_mnist_arrays, parse_named_spec, readonly
from advisor.errors import AdvisorError

EXAMPLE_DATASETS: dict[str, str] = {
    "fashion-pairs": "two Fashion-MNIST items side by side (56x56), tasks left, right, same_group "
                     "(some labels missing); NAME:K = K per same_group class",
    "fashion-chain": "two Fashion-MNIST items side by side (56x56), intermediate z (100 class pairs) "
                     "-> y (same class / same group / different group); NAME:K = K per y class",
}

DEFAULT_SIZE = 6000
PAIRS_MISSING = {"right": 0.30, "same_group": 0.20}
COARSE_GROUPS: dict[str, tuple[int, ...]] = {
    "tops": (0, 2, 4, 6),
    "shoes": (5, 7, 9),
    "other": (1, 3, 8),
}
# class index -> coarse group index (0 tops, 1 shoes, 2 other)
GROUP_OF = np.zeros(10, dtype=np.int64)
for _g, _members in enumerate(COARSE_GROUPS.values()):
    GROUP_OF[list(_members)] = _g
SAME_GROUP_CLASSES = ["different", "same"]
CHAIN_Y_CLASSES = ["same class", "same group", "different group"]
_CANVAS = 56


def parse_example_spec(spec: str) -> tuple[str, int | None] | None:
    """``"fashion-chain:100"`` -> ``("fashion-chain", 100)``; ``None`` if not an example name.

    Raises AdvisorError for an example name with a bad ``:K`` suffix.
    """
    return parse_named_spec(spec, EXAMPLE_DATASETS, "samples per class of the final label")


def final_relation(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """fashion-chain's ``y``: 0 same class, 1 same coarse group (different classes), 2 different group."""
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    return np.where(left == right, 0, np.where(GROUP_OF[left] == GROUP_OF[right], 1, 2))


class _Pools:
    """Draw item indices of a class from shuffled per-class pools (reshuffled when used up)."""

    def __init__(self, labels: np.ndarray, rng: np.random.Generator):
        self._rng = rng
        self._members = [np.flatnonzero(labels == c) for c in range(10)]
        self._order = [rng.permutation(m) for m in self._members]
        self._pos = [0] * 10

    def draw(self, classes: np.ndarray) -> np.ndarray:
        out = np.empty(len(classes), dtype=np.int64)
        for c in range(10):
            where = np.flatnonzero(classes == c)
            picked = []
            need = where.size
            while need:
                take = min(need, self._order[c].size - self._pos[c])
                picked.append(self._order[c][self._pos[c]: self._pos[c] + take])
                self._pos[c] += take
                need -= take
                if self._pos[c] == self._order[c].size:
                    self._order[c] = self._rng.permutation(self._members[c])
                    self._pos[c] = 0
            if where.size:
                out[where] = np.concatenate(picked)
        return out


def _right_given(left: np.ndarray, same: np.ndarray, rng: np.random.Generator,
                 same_class: np.ndarray | None = None) -> np.ndarray:
    """Right classes: uniform inside left's group (``same``) or outside it (not ``same``).

    With ``same_class`` given, those items get right = left, and the other same-group items a
    different class of left's group.
    """
    right = np.empty_like(left)
    for i, (c, s) in enumerate(zip(left.tolist(), same.tolist())):
        g = GROUP_OF[c]
        if same_class is not None and same_class[i]:
            right[i] = c
            continue
        if s:
            choices = np.flatnonzero(GROUP_OF == g)
            if same_class is not None:
                choices = choices[choices != c]
        else:
            choices = np.flatnonzero(GROUP_OF != g)
        right[i] = choices[rng.integers(choices.size)]
    return right


def place_pair(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``[n, 56, 56]`` uint8 canvases of the image format above: ``left[i]`` (28x28) at columns 0-27 and
    ``right[i]`` at columns 28-55 of rows 14-41, black elsewhere (the advice grid's pairs use it too)."""
    out = np.zeros((len(left), _CANVAS, _CANVAS), dtype=np.uint8)
    out[:, 14:42, :28] = left
    out[:, 14:42, 28:] = right
    return out


def _compose(images: np.ndarray, li: np.ndarray, ri: np.ndarray) -> np.ndarray:
    return place_pair(images[li], images[ri])


@functools.lru_cache(maxsize=4)
def example_arrays(key: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(images [n, 56, 56] uint8, labels [n, tasks] int64, left class [n], right class [n])``.

    Labels follow the column order of the dataset (missing = -1); the left/right classes are
    the true ones, whatever is hidden. Read-only arrays, memoised.
    """
    x, y = fashion_mnist_arrays()
    rng = np.random.default_rng([seed, 0 if key == "fashion-pairs" else 1])
    if key == "fashion-pairs":
        same = (np.arange(n) % 2).astype(bool)
        same = same[rng.permutation(n)]
        left = rng.integers(0, 10, size=n)
        right = _right_given(left, same, rng)
    elif key == "fashion-chain":
        rel = np.arange(n) % 3
        rel = rel[rng.permutation(n)]
        left = rng.integers(0, 10, size=n)
        right = _right_given(left, rel < 2, rng, same_class=rel == 0)
    else:  # pragma: no cover - guarded by parse_example_spec
        raise KeyError(key)
    pools = _Pools(y, rng)
    # draw left and right items interleaved so that neither side gets the "first" images
    both = np.empty(2 * n, dtype=np.int64)
    both[0::2], both[1::2] = left, right
    items = pools.draw(both)
    images = _compose(x, items[0::2], items[1::2])
    if key == "fashion-pairs":
        same_group = (GROUP_OF[left] == GROUP_OF[right]).astype(np.int64)
        labels = np.stack([left, right, same_group], axis=1).astype(np.int64)
        for j, col in ((1, "right"), (2, "same_group")):
            hide = rng.choice(n, size=int(round(PAIRS_MISSING[col] * n)), replace=False)
            labels[hide, j] = -1
    else:
        labels = np.stack([10 * left + right, final_relation(left, right)], axis=1).astype(np.int64)
    return readonly(images), readonly(labels), readonly(left), readonly(right)


def load_example(spec: str, *, seed: int = 0) -> ArrayDataset:
    """Build ``fashion-pairs`` or ``fashion-chain`` (``NAME:K``: K items per final class)."""
    parsed = parse_example_spec(spec)
    if parsed is None:
        raise AdvisorError(
            f"unknown example dataset {spec!r}", f"use one of: {', '.join(EXAMPLE_DATASETS)}"
        )
    key, per_class = parsed
    names = list(FASHION_MNIST_CLASSES)
    if key == "fashion-pairs":
        n = DEFAULT_SIZE if per_class is None else 2 * per_class
        images, labels, _, _ = example_arrays(key, n, int(seed))
        tasks = ["left", "right", "same_group"]
        classes = {"left": names, "right": names, "same_group": list(SAME_GROUP_CLASSES)}
        intermediate = None
    else:
        n = DEFAULT_SIZE if per_class is None else 3 * per_class
        images, labels, _, _ = example_arrays(key, n, int(seed))
        tasks = ["z", "y"]
        classes = {"z": [f"{a} + {b}" for a in names for b in names], "y": list(CHAIN_Y_CLASSES)}
        intermediate = "z"
    ds = ArrayDataset(str(spec), images, labels, tasks=tasks, classes=classes, intermediate=intermediate)
    return check_usable(ds, str(spec))
