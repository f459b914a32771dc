"""Pause points for crash tests: stop a process at a named stage so a test can ``kill -9`` it there.

With ``ADVISOR_PAUSE_AT=STAGE`` (or ``STAGE:N``) in the environment, :func:`pause_point` called
with that stage (and that number) writes the process id to ``ADVISOR_PAUSE_FILE`` (atomically)
and sleeps until the process is killed. Without the variable it returns at once. The stages:

* ``analyze``: while ``advisor search`` runs analyze;
* ``trial:N``: trial ``N`` after it reported its first epoch;
* ``log_trial:N``: the MLflow run of trial ``N`` exists but holds no metrics and is not ended yet;
* ``cache``: a trial is filling the activation cache (some rows written, not all).
"""

from __future__ import annotations

import os
import time

PAUSE_AT = "ADVISOR_PAUSE_AT"
PAUSE_FILE = "ADVISOR_PAUSE_FILE"


def pause_point(stage: str, number: int | None = None) -> None:
    """Sleep forever here when ``ADVISOR_PAUSE_AT`` names ``stage`` (and ``number``, if it gives one)."""
    want = os.environ.get(PAUSE_AT)
    if not want:
        return
    name, _, count = want.partition(":")
    if name != stage or (count and (number is None or str(number) != count.strip())):
        return
    path = os.environ.get(PAUSE_FILE)
    if path:
        from advisor.outputs import write_text

        write_text(path, f"{os.getpid()}\n", PAUSE_FILE)
    while True:
        time.sleep(1.0)
