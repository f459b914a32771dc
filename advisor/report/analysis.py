"""What a report concludes from a study's runs: strategy comparison, the advised trial,
agreement with the advice, and parameter importances.

Pure functions over :class:`~advisor.report.collect.StudyData`; no MLflow, no plotting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from advisor.measure.stats import binomial_se
from advisor.report.collect import StudyData, TrialRecord, advised_trial, canonical
from advisor.track.names import STRATEGY_TAG

#: fewer complete trials than this and no importances are computed
MIN_TRIALS_FOR_IMPORTANCE = 4
IMPORTANCE_TREES = 200
IMPORTANCE_METHOD = (
    "random forest ({trees} trees, seed 0) fitted to the validation accuracy of the {n} complete trial runs in "
    "MLflow; impurity-based importances (mean decrease in variance), normalised to sum to 1; a categorical "
    "parameter is one-hot encoded and its columns summed; k is the number of trainable top blocks "
    "(0 for probes, all blocks for full_finetune); a parameter a trial does not have is set to -1; parameters "
    "that never vary (fixed in the space) are left out"
)


@dataclass
class StrategyRow:
    """One strategy's line in the comparison table."""

    strategy: str
    complete: int
    pruned: int
    failed: int
    best_trial: int | None
    best_val_accuracy: float | None
    test_accuracy: float | None  # only for the strategy of the study's best trial (tested once)
    test_macro_f1: float | None
    trainable_params: int | None  # of its best trial
    best_wall_time: float | None  # seconds, its best trial
    total_wall_time: float  # seconds, all its trials


def strategy_rows(study: StudyData) -> list[StrategyRow]:
    """Per strategy: counts by state, its best trial's metrics; best strategy first."""
    best = study.best()
    rows = []
    for name in dict.fromkeys(t.strategy or "?" for t in study.trials):
        mine = [t for t in study.trials if (t.strategy or "?") == name]
        done = [t for t in mine if t.state == "complete" and t.value is not None]
        top = max(done, key=lambda t: (t.value, -t.number)) if done else None
        tested = top is not None and best is not None and top.number == best.number
        rows.append(StrategyRow(
            strategy=name, complete=sum(t.state == "complete" for t in mine),
            pruned=sum(t.state == "pruned" for t in mine), failed=sum(t.state == "failed" for t in mine),
            best_trial=top.number if top else None, best_val_accuracy=top.value if top else None,
            test_accuracy=study.test_accuracy if tested else None,
            test_macro_f1=study.test_macro_f1 if tested else None,
            trainable_params=top.trainable_params if top else None, best_wall_time=top.wall_time if top else None,
            total_wall_time=sum(t.wall_time or 0.0 for t in mine)))
    return sorted(rows, key=lambda r: (r.best_val_accuracy is None, -(r.best_val_accuracy or 0.0), r.strategy))


# ------------------------------------------------------------------ the advice
@dataclass
class Agreement:
    """Whether the search's best trial used the advised strategy, and by how much it beat the advice."""

    has_advice: bool
    advised_strategy: str | None
    best_strategy: str | None
    agrees: bool | None  # None without advice
    advised_trial: int | None
    advised_value: float | None
    best_trial: int | None
    best_value: float | None
    gain_points: float | None  # (best - advised) * 100, percentage points of validation accuracy
    sentence: str = ""
    noise_points: float | None = None  # one binomial standard error of the best accuracy on the val split, points


def agreement(study: StudyData) -> Agreement:
    """Compare the study's best trial with the advice; ``sentence`` says it in plain words."""
    best = study.best()
    n = study.n_blocks
    best_strategy = best.strategy if best else None
    if not study.advice_strategy:
        return Agreement(False, None, best_strategy, None, None, None, best.number if best else None,
                         best.value if best else None, None,
                         "No advice to compare with: analyze did not run for this study "
                         f"(it searched {study.tags.get(STRATEGY_TAG, 'a fixed strategy')} directly).")
    advice_params = dict(study.advice.params or {}) if study.advice is not None else {}
    want = canonical(study.advice_strategy, advice_params, n)
    got = canonical(best_strategy, best.params if best else None, n) if best else None
    agrees = best is not None and want == got
    adv = advised_trial(study)
    gain = None
    if adv is not None and adv.value is not None and best is not None:
        gain = (best.value - adv.value) * 100.0
    shown_best = _strategy_words(best_strategy, best.params if best else None, n)
    if agrees:
        text = f"The search agreed with the advice: the best trial (#{best.number}) used {shown_best}, " \
               f"as advised ({study.advice_strategy})."
    else:
        text = f"The search did not agree with the advice: the advice was {study.advice_strategy}, " \
               f"the best trial (#{best.number}) used {shown_best}."
    if adv is None:
        text += (f" The advised configuration was not run as a trial (the search space does not hold "
                 f"{study.advice_strategy}), so there is no score to compare it with.")
    elif adv.value is None:
        text += f" The advised configuration (trial #{adv.number}) was {adv.state}, so it has no final score."
    elif adv.number == best.number:
        text += f" The advised configuration (trial #{adv.number}) was itself the best trial " \
                f"({best.value:.4f} validation accuracy): the search beat it by 0.0 points."
    else:
        text += (f" The best trial beat the advised configuration (trial #{adv.number}) by {gain:.1f} points of "
                 f"validation accuracy ({best.value:.4f} against {adv.value:.4f}).")
    noise = None
    n_val = _n_val(study)
    if gain is not None and adv is not None and adv.number != best.number and n_val:
        p = min(max(best.value, 0.0), 1.0)
        noise = 100.0 * binomial_se(p, n_val)
        if gain < 2.0 * noise:
            text += (f" On {n_val} validation images one standard error of an accuracy near {p:.2f} is "
                     f"{noise:.1f} points, so a gain of {gain:.1f} points is within noise: search with more "
                     f"validation data (a larger --split validation fraction) before preferring the best trial "
                     f"to the advice; the test split is for the final number, not for this choice.")
        else:
            text += (f" On {n_val} validation images one standard error of an accuracy near {p:.2f} is "
                     f"{noise:.1f} points, so the gain is more than two standard errors.")
    return Agreement(True, study.advice_strategy, best_strategy, agrees, adv.number if adv else None,
                     adv.value if adv else None, best.number if best else None, best.value if best else None,
                     gain, text, noise)


def _n_val(study: StudyData) -> int | None:
    """Validation images of the study's split, from the logged profile."""
    size = getattr(study.profile, "size", None)
    n = (getattr(size, "split", None) or {}).get("val")
    return int(n) if n else None


def _strategy_words(strategy: str | None, params: dict | None, n_blocks: int | None) -> str:
    """``last_k (k = 3)``; ``last_k with k = 19 (full_finetune)`` where a declared equivalence makes the run
    another strategy's; the block-count and block parameters a strategy declares are named."""
    from advisor import strategies

    if strategy not in strategies.names():
        return str(strategy)
    declared = strategies.get(strategy)
    given = {k: v for k, v in (params or {}).items()
             if declared.has(k) and (declared.param(k).depth or declared.param(k).base == "block")}
    same = canonical(strategy, params, n_blocks)
    if same != strategy and given:
        return f"{strategy} with {', '.join(f'{k} = {v}' for k, v in given.items())} ({same})"
    if given and declared.kind != "probe":
        return f"{strategy} ({', '.join(f'{k} = {v}' for k, v in given.items())})"
    return str(strategy)


# ------------------------------------------------------------------ importances
@dataclass
class Importances:
    """Parameter importances, or why there are none."""

    names: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    n_trials: int = 0
    method: str = ""
    reason: str | None = None  # set when no importances could be computed


def _feature_table(trials: list[TrialRecord], n_blocks: int | None) -> tuple[list[str], list[list[float]], list[str]]:
    """Columns (name per column's parameter), matrix rows, and the parameter of each column."""
    rows = []
    for t in trials:
        values = {k: v for k, v in t.params.items() if v is not None}
        values.pop("k", None)
        depth = t.depth(n_blocks)
        if depth is not None:
            values["k"] = depth
        values["strategy"] = t.strategy or "?"
        rows.append(values)
    names = sorted({k for r in rows for k in r})
    columns: list[tuple[str, Any]] = []  # (parameter, None for numeric | category value)
    for name in names:
        seen = [r[name] for r in rows if name in r]
        if len({repr(v) for v in seen}) < 2:
            continue  # constant wherever it is set (e.g. a fixed epochs): its presence only repeats the strategy
        if all(isinstance(v, (int, float)) for v in seen):  # bool is an int: 0/1
            columns.append((name, None))
        else:
            for cat in sorted({str(v) for v in seen}):
                columns.append((name, cat))
    matrix = []
    for r in rows:
        line = []
        for name, cat in columns:
            v = r.get(name)
            if cat is None:
                line.append(float(v) if isinstance(v, (int, float)) and math.isfinite(float(v)) else -1.0)
            else:
                line.append(1.0 if v is not None and str(v) == cat else 0.0)
        matrix.append(line)
    return [c[0] for c in columns], matrix, names


def importances(study: StudyData) -> Importances:
    """Random-forest importances of the searched parameters for the complete trials' values."""
    done = study.complete()
    if len(done) < MIN_TRIALS_FOR_IMPORTANCE:
        return Importances(n_trials=len(done), reason=f"not enough trials: {len(done)} complete, importances "
                                                      f"need at least {MIN_TRIALS_FOR_IMPORTANCE}")
    params, matrix, _ = _feature_table(done, study.n_blocks)
    y = [t.value for t in done]
    if not params:
        return Importances(n_trials=len(done), reason="no parameter varied between the complete trials")
    if max(y) - min(y) <= 1e-12:
        return Importances(n_trials=len(done), reason="every complete trial scored the same")
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=IMPORTANCE_TREES, random_state=0, n_jobs=1, min_samples_leaf=1)
    forest.fit(np.asarray(matrix, dtype=float), np.asarray(y, dtype=float))
    totals: dict[str, float] = {}
    for name, value in zip(params, forest.feature_importances_):
        totals[name] = totals.get(name, 0.0) + float(value)
    norm = sum(totals.values()) or 1.0
    ordered = sorted(totals.items(), key=lambda kv: -kv[1])
    return Importances(names=[k for k, _ in ordered], values=[v / norm for _, v in ordered], n_trials=len(done),
                       method=IMPORTANCE_METHOD.format(trees=IMPORTANCE_TREES, n=len(done)))


def best_so_far(study: StudyData) -> list[tuple[int, float]]:
    """(trial number, best complete value up to it) for every complete trial, in number order."""
    out, best = [], -math.inf
    for t in sorted(study.trials, key=lambda t: t.number):
        if t.state == "complete" and t.value is not None:
            best = max(best, t.value)
            out.append((t.number, best))
    return out
