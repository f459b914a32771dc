"""Shift from stored reference moments: the same divergence as BatchNorm's, for any network.

A network without BatchNorm (a ViT normalises each token by its own moments and keeps none of the
source's) has no source statistics inside it. ``advisor reference SOURCE_DATA --model NAME`` computes
every block's per-channel output moments once on a sample of the source domain and stores them beside
the weights (:mod:`advisor.measure._reference_store`); analyze then gathers the target's moments of the
same block outputs in its one pass (:mod:`advisor.measure._block_moments`) and compares the two per
block with :func:`~advisor.measure._bn_shift.bn_divergence` (symmetric KL per channel, averaged over
channels, eps 1e-5 as BatchNorm's default).

Where reference moments exist for the weights they are used, on a BatchNorm network too: someone ran
the command for these weights, and then every family's shift is the same divergence of block outputs.
"""

from __future__ import annotations

from advisor.measure._bn_shift import bn_divergence
from advisor.measure._reference_store import load_reference
from advisor.measure._shift_base import BLOCK_MOMENTS, ShiftMeasure

#: Added to both variances, as BatchNorm's default eps: keeps channels that never fire finite.
EPS = 1e-5


class ReferenceShift(ShiftMeasure):
    """Symmetric KL between the target's block-output moments and stored source moments."""

    name = "reference"
    label = "ref. shift"
    needs = "reference moments of a source sample for these weights ('advisor reference SOURCE_DATA --model NAME')"
    collects = frozenset({BLOCK_MOMENTS})
    threshold = "reference_shift_different"
    caption = ("ref. shift: symmetric KL (nats) of the target's block-output moments vs reference moments "
               "of a source sample; the advice reads the first block's.")
    #: Summarised by the first block (the stem's output), not the mean over blocks: chosen on the controlled CNN
    #: among four summaries fixed before their results (AUC for "different from the source" 0.76 against 0.56
    #: for the mean, whose deep blocks move as much for new classes of the same domain as for a new domain),
    #: and judged on the controlled ViT (benchmarks/shift_auc.py, README "How the shift is measured").
    summary = "first"

    def __init__(self, root=None) -> None:
        self.root = root
        self._ref = None

    def prepare(self, backbone, image_size: int) -> str | None:
        self._ref = load_reference(backbone, image_size, self.root)
        if self._ref is None:
            return f"no reference moments for these weights at {image_size} px"
        return None

    def block_shifts(self, collected) -> list[float | None]:
        return [float(bn_divergence(tm, tv, rm, rv, EPS))
                for (tm, tv), rm, rv in zip(collected.moments, self._ref.means, self._ref.variances)]

    def source(self) -> str | None:
        return None if self._ref is None else self._ref.describe()
