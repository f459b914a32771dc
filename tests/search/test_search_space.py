"""Search spaces: shipped YAML files, checks on bad files, percent depth, Optuna sampling, advice spaces."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

from advisor import strategies
from advisor.advise.advice import Advice, Evidence, SearchSpace
from advisor.errors import AdvisorError
from advisor.search import (
    DEFAULT_EPOCHS,
    ParamSpec,
    Space,
    advice_trial,
    load_space,
    max_epochs,
    space_from_advice,
    space_to_dict,
    space_to_yaml,
    suggest,
)
from advisor.search import space as S
from advisor.train import _network

optuna.logging.set_verbosity(optuna.logging.WARNING)

ROOT = Path(__file__).resolve().parents[2] / "search_spaces"
SHIPPED = sorted(ROOT.glob("*.yaml"))
NAMES = ["stem", *[f"ir{i}" for i in range(1, 18)], "conv_last"]  # MobileNetV2's 19 blocks
N = len(NAMES)


# ----------------------------------------------------------------------------- helpers
def validate(strategy: str, params: dict) -> None:
    """Run the trainer's own parameter checks (AdvisorError when a value is refused)."""
    if strategies.get(strategy).trains_network:
        p = _network.parse_network_params(params, strategy=strategy, n_blocks=N)
    else:
        p = strategies.get(strategy).validate(params, n_blocks=N)
    if strategy == "multi_task":
        assert p["tasks"] is None or len(p["tasks"]) >= 2
    if strategy == "svm_early":
        assert params["block"] in NAMES


def depth(value, n: int = N, index: bool = False):
    """Independent percent resolution for the bound checks: round half up, clamp to 1..n."""
    if isinstance(value, str) and value.endswith("%"):
        count = min(max(int(float(value.rstrip("%")) / 100 * n + 0.5), 1), n)
        return count - 1 if index else count
    return value


def check_in_space(space: Space, strategy: str, params: dict) -> None:
    ss = space.strategies[strategy]
    assert set(params) == set(ss.params)
    for name, spec in ss.params.items():
        v = params[name]
        block = strategies.get(strategy).param(name).base == "block"  # svm_early's block, surgical's first/last
        if block:
            v = NAMES.index(v)
        if spec.kind == "fixed":
            assert v == depth(spec.value, index=block) or v == spec.value, name
        elif spec.kind == "categorical":
            assert any(v == c and type(v) is type(c) for c in spec.choices) or NAMES[v] in spec.choices, name
        else:
            lo, hi = depth(spec.low, index=block), depth(spec.high, index=block)
            assert lo - 1e-12 <= v <= hi + 1e-12, (name, v, lo, hi)
            assert isinstance(v, int if spec.kind == "int" else float) and not isinstance(v, bool), name


def write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def make_advice(strategy: str, params: dict, k: list[int], *, warmup=(True, False), probe_blocks=(),
                n: int = N) -> Advice:
    ss = SearchSpace(strategy=strategy, trainable_blocks=list(k), n_blocks=n, head_lr=[1e-4, 3e-2],
                     lr_ratio=[0.03, 1.0], layer_decay=[0.7, 1.0], warmup=list(warmup),
                     probe_blocks=list(probe_blocks))
    return Advice(strategy=strategy, params=params, confidence=0.6, summary="s",
                  evidence=[Evidence("per class", 100.0, ">= 50", "medium")], reasons=["r"], alternatives=[],
                  search_space=ss)


def study() -> optuna.Study:
    return optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))


# ----------------------------------------------------------------------------- shipped files
def test_every_strategy_has_a_shipped_file():
    assert {p.stem for p in SHIPPED} >= {*S.PARAMS, "compare"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_space_samples_valid_params(path):
    space = load_space(path)
    st = study()
    for i in range(6):
        trial = st.ask()
        strategy, params = suggest(trial, space, NAMES)
        check_in_space(space, strategy, params)
        validate(strategy, params)
        st.tell(trial, float(i % 3))
    assert max_epochs(space) >= 1


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_space_round_trips(path, tmp_path):
    space = load_space(path)
    dumped = write(tmp_path, space_to_yaml(space))
    assert load_space(dumped) == space
    assert space_to_dict(load_space(dumped)) == space_to_dict(space)


def test_max_epochs():
    assert max_epochs(load_space(ROOT / "linear_probe.yaml")) == 1
    assert max_epochs(load_space(ROOT / "svm_early.yaml")) == 1
    assert max_epochs(load_space(ROOT / "last_k.yaml")) == 8 + S.WARMUP_EPOCHS
    assert max_epochs(load_space(ROOT / "compare.yaml")) == 8 + S.WARMUP_EPOCHS
    no_warm = Space({"last_k": S.StrategySpace("last_k", {
        "k": ParamSpec("k", "fixed", value=2),
        "epochs": ParamSpec("epochs", "int", low=3, high=12),
        "warmup": ParamSpec("warmup", "fixed", value=False)})})
    assert max_epochs(no_warm) == 12
    assert max_epochs(Space({"full_finetune": S.StrategySpace("full_finetune", {})})) == S.TRAIN_DEFAULT_EPOCHS


def test_the_pruner_counts_fine_tuning_epochs_whether_or_not_a_trial_warms_up():
    """Steps are fine-tuning epochs (warm-up epochs are not reported), so the budget is 1 .. largest epochs."""
    from advisor.search._pruners import make_pruner

    assert S.max_steps(load_space(ROOT / "last_k.yaml")) == 8  # warmup: [true, false]; max_epochs is 8 + 2
    assert S.max_steps(load_space(ROOT / "linear_probe.yaml")) == 1
    no_warm = Space({"last_k": S.StrategySpace("last_k", {"warmup": ParamSpec("warmup", "fixed", value=False)})})
    assert S.max_steps(no_warm) == S.TRAIN_DEFAULT_EPOCHS
    pruner = make_pruner("hyperband", load_space(ROOT / "last_k.yaml"))
    assert (pruner._min_resource, pruner._max_resource) == (1, 8)
    assert make_pruner("halving", no_warm)._min_resource == 1
    assert make_pruner("halving", load_space(ROOT / "last_k.yaml"))._min_resource == 1


def test_the_space_reads_the_registry():
    assert list(S.PARAMS) == list(strategies.names())
    for name in strategies.names():
        assert list(S.PARAMS[name]) == strategies.get(name).names
    assert S.TRAIN_DEFAULT_EPOCHS == strategies.get("last_k").param("epochs").default
    assert S.WARMUP_EPOCHS == _network.DEFAULT_WARMUP_EPOCHS == strategies.DEFAULT_WARMUP_EPOCHS
    assert S.NETWORK_STRATEGIES == strategies.network_names()


def test_curve_fractions_is_a_parameter_of_the_space(tmp_path):
    space = load_space(write(tmp_path, "strategy: pipeline_vs_end_to_end\nparams:\n  curve_fractions: [0.5, 1.0]\n"))
    assert space.strategies["pipeline_vs_end_to_end"].params["curve_fractions"].value == [0.5, 1.0]
    with pytest.raises(AdvisorError, match=r"params\.curve_fractions must be fractions in \(0, 1\]"):
        load_space(write(tmp_path, "strategy: pipeline_vs_end_to_end\nparams:\n  curve_fractions: [0, 1.0]\n"))


@pytest.mark.parametrize("name", strategies.names())
def test_every_strategy_has_a_default_space(name):
    space = S.default_space(name)
    assert list(space.strategies) == [name]
    st = study()
    for i in range(3):
        trial = st.ask()
        validate(*suggest(trial, space, NAMES))
        st.tell(trial, float(i))


# ----------------------------------------------------------------------------- bad files
BAD = [
    ("strategy: last_k\nparams:\n  k: {type: int, low: 1\n  head_lr: 3\n", ["not valid YAML at line 4"]),
    ("strategy: last_k\nparams:\n  k: 2\n  head_rl: {type: float, low: 1.0e-4, high: 1.0e-1}\n",
     ["params.head_rl is not a parameter of last_k", "did you mean head_lr?"]),
    ("strategy: last_k\nparams:\n  k: 2\n  head_lr: {type: float, low: 0.1, high: 0.01}\n",
     ["params.head_lr has low 0.1 above high 0.01"]),
    ("strategy: last_k\nparams:\n  k: 2\n  weight_decay: {type: float, low: 0, high: 0.01, log: true}\n",
     ["params.weight_decay.log needs low > 0"]),
    ("strategy: last_kk\nparams: {k: 2}\n", ["strategy names an unknown strategy 'last_kk'", "did you mean last_k?"]),
    ("strategy: full_finetune\nparams:\n  k: 3\n", ["params.k is not allowed for full_finetune"]),
    ("strategy: last_k\nparams:\n  k: 2\n  epochs: {type: int, low: 2, high: \"50%\"}\n",
     ["params.epochs.high is a percentage"]),
    ("strategy: last_k\nparams:\n  k: 2\n  head_lr: {type: float, low: abc, high: 0.1}\n",
     ["params.head_lr.low must be a number, got 'abc'"]),
    ("strategy: last_k\nparams:\n  k: 2\n  warmup: {type: int, low: 0, high: 1}\n",
     ["params.warmup.type is int", "choices: [true, false]"]),
    ("strategy: last_k\nparams:\n  k: {type: int, low: 1, hgih: 3}\n",
     ["params.k.hgih is not a spec key", "did you mean high?"]),
    ("strategy: last_k\nparams:\n  k: {type: categorical, choices: []}\n", ["params.k.choices must be a non-empty list"]),
    ("strategy: last_k\nparams:\n  k: {type: integer, low: 1, high: 3}\n", ["params.k.type must be int, float or categorical"]),
    ("strategy: last_k\nparams:\n  k: 2\n  k: 3\n", ["duplicate key 'k'", "line 4"]),
    ("strategy: last_k\nparams:\n  head_lr: 1e-3\n", ["params.k is missing"]),
    ("strategy: last_k\nparams:\n  k: 2\n  batch_size: [32, 64]\n", ["params.batch_size is a list", "categorical"]),
    ("strategy: last_k\nparams:\n  k: 2\n  layer_decay: 1.5\n", ["params.layer_decay must be a number > 0 and <= 1"]),
    ("strategy: last_k\nparams:\n  k: 2.5\n", ["params.k must be a whole number"]),
    ("strategy: last_k\nparams:\n  k: 2\n  augment: \"yes\"\n", ["params.augment must be true or false"]),
    ("- strategy: last_k\n", ["must be a mapping at the top level"]),
    ("", ["is empty"]),
    ("strategy: last_k\nparmas: {k: 2}\n", ["parmas is not a top-level key", "did you mean params?"]),
    ("strategy: last_k\nparams: {k: 2}\nstrategies: {linear_probe: {}}\n", ["has both"]),
    ("strategies:\n  linear_probe: {C: 1.0}\n  last_k: {k: {type: int, low: 1, high: 3}, lr: 0.1}\n",
     ["strategies.last_k.lr is not a parameter of last_k"]),
    ("strategies:\n  svm_early: {block: {type: int, low: 2, high: 5, log: true}}\n",
     ["strategies.svm_early.block.log is not supported"]),
    ("strategy: multi_task\nparams:\n  tasks: [a]\n", ["params.tasks needs at least 2 tasks"]),
    ("strategy: linear_probe\nparams:\n  C: {type: float, low: 1.0e-3, high: 1.0e+2, step: 0.5, log: true}\n",
     ["params.C.step cannot be combined with log"]),
]


@pytest.mark.parametrize("text,expected", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_files_name_the_key(tmp_path, text, expected):
    path = write(tmp_path, text, "bad.yaml")
    with pytest.raises(AdvisorError) as err:
        load_space(path)
    msg = str(err.value)
    assert msg.startswith(f"search space {path}"), msg
    for part in expected:
        assert part in msg, msg
    assert err.value.fix


def test_missing_file_and_bad_reference(tmp_path):
    with pytest.raises(AdvisorError, match="not found"):
        load_space(tmp_path / "nope.yaml")
    write(tmp_path, "strategy: linear_probe\nparams: {C: 1.0}\n", "lp.yaml")
    path = write(tmp_path, "strategies:\n  last_k: lp.yaml\n  linear_probe: lp.yaml\n")
    with pytest.raises(AdvisorError, match=r"strategies\.last_k refers to lp\.yaml, whose strategy is linear_probe"):
        load_space(path)
    path = write(tmp_path, "strategies:\n  last_k: missing.yaml\n")
    with pytest.raises(AdvisorError, match="missing.yaml was not found"):
        load_space(path)


def test_numeric_strings_are_numbers(tmp_path):
    space = load_space(write(tmp_path, "strategy: last_k\nparams:\n  k: 1\n"
                                       "  head_lr: {type: float, low: 1e-4, high: 1e-1, log: true}\n  lr_ratio: 1e-1\n"))
    spec = space.strategies["last_k"].params["head_lr"]
    assert (spec.low, spec.high, spec.log) == (1e-4, 1e-1, True)
    assert space.strategies["last_k"].params["lr_ratio"] == ParamSpec("lr_ratio", "fixed", value=0.1)


# ----------------------------------------------------------------------------- percent depth
@pytest.mark.parametrize("pct,k,block", [("50%", 10, "ir9"), ("0%", 1, "stem"), ("100%", 19, "conv_last"),
                                         ("5%", 1, "stem"), ("30%", 6, "ir5"), ("90%", 17, "ir16")])
def test_percent_resolves_against_the_backbone(pct, k, block):
    space = Space({"svm_early": S.StrategySpace("svm_early", {"block": ParamSpec("block", "fixed", value=pct)})})
    assert suggest(study().ask(), space, NAMES) == ("svm_early", {"block": block})
    space = Space({"last_k": S.StrategySpace("last_k", {"k": ParamSpec("k", "int", low=pct, high=pct)})})
    assert suggest(study().ask(), space, NAMES) == ("last_k", {"k": k})


def test_percent_range_samples_inside(tmp_path):
    space = load_space(write(tmp_path, 'strategy: last_k\nparams:\n  k: {type: int, low: "25%", high: "50%"}\n'))
    st = study()
    ks = set()
    for _ in range(20):
        trial = st.ask()
        ks.add(suggest(trial, space, NAMES)[1]["k"])
        st.tell(trial, 0.0)
    assert ks <= set(range(5, 11)) and len(ks) > 1  # 25% of 19 = 4.75 -> 5, 50% -> 10
    # the same file on a 4-block backbone
    assert suggest(study().ask(), space, ["a", "b", "c", "d"])[1]["k"] in (1, 2)


def test_depth_beyond_the_backbone_is_refused(tmp_path):
    space = load_space(write(tmp_path, "strategy: last_k\nparams:\n  k: {type: int, low: 1, high: 25}\n"))
    with pytest.raises(AdvisorError, match=r"params\.k\.high is 25, more than the backbone's 19 blocks"):
        suggest(study().ask(), space, NAMES)
    space = load_space(write(tmp_path, 'strategy: last_k\nparams:\n  k: {type: int, low: "60%", high: 3}\n'))
    with pytest.raises(AdvisorError, match=r"params\.k resolves to low 11 above high 3"):
        suggest(study().ask(), space, NAMES)
    space = load_space(write(tmp_path, "strategy: svm_early\nparams:\n  block: {type: categorical, choices: [ir3, ir99]}\n"))
    with pytest.raises(AdvisorError, match=r"params\.block\.choices\[1\] names block 'ir99'"):
        suggest(study().ask(), space, NAMES)


# ----------------------------------------------------------------------------- compare
def test_compare_prefixes_conditional_params():
    space = load_space(ROOT / "compare.yaml")
    assert len(space.strategies) >= 3
    st = study()
    for i in range(12):
        trial = st.ask()
        strategy, params = suggest(trial, space, NAMES)
        assert trial.params["strategy"] == strategy
        searched = {k for k in trial.params if k != "strategy"}
        assert searched and all(k.startswith(f"{strategy}.") for k in searched), trial.params
        assert searched == {f"{strategy}.{n}" for n, p in space.strategies[strategy].params.items()
                            if p.kind != "fixed"}
        validate(strategy, params)
        st.tell(trial, float(i))
    dist = st.trials[0].distributions["strategy"]
    assert list(dist.choices) == list(space.strategies)


def enqueue_and_suggest(space: Space, strategy: str, enqueue: dict) -> tuple[str, dict]:
    st = study()
    st.enqueue_trial(enqueue)
    trial = st.ask()
    got = suggest(trial, space, NAMES)
    assert trial.params == enqueue  # every searched value was the enqueued one
    return got


def test_advice_trial_enqueued_in_compare_space():
    space = load_space(ROOT / "compare.yaml")
    advice = make_advice("last_k", {"k": 4}, [2, 8])
    strategy, enqueue = advice_trial(advice, space, N)
    assert strategy == "last_k" and enqueue["strategy"] == "last_k" and enqueue["last_k.k"] == 4
    got = enqueue_and_suggest(space, strategy, enqueue)
    assert got[0] == "last_k" and got[1]["k"] == 4
    assert got[1]["head_lr"] == pytest.approx(math.sqrt(1e-4 * 1e-1))  # geometric middle of the log range
    assert got[1]["layer_decay"] == pytest.approx(0.75)  # middle of the linear range
    assert got[1]["warmup"] is True  # first choice
    validate(*got)

    advice = make_advice("full_finetune", {"warmup": False}, [7, 19])
    strategy, enqueue = advice_trial(advice, space, N)
    assert strategy == "full_finetune"  # the compare file has full_finetune itself
    got = enqueue_and_suggest(space, strategy, enqueue)
    assert got[0] == "full_finetune" and got[1]["warmup"] is True  # fixed in the file: the file wins
    validate(*got)

    advice = make_advice("svm_early", {"block": "ir13"}, [0, 4], probe_blocks=["ir11", "ir13"])
    strategy, enqueue = advice_trial(advice, space, N, block_names=NAMES)
    assert enqueue["svm_early.block"] == NAMES.index("ir13")  # the file searches block by index
    got = enqueue_and_suggest(space, strategy, enqueue)
    assert got == ("svm_early", {"block": "ir13", "C": pytest.approx(math.sqrt(1e-4 * 10)), "max_iter": 5000})

    assert advice_trial(make_advice("multi_task", {"tasks": ["a", "b"]}, [4, 19]), space, N) is None


def test_advice_value_is_clamped_into_the_space():
    space = load_space(ROOT / "last_k.yaml")
    strategy, enqueue = advice_trial(make_advice("full_finetune", {"warmup": True}, [7, 19]), space, N)
    assert strategy == "last_k" and enqueue["k"] == 10  # k = 19 clamped to "50%" of 19
    assert enqueue["warmup"] is True and "strategy" not in enqueue
    assert enqueue_and_suggest(space, strategy, enqueue)[1]["k"] == 10


# ----------------------------------------------------------------------------- from the advice
def round_trip(space: Space, tmp_path: Path) -> Space:
    again = load_space(write(tmp_path, space_to_yaml(space), "auto.yaml"))
    assert again == space
    return again


def test_space_from_last_k_advice(tmp_path):
    advice = make_advice("last_k", {"k": 4}, [2, 8])
    space = space_from_advice(advice)
    assert space.source == "auto" and list(space.strategies) == ["last_k"]
    p = space.strategies["last_k"].params
    assert p["k"] == ParamSpec("k", "int", low=2, high=8)
    assert p["head_lr"] == ParamSpec("head_lr", "float", low=1e-4, high=3e-2, log=True)
    assert p["warmup"] == ParamSpec("warmup", "categorical", choices=[True, False])
    assert p["epochs"].value == DEFAULT_EPOCHS and p["batch_size"].value == 64
    assert max_epochs(space) == DEFAULT_EPOCHS + S.WARMUP_EPOCHS
    round_trip(space, tmp_path)
    strategy, enqueue = advice_trial(advice, space, N)
    got = enqueue_and_suggest(space, strategy, enqueue)
    assert got[1]["k"] == 4 and got[1]["head_lr"] == pytest.approx(math.sqrt(1e-4 * 3e-2))
    validate(*got)


def test_space_from_full_finetune_advice(tmp_path):
    advice = make_advice("full_finetune", {"warmup": True}, [7, 19], warmup=[True])
    space = space_from_advice(advice)
    assert list(space.strategies) == ["last_k"]
    p = space.strategies["last_k"].params
    assert p["k"] == ParamSpec("k", "int", low=7, high=19)
    assert p["warmup"] == ParamSpec("warmup", "fixed", value=True)
    round_trip(space, tmp_path)
    strategy, enqueue = advice_trial(advice, space, N)
    assert strategy == "last_k" and enqueue["k"] == N and "warmup" not in enqueue
    got = enqueue_and_suggest(space, strategy, enqueue)
    assert got[1]["k"] == N and got[1]["warmup"] is True
    validate(*got)


def test_space_from_probe_advice(tmp_path):
    advice = make_advice("linear_probe", {}, [0, 2], warmup=[True], probe_blocks=["ir15", "conv_last"])
    space = space_from_advice(advice)
    assert list(space.strategies) == ["linear_probe", "last_k"]
    assert space.strategies["linear_probe"].params["C"] == ParamSpec("C", "float", low=1e-3, high=1e2, log=True)
    assert space.strategies["last_k"].params["k"] == ParamSpec("k", "int", low=1, high=2)
    round_trip(space, tmp_path)
    strategy, enqueue = advice_trial(advice, space, N)
    assert enqueue == {"strategy": "linear_probe", "linear_probe.C": pytest.approx(math.sqrt(1e-3 * 1e2))}
    assert enqueue_and_suggest(space, strategy, enqueue)[0] == "linear_probe"

    advice = make_advice("svm_early", {"block": "ir12"}, [0, 6], warmup=[True], probe_blocks=["ir10", "ir11", "ir13"])
    space = space_from_advice(advice)
    assert space.strategies["svm_early"].params["block"].choices == ["ir10", "ir11", "ir13", "ir12"]
    round_trip(space, tmp_path)
    strategy, enqueue = advice_trial(advice, space, N)
    got = enqueue_and_suggest(space, strategy, enqueue)
    assert got[0] == "svm_early" and got[1]["block"] == "ir12"
    validate(*got)
    st = study()
    for _ in range(8):
        trial = st.ask()
        validate(*suggest(trial, space, NAMES))
        st.tell(trial, 0.0)


def test_space_from_multi_task_and_pipeline_advice(tmp_path):
    advice = make_advice("multi_task", {"tasks": ["species", "genus"]}, [4, 19])
    space = space_from_advice(advice)
    p = space.strategies["multi_task"].params
    assert p["tasks"].value == ["species", "genus"] and p["compare"].value is False
    round_trip(space, tmp_path)
    got = enqueue_and_suggest(space, *advice_trial(advice, space, N))
    assert got[0] == "multi_task" and got[1]["tasks"] == ["species", "genus"]
    validate(*got)

    advice = make_advice("pipeline_vs_end_to_end", {"intermediate": "z", "final": "y", "prefer": "pipeline"}, [1, 9])
    space = space_from_advice(advice)
    assert space.strategies["pipeline_vs_end_to_end"].params["learning_curve"].value is False
    round_trip(space, tmp_path)
    strategy, enqueue = advice_trial(advice, space, N)
    assert set(enqueue) == {n for n, p in space.strategies[strategy].params.items() if p.kind != "fixed"}
    got = enqueue_and_suggest(space, strategy, enqueue)
    validate(*got)
    assert got[1]["learning_curve"] is False
