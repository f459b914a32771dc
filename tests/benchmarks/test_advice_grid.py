"""The advice grid's machinery (the package benchmarks/advice_grid/): regrets, parts, one tiny scenario end to end.

These test the benchmark's code, not its results.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def grid():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("advice_grid")
    finally:
        sys.path.remove(str(BENCH))


# --------------------------------------------------------------------------- regrets from known numbers
def test_regrets_from_known_numbers(grid):
    cr, sr = grid.regrets(0.90, 0.85, 0.88)
    assert cr == pytest.approx(5.0) and sr == pytest.approx(2.0)
    # an advised run that beats the oracle on test has a negative regret, reported as it is
    cr, sr = grid.regrets(0.80, 0.81, 0.80)
    assert cr == pytest.approx(-1.0) and sr == pytest.approx(0.0)


def test_a_regret_of_exactly_one_point_is_within_one_point(grid):
    """858 against 848 correct of 1,000 test images is 1.00 point: the fractions' float difference reads
    1.0000000000000009, and the row counted as a miss on the thirteenth held-out part until regrets were rounded to
    REGRET_DECIMALS (far below one test image: 0.1 point of 1,000)."""
    assert 100.0 * (858 / 1000 - 848 / 1000) > 1.0  # the roundoff the rounding removes
    cr, sr = grid.regrets(858 / 1000, 848 / 1000, 848 / 1000)
    assert cr == sr == 1.0 and sr <= 1.0
    assert grid.regrets(859 / 1000, 848 / 1000, 848 / 1000)[1] > 1.0  # one test image more is over
    assert grid.points(2 / 3, 1 / 3) == round(100 / 3, 9)


def test_oracle_is_best_validation_first_on_tie(grid):
    recs = [{"val_accuracy": 0.7, "test_accuracy": 0.9, "i": 0},
            {"val_accuracy": 0.8, "test_accuracy": 0.6, "i": 1},
            {"val_accuracy": 0.8, "test_accuracy": 0.99, "i": 2}]
    best = grid.best_by_val(recs)
    assert best["i"] == 1  # chosen on validation, never on test; the first of a tie


def test_budget_per_depth(grid):
    assert grid.last_ks(19) == [2, 5, 10] and grid.svm_blocks(19) == [3, 6, 9, 12, 15]
    assert grid.last_ks(6) == [1, 2, 3] and grid.svm_blocks(6) == [1, 2, 3, 4]
    budget = grid.oracle_budget(grid.Scenario("fm-new", 10), 6, 50)
    names = [s for s, _ in budget]
    assert names.count("linear_probe") == 2 and names.count("svm_early") == 8
    assert names.count("last_k") == 6 and names.count("full_finetune") == 4
    # every baseline's default configuration is in the budget, so it costs no extra run
    assert ("full_finetune", True, 0.1) in {(s, p.get("warmup"), p.get("lr_ratio")) for s, p in budget}


def test_binomial_standard_error(grid):
    assert grid.binomial_se(0.5, 1000) == pytest.approx(math.sqrt(0.25 / 1000))
    assert grid.binomial_se(1.0, 100) == 0.0


def test_summary_counts_within_one_point_and_baselines(grid):
    def row(sr, cr, conf, base):
        return {"strategy_regret": sr, "config_regret": cr, "confidence": conf,
                "baselines": {b: {"strategy_regret": base, "config_regret": base + 1} for b in grid.BASELINES}}

    s = grid.summarise([row(0.0, 0.5, 0.9, 3.0), row(1.0, 2.0, 0.7, 0.0), row(4.0, 4.0, 0.5, 1.0)])
    assert s["n"] == 3
    assert s["within_1pt"] == pytest.approx(2 / 3)  # 0.0 and 1.0 are within one point, 4.0 is not
    assert s["mean_strategy_regret"] == pytest.approx(5 / 3)
    assert s["mean_config_regret"] == pytest.approx(6.5 / 3)
    b = s["baselines"]["always linear probe"]
    assert b["mean_strategy_regret"] == pytest.approx(4 / 3) and b["within_1pt"] == pytest.approx(2 / 3)
    assert s["confidence_bands"]["0.8-1.0"] == {"n": 1, "within_1pt": 1.0}
    # each row alone in its bin: ECE is the mean of |confidence - right| = (0.1 + 0.3 + 0.5) / 3
    assert s["ece"] == pytest.approx(0.3) and s["mean_confidence"] == pytest.approx(0.7)
    assert "ece_raw" not in s  # rows scored before the confidence was calibrated carry no raw score
    raw = [dict(row(0.0, 0.5, 0.9, 3.0), raw_confidence=1.0), dict(row(4.0, 4.0, 0.5, 1.0), raw_confidence=0.95)]
    assert grid.summarise(raw)["ece_raw"] == pytest.approx(0.5 * 0.0 + 0.5 * 0.95)


def test_confidence_table_is_fitted_on_the_rows_given_and_written_as_literals(grid, tmp_path):
    import ast

    from advisor.advise import confidence

    rng = np.random.default_rng(0)
    rows = [{"id": str(i), "part": grid.CALIBRATION, "raw_confidence": float(r), "decided_by": "rules",
             "strategy_regret": 0.0 if r + 0.2 * rng.standard_normal() > 0.65 else 5.0}
            for i, r in enumerate(rng.uniform(0.35, 0.95, 40))]
    table = grid.write_confidence_table(rows, "v1,v2", tmp_path / "t.py", log=lambda *_: None)
    text = (tmp_path / "t.py").read_text()
    assert ast.literal_eval(text.split("TABLE = ", 1)[1]) == table
    assert table["fitted_on"] == {"version": "v1,v2", "parts": [grid.CALIBRATION], "rows": 40,
                                  "event": "strategy regret <= 1 point"}
    assert table["share_right"] == pytest.approx(np.mean([r["strategy_regret"] <= 1 for r in rows]), abs=1e-4)
    assert confidence.predict(table, [0.4], ["rules"])[0] < confidence.predict(table, [0.9], ["rules"])[0]
    with pytest.raises(SystemExit):
        grid.write_confidence_table([dict(rows[0], raw_confidence=None)], "v", tmp_path / "u.py")


def test_a_version_list_reads_each_scenario_from_the_first_that_holds_it(grid, tmp_path, monkeypatch):
    monkeypatch.setattr(grid.store, "RESULTS", tmp_path)
    sc = grid.Scenario("in-digits", 10)
    (tmp_path / "new" / sc.id.replace("/", "__")).mkdir(parents=True)
    assert grid._scenario_dir(sc, "old,new") == tmp_path / "new" / sc.id.replace("/", "__")
    assert grid._scenario_dir(sc, "old,other") == tmp_path / "old" / sc.id.replace("/", "__")


# --------------------------------------------------------------------------- the parts are fixed by definition
HELD_OUT = {
    "fmnist04/fm-new-blur/10", "fmnist04/fm-new-blur/50", "fmnist04/fm-new-blur/200", "fmnist04/fm-new-blur/500",
    "fmnist04/fm-src-noise/10", "fmnist04/fm-src-noise/50", "fmnist04/fm-src-noise/200",
    "fmnist04/fm-src-noise/500", "fmnist04/fm-src-coarse/10", "fmnist04/fm-src-coarse/50",
    "fmnist04/fm-src-coarse/200", "fmnist04/fm-src-coarse/500", "imagenet/in-fashion/10",
    "imagenet/in-fashion/50", "imagenet/in-fashion/200", "fmnist04/mt-unshared/50", "tiny/mt-smallnet/50",
    "fmnist04/chain/50", "fmnist04/chain/500", "fmnist04/chain-noisyz/200",
}


# written before any of its results existed: the judge of the next advice method
HELD_OUT_2 = {f"fmnist04/{f}/{n}" for f in ("fm-new-rot90", "fm-src-pixelate", "fm-new-coarse")
              for n in (10, 50, 200, 500)} | {"imagenet/in-fashion-invert/10", "imagenet/in-fashion-invert/50"}
# written before any of its results existed, with the method frozen: multi-task and pipeline only
HELD_OUT_3 = {"fmnist04/mt-unshared-unbalanced/50", "tiny/mt-smallnet-unbalanced/50", "fmnist04/mt-shared-invert/50",
              "fmnist04/mt-shared-invert/200", "fmnist04/chain-scarcez/50", "fmnist04/chain-scarcez/200",
              "fmnist04/chain-blur/50", "fmnist04/chain-blur/500"}
# written before any of its results existed, with the method frozen: position-free multi-task and pipeline
HELD_OUT_4 = {"fmnist04/mt-item-group/50", "fmnist04/mt-item-digit/50", "imagenet/in-mt-item-group/50",
              "imagenet/in-mt-item-group-unbalanced/50", "imagenet/in-mt-item-digit/50", "fmnist04/item-chain/10",
              "fmnist04/item-chain/50", "fmnist04/item-chain/200", "fmnist04/item-chain-noisyz/50"}


# the transformer parts, written and committed before any ViT result existed (issue 20 section 6)
VIT_SIZES = (10, 50, 200)
VIT_CALIBRATION = ({f"fmnist04-vit/vit-{f}/{n}" for f in ("fm-new", "fm-new-lowcontrast", "fm-src-invert")
                    for n in VIT_SIZES}
                   | {f"fmnist04-vit/vit-fm-digits/{n}" for n in (10, 50, 100)}
                   | {f"vits14/s14-digits/{n}" for n in (10, 50, 100)})
VIT_HELD_OUT = ({f"fmnist04-vit/vit-{f}/{n}" for f in ("fm-new-blur", "fm-src-noise", "fm-src-coarse", "fm-new-rot90",
                                                       "fm-src-pixelate", "fm-new-coarse") for n in VIT_SIZES}
                | {f"vits14/{f}/{n}" for f in ("s14-fashion", "s14-fashion-invert") for n in VIT_SIZES})


def test_parts_are_fixed_by_the_scenario_definition(grid):
    scs = grid.all_scenarios()
    # the held-out parts are exactly the ones written before any of their results was seen
    assert {s.id for s in scs if s.part == grid.HELDOUT} == HELD_OUT
    assert {s.id for s in scs if s.part == grid.HELDOUT2} == HELD_OUT_2
    assert {s.id for s in scs if s.part == grid.HELDOUT3} == HELD_OUT_3
    assert {s.id for s in scs if s.part == grid.HELDOUT4} == HELD_OUT_4
    assert {s.id for s in scs if s.part == grid.VIT_CALIBRATION} == VIT_CALIBRATION
    assert {s.id for s in scs if s.part == grid.VIT_HELDOUT} == VIT_HELD_OUT
    # only calibration parts calibrate: no held-out scenario of any source is among them
    assert set(grid.CALIBRATION_PARTS) == {grid.CALIBRATION, grid.VIT_CALIBRATION}
    assert {s.part for s in scs} == set(grid.PARTS)
    # the part is a function of the definition alone: a rebuilt scenario lands in the same part
    for s in scs:
        assert grid.Scenario(s.family, s.per_class).part == s.part


def test_grid_covers_what_the_issue_asks(grid):
    scs = grid.all_scenarios()
    single = [s for s in scs if s.kind == "single"]
    assert len(single) >= 24
    assert {(s.small, s.similar) for s in single} == {(True, True), (True, False), (False, True), (False, False)}
    assert {"input", "feature", "label"} <= {s.shift for s in single}
    assert sum(s.kind == "multi_task" for s in scs) >= 4 and sum(s.kind == "pipeline" for s in scs) >= 4
    truths = [grid.FAMILIES[s.family]["truth"] for s in scs if s.kind == "multi_task"]
    for cond in ("shared", "balanced", "big"):  # each of Ng's conditions both holds and fails somewhere
        assert {t[cond] for t in truths} == {True, False}
    assert {s.per_class for s in single if s.family == "fm-new"} == {10, 50, 200, 500}


def test_vit_sources_and_scenarios(grid):
    """Both ViT sources carry every single-task target family of their CNN twin at 10, 50 and 200 per
    class (digits: 100, all it has), with the same truth (shift, similar) as the CNN scenario."""
    assert grid.SOURCES["vits14"] == ("timm:vit_small_patch14_dinov2", None, 56)
    assert grid.SOURCES["vits14"][2] % 14 == 0  # whole patches: no position-embedding guesswork at the border
    assert grid.SOURCES["fmnist04-vit"] == ("timm:vit_grid_patch4_28", "controlled:vit_grid_patch4_28", 28)
    scs = grid.all_scenarios()
    twin = {"fmnist04": "fmnist04-vit", "imagenet": "vits14"}
    cnn_single = {s.family for s in scs if s.kind == "single" and s.source in twin and s.part not in grid.WIDE_PARTS}
    vit = [s for s in scs if s.source in twin.values() and s.part not in (grid.VIT_HELDOUT2, grid.VIT_HELDOUT3)]
    assert {s.data for s in vit} == cnn_single and all(s.kind == "single" for s in vit)
    for s in vit:
        cnn = grid.Scenario(s.data, grid.FAMILIES[s.data]["sizes"][0])
        assert s.source == twin[cnn.source] and (s.shift, s.similar) == (cnn.shift, cnn.similar)
        assert s.per_class in ((10, 50, 100) if s.data.endswith("digits") else VIT_SIZES)
    # a family keeps its CNN side of the line
    for s in vit:
        assert (s.part == grid.VIT_CALIBRATION) == (grid.FAMILIES[s.data]["part"] == grid.CALIBRATION)
    # both parts hold both sources, and both sizes of the 2x2
    for part in (grid.VIT_CALIBRATION, grid.VIT_HELDOUT):
        sel = [s for s in vit if s.part == part]
        assert {s.source for s in sel} == set(twin.values()) and {s.small for s in sel} == {True, False}


def test_second_vit_held_out_part_is_new_targets_on_the_controlled_vit(grid):
    """The part that judges the transformer recipe: targets no CNN or earlier ViT scenario uses (new
    combinations of the grid's class sets and transforms), on the controlled ViT, at 10 and 50 per class."""
    scs = grid.all_scenarios()
    new = [s for s in scs if s.part == grid.VIT_HELDOUT2]
    assert len(new) == 8 and {s.per_class for s in new} == {10, 50}
    assert {s.source for s in new} == {"fmnist04-vit"} and all(s.kind == "single" for s in new)
    earlier = {s.data for s in scs if s.part not in (grid.VIT_HELDOUT2, grid.VIT_HELDOUT3)}
    assert not {s.data for s in new} & earlier
    assert all(s.data.startswith(("fm-new-", "fm-src-")) and s.data.rsplit("-", 1)[1] in
               ("noise", "blur", "rot90", "pixelate") for s in new)


def test_third_vit_held_out_part_is_unseen_scenarios_where_the_check_runs(grid):
    """The part that judges the two-ratio check: scenarios no earlier part holds (two new target families,
    and a size no part has), all at or below the check's 50 per class, so the check decides each."""
    from advisor.advise.thresholds import DEFAULT_THRESHOLDS

    scs = grid.all_scenarios()
    new = [s for s in scs if s.part == grid.VIT_HELDOUT3]
    assert len(new) == 8 and all(s.per_class <= DEFAULT_THRESHOLDS.check_per_class for s in new)
    earlier = [s for s in scs if s.part != grid.VIT_HELDOUT3]
    assert not {(s.data, s.per_class) for s in new} & {(s.data, s.per_class) for s in earlier}
    assert {s.data for s in new} - {s.data for s in earlier} == {"fm-src-lowcontrast", "fm-new-invert"}


def test_fifth_held_out_part_holds_the_shifts_the_new_strategies_exist_for(grid):
    """Issue 21's judge, written before any of its results: input-, feature- and label-level shifts at 10, 50
    and 200 per class on the controlled CNN, two of them on ImageNet, and four ImageNet multi-task scenarios;
    every target new to the grid; each built deterministically."""
    scs = grid.all_scenarios()
    new = [s for s in scs if s.part == grid.SHIFT_HELDOUT]
    single = [s for s in new if s.kind == "single"]
    assert len(new) >= 24 and {s.shift for s in single if s.source == "fmnist04"} == {"input", "feature", "label"}
    assert {s.per_class for s in single if s.source == "fmnist04"} == {10, 50, 200}
    assert {s.source for s in single} == {"fmnist04", "imagenet"}
    mt = [s for s in new if s.kind == "multi_task"]
    assert len(mt) >= 4 and {s.source for s in mt} == {"imagenet"}
    assert {grid.FAMILIES[s.family]["truth"]["shared"] for s in mt} == {True, False}
    earlier = {s.data for s in scs if s.part != grid.SHIFT_HELDOUT}
    assert not {s.data for s in new} & earlier
    # two severities of each corruption, one on the source's classes and one on new classes
    kinds = {}
    for fam, (kind, level) in grid._S5_INPUT.items():
        if grid.FAMILIES[fam]["source"] == "fmnist04":
            kinds.setdefault(kind, set()).add(level)
    assert all(len(levels) == 2 for levels in kinds.values()) and set(kinds) == {"noise", "jpeg", "elastic"}
    a, split = grid.build_dataset(grid.Scenario("s5-breeds", 10))
    b, _ = grid.build_dataset(grid.Scenario("s5-breeds", 10))
    assert a.fingerprint() == b.fingerprint() and len(split.train) == 30
    # BREEDS-like: the classes a group trains on are not the ones it is tested on
    assert not {m for _, tr, _ in grid.S5_BREEDS for m in tr} & {m for _, _, te in grid.S5_BREEDS for m in te}
    # a fifth of the training labels moved to another class; validation and test stay balanced and clean
    flipped, fsplit = grid.build_dataset(grid.Scenario("s5-src-flip20", 50))
    train = [int((flipped.labels[fsplit.train, 0] == c).sum()) for c in range(5)]
    val = [int((flipped.labels[fsplit.val, 0] == c).sum()) for c in range(5)]
    assert sum(train) == 250 and train != [50] * 5 and val == [100] * 5


def test_sixth_held_out_part_is_new_and_judged_the_confidence_fit_before_joining_it(grid):
    """The judge of the confidence's refit: targets no other part has, on the wide budget; among the rows the
    confidence is fitted on only since the refit after S (protocol s7); each declared transform, flip and BREEDS
    swap built as its family says."""
    import numpy as np

    scs = grid.all_scenarios()
    new = [s for s in scs if s.part == grid.SIXTH_HELDOUT]
    assert len(new) >= 20 and all(s.kind == "single" for s in new)
    assert {s.shift for s in new if s.source == "fmnist04"} == {"input", "feature", "label"}
    assert {s.per_class for s in new if s.source == "fmnist04"} == {10, 50} and "imagenet" in {s.source for s in new}
    assert not {s.data for s in new} & {s.data for s in scs if s.part != grid.SIXTH_HELDOUT}
    assert all(grid.uses_wide(s) for s in new)
    assert grid.SHIFT_HELDOUT in grid.CONFIDENCE_PARTS and grid.SIXTH_HELDOUT in grid.CONFIDENCE_PARTS  # refit after S
    # the fifth part's images are unchanged by the sixth's transforms (the fingerprint its stored analysis holds)
    a, _ = grid.build_dataset(grid.Scenario("s5-src-jpeg30", 10))
    assert a.fingerprint().startswith("b1611dee6526f0a2")
    # the swap: trained on the members the fifth part tested on, tested on those it trained on
    swap, sp = grid.build_dataset(grid.Scenario("s6-breeds-swap", 10))
    assert [tr for _, tr, _ in grid.FAMILIES["s6-breeds-swap"]["breeds"]] == [te for _, _, te in grid.S5_BREEDS]
    assert len(sp.train) == 30 and "tested on T-shirt/top, Pullover" in swap.classes["label"][0]
    # 35% of the training labels flipped (seeded), validation balanced; contrast halved around mid-grey
    flipped, fsplit = grid.build_dataset(grid.Scenario("s6-src-flip35", 50))
    plain, _ = grid.build_dataset(grid.Scenario("s6-src-contrast50", 50))
    moved = np.bincount(flipped.labels[fsplit.train, 0], minlength=5)
    assert moved.sum() == 250 and moved.tolist() != [50] * 5
    assert [int((flipped.labels[fsplit.val, 0] == c).sum()) for c in range(5)] == [100] * 5
    assert plain.images.std() < 0.6 * flipped.images.std()

def test_seventh_held_out_part_is_the_rung_and_shift_protocols_judge(grid):
    """At least 20 unseen targets at or below the check's 50 per class (so the check runs on each), on the wide
    budget, outside every fitted set; its transforms, regrouping and BREEDS split built as declared."""
    import numpy as np

    from advisor.advise.rules import DEFAULT_THRESHOLDS

    scs = grid.all_scenarios()
    new = [s for s in scs if s.part == grid.SEVENTH_HELDOUT]
    assert len(new) >= 20 and all(s.kind == "single" for s in new)
    assert all(s.per_class <= DEFAULT_THRESHOLDS.check_per_class for s in new)
    assert {s.shift for s in new if s.source == "fmnist04"} == {"input", "feature", "label"}
    assert "imagenet" in {s.source for s in new} and all(grid.uses_wide(s) for s in new)
    assert not {s.data for s in new} & {s.data for s in scs if s.part != grid.SEVENTH_HELDOUT}
    assert grid.SEVENTH_HELDOUT not in grid.CALIBRATION_PARTS  # in CONFIDENCE_PARTS since protocol s10 (T3)
    breeds, sp = grid.build_dataset(grid.Scenario("s7-breeds3", 10))
    assert len(sp.train) == 30 and "tested on Pullover, Shirt" in breeds.classes["label"][0]
    regroup, rsplit = grid.build_dataset(grid.Scenario("s7-src-regroup", 30))
    assert np.bincount(regroup.labels[rsplit.train, 0]).tolist() == [30, 30]
    low, _ = grid.build_dataset(grid.Scenario("s7-src-contrast25", 10))
    assert low.images.std() < 0.35 * regroup.images.std()


def _a_protocols_judge(grid, part):
    """A protocol's held-out part: at least 20 single-task targets at or below the check's 50 per class, on the wide
    budget, with shifts of every kind on the controlled CNN, and data no other part has."""
    from advisor.advise.rules import DEFAULT_THRESHOLDS

    scs = grid.all_scenarios()
    new = [s for s in scs if s.part == part]
    assert len(new) >= 20 and all(s.kind == "single" for s in new)
    assert all(s.per_class <= DEFAULT_THRESHOLDS.check_per_class for s in new) and all(grid.uses_wide(s) for s in new)
    assert {s.shift for s in new if s.source == "fmnist04"} == {"input", "feature", "label"}
    assert not {s.data for s in new} & {s.data for s in scs if s.part != part}


def test_eighth_held_out_part_is_the_s8_protocols_judge(grid):
    """At least 20 unseen targets at or below the check's 50 per class, on the wide budget, outside every fitted set."""
    _a_protocols_judge(grid, grid.EIGHTH_HELDOUT)
    assert grid.EIGHTH_HELDOUT not in grid.CALIBRATION_PARTS  # in CONFIDENCE_PARTS since protocol s10 (T3)
    mix, sp = grid.build_dataset(grid.Scenario("s8-mix4", 20))
    assert len(sp.train) == 100 and mix.classes["label"] == ["Dress", "Sandal", "Shirt", "Sneaker", "Ankle boot"]


def test_ninth_held_out_part_is_the_s9_protocols_judge(grid):
    """At least 20 unseen targets at or below the check's 50 per class, on the wide budget, outside every fitted set."""
    _a_protocols_judge(grid, grid.NINTH_HELDOUT)
    assert grid.NINTH_HELDOUT not in grid.CONFIDENCE_PARTS + grid.CALIBRATION_PARTS
    regroup, sp = grid.build_dataset(grid.Scenario("s9-src-regroup2", 15))
    assert np.bincount(regroup.labels[sp.train, 0]).tolist() == [15, 15]
    breeds, _ = grid.build_dataset(grid.Scenario("s9-breeds5", 15))
    assert "tested on Pullover, Coat" in breeds.classes["label"][0]


def test_tenth_held_out_part_is_the_s10_protocols_judge(grid):
    """At least 20 unseen targets at or below the check's 50 per class, on the wide budget, outside every fitted set;
    the confidence's fit holds the fifth to eighth parts and neither the ninth nor the tenth."""
    _a_protocols_judge(grid, grid.TENTH_HELDOUT)
    assert set(grid.CONFIDENCE_PARTS) == set(grid.CALIBRATION_PARTS) | {
        grid.SHIFT_HELDOUT, grid.SIXTH_HELDOUT, grid.SEVENTH_HELDOUT, grid.EIGHTH_HELDOUT}
    regroup, sp = grid.build_dataset(grid.Scenario("s10-new-regroup4", 12))
    assert np.bincount(regroup.labels[sp.train, 0]).tolist() == [12, 12]
    breeds, _ = grid.build_dataset(grid.Scenario("s10-breeds6", 12))
    assert "tested on T-shirt/top, Shirt" in breeds.classes["label"][0]


def _rung_records(grid, root, curve, probe_val):
    """A stored scenario whose check candidates all have records: every probe at ``probe_val``, every network run
    with validation curve ``curve`` (0.1 s an epoch)."""
    sc = grid.Scenario("fm-new", 10)  # the seeds' budget: the check without a profile, nothing to analyze
    names = ["stem"] + [f"blocks.{i}" for i in range(6)]
    d = root / "v" / sc.id.replace("/", "__")
    d.mkdir(parents=True)
    (d / "shape.json").write_text(json.dumps({"n_blocks": 7, "block_names": names, "n_train": 50, "n_val": 100,
                                              "n_test": 1000}))
    for s, p in grid.check_candidates(7, 50, "cnn"):
        q = grid._norm_params(s, p, names, "cnn")
        rec = {"val_accuracy": probe_val, "wall_s": 0.5}
        if "epochs" in p:
            rec = {"val_accuracy": max(curve), "wall_s": 0.1 * len(curve) + 1.0, "val_curve": curve,
                   "epoch_s": [0.1] * len(curve)}
        (d / f"{s}-{grid.store._config_key(s, q)}.json").write_text(json.dumps(rec))
    return sc, grid.Runner(sc, "v")


def test_the_grid_reads_the_rung_from_each_records_validation_curve(grid, tmp_path, monkeypatch):
    """The rung's decision and cost come from the stored curve, as analyze's run would have met them: a run more
    than 2 SE below the best probe at its rung epoch enters with its best value by then and the seconds of the epochs
    it ran; a run within the floor, or a scenario without curves, is read as it finished."""
    from advisor.advise import check

    monkeypatch.setattr(grid.store, "RESULTS", tmp_path)
    lpft = next(p for s, p in grid.check_candidates(7, 50, "cnn") if "epochs" in p)
    at = check.rung_epoch(lpft)
    slow = [0.2] * at + [0.95] * 3  # it would have won, but it is far below the probes at its rung
    sc, runner = _rung_records(grid, tmp_path, slow, 0.8)
    off = grid.grid_check(sc, runner, rung=False)
    on = grid.grid_check(sc, runner, rung=True)
    assert not off.rung and on.rung
    assert off.winner().strategy == "full_finetune" and on.winner().strategy != "full_finetune"
    net = next(r for r in on.runs if r.strategy == "full_finetune")
    assert net.stopped_at == at and net.val_accuracy == 0.2 and net.seconds == pytest.approx(0.1 * at)
    assert sum(r.seconds for r in on.runs) < sum(r.seconds for r in off.runs)
    # within two standard errors of the probe at the rung: it goes on and wins
    close = [0.8 - 1.5 * math.sqrt(0.8 * 0.2 / 100)] * at + [0.95]
    monkeypatch.setattr(grid.store, "RESULTS", tmp_path / "b")
    sc2, runner2 = _rung_records(grid, tmp_path / "b", close, 0.8)
    assert grid.grid_check(sc2, runner2, rung=True).winner().strategy == "full_finetune"


def test_the_checks_surgical_range_by_name_is_its_budget_twin(grid):
    """The check names its surgical range by blocks, the budget's thirds by index: the same configuration, so the
    grid reads the third's record instead of training it again."""
    names = ["stem", "blocks.0", "blocks.1", "blocks.2", "blocks.4", "blocks.6"]
    named = grid._norm_params("surgical", {"first": "blocks.4", "last": "blocks.6", "lr_ratio": 0.1}, names)
    assert named == grid._norm_params("surgical", {"first": 4, "last": 5, "lr_ratio": 0.1}, names)
    assert (named["first"], named["last"]) in grid.thirds(len(names))
    # bn_adapt's early SVM advised by name (the check's B2 run) reads its budget twin by index
    assert grid._norm_params("bn_adapt", {"probe": "svm_early", "block": "blocks.1", "C": 1.0}, names) == \
        grid._norm_params("bn_adapt", {"probe": "svm_early", "block": 2, "C": 1.0}, names)

def test_transformer_sources_take_the_transformer_recipe_in_the_budget(grid):
    """On a transformer source the budget's rate ratios include the recipe's, and an advised network
    config without a ratio is matched to its budget twin at the recipe's ratio, as the trainer fills it."""
    from advisor.strategies import recipe

    vit = grid.Scenario("vit-fm-new", 10)
    cnn = grid.Scenario("fm-new", 10)
    assert grid.grid_family(vit) == "transformer" and grid.grid_family(cnn) == "cnn"
    ratios = {p["lr_ratio"] for s, p in grid.oracle_budget(vit, 6, 50) if s in ("last_k", "full_finetune")}
    assert recipe("transformer").lr_ratio in ratios and ratios == set(grid.FAMILY_LR_RATIOS["transformer"])
    assert {p["lr_ratio"] for s, p in grid.oracle_budget(cnn, 6, 50) if s == "last_k"} == set(grid.LR_RATIOS)
    assert grid._norm_params("last_k", {"k": 1}, [], "transformer")["lr_ratio"] == 0.01
    assert grid._norm_params("last_k", {"k": 1}, [])["lr_ratio"] == 0.1
    # every fine-tune the check runs is in the budget, on either family, so the grid scores it from records
    for sc, fam in ((vit, "transformer"), (cnn, "cnn")):
        budget = [(s, grid._norm_params(s, p, [], fam)) for s, p in grid.oracle_budget(sc, 6, 50)]
        for s, p in grid.check_candidates(6, 50, fam):
            assert (s, grid._norm_params(s, p, [], fam)) in budget, (s, p)


def test_a_vit_scenario_uses_its_cnn_twins_images(grid):
    import numpy as np

    for vit_fam, n in (("vit-fm-src-invert", 10), ("s14-digits", 10)):
        ds, split = grid.build_dataset(grid.Scenario(vit_fam, n))
        cnn, csplit = grid.build_dataset(grid.Scenario(grid.FAMILIES[vit_fam]["data"], n))
        assert np.array_equal(ds.images, cnn.images) and np.array_equal(ds.labels, cnn.labels)
        assert split.sizes() == csplit.sizes()


def test_controlled_vit_loads_through_the_weights_route(grid, tmp_path, one_torch_thread):
    """The controlled ViT is a named timm model: a state dict of it (5-class head) loads with
    ``--weights PATH``, cut into the stem and its 6 blocks of 7 x 7 + 1 tokens, at 28 px with timm's
    ViT preprocessing."""
    import timm
    import torch

    import controlled_source as cs
    from advisor.models import create_backbone

    cs.register_vit()
    torch.manual_seed(0)
    model = timm.create_model(cs.VIT_ARCH, pretrained=False, num_classes=5).eval()
    torch.save(model.state_dict(), tmp_path / "vit.pth")
    bb = create_backbone(f"timm:{cs.VIT_ARCH}", str(tmp_path / "vit.pth"), device="cpu")
    assert bb.block_names == ["stem"] + [f"blocks.{i}" for i in range(6)]
    assert bb.preprocessing["crop_size"] == 28 and bb.preprocessing["mean"] == (0.5, 0.5, 0.5)
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        outs = bb.forward_blocks(x)
        assert outs[-1].shape == (2, 50, 64)
        assert torch.allclose(bb(x), model(x), atol=1e-5)  # the loaded weights, source head included
    # its recipe is its own, versioned apart from the CNN's (whose recipe, and so its weights, stay as they were)
    assert cs.recipe(cs.VIT_EPOCHS, cs.VIT_ARCH)["optimizer"] == "adamw"
    assert cs.recipe(3)["version"] == 2 and "optimizer" not in cs.recipe(3)
    assert cs.default_path(cs.VIT_ARCH).name == "fmnist04-vit_grid_patch4_28-28px.pth"


def test_target_splits_are_disjoint_and_sized(grid):
    import numpy as np

    sc = grid.Scenario("fm-src-invert", 10)
    ds, split = grid.build_dataset(sc)
    assert split.sizes() == (50, 500, 1000)
    assert not (set(split.train) & set(split.val)) and not (set(split.val) & set(split.test))
    assert np.bincount(ds.labels[split.train, 0]).tolist() == [10] * 5
    # the same scenario builds the same data (fixed seeds), and validation/test do not depend on the size
    ds2, split2 = grid.build_dataset(sc)
    assert ds.fingerprint() == ds2.fingerprint()
    big, bsplit = grid.build_dataset(grid.Scenario("fm-src-invert", 50))
    assert np.array_equal(ds.images[split.test], big.images[bsplit.test])


def test_third_part_targets_hide_and_shift_what_they_say(grid):
    import numpy as np

    # scarce intermediate labels: z on about 20% of the training items, every evaluation item labelled
    ds, split = grid.build_dataset(grid.Scenario("chain-scarcez", 200))
    z = ds.labels[:, 0]
    assert 0.15 < (z[split.train] >= 0).mean() < 0.25
    assert (z[split.val] >= 0).all() and (z[split.test] >= 0).all() and (ds.labels[:, 1] >= 0).all()
    # the blurred chain: same sizes as the plain one, and far less pixel-to-pixel change (a radius-1.5 blur)
    plain, psplit = grid.build_dataset(grid.Scenario("chain", 50))
    blur, bsplit = grid.build_dataset(grid.Scenario("chain-blur", 50))
    assert psplit.sizes() == bsplit.sizes() and blur.images.shape == plain.images.shape

    def edge(im):
        return np.abs(np.diff(im.astype(np.int16), axis=2)).mean()

    assert edge(blur.images) < 0.6 * edge(plain.images)
    # an unbalanced pair hides the right task's labels on about 90% of the training items only
    ds, split = grid.build_dataset(grid.Scenario("mt-unshared-unbalanced", 50))
    right = ds.labels[:, 0]
    assert 0.05 < (right[split.train] >= 0).mean() < 0.15 and (right[split.val] >= 0).all()
    # the inverted pairs: the empty background is white
    ds, _ = grid.build_dataset(grid.Scenario("mt-shared-invert", 50))
    assert (ds.images[:, :14, :] == 255).all()
    # one centred item: the pipeline's y is the group of its z, before z is made noisy
    ds, split = grid.build_dataset(grid.Scenario("item-chain", 10))
    group_of = {c: g for g, members in enumerate(grid.ITEM_GROUPS) for c in members}
    assert [group_of[z] for z in ds.labels[:, 0]] == ds.labels[:, 1].tolist()
    assert np.bincount(ds.labels[split.train, 1]).tolist() == [10, 10, 10] and ds.intermediate == "z"
    noisy, nsplit = grid.build_dataset(grid.Scenario("item-chain-noisyz", 50))
    wrong = [group_of[z] != y for z, y in noisy.labels[nsplit.train]]
    assert 0.15 < np.mean(wrong) < 0.4  # 40% redrawn uniformly, about 2 in 3 of them into another group: 27%
    assert not any(group_of[z] != y for z, y in noisy.labels[nsplit.val])


# --------------------------------------------------------------------------- one tiny scenario end to end
def test_one_tiny_scenario_end_to_end(grid, tmp_path, monkeypatch, one_torch_thread):
    """ImageNet MobileNetV2 on 10 digits per class, at 32 px with a two-configuration network budget:
    analyze, every configuration, the advised one, the baselines, the regrets; a re-run computes nothing."""
    monkeypatch.setenv("ADVISOR_GRID_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(grid.store, "RESULTS", tmp_path / "results")
    monkeypatch.setitem(grid.SOURCES, "imagenet", ("mobilenet_v2", None, 32))
    monkeypatch.setattr(grid.budget, "LAST_K_FRACTIONS", (0.1,))
    monkeypatch.setattr(grid.budget, "LR_RATIOS", (0.5,))
    monkeypatch.setattr(grid.budget, "svm_blocks", lambda n: [9])
    for module in (grid.budget, grid.configs):  # the budget's and the advised configurations' epochs
        monkeypatch.setattr(module, "network_common", lambda n: {"epochs": 2, "patience": 2, "batch_size": 64})
    grid._BACKBONES.clear()
    sc = grid.Scenario("in-digits", 10)
    runner = grid.Runner(sc, "test", log=lambda *_: None)
    from advisor.advise import advise

    row = grid.score_scenario(sc, runner, advise, compute=True)
    assert row is not None and row["part"] == grid.CALIBRATION
    files = sorted(p.name for p in runner.dir.glob("*.json"))
    assert "analysis.json" in files and "shape.json" in files
    shape = json.loads((runner.dir / "shape.json").read_text())
    budget = grid.oracle_budget(sc, shape["n_blocks"], shape["n_train"])
    records = [json.loads(p.read_text()) for p in runner.dir.glob("*.json") if p.name not in ("analysis.json", "shape.json")]
    assert len(records) >= len(budget)
    # the oracle is the budget's best configuration on validation, and the regrets follow from the records
    in_budget = [runner.result(s, grid._norm_params(s, p, shape["block_names"]), compute=False) for s, p in budget]
    oracle = grid.best_by_val(in_budget)
    assert row["oracle_test"] == oracle["test_accuracy"]
    advised = [r for r in records if r["strategy"] == row["advised"]]
    assert any(row["config_regret"] == pytest.approx(100 * (oracle["test_accuracy"] - r["test_accuracy"]))
               for r in advised)
    same = [r for r in in_budget if r["strategy"] == row["advised"]]
    assert row["strategy_regret"] == pytest.approx(100 * (oracle["test_accuracy"] - grid.best_by_val(same)["test_accuracy"]))
    assert all(r["n_test"] == 500 for r in in_budget)
    # a network run keeps its validation curve, one value per epoch it ran, its best among them
    net = next(r for r in records if r["strategy"] == "last_k")
    assert len(net["val_curve"]) == len(net["epoch_s"]) == net["epochs_run"]
    assert max(net["val_curve"]) == pytest.approx(net["val_accuracy"], abs=1e-4)
    # resumable: a second scoring reads every result back and trains nothing
    mtimes = {p: p.stat().st_mtime_ns for p in runner.dir.glob("*.json")}
    again = grid.score_scenario(sc, grid.Runner(sc, "test", log=lambda *_: None), advise, compute=False)
    assert again == row
    assert {p: p.stat().st_mtime_ns for p in runner.dir.glob("*.json")} == mtimes


def test_calibrate_moves_only_the_threshold_the_rows_ask_for(grid):
    """100 per class is 'medium' today (last_k), but on these rows a probe wins: the search raises the
    small/medium boundary just past 100 and leaves every other threshold as it is."""
    from advisor.advise import rules
    from tests.advise.test_rules import RISING, make_profile

    profiles = {"a": make_profile(100, RISING), "b": make_profile(600, RISING)}
    best = {"linear_probe": 0.90, "svm_early": 0.88, "last_k": 0.80, "full_finetune": 0.70}
    big = {"linear_probe": 0.70, "svm_early": 0.70, "last_k": 0.80, "full_finetune": 0.95}
    rows = [{"id": "a", "kind": "single", "oracle_test": 0.90, "strategy_best": best},
            {"id": "b", "kind": "single", "oracle_test": 0.95, "strategy_best": big}]
    assert rules.advise(profiles["a"]).strategy == "last_k"
    chosen = grid.calibrate(rows, profiles, log=lambda *_: None)
    assert chosen["small_per_class"] == min(v for v in grid.SEARCH_SINGLE["small_per_class"] if v > 100)
    base = rules.DEFAULT_THRESHOLDS
    assert {k: v for k, v in chosen.items() if k != "small_per_class"} == \
        {k: v for k, v in vars(base).items() if k != "small_per_class"}
    assert rules.advise(profiles["a"], rules.Thresholds(**chosen)).strategy == "linear_probe"
    assert grid.strategy_regret_under(rows[0], rules.advise(profiles["a"], rules.Thresholds(**chosen))) == 0.0


def test_unknown_scenario_is_one_line_and_status_2():
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(BENCH.parent))
    r = subprocess.run([sys.executable, "-m", "benchmarks.advice_grid", "--only", "no-such-family", "--list"],
                       capture_output=True, text=True, timeout=120, cwd=BENCH.parent, env=env)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "no-such-family" in r.stderr and "--list" in r.stderr


def test_the_lee_table_counts_the_third_that_won_on_validation_per_shift_kind(grid):
    G = grid

    def thirds(v, t=(0.5, 0.5, 0.5)):
        return [{"first": i, "last": i, "val": v[i], "test": t[i]} for i in range(3)]

    rows = [{"shift": "input", "surgical_thirds": thirds((0.9, 0.8, 0.7))},
            {"shift": "input", "surgical_thirds": thirds((0.6, 0.6, 0.7), (0.4, 0.5, 0.6))},
            {"shift": "input", "surgical_thirds": thirds((0.8, 0.8, 0.1))},  # a tie goes to the earlier third
            {"shift": "label", "surgical_thirds": thirds((0.5, 0.6, 0.55))},
            {"shift": "feature"}]  # no surgical runs: not counted
    text = G.lee_markdown(rows)
    assert "| input | 3 | 2 | 0 | 1 | first | yes | 46.7 / 50.0 / 53.3 |" in text
    assert "| label | 1 | 0 | 1 | 0 | last | no |" in text and "| feature |" not in text


def test_the_grid_refuses_to_train_into_another_versions_folder(grid, tmp_path, capsys):
    """Computing with --version naming an older code's folder would file today's results under its name: one line,
    status 2, nothing written. --calibrate-confidence reads stored results only."""
    main = importlib.import_module("advice_grid.main").main
    before = sorted(p.name for p in grid.RESULTS.iterdir()) if grid.RESULTS.exists() else []
    assert main(["--only", "fmnist04/fm-new/10", "--version", "0d1bbfd312af", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().out.strip().splitlines()
    assert len(err) == 1 and "--report-only" in err[0] and "0d1bbfd312af" in err[0]
    assert (sorted(p.name for p in grid.RESULTS.iterdir()) if grid.RESULTS.exists() else []) == before
    assert not list(tmp_path.iterdir())


def test_eleventh_held_out_part_is_the_s11_protocols_judge(grid):
    """At least 20 unseen targets at or below the check's 50 per class, on the wide budget, outside every fitted set
    and outside the confidence's fit."""
    _a_protocols_judge(grid, grid.ELEVENTH_HELDOUT)
    assert grid.ELEVENTH_HELDOUT not in grid.CONFIDENCE_PARTS + grid.CALIBRATION_PARTS
    assert {s.per_class for s in grid.all_scenarios() if s.part == grid.ELEVENTH_HELDOUT} == {10, 18, 45}
    regroup, sp = grid.build_dataset(grid.Scenario("s11-src-regroup3", 18))
    assert np.bincount(regroup.labels[sp.train, 0]).tolist() == [18, 18]
    breeds, _ = grid.build_dataset(grid.Scenario("s11-breeds7", 18))
    assert "tested on T-shirt/top, Pullover, Coat" in breeds.classes["label"][0]


def _built_as_issue_21_asks(grid, part: str) -> tuple[list, list]:
    """The checks every part built as issue 21 asks its held-out part must pass: single-task targets on the wide
    budget, every shift kind on the controlled CNN at 10, 50 and 200 per class, each corruption at two severities,
    ImageNet MobileNetV2 at 10 and 50, data no other part has, outside every fitted set and the confidence's fit.
    Returns the part's scenarios and its input-level corruptions."""
    scs = grid.all_scenarios()
    new = [s for s in scs if s.part == part]
    assert all(s.kind == "single" and grid.uses_wide(s) for s in new)
    cnn = [s for s in new if s.source == "fmnist04"]
    assert {s.shift for s in cnn} == {"input", "feature", "label"}
    for fam in {s.data for s in cnn}:
        assert {s.per_class for s in cnn if s.data == fam} == {10, 50, 200}
    corruptions = [grid.FAMILIES[s]["input"][0] for s in {s.data for s in cnn if s.shift == "input"}]
    assert all(corruptions.count(c) == 2 for c in corruptions)  # each corruption at two severities
    assert {s.per_class for s in new if s.source == "imagenet"} == {10, 50}
    assert not {s.data for s in new} & {s.data for s in scs if s.part != part}
    assert part not in grid.CONFIDENCE_PARTS + grid.CALIBRATION_PARTS
    return new, corruptions


def test_twelfth_held_out_part_is_built_as_issue_21_asks(grid):
    """The judge of issue 21's targets (protocol s12): at least 24 single-task targets at 10, 50 and 200 per class on
    the controlled CNN with every shift kind (input-level at two severities of each corruption), ImageNet MobileNetV2
    at 10 and 50, the wide budget, data no other part has, outside every fitted set and the confidence's fit."""
    new, _ = _built_as_issue_21_asks(grid, grid.TWELFTH_HELDOUT)
    assert len(new) >= 24
    flip, sp = grid.build_dataset(grid.Scenario("s12-src-flip30", 200))
    assert np.bincount(flip.labels[sp.train, 0]).tolist() != [200] * 5  # a share of the labels moved
    assert len(sp.train) == 1000
    breeds, _ = grid.build_dataset(grid.Scenario("s12-breeds8", 10))
    assert "tested on Pullover, Coat, Shirt" in breeds.classes["label"][0]


def test_thirteenth_held_out_part_is_built_as_issue_21_asks(grid):
    """The judge of protocol s13 (W, the check with surgical on the middle third and LP-FT at 0.5) and of issue 21's
    targets once more: at least 24 single-task targets at 10, 50 and 200 per class on the controlled CNN with every
    shift kind (input-level at two severities of each corruption), ImageNet MobileNetV2 at 10 and 50, the wide budget,
    data no other part has, outside every fitted set and the confidence's fit."""
    new, corruptions = _built_as_issue_21_asks(grid, grid.THIRTEENTH_HELDOUT)
    assert len(new) == 34
    assert sorted(set(corruptions)) == ["blur", "jpeg", "noise"]
    flip, sp = grid.build_dataset(grid.Scenario("s13-new-flip20", 50))
    assert np.bincount(flip.labels[sp.train, 0]).tolist() != [50] * 5  # a share of the labels moved
    assert len(sp.train) == 250
    breeds, _ = grid.build_dataset(grid.Scenario("s13-breeds9", 10))
    assert "tested on Pullover, Shirt" in breeds.classes["label"][0]
    blurred, sp = grid.build_dataset(grid.Scenario("s13-new-blur25", 10))
    plain, _ = grid.build_dataset(grid.Scenario("s12-new-elastic5", 10))
    assert blurred.images[sp.train].std() < plain.images[sp.train].std()  # the blur smooths the images
