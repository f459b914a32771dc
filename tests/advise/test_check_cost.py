"""The measured check's cost: estimated before it starts, limited by a budget, shown while it runs (issue 22)."""

from __future__ import annotations

import math
import re

import pytest
import torch

import advisor
from advisor.advise import check_cost
from advisor.advise.check import candidates, resolve
from advisor.api import Analysis
from advisor.errors import AdvisorError
from tests.hostile._harness import run_advisor

MODEL = "timm:mobilenetv2_050"


def _costs(**kw):
    base = dict(forward_per_image=0.01, n_train=100, n_val=40, steps={0: (0.5, 0.03), 4: (0.1, 0.005)})
    return check_cost.Costs(**{**base, **kw})


def test_estimate_is_the_timed_step_times_the_steps_plus_validation():
    c = _costs()
    probe = check_cost.estimate("linear_probe", {"C": 1.0}, c, 6)
    assert probe == pytest.approx(0.01 * 140 + check_cost.PROBE_SECONDS)  # the cache's fill, then the fit
    c.filled = True
    assert check_cost.estimate("linear_probe", {"C": 1.0}, c, 6) == pytest.approx(check_cost.PROBE_SECONDS)
    full = check_cost.estimate("full_finetune", {"epochs": 5, "batch_size": 64}, c, 6)
    # 5 epochs of 2 steps (100 images in batches of 64) plus 5 validation passes through the whole network
    assert full == pytest.approx(5 * (2 * 0.5 + 100 * 0.03) + 5 * 40 * 0.01)
    top = check_cost.estimate("last_k", {"k": 2, "epochs": 5, "batch_size": 64}, c, 6)
    assert top == pytest.approx(5 * (2 * 0.1 + 100 * 0.005) + 5 * 40 * 0.01 * 2 / 6)  # the bottom is cached
    assert top < full


def test_plan_keeps_the_cheapest_prefix_that_fits_the_budget():
    cands = [("linear_probe", {"C": 0.1}), ("linear_probe", {"C": 1.0}),
             ("full_finetune", {"epochs": 5, "batch_size": 64})]
    everything = check_cost.plan(cands, _costs(), 6)
    assert [s for s, _, _ in everything.run] == [s for s, _ in cands] and not everything.skipped
    # the first candidate pays the fill, the second does not
    assert everything.run[0][2] > everything.run[1][2] == pytest.approx(check_cost.PROBE_SECONDS)
    probes_only = everything.run[0][2] + everything.run[1][2]
    tight = check_cost.plan(cands, _costs(), 6, budget=probes_only + 1.0)
    assert [s for s, _, _ in tight.run] == ["linear_probe", "linear_probe"]
    assert [s for s, _, _ in tight.skipped] == ["full_finetune"] and tight.seconds == pytest.approx(probes_only)
    # once one does not fit, nothing after it runs (cheapest first: the rest cost more)
    none = check_cost.plan(cands, _costs(), 6, budget=0.5)
    assert not none.run and len(none.skipped) == 3


def test_the_plan_prices_the_check_without_its_fine_tunes_and_that_budget_keeps_exactly_them():
    cands = [("linear_probe", {"C": 0.1}), ("linear_probe", {"C": 1.0}), ("bn_adapt", {"C": 1.0}),
             ("full_finetune", {"epochs": 5, "batch_size": 64}), ("last_k", {"k": 2, "epochs": 5, "batch_size": 64})]
    everything = check_cost.plan(cands, _costs(), 6)
    ests = [e for _, _, e in everything.run]
    assert everything.no_fine_tune_seconds == pytest.approx(sum(ests[:3]))
    assert everything.first_fine_tune_seconds == pytest.approx(ests[3])
    everything.overhead = 2.0  # the estimate's timed steps count against a budget too
    hint = everything.budget_without_fine_tunes()
    assert 2.0 + sum(ests[:3]) <= hint < 2.0 + sum(ests[:4])
    kept = check_cost.plan(cands, _costs(), 6, budget=hint - everything.overhead)  # as run_check passes it
    assert [s for s, _, _ in kept.run] == ["linear_probe", "linear_probe", "bn_adapt"]
    assert [s for s, _, _ in kept.skipped] == ["full_finetune", "last_k"]
    # nothing to leave out, or nothing before the first fine-tune: no such budget
    assert check_cost.plan(cands[:3], _costs(), 6).budget_without_fine_tunes() is None
    assert check_cost.plan(cands[3:], _costs(), 6).budget_without_fine_tunes() is None


def test_timed_step_leaves_the_backbone_untouched():
    from advisor.models import create_backbone

    bb = create_backbone(MODEL, "random", image_size=32)
    before = {k: v.clone() for k, v in bb.state_dict().items()}
    grads = [p.requires_grad for p in bb.parameters()]
    fixed, per_image = check_cost.step_seconds(bb, 0, 32, 10)
    top_fixed, top_per_image = check_cost.step_seconds(bb, len(bb.blocks) - 1, 32, 10)
    assert fixed >= 0 and per_image >= 0 and math.isfinite(fixed + per_image)
    assert per_image + fixed > 0 and top_per_image + top_fixed > 0
    assert all(torch.equal(before[k], v) for k, v in bb.state_dict().items())  # BN statistics included
    assert [p.requires_grad for p in bb.parameters()] == grads and not bb.training


@pytest.fixture(scope="module")
def planned_check():
    """One analyze with the check on a small random network: its plan and its progress calls."""
    plans, moves = [], []
    a = advisor.analyze("digits:20", MODEL, weights="random", sample=100, image_size=32, check="on",
                        on_check_plan=plans.append, check_shift=True,
                        progress=lambda stage, done, total: moves.append((done, total)) if stage == "check" else None)
    return a, plans, moves


def test_the_plan_is_told_before_the_check_and_recorded(planned_check):
    a, plans, moves = planned_check
    chk = a.advice.check
    assert len(plans) == 1 and [s for s, _, _ in plans[0].run] == [r.strategy for r in chk.runs]
    n_blocks = len(a.profile.blocks)
    n_train = a.profile.size.split["train"]
    # bn_adapt's early SVM takes its block from the best plain early SVM once the probes have run (check.resolve)
    want = [(s, resolve(p, chk.runs)) for s, p in candidates(n_blocks, n_train, "cnn", a.profile, shift=True)]
    assert [(r.strategy, r.params) for r in chk.runs] == want
    # asked for (check_shift), the shift's candidates joined (a BatchNorm network, a measured shift, small data),
    # and the evidence says so
    assert {"bn_adapt", "surgical"} <= {r.strategy for r in chk.runs} and "joined the check" in chk.shift_note
    assert chk.n_train == n_train
    assert chk.estimated_seconds == pytest.approx(plans[0].seconds, abs=0.1) and chk.estimated_seconds > 0
    assert chk.plan_seconds > 0 and chk.fill_seconds > 0 and not chk.skipped and chk.budget_seconds is None


def test_progress_moves_inside_the_fine_tune(planned_check):
    """The bar counts estimated seconds and moves epoch by epoch inside a run, not only between runs."""
    a, plans, moves = planned_check
    total = moves[-1][1]
    assert moves[-1] == (total, total) and all(t == total for _, t in moves)
    assert [d for d, _ in moves] == sorted(d for d, _ in moves)  # never backwards
    n_runs = len(a.advice.check.runs)
    assert len(moves) > n_runs + 1  # per-epoch updates of the fine-tune besides one per run
    # inside the fine-tune (the last run), before it ends, the bar stood between the probes' share and the total
    before_ft = round(sum(e for s, p, e in plans[0].run if check_cost.first_trained(s, p, len(a.profile.blocks)) is None))
    assert any(before_ft < d < total for d, _ in moves)


def test_a_budget_skips_the_expensive_candidates_and_says_so(monkeypatch, tmp_path):
    # a fixed cost model (the timed step says 5 s per step and 0.5 s per image): the fine-tune is estimated at
    # 20 epochs x (2 steps + 120 images) = 1,400 s and more, far over the budget; the probes (estimated from
    # their own times, about a second each here) have 600 s of room even on a loaded machine
    monkeypatch.setattr(check_cost, "step_seconds", lambda *a, **k: (5.0, 0.5))
    b = advisor.analyze("digits:20", MODEL, weights="random", sample=100, image_size=32, check="on",
                        check_budget=600, check_shift=True)
    chk = b.advice.check
    assert [s.strategy for s in chk.skipped] == ["full_finetune", "surgical"]  # the networks, after every probe
    assert all(r.strategy not in ("full_finetune", "surgical") for r in chk.runs) and chk.runs
    assert any("left out full_finetune" in r for r in b.advice.reasons)
    assert b.advice.strategy in {"linear_probe", "svm_early", "bn_adapt"}
    b.save(tmp_path / "a.json")
    back = Analysis.load(tmp_path / "a.json").advice.check
    assert back.skipped == chk.skipped and back.budget_seconds == chk.budget_seconds


def test_a_budget_below_every_candidate_leaves_the_rules_to_decide(monkeypatch):
    monkeypatch.setattr(check_cost, "step_seconds", lambda *a, **k: (0.5, 0.05))
    b = advisor.analyze("digits:20", MODEL, weights="random", sample=100, image_size=32, check="on",
                        check_budget=0.01)
    chk = b.advice.check
    assert chk is not None and not chk.runs and len(chk.skipped) == len(candidates(len(b.profile.blocks), 120, "cnn",
                                                                                   b.profile))
    assert any("left out every candidate" in n and "the rules alone decided" in n for n in b.advice.notes)
    assert not any(e.name.startswith("measured:") for e in b.advice.evidence)


@pytest.mark.parametrize("bad", [0, -3, float("nan"), True, "60"])
def test_bad_budget_is_one_clear_error(bad):
    with pytest.raises(AdvisorError, match="bad check budget"):
        advisor.analyze("digits:20", MODEL, weights="random", image_size=32, check_budget=bad)


def test_cli_announces_the_check_and_profiles_the_time(tmp_path):
    out = run_advisor(["analyze", "digits:20", "--model", MODEL, "--weights", "random", "--image-size", "32",
                       "--sample", "100", "--check", "on", "--profile-time", "--quiet"], cwd=tmp_path)
    assert out.code == 0, out.stderr
    assert "measured check:" in out.stderr and "--check off" in out.stderr and "--check-budget" in out.stderr
    # the check without its fine-tunes is priced, with the budget that keeps just that
    said = " ".join(out.stderr.split())  # the console wraps long lines
    assert re.search(r"without its fine-tunes, at most \d+ s: --check-budget \d+;", said), said
    # the rung (on by default) may stop a fine-tune: the estimate is an upper bound and says so
    assert "at most" in out.stderr and "its rung stops a fine-tune" in out.stderr
    text = " ".join(out.stdout.split())
    assert "Where the time went" in text and "forward pass over the sample" in text
    assert "full_finetune" in text and "its one pass over training and validation images" in text
    bad = run_advisor(["analyze", "digits:20", "--model", MODEL, "--check-budget", "-5"], cwd=tmp_path)
    assert bad.code == 2 and bad.stderr.strip().count("\n") == 0 and "bad check budget" in bad.stderr
