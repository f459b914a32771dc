"""Hyper-parameter search over the advised strategies (``advisor search``)."""

from advisor.search.space import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    NETWORK_STRATEGIES,
    PARAMS,
    ParamSpec,
    Space,
    StrategySpace,
    advice_trial,
    check_space,
    default_space,
    load_space,
    max_epochs,
    optuna_params,
    space_from_advice,
    space_to_dict,
    space_to_yaml,
    suggest,
)

from advisor.search.study import SearchConfig, SearchResult, run_search

__all__ = [
    "SearchConfig",
    "SearchResult",
    "run_search",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EPOCHS",
    "NETWORK_STRATEGIES",
    "PARAMS",
    "ParamSpec",
    "Space",
    "StrategySpace",
    "advice_trial",
    "check_space",
    "default_space",
    "load_space",
    "max_epochs",
    "optuna_params",
    "space_from_advice",
    "space_to_dict",
    "space_to_yaml",
    "suggest",
]
