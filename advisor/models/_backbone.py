"""The :class:`Backbone`: a pretrained network cut into an ordered list of named blocks.

The network is exactly ``x -> blocks[0] -> ... -> blocks[-1] -> head``. Blocks are
the unit of per-block measurement and of freeze depth; ``head`` is the *source*
classifier (pooling included) or ``None`` when the weights carry no usable one.
Each backbone declares its blocks' :class:`~advisor.models._layout.Layout` (channels-first maps,
tokens with a class token, channels-last windows) and pools through it (:meth:`Backbone.pool`).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from advisor.errors import AdvisorError
from advisor.models import engine
from advisor.models._layout import NCHW, Layout

#: Side of the square random input used to probe block output shapes.
PROBE_SIZE = 64


def global_pool(t: torch.Tensor) -> torch.Tensor:
    """CNN global average pool: ``(N, C, H, W) -> (N, C)``; ``(N, C)`` passes through.

    Only for channels-first maps: a 3-D tensor may be ``(N, C, L)`` or a transformer's ``(N, L, C)``
    tokens, so it is refused rather than guessed; pool block outputs through :meth:`Backbone.pool`,
    which knows the backbone's declared layout.
    """
    if t.dim() in (2, 4):
        return NCHW.pool_tensor(t)
    if t.dim() == 3:
        raise AdvisorError(
            f"cannot pool a 3-D tensor of shape {tuple(t.shape)} without a declared layout "
            "((N, C, L) and a transformer's (N, L, C) tokens look alike)",
            "pool block outputs with backbone.pool(x), which follows the backbone's layout",
        )
    raise AdvisorError(
        f"cannot pool a tensor of shape {tuple(t.shape)}",
        "pass a block output of shape (N, C, H, W)",
    )


def check_patch_multiple(label: str, side: int, patch: int) -> None:
    """One line unless ``side`` is a whole number (>= 1) of ``patch``-pixel patches; the fix names the nearest."""
    if side % patch or side < patch:
        lower = side // patch * patch
        sizes = " or ".join(str(s) for s in (lower, lower + patch) if s > 0)
        raise AdvisorError(f"image size {side} is not a multiple of {label}'s patch size {patch}",
                           f"pass --image-size {sizes}")


class Backbone(nn.Module):
    """A network cut into named sequential blocks plus an optional source head.

    Attributes:
        name: model name as requested (canonical form), e.g. ``"mobilenet_v2"`` or ``"timm:resnet18"``.
        weights_id: where the weights came from: a torchvision enum name (``"IMAGENET1K_V1"``),
            a timm pretrained tag (``"timm:a1_in1k"``), ``"file:<16 hex of sha256>"`` or ``"random"``.
        blocks: the body, run in order.
        block_names: one name per block (``stem``, ``ir1``, ``layer1.0``, ``stage2.0``, ...).
        head: source classifier mapping the last block's output to logits (its own pooling
            included), or ``None``.
        num_source_classes: number of source logits, or ``None`` without a head.
        layout: the declared :class:`Layout` of every block's output (``nchw`` for every CNN,
            ``nlc`` for ViTs, ``nhwc`` for Swin) and the pooling :meth:`pool` applies.
        block_channels: channels of each block's output (read along the layout's channel dimension).
        feature_dim: ``block_channels[-1]``.
        preprocessing: ``resize_size``, ``crop_size``, ``mean``, ``std`` (and ``interpolation``)
            of the weights' own evaluation transform.
        patch_size: an input side must be a multiple of it (a ViT's patch; 1 for CNNs and Swin).
        fixed_size: the one input side the network accepts, or ``None`` when any side works
            (torchvision's ViT is built for one side).
        no_decay: names (in this module's ``state_dict``) of tensors that take no weight decay
            whatever their shape: position embeddings and class/register tokens, as the model
            itself declares them (timm's ``no_weight_decay()``).

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
        layout: Layout = NCHW,
        patch_size: int = 1,
        fixed_size: int | None = None,
        no_decay: Sequence[str] = (),
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
        self.layout = layout
        self.patch_size = int(patch_size)
        self.fixed_size = None if fixed_size is None else int(fixed_size)
        self.no_decay = frozenset(no_decay)
        unknown = self.no_decay - set(dict(self.named_parameters()))
        if unknown:
            raise AdvisorError(f"model {name} declares no-decay tensors it does not have: {sorted(unknown)[:2]}",
                               "report this as a bug in advisor.models")
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
        return [self.layout.channels(o) for o in outs]

    # ------------------------------------------------------------------ forward
    def forward_blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every block's output, in order (:func:`advisor.models.engine.run_each`)."""
        return engine.run_each(self.blocks, x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's output, laid out as :attr:`layout` says (:func:`advisor.models.engine.run`)."""
        return engine.run(self.blocks, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Source logits, or pooled last-block features when there is no head."""
        x = self.forward_features(x)
        if self.head is None:
            return self.pool(x)
        return self.head(x)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """One feature vector per image ``(N, C)`` from any block's output, as :attr:`layout` declares.

        CNN (``nchw``): the mean over space, bit-identical to :func:`global_pool`. ViT (``nlc``): the
        class token (``token``, the default, as the source head pools) or the mean of the patch tokens
        (``avg``). Swin (``nhwc``): the mean over the windows' positions. ``(N, C)`` passes through.
        """
        return self.layout.pool_tensor(x)

    #: The former name of :meth:`pool`.
    pooled = pool

    def set_pool(self, pool: str) -> None:
        """Pool by ``"avg"`` or ``"token"`` (``nlc`` only) from now on; the source head keeps its own."""
        self.layout = self.layout.with_pool(pool)

    def check_image_size(self, side: int) -> None:
        """Raise an :class:`AdvisorError` unless this network can run on ``side`` x ``side`` inputs.

        A ViT needs a whole number of patches (its position embedding is interpolated to the
        patch grid, as timm does it); torchvision's ViT runs at the one side it was built for.
        """
        if isinstance(side, bool) or not isinstance(side, int) or side < 1:
            raise AdvisorError(f"image size must be a whole number of pixels >= 1, got {side!r}",
                               "pass --image-size N")
        if self.fixed_size is not None and side != self.fixed_size:
            raise AdvisorError(
                f"{self.name} was built for {self.fixed_size} px inputs, not {side}",
                f"pass --image-size {side} when the backbone is created, or feed {self.fixed_size} px images",
            )
        check_patch_multiple(self.name, side, self.patch_size)

    def decays(self, name: str, param: torch.Tensor) -> bool:
        """Whether the parameter ``name`` (in this module's ``state_dict``) takes weight decay: weights
        do; biases and norm parameters (at most one dimension) and the declared :attr:`no_decay`
        tensors (position embeddings, class/register tokens) do not."""
        return param.ndim > 1 and name not in self.no_decay

    def block_parameter_groups(self) -> list[tuple[str, list[tuple[str, nn.Parameter]]]]:
        """``(block name, [(parameter name, parameter), ...])`` per block, in order, then ``("head", ...)``
        when there is a source head.

        The unit of layer-wise learning-rate decay: a ViT's groups are its stem, each transformer
        block (the last one with the final norm) and the head, so a decay counts transformer blocks.
        Give each group its own ``lr`` in the optimizer (timm's ``lr_scale`` is read only by timm's
        own scheduler). Names are this module's ``state_dict`` names, for :meth:`decays`.
        """
        groups = [(n, [(f"blocks.{i}.{k}", p) for k, p in b.named_parameters()])
                  for i, (n, b) in enumerate(zip(self.block_names, self.blocks))]
        if self.head is not None:
            groups.append(("head", [(f"head.{k}", p) for k, p in self.head.named_parameters()]))
        return groups

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
