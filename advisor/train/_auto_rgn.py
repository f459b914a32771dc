"""``auto_rgn``: Auto-RGN (Lee et al. 2023): every block and a new head train, each parameter tensor in an
optimiser group of its own whose rate is scaled at every step by ``|g| / |w|`` over the largest such ratio
(:meth:`advisor.train._loop.Stepper.scale_by_rgn`).

The rate being scaled is the loop's usual one (heads at ``head_lr``, blocks at ``head_lr * lr_ratio``, with the
family recipe's warm-up and clipping); layer-wise decay is left out, since choosing how much each layer moves
is what the relative gradient norms do. Everything else -- early stopping, LP-FT warm-up, BatchNorm in train
mode as in full fine-tuning -- is the shared loop's (:func:`advisor.train._loop.fit_network`). The result's
``extra["rgn_mean_scale"]`` holds each block's (and head's) mean scale over its tensors and steps.
"""

from __future__ import annotations

import time

from advisor.context import TrainContext
from advisor.train._base import EpochCallback, TrainResult
from advisor.train._finetune import _FIT_KEYS, _result
from advisor.train._loop import fit_network
from advisor.train._network import parse_network_params


def run_auto_rgn(ctx: TrainContext, params: dict, callback: EpochCallback | None = None) -> TrainResult:
    """Train every block and a new head with Auto-RGN's per-tensor rates."""
    t0 = time.perf_counter()
    bb = ctx.backbone
    n = len(bb.blocks)
    p = parse_network_params(params, strategy="auto_rgn", n_blocks=n, family=bb.layout.family)
    fitted = fit_network(ctx, [ctx.dataset.primary_task], ctx.split.train, ctx.split.val, callback=callback,
                         progress_stage="auto_rgn", block_range=(0, n - 1), layer_decay=1.0, rgn=True,
                         **{key: p[key] for key in _FIT_KEYS if key not in ("k", "layer_decay")})
    result = _result("auto_rgn", ctx, fitted, p, t0)
    result.extra["rgn_mean_scale"] = dict(fitted.extra.get("rgn_mean_scale", {}))
    return result
