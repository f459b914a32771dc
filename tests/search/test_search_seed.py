"""Which measured-check runs are trials of a search space, and as what (advisor.search._seed); no training."""

from __future__ import annotations

import optuna
import pytest

from advisor.advise.check import CheckRun, MeasuredCheck
from advisor.search._seed import FROM_CHECK, check_trial, seed_study
from advisor.search.space import load_space

BLOCKS = [f"b{i}" for i in range(6)]

SPACE = """\
strategies:
  svm_early:
    block: {type: categorical, choices: [b2, b3]}
    C: {type: float, low: 0.05, high: 2.0, log: true}
  last_k:
    k: {type: int, low: 1, high: 6}
    lr_ratio: {type: float, low: 0.01, high: 1.0, log: true}
    warmup: {type: categorical, choices: [true, false]}
    epochs: 20
    patience: 5
    batch_size: 64
"""


@pytest.fixture()
def space(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SPACE)
    return load_space(str(path))


def test_a_run_inside_the_space_gets_the_samplers_distributions(space):
    values, dists, strategy, as_run = check_trial("svm_early", {"block": 3, "C": 0.1}, space, BLOCKS, "cnn")
    assert strategy == "svm_early" and values == {"strategy": "svm_early", "svm_early.block": "b3", "svm_early.C": 0.1}
    assert dists["svm_early.block"] == optuna.distributions.CategoricalDistribution(["b2", "b3"])
    assert dists["svm_early.C"] == optuna.distributions.FloatDistribution(0.05, 2.0, log=True)
    assert as_run == {"block": "b3", "C": 0.1}  # as a trial records it: the block by name


def test_full_finetune_is_last_k_over_every_block(space):
    got = check_trial("full_finetune", {"warmup": True, "lr_ratio": 0.1, "epochs": 20, "patience": 5,
                                        "batch_size": 64}, space, BLOCKS, "cnn")
    values, dists, strategy, as_run = got
    assert strategy == "last_k" and values["last_k.k"] == 6 and values["last_k.warmup"] is True
    assert dists["last_k.k"] == optuna.distributions.IntDistribution(1, 6)


@pytest.mark.parametrize("strategy, params, why", [
    ("linear_probe", {"C": 1.0}, "linear_probe is not in the space"),
    ("svm_early", {"block": 1, "C": 0.1}, "block=1 is outside the space"),
    ("svm_early", {"block": 2, "C": 5.0}, "C=5.0 is outside the space"),
    # a fixed value the run does not share: another configuration
    ("full_finetune", {"warmup": True, "lr_ratio": 0.1, "epochs": 10, "patience": 5, "batch_size": 64},
     "epochs=10 is outside the space"),
    # a setting the space leaves at its default, which the run changed
    ("last_k", {"k": 2, "lr_ratio": 0.1, "warmup": True, "epochs": 20, "patience": 5, "batch_size": 64,
                "layer_decay": 0.5}, "layer_decay=0.5 differs from what a trial runs"),
])
def test_a_run_outside_the_space_says_why(space, strategy, params, why):
    got = check_trial(strategy, params, space, BLOCKS, "cnn")
    assert isinstance(got, str) and why in got


def test_the_family_recipe_is_what_a_trial_runs(space):
    # a transformer's trial fills layer_decay 0.75 from its recipe: a run at 0.75 is that trial, at 1.0 it is not
    base = {"k": 2, "lr_ratio": 0.1, "warmup": True, "epochs": 20, "patience": 5, "batch_size": 64}
    assert not isinstance(check_trial("last_k", {**base, "layer_decay": 0.75}, space, BLOCKS, "transformer"), str)
    assert isinstance(check_trial("last_k", {**base, "layer_decay": 1.0}, space, BLOCKS, "transformer"), str)


def test_seeding_adds_each_configuration_once_and_only_to_a_study_without_them(space):
    check = MeasuredCheck(runs=[CheckRun("svm_early", {"block": 2, "C": 0.1}, 0.8, 1.5),
                                CheckRun("svm_early", {"block": 2, "C": 0.1}, 0.7, 1.0),  # the same configuration
                                CheckRun("linear_probe", {"C": 1.0}, 0.9, 0.5),
                                CheckRun("svm_early", {"block": 3, "C": 1.0}, 0.85, 2.0)], n_val=100)
    study = optuna.create_study(direction="maximize")
    advised = {"strategy": "svm_early", "svm_early.block": "b3", "svm_early.C": 1.0}
    added, left_out = seed_study(study, check, space, BLOCKS, "cnn", advised=advised)
    trials = study.get_trials()
    assert added == [0, 1] and [t.value for t in trials] == [0.8, 0.85]
    assert [t.user_attrs[FROM_CHECK] for t in trials] == [0, 3] and [t.user_attrs["wall_time"] for t in trials] == [1.5, 2.0]
    assert [bool(t.user_attrs.get("advice")) for t in trials] == [False, True]
    assert left_out == ["linear_probe {'C': 1.0}: linear_probe is not in the space"]
    assert seed_study(study, check, space, BLOCKS, "cnn") == ([], [])  # a study that holds them gets none again
    assert len(study.get_trials()) == 2
    # the sampler continues from them: a new trial's distributions are the seeded ones
    trial = study.ask()
    assert trial.suggest_categorical("strategy", ["svm_early", "last_k"]) in ("svm_early", "last_k")


def test_a_run_the_rung_stopped_enters_as_a_pruned_trial_with_its_last_report(space):
    """Its value is from a quarter of its epochs, not the configuration's: a complete trial at that value would
    tell the sampler a falsehood and keep the search from ever finishing it."""
    from optuna.trial import TrialState

    full = {"warmup": True, "lr_ratio": 0.1, "epochs": 20, "patience": 5, "batch_size": 64}
    check = MeasuredCheck(runs=[CheckRun("svm_early", {"block": 2, "C": 0.1}, 0.8, 1.5),
                                CheckRun("full_finetune", full, 0.55, 30.0, stopped_at=7)], n_val=100)
    study = optuna.create_study(direction="maximize")
    added, _ = seed_study(study, check, space, BLOCKS, "cnn")
    done, stopped = study.get_trials()
    assert added == [0, 1] and done.state == TrialState.COMPLETE and done.value == 0.8
    assert stopped.state == TrialState.PRUNED and stopped.value is None
    assert stopped.intermediate_values == {7: 0.55} and stopped.user_attrs["stopped_at"] == 7
    assert study.best_trial.number == 0  # a pruned trial is never the best


ADVICE_SPACE = """\
strategies:
  last_k:
    k: {type: int, low: 1, high: 6}
    head_lr: {type: float, low: 1.0e-3, high: 3.0e-3, log: true}
    lr_ratio: {type: float, low: 0.05, high: 0.5, log: true}
    layer_decay: {type: float, low: 0.7, high: 0.95}
    warmup: {type: categorical, choices: [false]}
    epochs: 8
    batch_size: 64
"""


def test_the_advices_space_holds_the_checks_fine_tune_as_it_ran(tmp_path):
    """A space built from the advice fixes 8 epochs and rate ranges that need not reach the check's LP-FT run
    (20 epochs on a small split, no layer decay, the recipe's head rate, a warm-up): then the run the advice
    is cannot be a trial, and the search trains another configuration as 'the advice'. hold_check makes the
    space hold it (its budget fixed, its rates inside the ranges), and advised_run names it."""
    import types

    from advisor.search._seed import _default, advised_run, hold_check

    path = tmp_path / "a.yaml"
    path.write_text(ADVICE_SPACE)
    space = load_space(str(path))
    lpft = {"warmup": True, "lr_ratio": 0.1, "epochs": 20, "patience": 5, "batch_size": 64}
    check = MeasuredCheck(runs=[CheckRun("linear_probe", {"C": 1.0}, 0.70, 0.5),
                                CheckRun("full_finetune", lpft, 0.78, 30.0)], n_val=100)
    assert "outside the space" in check_trial("full_finetune", lpft, space, BLOCKS, "cnn")
    held = hold_check(space, check, BLOCKS, "cnn")
    last_k = held.strategies["last_k"].params
    assert last_k["epochs"].value == 20 and last_k["patience"].value == 5 and last_k["batch_size"].value == 64
    assert last_k["layer_decay"].low == 0.7 and last_k["layer_decay"].high == _default("last_k", "layer_decay", "cnn")
    assert last_k["warmup"].choices == [False, True] and last_k["k"].high == 6  # depth stays as advised
    values = check_trial("full_finetune", lpft, held, BLOCKS, "cnn")[0]
    assert values["k"] == 6 and values["head_lr"] == _default("last_k", "head_lr", "cnn")
    assert space.strategies["last_k"].params["epochs"].value == 8  # the space given is left as it was
    advice = types.SimpleNamespace(check=check, decided_by="check")
    assert advised_run(advice, held, BLOCKS, "cnn") == values
    assert advised_run(types.SimpleNamespace(check=check, decided_by="rules"), held, BLOCKS, "cnn") is None
    assert advised_run(advice, space, BLOCKS, "cnn") is None  # outside the space: the advice as the rules say
