"""The oracle's budget: every configuration a scenario's oracle runs (the seeds' budget, and the wide one)."""

from __future__ import annotations

from advisor.advise.check import PROBE_C as CHECK_PROBE_C
from advisor.advise.check import network_budget, probe_blocks

from .families import WIDE_PARTS
from .scenarios import Scenario, grid_family

LAST_K_FRACTIONS = (0.1, 0.25, 0.5)  # last_k at these fractions of the blocks (19 blocks: k = 2, 5, 10)
LR_RATIOS = (0.1, 0.5)
#: The budget's rate ratios on a transformer source (regime 2, written 2026-12-05 before any of its results,
#: with the transformer recipe of advisor.strategies._recipes): the recipe's 0.01 and the CNN default 0.1.
#: The first ViT grid (code version ec77fa45fcd6) ran LR_RATIOS on every source and the CNN recipe.
FAMILY_LR_RATIOS = {"cnn": LR_RATIOS, "transformer": (0.01, 0.1)}
# The probes' C values, the early-SVM blocks and the networks' epochs are the measured check's
# (advisor.advise.check), so every configuration the check runs is one of the oracle's: the grid scores
# the check from the oracle's records and trains nothing twice.
PROBE_C = CHECK_PROBE_C
svm_blocks = probe_blocks
network_common = network_budget


def last_ks(n_blocks: int) -> list[int]:
    return sorted({max(1, round(n_blocks * f)) for f in LAST_K_FRACTIONS} - {n_blocks})


#: The wide budget (issue 21), written with the fifth held-out part before any result of either: every strategy
#: beyond the seeds, at one rate ratio (the family's first: the recipe's) to fit the CPU: surgical on the first,
#: middle and last third of the blocks; bn_adapt with both probes (BatchNorm sources only); norm_tune; lora at
#: ranks 4 and 8; auto_rgn. The fifth part always uses it; the older parts with ``--budget wide`` (re-scored:
#: the oracle can only get better). The shift peak's own range is not a separate configuration: it lies in
#: one of the thirds, which the advice can name.
BUDGET = "seeds"
LORA_RANKS = (4, 8)


def set_budget(name: str) -> None:
    """The oracle's budget on the older parts for this process: ``"seeds"`` or ``"wide"`` (``--budget``)."""
    global BUDGET
    if name not in ("seeds", "wide"):
        raise ValueError(f"budget {name!r}: seeds or wide")
    BUDGET = name


def uses_wide(sc: Scenario) -> bool:
    """Whether ``sc``'s oracle (and so its measured check) holds the wide budget: the fifth and sixth held-out
    parts always, the older parts under ``--budget wide``."""
    return BUDGET == "wide" or sc.part in WIDE_PARTS


def thirds(n_blocks: int) -> list[tuple[int, int]]:
    """(first, last) block ranges of the first, middle and last third, 0-based and inclusive: the check's own
    (:func:`advisor.advise.check.thirds`, which the rules' surgical advice also uses), so that surgical advice on a
    third is a configuration of the budget."""
    from advisor.advise.check import thirds as check_thirds

    return check_thirds(n_blocks)


def wide_budget(sc: Scenario, n_blocks: int, n_train: int) -> list[tuple[str, dict]]:
    """The configurations the wide budget adds to the seeds' (see :data:`BUDGET`)."""
    net = network_common(n_train)
    r = FAMILY_LR_RATIOS[grid_family(sc)][0]
    out = []
    if grid_family(sc) == "cnn":  # bn_adapt refuses a network without BatchNorm
        out += [("bn_adapt", {"probe": "linear_probe", "C": c}) for c in PROBE_C]
        out += [("bn_adapt", {"probe": "svm_early", "block": b, "C": 1.0}) for b in svm_blocks(n_blocks)]
    out += [("surgical", {"first": a, "last": b, "lr_ratio": r, **net}) for a, b in thirds(n_blocks)]
    out += [("norm_tune", {"lr_ratio": r, **net}), *(("lora", {"rank": k, "lr_ratio": r, **net}) for k in LORA_RANKS),
            ("auto_rgn", {"lr_ratio": r, **net})]
    return out


def oracle_budget(sc: Scenario, n_blocks: int, n_train: int) -> list[tuple[str, dict]]:
    """Every candidate configuration of the oracle, in a fixed order (ties go to the first): the seeds' budget,
    plus the wide budget's configurations on the fifth and sixth held-out parts or with ``--budget wide``."""
    if sc.kind == "multi_task":
        return [("multi_task", {"k": max(1, n_blocks // 2), "compare": True, **network_common(n_train)})]
    if sc.kind == "pipeline":
        return [("pipeline_vs_end_to_end", {"k": max(1, n_blocks // 2), "learning_curve": False, **network_common(n_train)})]
    net = network_common(n_train)
    out = [("linear_probe", {"C": c}) for c in PROBE_C]
    for b in svm_blocks(n_blocks):
        out += [("svm_early", {"block": b, "C": c}) for c in PROBE_C]
    ratios = FAMILY_LR_RATIOS[grid_family(sc)]
    out += [("last_k", {"k": k, "lr_ratio": r, **net}) for k in last_ks(n_blocks) for r in ratios]
    out += [("full_finetune", {"warmup": w, "lr_ratio": r, **net}) for w in (False, True) for r in ratios]
    if uses_wide(sc):
        out += wide_budget(sc, n_blocks, n_train)
    return out
