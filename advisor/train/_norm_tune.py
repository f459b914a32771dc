"""``norm_tune``: train only the normalisation layers' affine parameters and the biases of every block, plus a
new head (BitFit, Ben Zaken et al. 2022; TinyTL's bias-only update, Cai et al. 2020).

What trains (:func:`advisor.train._model.norm_and_bias_params`): every parameter of a BatchNorm, LayerNorm,
GroupNorm (or a subclass, as timm's) and every parameter named ``bias``; kernels, linear matrices, position
embeddings and class tokens stay as pretrained. With a 10-class head that is 2.1% of full fine-tuning's
parameters on mobilenet_v2 and 0.6% on ViT-Tiny (the head included).

BatchNorm statistics: the blocks are in train mode while they train, so a CNN's BatchNorm running
statistics follow the target's batches, as in full fine-tuning. The choice: the scales and shifts are
learnt on batch-normalised activations, and statistics re-estimated on the target are themselves the cheap
correction of a shift (AdaBN, bn_adapt); freezing them would train the affine parameters against the source's
statistics. Every other detail is the shared loop's (:func:`advisor.train._loop.fit_network`):
rates decay from the top block down, LP-FT warm-up, the family recipe.
"""

from __future__ import annotations

import time

from advisor.context import TrainContext
from advisor.train._base import EpochCallback, TrainResult
from advisor.train._finetune import _FIT_KEYS, _result
from advisor.train._loop import fit_network
from advisor.train._model import norm_and_bias_params
from advisor.train._network import parse_network_params


def run_norm_tune(ctx: TrainContext, params: dict, callback: EpochCallback | None = None) -> TrainResult:
    """Train the norms' scales and shifts and the biases of every block, and a new head."""
    t0 = time.perf_counter()
    bb = ctx.backbone
    n = len(bb.blocks)
    p = parse_network_params(params, strategy="norm_tune", n_blocks=n, family=bb.layout.family)
    fitted = fit_network(ctx, [ctx.dataset.primary_task], ctx.split.train, ctx.split.val, callback=callback,
                         progress_stage="norm_tune", block_range=(0, n - 1), only=norm_and_bias_params,
                         **{key: p[key] for key in _FIT_KEYS if key != "k"})
    return _result("norm_tune", ctx, fitted, p, t0)
