"""``full_finetune``: every block and a new head train (``warmup=true``: LP-FT)."""

from advisor.strategies._base import Param, Strategy
from advisor.strategies._constraints import AllBlocks
from advisor.strategies._shared import NETWORK_PARAMS

FULL_FINETUNE = Strategy(
    name="full_finetune",
    kind="network",
    params=(Param("k", AllBlocks(), lambda n: n, help="every block trains", unit="blocks",
                  default_text="every block"), *NETWORK_PARAMS),
    runner="advisor.train._finetune:run_full_finetune",
    summary="every block; `warmup=true` trains the head alone for 2 epochs first (LP-FT)",
)
