"""Keeping MLflow quiet while advisor calls it: its loggers and its download progress bars, for one block only.

advisor prints one line per problem and its own progress; MLflow's INFO lines and tqdm bars on stderr would
interleave with them. Both helpers put everything back when the block ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@contextlib.contextmanager
def quiet_logger(logger_name: str, level: int = logging.ERROR) -> Iterator[None]:
    """The logger ``logger_name`` at ``level`` inside the block only."""
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


@contextlib.contextmanager
def quiet_downloads() -> Iterator[None]:
    """No MLflow artifact download progress bars inside the block (``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``
    is ``false`` there unless the user set it), the environment as it was afterwards."""
    before = os.environ.get(_PROGRESS_BAR)
    os.environ.setdefault(_PROGRESS_BAR, "false")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_PROGRESS_BAR, None)
        else:
            os.environ[_PROGRESS_BAR] = before
