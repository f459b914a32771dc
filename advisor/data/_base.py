"""The target dataset: images plus one or more integer label columns.

A :class:`TargetDataset` is a list of images (held in memory as a uint8 array,
or as files on disk) with an ``int64`` label matrix of shape ``[n, n_tasks]``
where ``-1`` marks a missing label. Images are decoded lazily by
:meth:`TargetDataset.load`; nothing is decoded up front.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from advisor.data._images import read_image_file
from advisor.errors import AdvisorError, one_line

_FINGERPRINT_VERSION = b"advisor-data-fingerprint-v1\n"
_IMAGES_FINGERPRINT_VERSION = b"advisor-images-fingerprint-v1\n"
_HASH_CHUNK = 1 << 20


def preview_names(names: list[str], k: int = 5) -> str:
    """The first ``k`` names, comma-separated, and how many there are in all when there are more."""
    shown = ", ".join(names[:k])
    return shown + (f", ... ({len(names)} in all)" if len(names) > k else "")


class TargetDataset:
    """Images with integer labels for one or more tasks.

    Attributes:
        name: the dataset spec as the user gave it.
        tasks: label column names (a single-label dataset has ``["label"]``).
        classes: class names per task; list index = integer label.
        labels: ``int64`` array ``[n, n_tasks]``; ``-1`` = missing label.
        intermediate: name of the task that is an intermediate label ``z`` in
            ``x -> z -> y``, or ``None``.
    """

    def __init__(
        self,
        name: str,
        tasks: Sequence[str],
        classes: dict[str, list[str]],
        labels: np.ndarray,
        intermediate: str | None = None,
    ):
        tasks = [str(t) for t in tasks]
        labels = np.asarray(labels)
        if labels.ndim == 1:
            labels = labels[:, None]
        if labels.ndim != 2 or labels.shape[1] != len(tasks):
            raise ValueError(
                f"labels must have shape [n, {len(tasks)}], got {labels.shape}"
            )
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"duplicate task names: {tasks}")
        labels = labels.astype(np.int64, copy=False)
        classes = {t: [str(c) for c in classes[t]] for t in tasks}
        for j, t in enumerate(tasks):
            col = labels[:, j]
            if col.size and (col.min() < -1 or col.max() >= len(classes[t])):
                raise ValueError(
                    f"labels of task {t!r} must lie in [-1, {len(classes[t]) - 1}]"
                )
        if intermediate is not None and intermediate not in tasks:
            raise ValueError(f"intermediate task {intermediate!r} not in {tasks}")
        self.name = str(name)
        self.tasks = tasks
        self.classes = classes
        self.labels = labels
        self.intermediate = intermediate
        self._fingerprint: str | None = None
        self._images_fingerprint: str | None = None

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        sizes = ", ".join(f"{t}: {len(self.classes[t])}" for t in self.tasks)
        extra = f", intermediate={self.intermediate!r}" if self.intermediate else ""
        return (
            f"{type(self).__name__}(name={self.name!r}, n={len(self)}, "
            f"classes={{{sizes}}}{extra})"
        )

    @property
    def primary_task(self) -> str:
        """The final task: the last task that is not the intermediate one."""
        for t in reversed(self.tasks):
            if t != self.intermediate:
                return t
        raise AdvisorError(
            f"dataset {self.name} has only the intermediate label {self.intermediate!r}",
            "add a final label column",
        )

    @property
    def primary_labels(self) -> np.ndarray:
        """Labels ``[n]`` of :attr:`primary_task` (``-1`` = missing)."""
        return self.task_labels(self.primary_task)

    def task_labels(self, task: str) -> np.ndarray:
        """Labels ``[n]`` of one task (``-1`` = missing)."""
        return self.labels[:, self.tasks.index(task)]

    def _check_index(self, i) -> int:
        n = len(self)
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"item {i} out of range for a dataset of {n} items")
        return i

    def load(self, i: int) -> Image.Image:
        """Decode item ``i`` as a PIL image of mode ``"L"`` or ``"RGB"``."""
        return self._load(self._check_index(i))

    def _load(self, i: int) -> Image.Image:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ views
    def subset(self, indices) -> "TargetDataset":
        """A view on some items (same tasks and classes), in the given order."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise IndexError("a boolean mask must have one entry per item")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False).reshape(-1)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"subset indices out of range for {len(self)} items")
        idx = np.where(idx < 0, idx + len(self), idx)
        new = copy.copy(self)
        new.labels = self.labels[idx]
        new._fingerprint = None
        new._images_fingerprint = None
        new._take(idx)
        return new

    def _take(self, idx: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def with_tasks(
        self, tasks: Sequence[str] | None = None, intermediate: str | None = None
    ) -> "TargetDataset":
        """A view keeping only ``tasks`` (in that order), with ``intermediate`` set."""
        tasks = list(self.tasks if tasks is None else tasks)
        unknown = [t for t in tasks if t not in self.tasks]
        if unknown:
            raise AdvisorError(
                f"unknown label column {unknown[0]!r} in {self.name}",
                f"available label columns: {', '.join(self.tasks)}",
            )
        if not tasks:
            raise AdvisorError(
                f"no label columns selected for {self.name}",
                f"choose from: {', '.join(self.tasks)}",
            )
        if intermediate is not None:
            if intermediate not in self.tasks:
                raise AdvisorError(
                    f"unknown intermediate label {intermediate!r} in {self.name}",
                    f"pick one of the label columns: {', '.join(self.tasks)}",
                )
            if intermediate not in tasks:
                tasks.insert(0, intermediate)
            if len(tasks) < 2:
                raise AdvisorError(
                    f"intermediate label {intermediate!r} is the only label column of {self.name}",
                    "add a final label column besides the intermediate one",
                )
        if len(set(tasks)) != len(tasks):
            raise AdvisorError(
                f"label column listed twice for {self.name}: {', '.join(tasks)}",
                "list each label column once",
            )
        new = copy.copy(self)
        cols = [self.tasks.index(t) for t in tasks]
        new.tasks = tasks
        new.classes = {t: list(self.classes[t]) for t in tasks}
        new.labels = self.labels[:, cols]
        new.intermediate = intermediate
        new._fingerprint = None
        return new

    def without_classes(self, task: str, drop: Sequence[int]) -> "TargetDataset":
        """A view without the items of some classes of ``task`` (indices into ``classes[task]``), whose
        remaining classes are renumbered in order. Items with a missing label (-1) stay."""
        j = self.tasks.index(task)
        names = self.classes[task]
        gone = sorted({int(c) for c in drop})
        new = self.subset(~np.isin(self.labels[:, j], gone))
        kept = [c for c in range(len(names)) if c not in gone]
        renumber = np.full(len(names), -1, dtype=np.int64)
        renumber[kept] = np.arange(len(kept))
        labels = new.labels.copy()
        col = labels[:, j]
        labels[:, j] = np.where(col >= 0, renumber[np.maximum(col, 0)], -1)
        new.labels = labels
        new.classes = {**self.classes, task: [names[c] for c in kept]}
        new._fingerprint = None
        return new

    # ------------------------------------------------------------ fingerprint
    def fingerprint(self) -> str:
        """sha256 hex digest of all image contents, labels and task names (memoised)."""
        if self._fingerprint is None:
            self._hash_fingerprints()
        return self._fingerprint

    def images_fingerprint(self) -> str:
        """sha256 hex digest of the image contents and their order alone (memoised).

        Labels, tasks and classes do not enter it, so label variants of the same images (another
        ``--labels``, ``with_tasks``) share it; activation caches key on it.
        """
        if getattr(self, "_images_fingerprint", None) is None:
            self._hash_fingerprints()
        return self._images_fingerprint

    def _hash_fingerprints(self) -> None:
        """Compute the missing fingerprints with one read of the images."""
        hashers = []
        if self._fingerprint is None:
            full = hashlib.sha256(_FINGERPRINT_VERSION)
            meta = {
                "kind": type(self).__name__,
                "n": len(self),
                "tasks": self.tasks,
                "classes": [self.classes[t] for t in self.tasks],
                "intermediate": self.intermediate,
            }
            full.update(json.dumps(meta, sort_keys=True).encode("utf-8"))
            labels = np.ascontiguousarray(self.labels, dtype="<i8")
            full.update(b"labels")
            full.update(labels.tobytes())
            full.update(b"images")
            hashers.append(("_fingerprint", full))
        if getattr(self, "_images_fingerprint", None) is None:
            images = hashlib.sha256(_IMAGES_FINGERPRINT_VERSION)
            images.update(json.dumps({"kind": type(self).__name__, "n": len(self)}).encode("utf-8"))
            hashers.append(("_images_fingerprint", images))
        self._hash_images(_Tee([h for _, h in hashers]))
        for attr, h in hashers:
            setattr(self, attr, h.hexdigest())

    def _hash_images(self, h) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class _Tee:
    """Feeds every ``update`` to several hash objects."""

    def __init__(self, hashers):
        self._hashers = hashers

    def update(self, data) -> None:
        for h in self._hashers:
            h.update(data)


class ArrayDataset(TargetDataset):
    """Images held in memory as a uint8 array ``[N, H, W]`` or ``[N, H, W, C]`` (C = 1 or 3)."""

    def __init__(
        self,
        name: str,
        images: np.ndarray,
        labels: np.ndarray,
        tasks: Sequence[str] = ("label",),
        classes: dict[str, list[str]] | None = None,
        intermediate: str | None = None,
    ):
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got {images.dtype}")
        if images.ndim == 4 and images.shape[-1] == 1:
            images = images[..., 0]
        if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 3)):
            raise ValueError(
                f"images must have shape [N, H, W] or [N, H, W, 3], got {images.shape}"
            )
        labels = np.asarray(labels)
        if labels.ndim == 1:
            labels = labels[:, None]
        if labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"{images.shape[0]} images but {labels.shape[0]} label rows"
            )
        if classes is None:
            classes = {
                t: [str(c) for c in range(int(labels[:, j].max(initial=-1)) + 1)]
                for j, t in enumerate(tasks)
            }
        super().__init__(name, tasks, classes, labels, intermediate)
        self._images = images
        self._rows: np.ndarray | None = None  # None = all rows in order

    @property
    def images(self) -> np.ndarray:
        """The images of this view, ``[n, H, W]`` or ``[n, H, W, 3]`` uint8."""
        return self._images if self._rows is None else self._images[self._rows]

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self._images.shape[1:])

    def _row(self, i: int) -> int:
        return i if self._rows is None else int(self._rows[i])

    def _load(self, i: int) -> Image.Image:
        arr = self._images[self._row(i)]
        return Image.fromarray(np.ascontiguousarray(arr), "L" if arr.ndim == 2 else "RGB")

    def _take(self, idx: np.ndarray) -> None:
        self._rows = idx if self._rows is None else self._rows[idx]

    def _hash_images(self, h) -> None:
        h.update(json.dumps(list(self.image_shape)).encode("ascii"))
        n = len(self)
        step = max(1, _HASH_CHUNK * 16 // max(1, int(np.prod(self.image_shape))))
        for start in range(0, n, step):
            if self._rows is None:
                chunk = self._images[start : start + step]
            else:
                chunk = self._images[self._rows[start : start + step]]
            h.update(np.ascontiguousarray(chunk).data)


class FileDataset(TargetDataset):
    """Images stored as files on disk; decoded on demand."""

    def __init__(
        self,
        name: str,
        paths: Sequence[str | os.PathLike],
        labels: np.ndarray,
        tasks: Sequence[str],
        classes: dict[str, list[str]],
        intermediate: str | None = None,
    ):
        labels = np.asarray(labels)
        if labels.ndim == 1:
            labels = labels[:, None]
        if labels.shape[0] != len(paths):
            raise ValueError(f"{len(paths)} paths but {labels.shape[0]} label rows")
        super().__init__(name, tasks, classes, labels, intermediate)
        self.paths: list[Path] = [Path(p) for p in paths]

    def _load(self, i: int) -> Image.Image:
        return read_image_file(self.paths[i])

    def _take(self, idx: np.ndarray) -> None:
        self.paths = [self.paths[int(k)] for k in idx]

    def _hash_images(self, h) -> None:
        for path in self.paths:
            fh = hashlib.sha256()
            size = 0
            try:
                with open(path, "rb") as f:
                    while chunk := f.read(_HASH_CHUNK):
                        fh.update(chunk)
                        size += len(chunk)
            except OSError as exc:
                raise AdvisorError(
                    f"cannot read image file {path}: {one_line(exc.strerror or exc)}",
                    "replace or remove the file (or its manifest row)",
                ) from None
            h.update(f"{size}:".encode("ascii"))
            h.update(fh.digest())


def check_usable(ds: TargetDataset, where: str) -> TargetDataset:
    """Raise AdvisorError unless ``ds`` has items and every task (the primary one first) has two classes
    present: a task of one class (a constant column of a manifest) teaches nothing and scores 1.0."""
    if len(ds) == 0:
        raise AdvisorError(f"no images in {where}", "add images to the dataset")
    primary = ds.primary_task
    for task in [primary] + [t for t in ds.tasks if t != primary]:
        col = ds.task_labels(task)
        present = np.unique(col[col >= 0])
        if present.size == 0:
            raise AdvisorError(
                f"no labels in task {task!r} of {where if task == primary else ds.name}",
                "label the images (an empty cell means a missing label)"
                + ("" if task == primary else ", or leave the task out with --labels"),
            )
        if present.size < 2:
            only = ds.classes[task][int(present[0])]
            if task == primary:
                raise AdvisorError(
                    f"only one class {only!r} in {where}",
                    "a classifier needs at least two classes",
                )
            raise AdvisorError(
                f"task {task!r} of {ds.name} has one class only ({only!r})",
                f"leave it out with --labels (e.g. --labels {primary}), or label it with two classes or more",
            )
    return ds
