"""``full_finetune``: every block and a new head train (``warmup=true``: LP-FT)."""

from advisor.strategies._base import Param, SameAs, Strategy
from advisor.strategies._constraints import AllBlocks
from advisor.strategies._shared import NETWORK_PARAMS


def _every_block(params: dict, n: int) -> bool:
    """A surgical range given by indices that spans every block."""
    first, last = params.get("first"), params.get("last")
    return type(first) is int and type(last) is int and first == 0 and last >= n - 1


FULL_FINETUNE = Strategy(
    name="full_finetune",
    kind="network",
    params=(Param("k", AllBlocks(), lambda n: n, help="every block trains", unit="blocks",
                  default_text="every block"), *NETWORK_PARAMS),
    runner="advisor.train._finetune:run_full_finetune",
    summary="every block; `warmup=true` trains the head alone for 2 epochs first (LP-FT)",
    # last_k with k = every block is this, and so is surgical from block 0 to the last
    same_as=(SameAs("last_k", lambda n: {"k": n}),
             SameAs("surgical", lambda n: {"first": 0, "last": n - 1}, covers=lambda p, n: _every_block(p, n))),
    # the check's fine-tune: after a linear-probe warm-up (LP-FT), at each of the family's check rate ratios
    check=lambda b: [{"warmup": True, "lr_ratio": r, **b.network} for r in b.lr_ratios],
)
