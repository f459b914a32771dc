"""The measured check's candidates come from the strategies' declarations (``Strategy.check``), and the list for
the strategies that existed before is the list of before; the shift's candidates (bn_adapt, surgical at the shift's
peak) join only with a profile, on small data, with the switch on."""

import pytest

from advisor import strategies
from advisor.advise import advise, check_cost
from advisor.advise import rules as R
from advisor.advise.check import (
    BUDGET_KEYS,
    PROBE_C,
    SHIFT_MAX_TRAIN,
    CheckRun,
    MeasuredCheck,
    candidates,
    network_budget,
    offer,
    peak_range,
    probe_blocks,
    shift_peak,
    thirds,
)
from advisor.errors import AdvisorError
from tests.advise.test_rules import RISING, make_profile


def candidates_before(n_blocks, n_train, family="cnn"):
    """``advisor.advise.check.candidates`` as it was written before the declarations (commit 649c1cb), kept
    here word for word: the advice grid's stored check runs were made with this list."""
    ratios = {"cnn": (0.1,), "transformer": (0.01, 0.1)}
    out = [("linear_probe", {"C": c}) for c in (0.1, 1.0)]
    for b in probe_blocks(n_blocks):
        out += [("svm_early", {"block": b, "C": c}) for c in (0.1, 1.0)]
    out += [("full_finetune", {"warmup": True, "lr_ratio": r, **network_budget(n_train)}) for r in ratios[family]]
    return out


COMBOS = [(6, 50, "cnn"), (6, 250, "cnn"), (19, 180, "cnn"), (19, 3000, "cnn"), (7, 100, "transformer"),
          (13, 40, "transformer"), (2, 10, "cnn"), (53, 500, "cnn")]


@pytest.mark.parametrize("n_blocks, n_train, family", COMBOS)
def test_the_existing_strategies_give_the_list_of_before_same_order(n_blocks, n_train, family):
    want = candidates_before(n_blocks, n_train, family)
    assert candidates(n_blocks, n_train, family) == want  # no profile: what the grid calls
    profile = make_profile(10, [0.5] * n_blocks, shift=[float(i) for i in range(n_blocks)])
    assert candidates(n_blocks, n_train, family, profile, shift=False) == want  # the switch off
    assert offer(n_blocks, n_train, family, profile, shift=False).shift_note == ""
    # with the switch on the list of before is kept in order, the shift's candidates only added
    on = candidates(n_blocks, n_train, family, profile, shift=True)
    assert [c for c in on if c[0] not in ("bn_adapt", "surgical")] == want


def test_the_shift_candidates_follow_the_peak_and_join_between_the_probes_and_the_fine_tunes():
    n = 19
    shift = [0.1] * n
    shift[8] = 3.0  # the peak in the middle third
    profile = make_profile(10, RISING[:1] * n, shift=shift)
    assert shift_peak(profile).index == 8 and thirds(n) == [(0, 5), (6, 12), (13, 18)]
    # switched off: the list of before, and no note; on by default (rule S of the protocol s7)
    assert offer(n, 180, "cnn", profile, shift=False).candidates == candidates_before(n, 180)
    assert offer(n, 180, "cnn", profile, shift=False).shift_note == ""
    got = offer(n, 180, "cnn", profile)
    assert got == offer(n, 180, "cnn", profile, shift=True)
    names = [s for s, _ in got.candidates]
    assert names.index("bn_adapt") > max(i for i, s in enumerate(names) if s == "svm_early")
    assert names.index("full_finetune") < names.index("surgical") == len(names) - 1
    assert [p for s, p in got.candidates if s == "bn_adapt"] == [{"probe": "linear_probe", "C": c} for c in PROBE_C] + [
        {"probe": "svm_early", "block": "best-svm", "C": 1.0}]  # B2 of the protocol s8
    assert [p for s, p in got.candidates if s == "surgical"] == [
        {"first": 6, "last": 12, "lr_ratio": 0.1, **network_budget(180)}]
    assert "surgical on blocks 6..12" in got.shift_note and "b8" in got.shift_note and "bn_adapt" in got.shift_note
    shift[8], shift[0] = 0.1, 5.0  # the peak at the stem: the first third (Lee et al.'s input-level shift)
    surg = [p for s, p in candidates(n, 180, "cnn", make_profile(10, [0.5] * n, shift=shift), shift=True)
            if s == "surgical"]
    assert (surg[0]["first"], surg[0]["last"]) == (0, 5)
    # a transformer's recipe ratio (its first check ratio) for the surgical run
    vit = candidates(12, 60, "transformer", make_profile(10, [0.5] * 12, shift=[0.0] * 11 + [1.0]), shift=True)
    assert [(p["first"], p["last"], p["lr_ratio"]) for s, p in vit if s == "surgical"] == [(8, 11, 0.01)]


def test_the_shift_candidates_need_small_data_and_a_measured_shift():
    n = 6
    profile = make_profile(10, [0.5] * n, shift=[0.0, 2.0, 0.1, 0.1, 0.1, 0.1])
    assert SHIFT_MAX_TRAIN == 1920  # 120 steps of 64 images over the 4-epoch floor
    big = offer(n, SHIFT_MAX_TRAIN + 1, "cnn", profile, shift=True)
    assert big.candidates == candidates_before(n, SHIFT_MAX_TRAIN + 1) and "more than 1920" in big.shift_note
    edge = [s for s, _ in candidates(n, SHIFT_MAX_TRAIN, "cnn", profile, shift=True)]
    assert "bn_adapt" in edge and "surgical" in edge
    none = make_profile(10, [0.5] * n, shift=[None] * n)  # no shift measured (a ViT without reference moments)
    got = offer(n, 100, "cnn", none, shift=True)
    assert "surgical" not in [s for s, _ in got.candidates] and "no shift is measured" in got.shift_note


def test_a_backbone_the_strategy_refuses_leaves_its_candidates_out():
    from advisor.models import create_backbone

    vit = create_backbone("timm:vit_tiny_patch16_224", "random", device="cpu", image_size=32)
    n = len(vit.blocks)
    profile = make_profile(10, [0.5] * n, shift=[1.0] + [0.0] * (n - 1))
    got = offer(n, 100, "transformer", profile, backbone=vit, shift=True)
    assert "bn_adapt" not in [s for s, _ in got.candidates] and "bn_adapt (bn_adapt needs BatchNorm" in got.shift_note
    assert "surgical" in [s for s, _ in got.candidates]
    cnn = create_backbone("timm:mobilenetv2_050", "random", device="cpu")
    m = len(cnn.blocks)
    kept = candidates(m, 100, "cnn", make_profile(10, [0.5] * m, shift=[1.0] * m), backbone=cnn, shift=True)
    assert [s for s, _ in kept].count("bn_adapt") == len(PROBE_C) + 1  # its linear probe at each C, its early SVM


def test_the_cost_model_reads_the_declarations():
    c = check_cost.Costs(forward_per_image=0.01, n_train=100, n_val=50, steps={0: (0.5, 0.01), 4: (0.1, 0.002)},
                         probe=1.0, filled=True)
    assert check_cost.first_trained("last_k", {"k": 2}, 6) == 4
    assert check_cost.first_trained("surgical", {"first": 4, "last": 5}, 6) == 4
    assert check_cost.first_trained("full_finetune", {}, 6) == check_cost.first_trained("norm_tune", {}, 6) == 0
    assert check_cost.first_trained("bn_adapt", {}, 6) is None
    assert check_cost.estimate("surgical", {"first": 4, "last": 5, "epochs": 2, "batch_size": 64}, c, 6) == \
        pytest.approx(check_cost.estimate("last_k", {"k": 2, "epochs": 2, "batch_size": 64}, c, 6))
    # bn_adapt passes 2 x 100 + 50 images forward itself, on top of the probe's fit
    assert check_cost.estimate("bn_adapt", {"C": 1.0}, c, 6) == pytest.approx(1.0 + 0.01 * 250)
    assert check_cost.estimate("linear_probe", {"C": 1.0}, c, 6) == pytest.approx(1.0)
    # a later bn_adapt run reuses the adaptation and the first run's features of every block: no image forward
    cands = [("bn_adapt", {"probe": "linear_probe", "C": c_}) for c_ in PROBE_C]
    cands.append(("bn_adapt", {"probe": "svm_early", "block": 3, "C": 1.0}))
    planned = check_cost.plan(cands, c, 6)
    assert [e for _, _, e in planned.run] == pytest.approx([1.0 + 0.01 * 250, 1.0, 1.0])
    assert not c.ran  # the plan leaves the costs as they were


def test_a_check_win_by_a_shift_candidate_is_advised_with_its_blocks_by_name_and_the_rule_in_the_evidence():
    from advisor.search.space import space_from_advice

    p = make_profile(10, RISING, shift=[3.0] + [0.1] * 7)
    run = {"first": 0, "last": 2, "lr_ratio": 0.1, **network_budget(60)}
    chk = MeasuredCheck(runs=[CheckRun("linear_probe", {"C": 1.0}, 0.70), CheckRun("bn_adapt", {"probe": "linear_probe",
                                                                                                "C": 1.0}, 0.74),
                              CheckRun("surgical", run, 0.80)], n_val=100, n_train=60,
                        shift_note="bn_adapt, surgical on blocks 0..2 joined the check")
    a = advise(p, check=chk)
    assert a.strategy == "surgical" and a.params == {"first": "b0", "last": "b2", "lr_ratio": 0.1}
    assert not set(a.params) & set(BUDGET_KEYS)
    ev = [e for e in a.evidence if "shift's candidates" in e.name]
    assert len(ev) == 1 and ev[0].value == 60 and "1920" in ev[0].threshold and "0..2" in ev[0].verdict
    space = space_from_advice(a)
    assert list(space.strategies) == ["surgical"]  # its own space (no k): the advised range fixed
    sp = space.strategies["surgical"].params
    assert sp["first"].value == "b0" and sp["last"].value == "b2" and "k" not in sp and sp["lr_ratio"].kind == "float"
    # bn_adapt wins: a probe's space with the advised probe kept, and last_k beside it
    chk.runs[1].val_accuracy = 0.9
    b = advise(p, check=chk)
    assert b.strategy == "bn_adapt" and b.params == {"probe": "linear_probe", "C": 1.0}
    bs = space_from_advice(b)
    assert set(bs.strategies) == {"bn_adapt", "last_k"} and bs.strategies["bn_adapt"].params["probe"].value == \
        "linear_probe"
    # without a note (the grid's stored checks) there is no extra evidence
    chk.shift_note = ""
    assert not [e for e in advise(p, check=chk).evidence if "shift's candidates" in e.name]


def test_an_unknown_family_is_still_one_line():
    with pytest.raises(AdvisorError, match="unknown network family"):
        candidates(6, 50, "rnn")


def test_every_declared_check_reads_only_its_budget():
    """A strategy without a ``check`` declaration adds nothing; the declared ones return fresh dicts."""
    b = strategies.CheckBudget(n_blocks=6, n_train=50, family="cnn", probe_c=(1.0,), probe_blocks=(2,),
                               network={"epochs": 3}, lr_ratios=(0.1,), shift=True, peak=(0, 1))
    got = {s.name: s.check_candidates(b) for s in strategies.all_strategies()}
    assert got["linear_probe"] == [{"C": 1.0}] and got["svm_early"] == [{"block": 2, "C": 1.0}]
    assert got["full_finetune"] == [{"warmup": True, "lr_ratio": 0.1, "epochs": 3}]
    assert got["surgical"] == [{"first": 0, "last": 1, "lr_ratio": 0.1, "epochs": 3}]
    assert got["last_k"] == got["lora"] == got["multi_task"] == got["norm_tune"] == []
    assert peak_range(6, 5) == (4, 5) and R.wants_check(make_profile(10, RISING))


def test_the_shift_candidates_are_on_by_default_on_small_data():
    """Rule S of the protocol s7 turned them on (the seventh held-out part judged it): with a profile and small
    data the default check holds bn_adapt and surgical; without a profile (the grid's older parts) it does not."""
    from advisor.advise import check

    assert check.SHIFT_CANDIDATES is True
    profile = make_profile(10, [0.5] * 19, shift=[float(i) for i in range(19)])
    default = {s for s, _ in candidates(19, 180, "cnn", profile)}
    assert {"bn_adapt", "surgical"} <= default
    assert not {"bn_adapt", "surgical"} & {s for s, _ in candidates(19, 180, "cnn")}


def test_bn_adapts_early_svm_takes_the_block_of_the_best_plain_svm():
    """B2 of the protocol s8 (on by default since the eighth held-out part judged it): with the shift's candidates,
    bn_adapt's early SVM at C 1.0 on the block where the plain early SVM did best on validation, named once the
    probes have run."""
    from advisor.advise import check
    from advisor.advise.check import CheckRun, resolve
    from advisor.strategies import BEST_SVM_BLOCK

    assert check.BN_SVM is True
    profile = make_profile(10, [0.5] * 7, shift=[float(i) for i in range(7)])
    assert candidates(7, 50, "cnn", profile) == candidates(7, 50, "cnn", profile, bn_svm=True)
    plain = candidates(7, 50, "cnn", profile, bn_svm=False)
    with_b2 = candidates(7, 50, "cnn", profile, bn_svm=True)
    added = [c for c in with_b2 if c not in plain]
    assert added == [("bn_adapt", {"probe": "svm_early", "block": BEST_SVM_BLOCK, "C": 1.0})]
    assert with_b2.index(added[0]) < [s for s, _ in with_b2].index("full_finetune")  # a probe: before the networks
    assert not [c for c in candidates(7, 50, "cnn", profile, shift=False, bn_svm=True) if c[0] == "bn_adapt"]
    runs = [CheckRun("linear_probe", {"C": 1.0}, 0.9), CheckRun("svm_early", {"block": 1, "C": 0.1}, 0.6),
            CheckRun("svm_early", {"block": 3, "C": 1.0}, 0.7), CheckRun("svm_early", {"block": 4, "C": 0.1}, 0.7)]
    assert resolve(added[0][1], runs) == {"probe": "svm_early", "block": 3, "C": 1.0}  # the first on a tie
    assert resolve(added[0][1], runs[:1]) is None  # no early SVM ran: left out
    assert resolve({"C": 1.0}, []) == {"C": 1.0}


def test_the_wide_check_adds_the_top_blocks_and_a_second_ratio_on_a_cnn_only():
    """K of the protocol s11 (off: the eleventh held-out part did not adopt it): on a CNN, last_k on the top tenth of
    the blocks at the recipe's ratio (last_k's own declaration) and LP-FT at 0.5 beside 0.1 join, after the probes;
    the rest of the list is kept in order; a transformer's check is unchanged."""
    from advisor.advise import check

    assert check.WIDE_CHECK is False
    profile = make_profile(10, [0.5] * 19, shift=[float(i) for i in range(19)])
    plain = candidates(19, 180, "cnn", profile)
    wide = candidates(19, 180, "cnn", profile, wide=True)
    added = [c for c in wide if c not in plain]
    net = network_budget(180)
    assert added == [("last_k", {"k": 2, "lr_ratio": 0.1, **net}),
                     ("full_finetune", {"warmup": True, "lr_ratio": 0.5, **net})]
    assert [c for c in wide if c not in added] == plain
    names = [s for s, _ in wide]
    assert names.index("last_k") > max(i for i, s in enumerate(names) if s in ("linear_probe", "svm_early", "bn_adapt"))
    assert [p["k"] for s, p in candidates(7, 50, "cnn", wide=True) if s == "last_k"] == [1]  # at least one block
    assert check.top_k(1) is None and check.top_k(7) == 1 and check.top_k(19) == 2  # never every block
    for n_blocks, n_train in ((7, 100), (13, 40)):
        assert candidates(n_blocks, n_train, "transformer", wide=True) == candidates(n_blocks, n_train, "transformer")


def test_the_middle_check_adds_surgical_on_the_middle_third_and_a_second_ratio_on_a_cnn_only():
    """W of protocol s13: on a CNN, LP-FT at 0.5 beside 0.1 and, with the shift's candidates, surgical on the middle
    third of the blocks after the one on the shift's third (none twice when the shift peaks in the middle); the rest of
    the list is kept in order; without the shift's candidates only the second ratio joins; a transformer's check is
    unchanged."""
    from advisor.advise import check

    net = network_budget(180)
    top = make_profile(10, [0.5] * 19, shift=[float(i) for i in range(19)])  # the shift peaks at the top block
    plain = candidates(19, 180, "cnn", top)
    middle = candidates(19, 180, "cnn", top, middle=True)
    added = [c for c in middle if c not in plain]
    assert check.thirds(19) == [(0, 5), (6, 12), (13, 18)]
    assert added == [("full_finetune", {"warmup": True, "lr_ratio": 0.5, **net}),
                     ("surgical", {"first": 6, "last": 12, "lr_ratio": 0.1, **net})]
    assert [c for c in middle if c not in added] == plain
    names = [s for s, _ in middle]
    assert names.index("surgical") > max(i for i, s in enumerate(names) if s in ("linear_probe", "svm_early", "bn_adapt"))
    # the shift peaks in the middle third: surgical runs there once
    mid_peak = make_profile(10, [0.5] * 19, shift=[1.0 if i == 8 else 0.0 for i in range(19)])
    surgical = [p for s, p in candidates(19, 180, "cnn", mid_peak, middle=True) if s == "surgical"]
    assert [(p["first"], p["last"]) for p in surgical] == [(6, 12)]
    # without the shift's candidates (or on large data) only the second ratio joins
    no_shift = [c for c in candidates(19, 180, "cnn", top, shift=False, middle=True)
                if c not in candidates(19, 180, "cnn", top, shift=False)]
    assert no_shift == [("full_finetune", {"warmup": True, "lr_ratio": 0.5, **net})]
    for n_blocks, n_train in ((7, 100), (13, 40)):
        assert candidates(n_blocks, n_train, "transformer", middle=True) == candidates(n_blocks, n_train, "transformer")
    note = check.offer(19, 180, "cnn", top, middle=True).shift_note
    assert "surgical on blocks 13..18" in note and "surgical on blocks 6..12" in note
