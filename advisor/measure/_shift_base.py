"""What a shift measure is: the one interface every per-block "shift from the source" implements.

A shift measure says how far the target's activations have moved from the source domain's, block by
block. Which one applies depends on the network and on what is stored for its weights:

* ``bn_stats`` (:mod:`advisor.measure._bn_shift`): a BatchNorm network carries its source moments in
  its running statistics; no source data needed;
* ``reference`` (:mod:`advisor.measure._reference_shift`): per-block output moments computed once from
  a sample of the source domain (``advisor reference``) and stored beside the weights;
* ``none`` (:mod:`advisor.measure._no_shift`): neither exists; the shift is absent, with the reason.

Every measure gives one value per block (a symmetric KL in nats averaged over channels, or ``None``)
or none at all with the reason. Readers (the report's tables, rules) ask :func:`advisor.measure.shift.measure_of`
for the measure a Profile used and read its label, caption and threshold from here: no ``if bn`` chains.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

#: What a measure can ask the one analyze pass to gather (``advisor.measure.collect.collect``).
BN_INPUTS = "bn_inputs"  # per-channel moments of every BatchNorm layer's input
BLOCK_MOMENTS = "block_moments"  # per-channel moments of every block's output, over positions/tokens


#: How a measure's per-block values become the one number the rules compare with its threshold.
SUMMARIES = {
    "mean": "mean over blocks",
    "median": "median over blocks",
    "first": "first block",
}


def summarise(values, stat: str) -> float | None:
    """``values`` (one per block, ``None`` where a block has none) summarised by ``stat`` (:data:`SUMMARIES`);
    ``None`` when no block has a value ("first" takes the first block that has one)."""
    if stat not in SUMMARIES:
        raise ValueError(f"unknown shift summary {stat!r}; one of {', '.join(SUMMARIES)}")
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    if stat == "first":
        return vals[0]
    return float(np.median(vals) if stat == "median" else np.mean(vals))


class ShiftMeasure(ABC):
    """One way to measure the per-block shift from the source.

    Class attributes (the measure's declaration):
        name: the identifier recorded in the Profile (``ShiftInfo.measure``).
        label: the column header and evidence name, e.g. ``"BN shift"``.
        needs: what the measure needs, in words (``--help``, README, reasons).
        collects: what the analyze pass must gather for it (:data:`BN_INPUTS`, :data:`BLOCK_MOMENTS`).
        threshold: the :class:`advisor.advise.rules.Thresholds` field its summary is compared with
            ("different from the source" at or above), or ``None`` for a measure that gives no value.
        caption: one sentence for table captions: what the number is.
        summary: how the rules summarise its per-block values (a key of :data:`SUMMARIES`), or ``None`` for
            the rules' own ``Thresholds.shift_stat``.

    Lifecycle: :meth:`prepare` on the backbone (``None``: it applies; else the reason it does not),
    then :meth:`block_shifts` on what the pass collected.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    needs: ClassVar[str]
    collects: ClassVar[frozenset[str]] = frozenset()
    threshold: ClassVar[str | None] = None
    caption: ClassVar[str]
    summary: ClassVar[str | None] = None

    #: Why the measure gives no value (set by :meth:`absent`-style measures; ``None`` when it measures).
    reason: str | None = None

    @abstractmethod
    def prepare(self, backbone, image_size: int) -> str | None:
        """Check what the measure needs for ``backbone`` at ``image_size`` px and load it.

        Returns:
            ``None`` when the measure applies, else why it does not (one clause, no trailing period).
        """

    @abstractmethod
    def block_shifts(self, collected) -> list[float | None]:
        """One shift (nats) per block from an ``advisor.measure.collect.Collected``; ``None`` where the
        block has nothing to measure."""

    def source(self) -> str | None:
        """Where the source moments came from, in words (recorded in the Profile); ``None`` by default."""
        return None
