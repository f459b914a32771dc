"""The export formats ``advisor export`` writes: one entry of :data:`FORMATS` and one file each.

A format's file has two functions: ``write(model, x, buf)`` writes the network (traced on the
preprocessed batch ``x``) into the binary stream ``buf``, with input ``image`` ``[N, 3, S, S]`` (any N)
and output ``logits``; ``run(source, arr)`` gives the logits of a written file (a path, or its bytes) on
the float32 array ``arr``. :mod:`advisor.deploy.exporting` does the rest for every format (the fixed
input size, the parity check against PyTorch, the preprocessing JSON, the atomic write). Adding a
format is one file like ``_torchscript.py`` and one entry below; the command line's ``--format``
choices are read from here.

Importing this module is cheap: a format's file (and torch, ONNX) is imported when it is used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from advisor.errors import AdvisorError


@dataclass(frozen=True)
class ExportFormat:
    name: str  # the --format value
    module: str  # the file with write(model, x, buf) and run(source, arr)
    title: str  # the name in messages
    needs: tuple[str, ...] = ()  # packages it imports that advisor does not require
    install: str = ""  # how to install them

    def check(self) -> None:
        """One line naming what to install when the format's packages are missing."""
        import importlib.util

        missing = [m for m in self.needs if importlib.util.find_spec(m) is None]
        if missing:
            raise AdvisorError(f"{self.title} export needs {' and '.join(missing)}, not installed", self.install)

    def write(self, model, x, buf) -> None:
        importlib.import_module(self.module).write(model, x, buf)

    def run(self, source: Any, arr) -> Any:
        return importlib.import_module(self.module).run(source, arr)


#: name -> format, in the order the command line lists them
FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("onnx", "advisor.deploy.formats._onnx", "ONNX", ("onnx", "onnxruntime"),
                 "pip install 'advisor[export]'"),
    ExportFormat("torchscript", "advisor.deploy.formats._torchscript", "TorchScript"),
)}


def get(name: str) -> ExportFormat:
    """The format called ``name``; an unknown one is one line listing them."""
    if name not in FORMATS:
        raise AdvisorError(f"unknown export format {name!r}", f"use {' or '.join(FORMATS)}")
    return FORMATS[name]
