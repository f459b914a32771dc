"""The tables of an analysis, built once as view-model :class:`~advisor.report.view.Table`\\ s: the dataset's
size, the per-block table, the advice's evidence, the measured check and where the time went.

``advisor analyze`` prints them (:mod:`advisor.report.terminal`) and ``advisor report`` lays the first three
out in HTML and Markdown (:mod:`advisor.report.content`); the per-block table stars the block
:func:`advisor.advise.rules.best_block` picks, the one the advice names, and so does the report's chart.
"""

from __future__ import annotations

from advisor import strategies
from advisor.advise import Advice
from advisor.advise.rules import best_block, best_block_rule
from advisor.measure.profile import Profile
from advisor.measure.shift import measure_of
from advisor.report.view import Table, fmt_num


def best_index(profile: Profile) -> int:
    """The index of the starred block (the advice's best block); -1 without blocks."""
    return best_block(profile).index if profile.blocks else -1


def size_table(profile: Profile) -> Table:
    """Per task: samples, missing labels, classes, per-class counts and imbalance."""
    s = profile.size
    rows = []
    for ts in s.tasks:
        role = " (intermediate)" if ts.task == profile.intermediate else \
            " (final)" if ts.task == profile.primary_task and len(s.tasks) > 1 else ""
        rows.append([ts.task + role, str(ts.n_labelled), str(ts.n_missing), str(ts.n_classes),
                     f"{ts.min_per_class} / {ts.median_per_class:g} / {ts.max_per_class}", f"{ts.imbalance_ratio:.2f}"])
    return Table(headers=["task", "samples", "missing", "classes", "per class min / median / max", "imbalance"],
                 rows=rows, title=f"Dataset {profile.dataset}  (fingerprint {profile.fingerprint[:12]})",
                 css_id="size-table", centre_caption=True,
                 caption=f"{s.n_samples} images, input {'x'.join(map(str, s.input_shape))} (CxHxW); split "
                         f"train/val/test {s.split.get('train')}/{s.split.get('val')}/{s.split.get('test')}; measured "
                         f"{profile.sample_size} training images at {profile.image_size}px through {profile.model} "
                         f"({profile.weights})")


def blocks_table(profile: Profile) -> Table:
    """The per-block table: shift from the source and transferability of the primary task, block by block;
    the starred block is the advice's best block."""
    task = profile.primary_task
    best = best_index(profile)
    with_source = any(b.frechet is not None for b in profile.blocks)
    shift = measure_of(profile)
    headers = ["#", "block", "ch", shift.label, "LogME", "k-NN acc", "ridge probe"]
    if with_source:
        headers += ["Frechet", "domain acc"]
    rows = []
    for b in profile.blocks:
        row = [str(b.index + 1), b.name + (" *" if b.index == best else ""), str(b.channels), fmt_num(b.shift),
               fmt_num(b.logme.get(task)), fmt_num(b.knn_accuracy.get(task)), fmt_num(b.linear_probe_accuracy.get(task))]
        if with_source:
            row += [fmt_num(b.frechet, 1, fixed=True), fmt_num(b.domain_accuracy)]
        rows.append(row)
    cap = f"* best block: {best_block_rule()}, as the advice picks it.\n{shift.caption}\nLogME: log evidence per sample."
    if profile.source:
        s = profile.source
        cap += (f"\nSource classifier ({s.num_source_classes} classes): LEEP {s.leep:.3f}, NCE {s.nce:.3f}, "
                f"prediction entropy {s.entropy:.3f} nats ({s.entropy_normalised:.2f} of maximum)")
    return Table(headers=headers, rows=rows, align="rl" + "r" * (len(headers) - 2), css_id="blocks-table",
                 title=f"Per block: shift from the source and transferability for '{task}'", caption=cap)


def evidence_table(advice: Advice, title: str = "Evidence", caption: str = "") -> Table:
    """The evidence that decided the advice: value, threshold, verdict."""
    return Table(headers=["evidence", "value", "threshold", "verdict"], align="lrll", css_id="evidence-table",
                 rows=[[e.name, fmt_num(e.value, 4), e.threshold, e.verdict] for e in advice.evidence],
                 title=title, caption=caption)


def advice_table(advice: Advice) -> Table:
    """The evidence under the advice's headline, its reasons, alternatives and search space as the caption."""
    params = ", ".join(f"{k}={v}" for k, v in advice.params.items())
    lines = [advice.summary] + [f"- {r}" for r in advice.reasons] + [f"note: {n}" for n in advice.notes]
    alts = "; ".join(
        f"{i}. {a.strategy}" + (f" ({', '.join(f'{k}={v}' for k, v in a.params.items())})" if a.params else "") + f": {a.why}"
        for i, a in enumerate(advice.alternatives, 1))
    lines.append(f"alternatives: {alts}")
    sp = advice.search_space
    lines.append(f"search space: trainable blocks {sp.trainable_blocks[0]}..{sp.trainable_blocks[1]} of {sp.n_blocks}, "
                 f"head lr {sp.head_lr[0]:g}..{sp.head_lr[1]:g}, backbone/head lr ratio {sp.lr_ratio[0]:g}..{sp.lr_ratio[1]:g}, "
                 f"layer decay {sp.layer_decay[0]:g}..{sp.layer_decay[1]:g}, warm-up {sp.warmup}"
                 + (f", probe blocks {', '.join(sp.probe_blocks)}" if sp.probe_blocks else ""))
    return evidence_table(advice, f"Advice: {advice.strategy}" + (f" ({params})" if params else "")
                          + f"   confidence {advice.confidence:.2f}", "\n".join(lines))


def strategy_params(p: dict, strategy: str | None = None) -> str:
    """The registered strategy parameters in ``p``, in the registry's order, leaving out those at their
    declared default for ``strategy`` (a trial lists every value its space fixed)."""
    order: dict[str, object] = {}
    known = [strategies.get(strategy)] if strategy in strategies.names() else []
    for s in known + list(strategies.all_strategies()):
        for param in s.params:
            order.setdefault(param.name, param.default)
    parts = []
    for k, default in order.items():
        if k in p and not (p[k] == default and type(p[k]) is type(default)):
            v = p[k]
            parts.append(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts)


def check_table(advice: Advice, profile: Profile) -> Table | None:
    """Every run of the measured check with its validation accuracy, best first; None without a check."""
    chk = advice.check
    if chk is None or not chk.runs:
        return None
    win = chk.winner()
    rows = []
    for r in sorted(chk.runs, key=lambda r: -r.val_accuracy):
        declared = strategies.get(r.strategy) if r.strategy in strategies.names() else None
        p = dict(r.params)
        for k, v in p.items():  # every block parameter by name
            if declared is not None and declared.has(k) and declared.param(k).base == "block" \
                    and isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(profile.blocks):
                p[k] = profile.blocks[v].name
        shown = ", ".join(f"{k}={v}" for k, v in p.items() if k not in ("patience", "batch_size"))
        stopped = f" (stopped after epoch {r.stopped_at})" if r.stopped_at else ""
        rows.append([r.strategy + (" *" if r is win else "") + stopped, shown,
                     fmt_num(r.val_accuracy, 4, fixed=True), fmt_num(r.seconds, 1, fixed=True)])
    caption = f"* the advice (highest validation accuracy; a tie goes to the cheaper run). SE {chk.standard_error():.3f}"
    if any(r.stopped_at for r in chk.runs):
        caption += ("; stopped: more than 2 SE below the best probe after a quarter of its epochs (--check-rung), "
                    "its best validation accuracy by then")
    muted = tuple(range(len(rows), len(rows) + len(chk.skipped)))
    rows += [[f"{r.strategy} (skipped)", strategy_params(r.params, r.strategy), "-", f"~{r.estimated_seconds:.0f}"]
             for r in chk.skipped]
    if chk.skipped:
        caption += f"; skipped: over --check-budget {chk.budget_seconds:g} s (seconds estimated)"
    return Table(headers=["strategy", "parameters", "val acc", "seconds"], rows=rows, align="llrr", caption=caption,
                 title=f"Measured check: {len(chk.runs)} runs, trained on the training split, scored on "
                       f"{chk.n_val} validation images", css_id="check-table", centre_caption=True, muted=muted)


#: analyze's timing keys in the order the work happens, and what each one is
TIME_STAGES = (("data", "load the dataset"), ("model", "load the model"), ("forward", "forward pass over the sample"),
               ("pass", "the pass's other work (moments, loading images)"), ("source_pass", "source sample pass"),
               ("metrics", "per-block metrics"), ("check", "measured check, in all"), ("advise", "advice, check included"),
               ("total", "total"))


def time_table(analysis) -> Table:
    """Where analyze's time went (``analyze --profile-time``): loading, the pass, the metrics, and the measured
    check's plan, its cache fill and each of its runs."""
    tm = dict(analysis.profile.timings or {})
    total = tm.get("total") or float("nan")
    rows = []
    for key, what in TIME_STAGES:
        if key not in tm:
            continue
        v = tm[key] - tm.get("forward", 0.0) if key == "pass" else tm[key]
        rows.append((what, v))
        chk = analysis.advice.check
        if key == "check" and chk is not None:
            rows.append(("  estimating the check's cost (timed steps)", chk.plan_seconds))
            rows.append(("  its one pass over training and validation images", chk.fill_seconds))
            for r in chk.runs:
                rows.append((f"  {r.strategy} {strategy_params(r.params, r.strategy)}", r.seconds))
    return Table(headers=["stage", "seconds", "share"], title="Where the time went", css_id="time-table",
                 rows=[[what, fmt_num(v, 2, fixed=True), f"{100 * v / total:.0f}%" if total == total and total > 0
                        else "-"] for what, v in rows])


def analysis_view(analysis) -> list[Table]:
    """``advisor analyze``'s tables: size, per block, advice, and the measured check when it ran."""
    checked = check_table(analysis.advice, analysis.profile)
    return [size_table(analysis.profile), blocks_table(analysis.profile), advice_table(analysis.advice),
            *([checked] if checked is not None else [])]
