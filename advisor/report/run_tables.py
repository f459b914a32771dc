"""The tables of a trained run, a search, a prediction, the activation cache and a written report, built
once as view-model :class:`~advisor.report.view.Table`\\ s (lines of text beside them as strings).

A strategy names its own view function here (``Strategy.tables``, ``"module:function"``,
``f(result) -> [Table | str]``); the terminal (:mod:`advisor.report.terminal`), HTML and Markdown
renderers all draw what it returns.
"""

from __future__ import annotations

import time

from advisor.report.tables import strategy_params
from advisor.report.view import Table, View, fmt_acc, fmt_num


# ------------------------------------------------------------------ advisor train
def train_table(result, title: str) -> Table:
    """Validation and test accuracy and macro-F1 of one run."""
    return Table(headers=["split", "accuracy", "macro-F1"], title=title, css_id="train-table",
                 rows=[["validation", f"{result.val_accuracy:.4f}", f"{result.val_macro_f1:.4f}"],
                       ["test", f"{result.test_accuracy:.4f}", f"{result.test_macro_f1:.4f}"]])


def strategy_view(result) -> View:
    """The tables of a TrainResult that its strategy declares (``Strategy.tables``)."""
    from advisor import strategies

    return list(strategies.get(result.strategy).load_tables()(result))


def per_task_tables(result) -> View:
    """Every metric of every task, when the run has more than the final one."""
    if not result.per_task:
        return []
    return [Table(headers=["task", "metric", "value"], title="per task", align="lll", css_id="per-task-table",
                  rows=[[task, k, fmt_num(v, 4, fixed=True)] for task, m in result.per_task.items()
                        for k, v in m.items()])]


def lora_tables(result) -> View:
    """Where the adapters went, and that merging them changed the logits by rounding only."""
    ex = result.extra or {}
    blocks = ex.get("adapted_blocks") or []
    shown = ", ".join(blocks) if len(blocks) <= 6 else f"{blocks[0]} .. {blocks[-1]} ({len(blocks)})"
    t = Table(headers=["adapted layers", "blocks", "largest logit change by the merge", "largest logit"],
              title="lora adapters (merged into the weights)", align="rlrr", css_id="lora-table",
              rows=[[fmt_num(ex.get("adapted_layers"), fixed=True), shown, f"{ex.get('merge_max_abs_diff', float('nan')):.2e}",
                     fmt_num(ex.get("merge_logit_scale"), 3, fixed=True)]])
    return [t, *per_task_tables(result)]


def auto_rgn_tables(result) -> View:
    """Auto-RGN's mean rate scale per block (and head): which layers it let move."""
    scales = (result.extra or {}).get("rgn_mean_scale") or {}
    if not scales:
        return per_task_tables(result)
    t = Table(headers=["group", "mean scale"], title="Auto-RGN: mean rate scale (|g|/|w| over the largest) per block",
              css_id="rgn-table", rows=[[name, fmt_num(v, 4, fixed=True)] for name, v in scales.items()])
    return [t, *per_task_tables(result)]


def multi_task_tables(result) -> View:
    """The verdict on sharing is a choice, so it is shown on validation; test is the final number, once."""
    ex = result.extra or {}
    sep = ex.get("separate", {})
    rows = []
    for task, m in result.per_task.items():
        alone = sep.get(task, {}).get("val_accuracy")
        diff = ex.get("multi_minus_separate", {}).get(task)
        better = "-" if diff is None else "shared" if diff > 0 else "separate" if diff < 0 else "tie"
        rows.append([task, fmt_num(m.get("val_accuracy"), 4, fixed=True), fmt_num(alone, 4, fixed=True),
                     "-" if diff is None else f"{diff * 100:+.1f} pt", better,
                     fmt_num(m.get("n_train_labelled"), fixed=True)])
    return [Table(headers=["task", "shared model", "separate model", "difference", "better", "labelled train items"],
                  rows=rows, title="multi-task against one model per task (validation accuracy)", align="lrrrlr",
                  css_id="multi-task-table",
                  caption="test accuracy of the shared model (evaluated once, not compared): " + ", ".join(
                      f"{task} {fmt_num(m.get('test_accuracy'), 4, fixed=True)}" for task, m in result.per_task.items()))]


def pipeline_tables(result) -> View:
    """Pipeline against end-to-end (test only for the winner chosen on validation), and the learning curve."""
    ex = result.extra or {}
    rows = []
    for name in ("pipeline", "end_to_end"):
        r = ex.get(name, {})
        won = name == ex.get("winner")  # chosen on validation; only the winner's test number is reported
        rows.append([name, fmt_num(r.get("val_accuracy"), 4, fixed=True),
                     fmt_num(r.get("test_accuracy"), 4, fixed=True) if won else "-",
                     fmt_num(r.get("test_macro_f1"), 4, fixed=True) if won else "-",
                     f"{r.get('trainable_params', 0):,}", fmt_num(r.get("seconds"), 1, fixed=True)])
    out: View = [Table(
        headers=["approach", "val accuracy", "test accuracy", "test macro-F1", "trainable parameters", "seconds"],
        rows=rows, css_id="pipeline-table",
        title=f"pipeline (x -> {ex.get('intermediate')} -> {ex.get('final')}) against end-to-end "
              f"(x -> {ex.get('final')}); winner: {ex.get('winner')}",
        caption="the winner has the higher validation accuracy; the test split reports its final number only")]
    curve = ex.get("learning_curve")
    if curve:
        pe = curve.get("predicted_error", {})
        out.append(Table(headers=["approach", "now", "2x data", "10x data"], css_id="curve-table",
                         title=f"learning curve ({curve.get('error', 'validation error')}), power-law fits",
                         rows=[[name, *(fmt_num(pe.get(name, {}).get(k), 4, fixed=True) for k in ("now", "2x", "10x"))]
                               for name in ("pipeline", "end_to_end")]))
        changes = curve.get("more_data_changes_winner")
        out.append(f"more data {'would' if changes else 'would not'} change the winner"
                   + (f" (curves cross near n={curve['crossing_n']:.0f})" if curve.get("crossing_n") else ""))
    return out


# ------------------------------------------------------------------ advisor search
_TIME_WORDS = {"load": "loading", "analyze": "analyze", "analyze_check": "its check", "stores": "stores and study",
               "trials": "trials", "reconcile_runs": "MLflow runs", "refit": "refit", "log_best": "best model logged"}


def search_view(result) -> View:
    """The study in three tables: counts, the best trial against the advised one, the top trials."""
    out: View = [Table(
        headers=["trials", "complete", "pruned", "failed", "from the check", "resumed with", "retried", "wall time"],
        title=f"Study {result.study_name}", align="r" * 8, centre_caption=True, css_id="study-table",
        rows=[[str(result.n_trials), str(result.n_complete), str(result.n_pruned), str(result.n_failed),
               str(getattr(result, "from_check", 0)), str(result.resumed_from),
               ", ".join(map(str, result.retried)) or "-", f"{result.wall_time:.0f} s"]],
        caption="from the check: runs analyze's measured check made on this split, added to the study as finished "
                "trials and not trained again" if getattr(result, "from_check", 0) else "")]
    timings = getattr(result, "timings", None) or {}
    if timings:
        parts = [f"{_TIME_WORDS[k]} {v:.1f} s" for k, v in timings.items() if k in _TIME_WORDS]
        cache = getattr(result, "cache_stats", None)
        out.append("time: " + ", ".join(parts) + (f"; cache: {cache.get('computed', 0)} items computed, "
                                                  f"{cache.get('served', 0)} served" if cache else ""))
    if getattr(result, "check_not_reused", None):
        out.append(f"the measured check's runs were not reused: {result.check_not_reused}")
    rows = []
    if result.best_trial is not None:
        rows.append(["best", str(result.best_trial), result.best_strategy or "-", fmt_num(result.best_value, 4, fixed=True),
                     fmt_num(result.test_accuracy, 4, fixed=True), strategy_params(result.best_params, result.best_strategy)])
    if result.advice_trial is not None:
        adv = next((tr for tr in result.trials if tr["number"] == result.advice_trial), {})
        rows.append(["advised", str(result.advice_trial), adv.get("strategy") or result.advice_strategy or "-",
                     fmt_num(result.advice_value, 4, fixed=True), "-",
                     strategy_params(adv.get("params") or {}, adv.get("strategy") or result.advice_strategy)])
    out.append(Table(headers=["", "trial", "strategy", "validation accuracy", "test accuracy", "parameters"],
                     rows=rows, title="Best trial and the advised configuration", align="lrlrrl", css_id="best-table"))
    done = sorted((tr for tr in result.trials if tr["state"] == "complete" and tr["value"] is not None),
                  key=lambda tr: -tr["value"])[:5]
    if done:
        out.append(Table(
            headers=["trial", "strategy", "validation accuracy", "epochs", "seconds", "parameters"],
            title="Top trials", align="rlrrrl", css_id="top-table",
            rows=[[str(tr["number"]) + (" (check)" if tr.get("from_check") else ""), tr["strategy"] or "-",
                   fmt_num(tr["value"], 4, fixed=True), str(tr["epochs"]), fmt_num(tr["wall_time"], 1, fixed=True),
                   strategy_params(tr["params"], tr["strategy"])] for tr in done]))
    failed = [tr for tr in result.trials if tr["state"] == "fail" and tr.get("fail_reason")]
    out += [f"trial {tr['number']} failed: {tr['fail_reason']}" for tr in failed[:5]]
    out.append(f"storage {result.storage}; MLflow {result.tracking_uri}, experiment {result.experiment!r}, "
               f"parent run {result.parent_run_id}")
    return out


# ------------------------------------------------------------------ advisor predict
def prediction_view(pred, k: int = 3, show_rows: bool = True, max_rows: int = 20) -> View:
    """``advisor predict``'s view: what ran, the first rows (when ``show_rows``), the metrics, the per-class
    table and the confusion matrix."""
    from advisor.deploy.predict import prediction_table

    out: View = [f"{len(pred.items)} images predicted with {pred.model} in {pred.wall_time:.1f} s "
                 f"({pred.images_per_second:.0f} images/s)" + (f"; {len(pred.failures)} unreadable, skipped"
                                                              if pred.failures else "")]
    if show_rows and pred.items:
        cols = prediction_table(pred, k)
        out.append(Table(headers=list(cols), align="l" * len(cols), fold=True, css_id="predictions-table",
                         title=f"predictions (first {min(max_rows, len(pred.items))} of {len(pred.items)}; "
                               f"--out PATH writes all)",
                         rows=[[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row]
                               for row in list(zip(*cols.values()))[:max_rows]]))
    m = pred.metrics
    if m is None:  # unlabelled, or labelled with no class the model knows (the note says so)
        return out + ([pred.metrics_note] if getattr(pred, "metrics_note", None) else [])
    out.append(f"accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f} on {m['n']} labelled images"
               + (f"; labels the model does not know (counted wrong): {', '.join(m['unknown_labels'])}"
                  if m["unknown_labels"] else ""))
    out.append(Table(headers=["class", "precision", "recall", "F1", "support"], title="per class",
                     css_id="per-class-metrics",
                     rows=[[r["class"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}",
                            str(r["support"])] for r in m["per_class"]]))
    conf = m["confusion"]
    out.append(Table(headers=["true \\ predicted", *conf["classes"]], css_id="confusion-table",
                     title="confusion matrix (rows: true class, columns: predicted)",
                     rows=[[c, *[str(v) for v in row]] for c, row in zip(conf["classes"], conf["matrix"])]))
    return out


# ------------------------------------------------------------------ advisor cache info, advisor report
def cache_table(entries: list[dict], size) -> Table:
    """The cache's entries, most recently used first; ``size(bytes) -> str``."""
    headers = ["key", "kind", "block", "backbone", "dataset", "device", "rows done", "size", "last used"]
    rows = []
    for e in reversed(entries):  # most recently used first
        done = "?" if e.get("rows_done") is None else f"{e['rows_done']}/{e['items']}"
        kind = f"boundary {e['boundary']}" if e["kind"] == "boundary" else e["kind"] or "?"
        rows.append([e["key"][:12], kind, e["block"] or "?", e["backbone"] or "?", e["dataset"] or "?",
                     e["device"] or "?", done, size(e["bytes"]), time.strftime("%m-%d %H:%M", time.localtime(e["last_used"]))])
    return Table(headers=headers, rows=rows, align="llllllrrl", fold=True, bare=True, css_id="cache-table",
                 no_wrap=tuple(i for i, h in enumerate(headers) if h not in ("backbone", "dataset")))


def report_summary(studies) -> Table:
    """One row per study of a written report: counts, the best and advised strategies, and their agreement."""
    from advisor.report.analysis import agreement

    rows = []
    for study in studies:
        c, a, best = study.counts(), agreement(study), study.best()
        rows.append([study.experiment, study.study_name, str(c["complete"]), str(c["pruned"]), str(c["failed"]),
                     best.strategy if best else "-", fmt_acc(study.best_val_accuracy), fmt_acc(study.test_accuracy),
                     a.advised_strategy or "-", "-" if a.agrees is None else "yes" if a.agrees else "no"])
    return Table(headers=["experiment", "study", "complete", "pruned", "failed", "best strategy", "best val acc",
                          "test acc", "advised", "agrees"], rows=rows, title="advisor report", align="llrrrlrrll",
                 fold=True, css_id="report-table")
