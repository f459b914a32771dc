"""advisor search end to end: real Optuna journal storages, real MLflow SQLite stores, real training.

Every search runs on 300 digits at 32 px through ImageNet MobileNetV2 with a tiny space (top 1-3
blocks, 3 epochs), so a trial takes a second or two.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from advisor.cli import main
from advisor.search import SearchConfig, run_search
from advisor.search.trials import worker_id

ROOT = Path(__file__).resolve().parents[2]

TINY_SPACE = """\
strategy: last_k
params:
  k: {type: int, low: 1, high: 3}
  head_lr: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}
  lr_ratio: {type: float, low: 0.01, high: 1.0, log: true}
  epochs: 3
  batch_size: 32
  patience: 3
"""


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    """See tests/conftest.py."""


def _space(tmp: Path) -> str:
    path = tmp / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return str(path)


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def _nested(uri: str, parent_run_id: str):
    client = _client(uri)
    parent = client.get_run(parent_run_id)
    runs = client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=1000)
    return client, parent, sorted(runs, key=lambda r: int(r.data.tags["advisor.trial_number"]))


def _study(workspace: Path, name: str):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(workspace / "optuna.journal")))
    return optuna.load_study(study_name=name, storage=storage)


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """Six trials with the halving pruner and trial 1 failing on purpose."""
    tmp = tmp_path_factory.mktemp("search")
    cfg = SearchConfig(dataset="digits:30", strategy="last_k", space=_space(tmp), trials=6, image_size=32,
                       workspace=str(tmp / "ws"), cache_dir=str(tmp / "cache"), pruner="halving",
                       study_name="s1", experiment="exp1", fail_trials=[1])
    return tmp, run_search(cfg)


def test_search_logs_a_parent_run_and_one_nested_run_per_trial(search):
    tmp, r = search
    assert r.n_trials == 6 and r.n_complete + r.n_pruned + r.n_failed == 6
    client, parent, runs = _nested(r.tracking_uri, r.parent_run_id)
    assert parent.data.tags["advisor.kind"] == "study" and parent.data.tags["advisor.study_name"] == "s1"
    assert parent.data.tags["advisor.model"] == "mobilenet_v2"
    assert len(parent.data.tags["advisor.dataset_fingerprint"]) == 64
    assert [int(run.data.tags["advisor.trial_number"]) for run in runs] == list(range(6))
    study = _study(tmp / "ws", "s1")
    for run, trial in zip(runs, study.trials):
        assert run.data.tags["advisor.state"] == {"COMPLETE": "complete", "PRUNED": "pruned",
                                                  "FAIL": "failed"}[trial.state.name]
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        # MLflow holds exactly the per-epoch values the pruner saw
        assert {m.step: m.value for m in history} == pytest.approx(dict(trial.intermediate_values))
        if trial.state.name == "COMPLETE":
            assert run.data.metrics["best_val_accuracy"] == pytest.approx(trial.value)
            assert run.data.params["k"] == str(trial.params["k"])
    # the best trial: test split evaluated once, logged on the parent with the model
    assert parent.data.metrics["best_val_accuracy"] == pytest.approx(r.best_value)
    assert parent.data.metrics["test_accuracy"] == pytest.approx(r.test_accuracy)
    assert r.test_accuracy > 0.3  # chance is 0.1
    assert parent.data.tags["advisor.best_trial"] == str(r.best_trial)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "search_space.yaml" in artifacts
    models = client.search_logged_models(experiment_ids=[parent.info.experiment_id])
    assert any(m.source_run_id == parent.info.run_id for m in models)


def test_the_best_configuration_is_trained_again_and_tested_once(search):
    """No trial keeps a model (a worker on another machine could not hand it over): the best configuration
    is refit in the main process on the full context, and being seeded the refit is the trial again."""
    tmp, r = search
    study = _study(tmp / "ws", "s1")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    top = max(t.value for t in complete)
    assert r.best_trial == min(t.number for t in complete if t.value == top)
    assert not (tmp / "ws" / "models").exists() and all("model_path" not in t.user_attrs for t in study.trials)
    assert r.refit_reproduced is True and r.refit_val_accuracy == r.best_value and r.refit_error is None
    client, parent, runs = _nested(r.tracking_uri, r.parent_run_id)
    assert all(not any(m.startswith("test_") for m in run.data.metrics) for run in runs)  # trials never saw it
    assert parent.data.tags["advisor.refit_reproduced"] == "true"
    assert parent.data.metrics["refit_val_accuracy"] == pytest.approx(r.best_value)


def test_an_injected_failure_is_recorded_and_the_study_goes_on(search):
    tmp, r = search
    study = _study(tmp / "ws", "s1")
    assert study.trials[1].state.name == "FAIL"
    assert "failure injected" in study.trials[1].user_attrs["fail_reason"]
    assert all(t.state.name != "FAIL" for t in study.trials[2:])  # later trials ran
    _, _, runs = _nested(r.tracking_uri, r.parent_run_id)
    assert runs[1].data.tags["advisor.state"] == "failed" and runs[1].info.status == "FAILED"
    assert "failure injected" in runs[1].data.tags["advisor.fail_reason"]


def test_pruning_prunes_before_the_last_epoch(search):
    tmp, r = search
    study = _study(tmp / "ws", "s1")
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert pruned, [(t.number, t.state.name, t.intermediate_values) for t in study.trials]
    assert all(len(t.intermediate_values) < 3 for t in pruned)
    _, _, runs = _nested(r.tracking_uri, r.parent_run_id)
    for t in pruned:
        assert runs[t.number].data.tags["advisor.state"] == "pruned" and runs[t.number].info.status == "KILLED"


def test_a_warm_up_trial_is_never_pruned_before_its_backbone_trains(tmp_path):
    """With warm-up in the space, epochs 1-2 train the head only: they are not pruner steps, so the
    pruner first sees (and may prune at) epoch 3, the first fine-tuning epoch, as step 1."""
    space = tmp_path / "warm.yaml"
    space.write_text(TINY_SPACE.replace("epochs: 3", "epochs: 2\n  warmup: true"))
    cfg = SearchConfig(dataset="digits:30", strategy="last_k", space=str(space), trials=6, image_size=32,
                       workspace=str(tmp_path / "ws"), cache_dir=str(tmp_path / "cache"), pruner="halving",
                       study_name="w", seed=1)
    r = run_search(cfg)
    study = _study(tmp_path / "ws", "w")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert complete and all(sorted(t.intermediate_values) == [1, 2] for t in complete)
    assert all(t.user_attrs["warmup_epochs"] == 2 for t in study.trials)
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    # halving's first rung is step 1 = epoch 3 (the first after warm-up), so what it prunes, it prunes there
    assert pruned and all(sorted(t.intermediate_values) == [1] for t in pruned), \
        [(t.number, t.state.name, t.intermediate_values) for t in study.trials]
    assert r.n_pruned == len(pruned)
    assert all(tr["epochs"] == 3 for tr in r.trials if tr["state"] == "pruned")  # trainer epochs, warm-up included
    _, _, runs = _nested(r.tracking_uri, r.parent_run_id)
    client = _client(r.tracking_uri)
    for run, t in zip(runs, study.trials):  # MLflow keeps the trainer's epochs: steps shifted by the warm-up
        history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val_accuracy")}
        assert {e - 2: v for e, v in history.items() if e > 2} == pytest.approx(dict(t.intermediate_values))


def test_strategy_auto_starts_from_the_check_and_tries_the_advice_first(tmp_path):
    """analyze's measured check ran its candidates on this very split: those inside the space are finished
    trials (never trained again, not counted against --trials), and the first trained trial is the advice's
    best configuration that has not run yet."""
    from advisor.api import analyze
    from advisor.search._seed import advised_run, check_trial, hold_check
    from advisor.search.space import advice_trial, space_from_advice

    cfg = SearchConfig(dataset="digits:30", strategy="auto", trials=2, image_size=32, workspace=str(tmp_path / "ws"),
                       cache_dir=str(tmp_path / "cache"), analyze_sample=200, study_name="auto")
    r = run_search(cfg)
    analysis = analyze("digits:30", "mobilenet_v2", sample=200, image_size=32)
    advice, check = analysis.advice, analysis.advice.check
    names = list(analysis.profile.blocks[i].name for i in range(len(analysis.profile.blocks)))
    space = hold_check(space_from_advice(advice), check, names, "cnn")  # the search's: it holds the check's runs
    inside = [run for run in check.runs if not isinstance(check_trial(run.strategy, run.params, space, names, "cnn"),
                                                            str)]
    assert r.advice_strategy == advice.strategy and inside and r.from_check == len(inside)
    assert len(r.check_left_out) == len(check.runs) - len(inside)
    trials = _study(tmp_path / "ws", "auto").trials
    seeded, trained = trials[:len(inside)], trials[len(inside):]
    for t, run in zip(seeded, inside):  # the check's own numbers, in its order (the same seed and split)
        assert t.user_attrs["from_check"] == check.runs.index(run) and t.user_attrs["wall_time"] > 0
        if run.stopped_at is None:
            assert t.state.name == "COMPLETE" and t.value == pytest.approx(run.val_accuracy)
        else:  # the rung stopped it: pruned, its value the last report
            assert t.state.name == "PRUNED" and t.intermediate_values == {run.stopped_at: pytest.approx(run.val_accuracy)}
    assert len(trained) == cfg.trials and all("from_check" not in t.user_attrs for t in trained)
    first = trained[0]
    # decided by the check: the advised configuration is its winning run as it ran
    advised = advised_run(advice, space, names, "cnn") or advice_trial(advice, space, len(names), names)[1]
    held = [dict(t.params) for t in seeded]
    assert dict(first.params) not in held  # never the check's winner again
    # the advised trial is the one holding the advice's configuration: the check's run when it ran it, else
    # the first trained trial; then the first trained trial is the advice's first alternative that has not run
    holder = next(t for t in trials if t.user_attrs.get("advice"))
    assert r.advice_trial == holder.number and dict(holder.params) == advised
    assert sum(bool(t.user_attrs.get("advice")) for t in trials) == 1
    if advised in held:
        # the first alternative inside the space that the check did not run (one it ran, or one outside the
        # space, such as a surgical run beside an svm_early advice, is passed over)
        assert "from_check" in holder.user_attrs and first.user_attrs["advised_as"].startswith("alternative ")
        n = int(first.user_attrs["advised_as"].split()[-1])
        alts = [advice_trial(dataclasses.replace(advice, strategy=a.strategy, params=dict(a.params or {})), space,
                             len(names), names) for a in advice.alternatives[:n]]
        assert all(got is None or got[1] in held for got in alts[:-1]) and alts[-1][1] == dict(first.params)
    else:
        assert holder is first and first.user_attrs["advised_as"] == "advice"
    client, parent, runs = _nested(r.tracking_uri, r.parent_run_id)
    assert parent.data.tags["advisor.advice_strategy"] == advice.strategy
    assert parent.data.tags["advisor.trials_from_check"] == str(len(inside))
    by_trial = {int(run.data.tags["advisor.trial_number"]): run for run in runs}
    assert sorted(by_trial) == [t.number for t in trials]  # one MLflow run per trial, the check's included
    assert all(by_trial[t.number].data.tags.get("advisor.from_check") == "true" for t in seeded)
    assert [n for n, run in by_trial.items() if run.data.tags.get("advisor.advised") == "true"] == [holder.number]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"profile.json", "advice.json", "search_space.yaml"} <= artifacts
    # where the time went, on the result and on the parent run
    assert {"load", "analyze", "analyze_check", "stores", "trials", "reconcile_runs", "refit", "log_best",
            "total"} <= set(r.timings) and r.timings["analyze_check"] > 0
    assert r.timings["total"] >= r.timings["analyze"] + r.timings["trials"] + r.timings["refit"]
    assert parent.data.metrics["time_trials_s"] == pytest.approx(r.timings["trials"], abs=1e-3)
    assert r.cache_stats["served"] > 0 and parent.data.metrics["cache_served"] == r.cache_stats["served"]
    logged = json.loads(Path(client.download_artifacts(parent.info.run_id, "advice.json", str(tmp_path))).read_text())
    seconds = [run["seconds"] for run in logged["check"]["runs"]]
    assert [t.user_attrs["wall_time"] for t in seeded] == [seconds[t.user_attrs["from_check"]] for t in seeded]

    # resumed with one more trial: the check's runs are not added twice, one more trial trains
    again = run_search(SearchConfig(**{**cfg.__dict__, "trials": 3}))
    trials = _study(tmp_path / "ws", "auto").trials
    assert again.from_check == 0 and len(trials) == len(inside) + 3
    assert sum("from_check" in t.user_attrs for t in trials) == len(inside)


def test_a_saved_analysis_seeds_only_a_study_on_its_own_split(tmp_path):
    from advisor.api import analyze

    def search(saved, name):
        return run_search(SearchConfig(dataset="digits:30", strategy="auto", trials=1, image_size=32,
                                       workspace=str(tmp_path / "ws"), cache_dir=str(tmp_path / "cache"),
                                       advice=str(saved), study_name=name))

    same, other = tmp_path / "same.json", tmp_path / "other.json"
    analyze("digits:30", "mobilenet_v2", sample=200, image_size=32).save(same)
    analyze("digits:30", "mobilenet_v2", sample=200, image_size=32, split="0.5,0.3,0.2").save(other)
    r = search(same, "same")
    assert r.from_check > 0 and r.check_not_reused is None
    r = search(other, "other")
    assert r.from_check == 0 and r.check_not_reused == "the saved analysis used another split"
    assert all("from_check" not in t.user_attrs for t in _study(tmp_path / "ws", "other").trials)


def _cli_args(tmp: Path, space: str, trials: int, name: str, *extra: str) -> list[str]:
    return ["search", "digits:30", "--strategy", "last_k", "--space", space, "--trials", str(trials),
            "--image-size", "32", "--workspace", str(tmp / "ws"), "--cache-dir", str(tmp / "cache"),
            "--study-name", name, "--pruner", "none", "--quiet", *extra]


def test_a_killed_search_resumes_without_losing_or_duplicating_trials(tmp_path):
    import optuna

    space = _space(tmp_path)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "advisor.cli", *_cli_args(tmp_path, space, 5, "resume")]
    proc = subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    journal = tmp_path / "ws" / "optuna.journal"
    deadline = time.time() + 240
    done_before: dict[int, float] = {}
    try:
        while time.time() < deadline:
            if journal.exists():
                try:
                    study = _study(tmp_path / "ws", "resume")
                except KeyError:
                    study = None
                if study is not None:
                    trials = study.get_trials(deepcopy=False)
                    complete = [t for t in trials if t.state.name == "COMPLETE"]
                    if len(complete) >= 2 and trials[-1].state.name == "RUNNING":
                        done_before = {t.number: t.value for t in complete}
                        break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(done_before) >= 2, "the first run never reached two complete trials"

    code = main(_cli_args(tmp_path, space, 5, "resume", "--json", str(tmp_path / "r.json")))
    assert code == 0
    study = _study(tmp_path / "ws", "resume")
    by_number = {t.number: t for t in study.trials}
    for n, v in done_before.items():  # the completed trials are still there, unchanged
        assert by_number[n].state.name == "COMPLETE" and by_number[n].value == v
    stale = [t for t in study.trials if t.user_attrs.get("stale")]
    assert len(stale) == 1 and stale[0].state.name == "FAIL"
    retry = [t for t in study.trials if t.user_attrs.get("retry_of") == stale[0].number]
    assert len(retry) == 1 and retry[0].params == stale[0].params  # its configuration was tried again
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")
                or (t.state.name == "FAIL" and not t.user_attrs.get("stale"))]
    assert len(finished) == 5
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["resumed_from"] == len(done_before) and result["retried"] == [stale[0].number]
    _, _, runs = _nested(result["tracking_uri"], result["parent_run_id"])
    numbers = [int(r.data.tags["advisor.trial_number"]) for r in runs]
    assert len(numbers) == len(set(numbers))  # no trial logged twice
    assert set(numbers) >= {t.number for t in finished}
    assert optuna.trial.TrialState.RUNNING not in {t.state for t in study.trials}


def test_a_device_side_assert_stops_the_search_with_one_line_and_keeps_what_was_done(tmp_path, capfd, monkeypatch):
    """A CUDA device-side assert leaves the process's GPU context unusable: the search must not go on
    as if it were one failed trial. The trial is recorded as failed, the study stops, the CLI prints one
    line and exits 2, the finished trials stay in the study and no MLflow run is left RUNNING; the same
    command then resumes the study."""
    import advisor.train._finetune as finetune
    from advisor.track import default_tracking_uri

    real = finetune.run_last_k
    calls = []

    def third_call_breaks_the_gpu(ctx, params, callback=None):
        calls.append(params)
        if len(calls) == 3:
            raise RuntimeError("CUDA error: device-side assert triggered\nCUDA kernel errors might be "
                               "asynchronously reported at some other API call")
        return real(ctx, params, callback)

    monkeypatch.setattr(finetune, "run_last_k", third_call_breaks_the_gpu)
    space = _space(tmp_path)
    capfd.readouterr()
    code = main(_cli_args(tmp_path, space, 5, "fatal"))
    err = capfd.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("advisor: error: trial 2 hit a fatal GPU error"), err
    assert "device-side assert" in err and "Traceback" not in err
    assert len(calls) == 3  # no trial started after the broken one (and no refit)

    study = _study(tmp_path / "ws", "fatal")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "FAIL"]
    assert "device-side assert" in study.trials[2].user_attrs["fail_reason"]
    done_before = {t.number: t.value for t in study.trials[:2]}

    client = _client(default_tracking_uri(tmp_path / "ws"))
    exp = client.get_experiment_by_name("fatal")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert runs and all(r.info.status != "RUNNING" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    parent = next(r for r in runs if r.data.tags.get("advisor.kind") == "study")
    assert parent.info.status == "FAILED"
    _, _, nested = _nested(client.tracking_uri, parent.info.run_id)
    assert [(int(r.data.tags["advisor.trial_number"]), r.info.status) for r in nested] == \
        [(0, "FINISHED"), (1, "FINISHED"), (2, "FAILED")]
    assert "device-side assert" in nested[2].data.tags["advisor.fail_reason"]

    # nothing done is lost: the same command (on a working GPU) adds the missing trials
    monkeypatch.setattr(finetune, "run_last_k", real)
    assert main(_cli_args(tmp_path, space, 5, "fatal")) == 0
    study = _study(tmp_path / "ws", "fatal")
    assert len(study.trials) == 5 and {t.number: t.value for t in study.trials[:2]} == done_before


def _counted(study):
    """The trials that count against --trials (a surplus trial withdrew before it sampled anything)."""
    return [t for t in study.trials if not t.user_attrs.get("surplus")]


TIED_SPACE = """\
strategy: linear_probe
params:
  C: 1.0
  max_iter: 1000
"""


def test_two_workers_on_one_storage_finish_exactly_the_requested_trials(tmp_path):
    """Two worker processes take trials as they go and together finish exactly five. Every trial is the same
    probe, so all values tie: the best is the lowest-numbered complete trial, and it is tested (on the old
    code the trial that finished first kept the model, so when a later-numbered trial finished first the
    chosen best had none and the test accuracy was None)."""
    space = tmp_path / "tied.yaml"
    space.write_text(TIED_SPACE)
    cfg = SearchConfig(dataset="digits:30", strategy="linear_probe", space=str(space), trials=5, image_size=32,
                       workspace=str(tmp_path / "ws"), cache_dir=str(tmp_path / "cache"), pruner="none",
                       study_name="tied", workers=2)
    r = run_search(cfg)
    study = _study(tmp_path / "ws", "tied")
    counted = _counted(study)
    assert len(counted) == 5 and {t.state.name for t in counted} == {"COMPLETE"} and r.n_trials == 5
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert 1 <= len(workers) <= 2 and worker_id() not in workers  # the worker processes ran them
    assert len({t.value for t in counted}) == 1  # tied
    assert r.best_trial == min(t.number for t in counted) and r.best_value == counted[0].value
    assert r.test_accuracy is not None and r.test_accuracy > 0.3
    assert r.refit_reproduced is True and r.refit_val_accuracy == r.best_value
    client, parent, runs = _nested(r.tracking_uri, r.parent_run_id)
    assert parent.data.tags["advisor.best_trial"] == str(r.best_trial)
    assert parent.data.metrics["test_accuracy"] == pytest.approx(r.test_accuracy)
    assert sorted(int(x.data.tags["advisor.trial_number"]) for x in runs) == [t.number for t in counted]
    assert all(x.info.status == "FINISHED" for x in runs)


def test_cli_errors_come_before_any_training(tmp_path, capsys, monkeypatch):
    import advisor.train

    loads = []

    def no_load(*args, **kwargs):  # loads the data and the backbone; none of these errors may get that far
        loads.append(args)
        raise AssertionError("make_context called")

    monkeypatch.setattr(advisor.train, "make_context", no_load)
    space = _space(tmp_path)
    code = main(_cli_args(tmp_path, space, 2, "dead", "--tracking-uri", "http://127.0.0.1:9"))
    err = capsys.readouterr().err
    assert code == 2 and "unreachable" in err and err.count("\n") == 1 and "Traceback" not in err
    assert loads == []
    assert not (tmp_path / "ws" / "optuna.journal").exists() or "dead" not in (tmp_path / "ws" / "optuna.journal").read_text()

    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy: last_k\nparams:\n  k: {type: int, low: 1, high: 3}\n  head_lr: {type: float, low: 1, high: 0.1}\n")
    code = main(_cli_args(tmp_path, str(bad), 2, "badspace"))
    err = capsys.readouterr().err
    assert code == 2 and "head_lr" in err and err.count("\n") == 1

    code = main(_cli_args(tmp_path, space, 0, "zero"))
    err = capsys.readouterr().err
    assert code == 2 and "--trials" in err

    code = main(_cli_args(tmp_path, space, 2, "badsplit", "--split", "0.5,0.5"))
    err = capsys.readouterr().err
    assert code == 2 and "bad split" in err and "--split TRAIN,VAL,TEST" in err and err.count("\n") == 1
    assert loads == []  # before the data and the backbone load


def test_an_rdb_storage_holds_the_study_and_a_rerun_adds_no_trials(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    cfg = SearchConfig(dataset="digits:30", strategy="last_k", space=_space(tmp_path), trials=2, image_size=32,
                       workspace=str(tmp_path / "ws"), cache_dir=str(tmp_path / "cache"), pruner="none",
                       study_name="rdb", storage=url)
    first = run_search(cfg)
    again = run_search(cfg)  # the study already holds its two trials: nothing new runs
    study = optuna.load_study(study_name="rdb", storage=url)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert again.resumed_from == 2 and again.best_value == first.best_value
    assert again.parent_run_id == first.parent_run_id  # the same MLflow parent run, resumed
    assert not (tmp_path / "ws" / "optuna.journal").exists()


def test_shipped_spaces_are_found_in_a_wheel_install_when_no_checkout_is_beside_the_package(tmp_path, monkeypatch):
    """A wheel puts search_spaces/ under <prefix>/share/advisor/; the lookup falls back to it."""
    import shutil

    from advisor.search import study as study_mod

    checkout = Path(study_mod.__file__).resolve().parents[2] / "search_spaces"
    installed = tmp_path / "share" / "advisor" / "search_spaces"
    installed.mkdir(parents=True)
    shutil.copy(checkout / "linear_probe.yaml", installed / "linear_probe.yaml")
    monkeypatch.setattr(study_mod, "SPACES_DIRS", (tmp_path / "no-checkout", installed))
    assert study_mod.shipped_space("linear_probe") == installed / "linear_probe.yaml"
    space = study_mod._load_space(SearchConfig(dataset="digits", strategy="linear_probe"), None)
    assert list(space.strategies) == ["linear_probe"]
    assert study_mod.shipped_space("last_k") is None
    # no file: the ranges last_k declares in the strategy registry
    space = study_mod._load_space(SearchConfig(dataset="digits", strategy="last_k"), None)
    assert space.source == "registry:last_k" and list(space.strategies) == ["last_k"]
