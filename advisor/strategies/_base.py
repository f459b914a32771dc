"""What a strategy is: its name, its typed parameters and where its trainer lives.

A :class:`Strategy` declares each parameter once as a :class:`Param`: the name, a
constraint (:class:`Interval`, :class:`Boolean`, :class:`Options`, :class:`BlockCount`,
:class:`AllBlocks`, :class:`BlockRef`, :class:`Labels`, :class:`Fractions`), the default,
the unit, a help line and the range a search tries by default (in the YAML form of
``search_spaces/README.md``, so it maps to an Optuna distribution through the same loader).
In the manner of scikit-learn's ``_parameter_constraints`` there is one validator for all:
:meth:`Strategy.validate`. The trainer, the YAML space loader, the command line, the advice
and the tables a person reads all read these declarations.

This module imports nothing heavier than the standard library: the trainer is named as
``"module:function"`` and imported only when a strategy runs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from advisor.errors import AdvisorError
from advisor.strategies._constraints import Constraint, _Bad, closest

#: Strategy kinds: one closed-form fit on frozen features, one network, one network per task
#: (shared), or a comparison of a two-stage pipeline with an end-to-end network.
KINDS = ("probe", "network", "multi", "pipeline")

#: The heads a saved model (``advisor.deploy.modelfile``) can rebuild: one ``Linear``, or ``Linear -> Softmax ->
#: Linear`` (the pipeline's composed ``z -> y`` head). A strategy declares which of them its models end in.
HEADS = ("linear", "two_stage")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of a parameter that must be given.
REQUIRED: Any = _Required()


# =========================================================================== parameters
@dataclass(frozen=True)
class Param:
    """One parameter of a strategy.

    ``default``: a value, None (optional, the trainer decides), :data:`REQUIRED`, or a
    function of the backbone's block count (``default_text`` then says it in words).
    ``search``: the range a search tries when no space file names this parameter, as a
    YAML spec (``{"type": "float", "low": 1e-4, "high": 0.1, "log": True}``) or a plain
    value (fixed); None: left at its default. ``flag``: ``advisor train`` has ``--NAME``.
    """

    name: str
    constraint: Constraint
    default: Any = None
    help: str = ""
    unit: str = ""
    example: str = "1.0"
    search: Any = None
    flag: bool = False
    default_text: str = ""

    # the domain, as the YAML space loader reads it
    @property
    def base(self) -> str:
        return self.constraint.base

    @property
    def low(self):
        return self.constraint.low

    @property
    def low_open(self) -> bool:
        return self.constraint.low_open

    @property
    def high(self):
        return self.constraint.high

    @property
    def depth(self) -> bool:
        return self.constraint.depth

    @property
    def options(self) -> tuple:
        return self.constraint.options

    @property
    def listed(self) -> bool:
        return self.constraint.listed

    def describe(self) -> str:
        """The accepted values in words, e.g. ``a number > 0``."""
        return self.constraint.describe()

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def default_for(self, n_blocks: int | None) -> Any:
        """The default value (None when it depends on an unknown block count)."""
        if callable(self.default):
            return None if n_blocks is None else self.default(n_blocks)
        return None if self.default is REQUIRED else self.default

    def check(self, value: Any, strategy: str, n_blocks: int | None = None) -> Any:
        """``value`` as the trainer takes it; AdvisorError naming the parameter and what it accepts."""
        try:
            return self.constraint.check(value, n_blocks)
        except _Bad as bad:
            problem = bad.problem.replace("{strategy}", strategy)
            head = f"bad {self.name}={value!r}: {problem}" if problem.startswith("must") \
                else f"{self.name}={value!r} {problem}"
            raise AdvisorError(head, bad.fix or f"e.g. {self.name}={self.example}") from None


# =========================================================================== equivalences
@dataclass(frozen=True)
class SameAs:
    """"Every run of this strategy is a run of ``strategy`` with ``params(n_blocks)``" (full_finetune is
    last_k with k = n). ``covers(params, n)`` says whether a run of ``strategy`` with ``params`` is one of
    them; its default: each of ``params(n)``'s values given, and whole numbers at least as large."""

    strategy: str
    params: Callable[[int], dict]
    covers: Callable[[dict, int], bool] | None = None

    def matches(self, params: dict | None, n_blocks: int) -> bool:
        params = params or {}
        if self.covers is not None:
            return bool(self.covers(params, n_blocks))
        for name, want in self.params(n_blocks).items():
            got = params.get(name)
            if not isinstance(got, (int, float)) or isinstance(got, bool) or int(got) < int(want):
                return False
        return True


# =========================================================================== the measured check
@dataclass(frozen=True)
class CheckBudget:
    """What the measured check (``advisor.advise.check``) offers every strategy to build its candidates from;
    a strategy's ``check`` declaration turns it into the parameters of the runs it contributes.

    ``probe_c``: the probes' inverse regularisation strengths; ``probe_blocks``: the block indices an early-block
    probe is tried on; ``network``: a fine-tune's training budget (epochs, patience, batch size); ``lr_ratios``:
    the family's backbone/head rate ratios, the recipe's first; ``shift``: whether the candidates that answer a
    measured shift are wanted (small data and the switch on); ``peak``: the ``(first, last)`` block range, 0-based
    and inclusive, that holds the profile's largest shift (None without a measured shift or without ``shift``);
    ``bn_svm``: whether bn_adapt also offers its early SVM on the block where the plain early SVM did best
    (``advisor.advise.check.BN_SVM``; the block is :data:`BEST_SVM_BLOCK` until the probes have run); ``top_k``: the
    number of top blocks a partial fine-tune of the top trains in the check (``advisor.advise.check.WIDE_CHECK``),
    None when the check offers none; ``middle``: the middle third's ``(first, last)`` block range, which surgical also
    tunes when the shift's candidates are wanted (``advisor.advise.check.MIDDLE_CHECK``), None when it is not
    offered."""

    n_blocks: int
    n_train: int
    family: str
    probe_c: tuple[float, ...]
    probe_blocks: tuple[int, ...]
    network: dict
    lr_ratios: tuple[float, ...]
    shift: bool = False
    peak: tuple[int, int] | None = None
    bn_svm: bool = False
    top_k: int | None = None
    middle: tuple[int, int] | None = None


#: a check candidate's ``block`` that names the block of the best plain early SVM of the same check, known once the
#: probes have run (``advisor.advise.check.resolve``)
BEST_SVM_BLOCK = "best-svm"


# =========================================================================== strategies
@dataclass(frozen=True)
class Strategy:
    """One strategy: name, kind, parameters, trainer (``"module:function"``), a line for tables and
    the tables a person reads after a run (``"module:function"``, ``f(result) -> [Table | str]`` of the view model
    :mod:`advisor.report.view`, which the terminal, HTML and Markdown renderers all draw)."""

    name: str
    kind: str
    params: tuple[Param, ...]
    runner: str
    summary: str = ""  # what trains, one line for tables
    tables: str = "advisor.report.run_tables:per_task_tables"  # the result's own tables, beyond the common ones
    #: the heads its saved models end in (of :data:`HEADS`)
    heads: tuple[str, ...] = ("linear",)
    #: the runs of other strategies that are runs of this one (:class:`SameAs`)
    same_as: tuple[SameAs, ...] = ()
    #: ``relate(params, n_blocks)``: checks between parameters after each is valid (``first <= last``);
    #: raises AdvisorError
    relate: Callable[[dict, int | None], None] | None = None
    #: ``"module:function"``, ``f(backbone, params)`` raising AdvisorError for a backbone the strategy cannot use
    #: (bn_adapt: one without BatchNorm) or parameters that do not fit it (lora: a target that matches no layer);
    #: run as soon as the backbone is built, before the data loads (``params``: as given, may be None)
    backbone_check: str = ""
    #: ``check(budget) -> [params, ...]``: the runs this strategy adds to the measured check (a
    #: :class:`CheckBudget` in, plain parameters out, cheapest first); None: the check never runs it
    check: Callable[[CheckBudget], list[dict]] | None = None
    #: ``trained_from(params, n_blocks)``: the lowest block a run trains (last_k: ``n - k``); None: block 0
    #: for a strategy that trains a network. The check's cost model times a step from that block up.
    trained_from: Callable[[dict, int], int] | None = None
    #: ``forward_images(n_train, n_val)``: images a run passes forward itself, outside the activation cache
    #: (bn_adapt: its statistics pass, then its adapted features), for the check's cost model; None: none
    forward_images: Callable[[int, int], int] | None = None
    #: ``forward_images_again(n_train, n_val)``: the same for a later run on the same context, once one has run
    #: (bn_adapt reuses its adaptation: at most the features of a block not yet read); None: as the first
    forward_images_again: Callable[[int, int], int] | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"strategy {self.name}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.heads or any(h not in HEADS for h in self.heads):
            raise ValueError(f"strategy {self.name}: heads {self.heads!r} must be some of {', '.join(HEADS)}")
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"strategy {self.name}: a parameter is declared twice in {names}")
        for what, ref in (("runner", self.runner), ("tables", self.tables)):
            if ":" not in ref:
                raise ValueError(f"strategy {self.name}: {what} {ref!r} must be 'module:function'")

    @property
    def trains_network(self) -> bool:
        """Whether a run trains a network over epochs (so a pruner can stop it); probes are one fit."""
        return self.kind != "probe"

    def lowest_trained(self, params: dict, n_blocks: int) -> int | None:
        """The lowest block a run with ``params`` trains (its declared ``trained_from``); None for a probe."""
        if not self.trains_network:
            return None
        return int(self.trained_from(params, n_blocks)) if self.trained_from is not None else 0

    def check_candidates(self, budget: CheckBudget) -> list[dict]:
        """The parameters of the runs this strategy adds to the measured check (its declared ``check``)."""
        return [dict(p) for p in self.check(budget)] if self.check is not None else []

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def has(self, name: str) -> bool:
        return any(p.name == name for p in self.params)

    def check_keys(self, params: dict) -> None:
        """AdvisorError for the first key that is not a parameter of this strategy."""
        if not isinstance(params, dict):
            raise AdvisorError(f"{self.name} parameters must be a mapping, got {type(params).__name__}",
                               f"pass a dict with keys from: {', '.join(self.names)}")
        for key in params:
            if not self.has(key):
                raise AdvisorError(f"unknown parameter {key!r} for {self.name}",
                                   f"{closest(key, self.names)}use {', '.join(self.names)}")

    def validate(self, params: dict | None, n_blocks: int | None = None) -> dict[str, Any]:
        """Check plain-value ``params`` and fill in the defaults; the one validator of every strategy.

        ``n_blocks`` (the backbone's block count) also checks depths and fills defaults that
        depend on it; without it (before the backbone loads) those wait for the trainer.
        Every problem is an AdvisorError on one line naming the parameter.
        """
        params = {} if params is None else params
        self.check_keys(params)
        out: dict[str, Any] = {}
        for p in self.params:
            value = params.get(p.name)
            if value is None:
                if p.required:
                    raise AdvisorError(f"{self.name} needs {p.name}" + (f", {p.help}" if p.help else ""),
                                       f"pass {p.name}" + (f" in 1..{n_blocks}" if p.depth and n_blocks else "")
                                       + f", e.g. {p.name}={p.example}")
                value = p.default_for(n_blocks)
                if value is None:
                    out[p.name] = None
                    continue
            out[p.name] = p.check(value, self.name, n_blocks)
        if self.relate is not None:
            self.relate(out, n_blocks)
        return out

    def check_backbone(self, backbone, params: dict | None = None) -> None:
        """AdvisorError when the strategy cannot use ``backbone``, or ``params`` (plain values, as given) do not
        fit it (its declared ``backbone_check``)."""
        if self.backbone_check:
            _load(self.backbone_check)(backbone, params)

    def backbone_checker(self, params: dict | None = None) -> Callable | None:
        """``f(backbone)``: :meth:`check_backbone` with ``params``, for ``make_context(check_backbone=...)``; None
        when the strategy declares no check."""
        if not self.backbone_check:
            return None
        return lambda backbone: self.check_backbone(backbone, params)

    def load_runner(self) -> Callable:
        """The trainer ``run(ctx, params, callback) -> TrainResult``, imported now."""
        return _load(self.runner)

    def load_tables(self) -> Callable:
        """``tables(result) -> list`` of the renderables a person reads after a run, imported now."""
        return _load(self.tables)


def _load(ref: str) -> Callable:
    module, _, fn = ref.partition(":")
    return getattr(importlib.import_module(module), fn)
