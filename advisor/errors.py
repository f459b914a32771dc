"""The one exception type the API raises for bad input.

Every user-facing problem (missing path, unknown model, missing weights, ...)
is an :class:`AdvisorError` whose message is one line naming the problem and
the fix. The CLI prints that line and exits with status 2; the API lets it
propagate so callers can catch it.
"""

from __future__ import annotations


class AdvisorError(ValueError):
    """Bad input or environment: one line that names the problem and the fix."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem}; {fix}")
