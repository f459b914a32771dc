"""A strategy's configuration in the form the oracle's budget stores it, so that an advised or a baseline
configuration finds its budget twin's record (the same config key).

Defaults come from their owners, never restated here: a parameter's from the strategy registry
(:mod:`advisor.strategies`, the declared defaults ``Strategy.validate`` fills in), a recipe parameter's
(``lr_ratio``) from the source family's recipe, as the trainer fills it in, and the early SVM's block from its
trainer. Only the keys the grid's records were written with are kept: the configuration's key, and so every
stored result, depends on them.
"""

from __future__ import annotations

from advisor import strategies
from advisor.strategies import RECIPE_PARAMS, recipe

from .budget import network_common


def default(strategy: str, name: str, family: str = "cnn"):
    """The value a run of ``strategy`` takes for parameter ``name`` when none is given: the ``family``'s recipe
    for a recipe parameter, else the registry's declared default (None: the trainer's, e.g. no warm-up)."""
    if name in RECIPE_PARAMS and strategies.get(strategy).has(name):
        return getattr(recipe(family), name)
    return strategies.get(strategy).param(name).default_for(None)


def advised_config(advice, n_train: int) -> tuple[str, dict]:
    """The advised strategy with its advised parameters, the grid's epochs and the trainers' defaults."""
    p = dict(advice.params)
    s = advice.strategy
    if s == "linear_probe":
        return s, {"C": float(p.get("C", default(s, "C")))}
    if s == "svm_early":
        block = p.get("block")
        return s, {"block": block, "C": float(p.get("C", default(s, "C")))}
    if s in ("last_k", "full_finetune"):
        out = {k: p[k] for k in ("k", "lr_ratio", "warmup") if k in p}
        return s, {**out, **network_common(n_train)}
    if strategies.get(s).kind == "network":  # surgical, norm_tune, lora, auto_rgn: the grid's training budget
        return s, {**p, **network_common(n_train)}
    return s, p


def _fill_defaults(strategy: str, params: dict, n_train: int, n_blocks: int, family: str = "cnn") -> dict:
    """A baseline's configuration in the form the budget uses (so a budget run is reused)."""
    from advisor.train._probe import default_svm_block

    if strategy == "svm_early" and params.get("block") is None:
        return {"block": default_svm_block(n_blocks), "C": params["C"]}
    if strategies.get(strategy).kind == "network":
        return {**params, "lr_ratio": params.get("lr_ratio", default(strategy, "lr_ratio", family)),
                **network_common(n_train)}
    return params


def _norm_params(strategy: str, params: dict, block_names: list[str], family: str = "cnn") -> dict:
    """Block names become indices and keys sort, so an advised config matches its budget twin (a
    missing rate ratio is the ``family``'s recipe's, as the trainer fills it in)."""
    p = dict(params)
    if strategy in ("svm_early", "bn_adapt") and isinstance(p.get("block"), str):  # bn_adapt's early SVM too
        p["block"] = block_names.index(p["block"])
    if strategy == "surgical":  # the check names its range by blocks, the budget's thirds by index
        for end in ("first", "last"):
            if isinstance(p.get(end), str):
                p[end] = block_names.index(p[end])
    if strategy == "full_finetune":
        p["warmup"] = bool(p.get("warmup", default(strategy, "warmup")))
        p.setdefault("lr_ratio", default(strategy, "lr_ratio", family))
        p = {"warmup": p.pop("warmup"), "lr_ratio": p.pop("lr_ratio"), **p}
    if strategy == "last_k":
        p.setdefault("lr_ratio", default(strategy, "lr_ratio", family))
        p = {"k": p.pop("k"), "lr_ratio": p.pop("lr_ratio"), **p}
    return p
