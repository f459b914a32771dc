"""The pruner a search uses, by name."""

from __future__ import annotations

from advisor.errors import AdvisorError

PRUNERS = ("hyperband", "halving", "none")  # the names make_pruner knows, hyperband the default


def make_pruner(name: str, space):
    """The pruner over fine-tuning epochs (:func:`~advisor.search.space.max_steps`): a trial's step ``s``
    is its ``s``-th epoch of backbone training, after any head-only warm-up, so trials with and without
    LP-FT warm-up are compared after the same training budget."""
    import optuna

    from advisor.search.space import max_steps

    top = max(1, max_steps(space))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=top, reduction_factor=3)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise AdvisorError(f"unknown pruner {name!r}", f"use {', '.join(PRUNERS[:-1])} or {PRUNERS[-1]}")
