"""Search spaces for ``advisor search``: what Optuna may vary for each strategy.

A space is read from a YAML file (format in ``search_spaces/README.md``) or built from an
Advice's suggested ranges, and turned into one trial's parameters by :func:`suggest`
(define-by-run). One strategy::

    strategy: last_k
    params:
      k: {type: int, low: 1, high: "50%"}   # percent of the backbone's blocks
      head_lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
      epochs: 8                              # fixed, not searched

or several compared in one study (``strategies:`` maps each name to a params mapping or
to a single-strategy file next to this one). With several strategies the trial first
picks ``strategy`` and the parameters are named ``"{strategy}.{param}"`` in Optuna.

Every problem in a file is an :class:`~advisor.errors.AdvisorError` naming the file and
the key, e.g. ``search space last_k.yaml: params.head_lr.low must be a number, got 'abc'``.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import yaml

from advisor.errors import AdvisorError

if TYPE_CHECKING:  # optuna and the advice package are only needed by callers
    import optuna

    from advisor.advise.advice import Advice

#: Epochs per trial in spaces built from an Advice.
DEFAULT_EPOCHS = 8
#: Batch size in spaces built from an Advice.
DEFAULT_BATCH_SIZE = 64
#: Weight-decay range (log scale) in spaces built from an Advice.
DEFAULT_WEIGHT_DECAY = (1e-6, 1e-2)
#: The trainer's epochs when a network space does not set them (``NETWORK_DEFAULTS["epochs"]``).
TRAIN_DEFAULT_EPOCHS = 10
#: Head-only warm-up epochs the trainer adds for ``warmup=True`` (``DEFAULT_WARMUP_EPOCHS``).
WARMUP_EPOCHS = 2

#: Spec kinds: the three searched ones plus a fixed value.
KINDS = ("int", "float", "categorical", "fixed")
_SPEC_KEYS = ("type", "low", "high", "log", "step", "choices")
_TOP_KEYS = ("strategy", "params", "strategies", "description")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


# =========================================================================== parameter table
@dataclass(frozen=True)
class _Domain:
    """What one strategy parameter accepts.

    ``base``: "float", "int", "bool", "block" (name or index), "tasks" (list of label
    columns) or "text" (one of ``options``). ``depth``: percent strings allowed.
    """

    base: str
    low: float | None = None
    low_open: bool = False
    high: float | None = None
    depth: bool = False
    options: tuple[str, ...] = ()
    example: str = "1.0"

    def describe(self) -> str:
        """The accepted range in words, e.g. ``a number > 0``."""
        if self.base == "bool":
            return "true or false"
        if self.base == "text":
            return "one of " + ", ".join(repr(o) for o in self.options)
        what = "a whole number" if self.base in ("int", "block") else "a number"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"<= {self.high:g}")
        return what + (" " + " and ".join(parts) if parts else "")


_POSITIVE = _Domain("float", 0.0, True, example="1e-3")
_MAX_ITER = _Domain("int", 1, example="1000")
_NETWORK: dict[str, _Domain] = {
    "k": _Domain("int", 1, depth=True, example='"25%"'),
    "head_lr": _Domain("float", 0.0, True, example="1e-3"),
    "lr_ratio": _Domain("float", 0.0, True, example="0.1"),
    "layer_decay": _Domain("float", 0.0, True, 1.0, example="0.8"),
    "weight_decay": _Domain("float", 0.0, example="1e-4"),
    "epochs": _Domain("int", 1, example="8"),
    "batch_size": _Domain("int", 2, example="64"),
    "patience": _Domain("int", 0, example="3"),
    "warmup": _Domain("bool"),
    "augment": _Domain("bool"),
}

#: strategy -> parameter -> what it accepts (mirrors the validators in ``advisor.train``).
PARAMS: dict[str, dict[str, _Domain]] = {
    "linear_probe": {"C": _POSITIVE, "max_iter": _MAX_ITER},
    "svm_early": {"block": _Domain("block", 0, depth=True, example='"60%"'), "C": _POSITIVE, "max_iter": _MAX_ITER},
    "last_k": dict(_NETWORK),
    "full_finetune": {k: v for k, v in _NETWORK.items() if k != "k"},
    "multi_task": {**_NETWORK, "tasks": _Domain("tasks"), "compare": _Domain("bool")},
    "pipeline_vs_end_to_end": {**_NETWORK, "stage2_C": _POSITIVE,
                               "stage2_input": _Domain("text", options=("true", "predicted")),
                               "learning_curve": _Domain("bool")},
}
#: Strategies that train a network (epochs, pruning); the others are one-shot probes.
NETWORK_STRATEGIES = ("last_k", "full_finetune", "multi_task", "pipeline_vs_end_to_end")
_REQUIRED = {"last_k": ("k",)}


# =========================================================================== data classes
@dataclass
class ParamSpec:
    """How one parameter is chosen.

    ``kind`` "int" / "float": ``low``..``high`` inclusive (``low``/``high`` of ``k`` and
    ``block`` may be percent strings such as ``"50%"``), optional ``log`` and ``step``;
    "categorical": one of ``choices``; "fixed": always ``value``.
    """

    name: str
    kind: str
    low: float | int | str | None = None
    high: float | int | str | None = None
    log: bool = False
    step: float | int | None = None
    choices: list | None = None
    value: Any = None


@dataclass
class StrategySpace:
    """The parameters of one strategy; those not listed take the trainer's defaults."""

    strategy: str
    params: dict[str, ParamSpec] = field(default_factory=dict)


@dataclass
class Space:
    """A whole search space: one or more strategies (several = compared in one study).

    ``source`` (the file's path, or ``"auto"`` when built from an Advice) and
    ``description`` are for messages and do not take part in equality.
    """

    strategies: dict[str, StrategySpace]
    source: str = field(default="auto", compare=False)
    description: str | None = field(default=None, compare=False)


# =========================================================================== errors
def _fail(src: str, where: str, problem: str, fix: str) -> AdvisorError:
    head = f"search space {src}" + (f": {where} " if where else " ")
    return AdvisorError(head + problem, fix)


def _closest(word: object, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.5)
    return f"did you mean {close[0]}? " if close else ""


# =========================================================================== values
def _is_bool(v: object) -> bool:
    return isinstance(v, bool) or type(v).__name__ == "bool_"


def _percent(text: str) -> float | None:
    m = _PERCENT.match(text) if isinstance(text, str) else None
    return float(m.group(1)) if m else None


def _number(raw: object, dom: _Domain, src: str, where: str, *, percent_ok: bool) -> float | int | str:
    """``raw`` as a number of ``dom`` (numeric strings such as ``"1e-4"`` converted), or a percent string."""
    if isinstance(raw, str):
        pct = _percent(raw)
        if pct is not None:
            if not (dom.depth and percent_ok):
                raise _fail(src, where, f"is a percentage ({raw.strip()!r}); percentages are only for k and block",
                            f"write {dom.describe()}, e.g. {dom.example}")
            if pct > 100:
                raise _fail(src, where, f"is {raw.strip()}, more than the whole backbone", "use 0% to 100%")
            return raw.strip()
        try:
            num: float = float(raw)
        except ValueError:
            raise _fail(src, where, f"must be a number, got {raw!r}",
                        f"write {dom.describe()}, e.g. {dom.example}") from None
    elif isinstance(raw, numbers.Real) and not _is_bool(raw):
        num = float(raw)
    else:
        raise _fail(src, where, f"must be a number, got {raw!r}", f"write {dom.describe()}, e.g. {dom.example}")
    if not math.isfinite(num):
        raise _fail(src, where, f"must be a finite number, got {raw!r}", f"write {dom.describe()}")
    out: float | int = num
    if dom.base in ("int", "block"):
        if not num.is_integer():
            raise _fail(src, where, f"must be a whole number, got {raw!r}", f"write {dom.describe()}, e.g. {dom.example}")
        out = int(num)
    too_low = dom.low is not None and (num <= dom.low if dom.low_open else num < dom.low)
    too_high = dom.high is not None and num > dom.high
    if too_low or too_high:
        raise _fail(src, where, f"must be {dom.describe()}, got {raw!r}", f"e.g. {dom.example}")
    return out


def _value(raw: object, dom: _Domain, src: str, where: str) -> Any:
    """A fixed value or a categorical choice of a parameter with domain ``dom``."""
    if dom.base == "bool":
        if not _is_bool(raw):
            raise _fail(src, where, f"must be true or false, got {raw!r}", "write true or false (no quotes)")
        return bool(raw)
    if dom.base == "text":
        if raw not in dom.options:
            raise _fail(src, where, f"must be {dom.describe()}, got {raw!r}", "quote it, e.g. \"true\"")
        return raw
    if dom.base == "tasks":
        ok = isinstance(raw, list) and all(isinstance(t, str) and t for t in raw)
        if not ok:
            raise _fail(src, where, f"must be a list of label column names, got {raw!r}", "e.g. [species, genus]")
        if len(set(raw)) != len(raw):
            raise _fail(src, where, f"lists a label column twice: {raw}", "list each column once")
        if len(raw) < 2:
            raise _fail(src, where, f"needs at least 2 label columns, got {len(raw)}",
                        "list two or more, or leave tasks out to use every column")
        return list(raw)
    if dom.base == "block" and isinstance(raw, str) and _percent(raw) is None:
        if not raw.strip():
            raise _fail(src, where, "is an empty block name", "write a block name such as ir13")
        return raw.strip()
    return _number(raw, dom, src, where, percent_ok=True)


def _same(a: object, b: object) -> bool:
    """Equality that keeps ``True`` apart from ``1``."""
    return _is_bool(a) == _is_bool(b) and a == b


# =========================================================================== parsing
def _parse_spec(strategy: str, name: str, raw: object, src: str, where: str) -> ParamSpec:
    dom = PARAMS[strategy][name]
    if isinstance(raw, list) and dom.base != "tasks":
        raise _fail(src, where, f"is a list {raw}; a fixed value is one value",
                    f"to search it write {{type: categorical, choices: {raw}}}")
    if not isinstance(raw, dict):
        return ParamSpec(name, "fixed", value=_value(raw, dom, src, where))
    if dom.base == "tasks":
        raise _fail(src, where, "cannot be searched", "write the list of label columns, e.g. tasks: [species, genus]")
    for key in raw:
        if key not in _SPEC_KEYS:
            raise _fail(src, f"{where}.{key}", "is not a spec key",
                        f"{_closest(key, _SPEC_KEYS)}use {', '.join(_SPEC_KEYS)}")
    kind = raw.get("type")
    if kind is None:  # inferred: choices -> categorical, else the parameter's own number type
        kind = "categorical" if "choices" in raw else ("float" if dom.base == "float" else "int")
    if kind not in ("int", "float", "categorical"):
        fix = "write the value itself (e.g. epochs: 8) to fix it" if kind == "fixed" else \
            f"{_closest(kind, ['int', 'float', 'categorical'])}use int, float or categorical"
        raise _fail(src, f"{where}.type", f"must be int, float or categorical, got {kind!r}", fix)
    if dom.base in ("bool", "text") and kind != "categorical":
        choices = "[true, false]" if dom.base == "bool" else "[" + ", ".join(f'"{o}"' for o in dom.options) + "]"
        raise _fail(src, f"{where}.type", f"is {kind}, but {name} is {dom.describe()}",
                    f"search it with {{type: categorical, choices: {choices}}} or write one value")
    if kind == "float" and dom.base in ("int", "block"):
        raise _fail(src, f"{where}.type", f"is float, but {name} takes whole numbers", "use type: int")
    if kind == "int" and dom.base == "float":
        raise _fail(src, f"{where}.type", f"is int, but {name} is a real number", "use type: float")
    used = ("choices",) if kind == "categorical" else ("low", "high", "log", "step")
    for key in raw:
        if key != "type" and key not in used:
            raise _fail(src, f"{where}.{key}", f"is not used with type {kind}",
                        f"drop {key}" + (" or use type: categorical" if key == "choices" else ""))

    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise _fail(src, f"{where}.choices", f"must be a non-empty list, got {choices!r}",
                        "e.g. choices: [32, 64, 128]")
        out: list = []
        for i, c in enumerate(choices):
            if isinstance(c, str) and _percent(c) is not None:
                raise _fail(src, f"{where}.choices[{i}]", f"is a percentage ({c!r}); choices must be plain values",
                            "use type: int with percent low/high, or list plain values")
            v = _value(c, dom, src, f"{where}.choices[{i}]")
            if any(_same(v, o) for o in out):
                raise _fail(src, f"{where}.choices", f"lists {v!r} twice", "list each choice once")
            out.append(v)
        return ParamSpec(name, "categorical", choices=out)

    for key in ("low", "high"):
        if key not in raw:
            raise _fail(src, where, f"has type {kind} but no {key}", f"add {key}: {dom.example}")
    low = _number(raw["low"], dom, src, f"{where}.low", percent_ok=True)
    high = _number(raw["high"], dom, src, f"{where}.high", percent_ok=True)
    if isinstance(low, str) == isinstance(high, str):
        lo = _percent(low) if isinstance(low, str) else low
        hi = _percent(high) if isinstance(high, str) else high
        if lo > hi:
            raise _fail(src, where, f"has low {low!r} above high {high!r}", "swap them or fix one")
    log = raw.get("log", False)
    if not _is_bool(log):
        raise _fail(src, f"{where}.log", f"must be true or false, got {log!r}", "write log: true or leave it out")
    log = bool(log)
    if log and dom.base == "block":
        raise _fail(src, f"{where}.log", "is not supported for block indices", "drop log")
    if log and not isinstance(low, str) and low <= 0:
        raise _fail(src, f"{where}.log", f"needs low > 0, got low {low!r}",
                    f"raise low (e.g. {dom.example}) or drop log")
    step = raw.get("step")
    if step is not None:
        step_dom = _Domain("int" if kind == "int" else "float", 1 if kind == "int" else 0.0, kind != "int",
                           example="1" if kind == "int" else "0.1")
        step = _number(step, step_dom, src, f"{where}.step", percent_ok=False)
        if log and not (kind == "int" and step == 1):
            raise _fail(src, f"{where}.step", "cannot be combined with log", "drop step or log")
    return ParamSpec(name, kind, low=low, high=high, log=log, step=step)


def _parse_strategy(strategy: str, raw: object, src: str, where: str) -> StrategySpace:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _fail(src, where, f"must be a mapping of parameter names, got {type(raw).__name__}",
                    "e.g. head_lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}")
    known = PARAMS[strategy]
    params: dict[str, ParamSpec] = {}
    for name, spec in raw.items():
        if name == "k" and strategy == "full_finetune":
            raise _fail(src, f"{where}.k", "is not allowed for full_finetune, which trains every block",
                        "drop k, or use strategy last_k to search k")
        if name not in known:
            raise _fail(src, f"{where}.{name}", f"is not a parameter of {strategy}",
                        f"{_closest(name, known)}use {', '.join(known)}")
        params[name] = _parse_spec(strategy, name, spec, src, f"{where}.{name}")
    for name in _REQUIRED.get(strategy, ()):
        if name not in params:
            raise _fail(src, f"{where}.{name}", f"is missing: {strategy} needs it",
                        f"add {name}: {{type: int, low: 1, high: \"50%\"}}")
    return StrategySpace(strategy, params)


def _strategy_name(name: object, src: str, where: str) -> str:
    if not isinstance(name, str) or name not in PARAMS:
        raise _fail(src, where, f"names an unknown strategy {name!r}",
                    f"{_closest(name, list(PARAMS))}use one of {', '.join(PARAMS)}")
    return str(name)


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):  # noqa: D102 - PyYAML hook
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}",
                                                            key_node.start_mark)
                seen.add(key)
            except TypeError:  # unhashable key: let PyYAML report it
                break
        return super().construct_mapping(node, deep=deep)


def _read(path: Path, src: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(src, "", "was not found", "check the path; the shipped spaces are in search_spaces/") from None
    except UnicodeDecodeError:
        raise _fail(src, "", "is not UTF-8 text", "save the file as UTF-8 YAML") from None
    except OSError as e:
        raise _fail(src, "", f"cannot be read ({e.strerror or e})", "pass a readable YAML file") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader: plain data only
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise _fail(src, "", f"is not valid YAML{at}: {problem}",
                    "fix the syntax there (indent with spaces, write key: value)") from None
    if data is None:
        raise _fail(src, "", "is empty", "write strategy: and params: (see search_spaces/README.md)")
    if not isinstance(data, dict):
        raise _fail(src, "", f"must be a mapping at the top level, got {type(data).__name__}",
                    "start with strategy: NAME and params:, or strategies:")
    for key in data:
        if key not in _TOP_KEYS:
            raise _fail(src, str(key), "is not a top-level key",
                        f"{_closest(key, _TOP_KEYS)}use strategy and params, or strategies (plus description)")
    return data


def _parse_single(data: dict, src: str) -> StrategySpace:
    if "strategy" not in data:
        raise _fail(src, "strategy", "is missing", f"add strategy: NAME ({', '.join(PARAMS)})")
    strategy = _strategy_name(data["strategy"], src, "strategy")
    return _parse_strategy(strategy, data.get("params"), src, "params")


def load_space(path: str | Path) -> Space:
    """Read and check a search-space YAML file; every problem is an AdvisorError naming the key."""
    path = Path(path)
    src = str(path)
    data = _read(path, src)
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        raise _fail(src, "description", f"must be text, got {type(description).__name__}", "quote it")
    single, multi = ("strategy" in data or "params" in data), "strategies" in data
    if single and multi:
        raise _fail(src, "", "has both strategy/params and strategies",
                    "use strategy + params for one strategy, strategies to compare several")
    if not multi:
        sspace = _parse_single(data, src)
        return Space({sspace.strategy: sspace}, source=src, description=description)
    raw = data["strategies"]
    if not isinstance(raw, dict) or not raw:
        raise _fail(src, "strategies", "must map strategy names to params (or to a file)",
                    "e.g. strategies: {linear_probe: linear_probe.yaml, last_k: {k: {type: int, low: 1, high: 4}}}")
    strategies: dict[str, StrategySpace] = {}
    for name, entry in raw.items():
        strategy = _strategy_name(name, src, f"strategies.{name}")
        if isinstance(entry, str):
            ref = path.parent / entry
            sub = _read(ref, str(ref))
            if "strategies" in sub:
                raise _fail(src, f"strategies.{name}", f"refers to {entry}, which compares strategies itself",
                            "refer to a file with strategy: and params:")
            sspace = _parse_single(sub, str(ref))
            if sspace.strategy != strategy:
                raise _fail(src, f"strategies.{name}", f"refers to {entry}, whose strategy is {sspace.strategy}",
                            f"refer to a {strategy} file or rename the key to {sspace.strategy}")
        else:
            sspace = _parse_strategy(strategy, entry, src, f"strategies.{name}")
        strategies[strategy] = sspace
    return Space(strategies, source=src, description=description)


# =========================================================================== dumping
def _spec_to_yaml(spec: ParamSpec) -> Any:
    if spec.kind == "fixed":
        return list(spec.value) if isinstance(spec.value, list) else spec.value
    if spec.kind == "categorical":
        return {"type": "categorical", "choices": list(spec.choices or [])}
    out: dict[str, Any] = {"type": spec.kind, "low": spec.low, "high": spec.high}
    if spec.log:
        out["log"] = True
    if spec.step is not None:
        out["step"] = spec.step
    return out


def space_to_dict(space: Space) -> dict:
    """The space as plain data in the YAML format (``load_space`` of its dump gives an equal Space)."""
    out: dict[str, Any] = {}
    if space.description:
        out["description"] = space.description
    blocks = {s: {n: _spec_to_yaml(p) for n, p in ss.params.items()} for s, ss in space.strategies.items()}
    if len(blocks) == 1:
        (strategy, params), = blocks.items()
        out["strategy"], out["params"] = strategy, params
    else:
        out["strategies"] = blocks
    return out


def space_to_yaml(space: Space) -> str:
    """:func:`space_to_dict` as YAML text (keys in the space's order)."""
    return yaml.safe_dump(space_to_dict(space), sort_keys=False, default_flow_style=None)


# =========================================================================== resolution
def _where(space: Space, strategy: str, name: str) -> str:
    return f"strategies.{strategy}.{name}" if len(space.strategies) > 1 else f"params.{name}"


def _optuna_name(space: Space, strategy: str, name: str) -> str:
    return f"{strategy}.{name}" if len(space.strategies) > 1 else name


def _depth(value: Any, dom: _Domain, n: int) -> Any:
    """A percent string as a block count (k) or block index (block), rounded half up and clamped to 1..n."""
    pct = _percent(value) if isinstance(value, str) else None
    if pct is None:
        return value
    count = min(max(math.floor(pct / 100.0 * n + 0.5), 1), n)
    return count - 1 if dom.base == "block" else count


def _check_depth(value: Any, dom: _Domain, n: int, names: Sequence[str] | None,
                 src: str, where: str) -> None:
    if dom.base == "block":
        if isinstance(value, str):
            if names is not None and value not in names:
                raise _fail(src, where, f"names block {value!r}, which this backbone does not have",
                            f"use one of {', '.join(names)}")
        elif value > n - 1:
            raise _fail(src, where, f"is block index {value}, but the backbone's blocks are 0..{n - 1}",
                        f"use 0..{n - 1} or a percentage such as \"60%\"")
    elif dom.depth and value > n:
        raise _fail(src, where, f"is {value}, more than the backbone's {n} blocks",
                    f"use 1..{n} or a percentage such as \"50%\"")


def _bounds(space: Space, strategy: str, spec: ParamSpec, n: int) -> tuple[Any, Any]:
    """``(low, high)`` with percentages resolved against ``n`` blocks, checked against the backbone."""
    dom = PARAMS[strategy][spec.name]
    where = _where(space, strategy, spec.name)
    low, high = _depth(spec.low, dom, n), _depth(spec.high, dom, n)
    if dom.depth:
        _check_depth(low, dom, n, None, space.source, f"{where}.low")
        _check_depth(high, dom, n, None, space.source, f"{where}.high")
        if low > high:
            raise _fail(space.source, where, f"resolves to low {low} above high {high} for {n} blocks "
                        f"({spec.low!r}..{spec.high!r})", "widen the range")
    return low, high


def check_space(space: Space, block_names: Sequence[str]) -> None:
    """Check depth bounds, indices and block names against a backbone; AdvisorError on the first problem."""
    n = len(block_names)
    for strategy, ss in space.strategies.items():
        for spec in ss.params.values():
            dom = PARAMS[strategy][spec.name]
            if not dom.depth:
                continue
            where = _where(space, strategy, spec.name)
            if spec.kind in ("int", "float"):
                _bounds(space, strategy, spec, n)
            elif spec.kind == "fixed":
                _check_depth(_depth(spec.value, dom, n), dom, n, block_names, space.source, where)
            else:
                for i, c in enumerate(spec.choices or []):
                    _check_depth(c, dom, n, block_names, space.source, f"{where}.choices[{i}]")


def _plain(value: Any, dom: _Domain, block_names: Sequence[str]) -> Any:
    """A trial value as ``run_strategy`` takes it (block index -> name, list copied)."""
    if dom.base == "block" and not isinstance(value, str):
        return block_names[int(value)]
    if isinstance(value, list):
        return list(value)
    if dom.base == "float":
        return float(value)
    if dom.base == "int":
        return int(value)
    return value


# =========================================================================== sampling
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
        dom = PARAMS[strategy][name]
        key = _optuna_name(space, strategy, name)
        if spec.kind == "fixed":
            value = _depth(spec.value, dom, n)
        elif spec.kind == "categorical":
            value = trial.suggest_categorical(key, list(spec.choices or []))
        else:
            low, high = _bounds(space, strategy, spec, n)
            if spec.kind == "int":
                value = trial.suggest_int(key, int(low), int(high), step=int(spec.step or 1), log=spec.log)
            else:
                value = trial.suggest_float(key, float(low), float(high), step=spec.step, log=spec.log)
        params[name] = _plain(value, dom, block_names)
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
            by_name = spec.kind == "categorical" and any(_same(value, c) for c in spec.choices or [])
            if not by_name:
                value = list(block_names).index(value)
        out[_optuna_name(space, strategy, name)] = value
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
    dom = PARAMS[strategy][spec.name]
    if dom.base == "block" and isinstance(given, str) and block_names and given in block_names:
        as_index = list(block_names).index(given)
        if spec.kind == "int" or not any(_same(given, c) for c in spec.choices or []):
            given = as_index
    if spec.kind == "categorical":
        choices = list(spec.choices or [])
        return next((c for c in choices if _same(c, given)), choices[0])
    low, high = _bounds(space, strategy, spec, n)
    if isinstance(given, numbers.Real) and not _is_bool(given):
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
    if strategy not in space.strategies:
        if strategy == "full_finetune" and "last_k" in space.strategies:
            strategy, given = "last_k", {**given, "k": n_blocks}
        else:
            return None
    values = {name: _fit(space, strategy, spec, given.get(name), n_blocks, block_names)
              for name, spec in space.strategies[strategy].params.items() if spec.kind != "fixed"}
    return strategy, optuna_params(strategy, values, space, block_names)


# =========================================================================== from the advice
def _range(name: str, bounds: Sequence[float], *, log: bool, integer: bool = False) -> ParamSpec:
    lo, hi = (int(b) if integer else float(b) for b in bounds)
    if lo == hi:
        return ParamSpec(name, "fixed", value=lo)
    return ParamSpec(name, "int" if integer else "float", low=lo, high=hi, log=log)


def _choice(name: str, options: Sequence[Any]) -> ParamSpec:
    unique: list = []
    for o in options:
        if not any(_same(o, u) for u in unique):
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
    strategies: dict[str, StrategySpace] = {}
    if strategy in ("linear_probe", "svm_early"):
        p: dict[str, ParamSpec] = {}
        if strategy == "svm_early":
            blocks = list(ss.probe_blocks)
            advised = (advice.params or {}).get("block")
            if isinstance(advised, str) and advised not in blocks:
                blocks.append(advised)
            p["block"] = _choice("block", blocks) if blocks else ParamSpec("block", "int", low="30%", high="90%")
        p["C"] = _range("C", ss.probe_c, log=True)
        strategies[strategy] = StrategySpace(strategy, p)
        if hi >= 1:
            strategies["last_k"] = _network_space("last_k", advice, 1, hi)
    else:
        own = strategy if strategy in ("multi_task", "pipeline_vs_end_to_end") else "last_k"
        strategies[own] = _network_space(own, advice, lo, hi)
    return Space(strategies, source="auto", description=f"from the advice ({strategy})")


# =========================================================================== budget
def _largest(spec: ParamSpec | None, default: int) -> int:
    if spec is None:
        return default
    if spec.kind == "fixed":
        return int(spec.value)
    if spec.kind == "categorical":
        return int(max(spec.choices or [default]))
    return int(spec.high)


def max_epochs(space: Space) -> int:
    """The most trainer epochs one trial runs: 1 for probe-only spaces.

    A network strategy counts its largest ``epochs`` (the trainer's default when unset) plus
    the warm-up epochs when ``warmup`` can be true. The pruner counts fine-tuning epochs
    only (:func:`max_steps`).
    """
    best = 1
    for strategy, ss in space.strategies.items():
        if strategy not in NETWORK_STRATEGIES:
            continue
        epochs = _largest(ss.params.get("epochs"), TRAIN_DEFAULT_EPOCHS)
        best = max(best, epochs + (WARMUP_EPOCHS if _can_warm(ss) else 0))
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
    for strategy, ss in space.strategies.items():
        if strategy in NETWORK_STRATEGIES:
            best = max(best, _largest(ss.params.get("epochs"), TRAIN_DEFAULT_EPOCHS))
    return best


def _can_warm(ss: StrategySpace) -> bool:
    w = ss.params.get("warmup")
    return w is not None and ((w.kind == "fixed" and w.value is True)
                              or (w.kind == "categorical" and any(c is True for c in w.choices or [])))
