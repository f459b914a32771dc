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


def search(dataset: str, model: str = "mobilenet_v2", *, progress=None, **options) -> SearchResult:
    """Run (or resume) the study of ``strategy`` (default "auto": the advised one) on ``dataset`` with
    ``model``; ``options``: the other fields of :class:`SearchConfig` (trials, space, storage, workspace,
    ...). ``progress(stage, done, total, note)``: as for :func:`run_search`."""
    return run_search(SearchConfig(dataset=dataset, model=model, **options), progress=progress)

__all__ = [
    "SearchConfig",
    "SearchResult",
    "run_search",
    "search",
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


from advisor._verb import callable_as  # noqa: E402  (after the verb is defined)

callable_as(__name__, "search")  # advisor.search(...) calls search
