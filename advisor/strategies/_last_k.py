"""``last_k``: the top k blocks and a new head train; the blocks below stay frozen."""

from advisor.strategies._base import REQUIRED, Strategy
from advisor.strategies._shared import NETWORK_PARAMS, k_param

LAST_K = Strategy(
    name="last_k",
    kind="network",
    params=(k_param(REQUIRED), *NETWORK_PARAMS),
    runner="advisor.train._finetune:run_last_k",
    summary="the top k blocks and a new head; blocks below frozen, their BatchNorm in eval mode",
    trained_from=lambda p, n: max(0, n - int(p["k"])),
    # the measured check's partial fine-tune of the top (advisor.advise.check.WIDE_CHECK): the top ``b.top_k``
    # blocks at the family's recipe rate ratio
    check=lambda b: [{"k": b.top_k, "lr_ratio": b.lr_ratios[0], **b.network}] if b.top_k else [],
)
