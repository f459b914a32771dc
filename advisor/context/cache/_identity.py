"""What an entry's values depend on besides the network and the images: the device, the precision and the
torch/torchvision/timm versions (kernels differ between them), and the images' fingerprint."""

from __future__ import annotations

import torch

from advisor.models import engine
from advisor.models.engine import TF32_OFF


def _package_versions() -> dict[str, str | None]:
    from importlib import metadata

    out = {"torch": torch.__version__}
    for name in ("torchvision", "timm"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


_VERSIONS: dict[str, str | None] = {}


def _versions() -> dict[str, str | None]:
    if not _VERSIONS:
        _VERSIONS.update(_package_versions())
    return dict(_VERSIONS)


def _device_id(device: torch.device) -> str:
    """``cpu``, ``mps``, or ``cuda:<GPU name>`` (kernels differ between GPU models)."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


def _precision(backbone, device: torch.device) -> str:
    """The parameters' floating dtype; on CUDA also that convolutions and matmuls ran without TF32.

    The feature engine computes every entry under its float32 rule (:func:`advisor.models.engine.float32`:
    no autocast, no TF32), whatever the process's TF32 switches say, so the TF32 part is always "off";
    it is written as the former keys wrote it when both switches were off, so entries computed that way
    before keep being served (and ones computed with TF32 do not). ``bn-folded``: the passes fold BatchNorm into
    the convolutions (:data:`advisor.models.engine.FOLD_BN`) and this network has a pair to fold; an entry of
    the unfolded computation is never served for it, nor the reverse.
    """
    dtype = next((p.dtype for p in backbone.parameters() if p.is_floating_point()), torch.float32)
    text = str(dtype).replace("torch.", "")
    if device.type == "cuda":
        text += f",{TF32_OFF}"
    if engine.FOLD_BN and any(engine._foldable_pairs(b) for b in backbone.blocks):
        text += ",bn-folded"  # equal to an unfolded pass's values to float32 roundoff, not bit for bit
    return text


def _device(ctx) -> torch.device:
    """The device a context's frozen passes run on."""
    return torch.device(ctx.device) if ctx.device is not None else ctx.backbone.device


def _images_fingerprint(dataset) -> str:
    fn = getattr(dataset, "images_fingerprint", None)
    return fn() if fn is not None else dataset.fingerprint()
