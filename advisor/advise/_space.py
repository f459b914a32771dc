"""The search space the advice comes with (``Advice.search_space``), and the backbone/head rate ratios it advises
for a similar and a different target on each network family."""

from __future__ import annotations

from advisor import strategies
from advisor.advise.advice import SearchSpace
from advisor.advise.thresholds import DEFAULT_THRESHOLDS, Thresholds
from advisor.measure.profile import Profile

# Layer-wise learning-rate decay suggested between blocks (ULMFiT used 1/2.6 per layer group).
DEFAULT_DECAY = (0.7, 1.0)


def lr_ratios(profile: Profile, t: Thresholds = DEFAULT_THRESHOLDS) -> tuple[float, float]:
    """The backbone/head rate ratios advised for (a similar, a different) target on ``profile``'s family."""
    if profile.family == "transformer":
        return t.transformer_lr_ratio_similar, t.transformer_lr_ratio_different
    return t.lr_ratio_similar, t.lr_ratio_different


def _space(strategy: str, n: int, k_range: tuple[int, int], ratio: tuple[float, float], profile: Profile,
           probe_blocks: list[str], warmup: list[bool], t: Thresholds = DEFAULT_THRESHOLDS) -> SearchSpace:
    """The search space advised with ``strategy``; ``ratio`` is the rate-ratio range for a CNN, scaled by
    the family's recipe ratio over the CNN's (a transformer's range is ten times lower)."""
    scale = strategies.recipe(profile.family).lr_ratio / strategies.recipe("cnn").lr_ratio
    ratio = (ratio[0] * scale, ratio[1] * scale)
    per_class = profile.size.task(profile.primary_task).median_per_class
    head_lr = [1e-4, 3e-2] if strategies.get(strategy).trains_network else [1e-3, 1e-1]
    return SearchSpace(
        strategy=strategy,
        trainable_blocks=[int(max(0, min(n, k_range[0]))), int(max(0, min(n, k_range[1])))],
        n_blocks=n,
        head_lr=head_lr,
        lr_ratio=[float(ratio[0]), float(ratio[1])],
        layer_decay=list(DEFAULT_DECAY) if per_class >= t.small_per_class else [0.5, 0.9],
        warmup=warmup,
        probe_blocks=probe_blocks,
    )
