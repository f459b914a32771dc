"""``--workers N``: N processes on one study storage, one GPU each where several exist.

The workers take trials one at a time until the study holds ``--trials`` of them
(:class:`~advisor.search._budget.TrialBudget`, Optuna's ``MaxTrialsCallback`` plus an admission
check against the race at the last slot), so a worker that draws slow trials does not leave
the others idle and together they finish exactly the requested number. Each worker loads the
data and the backbone itself, samples with its own seed (``seed + 1000 * worker``) from the
shared storage, and logs its trials as nested runs of the same MLflow parent run. The
activation cache is a folder with file locks, so workers that freeze at the same boundary
share it. The parent process shows the progress by reading the storage.
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Callable

#: A worker's exit status when the tracking server stayed unreachable (the main process reports it).
TRACKING_GONE_EXIT = 3


def _worker(cfg_dict: dict, index: int, study_name: str, storage_desc: str, uri: str,
            parent_run_id: str, space_path: str, workspace: str) -> None:
    import optuna

    from advisor.context import make_context
    from advisor.search._budget import TrialBudget
    from advisor.search._config import SearchConfig
    from advisor.search._objective import Objective, QuietFatalTrials, optimize
    from advisor.search._pruners import make_pruner
    from advisor.search.space import load_space
    from advisor.search.storage import open_storage, storage_lock
    from advisor.track import StudyTracker

    cfg = SearchConfig(**cfg_dict)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(space_path)
    storage = open_storage(storage_desc, workspace)
    study = optuna.load_study(study_name=study_name, storage=storage,
                              sampler=optuna.samplers.TPESampler(seed=cfg.seed + 1000 * index, n_startup_trials=5),
                              pruner=make_pruner(cfg.pruner, space))
    import warnings

    from advisor.errors import AdvisorWarning

    with warnings.catch_warnings():  # the main process has said it once (a dropped class, a link left out)
        warnings.simplefilter("ignore", AdvisorWarning)
        ctx = make_context(cfg.dataset, cfg.model, weights=cfg.weights, image_size=cfg.image_size,
                           device=cfg.device, seed=cfg.seed, cache_dir=cfg.cache_dir, label_columns=cfg.label_columns,
                           intermediate=cfg.intermediate, workers=cfg.loader_workers, split=cfg.split,
                           drop_rare_classes=cfg.drop_rare_classes)
    tracker = StudyTracker.attach(uri, parent_run_id)
    budget = TrialBudget(cfg.trials)
    lock = functools.partial(storage_lock, storage_desc, workspace, f"study:{study_name}")
    objective = Objective(ctx, space, tracker, budget=budget, fail_on=set(cfg.fail_trials), lock=lock)
    with QuietFatalTrials(objective):
        optimize(study, objective, cfg.timeout, [budget])
    if objective.fatal:  # the trial is recorded; this process's GPU context (or the tracking server) is unusable
        import sys

        from advisor.track.retry import TrackingUnavailable

        if isinstance(objective.fatal_error, TrackingUnavailable):  # the main process says it, once
            raise SystemExit(TRACKING_GONE_EXIT)
        sys.stderr.write(f"advisor: error: worker {index}: {objective.fatal}\n")
        sys.stderr.flush()
        raise SystemExit(2)


def optimize_in_processes(cfg, study_name: str, storage_desc: str, uri: str, parent_run_id: str, remaining: int,
                          workspace: Path, progress: Callable | None, space=None, study=None) -> None:
    """Run trials in ``min(cfg.workers, remaining)`` spawned processes until the study holds ``cfg.trials``
    of them (``study``: the caller's, read for the progress); raises if a worker crashed."""
    import optuna

    from advisor.errors import AdvisorError
    from advisor.search.space import space_to_yaml
    from advisor.search.storage import open_storage
    from advisor.search.trials import finished_count

    from advisor.outputs import write_text

    space_path = write_text(Path(workspace) / "spaces" / f"{study_name}.yaml", space_to_yaml(space), "--workspace")
    n_gpus = _gpu_count() if cfg.device in ("auto", "cuda") else 0
    spawn = mp.get_context("spawn")
    procs = []
    cfg_dict = dataclasses.asdict(cfg)
    for i in range(min(cfg.workers, remaining)):
        env_before = os.environ.get("CUDA_VISIBLE_DEVICES")
        if n_gpus > 1:
            os.environ["CUDA_VISIBLE_DEVICES"] = str(i % n_gpus)
        p = spawn.Process(target=_worker, args=(cfg_dict, i, study_name, storage_desc, uri, parent_run_id,
                                                str(space_path), str(workspace)), daemon=False)
        p.start()
        procs.append(p)
        if n_gpus > 1:
            if env_before is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = env_before
    if study is None:  # the caller's study keeps its storage: no second engine in this process
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage_desc, workspace))
    start = finished_count(study)
    try:
        while any(p.is_alive() for p in procs):
            if progress:
                from advisor.search.trials import best_note

                progress("trials", finished_count(study) - start, remaining, best_note(study))
            time.sleep(1.0)
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(10)
        raise
    for p in procs:
        p.join()
    if progress:
        from advisor.search.trials import best_note

        progress("trials", finished_count(study) - start, remaining, best_note(study))
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if TRACKING_GONE_EXIT in bad:  # one line, from the main process, naming the server
        from advisor.track.retry import TrackingUnavailable

        raise TrackingUnavailable(f"MLflow tracking server {uri} unreachable: {bad.count(TRACKING_GONE_EXIT)} "
                                  f"of {len(procs)} search workers stopped after waiting for it",
                                  "start it again and rerun the same command: the study keeps every finished trial "
                                  "and their runs are logged then (ADVISOR_TRACKING_PATIENCE sets how long to wait)")
    if bad and all(code < 0 for code in bad):  # killed from outside (kill -9, the out-of-memory killer)
        names = sorted({_signal_name(-code) for code in bad})
        raise AdvisorError(f"{len(bad)} of {len(procs)} search workers were killed ({', '.join(names)}); the others "
                           f"finished their trials", "run the same command again: it resumes the study (the killed "
                           "workers' trials are failed as stale and retried); check memory if nobody killed them")
    if bad:
        raise AdvisorError(f"{len(bad)} of {len(procs)} search workers exited with an error (exit codes {bad})",
                           "run again with --workers 1 to see the error; the finished trials are kept")


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001
        return 0
