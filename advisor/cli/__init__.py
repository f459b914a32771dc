"""The command line: a thin layer over the Python API, one module per command.

Each command module declares ``HELP`` (its line under ``advisor --help``), ``DESCRIPTION``, ``PARENTS``
(the shared option groups of ``_common.shared_options`` it takes) and ``options(parser)`` (its own
options), and has ``run(args)``, which calls one function of the public API and prints its result;
``_common`` holds what they share (the parser class, the shared options, the progress bar, the one-line
usage error).

Bad input prints one line ``advisor: error: ...`` to stderr and exits with status 2.
"""

from __future__ import annotations

import sys

from advisor import __version__
from advisor.cli import _common

# the commands in the order ``advisor --help`` lists them
COMMANDS = ("analyze", "reference", "train", "search", "predict", "export", "report", "cache")


def _build(full: tuple[str, ...] = COMMANDS):
    """The parser; the commands in ``full`` with all their options, the others by name and help line
    only (enough for ``advisor --help`` and for refusing an unknown command, without importing what
    the options read their choices from)."""
    import importlib

    p = _common.Parser(prog="advisor", description="Transfer-learning strategy advisor.")
    p.add_argument("--version", action="version", version=f"advisor {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_common.Parser)
    sub.required = True
    shared = _common.shared_options()
    for name in COMMANDS:
        command = importlib.import_module(f"advisor.cli.{name}")
        if name not in full:
            sub.add_parser(name, help=command.HELP)
            continue
        parser = sub.add_parser(name, help=command.HELP, description=command.DESCRIPTION,
                                parents=[getattr(shared, parent) for parent in command.PARENTS])
        if hasattr(command, "run"):  # cache has an action per sub-command instead
            parser.set_defaults(func=command.run)
        command.options(parser)
    return p


def _command(argv: list[str]) -> tuple[str, ...]:
    """The command ``argv`` runs (its first word that is not an option), or none."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return (word,) if word in COMMANDS else ()


def _warnings_as_lines() -> None:
    """Print an AdvisorWarning as one line ``advisor: warning: ...``; other warnings as before."""
    import warnings

    from advisor.errors import AdvisorWarning

    shown = warnings.showwarning
    if getattr(shown, "_advisor", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, AdvisorWarning):
            sys.stderr.write(f"advisor: warning: {' '.join(str(message).split())}\n")
        else:
            shown(message, category, filename, lineno, file, line)

    show._advisor = True
    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = _build(_command(argv)).parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already reported in one line
        return int(e.code or 0)
    from advisor.errors import AdvisorError

    _warnings_as_lines()
    try:
        return args.func(args)
    except AdvisorError as e:
        sys.stderr.write(f"advisor: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("advisor: interrupted\n")
        return 130
    except BrokenPipeError:  # the reader went away (advisor ... | head): stop quietly, as other tools do
        _stdout_to_devnull()
        return 141
    except OSError as e:  # the environment failed under us (stdout on a full disk, a vanished folder)
        _stdout_to_devnull()
        where = f" {e.filename}" if getattr(e, "filename", None) else " standard output"
        sys.stderr.write(f"advisor: error: cannot write{where} ({e.strerror or e}); "
                         "free some space or send the output elsewhere\n")
        return 2


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null so the interpreter's last flush at exit cannot fail a second time."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
