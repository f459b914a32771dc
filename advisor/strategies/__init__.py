"""Strategies: one definition each (name, typed parameters, trainer), in one registry.

    from advisor import strategies
    strategies.names()                                   # ('linear_probe', 'svm_early', ...)
    strategies.get("last_k").validate({"k": 2}, n_blocks=19)

A strategy is one private file here declaring a :class:`Strategy`, registered below. The
trainer (``advisor.train``), search spaces (``advisor.search``), the command line, the
advice and the reports read it from the registry; nothing else lists strategies.
This package imports only the standard library and :mod:`advisor.errors`.
"""

from advisor.strategies._base import BEST_SVM_BLOCK, HEADS, KINDS, REQUIRED, CheckBudget, Param, SameAs, Strategy
from advisor.strategies._constraints import (
    AllBlocks,
    BlockCount,
    BlockRef,
    Boolean,
    Constraint,
    Fractions,
    Interval,
    Labels,
    Options,
    Pattern,
)
from advisor.strategies._auto_rgn import AUTO_RGN
from advisor.strategies._bn_adapt import BN_ADAPT
from advisor.strategies._full_finetune import FULL_FINETUNE
from advisor.strategies._last_k import LAST_K
from advisor.strategies._linear_probe import LINEAR_PROBE
from advisor.strategies._lora import DEFAULT_TARGETS as LORA_DEFAULT_TARGETS, LORA
from advisor.strategies._multi_task import MULTI_TASK
from advisor.strategies._norm_tune import NORM_TUNE
from advisor.strategies._pipeline import PIPELINE_VS_END_TO_END
from advisor.strategies._recipes import RECIPE_PARAMS, RECIPES, Recipe, recipe
from advisor.strategies._shared import DEFAULT_WARMUP_EPOCHS, NETWORK_DEFAULTS
from advisor.strategies._surgical import SURGICAL
from advisor.strategies._svm_early import SVM_EARLY
from advisor.strategies._table import parameter_table, space_table
from advisor.strategies.registry import (
    all_strategies,
    canonical,
    expressed_in,
    get,
    names,
    network_names,
    probe_names,
    register,
    unregister,
)

for _s in (LINEAR_PROBE, SVM_EARLY, LAST_K, FULL_FINETUNE, MULTI_TASK, PIPELINE_VS_END_TO_END, SURGICAL, NORM_TUNE,
           BN_ADAPT, LORA, AUTO_RGN):
    register(_s, replace=True)
del _s

__all__ = [
    "DEFAULT_WARMUP_EPOCHS", "HEADS", "KINDS", "NETWORK_DEFAULTS", "RECIPES", "RECIPE_PARAMS", "Recipe", "recipe", "REQUIRED",
    "AllBlocks", "BEST_SVM_BLOCK", "BlockCount", "BlockRef", "Boolean", "CheckBudget",
    "Constraint", "Fractions", "Interval", "Labels", "LORA_DEFAULT_TARGETS", "Options", "Pattern", "Param", "SameAs", "Strategy", "all_strategies", "canonical", "expressed_in", "get", "names",
    "network_names", "parameter_table", "probe_names", "register", "space_table", "unregister",
]
