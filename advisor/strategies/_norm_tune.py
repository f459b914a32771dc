"""``norm_tune``: only the normalisation layers' scales and shifts and every bias of every block train, plus a
new head (BitFit, Ben Zaken et al. 2022; TinyTL, Cai et al. 2020); kernels, matrices and embeddings stay."""

from advisor.strategies._base import Strategy
from advisor.strategies._shared import NETWORK_PARAMS

NORM_TUNE = Strategy(
    name="norm_tune",
    kind="network",
    params=NETWORK_PARAMS,
    runner="advisor.train._norm_tune:run_norm_tune",
    summary="the norm layers' scales and shifts and every bias, in every block, and a new head; a CNN's "
            "BatchNorm statistics follow the target (train mode)",
)
