"""``surgical``: one contiguous range of blocks ``first..last``, anywhere in the network, and a new head train;
every other block stays frozen, its BatchNorm in eval mode (surgical fine-tuning, Lee et al., 2023: the first
block for an input-level shift, the last for a label-level one)."""

from advisor.block_ref import block_number
from advisor.errors import AdvisorError
from advisor.strategies._base import REQUIRED, Param, Strategy
from advisor.strategies._constraints import BlockRef
from advisor.strategies._shared import NETWORK_PARAMS


def _index(value) -> int | None:
    """A block index given as a whole number or digits (a flag's text); None for a name (or a negative number,
    which the backbone refuses later)."""
    i = block_number(value)
    return i if i is not None and i >= 0 else None


def _in_order(params: dict, n_blocks: int | None) -> None:
    """``first`` at or below ``last`` when both are indices (names are compared once the backbone is known)."""
    first, last = (_index(params.get(k)) for k in ("first", "last"))
    if first is not None and last is not None and first > last:
        raise AdvisorError(f"bad block range first={first} last={last}: first is above last",
                           f"use first <= last, e.g. first={last} last={first}")


def _check(b) -> list[dict]:
    """The measured check's surgical runs, when it offers the shift's candidates: the block range that holds the
    profile's largest shift (``b.peak``), then the middle third (``b.middle``, protocol s13's W) unless that is the
    same range; each at the family's recipe rate ratio, without a warm-up."""
    if not b.shift:
        return []
    ranges = list(dict.fromkeys(r for r in (b.peak, b.middle) if r is not None))
    return [{"first": first, "last": last, "lr_ratio": b.lr_ratios[0], **b.network} for first, last in ranges]


SURGICAL = Strategy(
    name="surgical",
    kind="network",
    params=(
        Param("first", BlockRef(), REQUIRED, help="the lowest block that trains (name or 0-based index)",
              example="0", flag=True, search={"type": "int", "low": 0, "high": "40%"}),
        Param("last", BlockRef(), REQUIRED, help="the highest block that trains (name or 0-based index)",
              example="2", flag=True, search={"type": "int", "low": "50%", "high": "100%"}),
        *NETWORK_PARAMS,
    ),
    runner="advisor.train._surgical:run_surgical",
    summary="blocks `first`..`last` (anywhere) and a new head; every other block frozen, its BatchNorm in "
            "eval mode; rates decay from `last` down",
    relate=_in_order,
    check=_check,
    trained_from=lambda p, n: _index(p.get("first")) or 0,  # a block name: counted from 0 (the most it costs)
)
