"""A space in Optuna: one trial's parameters (define-by-run), and a given configuration (the advice's)
as the Optuna names and values ``study.enqueue_trial`` takes, snapped into the space's ranges."""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any, Sequence

from advisor import strategies
from advisor.errors import AdvisorError
from advisor.search.space._base import ParamSpec, Space, is_bool, optuna_name, param_of, same
from advisor.search.space._resolve import bounds, check_space, depth, plain

if TYPE_CHECKING:  # optuna and the advice package are only needed by callers
    import optuna

    from advisor.advise.advice import Advice


def suggest(trial: optuna.Trial, space: Space, block_names: Sequence[str]) -> tuple[str, dict]:
    """Sample one configuration (define-by-run) and return ``(strategy, params)`` for ``run_strategy``.

    Several strategies: ``trial.suggest_categorical("strategy", ...)`` first, then the chosen
    strategy's parameters under ``"{strategy}.{param}"``. Fixed values are returned but not
    suggested. Percentages resolve against ``len(block_names)``; ``block`` comes back as a name.
    """
    check_space(space, block_names)
    n = len(block_names)
    names = list(space.strategies)
    strategy = trial.suggest_categorical("strategy", names) if len(names) > 1 else names[0]
    params: dict[str, Any] = {}
    for name, spec in space.strategies[strategy].params.items():
        dom = param_of(strategy, name)
        key = optuna_name(space, strategy, name)
        if spec.kind == "fixed":
            value = depth(spec.value, dom, n)
        elif spec.kind == "categorical":
            value = trial.suggest_categorical(key, list(spec.choices or []))
        else:
            low, high = bounds(space, strategy, spec, n)
            if spec.kind == "int":
                value = trial.suggest_int(key, int(low), int(high), step=int(spec.step or 1), log=spec.log)
            else:
                value = trial.suggest_float(key, float(low), float(high), step=spec.step, log=spec.log)
        params[name] = plain(value, dom, block_names)
    return strategy, params


def optuna_params(strategy: str, params: dict, space: Space,
                  block_names: Sequence[str] | None = None) -> dict:
    """Plain parameters of ``strategy`` as Optuna names/values for ``study.enqueue_trial``.

    Adds ``"strategy"`` and the ``"{strategy}."`` prefix when the space has several strategies;
    drops fixed parameters (they are not suggested). A block name becomes its index when
    the space searches ``block`` by index (needs ``block_names``).
    """
    if strategy not in space.strategies:
        raise AdvisorError(f"strategy {strategy!r} is not in search space {space.source}",
                           f"use one of {', '.join(space.strategies)}")
    ss = space.strategies[strategy]
    out: dict[str, Any] = {"strategy": strategy} if len(space.strategies) > 1 else {}
    for name, value in params.items():
        spec = ss.params.get(name)
        if spec is None:
            raise AdvisorError(f"parameter {name!r} is not searched for {strategy} in {space.source}",
                               f"use {', '.join(ss.params) or 'no parameters'}")
        if spec.kind == "fixed":
            continue
        if name == "block" and isinstance(value, str) and block_names is not None and value in block_names:
            by_name = spec.kind == "categorical" and any(same(value, c) for c in spec.choices or [])
            if not by_name:
                value = list(block_names).index(value)
        out[optuna_name(space, strategy, name)] = value
    return out


def _snap(value: float, spec: ParamSpec, low: float, high: float) -> float:
    value = min(max(value, low), high)
    if spec.step:
        steps = math.floor((high - low) / spec.step + 1e-9)
        value = low + min(max(round((value - low) / spec.step), 0), steps) * spec.step
    return int(round(value)) if spec.kind == "int" else float(round(value, 12))


def _fit(space: Space, strategy: str, spec: ParamSpec, given: Any, n: int,
         block_names: Sequence[str] | None) -> Any:
    """The advice's value for ``spec`` inside the space, or the range's middle / first choice."""
    dom = param_of(strategy, spec.name)
    if dom.base == "block" and isinstance(given, str) and block_names and given in block_names:
        as_index = list(block_names).index(given)
        if spec.kind == "int" or not any(same(given, c) for c in spec.choices or []):
            given = as_index
    if spec.kind == "categorical":
        choices = list(spec.choices or [])
        return next((c for c in choices if same(c, given)), choices[0])
    low, high = bounds(space, strategy, spec, n)
    if isinstance(given, numbers.Real) and not is_bool(given):
        return _snap(float(given), spec, low, high)
    middle = math.sqrt(low * high) if spec.log else (low + high) / 2.0
    return _snap(middle, spec, low, high)


def advice_trial(advice: Advice, space: Space, n_blocks: int,
                 block_names: Sequence[str] | None = None) -> tuple[str, dict] | None:
    """The advice's configuration inside ``space``, ready for ``study.enqueue_trial``.

    Returns ``(strategy, optuna_params)``: the advised strategy (``full_finetune`` becomes
    ``last_k`` with ``k = n_blocks`` when only ``last_k`` is in the space) and its searched
    parameters under Optuna's names. The advice's values are clamped into the ranges;
    parameters it does not set take the geometric middle of log ranges, the middle of
    linear ones, or the first choice. None when the space does not hold the strategy.
    """
    strategy, given = advice.strategy, dict(advice.params or {})
    if strategy not in space.strategies:  # full_finetune is last_k with k = n_blocks (its declaration)
        inside = strategies.expressed_in(strategy, space.strategies, n_blocks)
        if inside is None:
            return None
        strategy, given = inside[0], {**given, **inside[1]}
    values = {name: _fit(space, strategy, spec, given.get(name), n_blocks, block_names)
              for name, spec in space.strategies[strategy].params.items() if spec.kind != "fixed"}
    return strategy, optuna_params(strategy, values, space, block_names)
