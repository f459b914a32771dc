"""Scenarios: a source, a target family and a number of training images per class; which ones a run takes."""

from __future__ import annotations

import dataclasses
import sys

from .families import CHAIN_PART, FAMILIES
from .sources import SOURCE_COST, VIT_SOURCE

#: scenarios of --quick (about 15 minutes on 2 cores with a cold cache)
QUICK = ("fmnist04/fm-new/10", "fmnist04/fm-src-invert/50", "fmnist04/fm-new-blur/50",
         "imagenet/in-digits/10", "fmnist04/mt-shared/50", "fmnist04/chain/50")

SMALL_2X2 = 100  # the plain 2x2 rule's "small": fewer training images per class than this


@dataclasses.dataclass(frozen=True)
class Scenario:
    family: str
    per_class: int

    @property
    def spec(self) -> dict:
        return FAMILIES[self.family]

    @property
    def source(self) -> str:
        return self.spec["source"]

    @property
    def data(self) -> str:
        """The family whose target data this scenario uses (a ViT family reuses a CNN family's images)."""
        return self.spec.get("data", self.family)

    @property
    def kind(self) -> str:
        return self.spec.get("kind", "single")

    @property
    def id(self) -> str:
        return f"{self.source}/{self.family}/{self.per_class}"

    @property
    def part(self) -> str:
        """Calibration or held-out: fixed by the family (and, for fashion-chain, the size)."""
        return self.spec["part"] or CHAIN_PART[self.per_class]

    @property
    def shift(self) -> str:
        return self.spec["shift"]

    @property
    def similar(self) -> bool:
        return bool(self.spec["similar"])

    @property
    def small(self) -> bool:
        return self.per_class < SMALL_2X2


def all_scenarios() -> list[Scenario]:
    """Every scenario, cheapest first (by training images, 64 px counting four times), so that a run
    cut short has scored many scenarios of both parts rather than a few expensive ones."""
    scs = [Scenario(f, n) for f, spec in FAMILIES.items() for n in spec["sizes"]]
    return sorted(scs, key=lambda s: (s.per_class * SOURCE_COST.get(s.source, 1), s.id))


def grid_family(sc: Scenario) -> str:
    """The network family of a scenario's source ("cnn" or "transformer"): it picks the trainer's recipe."""
    return "transformer" if sc.source in VIT_SOURCE.values() else "cnn"


def select(only: str | None, quick: bool) -> list[Scenario]:
    """The scenarios of ``--quick``, of ``--only`` (in the order given) or all of them."""
    scs = all_scenarios()
    if quick:
        return [s for s in scs if s.id in QUICK]
    if only:
        # in the order given (a partial run can put the scenarios it needs most first)
        want = [w.strip() for w in only.split(",") if w.strip()]
        picked: list[Scenario] = []
        for w in want:
            match = [s for s in scs if s.id == w or s.id.startswith(w.rstrip("/") + "/") or s.family == w]
            if not match:
                print(f"advice_grid: unknown scenario {w!r}; run with --list to see the ids and families",
                      file=sys.stderr)
                raise SystemExit(2)
            picked += [s for s in match if s not in picked]
        return picked
    return scs
