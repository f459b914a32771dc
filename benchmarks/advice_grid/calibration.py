"""Calibration: the rules' thresholds (``--calibrate``) and the advised parameters on the calibration parts only,
and the advice confidence's table (``--calibrate-confidence``) on those and the fifth held-out part
(families.CONFIDENCE_PARTS)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from advisor.advise import confidence

from .budget import LR_RATIOS, PROBE_C
from .configs import _norm_params, advised_config
from .scenarios import grid_family
from .scoring import BASELINE_OPTION, _option_pick, points
from .sources import ROOT

#: The values --calibrate tries for each threshold (single-task, multi-task and pipeline rules are
#: searched separately: each family of rows depends on its own thresholds only).
SEARCH_SINGLE = {
    "small_per_class": (10, 20, 30, 50, 75, 100, 150, 200, 300),
    "large_per_class": (100, 150, 200, 300, 500, 750, 1000, 2000),
    "shift_different": (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
    "early_margin": (0.0, 0.01, 0.02, 0.05, 0.1),
    "transfer_metric": ("knn_accuracy", "linear_probe_accuracy"),
    "shift_stat": ("mean", "median"),
    "check_per_class": (0, 10, 50, 100),
}
#: Searched after SEARCH_SINGLE, with its choice fixed (the rules' advice from where the shift lives, issue 21:
#: None keeps a rule off). Only wide-budget rows can score them (bn_adapt and surgical are not in the seeds' budget).
SEARCH_PEAK = {"bn_adapt_peak_shift": (None, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0),
               "surgical_peak_shift": (None, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)}
SEARCH_MT = {"mt_min_balance": (0.1, 0.25, 0.5, 0.75), "mt_min_transfer": (0.0, 0.25, 0.5, 0.75, 0.9),
             "mt_min_params": (250_000, 500_000, 1_000_000, 2_000_000, 4_000_000)}
SEARCH_PIPELINE = {"pipeline_per_class": (10, 20, 30, 50, 100, 200, 300, 1000)}


def strategy_regret_under(row: dict, advice) -> float:
    """A scored row's strategy regret if the advice had been ``advice`` (no training needed)."""
    if row["kind"] in BASELINE_OPTION:
        return points(row["oracle_test"], row["options_test"][_option_pick(row["kind"], advice)])
    return points(row["oracle_test"], row["strategy_best"][advice.strategy])


def calibrate(rows: list[dict], profiles: dict, log=print, checks: dict | None = None) -> dict:
    """Thresholds that minimise the mean strategy regret over ``rows`` (the calibration part only).

    Ties go to the candidate that changes the fewest thresholds from today's defaults, then to the one
    closest to them (in log distance), so a threshold moves only when the calibration data asks for it.
    """
    import itertools

    from advisor.advise import rules

    checks = checks or {}
    base = rules.DEFAULT_THRESHOLDS
    chosen = dataclasses.asdict(base)
    for kind, space in (("single", SEARCH_SINGLE), ("single", SEARCH_PEAK), ("multi_task", SEARCH_MT),
                        ("pipeline", SEARCH_PIPELINE)):
        sel = [r for r in rows if r["kind"] == kind]
        if space is SEARCH_PEAK:  # only rows whose oracle ran bn_adapt and surgical can judge these rules
            sel = [r for r in sel if {"bn_adapt", "surgical"} & set(r.get("strategy_best") or {})]
        if not sel:
            continue
        best = None
        names = list(space)
        for values in itertools.product(*(space[n] for n in names)):
            cand = dict(chosen, **dict(zip(names, values)))
            if cand["small_per_class"] >= cand["large_per_class"]:
                continue
            t = rules.Thresholds(**cand)
            regret = float(np.mean([strategy_regret_under(r, rules.advise(profiles[r["id"]], t, checks.get(r["id"])))
                                    for r in sel]))
            changed = sum(cand[n] != getattr(base, n) for n in names)
            dist = sum(abs(math.log((cand[n] + 1e-3) / (getattr(base, n) + 1e-3)))
                       if isinstance(cand[n], (int, float)) and isinstance(getattr(base, n), (int, float))
                       else float(cand[n] != getattr(base, n)) for n in names)
            key = (round(regret, 6), changed, dist)
            if best is None or key < best[0]:
                best = (key, {n: cand[n] for n in names})
        before = float(np.mean([strategy_regret_under(r, rules.advise(profiles[r["id"]], base, checks.get(r["id"])))
                                for r in sel]))
        log(f"calibrate {kind}: {len(sel)} rows, mean strategy regret {before:.2f} with today's thresholds, "
            f"{best[0][0]:.2f} with {best[1]}")
        chosen.update(best[1])
    return chosen


#: The advised parameters --calibrate tries (values inside the budget, so no new network trains).
SEARCH_CONFIG = {"probe_c": PROBE_C, "lr_ratio_similar": LR_RATIOS, "lr_ratio_different": LR_RATIOS,
                 "warmup_rule": ("informative", "always", "never")}


def calibrate_config(rows: list[dict], profiles: dict, runners: dict, thresholds: dict, log=print,
                     checks: dict | None = None) -> dict:
    """The advised parameters with the lowest mean configuration regret over the calibration rows,
    given the strategy thresholds already chosen. A probe on any block is a fraction of a second from
    the activation cache, so probe configurations outside the budget are run here; a network
    configuration outside the budget (a last_k depth the budget lacks) leaves its row out of the
    comparison (every candidate then leaves it out alike)."""
    import itertools

    from advisor.advise import rules

    names = list(SEARCH_CONFIG)
    scored = {}
    for values in itertools.product(*(SEARCH_CONFIG[n] for n in names)):
        cand = dict(thresholds, **dict(zip(names, values)))
        t = rules.Thresholds(**cand)
        out = {}
        for r in rows:
            if r["kind"] != "single":
                continue
            adv = rules.advise(profiles[r["id"]], t, (checks or {}).get(r["id"]))
            runner = runners[r["id"]]
            shape = runner.shape()
            s, p = advised_config(adv, shape["n_train"])
            rec = runner.result(s, _norm_params(s, p, shape["block_names"], grid_family(runner.sc)),
                                compute=s in ("linear_probe", "svm_early"))
            out[r["id"]] = None if rec is None else points(r["oracle_test"], rec["test_accuracy"])
        scored[values] = out
    common = [i for i in next(iter(scored.values())) if all(v[i] is not None for v in scored.values())]
    base = rules.DEFAULT_THRESHOLDS
    best = None
    for values, out in scored.items():
        mean = float(np.mean([out[i] for i in common])) if common else 0.0
        changed = sum(v != getattr(base, n) for n, v in zip(names, values))
        key = (round(mean, 6), changed)
        if best is None or key < best[0]:
            best = (key, dict(zip(names, values)))
    today = tuple(getattr(base, n) for n in names)
    now = float(np.mean([scored[today][i] for i in common])) if today in scored and common else float("nan")
    log(f"calibrate advised parameters: {len(common)} rows, mean configuration regret {now:.2f} with today's, "
        f"{best[0][0]:.2f} with {best[1]}")
    return best[1]


CONFIDENCE_TABLE = ROOT / "advisor" / "advise" / "_confidence_table.py"


def write_confidence_table(rows: list[dict], version: str, path: Path = CONFIDENCE_TABLE, log=print) -> dict:
    """Fit the advice confidence's calibration on ``rows`` (those of families.CONFIDENCE_PARTS: the caller selects
    them) and write it as a Python literal (no pickle) for advisor.advise.confidence."""
    raw = [r["raw_confidence"] for r in rows]
    if not rows or any(v is None for v in raw):
        raise SystemExit("advice_grid: no calibration rows with a raw confidence to fit the confidence on")
    table = confidence.fit_table(raw, [r["strategy_regret"] <= 1.0 for r in rows], [r["decided_by"] for r in rows])
    table["fitted_on"] = {"version": version, "parts": sorted({r["part"] for r in rows}), "rows": len(rows),
                          "event": "strategy regret <= 1 point"}
    log(f"confidence: {len(rows)} rows ({', '.join(table['fitted_on']['parts'])}), {100 * table['share_right']:.0f}% "
        "right; leave-one-out log loss "
        + ", ".join(f"{m} {v:.3f}" for m, v in table["loo"].items())
        + f" (the raw score's own {table['identity_log_loss']:.3f}): {table['method']}")
    path.write_text('"""The advice confidence\'s calibration table (advisor.advise.confidence): written by\n'
                    '``python -m benchmarks.advice_grid --calibrate-confidence`` from the grid\'s parts named in its\n'
                    'fitted_on. Do not edit by hand."""\n\nTABLE = ' + repr(table) + "\n")
    log(f"wrote {path}")
    return table
