"""A scenario's dataset: the one entry to the target data builders (single.py, multi.py)."""

from __future__ import annotations

from .multi import _chain, _items, _pairs
from .scenarios import Scenario
from .single import _digits_single, _fashion_single


def build_dataset(sc: Scenario):
    """The scenario's ArrayDataset and its fixed Split (train = per_class per class, val, test)."""
    from advisor.data._base import ArrayDataset

    if "item" in sc.data:
        images, labels, classes, split, tasks = _items(sc)
        return ArrayDataset(sc.id, images, labels, tasks=tasks, classes=classes,
                            intermediate="z" if sc.kind == "pipeline" else None), split
    if sc.kind == "multi_task":
        images, labels, classes, split = _pairs(sc)
        return ArrayDataset(sc.id, images, labels, tasks=("right", "left"), classes=classes), split
    if sc.kind == "pipeline":
        images, labels, classes, split = _chain(sc)
        return ArrayDataset(sc.id, images, labels, tasks=("z", "y"), classes=classes, intermediate="z"), split
    if sc.data.endswith("digits"):
        images, labels, names, split = _digits_single(sc)
    else:
        images, labels, names, split = _fashion_single(sc)
    return ArrayDataset(sc.id, images, labels, classes={"label": names}), split
