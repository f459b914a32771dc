"""The source backbones (loaded once per process) and a scenario's training context."""

from __future__ import annotations

import copy
import os
from pathlib import Path

from .data import build_dataset
from .scenarios import Scenario
from .sources import ROOT, SOURCES

_BACKBONES: dict = {}


def backbone_for(source: str):
    from advisor.models import create_backbone

    if source not in _BACKBONES:
        model, weights, _ = SOURCES[source]
        if weights and weights.startswith("controlled:"):
            from controlled_source import ensure_source

            weights = str(ensure_source(arch=weights.split(":", 1)[1]))
        _BACKBONES[source] = create_backbone(model, weights, device="cpu")
    return _BACKBONES[source]


def make_scenario_context(sc: Scenario, cache_root: Path | None = None):
    from advisor.context import TrainContext
    from advisor.context.cache import ActivationCache
    from advisor.data import Preprocess
    from advisor.models import resolve_device

    ds, split = build_dataset(sc)
    pristine = backbone_for(sc.source)
    pre = Preprocess.from_config(pristine.preprocessing, SOURCES[sc.source][2])
    root = cache_root or Path(os.environ.get("ADVISOR_GRID_CACHE") or ROOT / ".cache" / "advice_grid")
    # the regime: no source carries reference moments (a stray file for these weights in the user's
    # folder would change the shift measure, even on a BatchNorm source), so the grid reads its own, empty one
    os.environ["ADVISOR_REFERENCE_DIR"] = str(root / "reference")
    return TrainContext(dataset=ds, split=split, backbone=pristine, make_backbone=lambda: copy.deepcopy(pristine),
                        preprocess=pre, device=resolve_device("cpu"), seed=0,
                        cache=ActivationCache(root / "activations"))
