"""The result of cutting a network: named body blocks, a head, and which state-dict keys are the head's."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn


@dataclass
class Cut:
    """A network cut into sequential blocks.

    ``blocks`` run in order, then ``head`` (pooling included) gives the source logits.
    ``head_prefixes`` are the state-dict key prefixes of the original model that belong
    to the head (a checkpoint lacking all of them is a headless, feature-only checkpoint);
    ``classifier`` is the key prefix of the final linear layer, whose weight's first
    dimension is the number of source classes. ``probe_size`` is the side of the
    square input used to probe block shapes.
    """

    blocks: list[tuple[str, nn.Module]]
    head: nn.Module | None
    classifier: str
    head_prefixes: tuple[str, ...] = field(default_factory=tuple)
    probe_size: int = 64
