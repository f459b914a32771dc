"""advisor: measure a target dataset against a pretrained network, recommend a
transfer-learning strategy with its evidence, then search it.

The verbs, one per command, with their result types::

    import advisor
    analysis = advisor.analyze("digits", "mobilenet_v2")                  # -> advisor.Analysis
    run = advisor.train("digits", "mobilenet_v2", "last_k", params={"k": 2})  # -> advisor.TrainResult
    found = advisor.search("digits", "mobilenet_v2", trials=10)          # -> advisor.SearchResult
    page = advisor.report(["digits-mobilenet_v2-auto"])                  # -> advisor.ReportResult
    pred = advisor.predict("model.pt", "digits")                         # -> advisor.Prediction
    out = advisor.export("model.pt", "onnx", "model.onnx")               # -> advisor.Exported

``advisor.train``, ``advisor.search`` and ``advisor.report`` are also the packages behind them (calling one
calls its verb: advisor/_verb.py). Heavy imports (torch) happen on first use, so ``import advisor`` and
``advisor --help`` stay fast.
"""

from __future__ import annotations

from advisor.offline import apply_defaults as _offline_defaults

_offline_defaults()  # before any submodule imports MLflow: no telemetry, no downloads (advisor/offline.py)

__version__ = "0.1.0"

# name -> (module, attribute); attribute None: the module itself, a package callable as its verb
_EXPORTS = {
    "analyze": ("advisor.api", "analyze"), "Analysis": ("advisor.api", "Analysis"),
    "train": ("advisor.train", None), "TrainResult": ("advisor.train", "TrainResult"),
    "search": ("advisor.search", None), "SearchConfig": ("advisor.search", "SearchConfig"),
    "SearchResult": ("advisor.search", "SearchResult"),
    "report": ("advisor.report", None), "ReportResult": ("advisor.report", "ReportResult"),
    "predict": ("advisor.deploy.predict", "predict"), "Prediction": ("advisor.deploy.predict", "Prediction"),
    "export": ("advisor.deploy.exporting", "export"), "Exported": ("advisor.deploy.exporting", "Exported"),
    "AdvisorError": ("advisor.errors", "AdvisorError"),
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        module, attribute = _EXPORTS[name]
        loaded = importlib.import_module(module)
        return loaded if attribute is None else getattr(loaded, attribute)
    raise AttributeError(f"module 'advisor' has no attribute {name!r}")
