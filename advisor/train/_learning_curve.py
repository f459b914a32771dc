"""Learning curves: error against training-set size, a power-law fit, and whether more data changes a winner.

The model is ``err(n) = a * n**(-b) + c`` with ``a, b, c >= 0``: ``c`` is the error that no
amount of data removes, ``b`` how fast the rest shrinks. :func:`learning_curves` trains two
approaches on growing stratified fractions of the train split, fits one power law per approach
and extrapolates: the errors at 2x and 10x the current data, and the data size ``n*`` (if any)
beyond the current one where the two curves cross, i.e. where more data would change the winner.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import numpy as np

from advisor.errors import AdvisorError

PowerLaw = tuple[float, float, float]  # (a, b, c)
_B_MAX = 5.0
_EPS = 1e-9


def extrapolate(params: PowerLaw, n) -> np.ndarray | float:
    """``a * n**(-b) + c`` at ``n`` (a number or an array of positive sizes)."""
    a, b, c = (float(v) for v in params)
    arr = np.asarray(n, dtype=np.float64)
    out = a * np.power(np.maximum(arr, _EPS), -b) + c
    return float(out) if out.ndim == 0 else out


def _loglog_fit(n: np.ndarray, err: np.ndarray) -> PowerLaw:
    """``c = 0`` and a least-squares line in log-log space (flat when the error does not fall)."""
    e = np.maximum(err, 1e-6)
    if np.unique(n).size < 2:
        return 0.0, 0.0, float(np.mean(err))
    slope, intercept = np.polyfit(np.log(n), np.log(e), 1)
    b = -float(slope)
    if not math.isfinite(b) or b <= 0:  # error flat or rising with data: no trend to extrapolate
        return 0.0, 0.0, float(np.mean(err))
    b = min(b, _B_MAX)
    # refit the scale for the clipped exponent: log a = mean(log e + b log n)
    a = float(np.exp(np.mean(np.log(e) + b * np.log(n))))
    return a, b, 0.0


def _sse(params: PowerLaw, n: np.ndarray, err: np.ndarray) -> float:
    return float(np.sum((extrapolate(params, n) - err) ** 2))


def fit_power_law(n, err) -> PowerLaw:
    """Fit ``err(n) = a * n**(-b) + c`` with ``a >= 0``, ``0 <= b <= 5``, ``c >= 0``; returns ``(a, b, c)``.

    Three or more distinct sizes: least squares (scipy's ``curve_fit``, bounded, from a few
    starting points; sizes are rescaled by the largest one for conditioning). With fewer
    points, or when the fit fails, it falls back gracefully: one size gives a flat curve
    ``(0, 0, mean error)``; two give ``c = 0`` and the line through them in log-log space
    (flat if the error does not fall). Non-finite points are ignored.
    """
    n = np.asarray(n, dtype=np.float64).reshape(-1)
    err = np.asarray(err, dtype=np.float64).reshape(-1)
    if n.shape != err.shape:
        raise AdvisorError(
            f"learning curve has {n.size} sizes but {err.size} errors", "pass one error per training-set size"
        )
    ok = np.isfinite(n) & np.isfinite(err) & (n > 0)
    n, err = n[ok], err[ok]
    if n.size == 0:
        raise AdvisorError("no finite learning-curve points to fit", "train on at least one data fraction")
    err = np.maximum(err, 0.0)
    if np.unique(n).size < 3:
        return _loglog_fit(n, err)

    from scipy.optimize import curve_fit

    scale = float(n.max())
    x = n / scale

    def model(x, a, b, c):
        return a * np.power(x, -b) + c

    hi_c = float(err.max()) + _EPS
    fallback = _loglog_fit(n, err)
    best, best_sse = fallback, _sse(fallback, n, err)
    for b0 in (0.3, 0.7, 1.5):
        c0 = 0.5 * float(err.min())
        a0 = max(float(err[np.argmax(x == x.max())]) - c0, 1e-3)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                popt, _ = curve_fit(
                    model, x, err, p0=(a0, b0, c0),
                    bounds=([0.0, 0.0, 0.0], [np.inf, _B_MAX, hi_c]), maxfev=20000,
                )
        except (RuntimeError, ValueError):
            continue
        a_s, b, c = (float(v) for v in popt)
        cand = (a_s * scale**b, b, c)  # a * (n / scale)^-b == (a * scale^b) * n^-b
        if not all(math.isfinite(v) for v in cand):
            continue
        s = _sse(cand, n, err)
        if s < best_sse - 1e-15:
            best, best_sse = cand, s
    a, b, c = best
    if a <= 1e-12 or b <= 1e-6:  # no decrease: a flat curve
        return 0.0, 0.0, float(extrapolate(best, n.max()))
    return float(a), float(b), float(c)


def crossing_point(p1: PowerLaw, p2: PowerLaw, n_from: float, n_to: float, points: int = 400) -> float | None:
    """The smallest ``n`` in ``(n_from, n_to]`` where the two curves cross (sign change of their gap), or None."""
    if not (n_to > n_from > 0):
        return None
    grid = np.geomspace(n_from, n_to, points)
    d = np.asarray(extrapolate(p1, grid)) - np.asarray(extrapolate(p2, grid))
    s = np.sign(d)
    if s[0] == 0:  # equal right at n_from: look for where they part and then flip
        nz = np.flatnonzero(s)
        if nz.size == 0:
            return None
        s[: nz[0]] = s[nz[0]]
    for i in range(1, len(grid)):
        if s[i] != 0 and s[i] != s[i - 1] and s[i - 1] != 0:
            from scipy.optimize import brentq

            def gap(logn):
                return float(extrapolate(p1, math.exp(logn)) - extrapolate(p2, math.exp(logn)))

            try:
                return float(math.exp(brentq(gap, math.log(grid[i - 1]), math.log(grid[i]))))
            except ValueError:
                return float(grid[i])
        if s[i] == 0:
            s[i] = s[i - 1]  # touching without crossing keeps the previous sign
    return None


def compare_curves(
    sizes: Sequence[float],
    errors: dict[str, Sequence[float]],
    current_n: float,
    *,
    horizon: float = 1000.0,
) -> dict:
    """Fit both approaches' curves and say whether more data would change the winner.

    ``errors`` maps exactly two approach names to errors (one per size). Returns the fits,
    the predicted errors now / at 2x / at 10x ``current_n``, the winners there, and
    ``crossing_n``: the first size beyond ``current_n`` (up to ``horizon`` times it) where the
    curves cross, or None.
    """
    names = list(errors)
    if len(names) != 2:
        raise AdvisorError(f"need two learning curves to compare, got {len(names)}", "pass two approaches")
    sizes = np.asarray(sizes, dtype=np.float64)
    fits = {k: fit_power_law(sizes, errors[k]) for k in names}
    predicted, winners = {}, {}
    for label, mult in (("now", 1.0), ("2x", 2.0), ("10x", 10.0)):
        e = {k: float(extrapolate(fits[k], mult * current_n)) for k in names}
        for k in names:
            predicted.setdefault(k, {})[label] = e[k]
        winners[label] = min(names, key=lambda k: (e[k], names.index(k)))
    cross = crossing_point(fits[names[0]], fits[names[1]], float(current_n), float(current_n) * horizon)
    after = None
    if cross is not None:
        probe = cross * 1.01
        after = min(names, key=lambda k: float(extrapolate(fits[k], probe)))
    return {
        "fits": {k: {"a": fits[k][0], "b": fits[k][1], "c": fits[k][2]} for k in names},
        "current_n": int(round(current_n)),
        "predicted_error": predicted,
        "winner_now": winners["now"],
        "winner_2x": winners["2x"],
        "winner_10x": winners["10x"],
        "crossing_n": None if cross is None else float(cross),
        "winner_after_crossing": after,
        "more_data_changes_winner": cross is not None and cross <= 10.0 * current_n,
        "horizon": float(horizon),
    }


def learning_curves(
    run_fn: Callable[[np.ndarray], dict[str, float]],
    fractions: Sequence[float],
    train_idx: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    seed: int = 0,
    horizon: float = 1000.0,
) -> dict:
    """Train two approaches on growing stratified fractions of the train split and compare their curves.

    ``run_fn(subset_of_train_idx) -> {approach: error}`` trains both approaches on the given
    training items and returns their (validation) errors in [0, 1], or None when it cannot
    train on that subset (the point is left out and listed in ``skipped_fractions``).
    ``fractions`` lie in (0, 1] (sorted, duplicates dropped); fraction ``f`` keeps
    ``round(f * len(train_idx))`` items (at least one per class when there is room) drawn
    stratified by ``labels`` (the labels of ``train_idx``, ``-1`` = missing; plain random when
    None), seeded. Returns ``{"fractions", "n", "errors": {approach: [...]},
    "skipped_fractions"}`` plus everything :func:`compare_curves` reports.
    """
    from advisor.data.split import stratified_sample

    train_idx = np.asarray(train_idx, dtype=np.int64).reshape(-1)
    fr = sorted({float(f) for f in fractions})
    if not fr or fr[0] <= 0 or fr[-1] > 1:
        raise AdvisorError(
            f"bad learning-curve fractions {list(fractions)}",
            "use fractions in (0, 1], e.g. (0.25, 0.5, 1.0)",
        )
    if train_idx.size == 0:
        raise AdvisorError("empty train split for the learning curve", "use a larger dataset")
    y = np.zeros(train_idx.size, dtype=np.int64) if labels is None else np.asarray(labels).reshape(-1)
    sizes, errs, used, skipped = [], {}, [], []
    for f in fr:
        m = max(1, int(round(f * train_idx.size)))
        if sizes and m <= sizes[-1]:
            continue  # the same size twice adds nothing
        pos = np.arange(train_idx.size) if m >= train_idx.size else stratified_sample(y, m, seed=seed)
        sub = train_idx[pos]
        out = run_fn(sub)
        if out is None:  # run_fn could not train on this fraction: leave the point out
            skipped.append(f)
            continue
        for k, v in out.items():
            errs.setdefault(k, []).append(float(v))
        sizes.append(int(sub.size))
        used.append(f)
    if not sizes:
        raise AdvisorError("no learning-curve point could be trained", "use larger fractions or more data")
    result = {"fractions": used, "n": sizes, "errors": errs, "skipped_fractions": skipped}
    result.update(compare_curves(sizes, errs, current_n=train_idx.size, horizon=horizon))
    return result
