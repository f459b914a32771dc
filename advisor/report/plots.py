"""The report's charts: matplotlib figures returned as inline ``data:image/png;base64`` URIs.

Each function returns ``None`` when there is nothing to draw (the page then says why).
Only the object-oriented API (:class:`matplotlib.figure.Figure`) is used, so no GUI
backend or global pyplot state is involved.
"""

from __future__ import annotations

import base64
import io
import logging
import math
from typing import Any

from advisor import strategies
from advisor.measure.shift import measure_of
from advisor.report.analysis import Importances, best_so_far
from advisor.report.collect import StudyData, TrialRecord
from advisor.report.tables import best_index

#: one colour per registered strategy, in registration order, the same on every chart
PALETTE = ["#4c72b0", "#8172b3", "#dd8452", "#c44e52", "#55a868", "#937860", "#64b5cd", "#da8bc3", "#ccb974"]
_FALLBACK = ["#64b5cd", "#da8bc3", "#8c8c8c", "#ccb974"]
STATE_MARKERS = {"complete": "o", "pruned": "x", "failed": "v"}


def color(strategy: str | None) -> str:
    """The strategy's colour: by its place in the registry, else (unknown names) a hash of the name."""
    names = strategies.names()
    if strategy in names and names.index(strategy) < len(PALETTE):
        return PALETTE[names.index(strategy)]
    return _FALLBACK[sum(map(ord, str(strategy))) % len(_FALLBACK)]


def _quiet_font_cache() -> None:
    """matplotlib builds its font list on first use and saves it under its cache folder; on a full disk or under a
    file-size limit that save fails with a warning on stderr, a second line beside the one error line the command
    prints for the same full disk. The unsaved list is only rebuilt next time, so its warnings are dropped."""
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)


def _figure(width: float = 6.4, height: float = 3.6) -> Any:
    _quiet_font_cache()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig


def to_data_uri(fig: Any) -> str:
    """The figure as a PNG ``data:`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _integer_x(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _nan(v: float | None) -> float:
    return float("nan") if v is None else float(v)


# ------------------------------------------------------------------ profile
def block_chart(profile: Any) -> str | None:
    """The shift per block (bars, as the profile's shift measure labels it) above k-NN accuracy and LogME
    per block (lines); the star marks the block the per-block table stars (:func:`~advisor.report.tables.best_index`)."""
    if profile is None or not profile.blocks:
        return None
    names = [b.name for b in profile.blocks]
    x = list(range(len(names)))
    shift = [_nan(v) for v in profile.block_values("shift")]
    knn = [_nan(v) for v in profile.block_values("knn_accuracy")]
    logme = [_nan(v) for v in profile.block_values("logme")]
    fig = _figure(6.4, 4.6)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1, 1.3])
    top.bar(x, [0 if math.isnan(v) else v for v in shift], color="#8c8c8c")
    measure = measure_of(profile)
    top.set_ylabel(f"{measure.label} (nats)")
    if measure.reason:
        top.text(0.5, 0.5, f"no shift: {measure.reason}", transform=top.transAxes, ha="center", va="center",
                 fontsize=7, wrap=True)
    top.set_title(f"Per block through {profile.model}: shift from the source and transferability", fontsize=9)
    bottom.plot(x, knn, "o-", color="#4c72b0", label="k-NN accuracy")
    bottom.set_ylabel("k-NN accuracy", color="#4c72b0")
    best = best_index(profile)  # the block the tables star: the advice's best block
    if not math.isnan(knn[best]):
        bottom.plot([best], [knn[best]], "*", color="#c44e52", markersize=14, label=f"best block: {names[best]}")
    twin = bottom.twinx()
    twin.plot(x, logme, "s--", color="#dd8452", label="LogME")
    twin.set_ylabel("LogME (nats / sample)", color="#dd8452")
    handles = bottom.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    bottom.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="lower right")
    bottom.set_xticks(x, names, rotation=90, fontsize=7)
    return to_data_uri(fig)


# ------------------------------------------------------------------ search
def _scatter_by_strategy(ax: Any, points: list[tuple[float, float, TrialRecord]]) -> None:
    for strategy in dict.fromkeys(t.strategy for _, _, t in points):
        mine = [(x, y, t) for x, y, t in points if t.strategy == strategy]
        done = [(x, y) for x, y, t in mine if t.state == "complete"]
        pruned = [(x, y) for x, y, t in mine if t.state != "complete"]
        if done:
            ax.scatter(*zip(*done), color=color(strategy), label=str(strategy), s=36, zorder=3)
        if pruned:
            ax.scatter(*zip(*pruned), color=color(strategy), marker="x", s=30, zorder=3,
                       label=f"{strategy} (pruned: last epoch)")


def _value(t: TrialRecord) -> float | None:
    return t.value if t.state == "complete" else t.last_val_accuracy


def depth_chart(study: StudyData) -> str | None:
    """Validation accuracy against k, the number of trainable top blocks (0 = probe)."""
    n = study.n_blocks
    points = [(float(t.depth(n)), _value(t), t) for t in study.trials
              if t.state != "failed" and t.depth(n) is not None and _value(t) is not None]
    if not points:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    _scatter_by_strategy(ax, points)
    ax.set_xlabel("k: trainable top blocks (0 = frozen backbone, probe)" + (f"; {n} = all" if n else ""))
    ax.set_ylabel("validation accuracy")
    ax.set_title("Validation accuracy against freeze depth", fontsize=9)
    ks = sorted({int(x) for x, _, _ in points})
    ax.set_xticks(ks)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return to_data_uri(fig)


def lr_ratio_chart(study: StudyData) -> str | None:
    """Validation accuracy against the backbone / head learning-rate ratio (log x)."""
    points = []
    for t in study.trials:
        r = t.params.get("lr_ratio")
        v = _value(t)
        if t.state != "failed" and isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0 and v is not None:
            points.append((float(r), v, t))
    if not points:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    _scatter_by_strategy(ax, points)
    ax.set_xscale("log")
    ax.set_xlabel("lr_ratio: backbone learning rate / head learning rate (log scale)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Validation accuracy against the learning-rate ratio", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return to_data_uri(fig)


def history_chart(study: StudyData, advised: int | None = None) -> str | None:
    """Each trial's value in order, the best so far as a step line, the advised trial ringed."""
    if not study.trials:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for state, marker in STATE_MARKERS.items():
        mine = [t for t in study.trials if t.state == state]
        pts = [(t.number, _value(t)) for t in mine if _value(t) is not None]
        if state == "failed":
            pts = [(t.number, 0.0) for t in mine]
        if pts:
            label = {"complete": "complete", "pruned": "pruned (last epoch)", "failed": "failed (no value)"}[state]
            ax.scatter(*zip(*pts), marker=marker, s=36, zorder=3, label=label,
                       color={"complete": "#4c72b0", "pruned": "#8c8c8c", "failed": "#c44e52"}[state])
    best = best_so_far(study)
    if best:
        xs = [b[0] for b in best] + [max(t.number for t in study.trials)]
        ys = [b[1] for b in best] + [best[-1][1]]
        ax.step(xs, ys, where="post", color="#55a868", label="best so far")
    adv = study.trial(advised) if advised is not None else None
    if adv is not None and _value(adv) is not None:
        ax.scatter([adv.number], [_value(adv)], s=160, facecolors="none", edgecolors="#dd8452", linewidths=2,
                   zorder=4, label=f"advised configuration (#{adv.number})")
    _integer_x(ax)
    ax.set_xlabel("trial number")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Optimization history", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return to_data_uri(fig)


def importance_chart(imp: Importances) -> str | None:
    """Horizontal bars, most important parameter on top."""
    if imp.reason or not imp.names:
        return None
    fig = _figure(6.4, 0.6 + 0.35 * len(imp.names))
    ax = fig.add_subplot()
    ax.barh(imp.names[::-1], imp.values[::-1], color="#4c72b0")
    ax.set_xlabel("importance (share of the forest's variance reduction)")
    ax.set_title(f"Parameter importances ({imp.n_trials} complete trials)", fontsize=9)
    ax.set_xlim(0, max(imp.values) * 1.1 or 1)
    return to_data_uri(fig)


def curves_chart(study: StudyData, trials: list[TrialRecord], advised: int | None = None) -> str | None:
    """Validation accuracy per epoch of ``trials`` (the top trials, plus the advised one)."""
    drawn = [t for t in trials if t.curve]
    if not drawn:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for t in drawn:
        steps, vals = zip(*t.curve)
        tag = " advised" if t.number == advised else ""
        score = f"{t.value:.3f}" if t.value is not None else t.state
        ax.plot(steps, vals, marker="o", markersize=3, color=color(t.strategy),
                linestyle="--" if tag else "-", alpha=0.9, label=f"#{t.number} {t.strategy}{tag} ({score})")
    _integer_x(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Learning curves of the top trials", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return to_data_uri(fig)
