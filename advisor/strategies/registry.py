"""The strategy registry: every strategy the tool knows, by name, in registration order.

``register(strategy)`` adds one (the built-ins register themselves when
:mod:`advisor.strategies` is imported); ``get(name)`` finds one or raises an AdvisorError
that names the choices; ``names()`` lists them. Everything that needs to know which
strategies exist (the trainer, search spaces, the command line, the advice, reports)
asks here.
"""

from __future__ import annotations

from advisor.errors import AdvisorError
from advisor.strategies._base import Strategy
from advisor.strategies._constraints import closest

_STRATEGIES: dict[str, Strategy] = {}


def register(strategy: Strategy, *, replace: bool = False) -> Strategy:
    """Add ``strategy``; a second one with the same name is an error unless ``replace``."""
    if not isinstance(strategy, Strategy):
        raise TypeError(f"register() takes a Strategy, got {type(strategy).__name__}")
    if strategy.name in _STRATEGIES and not replace:
        raise ValueError(f"strategy {strategy.name!r} is already registered")
    _STRATEGIES[strategy.name] = strategy
    return strategy


def unregister(name: str) -> None:
    """Remove a strategy (tests that register a throwaway one clean up with this)."""
    _STRATEGIES.pop(name, None)


def get(name: object) -> Strategy:
    """The strategy called ``name``; AdvisorError (with the closest name) when there is none."""
    if not isinstance(name, str) or name not in _STRATEGIES:
        raise AdvisorError(f"unknown strategy {name!r}", f"{closest(name, _STRATEGIES)}choose one of {', '.join(_STRATEGIES)}")
    return _STRATEGIES[name]


def names() -> tuple[str, ...]:
    """Every registered strategy name, in registration order."""
    return tuple(_STRATEGIES)


def all_strategies() -> tuple[Strategy, ...]:
    return tuple(_STRATEGIES.values())


def probe_names() -> tuple[str, ...]:
    """The strategies that are one closed-form fit on frozen features (no epochs to prune)."""
    return tuple(s.name for s in _STRATEGIES.values() if not s.trains_network)


def network_names() -> tuple[str, ...]:
    """The strategies that train a network over epochs."""
    return tuple(s.name for s in _STRATEGIES.values() if s.trains_network)


def canonical(strategy: str | None, params: dict | None, n_blocks: int | None) -> str | None:
    """The strategy a run is, by the declared equivalences: ``full_finetune`` for ``last_k`` with every block
    trainable (``full_finetune`` declares it), else ``strategy`` itself."""
    if strategy is None or not n_blocks:
        return strategy
    for s in _STRATEGIES.values():
        for same in s.same_as:
            if same.strategy == strategy and same.matches(params, int(n_blocks)):
                return s.name
    return strategy


def expressed_in(strategy: str, available, n_blocks: int) -> tuple[str, dict] | None:
    """``(other, params)``: ``strategy`` as a run of one of ``available`` (full_finetune as last_k with
    k = n_blocks), by its declared equivalences; None when none of them holds it."""
    s = _STRATEGIES.get(strategy)
    for same in (s.same_as if s is not None else ()):
        if same.strategy in available:
            return same.strategy, dict(same.params(int(n_blocks)))
    return None
