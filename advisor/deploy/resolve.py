"""MODEL as the user names it -> a :class:`~advisor.deploy.inference.Bundle`.

- a file written by ``advisor train --save`` (format ``advisor.model/2``);
- an MLflow model URI: ``runs:/RUN_ID/model``, ``models:/NAME/VERSION`` (or ``models:/NAME@alias``),
  ``models:/MODEL_ID``, or a local MLflow model folder; it must be a model logged by ``advisor search``
  (the advisor pyfunc, which carries the saved file);
- a study: ``--experiment NAME`` takes the best model of the newest study run in that experiment.

An MLflow model is never handed to ``mlflow.pyfunc.load_model`` here: it is downloaded (files only), its
MLmodel checked, and its artifacts read as data (:mod:`advisor.deploy.mlmodel`).
"""

from __future__ import annotations

import os
from pathlib import Path

from advisor.deploy.inference import Bundle, bundle_from_file
from advisor.errors import AdvisorError
from advisor.track.store import store_to_read

MLFLOW_SCHEMES = ("runs:/", "models:/")


def is_mlflow_uri(spec: str) -> bool:
    return str(spec).startswith(MLFLOW_SCHEMES)


def load_bundle(spec: str | None, *, experiment: str | None = None, tracking_uri: str | None = None,
                workspace: str | None = None) -> Bundle:
    """Resolve MODEL (or ``experiment``) to a Bundle; every failure is one AdvisorError."""
    if experiment:
        if spec:
            raise AdvisorError("pass either MODEL or --experiment, not both", "drop one of them")
        uri = store_to_read(tracking_uri, workspace)
        return _load_mlflow(best_model_uri(uri, experiment), uri)
    if not spec:
        raise AdvisorError("no model given", "pass a --save file, runs:/RUN_ID/model, models:/NAME/VERSION "
                                             "or --experiment NAME")
    if is_mlflow_uri(spec):
        return _load_mlflow(spec, store_to_read(tracking_uri, workspace))
    path = Path(os.path.expanduser(spec))
    if not path.exists():
        raise AdvisorError(f"no model file {spec}", "pass a file written by advisor train --save, "
                                                    "runs:/RUN_ID/model, models:/NAME/VERSION or --experiment NAME")
    if path.is_dir():
        mlmodel = path / "MLmodel"
        if mlmodel.exists() or mlmodel.is_symlink():  # a downloaded MLflow model folder
            from advisor.deploy.mlmodel import bundle_from_folder

            return bundle_from_folder(path, spec)
        raise AdvisorError(f"{spec} is a folder, not an advisor model", "pass the file written by --save")
    return bundle_from_file(path)


def best_model_uri(tracking_uri: str, experiment: str) -> str:
    """``runs:/PARENT/model`` of the newest study run in ``experiment`` that logged its best model."""
    from mlflow.tracking import MlflowClient

    from advisor.track.names import BEST_TAG, KIND_TAG

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise AdvisorError(f"no MLflow experiment {experiment!r} at {tracking_uri}",
                           "pass the --experiment and --tracking-uri (or --workspace) of a search")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'study'",
                              order_by=["attributes.start_time DESC"], max_results=100)
    for run in runs:
        if BEST_TAG not in run.data.tags:
            continue
        if any(m.source_run_id == run.info.run_id and m.name == "model"
               for m in client.search_logged_models(experiment_ids=[exp.experiment_id])):
            return f"runs:/{run.info.run_id}/model"
    raise AdvisorError(f"no study in experiment {experiment!r} logged a best model",
                       "let advisor search finish (its best trial's model is logged at the end)")


def _load_mlflow(model_uri: str, tracking_uri: str) -> Bundle:
    """Download ``model_uri``'s files into a temporary folder, check them, load them as data."""
    import tempfile

    from advisor.deploy.mlmodel import bundle_from_folder, download

    with tempfile.TemporaryDirectory(prefix="advisor-model-") as tmp:
        folder = download(model_uri, tracking_uri, Path(tmp))
        return bundle_from_folder(folder, model_uri)
