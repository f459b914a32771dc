"""Search spaces for ``advisor search``: what Optuna may vary for each strategy.

A space is read from a YAML file (format in ``search_spaces/README.md``), built from an
Advice's suggested ranges, or taken from the ranges a strategy declares in the registry
(:func:`default_space`), and turned into one trial's parameters by :func:`suggest`
(define-by-run). One strategy::

    strategy: last_k
    params:
      k: {type: int, low: 1, high: "50%"}   # percent of the backbone's blocks
      head_lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
      epochs: 8                              # fixed, not searched

or several compared in one study (``strategies:`` maps each name to a params mapping or
to a single-strategy file next to this one). With several strategies the trial first
picks ``strategy`` and the parameters are named ``"{strategy}.{param}"`` in Optuna.

Which strategies and parameters exist, their types and bounds, come from
:mod:`advisor.strategies`. Every problem in a file is an :class:`~advisor.errors.AdvisorError`
naming the file and the key, e.g.
``search space last_k.yaml: params.head_lr.low must be a number, got 'abc'``.

One concept to a file: ``_base`` (the data classes and shared helpers), ``_yaml`` (reading a
file), ``_values`` and ``_parse`` (checking it), ``_dump`` (writing it), ``_resolve`` (against a
backbone), ``_optuna`` (sampling and enqueueing), ``_advice`` (the space an Advice suggests),
``_epochs`` (the epoch budget and the pruner's).
"""

from advisor.search.space._advice import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_WEIGHT_DECAY, space_from_advice
from advisor.search.space._base import KINDS, PARAMS, ParamSpec, Space, StrategySpace
from advisor.search.space._dump import space_to_dict, space_to_yaml
from advisor.search.space._epochs import TRAIN_DEFAULT_EPOCHS, WARMUP_EPOCHS, max_epochs, max_steps
from advisor.search.space._optuna import advice_trial, optuna_params, suggest
from advisor.search.space._parse import default_space, load_space
from advisor.search.space._resolve import check_space

__all__ = [
    "DEFAULT_BATCH_SIZE", "DEFAULT_EPOCHS", "DEFAULT_WEIGHT_DECAY", "KINDS", "NETWORK_STRATEGIES", "PARAMS",
    "TRAIN_DEFAULT_EPOCHS", "WARMUP_EPOCHS", "ParamSpec", "Space", "StrategySpace", "advice_trial", "check_space",
    "default_space", "load_space", "max_epochs", "max_steps", "optuna_params", "space_from_advice", "space_to_dict",
    "space_to_yaml", "suggest",
]


def __getattr__(name: str):
    if name == "NETWORK_STRATEGIES":  # strategies that train a network (epochs, pruning), from the registry
        from advisor import strategies

        return strategies.network_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
