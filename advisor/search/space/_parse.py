"""Parsing a space file into a :class:`Space`, every parameter checked against its declaration in the
registry (:mod:`advisor.strategies`); and the default space of a strategy, from the ranges it declares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advisor import strategies
from advisor.search.space._base import PARAMS, ParamSpec, Space, StrategySpace, closest, fail, is_bool, percent, same
from advisor.search.space._values import number, value
from advisor.search.space._yaml import read
from advisor.strategies import Interval, Param

_SPEC_KEYS = ("type", "low", "high", "log", "step", "choices")
#: The domain of ``step`` for each numeric kind.
_STEP = {"int": Param("step", Interval(int, 1), example="1"),
         "float": Param("step", Interval(float, 0.0, None, "neither"), example="0.1")}


def _flow(v: Any) -> str:
    """A spec or value as one line of YAML flow style, for messages: ``{type: int, low: 1, high: "50%"}``."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_flow(x) for x in v) + "]"
    if is_bool(v):
        return "true" if v else "false"
    plain = isinstance(v, str) and v.isidentifier() and v.lower() not in ("true", "false", "yes", "no", "null")
    return f'"{v}"' if isinstance(v, str) and not plain else str(v)


def _parse_spec(strategy: str, name: str, raw: object, src: str, where: str) -> ParamSpec:
    dom = PARAMS[strategy][name]
    if isinstance(raw, list) and not dom.listed:
        raise fail(src, where, f"is a list {raw}; a fixed value is one value",
                   f"to search it write {{type: categorical, choices: {raw}}}")
    if not isinstance(raw, dict):
        return ParamSpec(name, "fixed", value=value(raw, dom, src, where))
    if dom.listed:
        raise fail(src, where, "cannot be searched", f"write the list itself, e.g. {name}: {dom.example}")
    for key in raw:
        if key not in _SPEC_KEYS:
            raise fail(src, f"{where}.{key}", "is not a spec key",
                       f"{closest(key, _SPEC_KEYS)}use {', '.join(_SPEC_KEYS)}")
    kind = raw.get("type")
    if kind is None:  # inferred: choices -> categorical, else the parameter's own number type
        kind = "categorical" if "choices" in raw else ("float" if dom.base == "float" else "int")
    if kind not in ("int", "float", "categorical"):
        fix = "write the value itself (e.g. epochs: 8) to fix it" if kind == "fixed" else \
            f"{closest(kind, ['int', 'float', 'categorical'])}use int, float or categorical"
        raise fail(src, f"{where}.type", f"must be int, float or categorical, got {kind!r}", fix)
    if dom.base in ("bool", "text", "pattern") and kind != "categorical":
        choices = "[true, false]" if dom.base == "bool" else "[" + ", ".join(f'"{o}"' for o in dom.options) + "]" \
            if dom.base == "text" else f"[{dom.example}, ...]"
        raise fail(src, f"{where}.type", f"is {kind}, but {name} is {dom.describe()}",
                   f"search it with {{type: categorical, choices: {choices}}} or write one value")
    if kind == "float" and dom.base in ("int", "block"):
        raise fail(src, f"{where}.type", f"is float, but {name} takes whole numbers", "use type: int")
    if kind == "int" and dom.base == "float":
        raise fail(src, f"{where}.type", f"is int, but {name} is a real number", "use type: float")
    used = ("choices",) if kind == "categorical" else ("low", "high", "log", "step")
    for key in raw:
        if key != "type" and key not in used:
            raise fail(src, f"{where}.{key}", f"is not used with type {kind}",
                       f"drop {key}" + (" or use type: categorical" if key == "choices" else ""))

    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise fail(src, f"{where}.choices", f"must be a non-empty list, got {choices!r}",
                       "e.g. choices: [32, 64, 128]")
        out: list = []
        for i, c in enumerate(choices):
            if isinstance(c, str) and percent(c) is not None:
                raise fail(src, f"{where}.choices[{i}]", f"is a percentage ({c!r}); choices must be plain values",
                           "use type: int with percent low/high, or list plain values")
            v = value(c, dom, src, f"{where}.choices[{i}]")
            if any(same(v, o) for o in out):
                raise fail(src, f"{where}.choices", f"lists {v!r} twice", "list each choice once")
            out.append(v)
        return ParamSpec(name, "categorical", choices=out)

    for key in ("low", "high"):
        if key not in raw:
            raise fail(src, where, f"has type {kind} but no {key}", f"add {key}: {dom.example}")
    low = number(raw["low"], dom, src, f"{where}.low", percent_ok=True)
    high = number(raw["high"], dom, src, f"{where}.high", percent_ok=True)
    if isinstance(low, str) == isinstance(high, str):
        lo = percent(low) if isinstance(low, str) else low
        hi = percent(high) if isinstance(high, str) else high
        if lo > hi:
            raise fail(src, where, f"has low {low!r} above high {high!r}", "swap them or fix one")
    log = raw.get("log", False)
    if not is_bool(log):
        raise fail(src, f"{where}.log", f"must be true or false, got {log!r}", "write log: true or leave it out")
    log = bool(log)
    if log and dom.base == "block":
        raise fail(src, f"{where}.log", "is not supported for block indices", "drop log")
    if log and not isinstance(low, str) and low <= 0:
        raise fail(src, f"{where}.log", f"needs low > 0, got low {low!r}",
                   f"raise low (e.g. {dom.example}) or drop log")
    step = raw.get("step")
    if step is not None:
        step_dom = _STEP[kind]
        step = number(step, step_dom, src, f"{where}.step", percent_ok=False)
        if log and not (kind == "int" and step == 1):
            raise fail(src, f"{where}.step", "cannot be combined with log", "drop step or log")
    return ParamSpec(name, kind, low=low, high=high, log=log, step=step)


def _parse_strategy(strategy: str, raw: object, src: str, where: str) -> StrategySpace:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise fail(src, where, f"must be a mapping of parameter names, got {type(raw).__name__}",
                   "e.g. head_lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}")
    known = PARAMS[strategy]
    params: dict[str, ParamSpec] = {}
    for name, spec in raw.items():
        if name in known and known[name].base == "all_blocks":
            raise fail(src, f"{where}.{name}", f"is not allowed for {strategy}, which trains every block",
                       f"drop {name}, or use strategy last_k to search {name}")
        if name not in known:
            raise fail(src, f"{where}.{name}", f"is not a parameter of {strategy}",
                       f"{closest(name, known)}use {', '.join(known)}")
        params[name] = _parse_spec(strategy, name, spec, src, f"{where}.{name}")
    for name, dom in known.items():
        if dom.required and name not in params:
            raise fail(src, f"{where}.{name}", f"is missing: {strategy} needs it",
                       f"add {name}: " + (_flow(dom.search) if dom.search is not None else dom.example))
    return StrategySpace(strategy, params)


def _strategy_name(name: object, src: str, where: str) -> str:
    if not isinstance(name, str) or name not in strategies.names():
        raise fail(src, where, f"names an unknown strategy {name!r}",
                   f"{closest(name, strategies.names())}use one of {', '.join(strategies.names())}")
    return str(name)


def _parse_single(data: dict, src: str) -> StrategySpace:
    if "strategy" not in data:
        raise fail(src, "strategy", "is missing", f"add strategy: NAME ({', '.join(strategies.names())})")
    strategy = _strategy_name(data["strategy"], src, "strategy")
    return _parse_strategy(strategy, data.get("params"), src, "params")


def load_space(path: str | Path) -> Space:
    """Read and check a search-space YAML file; every problem is an AdvisorError naming the key."""
    path = Path(path)
    src = str(path)
    data = read(path, src)
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        raise fail(src, "description", f"must be text, got {type(description).__name__}", "quote it")
    single, multi = ("strategy" in data or "params" in data), "strategies" in data
    if single and multi:
        raise fail(src, "", "has both strategy/params and strategies",
                   "use strategy + params for one strategy, strategies to compare several")
    if not multi:
        sspace = _parse_single(data, src)
        return Space({sspace.strategy: sspace}, source=src, description=description)
    raw = data["strategies"]
    if not isinstance(raw, dict) or not raw:
        raise fail(src, "strategies", "must map strategy names to params (or to a file)",
                   "e.g. strategies: {linear_probe: linear_probe.yaml, last_k: {k: {type: int, low: 1, high: 4}}}")
    chosen: dict[str, StrategySpace] = {}
    for name, entry in raw.items():
        strategy = _strategy_name(name, src, f"strategies.{name}")
        if isinstance(entry, str):
            ref = path.parent / entry
            sub = read(ref, str(ref))
            if "strategies" in sub:
                raise fail(src, f"strategies.{name}", f"refers to {entry}, which compares strategies itself",
                           "refer to a file with strategy: and params:")
            sspace = _parse_single(sub, str(ref))
            if sspace.strategy != strategy:
                raise fail(src, f"strategies.{name}", f"refers to {entry}, whose strategy is {sspace.strategy}",
                           f"refer to a {strategy} file or rename the key to {sspace.strategy}")
        else:
            sspace = _parse_strategy(strategy, entry, src, f"strategies.{name}")
        chosen[strategy] = sspace
    return Space(chosen, source=src, description=description)


def default_space(strategy: str) -> Space:
    """The space a strategy declares in the registry: each parameter's ``search`` range or fixed value.

    Parameters without one are left out (they keep the trainer's defaults). ``source`` is
    ``"registry:NAME"``; the result is checked like a file.
    """
    s = strategies.get(strategy)
    raw = {p.name: p.search for p in s.params if p.search is not None}
    src = f"registry:{strategy}"
    return Space({strategy: _parse_strategy(strategy, raw, src, "params")}, source=src,
                 description=f"{strategy}, the ranges declared in advisor.strategies")
