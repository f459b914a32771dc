"""Read one or more ``advisor search`` studies back from MLflow into plain dataclasses.

Only MLflow is read -- never the Optuna storage -- so a report can be made anywhere the
tracking store is reachable. A study is the parent run tagged ``advisor.kind = "study"``
(see :mod:`advisor.track.study_runs`) with its nested trial runs; its artifacts
``profile.json`` / ``advice.json`` (present when analyze ran), ``best_params.json`` and
``strategy_tables.json`` (the refit best's own tables) are downloaded and rebuilt.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor import strategies
from advisor.errors import AdvisorError
from advisor.track.names import (  # the names advisor search writes: one contract, defined there
    ADVICE_STRATEGY_TAG,
    ADVISED_TAG,
    BEST_TAG,
    DATASET_TAG,
    KIND_TAG,
    MODEL_TAG,
    PARENT_TAG,
    REASON_TAG,
    STATE_TAG,
    STRATEGY_KEY,
    STRATEGY_TABLES,
    STUDY_TAG,
    TRIAL_TAG,
)
from advisor.report.view import view_from_data
from advisor.track.quiet import quiet_downloads
from advisor.track.study_runs import search_all

STATES = ("complete", "pruned", "failed")


@dataclass
class TrialRecord:
    """One nested trial run."""

    number: int
    run_id: str
    state: str  # complete | pruned | failed
    strategy: str | None
    params: dict[str, Any]  # MLflow's strings parsed back to numbers / booleans where they look like one
    value: float | None  # best_val_accuracy (complete trials only)
    last_val_accuracy: float | None  # the last reported epoch's validation accuracy
    wall_time: float | None
    trainable_params: int | None
    fail_reason: str | None
    curve: list[tuple[int, float]] = field(default_factory=list)  # (epoch, val_accuracy); top trials only
    advised: bool = False  # tag advisor.advised = "true": the advice's configuration, enqueued first

    def depth(self, n_blocks: int | None) -> int | None:
        """Trainable top blocks: ``k`` for network strategies, 0 for probes, all for full fine-tuning."""
        declared = strategies.get(self.strategy) if self.strategy in strategies.names() else None
        if declared is not None and not declared.trains_network:
            return 0
        if declared is not None and declared.has("k") and declared.param("k").base == "all_blocks":
            return n_blocks  # every block trains (full_finetune)
        k = self.params.get("k")
        return int(k) if isinstance(k, (int, float)) and not isinstance(k, bool) else None


@dataclass
class StudyData:
    """Everything a report shows about one study, as read from MLflow."""

    experiment: str
    experiment_id: str
    tracking_uri: str
    parent_run_id: str
    study_name: str
    tags: dict[str, str]
    status: str
    start_time: int | None
    best_val_accuracy: float | None  # parent metrics
    test_accuracy: float | None
    test_macro_f1: float | None
    best_trial: int | None  # parent tag advisor.best_trial
    best_params: dict[str, Any]
    trials: list[TrialRecord]
    profile: Any = None  # advisor.measure.profile.Profile | None
    advice: Any = None  # advisor.advise.advice.Advice | None
    search_space: str | None = None  # search_space.yaml as logged
    best_tables: list = field(default_factory=list)  # the refit best's own tables (Strategy.tables), as a view

    @property
    def label(self) -> str:
        """``experiment`` or ``experiment / study`` when they differ."""
        return self.experiment if self.study_name == self.experiment else f"{self.experiment} / {self.study_name}"

    @property
    def dataset(self) -> str:
        return self.tags.get(DATASET_TAG, "-")

    @property
    def model(self) -> str:
        return self.tags.get(MODEL_TAG, "-")

    @property
    def advice_strategy(self) -> str | None:
        return self.advice.strategy if self.advice is not None else self.tags.get(ADVICE_STRATEGY_TAG)

    @property
    def n_blocks(self) -> int | None:
        """Backbone blocks, from the profile or the advice's search space (None without analyze)."""
        if self.profile is not None and self.profile.blocks:
            return len(self.profile.blocks)
        if self.advice is not None and getattr(self.advice.search_space, "n_blocks", None):
            return int(self.advice.search_space.n_blocks)
        return None

    def counts(self) -> dict[str, int]:
        """Trials per state (complete / pruned / failed)."""
        return {s: sum(t.state == s for t in self.trials) for s in STATES}

    def complete(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.state == "complete" and t.value is not None]

    def trial(self, number: int | None) -> TrialRecord | None:
        return next((t for t in self.trials if t.number == number), None)

    def best(self) -> TrialRecord | None:
        """The parent's best trial (tag), else the complete trial with the highest value."""
        tagged = self.trial(self.best_trial)
        if tagged is not None and tagged.state == "complete":
            return tagged
        done = self.complete()
        return max(done, key=lambda t: (t.value, -t.number)) if done else None


# ------------------------------------------------------------------ parsing
def parse_value(text: str) -> Any:
    """An MLflow param string back to int / float / bool where it is one, else the string."""
    if text in ("True", "true"):
        return True
    if text in ("False", "false"):
        return False
    if text in ("None", "null"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _metric(metrics: dict[str, float], name: str) -> float | None:
    value = metrics.get(name)
    return float(value) if value is not None and math.isfinite(value) else None


# ------------------------------------------------------------------ MLflow
def open_client(tracking_uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri)


def find_experiment(client: Any, name: str, tracking_uri: str) -> Any:
    """The active experiment called ``name``, or an :class:`AdvisorError` listing the known ones."""
    found = client.get_experiment_by_name(name)
    if found is not None and found.lifecycle_stage == "active":
        return found
    try:
        known = sorted(e.name for e in client.search_experiments(max_results=50))
    except Exception:  # noqa: BLE001 - the list is only a hint
        known = []
    known = [k for k in known if k != "Default"]
    hint = f"known experiments: {', '.join(known[:10])}" if known else "this store has no advisor experiments yet"
    state = " (deleted)" if found is not None else ""
    raise AdvisorError(f"no MLflow experiment named {name!r}{state} in {tracking_uri}",
                       f"pass the --experiment that advisor search used; {hint}")


def _artifacts(client: Any, run_id: str, names: tuple[str, ...]) -> dict[str, str]:
    """The text of the named top-level artifacts of ``run_id`` that exist."""
    present = {a.path for a in client.list_artifacts(run_id) if not a.is_dir}
    out: dict[str, str] = {}
    wanted = [n for n in names if n in present]
    if not wanted:
        return out
    with quiet_downloads(), tempfile.TemporaryDirectory(prefix="advisor-report-") as tmp:
        for name in wanted:
            path = client.download_artifacts(run_id, name, tmp)
            out[name] = Path(path).read_text(encoding="utf-8")
    return out


def _load_json(text: str | None, cls: type | None = None) -> Any:
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if cls is None:
        return data
    from advisor.serialize import from_dict

    try:
        return from_dict(cls, data)
    except (TypeError, KeyError, ValueError):
        return None


def _trial_record(run: Any) -> TrialRecord:
    tags, metrics = run.data.tags, run.data.metrics
    params = {k: parse_value(v) for k, v in run.data.params.items()}
    state = tags.get(STATE_TAG, "failed")
    trainable = _metric(metrics, "trainable_params")
    return TrialRecord(
        number=int(tags.get(TRIAL_TAG, -1)), run_id=run.info.run_id, state=state,
        strategy=tags.get(STRATEGY_KEY) or (str(params[STRATEGY_KEY]) if STRATEGY_KEY in params else None),
        params=params, value=_metric(metrics, "best_val_accuracy") if state == "complete" else None,
        last_val_accuracy=_metric(metrics, "val_accuracy"), wall_time=_metric(metrics, "wall_time"),
        trainable_params=int(trainable) if trainable is not None else None,
        fail_reason=tags.get(REASON_TAG), advised=tags.get(ADVISED_TAG, "").lower() == "true")


def trial_runs(client: Any, experiment_id: str, parent_run_id: str) -> list[TrialRecord]:
    """The parent's nested trial runs, one per trial number (the newest wins), by number."""
    query = f"tags.`{PARENT_TAG}` = '{parent_run_id}' AND tags.`{KIND_TAG}` = 'trial'"
    runs = sorted(search_all(client, experiment_id, query), key=lambda r: r.info.start_time or 0)
    by_number = {int(r.data.tags.get(TRIAL_TAG, -1)): r for r in runs}
    return [_trial_record(by_number[n]) for n in sorted(by_number)]


def load_curves(client: Any, trials: list[TrialRecord]) -> None:
    """Fill ``curve`` (validation accuracy per epoch) of ``trials`` from their metric history."""
    for t in trials:
        history = client.get_metric_history(t.run_id, "val_accuracy")
        t.curve = sorted((int(m.step), float(m.value)) for m in history if math.isfinite(m.value))


def _study(client: Any, experiment: Any, parent: Any, tracking_uri: str) -> StudyData:
    from advisor.advise.advice import Advice
    from advisor.measure.profile import Profile

    tags, metrics = parent.data.tags, parent.data.metrics
    run_id = parent.info.run_id
    texts = _artifacts(client, run_id, ("profile.json", "advice.json", "best_params.json", "search_space.yaml",
                                        STRATEGY_TABLES))
    best_json = _load_json(texts.get("best_params.json")) or {}
    best_params = best_json.get("params") if isinstance(best_json.get("params"), dict) else None
    if best_params is None:  # fall back to the write-once best.* params
        best_params = {k[len("best."):]: parse_value(v) for k, v in parent.data.params.items()
                       if k.startswith("best.")}
    best_tag = tags.get(BEST_TAG)
    return StudyData(
        experiment=experiment.name, experiment_id=experiment.experiment_id, tracking_uri=tracking_uri,
        parent_run_id=run_id, study_name=tags.get(STUDY_TAG, parent.info.run_name or run_id),
        tags=dict(tags), status=parent.info.status, start_time=parent.info.start_time,
        best_val_accuracy=_metric(metrics, "best_val_accuracy"), test_accuracy=_metric(metrics, "test_accuracy"),
        test_macro_f1=_metric(metrics, "test_macro_f1"),
        best_trial=int(best_tag) if best_tag and best_tag.lstrip("-").isdigit() else None,
        best_params=best_params, trials=trial_runs(client, experiment.experiment_id, run_id),
        profile=_load_json(texts.get("profile.json"), Profile), advice=_load_json(texts.get("advice.json"), Advice),
        search_space=texts.get("search_space.yaml"), best_tables=view_from_data(_load_json(texts.get(STRATEGY_TABLES))))


# ------------------------------------------------------------------ the advised trial
def canonical(strategy: str | None, params: dict[str, Any] | None, n_blocks: int | None) -> str | None:
    """``full_finetune`` for ``last_k`` with every block trainable, else the strategy itself: the
    equivalences the strategies declare (:func:`advisor.strategies.canonical`)."""
    from advisor import strategies

    return strategies.canonical(strategy, params, n_blocks)


def advised_trial(study: StudyData) -> TrialRecord | None:
    """The trial that ran the advised configuration, or None.

    The trial run tagged ``advisor.advised = "true"``. Runs logged before that tag existed:
    ``advisor search --strategy auto`` enqueues the advice's configuration as trial 0 of a
    new study when the search space holds the advised strategy (``full_finetune`` becomes
    ``last_k`` with k = all blocks when only ``last_k`` is in the space), so trial 0 of a
    study whose parent carries the advice, when its strategy is the advised one.
    """
    tagged = [t for t in study.trials if t.advised]
    if tagged:
        return tagged[0]
    advised = study.advice_strategy
    first = study.trial(0)
    if not advised or first is None or any(t.advised for t in study.trials):
        return None
    if first.strategy == advised:
        return first
    n = study.n_blocks
    if canonical(first.strategy, first.params, n) == advised:  # a run of another strategy that is the advised one
        return first
    return None


def collect_experiment(client: Any, name: str, tracking_uri: str, top: int = 5) -> list[StudyData]:
    """Every study (parent run) of experiment ``name``, oldest first, with its trials.

    Raises :class:`AdvisorError` for an unknown experiment, one without an advisor study
    run, or a study without a completed trial. Learning curves are loaded for the ``top``
    best complete trials and the advised one.
    """
    experiment = find_experiment(client, name, tracking_uri)
    parents = [r for r in search_all(client, experiment.experiment_id, f"tags.`{KIND_TAG}` = 'study'")
               if PARENT_TAG not in r.data.tags]
    if not parents:
        n_runs = len(client.search_runs([experiment.experiment_id], max_results=1))
        what = "no runs" if n_runs == 0 else "no advisor study run (a parent run tagged advisor.kind=study)"
        raise AdvisorError(f"MLflow experiment {name!r} has {what}",
                           f"run advisor search DATASET --experiment {name} first")
    studies = []
    for parent in sorted(parents, key=lambda r: r.info.start_time or 0):
        study = _study(client, experiment, parent, tracking_uri)
        if not study.complete():
            c = study.counts()
            raise AdvisorError(
                f"study {study.study_name!r} in experiment {name!r} has no completed trial "
                f"({len(study.trials)} trial runs: {c['pruned']} pruned, {c['failed']} failed)",
                f"run more trials: advisor search {study.dataset} --study-name {study.study_name} --experiment {name}")
        chosen = sorted(study.complete(), key=lambda t: (-t.value, t.number))[:max(0, top)]
        advised = advised_trial(study)
        if advised is not None and advised not in chosen:
            chosen.append(advised)
        load_curves(client, chosen)
        studies.append(study)
    return studies
