"""The names ``advisor search`` writes into MLflow and ``advisor report``/``predict`` read back: one contract.

Every tag and param name of a study's runs is defined here and only here; the writers
(:mod:`advisor.track.study_runs`, :mod:`advisor.search`) and the readers (:mod:`advisor.report`,
:mod:`advisor.deploy`) import them.
"""

from __future__ import annotations

import math

from advisor.serialize import to_dict

# -- tags of every run of a study (parent and trials)
KIND_TAG = "advisor.kind"  # "study" on the parent run, "trial" on a trial run
STUDY_TAG = "advisor.study_name"
PARENT_TAG = "mlflow.parentRunId"

# -- tags of a trial run
TRIAL_TAG = "advisor.trial_number"
STATE_TAG = "advisor.state"  # complete / pruned / failed
REASON_TAG = "advisor.fail_reason"
ADVISED_TAG = "advisor.advised"  # "true" on the trial run of the advised configuration
FROM_CHECK_TAG = "advisor.from_check"  # "true" on a trial the measured check trained, not the search

# -- tags of the parent run: what was searched, and on what
DATASET_TAG = "advisor.dataset"
FINGERPRINT_TAG = "advisor.dataset_fingerprint"
MODEL_TAG = "advisor.model"
STRATEGY_TAG = "advisor.strategy"
STORAGE_TAG = "advisor.storage"
IMAGE_SIZE_TAG = "advisor.image_size"
DEVICE_TAG = "advisor.device"
SEED_TAG = "advisor.seed"
SPLIT_TAG = "advisor.split"
ADVICE_STRATEGY_TAG = "advisor.advice_strategy"
ADVICE_CONFIDENCE_TAG = "advisor.advice_confidence"
ADVICE_SUMMARY_TAG = "advisor.advice_summary"
ADVICE_IN_SPACE_TAG = "advisor.advice_in_space"
TRIALS_FROM_CHECK_TAG = "advisor.trials_from_check"
CHECK_NOT_REUSED_TAG = "advisor.check_not_reused"

# -- tags of the parent run: its result
BEST_TAG = "advisor.best_trial"
REFIT_REPRODUCED_TAG = "advisor.refit_reproduced"
REFIT_ERROR_TAG = "advisor.refit_error"

# -- tags of a registered model version (besides the study, dataset, model, strategy and best-trial tags above)
TEST_ACCURACY_TAG = "advisor.test_accuracy"
EXPERIMENT_TAG = "advisor.experiment"
RUN_ID_TAG = "advisor.run_id"

# -- params (and a trial run's tag) naming the trained strategy
STRATEGY_KEY = "strategy"

# -- artifacts of the parent run that advisor report reads besides profile.json, advice.json, best_params.json
STRATEGY_TABLES = "strategy_tables.json"  # the refit best's own tables (Strategy.tables), as view data


def finite(value: object) -> float | None:
    """``value`` as a float when it is a finite number (also a one-element tensor or array), else None."""
    try:
        number = float(to_dict(value))
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
