"""A package that is also its verb: ``advisor.train(...)`` calls ``advisor.train.train(...)``.

``advisor.train``, ``advisor.search`` and ``advisor.report`` are packages, and once imported they are the
attributes of ``advisor`` by those names: a lazy ``advisor.__getattr__`` cannot hand out the functions
instead. Calling the package calls its verb (looked up at each call, so a patched verb counts), and
everything else about it stays a module."""

from __future__ import annotations

import sys
import types


class _VerbModule(types.ModuleType):
    _verb: str

    def __call__(self, *args, **kwargs):
        return getattr(self, self._verb)(*args, **kwargs)


def callable_as(module_name: str, verb: str) -> None:
    """Make the module ``module_name`` callable as its function ``verb``."""
    module = sys.modules[module_name]
    module.__class__ = _VerbModule
    module._verb = verb
