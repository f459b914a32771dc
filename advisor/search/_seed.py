"""A search that starts where analyze stopped: the measured check's runs as finished trials of the study.

The check (``advisor.advise.check``) trained its candidates on the training split and scored them on the
validation split -- the very split, seed and trainers a search trial uses. Every check run whose
configuration lies in the search space is therefore a trial already run: :func:`seed_study` adds it with
``study.add_trial`` under the distributions :func:`advisor.search.space.suggest` would have used, its
validation accuracy as the value and its wall time as a user attribute (``wall_time``; ``from_check``
marks it). The search never trains it again, and the trials it does train are counted against
``--trials`` without these (:func:`advisor.search.trials.finished_count`). A run the check's rung stopped
(``CheckRun.stopped_at``) did not finish: it enters as a *pruned* trial, its value reported at the epoch it
stopped after, as one the search's own pruner stopped.

A run lies in the space when its strategy is there (or is expressed by one there: full_finetune as last_k
with every block), every parameter the space searches holds the run's value inside its range or choices,
every parameter the space fixes equals it, and every parameter the run set that the space leaves out is at
the value a trial would get anyway (the registry's default, the family recipe's for rates). Anything else
is a different configuration and is not added, with the reason.

A saved analysis (``--advice PATH``) seeds only a study on the same data, seed and split sizes: another
split's validation accuracies are not this study's.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

from advisor import strategies
from advisor.search.space._base import ParamSpec, Space, is_bool, optuna_name, param_of, same
from advisor.search.space._resolve import bounds, depth, plain

#: the user attribute that marks a trial added from the measured check (its index in the check's runs)
FROM_CHECK = "from_check"


def _default(strategy: str, name: str, family: str) -> Any:
    """The value a trial gets for a parameter the space does not mention."""
    if name in strategies.RECIPE_PARAMS:
        return getattr(strategies.recipe(family), name)
    return param_of(strategy, name).default


def _inside(space: Space, strategy: str, name: str, value: Any, n: int, block_names: Sequence[str]):
    """``(ok, optuna value, distribution or None for a fixed parameter)`` for one searched or fixed parameter."""
    import optuna

    spec = space.strategies[strategy].params[name]
    dom = param_of(strategy, name)
    if dom.base == "block" and isinstance(value, str) and value in block_names:
        by_name = spec.kind == "categorical" and any(same(value, c) for c in spec.choices or [])
        if not by_name:
            value = list(block_names).index(value)
    if spec.kind == "fixed":
        want = depth(spec.value, dom, n)
        if dom.base == "block" and isinstance(want, str) and want in block_names:
            want = list(block_names).index(want)
        return same(want, value), None, None
    if spec.kind == "categorical":
        choices = list(spec.choices or [])
        hit = next((c for c in choices if same(c, value)), None)
        if dom.base == "block" and hit is None and isinstance(value, int) and 0 <= value < len(block_names):
            hit = next((c for c in choices if same(c, block_names[value])), None)
        return hit is not None, hit, optuna.distributions.CategoricalDistribution(choices)
    if not isinstance(value, numbers.Real) or is_bool(value):
        return False, None, None
    low, high = bounds(space, strategy, spec, n)
    if not (low <= value <= high) or (spec.log and value <= 0):
        return False, None, None
    if spec.step:
        k = (value - low) / spec.step
        if abs(k - round(k)) > 1e-9:
            return False, None, None
    if spec.kind == "int":
        if int(value) != value:
            return False, None, None
        return True, int(value), optuna.distributions.IntDistribution(int(low), int(high), step=int(spec.step or 1),
                                                                       log=spec.log)
    return True, float(value), optuna.distributions.FloatDistribution(float(low), float(high), step=spec.step,
                                                                      log=spec.log)


def _as_in_space(strategy: str, params: dict, space: Space, n_blocks: int) -> tuple[str, dict] | None:
    """``(strategy, params)`` as ``space`` expresses the run (full_finetune as last_k over every block), or None
    when no strategy of the space expresses it."""
    if strategy in space.strategies:
        return strategy, dict(params)
    inside = strategies.expressed_in(strategy, space.strategies, n_blocks)
    return None if inside is None else (inside[0], {**params, **inside[1]})


def check_trial(strategy: str, params: dict, space: Space, block_names: Sequence[str], family: str):
    """``(optuna params, distributions, strategy, plain params)`` of one check run inside ``space`` (the strategy
    the space expresses it by), or a string saying why it is not in it."""
    import optuna

    n = len(block_names)
    inside = _as_in_space(strategy, params, space, n)
    if inside is None:
        return f"{strategy} is not in the space"
    strategy, given = inside
    ss = space.strategies[strategy]
    names = list(space.strategies)
    values: dict[str, Any] = {}
    dists: dict[str, Any] = {}
    if len(names) > 1:
        values["strategy"], dists["strategy"] = strategy, optuna.distributions.CategoricalDistribution(names)
    for name in ss.params:
        value = given.get(name, _default(strategy, name, family))
        ok, ov, dist = _inside(space, strategy, name, value, n, block_names)
        if not ok:
            return f"{strategy}'s {name}={value!r} is outside the space"
        if dist is not None:
            key = optuna_name(space, strategy, name)
            values[key], dists[key] = ov, dist
    for name, value in given.items():
        if name not in ss.params and not same(value, _default(strategy, name, family)):
            return f"{strategy}'s {name}={value!r} differs from what a trial runs"
    as_run = {name: plain(given.get(name, _default(strategy, name, family)), param_of(strategy, name), block_names)
              for name in ss.params}  # as a trial records it: a block by name
    return values, dists, strategy, as_run


def hold_check(space: Space, check, block_names: Sequence[str], family: str) -> Space:
    """``space`` (one built from the advice) made to hold the measured check's network runs: each network
    sub-space a run is expressed in fixes the run's training budget (``epochs``, ``patience``, ``batch_size``:
    the check's, sized for this training split, where the advice's space fixed 8 epochs whatever the data), and
    its rate ranges and choices reach the values the run trained with (the recipe's and the registry's defaults
    where the run set none). Its depth and every other fixed value stay as the advice chose them, so a run
    outside them stays out. Without a check, or a check without network runs, ``space`` as it is."""
    import copy

    from advisor.advise.check import BUDGET_KEYS

    out = copy.deepcopy(space)
    n = len(block_names)
    for run in (check.runs if check is not None else []):
        inside = _as_in_space(run.strategy, run.params, out, n)
        if strategies.get(run.strategy).kind != "network" or inside is None:
            continue
        strategy, given = inside
        ss = out.strategies[strategy]
        for name in BUDGET_KEYS:
            if name in given:
                ss.params[name] = ParamSpec(name, "fixed", value=given[name])
        for name, spec in ss.params.items():
            if name in BUDGET_KEYS or param_of(strategy, name).base == "block" or name == "k":
                continue
            value = given.get(name, _default(strategy, name, family))
            if spec.kind == "categorical" and not any(same(value, c) for c in spec.choices or []):
                spec.choices = [*(spec.choices or []), value]
            elif spec.kind in ("int", "float") and isinstance(value, numbers.Real) and not is_bool(value) \
                    and isinstance(spec.low, numbers.Real) and isinstance(spec.high, numbers.Real) \
                    and not (spec.log and value <= 0) and spec.step is None:
                spec.low, spec.high = min(spec.low, value), max(spec.high, value)
    return out


def advised_run(advice, space: Space, block_names: Sequence[str], family: str) -> dict | None:
    """The Optuna parameters of the check run the advice is (when the check decided it) inside ``space``: the
    advised configuration exactly as it trained, budget and defaults included; None otherwise."""
    check = getattr(advice, "check", None)
    win = check.winner() if check is not None and getattr(advice, "decided_by", None) == "check" else None
    if win is None:
        return None
    got = check_trial(win.strategy, win.params, space, block_names, family)
    return None if isinstance(got, str) else got[0]


def seed_study(study, check, space: Space, block_names: Sequence[str], family: str,
               advised: dict | None = None) -> tuple[list[int], list[str]]:
    """Add every check run inside ``space`` as a finished trial of ``study`` (only once: a study that already
    holds trials from a check gets none); the one whose Optuna parameters equal ``advised`` (the advice's
    configuration in this space) is marked as the advised trial (user attribute ``advice``). Returns the added
    trials' numbers and, for each run left out, why."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    if check is None or not check.runs or any(FROM_CHECK in t.user_attrs for t in trials):
        return [], []
    added, left_out, seen = [], [], set()
    for i, run in enumerate(check.runs):
        got = check_trial(run.strategy, run.params, space, block_names, family)
        if isinstance(got, str):
            left_out.append(f"{run.strategy} {run.params}: {got}")
            continue
        values, dists, strategy, as_run = got
        key = tuple(sorted((k, repr(v)) for k, v in values.items()))
        if key in seen or not math.isfinite(run.val_accuracy):
            continue  # two runs that are one configuration of this space: the first (cheaper) one counts
        seen.add(key)
        attrs = {FROM_CHECK: i, "strategy": strategy, "params": as_run, "wall_time": float(run.seconds)}
        if advised is not None and values == advised:
            attrs["advice"] = True  # the advice's own configuration: the check ran it
        outcome = {"value": float(run.val_accuracy)}
        stopped = getattr(run, "stopped_at", None)
        if stopped is not None:
            # the check's rung stopped it: its value is from part of its epochs, not the configuration's own, so it
            # enters as a pruned trial (its last report at the epoch it stopped after), as the search's own pruner
            # would have left it
            attrs["stopped_at"] = int(stopped)
            outcome = {"state": optuna.trial.TrialState.PRUNED,
                       "intermediate_values": {int(stopped): float(run.val_accuracy)}}
        study.add_trial(optuna.trial.create_trial(params=values, distributions=dists, user_attrs=attrs, **outcome))
        added.append(study.get_trials(deepcopy=False)[-1].number)
    return added, left_out


def same_split(profile, ctx) -> str | None:
    """None when ``profile`` (a saved analysis) measured this context's data, seed and split; else why not."""
    if profile.fingerprint != ctx.dataset.fingerprint():
        return "the saved analysis measured other data"
    if int(profile.seed) != int(ctx.seed):
        return f"the saved analysis used seed {profile.seed}, this search {ctx.seed}"
    sizes = {"train": len(ctx.split.train), "val": len(ctx.split.val), "test": len(ctx.split.test)}
    if {k: int(v) for k, v in (profile.size.split or {}).items()} != sizes:
        return "the saved analysis used another split"
    return None
