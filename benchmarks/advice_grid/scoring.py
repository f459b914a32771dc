"""Scoring a scenario: the oracle's answer (best validation over the budget), the advised configuration's and
the baselines' regrets against it, and the measured check read from the oracle's records."""

from __future__ import annotations

from advisor.advise.check import candidates as check_candidates
from advisor.serialize import to_dict

from .budget import oracle_budget, uses_wide
from .configs import _fill_defaults, _norm_params, advised_config, default
from .scenarios import Scenario, grid_family
from .store import Runner


def best_by_val(records: list[dict]) -> dict | None:
    """The record with the highest validation accuracy; the first in budget order on a tie."""
    best = None
    for r in records:
        if r is not None and (best is None or r["val_accuracy"] > best["val_accuracy"]):
            best = r
    return best


#: decimals a regret in points is rounded to: a test accuracy is a count over at most a few thousand images, so two
#: accuracies differ by a multiple of 100 / n_test points (0.1 for 1,000 images), while the float difference of the two
#: fractions carries an error near 1e-15. Rounded, a row exactly 1 point from the oracle (858 against 848 of 1,000
#: test images) reads 1.0, within 1 point, not 1.0000000000000009.
REGRET_DECIMALS = 9


def points(higher: float, lower: float) -> float:
    """``higher - lower`` in points (percentage points of test accuracy), free of the fractions' roundoff."""
    return round(100.0 * (higher - lower), REGRET_DECIMALS)


def regrets(oracle_test: float, advised_test: float, strategy_best_test: float) -> tuple[float, float]:
    """(configuration regret, strategy regret) in points (percentage points of test accuracy)."""
    return points(oracle_test, advised_test), points(oracle_test, strategy_best_test)


def plain_2x2(sc: Scenario) -> tuple[str, dict]:
    """DESIGN.md's 2x2, given the scenario's true size and similarity, with each strategy's defaults."""
    if sc.small:
        if sc.similar:
            return "linear_probe", {"C": default("linear_probe", "C")}
        return "svm_early", {"C": default("svm_early", "C")}
    return "full_finetune", {"warmup": False}


BASELINES = {
    "2x2 rule": plain_2x2,
    "always LP-FT": lambda sc: ("full_finetune", {"warmup": True}),
    "always linear probe": lambda sc: ("linear_probe", {"C": default("linear_probe", "C")}),
    # Auto-RGN (Lee et al., 2023): every tensor's rate by its relative gradient norm, one run, no choice of layers
    "always auto_rgn": lambda sc: ("auto_rgn", {}),
}
#: Baselines whose run only the wide budget holds: a row scored on the seeds' budget leaves them out (the
#: summary then says on how many rows each baseline was scored).
WIDE_BASELINES = ("always auto_rgn",)

#: The option a multi-task or pipeline scenario's baselines take: the one that needs no special structure.
BASELINE_OPTION = {"multi_task": "separate", "pipeline": "end_to_end"}


def _option_pick(kind: str, advice) -> str:
    """The option an advice picks in a multi-task scenario (shared or separate networks) or a
    pipeline scenario (pipeline or end-to-end)."""
    if kind == "multi_task":
        return "shared" if advice.strategy == "multi_task" else "separate"
    if advice.strategy == "pipeline_vs_end_to_end":
        return advice.params.get("prefer", "pipeline")
    return "end_to_end"


#: the grid's check with its shift's candidates (True), without (False), or as analyze's default (None); the grid's
#: ``--check-shift on|off`` sets it (issue 21's fifth held-out part judged the check with them, code 1d28899bc36b)
CHECK_SHIFT: bool | None = None
#: the grid's check with the rung (advisor.advise.check.RUNG: each network candidate stopped after a quarter of its
#: epochs when it is more than 2 SE below the best probe), read from each record's validation curve; None: as
#: analyze's default. The grid's ``--check-rung on|off`` sets it (protocol benchmarks/protocols/s7-rung-and-shift.md)
CHECK_RUNG: bool | None = None
#: the grid's check with W of protocol s13 (advisor.advise.check.MIDDLE_CHECK: LP-FT at 0.5 and surgical on the middle
#: third), or as analyze's default (None); the grid's ``--check-middle on|off`` sets it
CHECK_MIDDLE: bool | None = None


def grid_check(sc: Scenario, runner: Runner, candidates=None, rung: bool | None = None):
    """The measured check analyze would run on this scenario, read from the oracle's records (every
    candidate is in the budget); None for multi-task and pipeline scenarios or missing records.
    ``candidates``: the check's candidate list, ``f(n_blocks, n_train, family, profile)`` (default:
    :func:`advisor.advise.check.candidates`; benchmarks/check_sets.py tries others). ``rung`` (default
    :data:`CHECK_RUNG`, then analyze's): each network candidate whose record's validation curve is below the rung's
    floor at its rung epoch enters with its best value by then and the seconds of the epochs it ran
    (advisor.advise.check.rung_stops); the check's ``rung`` is False when a record has no curve (older parts)."""
    from advisor.advise.check import RUNG, CheckRun, MeasuredCheck, resolve, rung_stops
    from advisor.advise.check_cost import first_trained

    if sc.kind != "single" or not (runner.dir / "shape.json").is_file():
        return None
    shape = runner.shape()
    runs, curves = [], []
    fam = grid_family(sc)
    # with the wide budget, the check analyze runs: its shift's candidates (bn_adapt, surgical on the shift's
    # third; advisor.advise.check.SHIFT_CANDIDATES, or CHECK_SHIFT here) are budget configurations too. The seeds'
    # budget holds only the list of before (no profile: candidates() gives it).
    profile = runner.analysis().profile if uses_wide(sc) else None
    offered = (candidates(shape["n_blocks"], shape["n_train"], fam, profile) if candidates else
               check_candidates(shape["n_blocks"], shape["n_train"], fam, profile, shift=CHECK_SHIFT,
                                middle=CHECK_MIDDLE))
    for s, p in offered:
        if s == "bn_adapt" and fam != "cnn":
            continue  # analyze's backbone check leaves it out: the grid's transformers have no BatchNorm
        p = resolve(p, runs)  # bn_adapt's early SVM: the block of the best plain early SVM so far
        if p is None:
            continue
        rec = runner.result(s, _norm_params(s, p, shape["block_names"], fam), compute=False)
        if rec is None:
            return None
        runs.append(CheckRun(s, p, float(rec["val_accuracy"]), float(rec.get("wall_s", 0.0))))
        curves.append((rec.get("val_curve"), rec.get("epoch_s")))
    n_val = int(shape["n_val"])
    rung = (RUNG if CHECK_RUNG is None else CHECK_RUNG) if rung is None else bool(rung)
    trains = [first_trained(r.strategy, r.params, shape["n_blocks"]) is not None for r in runs]
    probes = [r.val_accuracy for r, t in zip(runs, trains) if not t]  # every probe runs before any network candidate
    network = [i for i, t in enumerate(trains) if t]
    if rung and probes and all(curves[i][0] for i in network):
        for i in network:
            curve, secs = curves[i]
            at = rung_stops(curve, runs[i].params, max(probes), n_val)
            if at is not None:
                runs[i] = CheckRun(runs[i].strategy, runs[i].params, max(curve[:at]), float(sum(secs[:at])),
                                   stopped_at=at)
    else:
        rung = False
    return MeasuredCheck(runs=runs, n_val=n_val, rung=rung)


def score_scenario(sc: Scenario, runner: Runner, advise_fn, *, compute: bool, candidates=None,
                   rung: bool | None = None) -> dict | None:
    """Everything the tables show for one scenario, or None when its results are missing (``candidates``: the
    measured check's, as in :func:`grid_check`)."""
    shape = runner.shape() if compute or (runner.dir / "shape.json").is_file() else None
    if shape is None or not (compute or (runner.dir / "analysis.json").is_file()):
        return None
    analysis = runner.analysis()
    budget = oracle_budget(sc, shape["n_blocks"], shape["n_train"])
    fam = grid_family(sc)
    records = [runner.result(s, _norm_params(s, p, shape["block_names"], fam), compute=compute) for s, p in budget]
    if any(r is None for r in records):
        return None
    advice = advise_fn(analysis.profile, check=grid_check(sc, runner, candidates, rung))
    row = {"id": sc.id, "part": sc.part, "kind": sc.kind, "shift": sc.shift, "similar": sc.similar,
           "per_class": sc.per_class, "advised": advice.strategy, "advised_params": to_dict(advice.params),
           "confidence": advice.confidence, "raw_confidence": advice.raw_confidence, "decided_by": advice.decided_by}
    if sc.kind in ("multi_task", "pipeline"):
        rec = records[0]
        opts = rec["options"]
        pick, base_pick = _option_pick(sc.kind, advice), BASELINE_OPTION[sc.kind]
        winner = max(opts, key=lambda o: opts[o]["val"])
        oracle = opts[winner]["test"]
        cr, sr = regrets(oracle, opts[pick]["test"], opts[pick]["test"])
        bcr, _ = regrets(oracle, opts[base_pick]["test"], opts[base_pick]["test"])
        row.update(advised=f"{advice.strategy}:{pick}" if sc.kind == "pipeline" else pick, oracle=winner,
                   options_test={o: v["test"] for o, v in opts.items()},
                   oracle_test=oracle, n_test=rec["n_test"], advised_test=opts[pick]["test"],
                   config_regret=cr, strategy_regret=sr,
                   baselines={b: {"choice": base_pick, "config_regret": bcr, "strategy_regret": bcr}
                              for b in BASELINES if b not in WIDE_BASELINES})
        return row
    oracle = best_by_val(records)
    by_strategy = {}
    for (s, _), r in zip(budget, records):
        by_strategy.setdefault(s, []).append(r)

    def strategy_best(s):
        return best_by_val(by_strategy.get(s, []))

    a_strat, a_params = advised_config(advice, shape["n_train"])
    adv_rec = runner.result(a_strat, _norm_params(a_strat, a_params, shape["block_names"], fam), compute=compute)
    if adv_rec is None:
        return None
    cr, sr = regrets(oracle["test_accuracy"], adv_rec["test_accuracy"], strategy_best(a_strat)["test_accuracy"])
    row.update(oracle=f"{oracle['strategy']} {_short(oracle['params'])}", oracle_strategy=oracle["strategy"],
               oracle_val=oracle["val_accuracy"], oracle_test=oracle["test_accuracy"], n_test=oracle["n_test"],
               advised_test=adv_rec["test_accuracy"], config_regret=cr, strategy_regret=sr,
               strategy_best={s: strategy_best(s)["test_accuracy"] for s in by_strategy})
    thirds_run = [(p["first"], p["last"], r) for (s, p), r in zip(budget, records) if s == "surgical"]
    if thirds_run:  # the Lee et al. comparison: which third of the blocks tuned alone did best here
        row["surgical_thirds"] = [{"first": a, "last": b, "val": r["val_accuracy"], "test": r["test_accuracy"]}
                                  for a, b, r in thirds_run]
    row["baselines"] = {}
    for name, fn in BASELINES.items():
        s, p = fn(sc)
        if name in WIDE_BASELINES and s not in by_strategy:
            continue  # not in this row's budget (the seeds'): scored on wide-budget rows only
        p = _norm_params(s, _fill_defaults(s, p, shape["n_train"], shape["n_blocks"], fam), shape["block_names"], fam)
        rec = runner.result(s, p, compute=compute)
        if rec is None:
            return None
        bcr, bsr = regrets(oracle["test_accuracy"], rec["test_accuracy"], strategy_best(s)["test_accuracy"])
        row["baselines"][name] = {"choice": s, "config_regret": bcr, "strategy_regret": bsr}
    return row


def _short(params: dict) -> str:
    keep = {k: v for k, v in params.items() if k in ("C", "block", "k", "lr_ratio", "warmup")}
    return ",".join(f"{k}={v}" for k, v in sorted(keep.items()))
