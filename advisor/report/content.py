"""The report as renderer-neutral content: sections of tables, paragraphs and figures.

:func:`build_content` turns studies into a :class:`Report` of view-model blocks
(:mod:`advisor.report.view`; the analysis tables are :mod:`advisor.report.tables`, the same ones
``advisor analyze`` prints); :mod:`advisor.report.html` and :mod:`advisor.report.markdown` only lay it
out, so both show the same numbers, formatted once in :mod:`advisor.report.view`.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from advisor.report import analysis, plots
from advisor.report.collect import StudyData, TrialRecord
from advisor.report.tables import blocks_table, evidence_table, size_table
from advisor.report.view import (Block, Figure, Table, fmt_acc, fmt_int, fmt_num, fmt_params, fmt_points,
                                 fmt_seconds)
from advisor.track.names import (ADVICE_STRATEGY_TAG, DEVICE_TAG, FINGERPRINT_TAG, IMAGE_SIZE_TAG, SEED_TAG,
                                 SPLIT_TAG, STORAGE_TAG, STRATEGY_KEY)

__all__ = ["Block", "Figure", "Report", "Section", "Table", "build_content", "train_command"]


@dataclass
class Section:
    key: str
    title: str
    intro: str = ""
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Report:
    title: str
    generated: str
    tracking_uri: str
    studies: list[StudyData]
    summary: Table
    sections: list[Section]


# ------------------------------------------------------------------ summary
def summary_table(studies: list[StudyData]) -> Table:
    """One column per study: what ran and how it went."""
    rows: list[list[str]] = []

    def add(name: str, values: list[str]) -> None:
        rows.append([name, *values])

    agree = [analysis.agreement(s) for s in studies]
    counts = [s.counts() for s in studies]
    best = [s.best() for s in studies]
    add("experiment", [s.experiment for s in studies])
    add("study", [s.study_name for s in studies])
    add("dataset", [s.dataset for s in studies])
    add("model", [s.model for s in studies])
    add("image size", [s.tags.get(IMAGE_SIZE_TAG, "-") for s in studies])
    add("device", [s.tags.get(DEVICE_TAG, "-") for s in studies])
    add("trials complete / pruned / failed", [f"{c['complete']} / {c['pruned']} / {c['failed']}" for c in counts])
    add("best trial", [str(b.number) if b else "-" for b in best])
    add("best strategy", [b.strategy or "-" if b else "-" for b in best])
    add("best validation accuracy", [fmt_acc(s.best_val_accuracy) for s in studies])
    add("test accuracy (best trial)", [fmt_acc(s.test_accuracy) for s in studies])
    add("test macro-F1 (best trial)", [fmt_acc(s.test_macro_f1) for s in studies])
    add("advised strategy", [a.advised_strategy or "- (no analyze)" for a in agree])
    add("agreed with the advice", ["-" if a.agrees is None else "yes" if a.agrees else "no" for a in agree])
    add("best minus advised", [fmt_points(a.gain_points) for a in agree])
    add("total trial time", [fmt_seconds(sum(t.wall_time or 0.0 for t in s.trials)) for s in studies])
    add("parent run status", [s.status for s in studies])
    return Table(headers=["", *[s.label for s in studies]], rows=rows, css_id="summary-table",
                 align="l" * (len(studies) + 1))


# ------------------------------------------------------------------ per-study blocks
def _agreement_block(study: StudyData) -> Block:
    a = analysis.agreement(study)
    block = Block(study.label, paragraphs=[a.sentence])
    if a.has_advice:
        adv = study.trial(a.advised_trial)
        best = study.trial(a.best_trial)
        block.tables.append(Table(
            headers=["", "trial", "strategy", "validation accuracy", "parameters"], align="lrlrl",
            css_id="agreement-table",
            rows=[["advised", str(a.advised_trial) if adv else "not run", a.advised_strategy or "-",
                   fmt_acc(a.advised_value), fmt_params(adv.params) if adv else fmt_params(_advice_params(study))],
                  ["best", str(a.best_trial), a.best_strategy or "-", fmt_acc(a.best_value),
                   fmt_params(best.params) if best else "-"],
                  ["difference", "", "agrees" if a.agrees else "differs", fmt_points(a.gain_points), ""]]))
        if adv is not None:
            how = ("its trial run is tagged advisor.advised=true" if adv.advised else
                   "advisor search --strategy auto enqueues it as the study's first trial")
            block.paragraphs.append(f"The advised configuration is trial #{adv.number} ({how}); a run that a "
                                    "strategy declares as its own counts as it (full_finetune: last_k with k = all "
                                    "blocks).")
    return block


def _advice_params(study: StudyData) -> dict[str, Any]:
    return dict(study.advice.params or {}) if study.advice is not None else {}


def _dataset_block(study: StudyData) -> Block:
    p = study.profile
    rows = [["dataset", study.dataset], ["fingerprint", study.tags.get(FINGERPRINT_TAG, "-")[:16]],
            ["model", study.model]]
    if p is not None:
        rows += [["weights", str(p.weights)], ["parameters", fmt_int(p.num_parameters)],
                 ["blocks", str(len(p.blocks))]]
    rows += [["image size", study.tags.get(IMAGE_SIZE_TAG, "-")],
             ["device", study.tags.get(DEVICE_TAG, "-")],
             ["study", study.study_name], ["Optuna storage", study.tags.get(STORAGE_TAG, "-")],
             ["MLflow experiment", study.experiment], ["parent run", study.parent_run_id]]
    return Block(study.label, tables=[Table(headers=["", ""], rows=rows, align="ll", css_id="dataset-table")])


def _profile_block(study: StudyData) -> Block:
    p = study.profile
    if p is None:
        return Block(study.label, paragraphs=["No profile: analyze did not run for this study (the search was given "
                                              "a strategy, not --strategy auto)."])
    s = p.size
    task = p.primary_task
    counts = s.task(task).per_class if any(t.task == task for t in s.tasks) else {}
    per_class = Table(headers=["class", *counts.keys()], rows=[["images", *map(str, counts.values())]],
                      title=f"Images per class ({task})", css_id="per-class-table") if counts else None
    fig = Figure("blocks", "Per-block shift and transferability", plots.block_chart(p))
    tables = [size_table(p), per_class, blocks_table(p)]
    return Block(study.label, tables=[t for t in tables if t is not None], figures=[fig])


def _advice_block(study: StudyData) -> Block:
    a = study.advice
    if a is None:
        strategy = study.tags.get(ADVICE_STRATEGY_TAG)
        text = (f"Advice {strategy} (advice.json missing from the parent run)." if strategy else
                "No advice: analyze did not run for this study.")
        return Block(study.label, paragraphs=[text])
    params = fmt_params(a.params or {})
    block = Block(study.label, paragraphs=[
        f"Advised strategy: {a.strategy}" + (f" ({params})" if params else "") + f", confidence {a.confidence:.2f}.",
        a.summary])
    block.tables.append(evidence_table(a))
    block.bullets += list(a.reasons)
    block.bullets += [f"alternative: {alt.strategy}" + (f" ({fmt_params(alt.params)})" if alt.params else "")
                      + f": {alt.why}" for alt in a.alternatives]
    block.bullets += [f"note: {n}" for n in a.notes]
    return block


def _strategies_block(study: StudyData) -> Block:
    rows = [[r.strategy, fmt_acc(r.best_val_accuracy), fmt_acc(r.test_accuracy), fmt_acc(r.test_macro_f1),
             fmt_int(r.trainable_params), fmt_seconds(r.best_wall_time), fmt_seconds(r.total_wall_time),
             str(r.complete), str(r.pruned), str(r.failed), "-" if r.best_trial is None else str(r.best_trial)]
            for r in analysis.strategy_rows(study)]
    table = Table(headers=["strategy", "best val accuracy", "test accuracy", "test macro-F1", "trainable params",
                           "wall time (best)", "wall time (all)", "complete", "pruned", "failed", "best trial"],
                  rows=rows, css_id="strategies-table",
                  caption="The test split is evaluated once, for the study's best trial only, so the other "
                          "strategies have no test score. Trainable parameters and wall time (best) are those "
                          "of each strategy's best trial.")
    return Block(study.label, tables=[table])


_FLAGS = {"k": "--k", "block": "--block", "C": "--C", "head_lr": "--head-lr", "lr_ratio": "--lr-ratio",
          "layer_decay": "--layer-decay", "weight_decay": "--weight-decay", "epochs": "--epochs",
          "batch_size": "--batch-size", "patience": "--patience", "warmup_epochs": "--warmup-epochs"}


def train_command(study: StudyData, strategy: str, params: dict[str, Any]) -> str:
    """The ``advisor train`` command line that reruns a configuration."""
    parts = ["advisor train", study.dataset, "--model", study.model, "--strategy", strategy]
    size = study.tags.get(IMAGE_SIZE_TAG)
    if size and size.isdigit():
        parts += ["--image-size", size]
    # the seed and the fractions draw the split: with both, the same training and validation images
    for tag, flag in ((SEED_TAG, "--seed"), (SPLIT_TAG, "--split")):
        if study.tags.get(tag):
            parts += [flag, study.tags[tag]]
    for name, value in params.items():
        if name == STRATEGY_KEY or value is None:
            continue
        if name in ("warmup", "augment") and isinstance(value, bool):
            parts.append(f"--{'' if value else 'no-'}{name}")
        elif name == "tasks" and isinstance(value, list):
            parts += ["--tasks", ",".join(map(str, value))]
        elif name in _FLAGS:
            parts += [_FLAGS[name], f"{value:.6g}" if isinstance(value, float) else str(value)]
        else:
            parts += ["--param", f"{name}={str(value).lower() if isinstance(value, bool) else value}"]
    return " ".join(parts)


def _best_block(study: StudyData) -> Block:
    best = study.best()
    params = dict(study.best_params or (best.params if best else {}))
    strategy = str(params.get(STRATEGY_KEY) or (best.strategy if best else "-"))
    rows = [["trial", str(study.best_trial if study.best_trial is not None else best.number if best else "-")],
            ["strategy", strategy],
            *[[k, fmt_num(v, 6) if isinstance(v, float) else fmt_num(v)] for k, v in params.items() if k != STRATEGY_KEY],
            ["validation accuracy", fmt_acc(study.best_val_accuracy)],
            ["test accuracy", fmt_acc(study.test_accuracy)], ["test macro-F1", fmt_acc(study.test_macro_f1)],
            ["trainable parameters", fmt_int(best.trainable_params if best else None)],
            ["wall time", fmt_seconds(best.wall_time if best else None)]]
    own = [t for t in study.best_tables if isinstance(t, Table)]  # its strategy's tables, of the refit
    notes = [t for t in study.best_tables if isinstance(t, str)]
    return Block(study.label, tables=[Table(headers=["", ""], rows=rows, align="ll", css_id="best-table"), *own],
                 paragraphs=notes,
                 code_intro="Rerun it (add --save PATH to keep the model; the MLflow model logged on the parent "
                            "run is this trial's):",
                 code=train_command(study, strategy, params))


def _figure_block(study: StudyData, key: str, title: str, uri: str | None, missing: str, caption: str = "") -> Block:
    return Block(study.label, figures=[Figure(key, title, uri, "" if uri else missing, caption)])


def _importance_block(study: StudyData) -> Block:
    imp = analysis.importances(study)
    fig = Figure("importances", "Parameter importances", plots.importance_chart(imp), imp.reason or "")
    block = Block(study.label, figures=[fig])
    if imp.reason:
        return block
    block.tables.append(Table(headers=["parameter", "importance"], css_id="importance-table",
                              rows=[[n, f"{v:.3f}"] for n, v in zip(imp.names, imp.values)]))
    block.paragraphs.append("How: " + imp.method + ".")
    return block


def _curves_block(study: StudyData, top: int) -> Block:
    adv = analysis.advised_trial(study)
    chosen = [t for t in sorted(study.complete(), key=lambda t: (-t.value, t.number))[:top]]
    if adv is not None and adv not in chosen:
        chosen.append(adv)
    uri = plots.curves_chart(study, chosen, adv.number if adv else None)
    caption = f"The {min(top, len(study.complete()))} best complete trials" + \
              (" and the advised one (dashed)" if adv is not None and adv in chosen else "") + \
              ": validation accuracy after each epoch (probes report once)."
    return _figure_block(study, "curves", "Learning curves", uri, "no per-epoch validation accuracy was logged",
                         caption)


def _trial_note(t: TrialRecord, study: StudyData, advised: int | None) -> str:
    notes = []
    if t.number == (study.best().number if study.best() else None):
        notes.append("best")
    if t.number == advised:
        notes.append("advised")
    if t.fail_reason and t.state != "complete":
        notes.append(t.fail_reason)
    return "; ".join(notes)


def _trials_block(study: StudyData) -> Block:
    adv = analysis.advised_trial(study)
    advised = adv.number if adv else None
    rows = [[str(t.number), t.state, t.strategy or "-",
             fmt_acc(t.value if t.state == "complete" else t.last_val_accuracy), fmt_seconds(t.wall_time),
             fmt_int(t.trainable_params), fmt_params(t.params), _trial_note(t, study, advised)]
            for t in study.trials]
    return Block(study.label, tables=[Table(
        headers=["#", "state", "strategy", "val accuracy", "wall time", "trainable params", "parameters", "note"],
        rows=rows, align="rllrrrll", css_id="trials-table",
        caption="Validation accuracy: the best epoch of a complete trial; the last reported epoch of a pruned one.")])


# ------------------------------------------------------------------ the whole report
def build_content(studies: list[StudyData], tracking_uri: str, top: int = 5, title: str | None = None) -> Report:
    """All sections, one block per study in each."""
    names = list(dict.fromkeys(s.experiment for s in studies))
    title = title or ("Search report: " + " vs ".join(names))

    def section(key: str, name: str, make: Any, intro: str = "") -> Section:
        return Section(key, name, intro, [make(s) for s in studies])

    depth_missing = "no trial with a freeze depth (k) to plot"
    sections = [
        section("agreement", "Search against the advice", _agreement_block),
        section("dataset", "Dataset and model", _dataset_block),
        section("profile", "Dataset profile", _profile_block,
                "What analyze measured: the size of the dataset, and block by block how far the target's "
                "activations shift from the source (BatchNorm statistics, or reference moments of a source "
                "sample; '-' with the reason where neither exists) and how well the classes separate "
                "(k-NN accuracy, LogME)."),
        section("advice", "Advice and its evidence", _advice_block),
        section("strategies", "Strategies compared", _strategies_block),
        section("best", "Best configuration", _best_block),
        section("depth", "Validation accuracy against freeze depth",
                lambda s: _figure_block(s, "depth", "Freeze depth", plots.depth_chart(s), depth_missing,
                                        "Each trial at its number of trainable top blocks k; crosses are pruned "
                                        "trials at their last epoch.")),
        section("lr-ratio", "Validation accuracy against the learning-rate ratio",
                lambda s: _figure_block(s, "lr-ratio", "Learning-rate ratio", plots.lr_ratio_chart(s),
                                        "no trial searched lr_ratio (probe-only search)",
                                        "Backbone learning rate / head learning rate, log scale.")),
        section("history", "Optimization history",
                lambda s: _figure_block(s, "history", "Optimization history",
                                        plots.history_chart(s, _advised_number(s)), "no trials",
                                        "Each trial's validation accuracy in the order they ran and the best so "
                                        "far; failed trials are drawn at 0.")),
        section("importances", "Parameter importances", _importance_block),
        section("curves", "Learning curves", lambda s: _curves_block(s, top)),
        section("trials", "All trials", _trials_block),
    ]
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return Report(title=title, generated=now, tracking_uri=tracking_uri, studies=studies,
                  summary=summary_table(studies), sections=sections)


def _advised_number(study: StudyData) -> int | None:
    adv = analysis.advised_trial(study)
    return adv.number if adv else None
