"""NPZ dataset: arrays ``x`` (images) and ``y`` (integer labels), optional ``tasks``."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from advisor.data._base import ArrayDataset, check_usable
from advisor.errors import AdvisorError, one_line

_SAVE_HINT = "save images as x and labels as y, e.g. np.savez(path, x=images, y=labels)"

#: The largest class index y may hold: class names are 0..max(y), so a stray 10**12 would ask for a
#: trillion of them. ImageNet-21k has 21,841 classes; a head for 100,000 on a 1,280-feature backbone
#: already has 128 million weights.
MAX_LABEL = 100_000


def images_to_uint8(x: np.ndarray, where: str) -> np.ndarray:
    """Normalise an image array to uint8 ``[N, H, W]`` or ``[N, H, W, 3]``.

    Accepts ``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]`` with C in (1, 3);
    uint8 as is, other integers in [0, 255], floats in [0, 1] (scaled by 255) or
    in [0, 255].
    """
    x = np.asarray(x)
    if x.ndim == 4:
        if x.shape[-1] in (1, 3):
            pass
        elif x.shape[1] in (1, 3):
            x = np.moveaxis(x, 1, -1)
        else:
            raise AdvisorError(
                f"cannot tell the channel axis of x with shape {x.shape} in {where}",
                "store x as N,H,W or N,H,W,C or N,C,H,W with C = 1 or 3",
            )
        if x.shape[-1] == 1:
            x = x[..., 0]
    elif x.ndim != 3:
        raise AdvisorError(
            f"x in {where} has shape {x.shape}",
            "store x as N,H,W or N,H,W,C or N,C,H,W with C = 1 or 3",
        )
    if x.shape[0] and 0 in x.shape[1:3]:
        raise AdvisorError(
            f"the images of x in {where} are {x.shape[1]}x{x.shape[2]} pixels",
            "store images at least 1 pixel high and wide",
        )
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if x.dtype == bool:
        return np.ascontiguousarray(x.astype(np.uint8) * 255)
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise AdvisorError(
            f"x in {where} has dtype {x.dtype}", "store x as uint8 or float in [0, 1]"
        )
    if x.size == 0:
        return np.zeros(x.shape, dtype=np.uint8)
    lo, hi = x.min(), x.max()
    if np.issubdtype(x.dtype, np.floating) and not (np.isfinite(lo) and np.isfinite(hi)):
        raise AdvisorError(
            f"x in {where} contains NaN or infinite values", "store finite pixel values"
        )
    if lo < 0 or hi > 255:
        raise AdvisorError(
            f"pixel values of x in {where} span [{lo}, {hi}]",
            "store uint8 or values in [0, 1] or [0, 255]",
        )
    if np.issubdtype(x.dtype, np.floating) and hi <= 1.0:
        x = x * 255.0
    return np.ascontiguousarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))


def _labels_to_int(y: np.ndarray, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise AdvisorError(
            f"y in {where} has shape {y.shape}", "store y as N or N,T integer labels"
        )
    if np.issubdtype(y.dtype, np.integer) or y.dtype == bool:
        out = y.astype(np.int64)
    elif np.issubdtype(y.dtype, np.floating):
        nan = np.isnan(y)
        filled = np.where(nan, -1.0, y)
        if not np.all(np.isfinite(filled)) or np.any(filled != np.round(filled)):
            raise AdvisorError(
                f"y in {where} holds non-integer labels",
                "store y as integers (negative = missing label)",
            )
        if filled.size and filled.max() > MAX_LABEL:
            _too_large(filled.max(), where)
        out = filled.astype(np.int64)
    else:
        raise AdvisorError(
            f"y in {where} has dtype {y.dtype}",
            "store y as integers (negative = missing label)",
        )
    if out.size and out.max() > MAX_LABEL:
        _too_large(out.max(), where)
    out[out < 0] = -1
    return out


def _too_large(label, where: str):
    raise AdvisorError(
        f"y in {where} holds the label {label:g}, above the largest class index allowed ({MAX_LABEL})",
        "store class indices 0..C-1 in y (negative = missing label)",
    )


def load_npz(
    npz_path: str | os.PathLike,
    *,
    label_columns: Sequence[str] | None = None,
    intermediate: str | None = None,
    name: str | None = None,
) -> ArrayDataset:
    """Load an ``.npz`` with ``x`` (images), ``y`` (labels ``[N]`` or ``[N, T]``) and optional ``tasks``.

    Class names of each task are ``"0" .. str(max label)``; a single-task file may
    also carry a ``classes`` array of names. ``label_columns`` keeps only those
    tasks; ``intermediate`` marks one task as the intermediate label.
    """
    npz_path = Path(npz_path)
    name = str(npz_path) if name is None else name
    where = str(npz_path)
    try:
        with np.load(npz_path, allow_pickle=False) as z:
            keys = list(z.files)
            arrays = {k: z[k] for k in ("x", "y", "tasks", "classes") if k in keys}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise AdvisorError(
            f"cannot read NPZ file {npz_path}: {one_line(exc)}",
            "save it with np.savez(path, x=images, y=labels)",
        ) from None
    for key in ("x", "y"):
        if key not in arrays:
            raise AdvisorError(
                f"NPZ file {npz_path} has no array {key!r} (arrays: {', '.join(keys) or 'none'})",
                _SAVE_HINT,
            )
    x = images_to_uint8(arrays["x"], where)
    y = _labels_to_int(arrays["y"], where)
    if x.shape[0] != y.shape[0]:
        raise AdvisorError(
            f"NPZ file {npz_path} has {x.shape[0]} images in x but {y.shape[0]} labels in y",
            "store one label row per image",
        )
    if x.shape[0] == 0:
        raise AdvisorError(f"no images in NPZ file {npz_path} (x is empty)", _SAVE_HINT)
    n_tasks = y.shape[1]
    if "tasks" in arrays:
        tasks = [str(t) for t in np.asarray(arrays["tasks"]).reshape(-1)]
        if len(tasks) != n_tasks or len(set(tasks)) != n_tasks:
            raise AdvisorError(
                f"NPZ file {npz_path} names {len(tasks)} tasks ({', '.join(tasks)}) for "
                f"{n_tasks} label columns in y",
                "store one unique name per column of y in tasks",
            )
    else:
        tasks = ["label"] if n_tasks == 1 else [f"label{j}" for j in range(n_tasks)]
    classes = {
        t: [str(c) for c in range(int(y[:, j].max(initial=-1)) + 1)]
        for j, t in enumerate(tasks)
    }
    if "classes" in arrays and n_tasks == 1:
        names = [str(c) for c in np.asarray(arrays["classes"]).reshape(-1)]
        if len(names) < len(classes[tasks[0]]):
            raise AdvisorError(
                f"NPZ file {npz_path} names {len(names)} classes but y has labels up to "
                f"{len(classes[tasks[0]]) - 1}",
                "store one name per class in classes",
            )
        classes[tasks[0]] = names
    ds = ArrayDataset(name, x, y, tasks=tasks, classes=classes)
    if label_columns is not None or intermediate is not None:
        if isinstance(label_columns, str):
            label_columns = [label_columns]
        ds = ds.with_tasks(label_columns, intermediate)
    return check_usable(ds, where)
