"""The advice rules on hand-built Profiles whose measurements put them in known cells."""

import math


from advisor.advise import advise
from advisor.advise import rules as R
from advisor.measure.profile import BlockProfile, Profile, SizeProfile, SourceProfile
from advisor.measure.size import task_size
import numpy as np

D = R.DEFAULT_THRESHOLDS  # the rules' default thresholds (advisor.advise.thresholds)


def make_profile(per_class, knn, shift=0.1, tasks=None, intermediate=None, params=3_500_000):
    n_blocks = len(knn)
    tasks = tasks or {"label": (per_class, knn)}
    sizes, blocks = [], []
    for t, (pc, _) in tasks.items():
        labels = np.repeat(np.arange(10), pc)
        sizes.append(task_size(t, labels, [str(i) for i in range(10)]))
    for i in range(n_blocks):
        blocks.append(BlockProfile(
            index=i, name=f"b{i}", channels=16, n_bn_layers=1,
            shift=shift if not isinstance(shift, list) else shift[i],
            logme={t: curve[i] for t, (_, curve) in tasks.items()},
            knn_accuracy={t: curve[i] for t, (_, curve) in tasks.items()},
            linear_probe_accuracy={t: curve[i] for t, (_, curve) in tasks.items()},
        ))
    final = [t for t in tasks if t != intermediate][-1]
    return Profile(dataset="x", fingerprint="f", model="m", weights="w", image_size=64, primary_task=final,
                   intermediate=intermediate, size=SizeProfile(n_samples=10 * per_class, input_shape=[1, 8, 8],
                   split={"train": 6, "val": 2, "test": 2}, tasks=sizes), sample_size=100, seed=0,
                   num_parameters=params, blocks=blocks,
                   source=SourceProfile(1000, -2.0, -1.5, 3.0, 0.5))


RISING = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9]
PEAKED = [0.3, 0.5, 0.8, 0.9, 0.8, 0.7, 0.65, 0.6]  # best at b3, last 30 points worse


def test_small_similar_is_linear_probe():
    a = advise(make_profile(10, RISING, shift=0.2))
    assert a.strategy == "linear_probe"
    assert a.search_space.trainable_blocks[0] == 0


def test_small_with_early_features_is_svm_early_on_best_block():
    a = advise(make_profile(10, PEAKED))
    assert a.strategy == "svm_early"
    assert a.params == {"block": "b3", "C": D.probe_c}
    assert any("Early features" in n and "b3" in n for n in a.notes)
    assert a.alternatives[0].strategy == "last_k" and a.alternatives[0].params["k"] == 8 - 1 - 3


def test_medium_is_last_k_and_difference_raises_k():
    similar = advise(make_profile(100, RISING, shift=0.2))
    different = advise(make_profile(100, RISING, shift=5.0))
    assert similar.strategy == different.strategy == "last_k"
    assert similar.params["k"] == math.ceil(0.15 * 8) == 2
    assert different.params["k"] == math.ceil(8 / 3) == 3
    # a different target moves its backbone faster (Li et al., 2020)
    assert similar.params["lr_ratio"] == D.lr_ratio_similar < different.params["lr_ratio"] == D.lr_ratio_different
    early = advise(make_profile(100, PEAKED, shift=0.2))
    assert early.params["k"] == 8 - 1 - 3


def test_large_is_full_finetune_with_warmup_when_features_are_good():
    informative = R.Thresholds(warmup_rule="informative")
    a = advise(make_profile(1000, RISING), informative)
    assert a.strategy == "full_finetune" and a.params["warmup"] is True
    weak = advise(make_profile(1000, [0.1, 0.12, 0.13, 0.14, 0.15, 0.16, 0.17, 0.15]), informative)
    assert weak.params["warmup"] is False
    # the grid-calibrated default: no warm-up, whatever the features
    assert D.warmup_rule == "never" and advise(make_profile(1000, RISING)).params["warmup"] is False
    assert advise(make_profile(1000, RISING), R.Thresholds(warmup_rule="always")).params["warmup"] is True
    assert advise(make_profile(1000, RISING, shift=0.2)).params["lr_ratio"] == D.lr_ratio_similar
    assert advise(make_profile(1000, RISING, shift=5.0)).params["lr_ratio"] == D.lr_ratio_different


def test_thresholds_are_the_boundaries():
    below = advise(make_profile(D.small_per_class - 1, RISING))
    at = advise(make_profile(D.small_per_class, RISING))
    assert below.strategy == "linear_probe" and at.strategy == "last_k"
    assert advise(make_profile(D.large_per_class - 1, RISING)).strategy == "last_k"
    assert advise(make_profile(D.large_per_class, RISING)).strategy == "full_finetune"


def test_confidence_grows_with_distance_from_threshold():
    near, far = advise(make_profile(D.small_per_class - 2, RISING)), advise(make_profile(2, RISING))
    assert 0.35 <= near.raw_confidence < far.raw_confidence <= 0.95
    # the calibrated probability keeps the margin's order among the rules' decisions
    assert near.decided_by == far.decided_by == "rules" and 0 < near.confidence < far.confidence < 1


def test_confidence_is_the_margin_through_the_package_table():
    from advisor.advise import confidence as C
    from advisor.advise._confidence_table import TABLE

    a = advise(make_profile(100, RISING, shift=0.2))
    assert a.confidence == C.calibrated(a.raw_confidence, "rules", TABLE)
    ident = C.calibrated(a.raw_confidence, "rules", {"method": "identity"})
    assert ident == round(a.raw_confidence, 3)
    two = advise(make_profile(100, RISING, tasks={"a": (100, RISING), "b": (100, RISING)}))
    chain = advise(make_profile(20, RISING, tasks={"z": (200, RISING), "y": (20, RISING)}, intermediate="z"))
    assert two.decided_by == chain.decided_by == "structural"


def _transfer(profile, a_to_b, b_to_a, tasks=("a", "b")):
    from advisor.measure.profile import TaskTransfer

    a, b = tasks
    profile.task_transfer = [TaskTransfer(s, d, profile.blocks[-1].name, 100, 0.5, 0.2, 0.8, 0.1, v)
                             for s, d, v in ((a, b, a_to_b), (b, a, b_to_a))]
    return profile


def test_multi_task_when_conditions_hold_and_named_when_not():
    tasks = {"a": (100, RISING), "b": (90, [v * 0.9 for v in RISING])}
    a = advise(_transfer(make_profile(100, RISING, tasks=tasks), 0.95, 0.3))
    assert a.strategy == "multi_task" and a.params["tasks"] == ["a", "b"]
    shared = next(e for e in a.evidence if e.name.startswith("shared features"))
    assert shared.value == 0.95 and shared.verdict == "shared"  # the larger direction of the pair
    unbalanced = {"a": (100, RISING), "b": (10, RISING)}
    b = advise(_transfer(make_profile(100, RISING, tasks=unbalanced), 0.95, 0.3))
    assert b.strategy != "multi_task"
    assert any("unbalanced" in n for n in b.notes)
    small_net = advise(_transfer(make_profile(100, RISING, tasks=tasks, params=500_000), 0.95, 0.3))
    assert small_net.strategy != "multi_task" and any("network is small" in n for n in small_net.notes)


def test_multi_task_needs_tasks_whose_probes_carry_each_other():
    """Curves alike (the old measure's 'shared') do not make tasks share features: the probe transfer decides."""
    tasks = {"a": (100, RISING), "b": (100, RISING)}
    apart = advise(_transfer(make_profile(100, RISING, tasks=tasks), 0.1, D.mt_min_transfer - 0.01))
    assert apart.strategy != "multi_task" and any("share little" in n for n in apart.notes)
    at = advise(_transfer(make_profile(100, RISING, tasks=tasks), 0.1, D.mt_min_transfer))
    assert at.strategy == "multi_task"
    strict = R.Thresholds(mt_min_transfer=0.9)
    assert advise(_transfer(make_profile(100, RISING, tasks=tasks), 0.1, 0.8), strict).strategy != "multi_task"
    # a Profile without the measure (written before it, or too few images labelled for both) never says shared
    old = advise(make_profile(100, RISING, tasks=tasks))
    assert old.strategy != "multi_task" and any("not measured" in n for n in old.notes)
    one_way = _transfer(make_profile(100, RISING, tasks=tasks), None, None)
    assert advise(one_way).strategy != "multi_task"


def test_pipeline_when_intermediate_labels_exist():
    tasks = {"z": (200, RISING), "y": (20, RISING)}
    a = advise(make_profile(20, RISING, tasks=tasks, intermediate="z"))
    assert a.strategy == "pipeline_vs_end_to_end"
    assert a.params == {"intermediate": "z", "final": "y", "prefer": "pipeline"}
    big = {"z": (600, RISING), "y": (600, RISING)}
    b = advise(make_profile(600, RISING, tasks=big, intermediate="z"))
    assert b.params["prefer"] == "end_to_end"


def test_blocks_table_stars_the_block_the_advice_names():
    """One definition of "best block": the table's * and the advice agree even where k-NN peaks elsewhere
    and where two blocks tie within BEST_TIE (the deepest wins)."""
    from rich.console import Console

    from advisor.report.tables import blocks_table
    from advisor.report.terminal import rich_table

    p = make_profile(10, PEAKED)
    for b in p.blocks:  # k-NN peaks at b2, the ridge probe (the advice's measure) at b3 and b4 within the tie
        b.knn_accuracy = {"label": 0.95 if b.index == 2 else 0.5}
        b.linear_probe_accuracy = {"label": {3: 0.9, 4: 0.9 - R.BEST_TIE / 2}.get(b.index, 0.4)}
    a = advise(p)
    assert a.params["block"] == "b4"
    console = Console(width=200, record=True)
    console.print(rich_table(blocks_table(p)))
    starred = [line for line in console.export_text().splitlines() if " * " in line or line.rstrip().endswith("*")]
    assert len(starred) == 1 and "b4 *" in starred[0]


# --------------------------------------------------------------------------- the measured check
def _check(*runs, n_val=100):
    from advisor.advise.check import CheckRun, MeasuredCheck

    return MeasuredCheck(runs=[CheckRun(s, p, v) for s, p, v in runs], n_val=n_val)


def test_check_decides_on_small_data_and_keeps_the_rules_choice_as_alternative():
    p = make_profile(10, RISING, shift=0.2)
    assert advise(p).strategy == "linear_probe"
    chk = _check(("linear_probe", {"C": 1.0}, 0.70), ("svm_early", {"block": 3, "C": 0.1}, 0.72),
                 ("full_finetune", {"warmup": True, "lr_ratio": 0.1, "epochs": 20}, 0.80))
    a = advise(p, check=chk)
    assert a.strategy == "full_finetune" and a.params == {"warmup": True, "lr_ratio": 0.1}
    assert a.check is chk
    assert a.alternatives[0].strategy == "linear_probe"  # what the rules alone said
    measured = [e for e in a.evidence if e.name.startswith("measured:")]
    assert [e.value for e in measured] == [0.80, 0.72, 0.70]  # best first
    # 8 points over a standard error of 4: a clear win is confident
    assert a.raw_confidence > 0.7 and a.decided_by == "check"


def test_check_names_the_svm_block_and_ties_go_to_the_cheapest():
    p = make_profile(10, RISING, shift=0.2)
    chk = _check(("linear_probe", {"C": 1.0}, 0.70), ("svm_early", {"block": 3, "C": 1.0}, 0.75),
                 ("full_finetune", {"warmup": True, "lr_ratio": 0.1}, 0.75))
    a = advise(p, check=chk)
    assert a.strategy == "svm_early" and a.params == {"block": "b3", "C": 1.0}
    assert a.raw_confidence == 0.5  # no margin over the best fine-tune: a coin toss
    clear = advise(p, check=_check(("linear_probe", {"C": 1.0}, 0.70), ("svm_early", {"block": 3, "C": 1.0}, 0.95),
                                   ("full_finetune", {"warmup": True, "lr_ratio": 0.1}, 0.75)))
    assert clear.confidence > a.confidence  # calibrated, the clear win still reads higher


def test_check_is_ignored_above_its_size_and_on_multi_task():
    chk = _check(("linear_probe", {"C": 1.0}, 0.99), ("full_finetune", {"warmup": True}, 0.10))
    large = make_profile(D.check_per_class * 10, RISING, shift=0.2)
    assert advise(large, check=chk).strategy == advise(large).strategy == "full_finetune"
    assert advise(large, check=chk).check is None
    assert R.wants_check(make_profile(D.check_per_class, RISING))
    assert not R.wants_check(make_profile(D.check_per_class + 1, RISING))
    two = make_profile(10, RISING, tasks={"a": (10, RISING), "b": (10, RISING)})
    assert not R.wants_check(two)
    never = R.Thresholds(check_per_class=0)
    assert advise(make_profile(10, RISING, shift=0.2), never, chk).strategy == "linear_probe"


def test_the_shift_peak_is_located_by_thirds_and_named_in_the_evidence():
    shift = [2.0, 0.5, 0.4, 0.3, 0.2, 0.2, 0.1, 0.1]  # peaks at the stem: input-level
    peak, level, rng = R.shift_level(make_profile(100, RISING, shift=shift))
    assert (peak.name, level, rng) == ("b0", "input-level", (0, 2)) and R.thirds(8) == [(0, 2), (3, 4), (5, 7)]
    assert R.shift_level(make_profile(100, RISING, shift=shift[::-1]))[1:] == ("top-level", (5, 7))
    a = advise(make_profile(100, RISING, shift=shift))
    assert any(e.name.endswith("peak block") and e.value == "b0" and e.verdict == "input-level" for e in a.evidence)
    assert a.strategy == "last_k"  # the rule is off until --calibrate turns it on


def test_an_input_level_peak_advises_surgical_on_the_first_third_or_bn_adapt_on_small_data():
    shift = [2.0, 0.5, 0.4, 0.3, 0.2, 0.2, 0.1, 0.1]
    t = R.Thresholds(surgical_peak_shift=1.0, bn_adapt_peak_shift=1.0)
    a = advise(make_profile(100, RISING, shift=shift), t)
    assert a.strategy == "surgical" and (a.params["first"], a.params["last"]) == (0, 2)
    assert "b0..b2" in a.summary and any("peaks at b0 (2.00)" in r for r in a.reasons)
    small = advise(make_profile(20, RISING, shift=shift), t)
    assert small.strategy == "bn_adapt" and small.params["probe"] == "linear_probe"
    # below the threshold, or a peak higher up the network: the size and similarity rules as before
    assert advise(make_profile(100, RISING, shift=[s / 4 for s in shift]), t).strategy == "last_k"
    assert advise(make_profile(100, RISING, shift=shift[::-1]), t).strategy == "last_k"
    # the strategy the rule names is valid for the network it reads
    from advisor import strategies

    strategies.get("surgical").validate(a.params, 8)


def test_thresholds_are_validated_like_strategy_parameters():
    """A threshold outside what its field accepts is one line naming it; the defaults and the grid's values pass."""
    import dataclasses

    import pytest

    from advisor.errors import AdvisorError

    for bad, words in [({"small_per_class": -1}, "bad small_per_class=-1"),
                       ({"shift_stat": "mode"}, "shift_stat"),
                       ({"warmup_rule": "sometimes"}, "warmup_rule"), ({"transfer_metric": "leep"}, "transfer_metric"),
                       ({"bn_adapt_peak_shift": 0.0}, "bn_adapt_peak_shift"),
                       ({"mt_min_params": True}, "mt_min_params")]:
        with pytest.raises(AdvisorError, match=words) as e:
            R.Thresholds(**bad)
        assert "\n" not in str(e.value)
    assert R.Thresholds() == D and D.small_per_class == 75 and D.check_per_class == 50 and D.probe_c == 1.0
    assert dataclasses.replace(D, check_per_class=float("inf"), bn_adapt_peak_shift=None, early_margin=0.0)
