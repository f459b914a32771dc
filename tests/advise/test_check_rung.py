"""The measured check's rung (issue 22, rule R1 of benchmarks/protocols/s7-rung-and-shift.md): a network candidate
is looked at once, after its warm-up and a quarter of its fine-tuning epochs, and stops there when it is more than
two binomial standard errors below the best probe."""

from __future__ import annotations

import math

import pytest

import advisor
from advisor.advise import check
from advisor.measure.stats import binomial_se
from advisor.report.tables import check_table

MODEL = "timm:mobilenetv2_050"


def test_the_rung_epoch_is_the_warm_up_and_a_quarter_of_the_fine_tune():
    assert check.rung_epoch({"warmup": True, "epochs": 20}) == 2 + 5  # LP-FT: 2 heads-only epochs first
    assert check.rung_epoch({"epochs": 4}) == 1 and check.rung_epoch({"epochs": 9}) == 3  # ceil(E / 4)
    assert check.rung_epoch({"warmup_epochs": 3, "epochs": 6}) == 5
    assert check.rung_epoch({"C": 1.0}) is None  # a probe has no epochs


def test_the_floor_is_two_standard_errors_below_the_best_probe():
    assert check.rung_floor(0.8, 100) == pytest.approx(0.8 - 2 * math.sqrt(0.8 * 0.2 / 100))
    assert check.rung_floor(0.8, 100) == pytest.approx(0.8 - check.RUNG_SE * binomial_se(0.8, 100))


def test_the_rung_stops_only_a_run_below_the_floor_with_epochs_left():
    p = {"warmup": True, "epochs": 8}  # rung after epoch 2 + 2 = 4, of 10
    floor = check.rung_floor(0.8, 100)  # 0.72
    low = [0.3, 0.5, 0.6, 0.7, 0.9, 0.95]
    assert check.rung_stops(low, p, 0.8, 100) == 4  # best so far 0.70 < 0.72, even though it would win later
    assert check.rung_stops([0.3, 0.5, 0.6, floor + 0.01, 0.5], p, 0.8, 100) is None  # at the floor: goes on
    assert check.rung_stops([0.3, 0.5, 0.75, 0.6, 0.5], p, 0.8, 100) is None  # the best so far counts, not the last
    assert check.rung_stops([0.3, 0.5, 0.6], p, 0.8, 100) is None  # early stopping ended it before the rung
    assert check.rung_stops(low, p, None, 100) is None  # no probe ran: nothing to compare with
    assert check.rung_stops([0.1] * 5, {"epochs": 4}, 0.8, 100) == 1  # rung epoch 1 of 4
    assert check.rung_stops([0.1] * 5, {"epochs": 1}, 0.8, 100) is None  # rung epoch 1 is its last: not stopped


def _analyze(monkeypatch, se, rung=True):
    monkeypatch.setattr(check, "RUNG_SE", se)
    budget = check.network_budget
    # no early stopping, so a run the rung lets go on trains every epoch (22 against the rung's 7)
    monkeypatch.setattr(check, "network_budget", lambda n: {**budget(n), "patience": 100})
    return advisor.analyze("digits:20", MODEL, weights="random", sample=100, image_size=32, check="on",
                           check_rung=rung)


def test_a_fine_tune_below_the_floor_stops_at_its_rung_and_enters_with_its_best_so_far(monkeypatch, tmp_path):
    """With the floor forced above any accuracy every fine-tune stops at its rung epoch; with it forced below
    none does. The stopped run keeps its best validation value so far and costs less time than the full run."""
    a = _analyze(monkeypatch, -1e9)
    stopped, full = a.advice.check, _analyze(monkeypatch, 1e9).advice.check
    assert stopped.rung and full.rung
    nets = [(s, f) for s, f in zip(stopped.runs, full.runs) if "epochs" in s.params]
    assert nets and [(r.strategy, r.params) for r in stopped.runs] == [(r.strategy, r.params) for r in full.runs]
    for s, f in nets:
        assert s.stopped_at == check.rung_epoch(s.params) and f.stopped_at is None
        assert 0.0 <= s.val_accuracy <= 1.0 and s.seconds < f.seconds
    assert all(r.stopped_at is None for r in stopped.runs if "epochs" not in r.params)  # a probe is never stopped
    table = check_table(a.advice, a.profile)
    assert any("stopped after epoch" in row[0] for row in table.rows) and "--check-rung" in table.caption
    a.save(tmp_path / "a.json")
    back = advisor.api.Analysis.load(tmp_path / "a.json").advice.check
    assert [r.stopped_at for r in back.runs] == [r.stopped_at for r in stopped.runs] and back.rung


def test_the_rung_is_on_by_default_and_off_on_request(monkeypatch):
    """R3 of protocol s9 (adopted on the ninth held-out part): the default check stops a run below the floor."""
    monkeypatch.setattr(check, "RUNG_SE", -1e9)
    chk = advisor.analyze("digits:20", MODEL, weights="random", sample=100, image_size=32, check="on").advice.check
    assert chk.rung and any(r.stopped_at is not None for r in chk.runs)
    off = advisor.analyze("digits:20", MODEL, weights="random", sample=100, image_size=32, check="on",
                          check_rung=False).advice.check
    assert not off.rung and all(r.stopped_at is None for r in off.runs)


def test_a_margin_over_a_stopped_run_counts_at_most_the_rungs_standard_errors(monkeypatch):
    """C3 of protocol s10: the rung stopped that run RUNG_SE standard errors behind; more is not known."""
    from advisor.advise import rules

    se = 0.02
    capped = 0.5 + 0.45 * math.tanh(check.RUNG_SE / 2)
    assert rules.check_confidence(10 * se, se) == pytest.approx(0.95, abs=1e-4)  # a finished run 10 SE behind: as confident as it gets
    assert rules.check_confidence(10 * se, se, against_stopped=True) == pytest.approx(capped)
    assert rules.check_confidence(1 * se, se, against_stopped=True) == rules.check_confidence(1 * se, se)  # under it
    assert rules.check_confidence(float("nan"), se) == 0.5  # nothing of the other kind ran
    monkeypatch.setattr(rules, "CAP_STOPPED_MARGIN", False)
    assert rules.check_confidence(10 * se, se, against_stopped=True) > capped + 0.1


def test_bn_adapts_early_svm_runs_on_the_best_plain_svms_block(monkeypatch):
    """B2 (protocol s8, on by default) end to end: the candidate's block is named once the probes have run."""
    chk = advisor.analyze("digits:20", MODEL, weights="random", sample=100, image_size=32, check="on").advice.check
    svms = [r for r in chk.runs if r.strategy == "svm_early"]
    best = max(svms, key=lambda r: r.val_accuracy)  # max keeps the first on a tie, as the check does
    b2 = [r for r in chk.runs if r.strategy == "bn_adapt" and r.params.get("probe") == "svm_early"]
    assert len(b2) == 1 and b2[0].params == {"probe": "svm_early", "block": best.params["block"], "C": 1.0}
    assert "the best early SVM's block" in chk.shift_note


def test_the_middle_check_runs_lp_ft_at_half_and_surgical_on_the_middle_third():
    """W of protocol s13 end to end (``check_middle=True``): LP-FT at rate ratio 0.5 beside 0.1, and surgical on the
    middle third of the blocks beside the shift's third, each a run of the check with its validation accuracy."""
    a = advisor.analyze("digits:20", MODEL, weights="random", sample=100, image_size=32, check="on",
                        check_middle=True)
    chk = a.advice.check
    lpft = sorted(r.params["lr_ratio"] for r in chk.runs if r.strategy == "full_finetune")
    assert lpft == [0.1, 0.5]
    middle = check.thirds(len(a.profile.blocks))[1]
    surgical = [(r.params["first"], r.params["last"]) for r in chk.runs if r.strategy == "surgical"]
    assert middle in surgical and len(surgical) == len(set(surgical))
    assert all(0.0 <= r.val_accuracy <= 1.0 for r in chk.runs)
    assert f"surgical on blocks {middle[0]}..{middle[1]}" in chk.shift_note
