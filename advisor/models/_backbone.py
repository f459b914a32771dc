"""The :class:`Backbone`: a pretrained network cut into an ordered list of named blocks.

The network is exactly ``x -> blocks[0] -> ... -> blocks[-1] -> head``. Blocks are
the unit of per-block measurement and of freeze depth; ``head`` is the *source*
classifier (pooling included) or ``None`` when the weights carry no usable one.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from advisor.errors import AdvisorError

#: Side of the square random input used to probe block output shapes.
PROBE_SIZE = 64


def global_pool(t: torch.Tensor) -> torch.Tensor:
    """Global average pool: ``(N, C, H, W) -> (N, C)``, ``(N, C, L) -> (N, C)``; ``(N, C)`` passes through.

    The one pooling every consumer of block outputs uses (measurements, the cache, trainers, exported models).
    """
    if t.dim() == 4:
        return t.mean(dim=(2, 3))
    if t.dim() == 2:
        return t
    if t.dim() == 3:  # (N, C, L)
        return t.mean(dim=2)
    raise AdvisorError(
        f"cannot pool a tensor of shape {tuple(t.shape)}",
        "pass a block output of shape (N, C, H, W)",
    )


class Backbone(nn.Module):
    """A network cut into named sequential blocks plus an optional source head.

    Attributes:
        name: model name as requested (canonical form), e.g. ``"mobilenet_v2"`` or ``"timm:resnet18"``.
        weights_id: where the weights came from: a torchvision enum name (``"IMAGENET1K_V1"``),
            a timm pretrained tag (``"timm:a1_in1k"``), ``"file:<16 hex of sha256>"`` or ``"random"``.
        blocks: the body, run in order.
        block_names: one name per block (``stem``, ``ir1``, ``layer1.0``, ``stage2.0``, ...).
        head: source classifier mapping the last block's ``(N, C, H, W)`` output to logits, or ``None``.
        num_source_classes: number of source logits, or ``None`` without a head.
        block_channels: channels of each block's output.
        feature_dim: ``block_channels[-1]``.
        preprocessing: ``resize_size``, ``crop_size``, ``mean``, ``std`` (and ``interpolation``)
            of the weights' own evaluation transform.

    A new backbone is in eval mode; block output shapes are probed once at construction
    on a ``probe_size`` x ``probe_size`` zero image.
    """

    def __init__(
        self,
        name: str,
        weights_id: str,
        blocks: Sequence[tuple[str, nn.Module]],
        head: nn.Module | None,
        num_source_classes: int | None,
        preprocessing: dict,
        *,
        probe_size: int = PROBE_SIZE,
    ) -> None:
        super().__init__()
        if not blocks:
            raise AdvisorError(f"model {name} has no blocks", "report this as a bug in advisor.models")
        names = [n for n, _ in blocks]
        if len(set(names)) != len(names):
            raise AdvisorError(f"model {name} has duplicate block names", "report this as a bug in advisor.models")
        self.name = name
        self.weights_id = weights_id
        self.blocks = nn.ModuleList([m for _, m in blocks])
        self.block_names = names
        self.head = head
        self.num_source_classes = num_source_classes if head is not None else None
        self.preprocessing = dict(preprocessing)
        self.probe_size = probe_size
        self.eval()  # a backbone starts in eval mode; call .train() to fine-tune
        self.block_channels = self._probe_channels(probe_size)
        self.feature_dim = self.block_channels[-1]

    # ------------------------------------------------------------------ probing
    def _probe_channels(self, size: int) -> list[int]:
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                x = torch.zeros(1, 3, size, size)
                outs = self.forward_blocks(x)
        finally:
            self.train(was_training)
        return [int(o.shape[1]) for o in outs]

    # ------------------------------------------------------------------ forward
    def forward_blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every block's output, in order."""
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's output ``(N, C, H, W)``."""
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Source logits, or pooled last-block features when there is no head."""
        x = self.forward_features(x)
        if self.head is None:
            return self.pooled(x)
        return self.head(x)

    pooled = staticmethod(global_pool)

    # ------------------------------------------------------------------ lookup
    def block_index(self, name: str) -> int:
        """Position of the block called ``name``."""
        try:
            return self.block_names.index(name)
        except ValueError:
            raise AdvisorError(
                f"unknown block '{name}' for {self.name}",
                f"choose one of {', '.join(self.block_names)}",
            ) from None

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameters in blocks and head."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @property
    def device(self) -> torch.device:
        """Device of the first parameter (cpu when there are none)."""
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def extra_repr(self) -> str:
        return f"name={self.name!r}, weights_id={self.weights_id!r}, blocks={len(self.block_names)}"


def backbone_spec_id(backbone: Backbone) -> str:
    """A string that identifies the network and its weights, for cache keys."""
    return f"{backbone.name}@{backbone.weights_id}"
