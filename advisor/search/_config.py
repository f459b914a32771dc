"""What a search was asked to do: one dataclass, read by the study and by every worker process."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SearchConfig:
    dataset: str
    model: str = "mobilenet_v2"
    weights: str | None = None
    strategy: str = "auto"  # "auto" or a strategy name
    space: str | None = None  # None: the strategy's shipped file (auto: the advice's space); "auto"; or a path
    trials: int = 20
    timeout: float | None = None  # seconds for this invocation
    storage: str | None = None  # None: <workspace>/optuna.journal
    study_name: str | None = None
    workers: int = 1
    experiment: str | None = None
    tracking_uri: str | None = None  # None: sqlite in the workspace
    device: str = "auto"
    image_size: int | None = None
    seed: int = 0
    workspace: str | None = None  # None: $ADVISOR_WORKSPACE, else ./advisor-workspace (track.store.default_workspace)
    cache_dir: str | None = None
    advice: str | None = None  # a saved analyze JSON to read instead of running analyze
    analyze_sample: int = 500
    split: str | None = None  # train/val/test fractions, e.g. "0.3,0.5,0.2"; None: 0.6,0.2,0.2
    drop_rare_classes: bool = False  # leave out classes too small for the split (else: refuse them)
    pruner: str = "hyperband"  # hyperband | halving | none
    label_columns: list[str] | None = None
    intermediate: str | None = None
    loader_workers: int = 0
    register: str | None = None  # register the best model in the MLflow Model Registry under this name
    fail_trials: list[int] = field(default_factory=list)  # inject failures (tests)
