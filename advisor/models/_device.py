"""Turning a device request ("cpu", "cuda", "cuda:1", "auto") into a usable ``torch.device``."""

from __future__ import annotations

import torch

from advisor.errors import AdvisorError


def resolve_device(device: str | torch.device | None = "cpu") -> torch.device:
    """``"auto"`` picks cuda when available; asking for cuda without it is an error."""
    if device is None:
        device = "cpu"
    text = str(device).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise AdvisorError(f"unknown device '{device}'", "use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise AdvisorError(
                f"device '{device}' requested but CUDA is not available",
                "use --device cpu or --device auto",
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise AdvisorError(
                f"device '{device}' requested but only {torch.cuda.device_count()} CUDA device(s) exist",
                "use --device cuda:0 or --device auto",
            )
        return dev
    raise AdvisorError(f"unsupported device '{device}'", "use cpu, cuda, cuda:N or auto")
