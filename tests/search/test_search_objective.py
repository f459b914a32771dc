"""The objective's contract with the pruner and with fatal device errors, without real training.

``advisor.train.run_strategy`` is replaced by a scripted trainer that calls the epoch callback the
way ``fit_network`` does (warm-up epochs first, numbered from 1), so these tests take milliseconds.
"""

from __future__ import annotations

import types

import numpy as np
import optuna
import pytest
import torch

import advisor.train
from advisor.context import TrainContext
from advisor.data.split import Split
from advisor.search._objective import Objective, TrialFailed
from advisor.search.space import load_space
from advisor.train._base import TrainResult

WARM_SPACE = """\
strategy: last_k
params:
  k: 1
  warmup: {type: categorical, choices: [true, false]}
  epochs: 3
"""

DEVICE_ASSERT = ("CUDA error: device-side assert triggered\nCUDA kernel errors might be asynchronously reported "
                 "at some other API call, so the stacktrace below might be incorrect.")


def _ctx() -> TrainContext:
    idx = np.arange(4)
    return TrainContext(dataset=None, split=Split(idx, idx, idx), backbone=types.SimpleNamespace(block_names=["b0", "b1"]),
                        make_backbone=lambda: None, preprocess=None, device=torch.device("cpu"))


def _scripted(values_by_epoch, raise_on_call: dict | None = None):
    """A run_strategy stand-in: epoch e reports values_by_epoch(params, e); call n may raise instead."""
    calls = []

    def run(ctx, strategy, params, callback=None):
        calls.append(dict(params))
        if raise_on_call and len(calls) - 1 in raise_on_call:
            raise raise_on_call[len(calls) - 1]
        warm = 2 if params.get("warmup") else 0
        vals = [values_by_epoch(params, e) for e in range(1, warm + params["epochs"] + 1)]
        for e, v in enumerate(vals, 1):
            callback(e, v)
        return TrainResult(strategy=strategy, params=params, val_accuracy=max(vals), test_accuracy=float("nan"),
                           val_macro_f1=0.0, test_macro_f1=float("nan"), history=[], wall_time=0.0,
                           trainable_params=1)

    return run, calls


def test_pruner_steps_count_fine_tuning_epochs_only():
    from advisor.search._objective import pruner_step

    assert [pruner_step(e, 2) for e in range(1, 6)] == [None, None, 1, 2, 3]
    assert [pruner_step(e, 0) for e in range(1, 4)] == [1, 2, 3]


def test_a_warm_up_trial_and_a_plain_one_are_compared_after_the_same_fine_tuning(tmp_path, monkeypatch):
    """Step s of both trials comes after s epochs of backbone training: the warm-up trial's head-only
    epochs are not reported, so Hyperband never compares its 1st fine-tuning epoch with another
    trial's 3rd. The pruner's budget is counted the same way (min 1, max the largest epochs)."""
    from advisor.search._pruners import make_pruner

    path = tmp_path / "warm.yaml"
    path.write_text(WARM_SPACE)
    space = load_space(path)
    run, calls = _scripted(lambda p, e: e / 100 + (0.5 if p["warmup"] else 0.0))
    monkeypatch.setattr(advisor.train, "run_strategy", run)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    study.enqueue_trial({"warmup": True})
    study.enqueue_trial({"warmup": False})
    study.optimize(Objective(_ctx(), space, None), n_trials=2)
    warm, plain = study.trials
    assert calls[0]["warmup"] is True and calls[1]["warmup"] is False
    # epochs 3, 4, 5 of the warm-up trial (after 2 head-only epochs) are its steps 1, 2, 3
    assert warm.intermediate_values == pytest.approx({1: 0.53, 2: 0.54, 3: 0.55})
    assert plain.intermediate_values == pytest.approx({1: 0.01, 2: 0.02, 3: 0.03})
    assert warm.user_attrs["warmup_epochs"] == 2 and "warmup_epochs" not in plain.user_attrs

    for name in ("hyperband", "halving"):
        pruner = make_pruner(name, space)
        assert pruner._min_resource == 1
    assert make_pruner("hyperband", space)._max_resource == 3  # not 3 + 2 warm-up epochs


def test_a_warm_up_trial_is_judged_by_the_pruner_only_on_fine_tuning_epochs(tmp_path, monkeypatch):
    """A pruner that prunes everything it is asked about: the warm-up trial is asked first after its
    first fine-tuning epoch (trainer epoch 3), the plain one after epoch 1."""
    path = tmp_path / "warm.yaml"
    path.write_text(WARM_SPACE)
    run, _ = _scripted(lambda p, e: 0.1)
    monkeypatch.setattr(advisor.train, "run_strategy", run)

    class PruneAll(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return True

    study = optuna.create_study(direction="maximize", pruner=PruneAll())
    study.enqueue_trial({"warmup": True})
    study.enqueue_trial({"warmup": False})
    study.optimize(Objective(_ctx(), load_space(path), None), n_trials=2)
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED"]
    assert [dict(t.intermediate_values) for t in study.trials] == [{1: 0.1}, {1: 0.1}]


def test_fatal_device_errors_are_told_apart_from_ordinary_failures():
    from advisor.search._objective import is_fatal_device_error

    assert is_fatal_device_error(RuntimeError(DEVICE_ASSERT))
    assert is_fatal_device_error(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert is_fatal_device_error(RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED"))
    assert is_fatal_device_error(RuntimeError("CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasSgemm`"))
    # out of memory comes back: the next (smaller) trial can run, so it stays a failed trial
    assert not is_fatal_device_error(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_fatal_device_error(RuntimeError("CUDA error: out of memory"))
    assert not is_fatal_device_error(RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 5x6)"))
    assert not is_fatal_device_error(ValueError("CUDA error: device-side assert triggered"))  # not a torch error


def test_a_device_side_assert_stops_the_study_after_recording_the_trial(tmp_path, monkeypatch):
    path = tmp_path / "warm.yaml"
    path.write_text(WARM_SPACE)
    run, calls = _scripted(lambda p, e: 0.2, raise_on_call={1: RuntimeError(DEVICE_ASSERT)})
    monkeypatch.setattr(advisor.train, "run_strategy", run)
    study = optuna.create_study(direction="maximize")
    objective = Objective(_ctx(), load_space(path), None)
    study.optimize(objective, n_trials=5, catch=(TrialFailed,))
    assert len(calls) == 2 and [t.state.name for t in study.trials] == ["COMPLETE", "FAIL"]
    assert study.trials[1].user_attrs["fail_reason"].startswith("fatal GPU error: CUDA error: device-side assert")
    assert objective.fatal and "\n" not in objective.fatal and "trial 1" in objective.fatal

    # an ordinary RuntimeError is still just a failed trial, and the study goes on
    run, calls = _scripted(lambda p, e: 0.2, raise_on_call={1: RuntimeError("shapes cannot be multiplied")})
    monkeypatch.setattr(advisor.train, "run_strategy", run)
    study = optuna.create_study(direction="maximize")
    objective = Objective(_ctx(), load_space(path), None)
    study.optimize(objective, n_trials=4, catch=(TrialFailed,))
    assert len(calls) == 4 and [t.state.name for t in study.trials].count("FAIL") == 1 and objective.fatal is None


def test_a_trial_failed_as_stale_while_it_logged_ends_with_the_studys_record_even_after_the_refit_host_reconciled(
        tmp_path, monkeypatch):
    """The interleaving of the many-hosts rehearsal's database outage: trial 0 is still RUNNING when its worker
    starts to log it, another host then fails it as stale (no heartbeat during the outage), runs its retry and
    reconciles the MLflow runs (trial 0 -> FAILED) before the worker's slow log lands with a FINISHED run. The
    worker sees the study's record changed under it and puts the FAILED run back: one run per finished trial,
    in the trial's state."""
    from advisor.search._budget import TrialBudget
    from advisor.search._finish import reconcile_runs
    from advisor.search._objective import optimize
    from advisor.search.storage import open_storage
    from advisor.search.trials import _fail_and_retry
    from advisor.track.study_runs import StudyTracker

    path = tmp_path / "one.yaml"
    path.write_text(WARM_SPACE)
    run, _ = _scripted(lambda p, e: e / 10)
    monkeypatch.setattr(advisor.train, "run_strategy", run)
    study = optuna.create_study(study_name="s", storage=open_storage(None, tmp_path), direction="maximize")
    tracker = StudyTracker.open(f"sqlite:///{tmp_path / 'mlflow.db'}", "e", "s")
    real = StudyTracker.log_trial
    other_host = []

    def slow(self, number, *a, **k):
        if number == 0 and not other_host:  # meanwhile, on the other host
            frozen = study._storage.get_trial(study.trials[0]._trial_id)
            other_host.append(_fail_and_retry(study, frozen))
            reconcile_runs(study, self)
        return real(self, number, *a, **k)

    monkeypatch.setattr(StudyTracker, "log_trial", slow)
    budget = TrialBudget(1)
    optimize(study, Objective(_ctx(), load_space(path), tracker, budget=budget), None, [budget])
    assert other_host == [True]
    states = {t.number: t.state.name for t in study.trials}
    assert states == {0: "FAIL", 1: "COMPLETE"} and study.trials[1].user_attrs["retry_of"] == 0
    runs = {}
    for r in tracker.trial_runs():
        runs.setdefault(int(r.data.tags["advisor.trial_number"]), []).append(r.info.status)
    assert runs == {0: ["FAILED"], 1: ["FINISHED"]}
