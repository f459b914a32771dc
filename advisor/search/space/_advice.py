"""The search space an Advice suggests (``--space auto``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from advisor import strategies
from advisor.search.space._base import ParamSpec, Space, StrategySpace, same

if TYPE_CHECKING:
    from advisor.advise.advice import Advice

_NETWORK = strategies.get("last_k")
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
    if strategy == "multi_task":
        tasks = (advice.params or {}).get("tasks")
        if tasks:
            p["tasks"] = ParamSpec("tasks", "fixed", value=list(tasks))
        p["compare"] = ParamSpec("compare", "fixed", value=False)  # separate per-task models: final run only
    if strategy == "pipeline_vs_end_to_end":
        p["learning_curve"] = ParamSpec("learning_curve", "fixed", value=False)
    return StrategySpace(strategy, p)


def space_from_advice(advice: Advice) -> Space:
    """The search space an Advice suggests (``source="auto"``).

    Probes search ``C`` (log, ``probe_c``), ``svm_early`` also ``block`` over ``probe_blocks``;
    when the advice's block range reaches 1 or more a ``last_k`` sub-space with ``k`` in
    ``1..high`` is added so the search can check light fine-tuning. Network strategies search
    ``k`` (``last_k``; ``full_finetune`` is ``k = n_blocks`` inside it), learning rates, layer
    decay, weight decay and warm-up, with epochs and batch size fixed.
    """
    ss = advice.search_space
    strategy = advice.strategy
    lo, hi = (int(b) for b in ss.trainable_blocks)
    hi = min(hi, int(ss.n_blocks)) if ss.n_blocks else hi
    chosen: dict[str, StrategySpace] = {}
    kind = strategies.get(strategy).kind
    if kind == "probe":
        p: dict[str, ParamSpec] = {}
        if strategy == "svm_early":
            blocks = list(ss.probe_blocks)
            advised = (advice.params or {}).get("block")
            if isinstance(advised, str) and advised not in blocks:
                blocks.append(advised)
            p["block"] = _choice("block", blocks) if blocks else ParamSpec("block", "int", low="30%", high="90%")
        p["C"] = _range("C", ss.probe_c, log=True)
        chosen[strategy] = StrategySpace(strategy, p)
        if hi >= 1:
            chosen["last_k"] = _network_space("last_k", advice, 1, hi)
    else:  # one network (full_finetune is k = n_blocks inside last_k); multi-task and pipeline keep their own
        own = strategy if kind in ("multi", "pipeline") else "last_k"
        chosen[own] = _network_space(own, advice, lo, hi)
    return Space(chosen, source="auto", description=f"from the advice ({strategy})")
