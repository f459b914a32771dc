"""Turning a device request ("cpu", "cuda", "cuda:1", "auto") into a usable ``torch.device``.

The spelling (:data:`DEVICE_HELP`, :func:`check_device_text`) needs no torch, so the command line's
``--device`` reads it without loading torch."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from advisor.errors import AdvisorError

if TYPE_CHECKING:
    import torch

DEVICE_HELP = "cpu, cuda, cuda:N or auto"
_SPELLING = re.compile(r"auto|(?:cpu|cuda)(?::\d+)?")


def check_device_text(device: str) -> str:
    """``device`` when it is a device :func:`resolve_device` knows how to read (whether it is present is
    checked there); an AdvisorError otherwise."""
    if not _SPELLING.fullmatch(str(device).strip().lower()):
        raise AdvisorError(f"unknown device '{device}'", f"use {DEVICE_HELP}")
    return device


def resolve_device(device: str | torch.device | None = "cpu") -> torch.device:
    """``"auto"`` picks cuda when available; asking for cuda without it is an error."""
    import torch

    if device is None:
        device = "cpu"
    text = str(device).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise AdvisorError(f"unknown device '{device}'", f"use {DEVICE_HELP}") from None
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
    raise AdvisorError(f"unsupported device '{device}'", f"use {DEVICE_HELP}")
