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


class AdvisorWarning(UserWarning):
    """Something a user should know that does not stop the command (a dropped class, a link left out).

    Raised with :func:`warn`; the CLI prints it as one line ``advisor: warning: ...``, an API caller
    sees an ordinary Python warning it may filter or turn into an error.
    """


def warn(message: str) -> None:
    """Issue an :class:`AdvisorWarning` (one line: whitespace is collapsed)."""
    import warnings

    warnings.warn(" ".join(str(message).split()), AdvisorWarning, stacklevel=2)
