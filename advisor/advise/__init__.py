"""Advice: from a Profile to one recommended strategy with its evidence."""

from advisor.advise.advice import Advice, Alternative, Evidence, SearchSpace
from advisor.advise.rules import advise

__all__ = ["STRATEGIES", "Advice", "Alternative", "Evidence", "SearchSpace", "advise"]


def __getattr__(name: str):
    if name == "STRATEGIES":  # the registry's strategy names (advisor.strategies), read when asked
        from advisor import strategies

        return strategies.names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
