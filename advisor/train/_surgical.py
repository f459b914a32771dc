"""``surgical``: train the contiguous range of blocks ``first..last`` and a new head; the rest stays frozen.

The range is given by block names or 0-based indices (``params["first"]``, ``params["last"]``), checked against
the backbone before any image is read: both inside the network, ``first`` at or below ``last``. Blocks below
``first`` and above ``last`` are frozen and in eval mode (their BatchNorm statistics never move); those above
still run forward, so gradients reach the trained range through them. The frozen prefix's output comes from
the activation cache as in last_k. Discriminative rates count from ``last`` down
(:func:`advisor.train._loop.fit_network` with ``block_range``); LP-FT and the family recipe as in last_k.
"""

from __future__ import annotations

import time

from advisor.context import TrainContext
from advisor.block_ref import block_index
from advisor.errors import AdvisorError
from advisor.train._base import EpochCallback, TrainResult
from advisor.train._finetune import _FIT_KEYS, _result
from advisor.train._loop import fit_network
from advisor.train._network import parse_network_params


def block_range(backbone, first, last) -> tuple[int, int]:
    """``(first, last)`` as indices into ``backbone``'s blocks; one-line AdvisorError for a block that is not
    there or a range out of order."""
    names = list(backbone.block_names)
    n = len(names)
    out = []
    for what, value in (("first", first), ("last", last)):
        try:
            out.append(block_index(value, names, backbone.name))
        except AdvisorError:
            raise AdvisorError(f"bad surgical {what}={value!r}: not a block of {backbone.name}",
                               f"use a block index 0..{n - 1} or a name ({', '.join(names)})") from None
    i, j = out
    if i > j:
        raise AdvisorError(f"bad block range first={first!r} last={last!r}: block {names[i]} ({i}) is above "
                           f"{names[j]} ({j})", "use first <= last")
    return i, j


def run_surgical(ctx: TrainContext, params: dict, callback: EpochCallback | None = None) -> TrainResult:
    """Train blocks ``first..last`` and a new head (see the module docstring)."""
    t0 = time.perf_counter()
    bb = ctx.backbone
    p = parse_network_params(params, strategy="surgical", n_blocks=len(bb.blocks), family=bb.layout.family)
    first, last = block_range(bb, p["first"], p["last"])
    p["first"], p["last"] = bb.block_names[first], bb.block_names[last]
    fitted = fit_network(ctx, [ctx.dataset.primary_task], ctx.split.train, ctx.split.val, callback=callback,
                         progress_stage="surgical", block_range=(first, last),
                         **{key: p[key] for key in _FIT_KEYS if key != "k"})
    result = _result("surgical", ctx, fitted, p, t0)
    result.extra.update({"trained_blocks": list(bb.block_names[first:last + 1]),
                         "above_blocks": list(fitted.above_blocks), "block_range": [first, last]})
    return result
