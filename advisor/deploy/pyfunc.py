"""The best model as an MLflow pyfunc that carries everything needed to use it, logged as MLflow
"models from code": the model object comes from running our ``_pyfunc_code.py``, never from a pickle.

Artifacts (data only): ``advisor_model`` -- the ``advisor.model/2`` file (``torch.save`` of tensors and plain
values: network weights, architecture name); ``advisor_meta`` -- ``advisor.json`` (preprocessing state:
resolution, interpolation, mean/std, greyscale becomes 3 channels in :class:`~advisor.data.Preprocess`;
the class names; the weights file's sha256). ``code/advisor`` -- this package (``code_paths``), so
``mlflow models serve`` needs no advisor install, only the pinned requirements. The MLmodel carries an
``advisor`` metadata block (format ``advisor.pyfunc/2``); :mod:`advisor.deploy.mlmodel` checks all of it
before ``advisor predict`` reads anything.

Input (a DataFrame, as ``mlflow models serve`` hands it over): column ``image`` with encoded image
bytes (base64 strings in JSON, as MLflow does for binary columns) and/or column ``path`` with image
file paths readable where the model runs; both optional, one per row. In Python, ``predict`` also
takes a list of paths, bytes, arrays or PIL images, or one array ``[N, H, W(, C)]`` of images (the
signature then does not apply: call ``loaded.unwrap_python_model().predict(None, array)``).

Output: one row per image: ``class`` (name), ``class_index``, ``probability`` (of that class) and
``p_<class name>`` for every class.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from advisor.deploy.mlmodel import ARTIFACT_META, ARTIFACT_MODEL, CODE_FILE, PYFUNC_FORMAT, write_meta
from advisor.errors import AdvisorError

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # advisor/


class AdvisorImageModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around :func:`advisor.deploy.inference.infer`."""

    def __init__(self):
        self.bundle = None

    def load_context(self, context):
        from advisor.deploy.mlmodel import bundle_from_artifacts

        arts = context.artifacts
        self.bundle = bundle_from_artifacts(arts[ARTIFACT_MODEL], arts[ARTIFACT_META], "the advisor pyfunc")

    # ``pd.DataFrame``: what MLflow hands over when serving; MLflow infers no schema from it (the signature is
    # given when logging) and does not warn about a missing type hint. In Python other forms work too (above).
    def predict(self, context, model_input: pd.DataFrame, params=None):
        from advisor.deploy.inference import infer

        device = (params or {}).get("device", "cpu") if isinstance(params, dict) else "cpu"
        items = inputs_to_items(model_input)
        out = infer(self.bundle, items, batch_size=64, device=device)
        return output_frame(out.probs, self.bundle.classes)


def inputs_to_items(model_input: Any) -> list:
    """One image value per row (path, bytes, array, PIL image) from the forms ``predict`` accepts."""
    if isinstance(model_input, pd.DataFrame):
        cols = [c for c in ("image", "path") if c in model_input.columns]
        if not cols:
            raise AdvisorError(f"no image or path column in the input (columns {list(model_input.columns)})",
                               "send a column 'image' (encoded bytes) or 'path' (image files)")
        items = []
        for _, row in model_input.iterrows():
            value = next((row[c] for c in cols if _present(row[c])), None)
            if value is None:
                raise AdvisorError("a row has neither an image nor a path", "fill one of the two in every row")
            items.append(value)
        return items
    if isinstance(model_input, np.ndarray) and model_input.dtype != object and model_input.ndim in (3, 4):
        return list(model_input)  # a stack of images
    if isinstance(model_input, dict):
        return inputs_to_items(pd.DataFrame(model_input))
    if isinstance(model_input, (list, tuple, np.ndarray, pd.Series)):
        return list(model_input)
    return [model_input]


def _present(value) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and np.isnan(value):
        return False
    return not (isinstance(value, str) and not value)


def output_frame(probs: np.ndarray, classes: list[str]):
    idx = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    frame = {"class": [classes[i] for i in idx], "class_index": idx.astype(np.int64),
             "probability": probs[np.arange(len(idx)), idx].astype(np.float64) if len(probs) else np.zeros(0)}
    for j, name in enumerate(classes):
        frame[f"p_{name}"] = probs[:, j].astype(np.float64)
    return pd.DataFrame(frame)


def signature(classes: list[str]):
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    inputs = Schema([ColSpec("binary", "image", required=False), ColSpec("string", "path", required=False)])
    outputs = Schema([ColSpec("string", "class"), ColSpec("long", "class_index"), ColSpec("double", "probability")]
                     + [ColSpec("double", f"p_{c}") for c in classes])
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example(preprocess) -> Any:
    """One encoded PNG (a mid-grey square at the model's crop size) in the ``image`` column."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (preprocess.crop_size, preprocess.crop_size), (128, 128, 128)).save(buf, format="PNG")
    return pd.DataFrame({"image": [buf.getvalue()]})


def requirements(model_name: str) -> list[str]:
    """Pinned versions of what loading and predicting import (not inferred: that is slow and may go online)."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["mlflow", "torch", "torchvision", "numpy", "pillow", "pandas", "scikit-learn"]
    if str(model_name).startswith("timm:"):
        names.append("timm")
    out = []
    for name in names:
        try:
            out.append(f"{name}=={version(name).split('+', 1)[0]}")
        except PackageNotFoundError:
            out.append(name)
    return out


def log_pyfunc(tracking_uri: str, run_id: str, model_file: str | Path, *, classes: list[str], preprocess,
               model_name: str, task: str, experiment_id: str | None = None, name: str = "model",
               strategy: str | None = None):
    """Log the ``advisor.model/2`` file as the advisor pyfunc (models from code) on ``run_id``; returns
    MLflow's ModelInfo."""
    import tempfile

    from mlflow.models import Model

    from advisor import __version__
    from advisor.deploy.modelfile import preprocess_state
    from advisor.track.model_log import scoped_tracking_uri
    from advisor.track.quiet import quiet_downloads, quiet_logger

    # quiet downloads: MLflow checks the input example by loading the model back
    with quiet_downloads(), tempfile.TemporaryDirectory(prefix="advisor-pyfunc-meta-") as tmp:
        meta = write_meta(Path(tmp) / "advisor.json", Path(model_file), task=task, classes=classes,
                          preprocess_state=preprocess_state(preprocess))
        metadata = {"advisor": {"format": PYFUNC_FORMAT, "advisor_version": __version__, "model_name": model_name,
                                "strategy": strategy, "task": task, "n_classes": len(classes)}}
        with scoped_tracking_uri(tracking_uri, experiment_id), quiet_logger("mlflow"):
            return Model.log(artifact_path=None, name=name, flavor=mlflow.pyfunc, run_id=run_id,
                             python_model=str(CODE_FILE),  # a path: models from code
                             artifacts={ARTIFACT_MODEL: str(model_file), ARTIFACT_META: str(meta)},
                             code_paths=[str(PACKAGE_DIR)], signature=signature(classes),
                             input_example=input_example(preprocess), pip_requirements=requirements(model_name),
                             metadata=metadata)


def register(tracking_uri: str, model_uri: str, name: str, tags: dict[str, str]) -> Any:
    """Register ``model_uri`` as a new version of ``name`` in the Model Registry, with ``tags``."""
    from mlflow.exceptions import MlflowException
    from advisor.track.model_log import scoped_tracking_uri
    from advisor.track.quiet import quiet_logger

    try:
        with scoped_tracking_uri(tracking_uri), quiet_logger("mlflow"):
            version = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()},
                                            await_registration_for=60)
    except MlflowException as e:
        raise AdvisorError(f"cannot register {model_uri} as {name!r} ({(str(e.message).splitlines() or [''])[0]})",
                           "check that the tracking store has a Model Registry") from None
    return version


def log_result(tracking_uri: str, run_id: str, result, *, model_name: str, weights: str | None, preprocess,
               dataset, experiment_id: str | None = None, name: str = "model"):
    """Save a TrainResult's model (``advisor.model/2``) and log it as the advisor pyfunc on ``run_id``."""
    import tempfile

    from advisor.deploy.modelfile import save_model

    with tempfile.TemporaryDirectory(prefix="advisor-pyfunc-") as tmp:
        path = save_model(result, Path(tmp) / "model.pt", model_name=model_name, weights=weights,
                          preprocess=preprocess, dataset_name=dataset.name, classes=dataset.classes)
        task = result.model.primary
        return log_pyfunc(tracking_uri, run_id, path, classes=list(dataset.classes[task]), preprocess=preprocess,
                          model_name=model_name, task=task, experiment_id=experiment_id, name=name,
                          strategy=result.strategy)
