"""Readable tables for people (rich). Programs read the JSON instead."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from advisor import strategies
from advisor.advise import Advice
from advisor.advise.rules import best_block, best_block_rule
from advisor.measure.profile import Profile
from advisor.measure.shift import measure_of


def _f(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def size_table(profile: Profile) -> Table:
    s = profile.size
    t = Table(title=f"Dataset {profile.dataset}  (fingerprint {profile.fingerprint[:12]})", title_justify="left")
    t.add_column("task")
    t.add_column("samples", justify="right")
    t.add_column("missing", justify="right")
    t.add_column("classes", justify="right")
    t.add_column("per class min / median / max", justify="right")
    t.add_column("imbalance", justify="right")
    for ts in s.tasks:
        role = " (intermediate)" if ts.task == profile.intermediate else " (final)" if ts.task == profile.primary_task and len(s.tasks) > 1 else ""
        t.add_row(ts.task + role, str(ts.n_labelled), str(ts.n_missing), str(ts.n_classes),
                  f"{ts.min_per_class} / {ts.median_per_class:g} / {ts.max_per_class}", f"{ts.imbalance_ratio:.2f}")
    t.caption = (f"{s.n_samples} images, input {'x'.join(map(str, s.input_shape))} (CxHxW); split train/val/test "
                 f"{s.split['train']}/{s.split['val']}/{s.split['test']}; measured {profile.sample_size} "
                 f"training images at {profile.image_size}px through {profile.model} ({profile.weights})")
    return t


def blocks_table(profile: Profile) -> Table:
    task = profile.primary_task
    best = best_block(profile).index
    with_source = any(b.frechet is not None for b in profile.blocks)
    shift = measure_of(profile)
    t = Table(title=f"Per block: shift from the source and transferability for '{task}'", title_justify="left")
    for col, just in [("#", "right"), ("block", "left"), ("ch", "right"), (shift.label, "right"),
                      ("LogME", "right"), ("k-NN acc", "right"), ("ridge probe", "right")]:
        t.add_column(col, justify=just)
    if with_source:
        t.add_column("Frechet", justify="right")
        t.add_column("domain acc", justify="right")
    for b in profile.blocks:
        row = [str(b.index + 1), b.name + (" *" if b.index == best else ""), str(b.channels), _f(b.shift),
               _f(b.logme.get(task)), _f(b.knn_accuracy.get(task)), _f(b.linear_probe_accuracy.get(task))]
        if with_source:
            row += [_f(b.frechet, 1), _f(b.domain_accuracy)]
        t.add_row(*row)
    cap = f"* best block: {best_block_rule()}, as the advice picks it.\n"
    cap += shift.caption
    if profile.source:
        s = profile.source
        cap += (f"\nSource classifier ({s.num_source_classes} classes): LEEP {s.leep:.3f}, NCE {s.nce:.3f}, "
                f"prediction entropy {s.entropy:.3f} nats ({s.entropy_normalised:.2f} of maximum)")
    t.caption = cap
    t.caption_justify = "left"
    return t


def advice_table(advice: Advice) -> Table:
    params = ", ".join(f"{k}={v}" for k, v in advice.params.items())
    t = Table(title=f"Advice: {advice.strategy}" + (f" ({params})" if params else "")
              + f"   confidence {advice.confidence:.2f}", title_justify="left")
    t.add_column("evidence")
    t.add_column("value", justify="right")
    t.add_column("threshold")
    t.add_column("verdict")
    for e in advice.evidence:
        t.add_row(e.name, _f(e.value, 4), e.threshold, e.verdict)
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
    t.caption = "\n".join(lines)
    t.caption_justify = "left"
    return t


def check_table(advice: Advice, profile: Profile) -> Table | None:
    """Every run of the measured check with its validation accuracy, best first; None without a check."""
    chk = advice.check
    if chk is None or not chk.runs:
        return None
    win = chk.winner()
    t = Table(title=f"Measured check: {len(chk.runs)} runs, trained on the training split, scored on "
                    f"{chk.n_val} validation images", title_justify="left")
    for col, just in (("strategy", "left"), ("parameters", "left"), ("val acc", "right"), ("seconds", "right")):
        t.add_column(col, justify=just)
    for r in sorted(chk.runs, key=lambda r: -r.val_accuracy):
        declared = strategies.get(r.strategy) if r.strategy in strategies.names() else None
        p = dict(r.params)
        for k, v in p.items():  # every block parameter by name
            if declared is not None and declared.has(k) and declared.param(k).base == "block" \
                    and isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(profile.blocks):
                p[k] = profile.blocks[v].name
        shown = ", ".join(f"{k}={v}" for k, v in p.items() if k not in ("patience", "batch_size"))
        t.add_row(r.strategy + (" *" if r is win else ""), shown, _f(r.val_accuracy, 4), _f(r.seconds, 1))
    t.caption = f"* the advice (highest validation accuracy; a tie goes to the cheaper run). SE {chk.standard_error():.3f}"
    for r in chk.skipped:
        t.add_row(f"[dim]{r.strategy} (skipped)[/dim]", _params(r.params, r.strategy),
                  "-", f"~{r.estimated_seconds:.0f}")
    if chk.skipped:
        t.caption += f"; skipped: over --check-budget {chk.budget_seconds:g} s (seconds estimated)"
    return t


#: analyze's timing keys in the order the work happens, and what each one is
TIME_STAGES = (("data", "load the dataset"), ("model", "load the model"), ("forward", "forward pass over the sample"),
               ("pass", "the pass's other work (moments, loading images)"), ("source_pass", "source sample pass"),
               ("metrics", "per-block metrics"), ("check", "measured check, in all"), ("advise", "advice, check included"),
               ("total", "total"))


def time_table(analysis) -> Table:
    """Where analyze's time went (``analyze --profile-time``): loading, the pass, the metrics, and the measured
    check's plan, its cache fill and each of its runs."""
    tm = dict(analysis.profile.timings or {})
    t = Table(title="Where the time went", title_justify="left")
    for col, just in (("stage", "left"), ("seconds", "right"), ("share", "right")):
        t.add_column(col, justify=just)
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
                rows.append((f"  {r.strategy} {_params(r.params, r.strategy)}", r.seconds))
    for what, v in rows:
        t.add_row(what, _f(v, 2), f"{100 * v / total:.0f}%" if total == total and total > 0 else "-")
    return t


def make_console(stderr: bool = False) -> Console:
    """A console that stays 120 columns wide when output goes to a file or pipe."""
    c = Console(stderr=stderr)
    if not c.is_terminal:
        c = Console(stderr=stderr, width=120)
    return c


def print_analysis(analysis, console: Console | None = None) -> None:
    console = console or make_console()
    console.print(size_table(analysis.profile))
    console.print(blocks_table(analysis.profile))
    console.print(advice_table(analysis.advice))
    checked = check_table(analysis.advice, analysis.profile)
    if checked is not None:
        console.print(checked)


def print_train_extra(result, console: Console) -> None:
    """The tables of a TrainResult that its strategy declares (``Strategy.tables``): per-task metrics,
    multi_task's separate-model comparison, pipeline against end-to-end with the learning curve."""
    from advisor import strategies

    for renderable in strategies.get(result.strategy).load_tables()(result):
        console.print(renderable)


def per_task_tables(result) -> list:
    """Every metric of every task, when the run has more than the final one."""
    if not result.per_task:
        return []
    t = Table(title="per task", title_justify="left")
    for col in ("task", "metric", "value"):
        t.add_column(col)
    for task, m in result.per_task.items():
        for k, v in m.items():
            t.add_row(task, k, _f(v, 4))
    return [t]


def lora_tables(result) -> list:
    """Where the adapters went, and that merging them changed the logits by rounding only."""
    ex = result.extra or {}
    t = Table(title="lora adapters (merged into the weights)", title_justify="left")
    for col in ("adapted layers", "blocks", "largest logit change by the merge", "largest logit"):
        t.add_column(col, justify="right" if col != "blocks" else "left")
    blocks = ex.get("adapted_blocks") or []
    shown = ", ".join(blocks) if len(blocks) <= 6 else f"{blocks[0]} .. {blocks[-1]} ({len(blocks)})"
    t.add_row(_f(ex.get("adapted_layers")), shown, f"{ex.get('merge_max_abs_diff', float('nan')):.2e}",
              _f(ex.get("merge_logit_scale"), 3))
    return [t, *per_task_tables(result)]


def auto_rgn_tables(result) -> list:
    """Auto-RGN's mean rate scale per block (and head): which layers it let move."""
    scales = (result.extra or {}).get("rgn_mean_scale") or {}
    if not scales:
        return per_task_tables(result)
    t = Table(title="Auto-RGN: mean rate scale (|g|/|w| over the largest) per block", title_justify="left")
    for col in ("group", "mean scale"):
        t.add_column(col, justify="left" if col == "group" else "right")
    for name, v in scales.items():
        t.add_row(name, _f(v, 4))
    return [t, *per_task_tables(result)]


def multi_task_tables(result) -> list:
    """The verdict on sharing is a choice, so it is shown on validation; test is the final number, once."""
    ex = result.extra or {}
    sep = ex.get("separate", {})
    t = Table(title="multi-task against one model per task (validation accuracy)", title_justify="left")
    for col in ("task", "shared model", "separate model", "difference", "better", "labelled train items"):
        t.add_column(col, justify="left" if col in ("task", "better") else "right")
    for task, m in result.per_task.items():
        alone = sep.get(task, {}).get("val_accuracy")
        diff = ex.get("multi_minus_separate", {}).get(task)
        better = "-" if diff is None else "shared" if diff > 0 else "separate" if diff < 0 else "tie"
        t.add_row(task, _f(m.get("val_accuracy"), 4), _f(alone, 4),
                  "-" if diff is None else f"{diff * 100:+.1f} pt", better, _f(m.get("n_train_labelled")))
    t.caption = ("test accuracy of the shared model (evaluated once, not compared): "
                 + ", ".join(f"{task} {_f(m.get('test_accuracy'), 4)}" for task, m in result.per_task.items()))
    t.caption_justify = "left"
    return [t]


def pipeline_tables(result) -> list:
    """Pipeline against end-to-end (test only for the winner chosen on validation), and the learning curve."""
    ex = result.extra or {}
    t = Table(title=f"pipeline (x -> {ex.get('intermediate')} -> {ex.get('final')}) against end-to-end "
                    f"(x -> {ex.get('final')}); winner: {ex.get('winner')}", title_justify="left")
    for col in ("approach", "val accuracy", "test accuracy", "test macro-F1", "trainable parameters", "seconds"):
        t.add_column(col, justify="left" if col == "approach" else "right")
    for name in ("pipeline", "end_to_end"):
        r = ex.get(name, {})
        won = name == ex.get("winner")  # chosen on validation; only the winner's test number is reported
        t.add_row(name, _f(r.get("val_accuracy"), 4), _f(r.get("test_accuracy"), 4) if won else "-",
                  _f(r.get("test_macro_f1"), 4) if won else "-", f"{r.get('trainable_params', 0):,}",
                  _f(r.get("seconds"), 1))
    t.caption = "the winner has the higher validation accuracy; the test split reports its final number only"
    t.caption_justify = "left"
    out: list = [t]
    curve = ex.get("learning_curve")
    if curve:
        pe = curve.get("predicted_error", {})
        c = Table(title=f"learning curve ({curve.get('error', 'validation error')}), power-law fits",
                  title_justify="left")
        for col in ("approach", "now", "2x data", "10x data"):
            c.add_column(col, justify="left" if col == "approach" else "right")
        for name in ("pipeline", "end_to_end"):
            e = pe.get(name, {})
            c.add_row(name, *(_f(e.get(k), 4) for k in ("now", "2x", "10x")))
        out.append(c)
        changes = curve.get("more_data_changes_winner")
        out.append(f"more data {'would' if changes else 'would not'} change the winner"
                   + (f" (curves cross near n={curve['crossing_n']:.0f})" if curve.get("crossing_n") else ""))
    return out


def print_search(result, console: Console) -> None:
    """The study in three tables: counts, the best trial against the advised one, the top trials."""
    t = Table(title=f"Study {result.study_name}", title_justify="left")
    for col in ("trials", "complete", "pruned", "failed", "from the check", "resumed with", "retried", "wall time"):
        t.add_column(col, justify="right")
    t.add_row(str(result.n_trials), str(result.n_complete), str(result.n_pruned), str(result.n_failed),
              str(getattr(result, "from_check", 0)), str(result.resumed_from),
              ", ".join(map(str, result.retried)) or "-", f"{result.wall_time:.0f} s")
    if getattr(result, "from_check", 0):
        t.caption = ("from the check: runs analyze's measured check made on this split, added to the study as "
                     "finished trials and not trained again")
    console.print(t)
    timings = getattr(result, "timings", None) or {}
    if timings:
        words = {"load": "loading", "analyze": "analyze", "analyze_check": "its check", "stores": "stores and study",
                 "trials": "trials", "reconcile_runs": "MLflow runs", "refit": "refit", "log_best": "best model logged"}
        parts = [f"{words[k]} {v:.1f} s" for k, v in timings.items() if k in words]
        cache = getattr(result, "cache_stats", None)
        console.print("time: " + ", ".join(parts) + (f"; cache: {cache.get('computed', 0)} items computed, "
                                                      f"{cache.get('served', 0)} served" if cache else ""))
    if getattr(result, "check_not_reused", None):
        console.print(f"the measured check's runs were not reused: {result.check_not_reused}")
    b = Table(title="Best trial and the advised configuration", title_justify="left")
    for col in ("", "trial", "strategy", "validation accuracy", "test accuracy", "parameters"):
        b.add_column(col, justify="right" if col in ("trial", "validation accuracy", "test accuracy") else "left")
    if result.best_trial is not None:
        b.add_row("best", str(result.best_trial), result.best_strategy or "-", _f(result.best_value, 4),
                  _f(result.test_accuracy, 4), _params(result.best_params, result.best_strategy))
    if result.advice_trial is not None:
        adv = next((tr for tr in result.trials if tr["number"] == result.advice_trial), {})
        b.add_row("advised", str(result.advice_trial), adv.get("strategy") or result.advice_strategy or "-",
                  _f(result.advice_value, 4), "-",
                  _params(adv.get("params") or {}, adv.get("strategy") or result.advice_strategy))
    console.print(b)
    done = sorted((tr for tr in result.trials if tr["state"] == "complete" and tr["value"] is not None),
                  key=lambda tr: -tr["value"])[:5]
    if done:
        top = Table(title="Top trials", title_justify="left")
        for col in ("trial", "strategy", "validation accuracy", "epochs", "seconds", "parameters"):
            top.add_column(col, justify="left" if col in ("strategy", "parameters") else "right")
        for tr in done:
            top.add_row(str(tr["number"]) + (" (check)" if tr.get("from_check") else ""), tr["strategy"] or "-",
                        _f(tr["value"], 4), str(tr["epochs"]),
                        _f(tr["wall_time"], 1), _params(tr["params"], tr["strategy"]))
        console.print(top)
    failed = [tr for tr in result.trials if tr["state"] == "fail" and tr.get("fail_reason")]
    for tr in failed[:5]:
        console.print(f"trial {tr['number']} failed: {tr['fail_reason']}")
    console.print(f"storage {result.storage}; MLflow {result.tracking_uri}, experiment {result.experiment!r}, "
                  f"parent run {result.parent_run_id}")


def _params(p: dict, strategy: str | None = None) -> str:
    """The registered strategy parameters in ``p``, in the registry's order, leaving out those at their
    declared default for ``strategy`` (a trial lists every value its space fixed)."""
    from advisor import strategies

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


def print_prediction(pred, console: Console | None = None, k: int = 3, show_rows: bool = True,
                     max_rows: int = 20) -> None:
    """``advisor predict``'s tables: the first rows (when no --out), metrics, per-class table, confusion matrix."""
    from advisor.deploy.predict import prediction_table

    console = console or make_console()
    console.print(f"{len(pred.items)} images predicted with {pred.model} in {pred.wall_time:.1f} s "
                  f"({pred.images_per_second:.0f} images/s)" + (f"; {len(pred.failures)} unreadable, skipped"
                                                                 if pred.failures else ""), markup=False)
    if show_rows and pred.items:
        cols = prediction_table(pred, k)
        tab = Table(title=f"predictions (first {min(max_rows, len(pred.items))} of {len(pred.items)}; "
                          f"--out PATH writes all)", title_justify="left")
        for name in cols:
            tab.add_column(name, overflow="fold")
        for row in list(zip(*cols.values()))[:max_rows]:
            tab.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row])
        console.print(tab)
    m = pred.metrics
    if m is None:
        if getattr(pred, "metrics_note", None):  # labelled, but with no class the model knows
            console.print(pred.metrics_note, markup=False)
        return
    console.print(f"accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f} on {m['n']} labelled images"
                  + (f"; labels the model does not know (counted wrong): {', '.join(m['unknown_labels'])}"
                     if m["unknown_labels"] else ""), markup=False)
    tab = Table(title="per class", title_justify="left")
    for col in ("class", "precision", "recall", "F1", "support"):
        tab.add_column(col, justify="left" if col == "class" else "right")
    for r in m["per_class"]:
        tab.add_row(r["class"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}", str(r["support"]))
    console.print(tab)
    conf = m["confusion"]
    tab = Table(title="confusion matrix (rows: true class, columns: predicted)", title_justify="left")
    tab.add_column("true \\ predicted")
    for c in conf["classes"]:
        tab.add_column(c, justify="right")
    for c, row in zip(conf["classes"], conf["matrix"]):
        tab.add_row(c, *[str(v) for v in row])
    console.print(tab)
