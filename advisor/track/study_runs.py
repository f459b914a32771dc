"""MLflow runs for one Optuna study: a parent run and one nested run per trial.

Everything goes through an explicit :class:`mlflow.MlflowClient` and explicit run
ids -- never MLflow's process-global active-run stack -- so several worker
processes can log trials under one parent at the same time
(:meth:`StudyTracker.attach`). Logging a trial is idempotent per trial number, so
a resumed study does not duplicate trials. Against a tracking server the client is patient
(:mod:`advisor.track.retry`): a server that is briefly gone is waited for, with backoff.

Tags on the parent run: ``advisor.kind = "study"``, ``advisor.study_name`` plus
whatever the caller passes (dataset fingerprint, model, strategy, advice).
Tags on a trial run: ``mlflow.parentRunId``, ``advisor.kind = "trial"``,
``advisor.study_name``, ``advisor.trial_number``, ``advisor.state`` (complete /
pruned / failed), ``advisor.fail_reason`` (failed or pruned with a reason) and
``strategy``. The names are defined once, in :mod:`advisor.track.names`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from advisor.errors import AdvisorError
from advisor.serialize import to_dict
from advisor.track.names import (BEST_TAG, KIND_TAG, PARENT_TAG, REASON_TAG, STATE_TAG, STRATEGY_KEY, STUDY_TAG,
                                 TRIAL_TAG, finite)
from advisor.track.pause import pause_point
from advisor.track.store import artifact_location

_log = logging.getLogger(__name__)

#: trial state -> terminal MLflow run status
RUN_STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}
_STATE_ALIASES = {"complete": "complete", "completed": "complete", "pruned": "pruned",
                  "fail": "failed", "failed": "failed"}
#: attribute of an epoch record -> metric name
EPOCH_METRICS = {"val_accuracy": "val_accuracy", "train_loss": "train_loss",
                 "val_loss": "val_loss", "seconds": "epoch_seconds"}

_MAX_PARAM = 6000
_MAX_TAG = 8000
_BATCH = 100
_BAD_KEY = re.compile(r"[^\w\-. /]")


def normalize_state(state: Any) -> str:
    """``"complete"``, ``"pruned"`` or ``"failed"`` from a string or an Optuna ``TrialState``."""
    name = str(getattr(state, "name", state)).strip().lower()
    if name not in _STATE_ALIASES:
        raise AdvisorError(f"unknown trial state {state!r}", "use complete, pruned or failed")
    return _STATE_ALIASES[name]


def _key(name: object) -> str:
    """An MLflow-legal param/metric key (letters, digits, ``_ - . / space``)."""
    return _BAD_KEY.sub("_", str(name))[:250] or "_"


def _text(value: object, limit: int) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, (dict, list, tuple)) or dataclasses.is_dataclass(value):
        text = json.dumps(to_dict(value), default=str, sort_keys=True)
    else:
        text = str(to_dict(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _field(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, dict) else getattr(record, name, None)


def _quoted(value: str) -> str | None:
    """``value`` as a search-filter literal, or ``None`` if it cannot be quoted safely."""
    return None if "'" in value or "\\" in value else f"'{value}'"


def _chunks(items: list, size: int = _BATCH) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)] or [[]]


def _serialize(name: str, obj: Any) -> bytes:
    """The bytes of artifact ``name``: JSON for ``.json``, YAML for ``.yaml``/``.yml``, else text."""
    if isinstance(obj, bytes):
        return obj
    if isinstance(obj, Path):
        return obj.read_bytes()
    suffix = Path(name).suffix.lower()
    if suffix == ".json":
        text = obj if isinstance(obj, str) else json.dumps(to_dict(obj), indent=2, default=str)
    elif suffix in (".yaml", ".yml") and not isinstance(obj, str):
        import yaml

        text = yaml.safe_dump(json.loads(json.dumps(to_dict(obj), default=str)), sort_keys=False)
    else:
        text = obj if isinstance(obj, str) else _text(obj, 10**9)
    return text.encode("utf-8")


class StudyTracker:
    """The MLflow parent run of one Optuna study and its nested trial runs.

    Build with :meth:`open` (main process: finds or creates the parent) or
    :meth:`attach` (worker processes: log to an existing parent by id).
    """

    def __init__(self, client: Any, uri: str, experiment_id: str, parent_run_id: str,
                 study_name: str, strategy: str | None = None):
        self.client = client
        self.uri = uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.study_name = study_name
        self.strategy = strategy

    # ------------------------------------------------------------------ set-up
    @classmethod
    def open(cls, tracking_uri: str, experiment: str, study_name: str,
             tags: dict[str, Any] | None = None, resume: bool = True) -> StudyTracker:
        """Get or create ``experiment`` and the study's parent run, and tag it.

        With ``resume`` the newest top-level run tagged ``advisor.kind = "study"`` and
        ``advisor.study_name = study_name`` is reused (set back to RUNNING);
        otherwise, or if there is none, a new parent run named ``study_name`` is made.
        """
        from mlflow import MlflowClient

        from advisor.track.retry import patient_client

        client = patient_client(MlflowClient(tracking_uri), tracking_uri)  # a server may restart meanwhile
        experiment_id = cls._experiment_id(client, experiment)
        tags = dict(tags or {})
        run_tags = {_key(k): _text(v, _MAX_TAG) for k, v in tags.items() if v is not None}
        run_tags.update({KIND_TAG: "study", STUDY_TAG: study_name})
        parent = cls._find_parent(client, experiment_id, study_name) if resume else None
        if parent is None:
            run = client.create_run(experiment_id, run_name=study_name, tags=run_tags)
            parent_id = run.info.run_id
        else:
            parent_id = parent.info.run_id
            client.update_run(parent_id, status="RUNNING")
            _set_tags(client, parent_id, run_tags)
        strategy = tags.get(STRATEGY_KEY)
        return cls(client, tracking_uri, experiment_id, parent_id, study_name,
                   None if strategy is None else str(strategy))

    @classmethod
    def attach(cls, tracking_uri: str, parent_run_id: str) -> StudyTracker:
        """A tracker for an existing parent run (e.g. in a search worker process)."""
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        from advisor.track.retry import patient_client

        client = patient_client(MlflowClient(tracking_uri), tracking_uri)
        try:
            run = client.get_run(parent_run_id)
        except MlflowException as exc:
            raise AdvisorError(
                f"MLflow parent run {parent_run_id} not found in {tracking_uri} ({exc.error_code})",
                "pass the run id printed by StudyTracker.open and the same tracking URI",
            ) from None
        run_tags = run.data.tags
        return cls(client, tracking_uri, run.info.experiment_id, parent_run_id,
                   run_tags.get(STUDY_TAG, run.info.run_name or ""), run_tags.get(STRATEGY_KEY))

    @staticmethod
    def _experiment_id(client: Any, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                client.restore_experiment(found.experiment_id)
            return found.experiment_id
        try:
            return client.create_experiment(name, artifact_location=artifact_location(client.tracking_uri, name))
        except MlflowException:  # another process created it first
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    @staticmethod
    def _find_parent(client: Any, experiment_id: str, study_name: str) -> Any:
        name = _quoted(study_name)
        query = f"tags.`{KIND_TAG}` = 'study'" + (f" AND tags.`{STUDY_TAG}` = {name}" if name else "")
        runs = search_all(client, experiment_id, query, order_by=["attributes.start_time DESC"])
        matches = [r for r in runs if r.data.tags.get(STUDY_TAG) == study_name
                   and PARENT_TAG not in r.data.tags]
        return matches[0] if matches else None

    # ---------------------------------------------------------------- logging
    def log_artifacts(self, files: dict[str, Any]) -> None:
        """Log ``{artifact name: object}`` on the parent run.

        ``*.json``: the object as JSON (dataclasses via :func:`advisor.serialize.to_dict`);
        ``*.yaml``/``*.yml``: strings as-is, other objects dumped as YAML; anything
        else as text; ``bytes`` and ``Path`` (file contents) are written unchanged.
        Names may contain ``/`` for sub-folders.
        """
        if not files:
            return
        with tempfile.TemporaryDirectory(prefix="advisor-artifacts-") as tmp:
            for name, obj in files.items():
                target = Path(tmp, name)
                if Path(name).is_absolute() or ".." in Path(name).parts:
                    raise AdvisorError(f"artifact name {name!r} must be a relative path", "use e.g. profile.json")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(_serialize(name, obj))
            self.client.log_artifacts(self.parent_run_id, tmp)

    def log_trial(self, number: int, params: dict[str, Any], state: Any, value: float | None,
                  history: list[Any] | None = None, wall_time: float | None = None,
                  reason: str | None = None, extra_tags: dict[str, Any] | None = None,
                  metrics: dict[str, Any] | None = None) -> str:
        """Log trial ``number`` as a finished nested run of the parent; return its run id.

        ``history`` holds one record (dict or object) per epoch with ``epoch``,
        ``train_loss``, ``val_accuracy``, ``val_loss``, ``seconds``; they become the
        metrics ``train_loss``, ``val_accuracy``, ``val_loss``, ``epoch_seconds`` at
        ``step=epoch``. Final metrics: ``best_val_accuracy`` (= ``value``),
        ``wall_time`` and ``metrics``. The run ends FINISHED (complete), KILLED
        (pruned) or FAILED (failed). If the trial number is already logged with the
        same state it is left alone; a stale run of it (other state, or unfinished)
        is deleted and replaced.
        """
        state = normalize_state(state)
        number = int(number)
        for old in self._runs_of_trial(number):
            if old.data.tags.get(STATE_TAG) == state and old.info.status == RUN_STATUS[state]:
                return old.info.run_id
            self.client.delete_run(old.info.run_id)
        params = dict(params or {})
        strategy = params.get(STRATEGY_KEY, self.strategy)
        tags = {
            PARENT_TAG: self.parent_run_id, KIND_TAG: "trial", STUDY_TAG: self.study_name,
            TRIAL_TAG: str(number), STATE_TAG: state,
        }
        if reason:
            tags[REASON_TAG] = _text(reason, _MAX_TAG)
        if strategy is not None:
            tags[STRATEGY_KEY] = str(strategy)
            params.setdefault(STRATEGY_KEY, strategy)
        tags.update({_key(k): _text(v, _MAX_TAG) for k, v in (extra_tags or {}).items() if v is not None})
        run = self.client.create_run(self.experiment_id, run_name=f"trial-{number:04d}", tags=tags)
        run_id = run.info.run_id
        pause_point("log_trial", number)
        try:
            self._log_values(run_id, params, history or [], value, wall_time, metrics or {})
        except Exception:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id, RUN_STATUS[state])
        return run_id

    def _log_values(self, run_id: str, params: dict[str, Any], history: list[Any],
                    value: float | None, wall_time: float | None, metrics: dict[str, Any]) -> None:
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        batch_params = [Param(_key(k), _text(v, _MAX_PARAM)) for k, v in params.items()]
        batch_metrics = []
        for index, record in enumerate(history):
            epoch = _field(record, "epoch")
            step = int(epoch) if epoch is not None else index + 1
            for attr, metric in EPOCH_METRICS.items():
                number = finite(_field(record, attr))
                if number is not None:
                    batch_metrics.append(Metric(metric, number, now, step))
        finals = {"best_val_accuracy": value, "wall_time": wall_time, **metrics}
        for name, raw in finals.items():
            number = finite(raw)
            if number is not None:
                batch_metrics.append(Metric(_key(name), number, now, 0))
        for chunk in _chunks(batch_params):
            if chunk:
                self.client.log_batch(run_id, params=chunk)
        for chunk in _chunks(batch_metrics, 1000):
            if chunk:
                self.client.log_batch(run_id, metrics=chunk)

    def log_best(self, trial_number: int, params: dict[str, Any], test_metrics: dict[str, Any],
                 model: Any = None, input_example: Any = None, value: float | None = None,
                 extra_metrics: dict[str, Any] | None = None, extra_tags: dict[str, Any] | None = None) -> str | None:
        """Record the best trial on the parent run; return the logged model's URI, if any.

        Params ``best.<name>``; metrics ``best_val_accuracy`` (``value``, or the
        trial run's own ``best_val_accuracy`` when not given) and ``test_<name>`` for
        each test metric (``accuracy`` -> ``test_accuracy``, ``macro_f1`` ->
        ``test_macro_f1``; keys already starting with ``test_`` are kept); tag
        ``advisor.best_trial``; artifact ``best_params.json``; ``extra_metrics`` and
        ``extra_tags`` as they are (a search logs its refit there). ``model`` (a
        ``torch.nn.Module``) is logged with MLflow's PyTorch flavour as ``model``.
        MLflow params are write-once: a ``best.*`` param already set to another value
        (a resumed study found a better trial) is left as is -- the tag and
        ``best_params.json`` always show the current best.
        """
        from mlflow.entities import Metric, Param, RunTag

        run_id = self.parent_run_id
        if value is None:
            value = self._trial_metric(int(trial_number), "best_val_accuracy")
        existing = self.client.get_run(run_id).data.params
        new_params, stale = [], []
        for name, raw in (params or {}).items():
            key, text = _key(f"best.{name}"), _text(raw, _MAX_PARAM)
            if key not in existing:
                new_params.append(Param(key, text))
            elif existing[key] != text:
                stale.append(key)
        if stale:
            _log.warning("MLflow params %s of run %s keep their first value (params are write-once); "
                         "see best_params.json for the current best", ", ".join(stale), run_id)
        now = int(time.time() * 1000)
        metrics = {"best_val_accuracy": value}
        for name, raw in (test_metrics or {}).items():
            metrics[name if str(name).startswith("test_") else f"test_{name}"] = raw
        metrics.update(extra_metrics or {})
        numbers = {_key(k): finite(v) for k, v in metrics.items()}
        batch_metrics = [Metric(k, v, now, 0) for k, v in numbers.items() if v is not None]
        for chunk in _chunks(new_params):
            if chunk:
                self.client.log_batch(run_id, params=chunk)
        tags = [RunTag(BEST_TAG, str(int(trial_number)))]
        tags += [RunTag(_key(k), _text(v, _MAX_TAG)) for k, v in (extra_tags or {}).items() if v is not None]
        self.client.log_batch(run_id, metrics=batch_metrics, tags=tags)
        self.log_artifacts({"best_params.json": {"trial_number": int(trial_number), "params": params,
                                                 "test_metrics": test_metrics, "best_val_accuracy": value}})
        if model is None:
            return None
        from advisor.track.model_log import log_pytorch_model

        info = log_pytorch_model(self.uri, run_id, model, experiment_id=self.experiment_id,
                                 input_example=input_example)
        return info.model_uri

    def finish(self, status: str = "FINISHED") -> None:
        """End the parent run with ``status`` (FINISHED, FAILED or KILLED)."""
        status = str(status).upper()
        if status not in ("FINISHED", "FAILED", "KILLED"):
            raise AdvisorError(f"unknown run status {status!r}", "use FINISHED, FAILED or KILLED")
        self.client.set_terminated(self.parent_run_id, status)

    # ---------------------------------------------------------------- queries
    def trial_runs(self) -> list[Any]:
        """The (not deleted) nested trial runs of the parent, ordered by trial number."""
        query = f"tags.`{PARENT_TAG}` = '{self.parent_run_id}' AND tags.`{KIND_TAG}` = 'trial'"
        runs = search_all(self.client, self.experiment_id, query)
        return sorted(runs, key=lambda r: (int(r.data.tags.get(TRIAL_TAG, -1)), r.info.start_time or 0))

    def existing_trial_numbers(self) -> set[int]:
        """Trial numbers that already have a run under the parent."""
        return {int(r.data.tags[TRIAL_TAG]) for r in self.trial_runs() if TRIAL_TAG in r.data.tags}

    def _runs_of_trial(self, number: int) -> list[Any]:
        query = (f"tags.`{PARENT_TAG}` = '{self.parent_run_id}' AND tags.`{KIND_TAG}` = 'trial'"
                 f" AND tags.`{TRIAL_TAG}` = '{number}'")
        return search_all(self.client, self.experiment_id, query)

    def _trial_metric(self, number: int, name: str) -> float | None:
        for run in self._runs_of_trial(number):
            if name in run.data.metrics:
                return run.data.metrics[name]
        return None


def _set_tags(client: Any, run_id: str, tags: dict[str, str]) -> None:
    from mlflow.entities import RunTag

    items = [RunTag(k, v) for k, v in tags.items()]
    for chunk in _chunks(items):
        if chunk:
            client.log_batch(run_id, tags=chunk)


def search_all(client: Any, experiment_id: str, query: str, order_by: list[str] | None = None) -> list[Any]:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=query, max_results=1000,
                                  order_by=order_by, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs
