"""Sizes in bytes for people: ``"20G"``, ``"500M"`` or ``"1.5GiB"`` read, ``"1.5 MiB"`` written."""

from __future__ import annotations

import re

from advisor.errors import AdvisorError

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text: str, name: str = "size") -> int:
    """``"20G"``, ``"500M"``, ``"1.5GiB"``, ``"123456"`` -> bytes (K, M, G, T are powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:I?B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise AdvisorError(f"bad {name} {text!r}", "use a size such as 20G, 500M or a plain number of bytes")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def format_size(n: float) -> str:
    """Bytes for people: ``"512 B"``, ``"1.5 MiB"``, ``"20.0 GiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""  # pragma: no cover
