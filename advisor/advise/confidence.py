"""The advice's confidence as a probability: P(the advised strategy is within 1 point of the oracle's).

The rules and the measured check score their own margin (``Advice.raw_confidence``: the distance of the
deciding measurements from their thresholds, or the check's validation margin in standard errors, squashed
into [0.35, 0.95]). That score ranks decisions but is not a probability: on the advice grid's older parts
its middle band was right less often than its lowest. :func:`calibrated` maps it through a table fitted
by ``python -m benchmarks.advice_grid --calibrate-confidence`` on the grid's parts named in
``benchmarks/advice_grid/families.py:CONFIDENCE_PARTS`` (the calibration parts and the fifth to eighth held-out
parts; the event: strategy regret <= 1 point), stored in ``advisor/advise/_confidence_table.py`` (plain literals,
no pickle). A check whose margin is over a run its rung stopped counts that margin at most the rung's own
standard errors (``advisor.advise.rules.check_confidence``).

Methods (chosen by the fit's leave-one-out log loss on those rows, :func:`fit_table`; ties go to the first):
``identity``: the raw score itself, nothing fitted; ``platt``: sigmoid(a * logit(raw) + b); ``platt_decider``:
the same with an offset per decider (the rules, the measured check, or a structural choice: multi-task or
pipeline); ``isotonic``: a monotone step map of the raw score.
"""

from __future__ import annotations

import math

import numpy as np

#: who decided: the size and similarity rules, the measured check, or a structural choice between a shared
#: network and separate ones (multi-task) or a pipeline and end-to-end (intermediate labels)
DECIDERS = ("rules", "check", "structural")
METHODS = ("identity", "platt", "platt_decider", "isotonic")
#: L2 strength of the Platt fits (scikit-learn's C): a few dozen calibration rows cannot pin free slopes
PLATT_C = 1.0
EPS = 1e-3


def decider(profile, used_check: bool) -> str:
    """Which of :data:`DECIDERS` made the advice for ``profile``."""
    finals = [t for t in profile.size.tasks if t.task != profile.intermediate]
    if profile.intermediate or len(finals) >= 2:
        return "structural"
    return "check" if used_check else "rules"


def _logit(raw) -> np.ndarray:
    p = np.clip(np.asarray(raw, dtype=float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _design(raw, deciders, with_offsets: bool) -> np.ndarray:
    cols = [_logit(raw)]
    if with_offsets:
        cols += [np.array([d == k for d in deciders], float) for k in DECIDERS[1:]]
    return np.column_stack(cols)


def predict(table: dict | None, raw, deciders) -> np.ndarray:
    """The calibrated probabilities of raw scores ``raw`` made by ``deciders`` under ``table``."""
    raw = np.asarray(raw, dtype=float)
    method = (table or {}).get("method", "identity")
    if method == "identity":
        return raw.copy()
    if method == "isotonic":
        return np.interp(raw, table["x"], table["y"])
    w = np.array(table["coef"], float)
    z = _design(raw, deciders, method == "platt_decider") @ w + float(table["intercept"])
    return 1.0 / (1.0 + np.exp(-z))


def calibrated(raw: float, who: str, table: dict | None = None) -> float:
    """One advice's confidence: ``raw`` (its margin score) by decider ``who`` through ``table`` (default:
    the package's fitted table), rounded to 3 decimals."""
    if table is None:
        from advisor.advise._confidence_table import TABLE as table
    return round(float(predict(table, [raw], [who])[0]), 3)


#: isotonic regression's outputs stay inside these (protocol s13): a step fitted on a handful of rows, all wrong or all
#: right, would otherwise make the advice say 0 or 1
ISOTONIC_BOUNDS = (0.05, 0.95)


def _fit(method: str, raw: np.ndarray, right: np.ndarray, deciders: list[str]) -> dict:
    if method == "identity":
        return {"method": method}
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        low, high = ISOTONIC_BOUNDS
        iso = IsotonicRegression(y_min=low, y_max=high, out_of_bounds="clip").fit(raw, right)
        return {"method": method, "x": [float(v) for v in iso.X_thresholds_],
                "y": [float(v) for v in iso.y_thresholds_]}
    from sklearn.linear_model import LogisticRegression

    if np.unique(right).size < 2:  # every row right (or wrong): the share itself, whatever the score
        share = float(np.clip(right.mean(), EPS, 1 - EPS))
        n_coef = 1 + (len(DECIDERS) - 1) * (method == "platt_decider")
        return {"method": method, "coef": [0.0] * n_coef, "intercept": math.log(share / (1 - share))}
    m = LogisticRegression(C=PLATT_C).fit(_design(raw, deciders, method == "platt_decider"), right)
    return {"method": method, "coef": [float(v) for v in m.coef_[0]], "intercept": float(m.intercept_[0])}


def log_loss(p, right) -> float:
    p = np.clip(np.asarray(p, float), EPS, 1 - EPS)
    y = np.asarray(right, float)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def leave_one_out(method: str, raw, right, deciders) -> float:
    """Leave-one-out log loss of ``method`` over the rows (each row predicted by a fit on the others)."""
    raw, right = np.asarray(raw, float), np.asarray(right, float)
    preds = []
    for i in range(len(raw)):
        keep = np.arange(len(raw)) != i
        t = _fit(method, raw[keep], right[keep], [d for j, d in enumerate(deciders) if j != i])
        preds.append(predict(t, raw[i:i + 1], [deciders[i]])[0])
    return log_loss(preds, right)


def fit_table(raw, right, deciders, methods=METHODS) -> dict:
    """The table of the method with the lowest leave-one-out log loss on these (calibration) rows, fitted on
    all of them; ``loo`` records every method's, ``identity`` the raw score's own log loss."""
    raw, right = np.asarray(raw, float), np.asarray(right, float)
    loo = {m: round(leave_one_out(m, raw, right, list(deciders)), 4) for m in methods}
    best = min(methods, key=lambda m: (loo[m], methods.index(m)))
    table = _fit(best, raw, right, list(deciders))
    table.update(loo=loo, identity_log_loss=round(log_loss(raw, right), 4), n=int(len(raw)),
                 share_right=round(float(right.mean()), 4))
    return table


def ece(p, right, bins: int = 10) -> float:
    """Expected calibration error: over ``bins`` equal-width bins of [0, 1], the row-weighted mean of
    |mean confidence - share right|."""
    p, y = np.asarray(p, float), np.asarray(right, float)
    if p.size == 0:
        return float("nan")
    b = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(np.sum(b == k) / p.size * abs(p[b == k].mean() - y[b == k].mean())
                     for k in range(bins) if np.any(b == k)))


#: draws and seed of :func:`ece_floor` (fixed: the same rows always read the same floor)
FLOOR_DRAWS, FLOOR_SEED = 2000, 0


def ece_floor(p, bins: int = 10, draws: int = FLOOR_DRAWS, seed: int = FLOOR_SEED) -> tuple[float, float]:
    """The ECE a confidence that *is* a probability shows on rows with these confidences ``p``: each row's
    outcome drawn as right with probability ``p`` itself, ``draws`` times; (mean, 90th percentile). On a few
    dozen rows the binned estimate is far above zero even then, so a measured ECE reads against this floor."""
    p = np.asarray(p, float)
    if p.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    sims = np.array([ece(p, rng.random(p.size) < p, bins) for _ in range(draws)])
    return float(sims.mean()), float(np.quantile(sims, 0.9))
