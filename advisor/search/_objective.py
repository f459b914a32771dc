"""One trial: sample a configuration, train it on the shared context, report every epoch, log it to MLflow.

The objective returns the best-epoch validation accuracy. Every fine-tuning epoch's
validation accuracy goes to ``trial.report`` and the pruner, at step = fine-tuning epochs done
(:func:`pruner_step`): an LP-FT trial's head-only warm-up epochs are not steps, so Hyperband
compares every trial after the same number of epochs of backbone training. A pruned trial
raises ``optuna.TrialPruned``. A trial that fails (a diverging loss, out of memory, a bad
combination of parameters) is logged as failed with its reason and raises
:class:`TrialFailed`, which the study catches so the next trial runs. Memory is released
after every trial. The test split is not in the context the trials see (``without_test``).

No model is kept: the main process refits the best configuration at the end (``study.py``), so a
worker on another machine needs to hand back nothing but its trial's record.

A tracking server that stays gone (:class:`~advisor.track.retry.TrackingUnavailable`, after retries with
backoff) stops the study the same way, after the trial: the study keeps the trial as it ended, and a
rerun logs its MLflow run (``study.py`` reconciles the runs).

A fatal device error (a CUDA device-side assert, an illegal memory access, a cuDNN or cuBLAS
failure: :func:`is_fatal_device_error`) leaves the CUDA context unusable, so no later trial in
this process could run. That trial is recorded as failed like any other, the study is stopped
(``study.stop()``), and :attr:`Objective.fatal` holds the one-line reason the caller raises
once the study has returned. Running out of GPU memory is *not* fatal: PyTorch frees the
trial's tensors and the next, smaller trial can run, so it stays a failed trial.

First thing, a trial records its worker (``host:pid``, see :mod:`advisor.search.trials`) and asks
the :class:`~advisor.search._budget.TrialBudget` whether it is within ``--trials``; a surplus trial
withdraws before it samples anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import math
import time
import traceback
from typing import Any

from advisor.errors import AdvisorError
from advisor.strategies import probe_names
from advisor.track.pause import pause_point
from advisor.track.retry import TrackingUnavailable
from advisor.track.names import ADVISED_TAG, STRATEGY_KEY


class TrialFailed(Exception):
    """A trial that could not finish; the study records it as failed and goes on."""


#: Fragments of the messages of errors after which a CUDA context cannot be used again.
FATAL_DEVICE_MESSAGES = (
    "device-side assert", "illegal memory access", "illegal instruction", "misaligned address",
    "unspecified launch failure", "cuda error", "cudnn_status", "cublas_status", "cusolver_status",
    "nccl error", "cuda driver error", "acceleratorerror",
)


def is_fatal_device_error(e: BaseException) -> bool:
    """Whether ``e`` is a GPU error that leaves the device context broken (see the module docstring).

    ``torch.cuda.OutOfMemoryError`` (its message also says "CUDA") is not: the memory comes back.
    """
    import torch

    if isinstance(e, torch.cuda.OutOfMemoryError) or not isinstance(e, RuntimeError):
        return False
    text = f"{type(e).__name__}: {e}".lower()
    if "out of memory" in text and "illegal" not in text:
        return False
    return any(m in text for m in FATAL_DEVICE_MESSAGES)


def fatal_message(number: int, reason: str) -> str:
    """The one line a search stops with after a fatal device error in trial ``number``."""
    return (f"trial {number} hit a fatal GPU error ({reason}); the search stopped, the finished "
            f"trials are kept in the study; rerun the same command to resume (with CUDA_LAUNCH_BLOCKING=1 "
            f"to locate the failing kernel)")


class Objective:
    """Callable for ``study.optimize``; holds the training context, the space and the tracker."""

    def __init__(self, ctx, space, tracker, *, budget=None, fail_on: set[int] | None = None, lock=None):
        from advisor.context import without_test

        self.ctx = dataclasses.replace(without_test(ctx), progress=_with_cache_pause(ctx.progress))
        self.space = space
        self.tracker = tracker
        self.budget = budget  # a TrialBudget, or None for no admission check
        self.block_names = list(ctx.backbone.block_names)
        self.fail_on = set(fail_on or ())  # trial numbers to fail on purpose (tests of failure handling)
        self.lock = lock or contextlib.nullcontext  # the study's lock: runs are replaced one host at a time
        self.fatal: str | None = None  # the one-line reason after a fatal device error; the study is stopped
        self.fatal_error: AdvisorError | None = None  # the error to raise, when not a plain AdvisorError(fatal)
        self.last_trial_id: int | None = None  # the storage id of the trial running or run last

    def __call__(self, trial) -> float:
        import optuna
        import torch

        from advisor.search.space import suggest
        from advisor.search.trials import worker_id
        from advisor.train import TrainingPruned, run_strategy

        self.last_trial_id = trial._trial_id
        trial.set_user_attr("worker", worker_id())
        if self.budget is not None and not self.budget.claim(trial):
            raise TrialFailed("surplus trial: the study already holds its trials")
        t0 = time.perf_counter()
        epochs: list[dict[str, Any]] = []
        strategy, params = "?", {}
        state, reason, value, result = "failed", None, None, None
        try:
            strategy, params = suggest(trial, self.space, self.block_names)
            trial.set_user_attr("strategy", strategy)
            trial.set_user_attr("params", _plain(params))
            if trial.number in self.fail_on:
                raise AdvisorError(f"failure injected into trial {trial.number}", "this is a test")

            last_epoch = _total_epochs(params)
            warm_epochs = _warm_epochs(params)
            if warm_epochs:
                trial.set_user_attr("warmup_epochs", warm_epochs)  # the epoch of step s is s + warmup_epochs

            def on_epoch(epoch: int, val: float) -> None:
                epochs.append({"epoch": epoch, "val_accuracy": float(val),
                               "seconds": time.perf_counter() - t0})
                if len(epochs) == 1:
                    pause_point("trial", trial.number)
                # during a warm-up only the head trains: its value says nothing of the backbone rates, and
                # it is not a step of the pruner's budget (pruner_step)
                step = pruner_step(epoch, warm_epochs)
                if step is None:
                    return
                trial.report(float(val), step)
                # a probe is one closed-form fit, and after the last epoch there is nothing left to save
                if strategy not in probe_names() and epoch < last_epoch and trial.should_prune():
                    raise TrainingPruned(f"pruned after epoch {epoch} at validation accuracy {val:.4f}")

            result = run_strategy(self.ctx, strategy, params, on_epoch)
            value = float(result.val_accuracy)
            if not math.isfinite(value):
                raise AdvisorError("the validation accuracy is not a number", "check the validation split")
            state = "complete"
            trial.set_user_attr("trainable_params", int(result.trainable_params))
            trial.set_user_attr("wall_time", time.perf_counter() - t0)
            return value
        except TrainingPruned as e:
            state, reason = "pruned", str(e)
            trial.set_user_attr("wall_time", time.perf_counter() - t0)
            raise optuna.TrialPruned(reason) from None
        except torch.cuda.OutOfMemoryError:
            reason = "out of GPU memory (try a smaller batch_size or fewer trainable blocks)"
            trial.set_user_attr("fail_reason", reason)
            raise TrialFailed(reason) from None
        except (AdvisorError, ValueError, RuntimeError, FloatingPointError) as e:
            reason = str(e).splitlines()[0][:500] if str(e) else type(e).__name__
            if is_fatal_device_error(e):
                self.fatal = fatal_message(trial.number, reason)
                reason = f"fatal GPU error: {reason}"
                trial.study.stop()  # no further trial starts in this process; this one is recorded as failed
            trial.set_user_attr("fail_reason", reason)
            raise TrialFailed(reason) from None
        except KeyboardInterrupt:
            state, reason = "failed", "interrupted"
            raise
        except Exception as e:  # noqa: BLE001 - any other bug in a trial must not stop the study
            reason = f"{type(e).__name__}: {e}".splitlines()[0][:500]
            trial.set_user_attr("fail_reason", reason)
            trial.set_user_attr("traceback", traceback.format_exc()[-2000:])
            raise TrialFailed(reason) from None
        finally:
            wall = time.perf_counter() - t0
            history = [_plain_record(h) for h in result.history] if result is not None else epochs
            metrics = {"trainable_params": float(result.trainable_params)} if result is not None else {}
            if self.tracker is not None and reason != "interrupted" and not _failed_meanwhile(trial):
                try:
                    tags = {ADVISED_TAG: "true"} if trial.user_attrs.get("advice") else None
                    self.tracker.log_trial(trial.number, {STRATEGY_KEY: strategy, **_plain(params)}, state, value,
                                           history, wall, reason=reason, metrics=metrics, extra_tags=tags)
                    if _failed_meanwhile(trial):
                        # failed as stale while it logged (a slow tracking server after a database outage): the
                        # study's record wins, and the host that ends the study may have reconciled already
                        from advisor.search._finish import reconcile_runs

                        with self.lock():
                            reconcile_runs(trial.study, self.tracker, only=trial.number)
                except Exception as e:  # noqa: BLE001 - tracking trouble must not lose the trial
                    trial.set_user_attr("tracking_error", str(e)[:300])
                    if isinstance(e, TrackingUnavailable):  # waited with backoff: the server stays gone
                        # the trial is kept in the study as it ended; no later trial starts in this process
                        self.fatal, self.fatal_error = str(e), e
                        trial.study.stop()
            del result
            gc.collect()
            if torch.cuda.is_available() and self.fatal is None:  # a broken CUDA context cannot free memory
                torch.cuda.empty_cache()


def _failed_meanwhile(trial) -> bool:
    """Whether another process failed this trial as stale while it ran (its heartbeat could not be recorded, e.g.
    during a database outage): then its run is logged by the search's reconciliation, as failed, and a run
    logged here would contradict the study."""
    from optuna.trial import TrialState

    try:
        return trial.study._storage.get_trial(trial._trial_id).state != TrialState.RUNNING
    except Exception:  # noqa: BLE001 - cannot tell: log as usual
        return False


def _with_cache_pause(progress):
    """The context's progress callback, with the ``cache`` pause point while a cache entry fills."""

    def report(stage: str, done: int, total: int) -> None:
        if stage == "cache" and 0 < done < total:
            pause_point("cache")
        if progress is not None:
            progress(stage, done, total)

    return report


def pruner_step(epoch: int, warm_epochs: int) -> int | None:
    """The pruner's step for trainer epoch ``epoch`` (1-based, warm-up epochs included): fine-tuning
    epochs done, so step ``s`` of every trial comes after ``s`` epochs of backbone training whether
    or not it warmed up first; None during the warm-up, which is not reported to the pruner."""
    step = int(epoch) - int(warm_epochs)
    return step if step >= 1 else None


def _warm_epochs(params: dict) -> int:
    """Linear-probe warm-up epochs of a network run (head only), reported before fine-tuning."""
    from advisor.train._network import warmup_epochs_of

    return warmup_epochs_of(params)


def _total_epochs(params: dict) -> int:
    """Epochs a network run reports at most: fine-tuning epochs plus linear-probe warm-up epochs."""
    from advisor.train._network import NETWORK_DEFAULTS

    return int(params.get("epochs", NETWORK_DEFAULTS["epochs"])) + _warm_epochs(params)


def _plain(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        if isinstance(v, tuple):
            v = list(v)
        out[k] = v.item() if hasattr(v, "item") else v
    return out


def _plain_record(h) -> dict:
    return {"epoch": h.epoch, "train_loss": h.train_loss, "val_accuracy": h.val_accuracy,
            "val_loss": h.val_loss, "seconds": h.seconds}


def optimize(study, objective: Objective, timeout: float | None, callbacks: list) -> None:
    """``study.optimize`` until the budget stops it, going on when the trial that just ran was failed as stale by
    another process meanwhile (its heartbeat could not be recorded for longer than the grace period, e.g. during
    a database outage): Optuna then cannot record its result and raises; the trial's retry trains the same
    configuration again and is counted once."""
    import time as _time

    from optuna.trial import TrialState

    from advisor.search.trials import _stale_numbers

    deadline = None if timeout is None else _time.monotonic() + timeout
    while True:
        left = None if deadline is None else max(0.0, deadline - _time.monotonic())
        try:
            study.optimize(objective, n_trials=None, timeout=left, catch=(TrialFailed,), callbacks=callbacks)
            return
        except (AssertionError, ValueError, RuntimeError):
            tid = objective.last_trial_id
            if tid is None or (deadline is not None and _time.monotonic() >= deadline):
                raise
            mine = study._storage.get_trial(tid)
            if mine.state != TrialState.FAIL or mine.number not in _stale_numbers(study.get_trials(deepcopy=False)):
                raise
            logging.getLogger(__name__).warning(
                "trial %d was failed as stale while it ran (no heartbeat for longer than the grace period); "
                "its retry trains the same configuration again", mine.number)


class QuietFatalTrials:
    """While ``study.optimize`` runs: Optuna's warnings (with a traceback) about the trial that hit a
    fatal device error are dropped, so the search ends with the one line of its AdvisorError."""

    def __init__(self, objective):
        self.objective = objective
        self.handlers: list[logging.Handler] = []

    def filter(self, record) -> bool:
        if self.objective.fatal is None:
            return True
        msg = record.getMessage()
        return not (msg.startswith("Trial ") and " failed " in msg)

    def __enter__(self):
        # Optuna logs from child loggers to the handler of its library logger: filter on the handlers
        self.handlers = list(logging.getLogger("optuna").handlers)
        for h in self.handlers:
            h.addFilter(self)
        return self

    def __exit__(self, *exc) -> None:
        for h in self.handlers:
            h.removeFilter(self)
