"""The shift measures behind one interface, and which one a backbone or a Profile uses.

Measures (one per private file, the interface in :mod:`advisor.measure._shift_base`):

=============== ============================================================== ==========================
``reference``   block-output moments vs reference moments of a source sample    any network, after
                stored for these weights (``advisor reference``)                ``advisor reference``
``bn_stats``    BatchNorm input moments vs the layers' running statistics       BatchNorm networks
``none``        absent, with the reason                                         neither of the above
=============== ============================================================== ==========================

:func:`choose_shift` picks the first that applies, in that order. The Profile records the choice
(:class:`~advisor.measure.profile.ShiftInfo`); the report's tables and the rules get the measure back with
:func:`measure_of` and read its label, caption, threshold and reason from it.
"""

from __future__ import annotations

from advisor.measure._bn_shift import BNStatsShift
from advisor.measure._no_shift import NoShift
from advisor.measure._reference_shift import ReferenceShift
from advisor.measure._shift_base import BLOCK_MOMENTS, BN_INPUTS, SUMMARIES, ShiftMeasure, summarise
from advisor.measure.profile import Profile, ShiftInfo

__all__ = ["BLOCK_MOMENTS", "BN_INPUTS", "SUMMARIES", "BNStatsShift", "NoShift", "ReferenceShift", "ShiftMeasure",
           "choose_shift", "measure_of", "shift_info", "summarise"]

#: Every measure by name.
MEASURES: dict[str, type[ShiftMeasure]] = {m.name: m for m in (ReferenceShift, BNStatsShift, NoShift)}


def choose_shift(backbone, image_size: int, *, reference_root=None) -> ShiftMeasure:
    """The measure for ``backbone`` at ``image_size`` px, prepared: stored reference moments for these
    weights, else BatchNorm statistics, else :class:`NoShift` with both reasons.

    A stored reference file that is not valid for these weights is an :class:`AdvisorError`.
    """
    reasons = []
    for m in (ReferenceShift(reference_root), BNStatsShift()):
        why = m.prepare(backbone, image_size)
        if why is None:
            return m
        reasons.append(why)
    return NoShift(" and ".join(reversed(reasons)) + " (create them with 'advisor reference SOURCE_DATA --model NAME')")


def shift_info(measure: ShiftMeasure) -> ShiftInfo:
    """What the Profile records about ``measure``."""
    return ShiftInfo(measure=measure.name, reason=measure.reason, source=measure.source())


def measure_of(profile: Profile) -> ShiftMeasure:
    """The measure that produced ``profile``'s block shifts, for reading its label, caption, threshold and
    reason (not prepared: it measures nothing). A Profile written before measures were recorded had
    BatchNorm statistics wherever it has a shift."""
    info = profile.shift_measure
    if info is None:
        if any(b.shift is not None for b in profile.blocks):
            return BNStatsShift()
        return NoShift("not recorded in this profile")
    if info.measure == NoShift.name:
        return NoShift(info.reason or "no shift measure applies")
    cls = MEASURES.get(info.measure)
    if cls is None:
        return NoShift(f"unknown shift measure '{info.measure}' in this profile")
    return cls()
