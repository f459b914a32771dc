"""No shift measure: neither BatchNorm statistics nor reference moments exist for the network.

The shift is absent, with the reason; the advice then rests on the transferability curves and the
measured check (``advisor.advise.rules``).
"""

from __future__ import annotations

from advisor.measure._shift_base import ShiftMeasure


class NoShift(ShiftMeasure):
    """The absent measure: every block's shift is ``None``, and :attr:`reason` says why."""

    name = "none"
    label = "shift"
    needs = "nothing"
    caption = "shift: -"

    def __init__(self, reason: str = "no shift measure applies") -> None:
        self.reason = reason
        self.caption = f"shift: - ({reason})."

    def prepare(self, backbone, image_size: int) -> str | None:
        return None

    def block_shifts(self, collected) -> list[float | None]:
        return [None] * len(collected.pooled)
