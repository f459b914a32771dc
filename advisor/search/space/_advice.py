"""The search space an Advice suggests (``--space auto``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from advisor import strategies
from advisor.search.space._base import ParamSpec, Space, StrategySpace, same

if TYPE_CHECKING:
    from advisor.advise.advice import Advice

#: The network whose depth (k, its top blocks) a space from an Advice searches: a probe's advice gets it beside
#: the probe, and a network strategy that is one of its runs (full_finetune: k = every block) is searched inside it.
NETWORK = "last_k"
_NETWORK = strategies.get(NETWORK)
#: Epochs per trial in spaces built from an Advice (what a search of last_k fixes in the registry).
DEFAULT_EPOCHS = int(_NETWORK.param("epochs").search)
#: Batch size in spaces built from an Advice.
DEFAULT_BATCH_SIZE = int(_NETWORK.param("batch_size").search)
#: Weight-decay range (log scale) in spaces built from an Advice (the registry's search range).
DEFAULT_WEIGHT_DECAY = (_NETWORK.param("weight_decay").search["low"], _NETWORK.param("weight_decay").search["high"])


def _range(name: str, bounds: Sequence[float], *, log: bool, integer: bool = False) -> ParamSpec:
    lo, hi = (int(b) if integer else float(b) for b in bounds)
    if lo == hi:
        return ParamSpec(name, "fixed", value=lo)
    return ParamSpec(name, "int" if integer else "float", low=lo, high=hi, log=log)


def _choice(name: str, options: Sequence[Any]) -> ParamSpec:
    unique: list = []
    for o in options:
        if not any(same(o, u) for u in unique):
            unique.append(o)
    return ParamSpec(name, "fixed", value=unique[0]) if len(unique) == 1 else ParamSpec(name, "categorical", choices=unique)


def _declared(strategy: str, p: dict[str, ParamSpec], advice: Advice) -> StrategySpace:
    """``p`` (only the parameters ``strategy`` has), then what the declaration and the advice fix: the advised value
    of each parameter the space does not search (multi_task's tasks, a surgical range), and each parameter whose
    declared search is one value other than its default (multi_task's ``compare``, the pipeline's
    ``learning_curve``: extra work a search leaves to the final run)."""
    declared = strategies.get(strategy)
    p = {name: spec for name, spec in p.items() if declared.has(name)}
    if advice.strategy == strategy:
        for name, value in (advice.params or {}).items():
            if declared.has(name) and name not in p and value is not None and value != [] and value != ():
                p[name] = ParamSpec(name, "fixed", value=list(value) if isinstance(value, (list, tuple)) else value)
    for q in declared.params:
        if q.name not in p and q.search is not None and not isinstance(q.search, dict) and not same(q.search, q.default):
            p[q.name] = ParamSpec(q.name, "fixed", value=q.search)
    return StrategySpace(strategy, p)


def _network_space(strategy: str, advice: Advice, k_low: int, k_high: int) -> StrategySpace:
    ss = advice.search_space
    k_high = max(1, k_high)
    k_low = min(max(1, k_low), k_high)
    p: dict[str, ParamSpec] = {"k": _range("k", [k_low, k_high], log=False, integer=True)}
    p["head_lr"] = _range("head_lr", ss.head_lr, log=True)
    p["lr_ratio"] = _range("lr_ratio", ss.lr_ratio, log=True)
    p["layer_decay"] = _range("layer_decay", ss.layer_decay, log=False)
    p["weight_decay"] = _range("weight_decay", DEFAULT_WEIGHT_DECAY, log=True)
    p["warmup"] = _choice("warmup", [bool(w) for w in ss.warmup] or [False])
    p["epochs"] = ParamSpec("epochs", "fixed", value=DEFAULT_EPOCHS)
    p["batch_size"] = ParamSpec("batch_size", "fixed", value=DEFAULT_BATCH_SIZE)
    return _declared(strategy, p, advice)


def space_from_advice(advice: Advice) -> Space:
    """The search space an Advice suggests (``source="auto"``).

    Probes search ``C`` (log, ``probe_c``), and ``block`` over ``probe_blocks`` where the strategy declares a
    search over its block (``svm_early``); when the advice's block range reaches 1 or more a ``last_k``
    sub-space with ``k`` in ``1..high`` is added so the search can check light fine-tuning. Network strategies
    search ``k`` where they have it (``last_k``; ``full_finetune`` is ``k = n_blocks`` inside it, by its declared
    equivalence), learning rates, layer decay, weight decay and warm-up, with epochs and batch size fixed; the
    advised values of what is not searched stay (a surgical range, multi_task's tasks).
    """
    ss = advice.search_space
    strategy = advice.strategy
    lo, hi = (int(b) for b in ss.trainable_blocks)
    hi = min(hi, int(ss.n_blocks)) if ss.n_blocks else hi
    chosen: dict[str, StrategySpace] = {}
    declared = strategies.get(strategy)
    if declared.kind == "probe":
        p: dict[str, ParamSpec] = {}
        if declared.has("block") and isinstance(declared.param("block").search, dict):  # it searches its block
            blocks = list(ss.probe_blocks)
            advised = (advice.params or {}).get("block")
            if isinstance(advised, str) and advised not in blocks:
                blocks.append(advised)
            p["block"] = _choice("block", blocks) if blocks else ParamSpec("block", "int", low="30%", high="90%")
        p["C"] = _range("C", ss.probe_c, log=True)
        chosen[strategy] = _declared(strategy, p, advice)
        if hi >= 1:
            chosen[NETWORK] = _network_space(NETWORK, advice, 1, hi)
    else:  # one network: inside last_k when it is one of last_k's runs (full_finetune: k = n_blocks), else its own
        inside = declared.kind == "network" and (strategy == NETWORK or strategies.expressed_in(
            strategy, {NETWORK}, max(1, int(ss.n_blocks or hi))) is not None)
        own = NETWORK if inside else strategy
        chosen[own] = _network_space(own, advice, lo, hi)
    return Space(chosen, source="auto", description=f"from the advice ({strategy})")
