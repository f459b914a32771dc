"""advisor: measure a target dataset against a pretrained network, recommend a
transfer-learning strategy with its evidence, then search it.

Heavy imports (torch) happen on first use, so ``advisor --help`` stays fast.
"""

from __future__ import annotations

from advisor.offline import apply_defaults as _offline_defaults

_offline_defaults()  # before any submodule imports MLflow: no telemetry, no downloads (advisor/offline.py)

__version__ = "0.1.0"

__all__ = ["analyze", "Analysis", "AdvisorError", "__version__"]


def __getattr__(name):
    if name in ("analyze", "Analysis"):
        from advisor import api

        return getattr(api, name)
    if name == "AdvisorError":
        from advisor.errors import AdvisorError

        return AdvisorError
    raise AttributeError(f"module 'advisor' has no attribute {name!r}")
