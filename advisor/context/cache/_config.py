"""Where the activation cache lives and how big it may grow: ``$ADVISOR_CACHE`` and ``$ADVISOR_CACHE_MAX``."""

from __future__ import annotations

import os
from pathlib import Path

from advisor.context.cache._size import parse_size

#: The folder cap when ``$ADVISOR_CACHE_MAX`` is not set.
DEFAULT_CACHE_MAX = 20 * 2**30


def default_cache_dir() -> Path:
    """``$ADVISOR_CACHE`` if set, else ``~/.cache/advisor/activations``."""
    env = os.environ.get("ADVISOR_CACHE", "").strip()
    if env:
        return Path(os.path.expanduser(env))
    return Path.home() / ".cache" / "advisor" / "activations"


def default_cache_cap() -> int:
    """``$ADVISOR_CACHE_MAX`` in bytes if set, else :data:`DEFAULT_CACHE_MAX` (20 GiB)."""
    env = os.environ.get("ADVISOR_CACHE_MAX", "").strip()
    return parse_size(env, "ADVISOR_CACHE_MAX") if env else DEFAULT_CACHE_MAX
