"""``advisor predict``: one row per image, and when the data has labels, how good the predictions are.

DATA is any dataset form analyze takes (folder, CSV manifest, NPZ, built-in) or a folder of
unlabelled images (image files directly in it, or in sub-folders that are not classes: when the
folder has loose images, every image under it is predicted without a label). Labels are matched
to the model's classes by name; a label the model does not know counts as a wrong prediction. When
none of the labels is a class the model knows, there are predictions but no metrics: ``metrics`` is
None and ``metrics_note`` says why. When no image at all could be read (``--unreadable skip``),
nothing was predicted: an AdvisorError, and nothing is written.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from advisor.deploy.inference import Bundle, infer, top_k
from advisor.errors import AdvisorError


@dataclass
class Prediction:
    dataset: str
    model: str
    classes: list[str]
    items: list[Any]  # path (str) or dataset index (int), one per predicted image
    probs: np.ndarray = field(metadata={"json": False})
    labels: list[str | None]  # true class name per predicted image (None: unlabelled)
    failures: list[dict]  # {"item", "reason"} of images that could not be read (skipped)
    wall_time: float
    images_per_second: float
    metrics: dict | None = None  # when some images have labels the model knows
    metrics_note: str | None = None  # why there are no metrics although the images have labels

    @property
    def predicted(self) -> list[str]:
        return [self.classes[i] for i in self.probs.argmax(axis=1)] if len(self.probs) else []


def load_data(spec: str, seed: int = 0, label_columns=None, intermediate=None):
    """The dataset ``spec`` as analyze loads it, or an unlabelled folder of images."""
    from advisor.data import load_dataset

    path = Path(os.path.expanduser(str(spec)))
    if path.is_dir() and _has_loose_images(path):
        return unlabelled_folder(path, str(spec))
    return load_dataset(spec, label_columns=label_columns, intermediate=intermediate, seed=seed)


def _has_loose_images(folder: Path) -> bool:
    from advisor.data.folder import is_image_file

    try:
        return any(e.is_file() and is_image_file(e.name) for e in os.scandir(folder))
    except OSError as e:
        raise AdvisorError(f"cannot list {folder} ({e.strerror})", "check the path and its permissions") from None


def unlabelled_folder(folder: Path, name: str):
    from advisor.data import FileDataset
    from advisor.data.folder import _images_under

    paths = _images_under(folder)
    if not paths:
        raise AdvisorError(f"no images in {folder}", "pass a folder with image files")
    return FileDataset(name, paths, np.full((len(paths), 1), -1, dtype=np.int64), tasks=["label"],
                       classes={"label": []})


def predict(model: str | None, data: str, *, experiment: str | None = None, tracking_uri: str | None = None,
            workspace: str | None = None, **options) -> Prediction:
    """Predict every image of ``data`` with ``model`` (a ``--save`` file, ``runs:/RUN_ID/model`` or
    ``models:/NAME/VERSION``; or None and ``experiment``: the best model of that search), resolved by
    :func:`advisor.deploy.resolve.load_bundle`; ``options``: those of :func:`predict_data`."""
    from advisor.deploy.resolve import load_bundle

    bundle = load_bundle(model, experiment=experiment, tracking_uri=tracking_uri, workspace=workspace)
    return predict_data(bundle, data, **options)


def predict_data(bundle: Bundle, spec: str, *, batch_size: int = 64, device: str = "auto",
                 skip_unreadable: bool = False, seed: int = 0, label_columns=None, intermediate=None,
                 progress: Callable[[int, int], None] | None = None) -> Prediction:
    """Predict every image of ``spec``; metrics against its labels where it has them."""
    ds = load_data(spec, seed=seed, label_columns=label_columns, intermediate=intermediate)
    n = len(ds)
    paths = getattr(ds, "paths", None)
    names = [str(p) for p in paths] if paths is not None else list(range(n))
    t0 = time.perf_counter()
    out = infer(bundle, list(range(n)), ds.load, batch_size=batch_size, device=device,
                skip_unreadable=skip_unreadable, progress=progress)
    wall = time.perf_counter() - t0
    if n and not out.kept:  # --unreadable skip, and every image was skipped: nothing was predicted
        why = out.failures[0][1]
        raise AdvisorError(f"none of the {n} images of {spec} could be read, e.g. {why}",
                           "check that it holds image files (png, jpg, ...) that are readable")
    task = bundle.task if bundle.task in ds.tasks else ds.primary_task
    col = ds.task_labels(task)
    ds_classes = ds.classes[task]
    labels = [ds_classes[col[i]] if col[i] >= 0 else None for i in out.kept]
    pred = Prediction(dataset=str(spec), model=bundle.source, classes=list(bundle.classes),
                      items=[names[i] for i in out.kept], probs=out.probs, labels=labels,
                      failures=[{"item": names[p], "reason": why} for p, why in out.failures],
                      wall_time=wall, images_per_second=len(out.kept) / wall if wall > 0 else float("nan"))
    from advisor.data._base import preview_names

    known = set(pred.classes)
    given = sorted({lab for lab in labels if lab is not None})
    if given and not known.intersection(given):
        pred.metrics_note = (f"accuracy cannot be computed: none of the labels of {spec} "
                             f"({preview_names(given)}) is a class the model knows ({preview_names(pred.classes)})")
    elif given:
        pred.metrics = metrics(pred.classes, labels, out.probs.argmax(axis=1))
    return pred


def metrics(classes: list[str], labels: list[str | None], pred_idx: np.ndarray) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix over the
    labelled images. A label the model does not know is a wrong prediction (``unknown_labels``)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    index = {c: i for i, c in enumerate(classes)}
    keep = [k for k, lab in enumerate(labels) if lab is not None]
    unknown = sorted({labels[k] for k in keep if labels[k] not in index})
    c = len(classes)
    y = np.array([index.get(labels[k], c) for k in keep], dtype=np.int64)  # c = "a class the model lacks"
    p = np.asarray(pred_idx, dtype=np.int64)[keep]
    present = sorted(set(y[y < c].tolist()))
    prec, rec, f1, support = precision_recall_fscore_support(y, p, labels=list(range(c)), zero_division=0)
    macro = float(np.mean([f1[i] for i in present])) if present else float("nan")
    conf = confusion_matrix(y, p, labels=list(range(c)))
    return {"n": int(len(keep)), "accuracy": float(np.mean(y == p)) if len(keep) else float("nan"),
            "macro_f1": macro, "unknown_labels": unknown,
            "per_class": [{"class": classes[i], "precision": float(prec[i]), "recall": float(rec[i]),
                           "f1": float(f1[i]), "support": int(support[i])} for i in range(c)],
            "confusion": {"classes": list(classes), "matrix": conf.tolist()}}


# ----------------------------------------------------------------------------- files
def prediction_table(pred: Prediction, k: int = 3) -> dict[str, list]:
    """Columns of the output file: item, predicted, probability, label (when labelled), top-k classes and
    probabilities."""
    idx, p = top_k(pred.probs, k) if len(pred.probs) else (np.zeros((0, 1), int), np.zeros((0, 1)))
    cols: dict[str, list] = {"item": list(pred.items), "predicted": pred.predicted,
                             "probability": [float(v) for v in p[:, 0]] if len(p) else []}
    if pred.metrics is not None:
        cols["label"] = ["" if lab is None else lab for lab in pred.labels]
    for j in range(idx.shape[1]):
        cols[f"top{j + 1}_class"] = [pred.classes[i] for i in idx[:, j]]
        cols[f"top{j + 1}_prob"] = [float(v) for v in p[:, j]]
    return cols


def predictions_output(pred: Prediction, path: str | os.PathLike, k: int = 3, flag: str | None = None):
    """The predictions file, rendered in memory (CSV, or Parquet for a ``.parquet``/``.pq`` path): an
    :class:`advisor.outputs.Output` to write (with other outputs, all or none)."""
    from advisor.outputs import Output

    path = Path(path)
    cols = prediction_table(pred, k)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise AdvisorError(f"unknown output format {path.suffix or '(no suffix)'} for {path}",
                           "end --out with .csv or .parquet")
    if suffix == ".csv":
        import csv
        import io

        text = io.StringIO(newline="")
        w = csv.writer(text)
        w.writerow(list(cols))
        w.writerows(zip(*cols.values()))
        return Output(path, text.getvalue(), flag)
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({k: pa.array([str(v) for v in vals]) if k == "item" else pa.array(vals)
                      for k, vals in cols.items()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return Output(path, sink.getvalue().to_pybytes(), flag)


def write_predictions(pred: Prediction, path: str | os.PathLike, k: int = 3, flag: str | None = None) -> Path:
    """Write the predictions file of :func:`predictions_output`, atomically; returns its path."""
    from advisor.outputs import write_outputs

    return write_outputs(predictions_output(pred, path, k, flag))[0]
