"""No network call the user did not ask for: the switches advisor sets before any library is imported.

MLflow 3 sends usage telemetry from the moment it is imported (``import mlflow`` starts a client that
fetches its configuration from an outside host); Hugging Face's hub (timm's weights) reports usage with
its downloads (so do ``transformers`` and ``peft``, which the lora strategy imports when it runs, through the
same ``huggingface_hub`` switches). Every entry point imports :mod:`advisor` first -- the CLI, the Python API,
the search's worker processes, the pyfunc that ``mlflow models serve`` loads -- so :func:`apply_defaults`, called by
``advisor/__init__.py``, turns these off before MLflow or the hub reads them, and child processes
inherit them. Each is a ``setdefault``: a variable the user set, to anything, is left as given.

- ``MLFLOW_DISABLE_TELEMETRY=true`` (MLflow reads it when ``mlflow`` is imported);
- ``DO_NOT_TRACK=true`` -- only when the user set neither it nor ``MLFLOW_DISABLE_TELEMETRY``, so that
  ``MLFLOW_DISABLE_TELEMETRY=false`` keeps MLflow's telemetry on as its user asked;
- ``HF_HUB_DISABLE_TELEMETRY=1``;
- ``HF_HUB_OFFLINE=1``: pretrained weights come from the local caches (the torch hub cache, the Hugging
  Face cache); a missing file is one error naming the file and the folder. ``HF_HUB_OFFLINE=0`` lets
  advisor download missing pretrained weights, torchvision's as well as timm's (:func:`downloads_allowed`).

Optuna, torch, matplotlib and rich make no call of their own. The only hosts advisor then connects to
are those the user names: ``--tracking-uri``, ``--storage``.
"""

from __future__ import annotations

import os
import sys
from typing import MutableMapping

#: Set when absent; each is a documented switch of the library that reads it.
DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
}
_TRUE = {"1", "true", "yes", "on"}


def apply_defaults(environ: MutableMapping[str, str] | None = None) -> None:
    """Set the switches in :data:`DEFAULTS` (and ``DO_NOT_TRACK``) that ``environ`` lacks."""
    env = os.environ if environ is None else environ
    if "MLFLOW_DISABLE_TELEMETRY" not in env and "DO_NOT_TRACK" not in env:
        env["DO_NOT_TRACK"] = "true"  # MLflow honours only "true"; Hugging Face and others take it too
    for name, value in DEFAULTS.items():
        env.setdefault(name, value)
    if environ is None and "mlflow.telemetry.client" in sys.modules:
        # MLflow was imported before advisor: let it decide again under the switches now set
        try:
            from mlflow.telemetry import set_telemetry_client

            set_telemetry_client()
        except Exception:  # noqa: BLE001 - an MLflow without this hook has nothing to re-decide
            pass


def downloads_allowed() -> bool:
    """Whether advisor may download missing pretrained weights: only when ``HF_HUB_OFFLINE`` is false."""
    return os.environ.get("HF_HUB_OFFLINE", "1").strip().lower() not in _TRUE
