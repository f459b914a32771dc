"""The Profile: what analyze measured about a target dataset and a backbone.

Plain dataclasses that write to and read from JSON (``advisor.serialize``).
Units: accuracies are fractions in [0, 1]; LogME is log evidence per sample
(nats); shifts are symmetric KL divergences in nats averaged over channels;
LEEP and NCE are mean log-likelihoods (nats, <= 0); entropies in nats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


def best_index(values: Sequence[float | None], tie: float = 0.0) -> int:
    """The deepest index whose value is within ``tie`` of the highest; missing (None, NaN) values are
    never best. With no value at all, the last index (the network's own output)."""
    ok = [(i, float(v)) for i, v in enumerate(values) if v is not None and not math.isnan(float(v))]
    if not ok:
        return len(values) - 1
    top = max(v for _, v in ok)
    return max(i for i, v in ok if v >= top - tie)


@dataclass
class TaskSize:
    """Label statistics of one task (label column) over the training split."""

    task: str
    n_labelled: int
    n_missing: int
    n_classes: int
    per_class: dict[str, int]
    min_per_class: int
    median_per_class: float
    max_per_class: int
    imbalance_ratio: float  # max / min class count


@dataclass
class SizeProfile:
    n_samples: int
    input_shape: list[int]  # (channels, height, width) of the raw images, first item
    split: dict[str, int]  # train / val / test item counts
    tasks: list[TaskSize]

    def task(self, name: str) -> TaskSize:
        return next(t for t in self.tasks if t.task == name)


@dataclass
class BlockProfile:
    """Measurements at the output of one backbone block."""

    index: int
    name: str
    channels: int
    n_bn_layers: int
    shift: float | None  # target vs source moments, by the Profile's shift_measure (None: not measured)
    logme: dict[str, float]  # per task
    knn_accuracy: dict[str, float]  # per task, cross-validated
    linear_probe_accuracy: dict[str, float]  # per task, cross-validated ridge probe
    frechet: float | None = None  # only with --source-data
    domain_accuracy: float | None = None
    proxy_a_distance: float | None = None


@dataclass
class SourceProfile:
    """Scores from the source classifier's predictions on the target sample."""

    num_source_classes: int
    leep: float
    nce: float
    entropy: float
    entropy_normalised: float  # entropy / log(num_source_classes)


@dataclass
class TaskTransfer:
    """Cross-task probe transfer from task ``source`` to task ``target`` (:mod:`advisor.measure._task_transfer`):
    the share of ``target``'s label information above chance that a linear probe for ``source`` carries."""

    source: str
    target: str
    block: str  # the block whose pooled features were probed (the last: what the tasks' heads read)
    n: int  # images labelled for ``target`` the accuracies are measured on
    accuracy_from_probe: float  # target read from the source probe's outputs (cross-validated)
    accuracy_from_null: float  # target read from a probe fitted to the source's labels shuffled (the floor)
    accuracy_from_features: float  # target read from the full features (cross-validated)
    chance: float  # share of the target's largest class
    transfer: float | None  # (from_probe - from_null) / (from_features - from_null) in [0, 1]; None: nothing to read


@dataclass
class ShiftInfo:
    """Which shift measure produced the blocks' ``shift`` values (:mod:`advisor.measure.shift`)."""

    measure: str  # "bn_stats", "reference" or "none"
    reason: str | None = None  # why there is no shift (measure "none")
    source: str | None = None  # where the source moments came from ("reference": the source sample)


@dataclass
class Profile:
    dataset: str
    fingerprint: str
    model: str
    weights: str
    image_size: int
    primary_task: str
    intermediate: str | None
    size: SizeProfile
    sample_size: int  # images measured (stratified from the train split)
    seed: int
    num_parameters: int
    blocks: list[BlockProfile]
    source: SourceProfile | None = None
    source_data: str | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds
    shift_measure: ShiftInfo | None = None  # None: a Profile written before shift measures were recorded
    #: the backbone's network family (``layout.family``: "cnn" or "transformer"); it picks the fine-tuning
    #: recipe the advice's rates are for (a Profile written before families were recorded is a CNN's)
    family: str = "cnn"
    #: cross-task probe transfer between the final tasks (two or more final label columns); empty: one final
    #: task, or a Profile written before the measure existed
    task_transfer: list[TaskTransfer] = field(default_factory=list)

    def block_values(self, metric: str, task: str | None = None) -> list[float | None]:
        """One value per block for ``metric`` (a BlockProfile field); per-task metrics use ``task``."""
        task = task or self.primary_task
        out = []
        for b in self.blocks:
            v = getattr(b, metric)
            out.append(v.get(task) if isinstance(v, dict) else v)
        return out

    def best_block(self, metric: str, task: str | None = None, tie: float = 0.0) -> BlockProfile:
        """The block :func:`best_index` picks for ``metric`` (the one definition of "best block")."""
        return self.blocks[best_index(self.block_values(metric, task), tie)]
