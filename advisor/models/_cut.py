"""The result of cutting a network: named body blocks, a head, which state-dict keys are the head's,
and what the blocks output (their layout) and accept (input sides)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from advisor.models._layout import NCHW, Layout


@dataclass
class Cut:
    """A network cut into sequential blocks.

    ``blocks`` run in order, then ``head`` (pooling included) gives the source logits.
    ``head_prefixes`` are the state-dict key prefixes of the original model that belong
    to the head (a checkpoint lacking all of them is a headless, feature-only checkpoint);
    ``classifier`` is the key prefix of the final linear layer, whose weight's first
    dimension is the number of source classes. ``probe_size`` is the side of the
    square input used to probe block shapes. ``layout`` is every block's output layout and
    default pooling; ``patch_size`` divides every accepted input side and ``fixed_size`` is the
    only one accepted (``None``: any). ``no_decay`` holds the parameters the model declares
    free of weight decay whatever their shape (position embeddings, class tokens).
    """

    blocks: list[tuple[str, nn.Module]]
    head: nn.Module | None
    classifier: str
    head_prefixes: tuple[str, ...] = field(default_factory=tuple)
    probe_size: int = 64
    layout: Layout = NCHW
    patch_size: int = 1
    fixed_size: int | None = None
    no_decay: tuple[nn.Parameter, ...] = field(default_factory=tuple)

    def no_decay_names(self, with_head: bool) -> list[str]:
        """:attr:`no_decay` as :class:`~advisor.models.Backbone` ``state_dict`` names (``blocks.I.…``, ``head.…``)."""
        wanted = {id(p) for p in self.no_decay}
        parts = [(f"blocks.{i}.", b) for i, (_, b) in enumerate(self.blocks)]
        if with_head and self.head is not None:
            parts.append(("head.", self.head))
        return [prefix + k for prefix, module in parts for k, p in module.named_parameters() if id(p) in wanted]
