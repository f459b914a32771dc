"""MLflow tracking for the AutoML search: one parent run per study, nested runs per trial.

Importing this package is cheap; MLflow itself is imported only when a store is
opened or a run is logged.
"""

from __future__ import annotations

from advisor.track.model_log import log_pytorch_model, scoped_tracking_uri
from advisor.track.store import (DEFAULT_WORKSPACE, check_tracking, default_tracking_uri, default_workspace,
                                 resolve_tracking_uri, store_to_read)
from advisor.track.study_runs import RUN_STATUS, StudyTracker, normalize_state

__all__ = [
    "DEFAULT_WORKSPACE",
    "RUN_STATUS",
    "StudyTracker",
    "check_tracking",
    "default_tracking_uri",
    "default_workspace",
    "log_pytorch_model",
    "normalize_state",
    "resolve_tracking_uri",
    "scoped_tracking_uri",
    "store_to_read",
]
