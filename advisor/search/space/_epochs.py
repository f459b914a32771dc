"""The budget in epochs: the most a trial runs, and the most fine-tuning epochs it reports to the pruner.

Which strategies train over epochs, their default ``epochs`` and the warm-up length come from the
registry (:mod:`advisor.strategies`).
"""

from __future__ import annotations

from advisor import strategies
from advisor.search.space._base import ParamSpec, Space, StrategySpace

#: Head-only warm-up epochs the trainer adds for ``warmup=True`` (the registry's).
WARMUP_EPOCHS = strategies.DEFAULT_WARMUP_EPOCHS
#: The network trainer's epochs when a space does not set them (the registry's default).
TRAIN_DEFAULT_EPOCHS = strategies.NETWORK_DEFAULTS["epochs"]


def _largest(spec: ParamSpec | None, default: int) -> int:
    if spec is None:
        return default
    if spec.kind == "fixed":
        return int(spec.value)
    if spec.kind == "categorical":
        return int(max(spec.choices or [default]))
    return int(spec.high)


def _default_epochs(strategy: str) -> int:
    s = strategies.get(strategy)
    return int(s.param("epochs").default) if s.has("epochs") else TRAIN_DEFAULT_EPOCHS


def _warm(ss: StrategySpace) -> int:
    """The most heads-only warm-up epochs a trial of this strategy space can run."""
    if "warmup_epochs" in ss.params:
        return _largest(ss.params["warmup_epochs"], 0)
    w = ss.params.get("warmup")
    can = w is not None and ((w.kind == "fixed" and w.value is True)
                             or (w.kind == "categorical" and any(c is True for c in w.choices or [])))
    return WARMUP_EPOCHS if can else 0


def _networks(space: Space):
    return [(s, ss) for s, ss in space.strategies.items() if strategies.get(s).trains_network]


def max_epochs(space: Space) -> int:
    """The most trainer epochs one trial runs: 1 for probe-only spaces.

    A network strategy counts its largest ``epochs`` (the trainer's default when unset) plus
    the warm-up epochs when ``warmup`` can be true. The pruner counts fine-tuning epochs
    only (:func:`max_steps`).
    """
    best = 1
    for strategy, ss in _networks(space):
        best = max(best, _largest(ss.params.get("epochs"), _default_epochs(strategy)) + _warm(ss))
    return best


def max_steps(space: Space) -> int:
    """The most steps one trial reports to the pruner (its max resource): 1 for probe-only spaces.

    A step is a fine-tuning epoch (:func:`advisor.search._objective.pruner_step`): an LP-FT trial's
    head-only warm-up epochs are not reported, so step ``s`` of a trial with warm-up and of one
    without both come after ``s`` epochs of backbone training, and the pruner's budgets compare like
    with like. The most steps is therefore the largest ``epochs``, warm-up or not; the min resource
    is 1 step (the first fine-tuning epoch).
    """
    best = 1
    for strategy, ss in _networks(space):
        best = max(best, _largest(ss.params.get("epochs"), _default_epochs(strategy)))
    return best
