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


def one_line(text: object, limit: int | None = None) -> str:
    """``text`` on one line: any whitespace (newlines included) collapsed to single spaces; longer than ``limit``
    characters, cut to ``limit`` ending in ``...`` (None: never cut)."""
    s = " ".join(str(text).split())
    return s if limit is None or len(s) <= limit else s[: limit - 3] + "..."


def warn(message: str) -> None:
    """Issue an :class:`AdvisorWarning` (one line: whitespace is collapsed)."""
    import warnings

    warnings.warn(one_line(message), AdvisorWarning, stacklevel=2)
