"""``auto_rgn``: Auto-RGN (Lee et al. 2023, "Surgical fine-tuning improves adaptation to distribution shifts"):
every parameter trains, and at every step each parameter tensor's learning rate is scaled by its relative
gradient norm ``|g| / |w|`` divided by the largest over the tensors, so the network chooses which layers move,
in one run with no search over blocks."""

from advisor.strategies._base import Strategy
from advisor.strategies._shared import NETWORK_PARAMS

AUTO_RGN = Strategy(
    name="auto_rgn",
    kind="network",
    # layer-wise decay is what the relative gradient norms replace
    params=tuple(p for p in NETWORK_PARAMS if p.name != "layer_decay"),
    runner="advisor.train._auto_rgn:run_auto_rgn",
    tables="advisor.report.run_tables:auto_rgn_tables",
    summary="every block and a new head; each tensor's rate scaled at every step by its relative gradient norm "
            "(gradient norm over weight norm) over the largest (Auto-RGN)",
)
