"""Log a PyTorch model to one given MLflow run, without touching global state for long.

``mlflow.pytorch.log_model`` has no ``tracking_uri`` argument: it reads the
process-wide tracking URI (and, for the logged model's experiment, the
process-wide experiment). It does take ``run_id`` (forwarded to
``mlflow.models.Model.log``), so no active run is needed. :func:`scoped_tracking_uri`
sets the URI and the run's experiment for the duration of the call only and
restores both afterwards -- under a lock, since the
settings are process-wide.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

from advisor.track.quiet import quiet_logger

_LOCK = threading.Lock()


@contextlib.contextmanager
def scoped_tracking_uri(uri: str, experiment_id: str | None = None) -> Iterator[None]:
    """Make ``uri`` (and ``experiment_id``) MLflow's current settings inside the block only.

    ``mlflow.pytorch.log_model`` files the logged model under the *current*
    experiment (default "0"), not under its run's, so the run's experiment id must
    be made current too. Both settings, and the ``MLFLOW_TRACKING_URI`` environment
    variable MLflow mirrors the URI into, are restored afterwards.
    """
    from mlflow.tracking import fluent
    from mlflow.tracking._tracking_service import utils as tracking_utils

    with _LOCK:
        saved_uri = tracking_utils._tracking_uri
        saved_env = os.environ.get("MLFLOW_TRACKING_URI")
        saved_experiment = fluent._active_experiment_id
        try:
            tracking_utils.set_tracking_uri(uri)
            if experiment_id is not None:
                fluent._active_experiment_id = experiment_id
            yield
        finally:
            fluent._active_experiment_id = saved_experiment
            tracking_utils.set_tracking_uri(saved_uri)  # this rewrites MLFLOW_TRACKING_URI ...
            if saved_env is None:  # ... so put the caller's environment back
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = saved_env


def _as_numpy(example: Any) -> Any:
    """MLflow saves NumPy input examples, not torch tensors."""
    if example is not None and hasattr(example, "detach") and hasattr(example, "cpu"):
        return example.detach().cpu().numpy()
    return example


def log_pytorch_model(
    tracking_uri: str,
    run_id: str,
    model: Any,
    *,
    experiment_id: str | None = None,
    name: str = "model",
    input_example: Any = None,
    serialization_format: str = "pickle",
) -> Any:
    """Log ``model`` (a ``torch.nn.Module``) with MLflow's PyTorch flavour on ``run_id``.

    ``experiment_id`` should be the run's experiment (else the model is filed under
    MLflow's current experiment, "0" by default, and ``runs:/<run_id>/model`` does
    not find it). Uses the ``pickle`` format by default: MLflow 3's default ``pt2`` needs an input
    example and ``torch.export``-able models. ``pip_requirements`` are given
    explicitly so MLflow does not infer them (slow, and it may probe the network).
    Returns MLflow's ``ModelInfo`` (``model_uri`` is ``models:/<model_id>``).
    """
    import mlflow.pytorch
    import torch

    requirements = [f"torch=={torch.__version__.split('+', 1)[0]}"]
    was_training = model.training
    model.eval()
    try:
        with scoped_tracking_uri(tracking_uri, experiment_id), quiet_logger("mlflow.pytorch"):
            return mlflow.pytorch.log_model(
                model,
                name=name,
                run_id=run_id,
                input_example=_as_numpy(input_example),
                pip_requirements=requirements,
                serialization_format=serialization_format,
            )
    finally:
        model.train(was_training)
