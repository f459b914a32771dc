"""Every threshold the rules (``advisor.advise.rules``) compare a measurement with: declared once, as the fields of
:class:`Thresholds`, each with its default and what it accepts, and validated like a strategy's parameters
(``advisor.strategies``: one constraint per value, one-line :class:`~advisor.errors.AdvisorError` for a bad one).

Defaults marked [grid] were chosen by ``python -m benchmarks.advice_grid --calibrate`` on the grid's calibration scenarios
only (README, "How good is the advice"); before it they were 50, 500, k-NN accuracy, C 0.1, LP-FT when the last
block is informative, and 50.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from advisor.measure.shift import SUMMARIES
from advisor.strategies import Param
from advisor.strategies._constraints import Constraint, Interval, Options

#: the per-block measurements that can find the best block and the early-feature gap, as the tables name them
METRIC_LABELS = {"knn_accuracy": "k-NN accuracy", "linear_probe_accuracy": "ridge-probe accuracy"}
#: when full_finetune gets the linear-probe warm-up (LP-FT)
WARMUP_RULES = ("informative", "always", "never")

_COUNT = Interval(float, 0.0, None)  # images per class: >= 0
_FRACTION = Interval(float, 0.0, 1.0)
_POSITIVE = Interval(float, 0.0, None, "neither")  # a shift in nats, a ratio, C: > 0


def _threshold(default, accepts: Constraint, *, off: bool = False, always: bool = False):
    """A field of :class:`Thresholds`: its default and what it accepts; ``off``: None is allowed too (the rule is
    off); ``always``: infinity is allowed too (``advisor analyze --check on``)."""
    return field(default=default, metadata={"accepts": accepts, "off": off, "always": always})


@dataclass(frozen=True)
class Thresholds:
    """Every threshold the rules compare a measurement with (README, "How the advice is decided").

    ``python -m benchmarks.advice_grid --calibrate`` searches them on the calibration scenarios only. A value outside
    what a field accepts is one line naming the field, what it accepts and an example.
    """

    #: [grid] size bands on the median number of labelled samples per class of the training split (primary
    #: task): below small_per_class small, at or above large_per_class large
    small_per_class: float = _threshold(75, _COUNT)
    large_per_class: float = _threshold(200, _COUNT)
    #: shift: symmetric KL (nats) between target moments and BN running statistics, averaged over all blocks; at
    #: or above: different from the source. Calibrated on MobileNetV2 at 224 px: crops of natural photos
    #: (scikit-learn's sample images) average 0.08, while Fashion-MNIST averages 1.3 (7.7 at the stem, 1-3 in the
    #: early blocks, 0.2-0.4 at the top)
    shift_different: float = _threshold(0.5, _POSITIVE)
    #: the same for the reference-moment shift (advisor.measure._reference_shift; each shift measure names its
    #: threshold field), read at the first block (the measure's declared summary). It separates the grid's similar
    #: from its different targets better than BN shift does (benchmarks/shift_auc.py: AUC 0.76 on the controlled
    #: CNN, 0.83 on the controlled ViT, against 0.52 for BN shift on the CNN). None: shown as evidence but not used
    #: to decide, because the grid's sources carry no reference moments and no held-out part has judged a
    #: threshold's effect on the advice; the transferability curves and the measured check decide
    reference_shift_different: float | None = _threshold(None, _POSITIVE, off=True)
    #: early features: the best block beats the last block by more than this (transfer_metric)
    early_margin: float = _threshold(0.02, _FRACTION)
    #: multi-task: smallest task's labelled count / largest task's, at least this
    mt_min_balance: float = _threshold(0.5, _FRACTION)
    #: multi-task, shared features: the cross-task probe transfer (advisor.measure._task_transfer) of every pair of
    #: tasks, the larger of its two directions, is at least this. 0.5 (half of one task's label information above
    #: chance is carried by the other task's probe) is set a priori, not fitted: no stored Profile of the grid's
    #: calibration part carries the measure yet; ``--calibrate`` searches it there (SEARCH_MT) once the grid's
    #: analyses are re-run. It replaced the correlation of the tasks' per-block k-NN curves, which read 0.92 for an
    #: item with a digit blended into it and 0.90 for an item with its group (the grid's fourth part)
    mt_min_transfer: float = _threshold(0.5, _FRACTION)
    #: multi-task: a smaller shared network tends to do worse than separate ones
    mt_min_params: int = _threshold(2_000_000, Interval(int, 0, None))
    #: [grid] pipeline vs end-to-end: the final task is "too small for the mapping" below this
    pipeline_per_class: float = _threshold(10, _COUNT)
    #: [grid] which per-block measurement finds the best block and the early-feature gap: "knn_accuracy"
    #: (cross-validated cosine k-NN) or "linear_probe_accuracy" (cross-validated ridge probe, the measurement
    #: closest to what svm_early and linear_probe train; k-NN with k=10 on 10 images per class was too noisy to see
    #: the early blocks' lead)
    transfer_metric: str = _threshold("linear_probe_accuracy", Options(tuple(METRIC_LABELS)))
    #: how the per-block shifts are summarised into one number (a key of advisor.measure.shift.SUMMARIES), where
    #: the shift measure declares no summary of its own
    shift_stat: str = _threshold("mean", Options(tuple(SUMMARIES)))
    #: [grid] the inverse regularisation C advised with linear_probe and svm_early (scikit-learn's C)
    probe_c: float = _threshold(1.0, _POSITIVE)
    #: backbone/head learning-rate ratios advised for a similar and for a different target. The best fine-tuning
    #: rate grows as the target moves away from the source (Li et al., "Rethinking the hyperparameters for
    #: fine-tuning", ICLR 2020): a similar target keeps its features nearly as they are, a different one must move
    #: them
    lr_ratio_similar: float = _threshold(0.1, _POSITIVE)
    lr_ratio_different: float = _threshold(0.5, _POSITIVE)
    #: the same for a transformer backbone (Profile.family "transformer"; the transformer recipe,
    #: advisor.strategies._recipes): its backbone rate is its recipe's for either kind of target. On the real
    #: ViT-S/14 with Fashion-MNIST (a different target) full fine-tuning at ratio 0.1 reached 0.69 test accuracy
    #: against 0.785 at 0.01 (layer decay 0.75, rate warm-up and clipping in both); nothing measured supports a
    #: larger rate for a more different target
    transformer_lr_ratio_similar: float = _threshold(0.01, _POSITIVE)
    transformer_lr_ratio_different: float = _threshold(0.01, _POSITIVE)
    #: [grid] when full_finetune gets the linear-probe warm-up (LP-FT, Kumar et al., 2022): "informative" (the last
    #: block's accuracy is at least twice chance), "always" or "never". In the grid's short regime (4 to 20 epochs,
    #: 2 of them spent on the warm-up) the warm-up never paid on calibration
    warmup_rule: str = _threshold("never", Options(WARMUP_RULES))
    #: [grid] the measured check (advisor.advise.check) decides at or below this many training images per class
    #: (median; 0: never; infinity: always). On the grid's calibration part the rules and fine-tuning trade places
    #: below about 50 per class; 50 was the best of 0, 10, 50 and 100 there
    check_per_class: float = _threshold(50, _COUNT, always=True)
    #: advice from where the shift lives (issue 21): the per-block shift's peak, in the first third of the blocks
    #: (an input-level shift), at least this large (in the shift measure's own units, nats of symmetric KL) advises
    #: re-estimating BatchNorm on the target (bn_adapt, small data; a network with BatchNorm) ...
    bn_adapt_peak_shift: float | None = _threshold(None, _POSITIVE, off=True)
    #: ... or tuning the first third only (surgical, medium and large data: Lee et al., 2023, first block for
    #: input-level shifts). None: the rule is off. Both are left to ``--calibrate`` on the calibration part's
    #: wide-budget results
    surgical_peak_shift: float | None = _threshold(None, _POSITIVE, off=True)

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if (value is None and f.metadata["off"]) or (f.metadata["always"] and _is_inf(value)):
                continue
            example = f.default if f.default is not None else 1.0
            Param(f.name, f.metadata["accepts"], f.default, example=str(example)).check(value, "thresholds")


def _is_inf(value) -> bool:
    return isinstance(value, float) and math.isinf(value) and value > 0


DEFAULT_THRESHOLDS = Thresholds()
