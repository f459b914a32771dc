"""Target datasets: loading (folder, CSV manifest, NPZ, builtins), splits, preprocessing.

``load_dataset(spec)`` is the entry point; every bad input raises
:class:`advisor.errors.AdvisorError` with a one-line message.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Sequence

from advisor.data._base import ArrayDataset, FileDataset, TargetDataset, check_usable
from advisor.data.arrays import load_npz
from advisor.data.builtin import BUILTIN_DATASETS, load_builtin, parse_builtin_spec
from advisor.data.examples import EXAMPLE_DATASETS, load_example, parse_example_spec
from advisor.data.folder import IMAGE_EXTENSIONS, load_folder
from advisor.data.manifest import load_manifest
from advisor.data.split import (
    Split,
    fit_to_split,
    min_per_class,
    parse_split,
    stratified_sample,
    stratified_split,
)
from advisor.data.transforms import Preprocess, TorchView, with_image_size
from advisor.errors import AdvisorError

__all__ = [
    "TargetDataset",
    "ArrayDataset",
    "FileDataset",
    "load_dataset",
    "load_folder",
    "load_manifest",
    "load_npz",
    "load_builtin",
    "Split",
    "stratified_split",
    "parse_split",
    "fit_to_split",
    "min_per_class",
    "stratified_sample",
    "Preprocess",
    "TorchView",
    "with_image_size",
    "BUILTIN_DATASETS",
    "EXAMPLE_DATASETS",
    "load_example",
    "IMAGE_EXTENSIONS",
]

_KINDS = "an image folder, a .csv manifest, a .npz file or one of: " + ", ".join(
    BUILTIN_DATASETS
)
_KINDS += ", " + ", ".join(EXAMPLE_DATASETS)  # the example datasets (advisor.data.examples)


def _looks_like_path(spec: str) -> bool:
    return (
        os.sep in spec
        or "/" in spec
        or spec.startswith((".", "~"))
        or Path(spec).suffix != ""
    )


def load_dataset(
    spec: str | os.PathLike,
    *,
    label_columns: Sequence[str] | None = None,
    intermediate: str | None = None,
    seed: int = 0,
) -> TargetDataset:
    """Load a dataset from a spec.

    ``spec`` is a builtin name (``fashion-mnist``, ``digits``; ``NAME:K`` keeps a
    seeded stratified ``K`` images per class), an image folder (one sub-folder per
    class), a ``.csv`` manifest or a ``.npz`` file. ``label_columns`` picks label
    columns (CSV columns or NPZ task names); ``intermediate`` marks one label column
    as the intermediate label ``z`` of ``x -> z -> y``. ``seed`` drives ``NAME:K``.
    The example datasets ``fashion-pairs`` and ``fashion-chain`` (``NAME`` or ``NAME:K``; see
    advisor.data.examples) load like builtin names; ``seed`` drives how they are drawn.
    """
    name = os.fspath(spec)
    text = name.strip()
    if isinstance(label_columns, str):
        label_columns = [label_columns]
    if not text:
        raise AdvisorError("empty dataset spec", f"pass {_KINDS}")

    if parse_example_spec(text) is not None:  # fashion-pairs, fashion-chain; AdvisorError on a bad :K
        ds = load_example(text, seed=seed)
        ds.name = name
        return _select(ds, label_columns, intermediate, text)

    parsed = parse_builtin_spec(text)  # AdvisorError on a bad :K
    if parsed is not None:
        ds: TargetDataset = load_builtin(text, seed=seed)
        ds.name = name
        return _select(ds, label_columns, intermediate, text)

    path = Path(os.path.expanduser(text))
    if not path.exists():
        if _looks_like_path(text):
            raise AdvisorError(f"no such dataset path: {text}", f"pass {_KINDS}")
        close = difflib.get_close_matches(  # best match among builtin and example names
            text.split(":")[0].lower(), list(BUILTIN_DATASETS) + list(EXAMPLE_DATASETS), n=1
        )
        hint = f"did you mean {close[0]}? Or " if close else ""
        raise AdvisorError(
            f"unknown dataset {text!r} (not a built-in name nor an existing path)",
            f"{hint}pass {_KINDS}",
        )
    if path.is_dir():
        ds = load_folder(path, name=name)
        return _select(ds, label_columns, intermediate, str(path))
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return load_manifest(
            path, label_columns=label_columns, intermediate=intermediate, name=name
        )
    if suffix == ".npz":
        return load_npz(
            path, label_columns=label_columns, intermediate=intermediate, name=name
        )
    kind = f"type {suffix!r}" if suffix else "(no .csv or .npz extension)"
    raise AdvisorError(
        f"unsupported dataset file {kind}: {text}",
        "pass an image folder, a .csv manifest or a .npz file",
    )


def _select(
    ds: TargetDataset,
    label_columns: Sequence[str] | None,
    intermediate: str | None,
    where: str,
) -> TargetDataset:
    if label_columns is None and intermediate is None:
        return ds
    return check_usable(ds.with_tasks(label_columns, intermediate), where)
