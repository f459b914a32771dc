"""The measured check: on small data the advice runs the candidates it is unsure between, and
validation decides.

Where the training split is small, the size and similarity rules are least reliable (the advice
grid's calibration part: probes and fine-tuning trade places below about 50 images per class), yet
every candidate is cheap to run: the probes fit on pooled features of one forward pass, and a
fine-tune of a few hundred images takes about 120 optimiser steps. So ``advisor analyze`` runs
:func:`candidates` on the training split, scores each on the validation split (never on test), and
the advice takes the best. This module only defines the budget and the record; ``advisor.api`` runs
it and ``advisor.advise.rules`` reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from advisor import strategies

#: inverse regularisation strengths tried for each probe
PROBE_C = (0.1, 1.0)
#: a fine-tune of the check runs about this many optimiser steps of BATCH images, in 4 to 20 epochs
STEPS = 120
BATCH = 64
#: the backbone/head rate ratios the check's LP-FT fine-tune runs at, by network family. A CNN: its
#: recipe's 0.1. A transformer: the recipe's 0.01 and 0.1, since the right one follows the pretraining more
#: than the architecture: on the grid (regime 2), the pretrained ViT-S/14 collapsed at 0.1 (s14-digits/10:
#: 0.14 test against 0.87 at 0.01) while the small controlled ViT's fine-tunes won at 0.1 on most targets.
CHECK_LR_RATIOS = {"cnn": (0.1,), "transformer": (0.01, 0.1)}


def probe_blocks(n_blocks: int) -> list[int]:
    """Blocks an early-feature SVM is tried on: every block below the last when there are few
    (6 for timm's MobileNetV2 cut), else a stride giving about five (19 blocks: 3, 6, 9, 12, 15);
    the last block is the linear probe's."""
    stride = max(1, round(n_blocks / 6))
    return list(range(stride, n_blocks - 1, stride))


def network_budget(n_train: int) -> dict:
    """Epochs such that a run takes about :data:`STEPS` optimiser steps of :data:`BATCH`, within 4 to 20
    epochs (10 per class of 5 classes: 20 epochs of 1 step; 500 per class: 4 epochs of 40 steps);
    patience a quarter of the epochs (at least 2)."""
    steps = max(1, math.ceil(n_train / BATCH))
    epochs = int(min(20, max(4, math.ceil(STEPS / steps))))
    return {"epochs": epochs, "patience": max(2, epochs // 4), "batch_size": BATCH}


def candidates(n_blocks: int, n_train: int, family: str = "cnn") -> list[tuple[str, dict]]:
    """What the check runs, cheapest first (a tie on validation goes to the first): the linear probe and
    the early-block SVMs at each C, then full fine-tuning after a linear-probe warm-up (LP-FT) at each of
    the family's :data:`CHECK_LR_RATIOS` (a CNN: 0.1; a transformer: 0.01, then 0.1)."""
    if family not in CHECK_LR_RATIOS:
        strategies.recipe(family)  # the one-line error for an unknown family
    out = [("linear_probe", {"C": c}) for c in PROBE_C]
    for b in probe_blocks(n_blocks):
        out += [("svm_early", {"block": b, "C": c}) for c in PROBE_C]
    out += [("full_finetune", {"warmup": True, "lr_ratio": r, **network_budget(n_train)})
            for r in CHECK_LR_RATIOS[family]]
    return out


@dataclass
class CheckRun:
    """One candidate's validation accuracy (a fraction); ``params`` as run (blocks by index)."""

    strategy: str
    params: dict
    val_accuracy: float
    seconds: float = 0.0


@dataclass
class SkippedRun:
    """A candidate a ``--check-budget`` left out, with its estimated seconds (``advisor.advise.check_cost``)."""

    strategy: str
    params: dict
    estimated_seconds: float


@dataclass
class MeasuredCheck:
    """Every candidate the check ran, in :func:`candidates` order, and the validation split's size; with a
    budget, the candidates it skipped. ``estimated_seconds``: what the plan said before the check started;
    ``plan_seconds`` and ``fill_seconds``: where the time went besides the runs (each run's is its own)."""

    runs: list[CheckRun] = field(default_factory=list)
    n_val: int = 0
    skipped: list[SkippedRun] = field(default_factory=list)
    budget_seconds: float | None = None
    estimated_seconds: float | None = None
    plan_seconds: float = 0.0  # the estimate's own timed steps
    fill_seconds: float = 0.0  # the one forward pass over the training and validation images

    def winner(self) -> CheckRun | None:
        """The highest validation accuracy; the first (cheapest) on a tie."""
        best = None
        for r in self.runs:
            if best is None or r.val_accuracy > best.val_accuracy:
                best = r
        return best

    def best_of(self, strategies) -> CheckRun | None:
        """The best run among ``strategies`` (same tie rule)."""
        best = None
        for r in self.runs:
            if r.strategy in strategies and (best is None or r.val_accuracy > best.val_accuracy):
                best = r
        return best

    def standard_error(self) -> float:
        """Binomial standard error of the winner's validation accuracy."""
        w = self.winner()
        if w is None or self.n_val <= 0:
            return float("nan")
        p = w.val_accuracy
        return math.sqrt(max(p * (1 - p), 1e-12) / self.n_val)
