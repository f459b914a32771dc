"""The result store: the code version a result is keyed by, one JSON file per result, and :class:`Runner`, which
runs a scenario's analyze and configurations or reads them back."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from advisor.serialize import to_dict

from .budget import last_ks
from .context import make_scenario_context
from .scenarios import Scenario
from .sources import BENCH, ROOT, SOURCES

RESULTS = BENCH / "results" / "advice_grid"
# 2: the transformer recipe (advisor.strategies._recipes) and FAMILY_LR_RATIOS on the transformer sources
GRID_VERSION = 2


def code_version() -> str:
    """Hash of what decides a result: data, models, the loaded context and its cache, measurements, trainers,
    and this grid's regime."""
    h = hashlib.sha256(f"grid{GRID_VERSION}".encode())
    for folder in ("data", "models", "context", "measure", "train", "strategies"):
        for p in sorted((ROOT / "advisor" / folder).glob("*.py")):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    h.update((ROOT / "advisor" / "api.py").read_bytes())
    h.update((BENCH / "controlled_source.py").read_bytes())
    return h.hexdigest()[:12]


def _config_key(strategy: str, params: dict) -> str:
    return hashlib.sha256(json.dumps([strategy, params], sort_keys=True).encode()).hexdigest()[:16]


def _scenario_dir(sc: Scenario, version: str) -> Path:
    """The scenario's folder under ``version``; a comma-separated list of versions takes the first that holds
    the scenario (the CNN and ViT parts were run by different code versions)."""
    versions = version.split(",")
    for v in versions:
        if (RESULTS / v / sc.id.replace("/", "__")).is_dir():
            return RESULTS / v / sc.id.replace("/", "__")
    return RESULTS / versions[0] / sc.id.replace("/", "__")


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=float) + "\n")
    os.replace(tmp, path)


def _result_record(sc: Scenario, strategy: str, params: dict, r, ctx) -> dict:
    n_val, n_test = len(ctx.split.val), len(ctx.split.test)
    rec = {"scenario": sc.id, "strategy": strategy, "params": params, "used_params": to_dict(r.params),
           "val_accuracy": r.val_accuracy, "test_accuracy": r.test_accuracy, "n_val": n_val, "n_test": n_test,
           "wall_s": round(r.wall_time, 2), "epochs_run": len(r.history), "best_epoch": r.best_epoch}
    if r.history:  # the validation curve and each epoch's seconds: what a successive-halving rung would have seen
        rec["val_curve"] = [round(float(h.val_accuracy), 4) for h in r.history]
        rec["epoch_s"] = [round(float(h.seconds), 3) for h in r.history]
    if strategy == "multi_task":
        tasks = list(r.per_task)
        rec["options"] = {
            "shared": {"val": float(np.mean([r.per_task[t]["val_accuracy"] for t in tasks])),
                       "test": float(np.mean([r.per_task[t]["test_accuracy"] for t in tasks]))},
            "separate": {"val": float(np.mean([r.extra["separate"][t]["val_accuracy"] for t in tasks])),
                         "test": float(np.mean([r.extra["separate"][t]["test_accuracy"] for t in tasks]))},
        }
        rec["n_val"] = int(sum((ctx.dataset.labels[ctx.split.val, j] >= 0).sum() for j in range(len(tasks))))
        rec["n_test"] = int(sum((ctx.dataset.labels[ctx.split.test, j] >= 0).sum() for j in range(len(tasks))))
    if strategy == "pipeline_vs_end_to_end":
        rec["options"] = {o: {"val": r.extra[o]["val_accuracy"], "test": r.extra[o]["test_accuracy"]}
                          for o in ("pipeline", "end_to_end")}
    return rec


class Runner:
    """Runs (or reads back) one scenario's analyze and configurations; every result is one JSON file."""

    def __init__(self, sc: Scenario, version: str, log=print):
        self.sc, self.version, self.log = sc, version, log
        self.dir = _scenario_dir(sc, version)
        self._ctx = None
        self._filled = False

    @property
    def ctx(self):
        if self._ctx is None:
            self._ctx = make_scenario_context(self.sc)
        return self._ctx

    def analysis(self):
        from advisor.api import Analysis, analyze_context

        path = self.dir / "analysis.json"
        if path.is_file():
            return Analysis.load(path)
        t = time.perf_counter()
        model = SOURCES[self.sc.source][0]
        a = analyze_context(self.ctx, self.sc.id, model, sample=500, check="off")  # the check comes from the budget
        path.parent.mkdir(parents=True, exist_ok=True)
        a.save(path)
        self.log(f"  analyze {self.sc.id}: {time.perf_counter() - t:.1f} s")
        return a

    def shape(self) -> dict:
        """n_blocks and n_train, stored so a report needs no data loading."""
        path = self.dir / "shape.json"
        if path.is_file():
            return json.loads(path.read_text())
        ctx = self.ctx
        out = {"n_blocks": len(ctx.backbone.block_names), "block_names": list(ctx.backbone.block_names),
               "n_train": int(len(ctx.split.train)), "n_val": int(len(ctx.split.val)),
               "n_test": int(len(ctx.split.test))}
        _write(path, out)
        return out

    def result(self, strategy: str, params: dict, *, compute: bool = True) -> dict | None:
        params = to_dict(params)
        path = self.dir / f"{strategy}-{_config_key(strategy, params)}.json"
        if path.is_file():
            return json.loads(path.read_text())
        if not compute:
            return None
        from advisor.train import run_strategy

        ctx = self.ctx
        if strategy not in ("multi_task", "pipeline_vs_end_to_end"):
            self._prefill()
        r = run_strategy(ctx, strategy, params)
        rec = _result_record(self.sc, strategy, params, r, ctx)
        _write(path, rec)
        self.log(f"  {strategy} {params}: val {r.val_accuracy:.4f} test {r.test_accuracy:.4f} ({r.wall_time:.1f} s)")
        return rec

    def _prefill(self):
        """One forward pass fills every pooled block and every last_k boundary the budget uses."""
        if self._filled:
            return
        ctx = self.ctx
        n = len(ctx.backbone.block_names)
        idx = np.concatenate([ctx.split.train, ctx.split.val, ctx.split.test])
        ctx.cache.ensure(ctx, idx, pooled=tuple(range(n)), boundaries=tuple(n - k for k in last_ks(n)))
        self._filled = True
