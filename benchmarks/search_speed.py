"""Time to a good configuration: our search against a plain Optuna loop over the same space, in one run.

* **ours** = ``advisor.search.run_search``: analyze (its time counted), the advised configuration
  enqueued as trial 0, the activation cache (trials that freeze at the same boundary never
  recompute the frozen part), Hyperband pruning over epochs, MLflow logging of every trial.
* **plain** = ``optuna.create_study(TPESampler(seed))`` + ``study.optimize`` over the very same
  space (the advice's), each trial a ``run_strategy`` call without cache, pruning or warm start.

Both get the same number of trials. The target is 1 point of validation accuracy below the best
value either found; the figure is the wall time each needed (from its own start) until its
best-so-far reached the target, and the ratio plain / ours.

    .venv/bin/python benchmarks/search_speed.py [--dataset fashion-mnist:100] [--image-size 64] [--trials 12]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path


def _time_to(points: list[tuple[float, float]], target: float) -> float:
    best = -math.inf
    for t, v in sorted(points):
        best = max(best, v)
        if best >= target:
            return t
    return math.inf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist:100")
    ap.add_argument("--model", default="mobilenet_v2")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    import optuna

    from advisor.api import analyze
    from advisor.search import SearchConfig, run_search
    from advisor.search.space import space_from_advice, suggest
    from advisor.train import make_context, run_strategy, without_test

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out: dict = {"dataset": a.dataset, "model": a.model, "image_size": a.image_size, "trials": a.trials}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # ---- ours: analyze + search (cold cache, fresh storage and tracking store)
        t0 = time.perf_counter()
        analysis = analyze(a.dataset, a.model, sample=500, image_size=a.image_size, device=a.device, seed=a.seed)
        analysis.save(tmp / "analysis.json")
        t_analyze = time.perf_counter() - t0
        start_wall = time.time()
        r = run_search(SearchConfig(dataset=a.dataset, model=a.model, strategy="auto", space="auto",
                                    advice=str(tmp / "analysis.json"), trials=a.trials, image_size=a.image_size,
                                    device=a.device, seed=a.seed, workspace=str(tmp / "ws"),
                                    cache_dir=str(tmp / "cache"), study_name="ours"))
        ours_total = time.perf_counter() - t0
        study = optuna.load_study(study_name="ours", storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp / "ws" / "optuna.journal"))))
        ours = [(t_analyze + (t.datetime_complete.timestamp() - start_wall), t.value) for t in study.trials
                if t.state.name == "COMPLETE"]
        out["ours"] = {"analyze_s": round(t_analyze, 1), "total_s": round(ours_total, 1), "best": r.best_value,
                       "complete": r.n_complete, "pruned": r.n_pruned, "failed": r.n_failed,
                       "advised_trial_value": r.advice_value, "best_params": r.best_params,
                       "best_strategy": r.best_strategy, "advice": analysis.advice.strategy,
                       "advice_params": analysis.advice.params, "test_accuracy": r.test_accuracy}

        # ---- plain: the same space, TPE, no cache, no pruning, no warm start
        space = space_from_advice(analysis.advice)
        t1 = time.perf_counter()
        ctx = without_test(make_context(a.dataset, a.model, image_size=a.image_size, device=a.device,
                                        seed=a.seed, cache_dir=False))
        plain: list[tuple[float, float]] = []

        def objective(trial):
            strategy, params = suggest(trial, space, ctx.backbone.block_names)
            res = run_strategy(ctx, strategy, params)
            plain.append((time.perf_counter() - t1, res.val_accuracy))
            return res.val_accuracy

        ps = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=a.seed))
        ps.optimize(objective, n_trials=a.trials)
        out["plain"] = {"total_s": round(time.perf_counter() - t1, 1), "best": ps.best_value,
                        "best_params": ps.best_trial.params}

    best = max(v for _, v in ours + plain)
    target = best - 0.01
    t_ours, t_plain = _time_to(ours, target), _time_to(plain, target)
    out["target_val_accuracy"] = round(target, 4)
    out["ours_time_to_target_s"] = round(t_ours, 1) if math.isfinite(t_ours) else None
    out["plain_time_to_target_s"] = round(t_plain, 1) if math.isfinite(t_plain) else None
    if math.isfinite(t_ours) and math.isfinite(t_plain):
        out["speedup"] = round(t_plain / t_ours, 1)
    elif math.isfinite(t_ours):
        out["speedup"] = f">{round(out['plain']['total_s'] / t_ours, 1)} (plain never reached the target)"
    else:
        out["speedup"] = None
    out["ours_curve"] = [(round(t, 1), round(v, 4)) for t, v in sorted(ours)]
    out["plain_curve"] = [(round(t, 1), round(v, 4)) for t, v in sorted(plain)]
    print(json.dumps(out, indent=2, default=str))
    print(f"time to within 1 point of the best ({target:.4f}): ours {out['ours_time_to_target_s']} s, "
          f"plain Optuna {out['plain_time_to_target_s']} s; speed-up {out['speedup']} (target >= 5)")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
