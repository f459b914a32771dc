"""The Advice: one recommended strategy with the evidence that decided it."""

from __future__ import annotations

from dataclasses import dataclass, field

from advisor.advise.check import MeasuredCheck


def __getattr__(name: str):
    if name == "STRATEGIES":  # the strategies an advice can name: the registry's, read when asked
        from advisor import strategies

        return strategies.names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class Evidence:
    """One measured value, the threshold it was compared with, and what that meant."""

    name: str
    value: float | str | None
    threshold: str
    verdict: str


@dataclass
class Alternative:
    strategy: str
    params: dict
    why: str


@dataclass
class SearchSpace:
    """Suggested ranges for the search.

    ``trainable_blocks`` is k, the number of top backbone blocks that train (0 = probe
    only, n_blocks = everything); learning rates are per step for the new head;
    ``lr_ratio`` is backbone rate / head rate; ``layer_decay`` multiplies the rate from
    one block to the one below.
    """

    strategy: str
    trainable_blocks: list[int]  # [low, high], inclusive
    n_blocks: int
    head_lr: list[float]  # [low, high], log scale
    lr_ratio: list[float]  # [low, high], log scale
    layer_decay: list[float]  # [low, high]
    warmup: list[bool]  # linear-probe warm-up choices
    probe_blocks: list[str] = field(default_factory=list)  # candidate blocks for probe strategies
    probe_c: list[float] = field(default_factory=lambda: [1e-3, 1e2])  # inverse regularisation, log scale


@dataclass
class Advice:
    strategy: str
    params: dict
    confidence: float  # 0..1: P(within 1 point of the oracle's strategy), calibrated (advisor.advise.confidence)
    summary: str
    evidence: list[Evidence]
    reasons: list[str]
    alternatives: list[Alternative]
    search_space: SearchSpace
    notes: list[str] = field(default_factory=list)
    check: MeasuredCheck | None = None  # the measured check, when it decided (advisor.advise.check)
    #: the deciding margin's own score in [0.35, 0.95] before calibration, and who decided ("rules", "check",
    #: "structural"); None in an Advice written before the confidence was calibrated
    raw_confidence: float | None = None
    decided_by: str | None = None
