"""``advisor train``: train one strategy and report validation and test metrics (advisor.train.train)."""

from __future__ import annotations

import argparse
import sys

from advisor import strategies
from advisor.cli import _common

HELP = "train one strategy and report validation and test metrics"
PARENTS = ("data", "cache", "loader")
DESCRIPTION = None  # options() names the strategies registered by then


def options(t) -> None:
    t.description = f"Run one transfer-learning strategy on a dataset: {', '.join(strategies.names())}."
    t.add_argument("--strategy", required=True, metavar="NAME", help=", ".join(strategies.names()))
    g = t.add_argument_group("strategy parameters (only those given are passed; the rest keep their defaults)")
    _add_strategy_flags(g)
    g.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="any other strategy parameter (value read as YAML: 3, 0.1, true, [a, b])")
    _common.add_json(t, "the result")
    t.add_argument("--save", metavar="PATH", default=None,
                   help="save the trained model (one PyTorch file; load with advisor.train.load_model)")
    _common.add_quiet(t)


def _flag_params() -> dict:
    """Parameter name -> (declaration, strategies that take it) for the parameters with a ``--NAME`` flag."""
    out: dict = {}
    for strategy in strategies.all_strategies():
        for p in strategy.params:
            if p.flag:
                out.setdefault(p.name, (p, []))[1].append(strategy.name)
    return out


def _add_strategy_flags(group) -> None:
    """One ``--NAME`` flag per flagged parameter in the registry, typed by its constraint."""
    networks = sorted(strategies.network_names())
    for name, (p, users) in _flag_params().items():
        who = "network strategies" if sorted(users) == networks else ", ".join(users)
        text = f"{p.help} [{who}" + (f"; {p.unit}" if p.unit else "") + "]"
        if name in strategies.RECIPE_PARAMS:  # a default that follows the backbone's family
            text += f" (default: {p.default_text})"
        kw: dict = {"dest": name, "default": None, "help": text}
        if isinstance(p.constraint, strategies.Boolean):
            kw["action"] = argparse.BooleanOptionalAction
        elif p.base in ("int", "float"):
            kw["type"], kw["metavar"] = (int if p.base == "int" else float), name.upper()
        else:
            kw["metavar"] = name.upper()
        group.add_argument("--" + name.replace("_", "-"), **kw)


def _train_params(args) -> dict:
    import yaml

    params = {}
    for name in _flag_params():
        v = getattr(args, name, None)
        if v is not None:
            params[name] = v
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _common.usage(f"bad --param '{item}': use KEY=VALUE, e.g. --param dropout=0.1")
        try:
            params[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise _common.usage(f"bad --param value in '{item}': write a number, true/false, a word or [a, b]") \
                from None
    return params


def run(args) -> int:
    from advisor.report.run_tables import train_table
    from advisor.report.terminal import print_train_extra, print_view
    from advisor.outputs import Output, check_outputs
    from advisor.serialize import json_text
    from advisor.train import train

    console, err = _common.consoles()
    params = _train_params(args)
    strategies.get(args.strategy).validate(params)  # a typo fails here, before the outputs are checked
    check_outputs(("--json", args.json), ("--save", args.save))  # before any training, not after it

    def on_epoch(epoch, val):
        if not args.quiet:
            err.print(f"epoch {epoch}: validation accuracy {val:.4f}")

    seen = []  # the context train() built: its dataset, preprocessing and cache
    with _common.progress_bar(err, args.quiet) as progress:
        result = train(args.dataset, args.model, args.strategy, params=params, callback=on_epoch,
                       on_context=seen.append, cache_dir=False if args.no_cache else args.cache_dir,
                       workers=args.loader_workers, progress=progress, drop_rare_classes=args.drop_rare_classes,
                       **_common.context_args(args))
    ctx = seen[0]
    print_view([train_table(result, f"{result.strategy} on {args.dataset} with {args.model}")], console)
    console.print(f"params {result.params}")
    console.print(f"trainable parameters {result.trainable_params:,}; wall time {result.wall_time:.1f} s; "
                  f"best epoch {result.best_epoch} of {len(result.history)}")
    print_train_extra(result, console)
    if ctx.cache is not None and ctx.cache.problem:  # the run finished; only its speed-up was lost
        sys.stderr.write(f"advisor: warning: the activation cache stopped storing ({ctx.cache.problem}); "
                         "the frozen blocks were recomputed instead -- free space or pass --cache-dir\n")
    written = [(Output(args.json, json_text(result), "--json"), f"wrote {args.json}")] if args.json else []
    if args.save:
        from advisor.deploy.modelfile import model_output

        written.append((model_output(result, args.save, model_name=args.model, weights=args.weights,
                                     preprocess=ctx.preprocess, dataset_name=ctx.dataset.name,
                                     classes=ctx.dataset.classes, flag="--save"),
                        f"saved the model to {args.save}"))
    _common.write_all(console, *written)
    return 0

