"""MLflow tracking of a study: real SQLite stores under tmp_path, no mocks of MLflow."""

from __future__ import annotations

import dataclasses
import http.server
import json
import multiprocessing
import threading
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow import MlflowClient

from advisor.errors import AdvisorError
from advisor.track import StudyTracker, check_tracking, resolve_tracking_uri, scoped_tracking_uri


@dataclasses.dataclass
class Epoch:
    epoch: int
    train_loss: float
    val_accuracy: float
    val_loss: float
    seconds: float


@dataclasses.dataclass
class Profile:
    n_classes: int
    fingerprint: str


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module: creating its schema takes seconds."""
    workspace = tmp_path_factory.mktemp("ws") / "nested" / "workspace"
    uri = resolve_tracking_uri(None, workspace)
    assert not workspace.exists()  # resolving creates nothing; check_tracking does
    assert uri == "sqlite:///" + (workspace / "mlflow.db").as_posix()
    check_tracking(uri)  # creates and migrates the database
    assert (workspace / "mlflow.db").is_file()
    return uri


def _trial_by_number(runs: list) -> dict[int, object]:
    return {int(r.data.tags["advisor.trial_number"]): r for r in runs}


def _history(values: list[float]) -> list[Epoch]:
    return [Epoch(i + 1, 1.0 / (i + 1), v, 0.5 + i, 0.25) for i, v in enumerate(values)]


def test_study_logs_parent_trials_and_artifacts(store: str) -> None:
    tags = {"dataset_fingerprint": "abc123", "model": "resnet18", "strategy": "fine_tune",
            "advice.summary": "fine-tune the last two blocks"}
    tracker = StudyTracker.open(store, "exp-lifecycle", "study-a", tags)
    tracker.log_artifacts({
        "profile.json": Profile(10, "abc123"),
        "advice.json": {"strategy": "fine_tune", "confidence": 0.8},
        "search_space.yaml": {"lr": {"low": 1e-5, "high": 1e-2, "log": True}},
    })
    tracker.log_trial(0, {"lr": 0.001, "unfreeze_blocks": 2}, "complete", 0.7,
                      _history([0.5, 0.6, 0.7]), wall_time=12.5, metrics={"trainable_params": 1234})
    tracker.log_trial(1, {"lr": 0.1, "unfreeze_blocks": 4}, "pruned", 0.2,
                      [{"epoch": 1, "train_loss": 2.0, "val_accuracy": 0.2, "val_loss": 2.5, "seconds": 0.3}],
                      wall_time=3.0)
    tracker.log_trial(2, {"lr": 0.5, "unfreeze_blocks": 1}, "failed", None, [], wall_time=0.5,
                      reason="CUDA out of memory")
    tracker.finish()

    client = MlflowClient(store)
    runs = client.search_runs([tracker.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{tracker.parent_run_id}'")
    assert len(runs) == 3
    by_number = _trial_by_number(runs)
    expected = {0: ("complete", "FINISHED"), 1: ("pruned", "KILLED"), 2: ("failed", "FAILED")}
    for number, (state, status) in expected.items():
        run = by_number[number]
        assert run.data.tags["advisor.state"] == state
        assert run.data.tags["advisor.kind"] == "trial"
        assert run.data.tags["strategy"] == "fine_tune"
        assert run.info.status == status
        assert run.info.run_name == f"trial-{number:04d}"

    done = by_number[0]
    assert done.data.params["lr"] == "0.001" and done.data.params["unfreeze_blocks"] == "2"
    assert done.data.params["strategy"] == "fine_tune"
    assert done.data.metrics["best_val_accuracy"] == pytest.approx(0.7)
    assert done.data.metrics["wall_time"] == pytest.approx(12.5)
    assert done.data.metrics["trainable_params"] == 1234
    history = sorted(client.get_metric_history(done.info.run_id, "val_accuracy"), key=lambda m: m.step)
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx([0.5, 0.6, 0.7])
    assert len(client.get_metric_history(done.info.run_id, "epoch_seconds")) == 3
    assert [m.step for m in client.get_metric_history(by_number[1].info.run_id, "val_accuracy")] == [1]
    assert by_number[2].data.tags["advisor.fail_reason"] == "CUDA out of memory"
    assert "best_val_accuracy" not in by_number[2].data.metrics
    assert [r.info.run_id for r in tracker.trial_runs()] == [by_number[n].info.run_id for n in (0, 1, 2)]

    parent = client.get_run(tracker.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == "study-a"
    assert parent.data.tags["advisor.kind"] == "study"
    assert parent.data.tags["advisor.study_name"] == "study-a"
    assert parent.data.tags["dataset_fingerprint"] == "abc123"
    assert parent.data.tags["advice.summary"] == "fine-tune the last two blocks"
    names = {a.path for a in client.list_artifacts(tracker.parent_run_id)}
    assert {"profile.json", "advice.json", "search_space.yaml"} <= names
    local = Path(client.download_artifacts(tracker.parent_run_id, ""))
    assert json.loads((local / "profile.json").read_text()) == {"n_classes": 10, "fingerprint": "abc123"}
    assert json.loads((local / "advice.json").read_text())["strategy"] == "fine_tune"
    assert yaml.safe_load((local / "search_space.yaml").read_text())["lr"]["log"] is True
    # artifacts live next to the database, not in the current directory's ./mlruns
    experiment = client.get_experiment(tracker.experiment_id)
    assert experiment.artifact_location.startswith(Path(store[len("sqlite:///"):]).parent.as_uri())


def test_reopen_reuses_parent_and_does_not_duplicate_trials(store: str) -> None:
    first = StudyTracker.open(store, "exp-resume", "study-r", {"strategy": "linear_probe"})
    run0 = first.log_trial(0, {"lr": 0.01}, "complete", 0.5, _history([0.4, 0.5]), wall_time=1.0)
    first.log_trial(1, {"lr": 0.02}, "failed", None, [], wall_time=0.1, reason="interrupted")
    first.finish("KILLED")

    again = StudyTracker.open(store, "exp-resume", "study-r", {"strategy": "linear_probe"})
    assert again.parent_run_id == first.parent_run_id
    assert again.experiment_id == first.experiment_id
    assert MlflowClient(store).get_run(again.parent_run_id).info.status == "RUNNING"
    assert again.existing_trial_numbers() == {0, 1}
    # same trial, same outcome: skipped, same run returned
    assert again.log_trial(0, {"lr": 0.01}, "complete", 0.5, _history([0.4, 0.5]), wall_time=1.0) == run0
    # trial 1 re-run to completion: replaces the stale failed run instead of adding one
    again.log_trial(1, {"lr": 0.02}, "complete", 0.6, _history([0.6]), wall_time=1.0)
    again.log_trial(2, {"lr": 0.03}, "complete", 0.55, _history([0.55]), wall_time=1.0)
    runs = again.trial_runs()
    assert [int(r.data.tags["advisor.trial_number"]) for r in runs] == [0, 1, 2]
    assert _trial_by_number(runs)[1].data.tags["advisor.state"] == "complete"
    assert len(MlflowClient(store).get_metric_history(run0, "val_accuracy")) == 2

    fresh = StudyTracker.open(store, "exp-resume", "study-r", {}, resume=False)
    assert fresh.parent_run_id != first.parent_run_id
    assert fresh.trial_runs() == []
    other = StudyTracker.open(store, "exp-resume", "study-other", {})
    assert other.parent_run_id not in (first.parent_run_id, fresh.parent_run_id)


def test_check_tracking_unreachable_server_fails_fast(monkeypatch) -> None:
    import urllib.request

    import requests as requests_lib   # what MLflow's retrying REST client sends with

    requests = []
    real_urlopen = urllib.request.urlopen

    def urlopen(req, *args, **kwargs):
        requests.append((req.full_url, kwargs.get("timeout")))
        return real_urlopen(req, *args, **kwargs)

    def retrying(*args, **kwargs):
        raise AssertionError("went through MLflow's retrying client")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(requests_lib.Session, "request", retrying)
    with pytest.raises(AdvisorError) as info:
        check_tracking("http://127.0.0.1:9", timeout=2.0, local_store="sqlite:////ws/mlflow.db")
    # fast: one request bounded by the timeout, no retries
    assert requests == [("http://127.0.0.1:9/health", 2.0)]
    assert "unreachable" in str(info.value)
    assert "http://127.0.0.1:9" in str(info.value)
    assert "mlflow server" in info.value.fix and "sqlite:////ws/mlflow.db" in info.value.fix


class _Handler(http.server.BaseHTTPRequestHandler):
    """``healthy``: answers /health and MLflow's experiments API as MLflow does; otherwise /health only
    (a web server that is not MLflow), 404 elsewhere."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        api = self.path.startswith("/api/2.0/mlflow/experiments/search")
        ok = self.path == "/health" or (api and self.server.healthy)  # type: ignore[attr-defined]
        self.send_response(200 if ok else 404)
        self.end_headers()
        self.wfile.write((b'{"experiments": []}' if api else b"OK") if ok else b"nope")

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("healthy", [True, False])
def test_check_tracking_http_server(healthy: bool) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    server.healthy = healthy  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    uri = f"http://127.0.0.1:{server.server_port}"
    try:
        if healthy:
            check_tracking(uri)
        else:
            with pytest.raises(AdvisorError, match="does not look like an MLflow tracking server"):
                check_tracking(uri)
    finally:
        server.shutdown()
        server.server_close()


def test_check_tracking_rejects_uncreatable_sqlite_location(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(AdvisorError, match="cannot create the tracking database folder"):
        check_tracking(f"sqlite:///{blocker.as_posix()}/sub/mlflow.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not an sqlite database" * 100)
    with pytest.raises(AdvisorError, match="is not an SQLite database"):
        check_tracking(f"sqlite:///{garbage.as_posix()}")


def test_resolve_tracking_uri(tmp_path: Path) -> None:
    with pytest.raises(AdvisorError) as info:
        resolve_tracking_uri(str(tmp_path / "mlruns"), tmp_path)
    assert "sqlite:///" in str(info.value) and "folder" in str(info.value)
    with pytest.raises(AdvisorError, match="sqlite:///"):
        resolve_tracking_uri((tmp_path / "mlruns").as_uri(), tmp_path)
    assert resolve_tracking_uri(str(tmp_path / "x" / "runs.db"), tmp_path) == (
        "sqlite:///" + (tmp_path / "x" / "runs.db").as_posix())
    assert resolve_tracking_uri("sqlite:///rel.db", tmp_path) == "sqlite:///" + (Path.cwd() / "rel.db").as_posix()
    for passthrough in ("sqlite:////abs/x.db", "postgresql://u:p@db:5432/ml", "mysql+pymysql://db/ml",
                        "https://mlflow.example.com", "databricks"):
        assert resolve_tracking_uri(passthrough, tmp_path) == passthrough
    assert resolve_tracking_uri("http://127.0.0.1:5000/", tmp_path) == "http://127.0.0.1:5000"
    with pytest.raises(AdvisorError, match="not supported"):
        resolve_tracking_uri("ftp://host/x", tmp_path)


def test_log_best_logs_a_reloadable_pytorch_model(store: str) -> None:
    import mlflow.pytorch
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    tracker = StudyTracker.open(store, "exp-best", "study-best", {"strategy": "linear_probe"})
    tracker.log_trial(3, {"lr": 0.01}, "complete", 0.9, _history([0.8, 0.9]), wall_time=2.0)
    model_uri = tracker.log_best(3, {"lr": 0.01, "wd": 0.0}, {"accuracy": 0.85, "macro_f1": 0.8},
                                 model=model, input_example=torch.randn(2, 4))
    tracker.finish()
    assert mlflow.active_run() is None
    assert mlflow.tracking._tracking_service.utils._tracking_uri is None  # nothing leaked

    client = MlflowClient(store)
    parent = client.get_run(tracker.parent_run_id)
    assert parent.data.params["best.lr"] == "0.01" and parent.data.params["best.wd"] == "0.0"
    assert parent.data.metrics["best_val_accuracy"] == pytest.approx(0.9)  # taken from trial 3
    assert parent.data.metrics["test_accuracy"] == pytest.approx(0.85)
    assert parent.data.metrics["test_macro_f1"] == pytest.approx(0.8)
    assert parent.data.tags["advisor.best_trial"] == "3"
    logged = client.search_logged_models(experiment_ids=[tracker.experiment_id])
    assert [(m.name, m.source_run_id) for m in logged] == [("model", tracker.parent_run_id)]
    assert model_uri == f"models:/{logged[0].model_id}"

    with scoped_tracking_uri(store):
        reloaded = mlflow.pytorch.load_model(f"runs:/{tracker.parent_run_id}/model")
    for name, tensor in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], tensor)


def _log_trials(uri: str, parent_run_id: str, numbers: list[int]) -> None:
    tracker = StudyTracker.attach(uri, parent_run_id)
    for number in numbers:
        tracker.log_trial(number, {"lr": 0.001 * (number + 1)}, "complete", 0.1 * number,
                          _history([0.05 * number, 0.1 * number]), wall_time=0.5)


def test_two_processes_log_trials_under_one_parent(store: str) -> None:
    tracker = StudyTracker.open(store, "exp-parallel", "study-p", {"strategy": "fine_tune"})
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_log_trials, args=(store, tracker.parent_run_id, numbers))
               for numbers in ([0, 1, 2, 3], [4, 5, 6, 7])]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    tracker.finish()
    runs = tracker.trial_runs()
    assert sorted(int(r.data.tags["advisor.trial_number"]) for r in runs) == list(range(8))
    assert {r.data.tags["strategy"] for r in runs} == {"fine_tune"}
    assert all(r.info.status == "FINISHED" for r in runs)
    with pytest.raises(AdvisorError, match="not found"):
        StudyTracker.attach(store, "0" * 32)
