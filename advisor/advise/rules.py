"""The rules that turn a Profile into an Advice.

Every threshold is a named constant here and is described in the README, so a
user can check the output against them. The rules follow the 2x2 of target size
against similarity to the source (DESIGN.md), with multi-task and
pipeline-versus-end-to-end checked first when the labels call for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from advisor import strategies
from advisor.advise import confidence as calibration
from advisor.advise.advice import Advice, Alternative, Evidence, SearchSpace
from advisor.advise.check import (BUDGET_KEYS, SHIFT_MAX_TRAIN, STEPS, MeasuredCheck, peak_range, shift_peak,
                                  thirds)
from advisor.measure.profile import BlockProfile, Profile, best_index
from advisor.measure.shift import SUMMARIES, measure_of, summarise

# Advice from where the shift lives (issue 21): the per-block shift's peak, in the first third of the blocks
# (an input-level shift), at least this large (in the shift measure's own units, nats of symmetric KL) advises
# re-estimating BatchNorm on the target (bn_adapt, small data; a network with BatchNorm) or tuning the first
# third only (surgical, medium and large data: Lee et al., 2023, first block for input-level shifts). None: the
# rule is off. Both are left to ``--calibrate`` on the calibration part's wide-budget results.
BN_ADAPT_PEAK_SHIFT: float | None = None
SURGICAL_PEAK_SHIFT: float | None = None

# Constants marked [grid] were chosen by ``benchmarks/advice_grid.py --calibrate`` on the grid's
# calibration scenarios only (README, "How good is the advice"); before it they were 50, 500,
# k-NN accuracy, C 0.1, LP-FT when the last block is informative, and 50.

# Size bands on the median number of labelled samples per class of the training split (primary task).
SMALL_PER_CLASS = 75  # [grid] below: small
LARGE_PER_CLASS = 200  # [grid] at or above: large

# Early features: the best block beats the last block by more than this (TRANSFER_METRIC).
EARLY_FEATURE_MARGIN = 0.02

# Shift: symmetric KL (nats) between target moments and BN running statistics, averaged
# over all blocks. At or above: different from the source. Calibrated on MobileNetV2 at
# 224 px: crops of natural photos (scikit-learn's sample images) average 0.08, while
# Fashion-MNIST averages 1.3 (7.7 at the stem, 1-3 in the early blocks, 0.2-0.4 at the top).
SHIFT_DIFFERENT = 0.5

# Shift by reference moments (advisor.measure._reference_shift): symmetric KL (nats) between the target's
# block-output moments and a source sample's, read at the first block (the measure's declared summary). It
# separates the grid's similar from its different targets better than BN shift does (benchmarks/shift_auc.py:
# AUC 0.76 on the controlled CNN, 0.83 on the controlled ViT, against 0.52 for BN shift on the CNN). None: shown
# as evidence but not used to decide, because the grid's sources carry no reference moments and no held-out
# part has judged a threshold's effect on the advice; the transferability curves and the measured check decide.
REFERENCE_SHIFT_DIFFERENT = None

# [grid] The per-block measurement that finds the best block and the early-feature gap: the
# cross-validated ridge probe, the measurement closest to what svm_early and linear_probe train.
# (k-NN with k=10 on 10 images per class was too noisy to see the early blocks' lead.)
TRANSFER_METRIC = "linear_probe_accuracy"
# How the per-block BN shifts are summarised into one number.
SHIFT_STAT = "mean"

# [grid] The probes' advised inverse regularisation strength (scikit-learn's C).
PROBE_C = 1.0

# Blocks whose TRANSFER_METRIC is within this of the maximum tie; the deepest of them is "best".
BEST_TIE = 0.005

# Multi-task conditions.
MT_MIN_BALANCE = 0.5  # smallest task's labelled count / largest task's
# Shared features: the cross-task probe transfer (advisor.measure._task_transfer) of every pair of tasks, the
# larger of its two directions, is at least this. 0.5 (half of one task's label information above chance is
# carried by the other task's probe) is set a priori, not fitted: no stored Profile of the grid's calibration
# part carries the measure yet; ``benchmarks/advice_grid.py --calibrate`` searches it there (SEARCH_MT) once
# the grid's analyses are re-run. It replaced the correlation of the tasks' per-block k-NN curves, which read
# 0.92 for an item with a digit blended into it and 0.90 for an item with its group (the grid's fourth part).
MT_MIN_TRANSFER = 0.5
MT_MIN_PARAMS = 2_000_000  # a smaller shared network tends to do worse than separate ones

# [grid] Pipeline vs end-to-end: the final task is "too small for the mapping" below this.
PIPELINE_PER_CLASS = 10

# Layer-wise learning-rate decay suggested between blocks (ULMFiT used 1/2.6 per layer group).
DEFAULT_DECAY = (0.7, 1.0)

# Backbone-to-head learning-rate ratio advised for the network strategies. The best fine-tuning
# rate grows as the target moves away from the source (Li et al., "Rethinking the hyperparameters
# for fine-tuning", ICLR 2020): a similar target keeps its features nearly as they are, a
# different one must move them.
LR_RATIO_SIMILAR = 0.1
LR_RATIO_DIFFERENT = 0.5
# The same for a transformer (the transformer recipe, advisor.strategies._recipes): its backbone rate is
# its recipe's for either kind of target. On the real ViT-S/14 with Fashion-MNIST (a different target)
# full fine-tuning at ratio 0.1 reached 0.69 test accuracy against 0.785 at 0.01 (layer decay 0.75, rate
# warm-up and clipping in both); nothing measured supports a larger rate for a more different target.
TRANSFORMER_LR_RATIO_SIMILAR = 0.01
TRANSFORMER_LR_RATIO_DIFFERENT = 0.01

# [grid] When full_finetune is advised with a linear-probe warm-up (LP-FT, Kumar et al., 2022):
# "informative" (the last block reaches twice chance), "always" or "never". In the grid's short
# regime (4 to 20 epochs, 2 of them spent on the warm-up) the warm-up never paid on calibration.
WARMUP_RULE = "never"

# [grid] The measured check (advisor.advise.check) runs when the training split's median images per
# class is at most this (0: never). On the grid's calibration part the rules and fine-tuning trade
# places below about 50 per class; 50 was the best of 0, 10, 50 and 100 there.
CHECK_PER_CLASS = 50


@dataclass(frozen=True)
class Thresholds:
    """Every threshold the rules compare a measurement with; the defaults are the constants above.

    ``benchmarks/advice_grid.py --calibrate`` searches them on the calibration scenarios only.
    """

    small_per_class: float = SMALL_PER_CLASS
    large_per_class: float = LARGE_PER_CLASS
    shift_different: float = SHIFT_DIFFERENT
    #: the same for the reference-moment shift (each shift measure names its threshold field)
    reference_shift_different: float | None = REFERENCE_SHIFT_DIFFERENT
    early_margin: float = EARLY_FEATURE_MARGIN
    mt_min_balance: float = MT_MIN_BALANCE
    mt_min_transfer: float = MT_MIN_TRANSFER
    mt_min_params: int = MT_MIN_PARAMS
    pipeline_per_class: float = PIPELINE_PER_CLASS
    #: which per-block measurement finds the best block and the early-feature gap:
    #: "knn_accuracy" (cross-validated cosine k-NN) or "linear_probe_accuracy" (cross-validated ridge probe)
    transfer_metric: str = TRANSFER_METRIC
    #: how the per-block BN shifts are summarised: "mean" or "median" over the blocks
    shift_stat: str = SHIFT_STAT
    #: the inverse regularisation C advised with linear_probe and svm_early
    probe_c: float = PROBE_C
    #: backbone/head learning-rate ratios advised for a similar and for a different target
    lr_ratio_similar: float = LR_RATIO_SIMILAR
    lr_ratio_different: float = LR_RATIO_DIFFERENT
    #: the same for a transformer backbone (Profile.family "transformer")
    transformer_lr_ratio_similar: float = TRANSFORMER_LR_RATIO_SIMILAR
    transformer_lr_ratio_different: float = TRANSFORMER_LR_RATIO_DIFFERENT
    #: when full_finetune gets the linear-probe warm-up (LP-FT): "informative" (the last block's
    #: accuracy is at least twice chance), "always" or "never"
    warmup_rule: str = WARMUP_RULE
    #: the measured check decides at or below this many training images per class (median); 0: never
    check_per_class: float = CHECK_PER_CLASS
    #: an input-level shift peak at least this large advises bn_adapt on small data (None: never)
    bn_adapt_peak_shift: float | None = BN_ADAPT_PEAK_SHIFT
    #: an input-level shift peak at least this large advises surgical on the first third (None: never)
    surgical_peak_shift: float | None = SURGICAL_PEAK_SHIFT


DEFAULT_THRESHOLDS = Thresholds()


def _chance(profile: Profile, task: str) -> float:
    return 1.0 / max(profile.size.task(task).n_classes, 1)


def _shift_stat(profile: Profile, t: Thresholds) -> str:
    """How ``profile``'s shift measure is summarised: the measure's own declaration, else ``t.shift_stat``."""
    return measure_of(profile).summary or t.shift_stat


def _mean_shift(profile: Profile, stat: str = "mean") -> float | None:
    """The blocks' shifts summarised by ``stat`` (a key of ``SUMMARIES``); None without a shift measure."""
    return summarise([b.shift for b in profile.blocks], stat)


METRIC_LABELS = {"knn_accuracy": "k-NN accuracy", "linear_probe_accuracy": "ridge-probe accuracy"}


def best_block(profile: Profile, t: Thresholds = DEFAULT_THRESHOLDS) -> BlockProfile:
    """The block the advice calls best: the deepest within BEST_TIE of the highest ``t.transfer_metric``."""
    return profile.best_block(t.transfer_metric, tie=BEST_TIE)


def best_block_rule(t: Thresholds = DEFAULT_THRESHOLDS) -> str:
    """:func:`best_block` in words, for the captions of the tables that mark it."""
    return f"the deepest block within {BEST_TIE} of the highest {METRIC_LABELS[t.transfer_metric]}"


LEVELS = ("input-level", "feature-level", "top-level")


def shift_level(profile: Profile) -> tuple[BlockProfile, str, tuple[int, int]] | None:
    """Where the shift lives: the block where the per-block shift is largest (:func:`check.shift_peak`), its level
    (which third of the network holds it: input-, feature- or top-level) and that third's block range (the range
    the check's surgical candidate trains); None without a measured shift."""
    peak = shift_peak(profile)
    if peak is None:
        return None
    rng = peak_range(len(profile.blocks), peak.index)
    return peak, LEVELS[thirds(len(profile.blocks)).index(rng)], rng


def _peak_rule(profile: Profile, t: Thresholds, per_class: float, n: int, different: bool):
    """Advice from where the shift lives, when a calibrated threshold turns it on: ``(strategy, params, summary,
    reasons, alternatives, margin)`` or None. An input-level peak (the first third) at least
    ``t.bn_adapt_peak_shift`` on small data, on a network with BatchNorm: bn_adapt (re-estimate the statistics,
    no gradient step, then the linear probe); at least ``t.surgical_peak_shift`` on medium or large data:
    surgical on the first third (Lee et al., 2023)."""
    found = shift_level(profile)
    if found is None:
        return None
    peak, level, (a, b) = found
    shift = measure_of(profile)
    if level != "input-level" or peak.shift is None:
        return None
    names = profile.blocks[a].name, profile.blocks[b].name
    where = f"{shift.label} peaks at {peak.name} ({peak.shift:.2f}), in the first third ({names[0]}..{names[1]})"
    if (per_class < t.small_per_class and t.bn_adapt_peak_shift is not None and shift.name == "bn_stats"
            and peak.shift >= t.bn_adapt_peak_shift):
        return ("bn_adapt", {"probe": "linear_probe", "C": t.probe_c},
                "Small, with an input-level shift: re-estimate every BatchNorm layer's statistics on the target "
                "(no gradient step), then train a linear classifier on the adapted last block's features.",
                [f"{per_class:g} samples per class is too few to fine-tune without overfitting.",
                 f"The {where}: the input statistics moved, which re-estimated BatchNorm statistics absorb "
                 f"(>= {t.bn_adapt_peak_shift})."],
                [Alternative("linear_probe", {"C": t.probe_c}, "the same probe on the source statistics"),
                 Alternative("surgical", {"first": a, "last": b}, f"tune {names[0]}..{names[1]} and the head")],
                abs(math.log(max(peak.shift, 1e-6) / t.bn_adapt_peak_shift)))
    if per_class >= t.small_per_class and t.surgical_peak_shift is not None and peak.shift >= t.surgical_peak_shift:
        ratio = lr_ratios(profile, t)[1 if different else 0]
        return ("surgical", {"first": a, "last": b, "lr_ratio": ratio},
                f"Input-level shift: fine-tune only blocks {names[0]}..{names[1]} (the first third) and the head; "
                "every other block stays frozen.",
                [f"The {where} (>= {t.surgical_peak_shift}): surgical fine-tuning tunes where the shift lives "
                 "(Lee et al., 2023: the first blocks for input-level shifts).",
                 f"{per_class:g} samples per class supports tuning some blocks."],
                [Alternative("last_k", {"k": max(1, math.ceil(n / 3))}, "the usual top blocks instead"),
                 Alternative("full_finetune", {"warmup": True}, "every block, if the shift reaches higher")],
                abs(math.log(max(peak.shift, 1e-6) / t.surgical_peak_shift)))
    return None


def _margin_confidence(*margins: float) -> float:
    """Map relative distances from the deciding thresholds to a confidence in [0.35, 0.95]."""
    m = min(margins) if margins else 0.0
    return float(np.clip(0.5 + 0.45 * math.tanh(1.5 * m), 0.35, 0.95))


def lr_ratios(profile: Profile, t: Thresholds = DEFAULT_THRESHOLDS) -> tuple[float, float]:
    """The backbone/head rate ratios advised for (a similar, a different) target on ``profile``'s family."""
    if profile.family == "transformer":
        return t.transformer_lr_ratio_similar, t.transformer_lr_ratio_different
    return t.lr_ratio_similar, t.lr_ratio_different


def _space(strategy: str, n: int, k_range: tuple[int, int], ratio: tuple[float, float], profile: Profile,
           probe_blocks: list[str], warmup: list[bool], t: Thresholds = DEFAULT_THRESHOLDS) -> SearchSpace:
    """The search space advised with ``strategy``; ``ratio`` is the rate-ratio range for a CNN, scaled by
    the family's recipe ratio over the CNN's (a transformer's range is ten times lower)."""
    scale = strategies.recipe(profile.family).lr_ratio / strategies.recipe("cnn").lr_ratio
    ratio = (ratio[0] * scale, ratio[1] * scale)
    per_class = profile.size.task(profile.primary_task).median_per_class
    head_lr = [1e-4, 3e-2] if strategies.get(strategy).trains_network else [1e-3, 1e-1]
    return SearchSpace(
        strategy=strategy,
        trainable_blocks=[int(max(0, min(n, k_range[0]))), int(max(0, min(n, k_range[1])))],
        n_blocks=n,
        head_lr=head_lr,
        lr_ratio=[float(ratio[0]), float(ratio[1])],
        layer_decay=list(DEFAULT_DECAY) if per_class >= t.small_per_class else [0.5, 0.9],
        warmup=warmup,
        probe_blocks=probe_blocks,
    )


def wants_check(profile: Profile, thresholds: Thresholds | None = None) -> bool:
    """Whether the measured check decides for ``profile``: one final task (no intermediate label, no
    multi-task candidate) and at most ``check_per_class`` training images per class (median)."""
    t = thresholds or DEFAULT_THRESHOLDS
    tasks = [ts.task for ts in profile.size.tasks if ts.task != profile.intermediate]
    if profile.intermediate or len(tasks) != 1:
        return False
    return profile.size.task(profile.primary_task).median_per_class <= t.check_per_class


def advise(profile: Profile, thresholds: Thresholds | None = None, check: MeasuredCheck | None = None) -> Advice:
    """Recommend one strategy for ``profile``; see the README section "How the advice is decided".

    ``thresholds``: the rules' thresholds (default :data:`DEFAULT_THRESHOLDS`). ``check``: the measured
    check's validation accuracies (advisor.advise.check); where :func:`wants_check` holds, its best
    run is the advice and the rules' choice becomes an alternative.
    """
    t = thresholds or DEFAULT_THRESHOLDS
    rules = _advise_rules(profile, t)
    if check is not None and check.runs and wants_check(profile, t):
        return _calibrate(_apply_check(rules, check, profile, t), profile, True)
    if check is not None and check.skipped and not check.runs:
        rules.notes.append(f"The measured check's budget ({check.budget_seconds:.0f} s) left out every candidate "
                           f"(about {sum(r.estimated_seconds for r in check.skipped):.0f} s in all): the rules "
                           "alone decided.")
        rules.check = check
    return _calibrate(rules, profile, False)


def _calibrate(advice: Advice, profile: Profile, used_check: bool) -> Advice:
    """The margin's score becomes ``raw_confidence``; ``confidence`` is its calibrated probability."""
    advice.decided_by = calibration.decider(profile, used_check)
    advice.raw_confidence = advice.confidence
    advice.confidence = calibration.calibrated(advice.raw_confidence, advice.decided_by)
    return advice


def _run_params(run, profile: Profile) -> dict:
    """A check run's parameters as advice parameters: blocks by name (every parameter the strategy declares as a
    block), without the check's training budget (epochs, patience, batch size)."""
    declared = strategies.get(run.strategy)
    params = dict(run.params)
    for name, value in params.items():
        if declared.has(name) and declared.param(name).base == "block" and isinstance(value, int) \
                and not isinstance(value, bool):
            params[name] = profile.blocks[value].name
    if declared.kind == "network":
        params = {k: v for k, v in params.items() if k not in BUDGET_KEYS}
    return params


def _apply_check(rules: Advice, check: MeasuredCheck, profile: Profile, t: Thresholds) -> Advice:
    """The check's best validation run as the advice, with the evidence that decided it."""
    n = len(profile.blocks)
    win = check.winner()
    params = _run_params(win, profile)
    probes = strategies.probe_names()
    other = check.best_of([s for s in {r.strategy for r in check.runs} if (s in probes) != (win.strategy in probes)])
    se = check.standard_error()
    margin = (win.val_accuracy - other.val_accuracy) if other is not None else float("nan")
    evidence = list(rules.evidence)
    if check.shift_note:
        evidence.append(Evidence("measured check: training images, for the shift's candidates", check.n_train,
                                 f"at most {SHIFT_MAX_TRAIN} (a check fine-tune within {STEPS} steps)",
                                 check.shift_note))
    for r in sorted({r.strategy: check.best_of([r.strategy]) for r in check.runs}.values(),
                    key=lambda r: -r.val_accuracy):
        evidence.append(Evidence(f"measured: {r.strategy} (best of its runs), validation accuracy",
                                 round(r.val_accuracy, 4), f"on {check.n_val} validation images, SE {se:.3f}",
                                 "best" if r is win else f"{(win.val_accuracy - r.val_accuracy) * 100:.1f} points lower"))
    what = ("fine-tuning" if win.strategy not in probes else "a probe") + " won on validation"
    reasons = [f"{profile.size.task(profile.primary_task).median_per_class:g} images per class is at most "
               f"{t.check_per_class:g}: the advice ran {len(check.runs)} cheap candidates and validation decided.",
               f"{win.strategy} reached {win.val_accuracy:.3f} validation accuracy"
               + (f", {margin * 100:.1f} points above the best "
                  f"{'probe' if win.strategy not in probes else 'fine-tune'} ({other.strategy})." if other else ".")]
    if rules.strategy != win.strategy:
        reasons.append(f"The size and similarity rules alone would have said {rules.strategy}.")
    if check.skipped:
        left = ", ".join(f"{r.strategy} {r.params} (about {r.estimated_seconds:.0f} s)" for r in check.skipped)
        reasons.append(f"The check's budget ({check.budget_seconds:.0f} s) left out {left}; validation chose "
                       "among the rest.")
    # a clear win (several standard errors) is confident; a coin toss is not
    confidence = 0.5 if not math.isfinite(margin) or not math.isfinite(se) else \
        float(np.clip(0.5 + 0.45 * math.tanh(margin / (2 * se)), 0.35, 0.95))
    alts = [Alternative(rules.strategy, rules.params, "the size and similarity rules' choice")] \
        if rules.strategy != win.strategy else []
    if other is not None and other.strategy not in (win.strategy, rules.strategy):
        alts.append(Alternative(other.strategy, _run_params(other, profile),
                                f"{margin * 100:.1f} points lower on validation"))
    alts += [a for a in rules.alternatives if a.strategy not in {win.strategy, *(x.strategy for x in alts)}]
    best = best_block(profile, t)
    early = [b.name for b in profile.blocks[max(0, best.index - 2): min(best.index + 3, n - 1)]]
    if win.strategy in probes:
        space = _space(win.strategy, n, (0, 2), (0.01, 0.3), profile, early + [profile.blocks[-1].name], [True], t)
    else:
        kk = max(1, math.ceil(n / 3))
        space = _space(win.strategy, n, (kk, n), (0.1, 1.0), profile, [], [True, False], t)
    return Advice(strategy=win.strategy, params=params, confidence=round(confidence, 3),
                  summary=f"Measured on this dataset: {what}; {win.strategy} with {params}.",
                  evidence=evidence, reasons=reasons, alternatives=alts, search_space=space,
                  notes=list(rules.notes), check=check)


def _advise_rules(profile: Profile, t: Thresholds) -> Advice:
    """The size and similarity rules alone."""
    task = profile.primary_task
    ts = profile.size.task(task)
    n = len(profile.blocks)
    per_class = ts.median_per_class
    metric = METRIC_LABELS[t.transfer_metric]
    knn = [v if v is not None else float("nan") for v in profile.block_values(t.transfer_metric, task)]
    logme_vals = [v if v is not None else float("nan") for v in profile.block_values("logme", task)]
    best_i = best_index(knn, BEST_TIE)
    best, last = profile.blocks[best_i], profile.blocks[-1]
    gap = knn[best_i] - knn[-1]
    logme_best = best_index(logme_vals, BEST_TIE)
    stat = _shift_stat(profile, t)
    mean_shift = _mean_shift(profile, stat)
    shift = measure_of(profile)
    # each measure is compared with its own threshold; without one (or without values) the shift is absent
    shift_thr = getattr(t, shift.threshold) if shift.threshold else None
    shown_shift = mean_shift  # in the evidence whenever measured; decides only with a threshold
    if shift_thr is None:
        mean_shift = None
    chance = _chance(profile, task)

    evidence = [
        Evidence("median labelled samples per class", per_class,
                 f"small < {t.small_per_class} <= medium < {t.large_per_class} <= large",
                 "small" if per_class < t.small_per_class else "large" if per_class >= t.large_per_class else "medium"),
        Evidence(f"{metric}, best block ({best.name})", round(knn[best_i], 4), f"chance {chance:.3f}",
                 f"{knn[best_i] / chance:.1f}x chance"),
        Evidence(f"{metric}, last block ({last.name})", round(knn[-1], 4),
                 f"best - last > {t.early_margin} means early features win",
                 "early features better" if gap > t.early_margin else "top features as good as any"),
        Evidence("best block by LogME", profile.blocks[logme_best].name, f"{metric} best is {best.name}",
                 "agrees" if abs(logme_best - best_i) <= 1 else "disagrees"),
    ]
    if mean_shift is not None:
        evidence.append(Evidence(f"{shift.label}, {SUMMARIES[stat]} (sym. KL, nats)", round(mean_shift, 4),
                                 f"different from source >= {shift_thr}",
                                 "different" if mean_shift >= shift_thr else "similar"))
    elif shown_shift is not None:
        evidence.append(Evidence(f"{shift.label}, {SUMMARIES[stat]} (sym. KL, nats)", round(shown_shift, 4),
                                 "no calibrated threshold", "informative only: the transferability curves decide"))
    else:
        evidence.append(Evidence("shift from the source", None, f"absent: {shift.reason or 'no block has a value'}",
                                 "not used: the transferability curves decide"))
    if profile.source is not None:
        evidence.append(Evidence("source prediction entropy / log Z", round(profile.source.entropy_normalised, 4),
                                 "near 1: target looks like no source class", "informative only"))

    notes = []
    if profile.weights == "random":
        notes.append("The backbone has random weights: there is no source domain, so the shift and the "
                     "source scores say nothing about transfer; only the size rules are meaningful.")
    if gap > t.early_margin:
        notes.append(
            f"Early features: block {best.name} (#{best_i + 1} of {n}) separates the classes better than the last "
            f"block by {gap * 100:.1f} points of {metric}; the top blocks are too source-specific here."
        )
    if shown_shift is None:
        notes.append(f"No shift from the source is measured ({shift.reason or 'no block has a value'}): similarity "
                     "rests on the transferability curves (does an early block beat the last?) and, at small "
                     "sizes, on the measured check.")
    elif shift_level(profile) is not None:
        peak, where, (a, b) = shift_level(profile)
        evidence.append(Evidence(f"{shift.label}, peak block", peak.name,
                                 f"first third {profile.blocks[thirds(n)[0][0]].name}.."
                                 f"{profile.blocks[thirds(n)[0][1]].name}: input-level", where))
        notes.append(f"The shift from the source peaks at {peak.name} ({where}, blocks {profile.blocks[a].name}.."
                     f"{profile.blocks[b].name}); surgical fine-tuning (Lee et al., 2023) tunes where the shift "
                     f"lives.")

    # 1. Pipeline versus end-to-end: intermediate labels exist.
    if profile.intermediate:
        return _pipeline(profile, evidence, notes, n, t)

    # 2. Multi-task: two or more final label columns.
    tasks = [ts_.task for ts_ in profile.size.tasks if ts_.task != profile.intermediate]
    mt = _multi_task_check(profile, tasks, t) if len(tasks) >= 2 else None
    if mt is not None:
        ok, mt_evidence, failed = mt
        evidence.extend(mt_evidence)
        if ok:
            return Advice(
                strategy="multi_task",
                params={"tasks": tasks},
                confidence=0.7,
                summary=f"Train one shared backbone with one head per task ({', '.join(tasks)}), "
                        "summing the loss over the labels present.",
                evidence=evidence,
                reasons=["All three multi-task conditions hold: shared features, balanced tasks, a big enough network."],
                alternatives=[Alternative("last_k", {"k": max(1, math.ceil(n / 4))}, "one model per task")],
                search_space=_space("multi_task", n, (max(1, n // 4), n), (0.05, 1.0), profile, [], [True, False], t),
                notes=notes,
            )
        notes.append("Multi-task was considered and rejected: " + "; ".join(failed) + ".")

    different = (mean_shift is not None and mean_shift >= shift_thr) or gap > t.early_margin
    size_margin = abs(math.log(max(per_class, 1) / (t.small_per_class if per_class < t.small_per_class * 3.16 else t.large_per_class)))
    sim_margin = abs(gap - t.early_margin) / 0.05
    if mean_shift is not None:
        sim_margin = min(sim_margin, abs(math.log(max(mean_shift, 1e-6) / shift_thr)))
    agree = abs(logme_best - best_i) <= 1
    confidence = _margin_confidence(size_margin, sim_margin) - (0.0 if agree else 0.1)
    early_blocks = [b.name for b in profile.blocks[max(0, best_i - 2): min(best_i + 3, n - 1)]]

    by_peak = _peak_rule(profile, t, per_class, n, different)
    if by_peak is not None:
        strategy, params, summary, reasons, alts, peak_margin = by_peak
        k_range = (0, max(1, math.ceil(n / 3))) if strategy == "bn_adapt" else (1, max(1, math.ceil(n / 3)))
        space = _space(strategy, n, k_range, (0.03, 1.0), profile, [last.name], [True, False], t)
        return Advice(strategy=strategy, params=params,
                      confidence=round(_margin_confidence(size_margin, peak_margin), 3), summary=summary,
                      evidence=evidence, reasons=reasons, alternatives=alts, search_space=space, notes=notes)

    if per_class < t.small_per_class:
        if gap > t.early_margin:
            strategy, params = "svm_early", {"block": best.name, "C": t.probe_c}
            summary = (f"Small and different from the source: train a linear SVM on the pooled features of "
                       f"{best.name}, where the target classes separate best.")
            reasons = [f"{per_class:g} samples per class is too few to fine-tune without overfitting.",
                       f"{best.name} beats the last block by {gap * 100:.1f} points of {metric}."]
            alts = [Alternative("last_k", {"k": max(1, n - 1 - best_i)},
                                f"fine-tune the {max(1, n - 1 - best_i)} blocks above {best.name} (a moderate number)"),
                    Alternative("linear_probe", {}, "cheapest; top features are weaker here")]
            k_range = (0, max(1, n - 1 - best_i))
        else:
            strategy, params = "linear_probe", {"C": t.probe_c}
            summary = "Small and similar enough: train a linear classifier on the last block's features."
            reasons = [f"{per_class:g} samples per class is too few to fine-tune without overfitting.",
                       "The last block's features are as good as any earlier block's."]
            if mean_shift is not None and mean_shift >= shift_thr:
                reasons.append(f"The {shift.label} ({mean_shift:.2f}) says the domain differs, but the top features still "
                               "transfer best; an early-block SVM is the first alternative.")
            alts = [Alternative("svm_early", {"block": profile.blocks[max(0, n - 3)].name}, "if top features overfit"),
                    Alternative("last_k", {"k": 1}, "fine-tune only the last block with a small backbone rate")]
            k_range = (0, 2)
        space = _space(strategy, n, k_range, (0.01, 0.3), profile, early_blocks + [last.name], [True], t)
    elif per_class < t.large_per_class:
        k = max(1, math.ceil(0.15 * n))
        if gap > t.early_margin:
            k = max(k, n - 1 - best_i)
        if different:
            k = max(k, math.ceil(n / 3))
        r_similar, r_different = lr_ratios(profile, t)
        strategy, params = "last_k", {"k": int(k), "lr_ratio": r_different if different else r_similar}
        summary = (f"Medium-sized {'and different' if different else 'and similar'}: fine-tune the top {k} of {n} "
                   f"blocks with a smaller backbone learning rate than the new head's.")
        reasons = [f"{per_class:g} samples per class supports tuning some blocks but not the whole network safely."]
        if gap > t.early_margin:
            reasons.append(f"Features stop improving after {best.name}, so the blocks above it should adapt.")
        if different:
            rate = (f"at backbone rate ratio {r_different} (against {r_similar} for a similar one)"
                    if r_different != r_similar else f"at the {profile.family} recipe's backbone rate ratio {r_different}")
            reasons.append(f"The target differs from the source, so more blocks train than for a similar target, {rate}.")
        alts = [Alternative("full_finetune", {"warmup": True}, "if the search shows deeper tuning keeps helping"),
                Alternative("linear_probe" if not different else "svm_early",
                            {} if not different else {"block": best.name}, "cheapest baseline")]
        space = _space(strategy, n, (max(1, k // 2), min(n, 2 * k)), (0.03, 1.0), profile, [], [True, False], t)
    else:
        warmup = {"always": True, "never": False}.get(t.warmup_rule, knn[-1] >= 2 * chance)
        r_similar, r_different = lr_ratios(profile, t)
        strategy, params = "full_finetune", {"warmup": bool(warmup),
                                             "lr_ratio": r_different if different else r_similar}
        summary = ("Large: fine-tune the whole network from the pretrained weights"
                   + (", after a linear-probe warm-up of the head (LP-FT)." if warmup else "."))
        reasons = [f"{per_class:g} samples per class is enough to adapt every block."]
        if warmup:
            reasons.append(f"The last block's features already reach {knn[-1]:.2f} {metric} (chance {chance:.2f}): "
                           "a warmed-up head keeps fine-tuning from distorting them (Kumar et al., 2022).")
        if not different:
            reasons.append("The target is close to the source: fine-tuning only the last blocks is a cheaper alternative.")
        kk = max(1, math.ceil(n / 3))
        alts = [Alternative("last_k", {"k": kk}, f"top {kk} blocks only: most of the gain at a fraction of the cost"),
                Alternative("linear_probe", {}, "baseline")]
        space = _space(strategy, n, (kk, n), (0.1, 1.0), profile, [], [True, False], t)

    return Advice(strategy=strategy, params=params, confidence=round(confidence, 3), summary=summary,
                  evidence=evidence, reasons=reasons, alternatives=alts, search_space=space, notes=notes)


def _curve(profile: Profile, task: str) -> np.ndarray:
    return np.array([v if v is not None else np.nan for v in profile.block_values("knn_accuracy", task)], float)


def _shared_features(profile: Profile, tasks: list[str]) -> tuple[float | None, str]:
    """The smallest, over pairs of ``tasks``, of the pair's larger cross-task probe transfer (either task's
    probe carrying the other's information), with the pair it came from; None (and why) where a pair has none."""
    got = {(x.source, x.target): x.transfer for x in profile.task_transfer if x.transfer is not None}
    worst, where = None, ""
    for i, a in enumerate(tasks):
        for b in tasks[i + 1:]:
            both = [v for v in (got.get((a, b)), got.get((b, a))) if v is not None]
            if not both:
                why = ("not measured (a Profile written before the measure)" if not profile.task_transfer
                       else f"not measured for {a} and {b} (too few images labelled for both, or a task no "
                            "linear probe reads above chance)")
                return None, why
            if worst is None or max(both) < worst:
                worst, where = max(both), f"{a} / {b}"
    return worst, where


def _multi_task_check(profile: Profile, tasks: list[str], t: Thresholds):
    counts = [profile.size.task(task).n_labelled for task in tasks]
    balance = min(counts) / max(max(counts), 1)
    if any(np.isnan(_curve(profile, task)).all() for task in tasks):
        return None
    shared, where = _shared_features(profile, tasks)
    block = profile.task_transfer[0].block if profile.task_transfer else profile.blocks[-1].name
    ev = [
        Evidence("task balance (smallest / largest labelled count)", round(balance, 3), f">= {t.mt_min_balance}",
                 "balanced" if balance >= t.mt_min_balance else "unbalanced"),
        Evidence(f"shared features (cross-task probe transfer at {block}, weakest pair"
                 + (f": {where})" if shared is not None else ")"),
                 None if shared is None else round(shared, 3), f">= {t.mt_min_transfer}",
                 where if shared is None else "shared" if shared >= t.mt_min_transfer else "not shared"),
        Evidence("backbone parameters", profile.num_parameters, f">= {t.mt_min_params:,}",
                 "big enough" if profile.num_parameters >= t.mt_min_params else "too small"),
    ]
    failed = []
    if balance < t.mt_min_balance:
        failed.append(f"tasks are unbalanced ({balance:.2f} < {t.mt_min_balance})")
    if shared is None:
        failed.append(f"shared features are {where}")
    elif shared < t.mt_min_transfer:
        failed.append(f"the tasks share little: a linear probe for one carries {shared:.2f} of the other's label "
                      f"information above chance ({where}; < {t.mt_min_transfer})")
    if profile.num_parameters < t.mt_min_params:
        failed.append(f"the network is small ({profile.num_parameters:,} parameters)")
    return not failed, ev, failed


def _pipeline(profile: Profile, evidence: list[Evidence], notes: list[str], n: int, t: Thresholds) -> Advice:
    final, inter = profile.primary_task, profile.intermediate
    y_size, z_size = profile.size.task(final), profile.size.task(inter)
    ky, kz = _curve(profile, final), _curve(profile, inter)
    y_acc, z_acc = float(np.nanmax(ky)), float(np.nanmax(kz))
    small = y_size.median_per_class < t.pipeline_per_class
    z_richer = z_size.n_labelled / max(z_size.n_classes, 1) > y_size.median_per_class
    evidence += [
        Evidence(f"median samples per class of final label {final}", y_size.median_per_class,
                 f"too small for the mapping < {t.pipeline_per_class}", "too small" if small else "enough"),
        Evidence(f"best k-NN accuracy, intermediate {inter}", round(z_acc, 4),
                 f"final {final}: {y_acc:.4f}", "intermediate easier" if z_acc / _chance(profile, inter) > y_acc / _chance(profile, final) else "final as easy"),
    ]
    prefer = "pipeline" if (small or z_richer) else "end_to_end"
    return Advice(
        strategy="pipeline_vs_end_to_end",
        params={"intermediate": inter, "final": final, "prefer": prefer},
        confidence=0.7 if small else 0.55,
        summary=(f"Intermediate labels ({inter}) exist: compare a pipeline x->{inter}->{final} against end-to-end "
                 f"x->{final}; the measurements favour the {prefer.replace('_', '-')}."),
        evidence=evidence,
        reasons=[("The final label has too little data to learn the whole mapping; each sub-task has more."
                  if small else "There is enough data for the final label to learn the mapping directly.")],
        alternatives=[Alternative("last_k", {"k": max(1, math.ceil(n / 4))}, f"end-to-end on {final} only")],
        search_space=_space("pipeline_vs_end_to_end", n, (1, max(1, n // 2)), (0.03, 1.0), profile, [], [True, False], t),
        notes=notes,
    )
