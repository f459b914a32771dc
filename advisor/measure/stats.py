"""Small statistics shared by the advice, the report and the benchmarks (standard library only: no numpy, no torch)."""

from __future__ import annotations

import math


def binomial_se(p: float, n: int | None, floor: float = 0.0) -> float:
    """The binomial standard error of an accuracy ``p`` measured on ``n`` items: ``sqrt(max(p (1 - p), floor) / n)``.

    ``floor`` keeps the error above zero for an accuracy of exactly 0 or 1 (the measured check's margin is divided
    by it); nan without items (``n`` None, 0 or less)."""
    if n is None or n <= 0:
        return float("nan")
    return math.sqrt(max(p * (1 - p), floor) / n)
