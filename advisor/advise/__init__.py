"""Advice: from a Profile to one recommended strategy with its evidence."""

from advisor.advise.advice import STRATEGIES, Advice, Alternative, Evidence, SearchSpace
from advisor.advise.rules import advise

__all__ = ["STRATEGIES", "Advice", "Alternative", "Evidence", "SearchSpace", "advise"]
