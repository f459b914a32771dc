"""Size measurements: samples, classes, per-class counts and imbalance, per task."""

from __future__ import annotations

import numpy as np

from advisor.measure.profile import SizeProfile, TaskSize


def task_size(task: str, labels: np.ndarray, classes: list[str]) -> TaskSize:
    """Statistics of one label column ``labels`` [n] (-1 = missing) with class names ``classes``."""
    present = labels[labels >= 0]
    counts = np.bincount(present, minlength=len(classes))
    nonzero = counts[counts > 0]
    return TaskSize(
        task=task,
        n_labelled=int(present.size),
        n_missing=int(labels.size - present.size),
        n_classes=int(nonzero.size),
        per_class={str(c): int(n) for c, n in zip(classes, counts)},
        min_per_class=int(nonzero.min()) if nonzero.size else 0,
        median_per_class=float(np.median(nonzero)) if nonzero.size else 0.0,
        max_per_class=int(nonzero.max()) if nonzero.size else 0,
        imbalance_ratio=float(nonzero.max() / nonzero.min()) if nonzero.size else float("nan"),
    )


def size_profile(dataset, split) -> SizeProfile:
    """Size of ``dataset`` (advisor.data.TargetDataset) with its train/val/test ``split``.

    The per-task label statistics count the **training split** only: that is what a learner sees,
    so the size rules of the advice change with ``--split`` as they should. ``n_samples`` and
    ``split`` keep the whole dataset's totals.
    """
    img = dataset.load(0)
    channels = len(img.getbands())
    train = dataset.labels[split.train]
    return SizeProfile(
        n_samples=len(dataset),
        input_shape=[channels, img.height, img.width],
        split={"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        tasks=[task_size(t, train[:, j], dataset.classes[t]) for j, t in enumerate(dataset.tasks)],
    )
