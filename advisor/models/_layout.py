"""A backbone's declared block-output layout and its pooling: where the channels are, and how a block
output becomes one feature vector per image.

Three layouts cover the families ``advisor`` cuts:

========== ============================ ================================================= ===============
kind       block output                 families                                          default pool
========== ============================ ================================================= ===============
``nchw``   ``(N, C, H, W)`` maps        every CNN (torchvision, timm)                     ``avg``
``nlc``    ``(N, L, C)`` tokens; the    ViT, DeiT, DINOv2 (timm), torchvision ``vit_*``   the source
           first ``n_prefix`` are                                                         head's own:
           prefix tokens (class first,                                                    ``token`` for
           then register/distillation)                                                    all of these
``nhwc``   ``(N, H, W, C)`` windows     Swin (timm, torchvision)                          ``avg``
========== ============================ ================================================= ===============

Pooling: ``avg`` is the mean over space (``nchw``, ``nhwc``) or over the patch tokens, prefix tokens
left out (``nlc``); ``token`` is the class token ``x[:, 0]`` (``nlc`` only). A 2-D ``(N, C)`` tensor is
already pooled and passes through. Nothing is guessed from a tensor's shape: a tensor that does not
have the declared number of dimensions is an :class:`AdvisorError`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import torch

from advisor.errors import AdvisorError

KINDS = ("nchw", "nlc", "nhwc")
POOLS = {"nchw": ("avg",), "nlc": ("token", "avg"), "nhwc": ("avg",)}
_CHANNEL_DIM = {"nchw": 1, "nlc": 2, "nhwc": 3}
_SPACE_DIMS = {"nchw": (2, 3), "nhwc": (1, 2)}
_NDIM = {"nchw": 4, "nlc": 3, "nhwc": 4}
#: the network family of each layout: it picks the fine-tuning recipe (``advisor.strategies.recipe``)
FAMILIES = {"nchw": "cnn", "nlc": "transformer", "nhwc": "transformer"}


@dataclass(frozen=True)
class Layout:
    """How every block of a backbone lays out its output, and how it is pooled.

    Attributes:
        kind: ``"nchw"``, ``"nlc"`` or ``"nhwc"`` (see the module docstring).
        pool: ``"avg"`` or, for ``nlc`` with a class token, ``"token"``.
        n_prefix: number of prefix tokens before the patch tokens (``nlc`` only; 0 otherwise).
    """

    kind: str = "nchw"
    pool: str = "avg"
    n_prefix: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise AdvisorError(f"unknown block layout '{self.kind}'", f"use one of {', '.join(KINDS)}")
        if self.pool not in POOLS[self.kind]:
            raise AdvisorError(
                f"pooling '{self.pool}' does not apply to {self.kind} block outputs",
                f"use one of {', '.join(POOLS[self.kind])}",
            )
        if not isinstance(self.n_prefix, int) or isinstance(self.n_prefix, bool) or self.n_prefix < 0:
            raise AdvisorError(f"n_prefix must be a whole number >= 0, got {self.n_prefix!r}",
                               "give the number of class/register tokens")
        if self.kind != "nlc" and self.n_prefix:
            raise AdvisorError(f"a {self.kind} layout has no prefix tokens (n_prefix={self.n_prefix})",
                               "use n_prefix=0")
        if self.pool == "token" and self.n_prefix < 1:
            raise AdvisorError("class-token pooling needs a class token (n_prefix >= 1)", "use pool='avg'")

    # ------------------------------------------------------------------ shapes
    @property
    def family(self) -> str:
        """``"cnn"`` (``nchw``) or ``"transformer"`` (``nlc``, ``nhwc``): which fine-tuning recipe applies."""
        return FAMILIES[self.kind]

    @property
    def channel_dim(self) -> int:
        """The dimension of a block output that holds the channels."""
        return _CHANNEL_DIM[self.kind]

    def channels(self, t: torch.Tensor) -> int:
        """Channels (width) of a block output ``t``."""
        self._check(t)
        return int(t.shape[self.channel_dim])

    def _check(self, t: torch.Tensor) -> None:
        if t.dim() != _NDIM[self.kind] or (self.kind == "nlc" and t.shape[1] <= self.n_prefix):
            want = {"nchw": "(N, C, H, W)", "nlc": f"(N, L, C) with L > {self.n_prefix}",
                    "nhwc": "(N, H, W, C)"}[self.kind]
            raise AdvisorError(
                f"cannot pool a tensor of shape {tuple(t.shape)} as a {self.kind} block output",
                f"pass a block output of shape {want}",
            )

    # ------------------------------------------------------------------ pooling
    def pool_tensor(self, t: torch.Tensor) -> torch.Tensor:
        """One feature vector per image: ``(N, C)``. A 2-D ``(N, C)`` tensor passes through."""
        if t.dim() == 2:
            return t
        self._check(t)
        if self.kind == "nlc":
            return t[:, 0] if self.pool == "token" else t[:, self.n_prefix:].mean(dim=1)
        return t.mean(dim=_SPACE_DIMS[self.kind])

    def by_channel(self, t: torch.Tensor) -> torch.Tensor:
        """A block output with its channels first and its positions after: ``(N, C, ...)``.

        ``nchw`` passes through; ``nhwc`` windows become ``(N, C, H, W)``; ``nlc`` tokens become
        ``(N, C, L - n_prefix)``, the prefix (class/register) tokens left out: they are summaries, not
        positions. A view, no copy: per-channel moments over positions read it (shift measures).
        """
        self._check(t)
        if self.kind == "nlc":
            return t[:, self.n_prefix:].transpose(1, 2)
        if self.kind == "nhwc":
            return t.permute(0, 3, 1, 2)
        return t

    def with_pool(self, pool: str) -> "Layout":
        """The same layout pooled by ``pool`` (``"avg"`` or ``"token"``)."""
        return Layout(self.kind, pool, self.n_prefix)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """``{"kind", "pool", "n_prefix"}``: plain JSON values, for saved model files."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Layout":
        """The layout :meth:`to_dict` wrote; an unknown or missing field is an :class:`AdvisorError`."""
        if not isinstance(d, Mapping):
            raise AdvisorError(f"a block layout must be a mapping, got {type(d).__name__}",
                               "pass what Layout.to_dict() wrote")
        extra = sorted(set(d) - {"kind", "pool", "n_prefix"})
        if extra or "kind" not in d or "pool" not in d:
            raise AdvisorError(f"a block layout needs kind and pool (and n_prefix) only, got {sorted(d)}",
                               "pass what Layout.to_dict() wrote")
        return cls(kind=d["kind"], pool=d["pool"], n_prefix=d.get("n_prefix", 0))


#: Every CNN's layout: ``(N, C, H, W)`` maps, global average pooling.
NCHW = Layout("nchw", "avg", 0)
