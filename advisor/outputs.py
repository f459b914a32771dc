"""Every file a command writes: checked before any work starts, then written atomically, all or none.

The rules, the same for every command and every output flag:

* **Checked first.** :func:`check_file` / :func:`check_folder` run before any data, model or store
  is touched: a path that is a folder (or, for a folder output, a file), a folder path that runs
  through a file, a folder that cannot be written, two flags naming one file: one
  :class:`~advisor.errors.AdvisorError` line, and nothing is created.
* **Missing folders are created**, like ``mkdir -p``, but only when the command writes: a refused
  or failed command leaves no new folder behind (the folders it made are removed again).
* **Atomic.** Every output is rendered in memory first, so its size is known and a serialiser's own
  error (``torch.save``'s ``RuntimeError`` wrapping a write failure) can never leave a file. Each
  is then written to a temporary file in its own folder (``.NAME.XXXX.tmp``), flushed and
  ``fsync``-ed, and renamed over its path.
* **All or none.** :func:`write_outputs` writes every temporary file before it renames any; a
  failure anywhere (``OSError``, ``KeyboardInterrupt``, anything) removes every temporary file and
  puts back every file a rename had already replaced, so nothing that existed is lost.
* **A full disk is one line** naming the path, the bytes it needed and the bytes free on that disk
  (``ENOSPC``, ``EDQUOT``, and ``EFBIG`` from a file-size limit such as ``ulimit -f``).
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from advisor.errors import AdvisorError

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class Output:
    """One file to write: ``data`` (bytes, or text written as UTF-8) to ``path``.

    ``flag`` is the option that named the path (``--json``), used in the one-line fix.
    """

    __slots__ = ("path", "data", "flag")

    def __init__(self, path: str | os.PathLike, data: bytes | str, flag: str | None = None):
        self.path = _target(path)
        self.data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        self.flag = flag


def _target(path: str | os.PathLike) -> Path:
    """Where ``path`` really points: ``~`` expanded, made absolute, a symbolic link followed (so the
    rename replaces the file the link names, not the link)."""
    p = Path(os.path.expanduser(os.fspath(path)))
    return Path(os.path.realpath(p)) if p.is_symlink() else Path(os.path.abspath(p))


def _nearest_existing(folder: Path) -> Path:
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def _check_parent(flag: str, shown: str, folder: Path) -> None:
    """The folder that will hold ``shown``: it, or its nearest existing ancestor, must be a writable folder."""
    have = _nearest_existing(folder)
    if not have.is_dir():
        raise AdvisorError(f"{flag} {shown}: {have} is a file, not a folder", f"pass a {flag} path in a folder")
    if not os.access(have, os.W_OK | os.X_OK):
        where = f"folder {have}" if have == folder else f"folder {folder} cannot be created: {have}"
        raise AdvisorError(f"{flag} {shown}: {where} cannot be written", f"pass a {flag} path in a writable folder")


def check_file(flag: str, path: str | os.PathLike | None) -> Path | None:
    """Refuse, before any work, a file output that cannot be written; returns the target path.

    Refused: an empty path, a folder, something that is not a regular file (a device, a pipe), a
    folder path that runs through a file, a folder that cannot be written. A missing folder is fine
    (it is created when the command writes).
    """
    if path is None:
        return None
    shown = os.fspath(path)
    if not shown.strip():
        raise AdvisorError(f"empty {flag} path", f"pass a file path to {flag}")
    target = _target(shown)
    if target.is_dir():
        raise AdvisorError(f"{flag} {shown} is a folder", f"pass a file path, e.g. {Path(shown) / 'out'}")
    if os.path.lexists(target) and not target.is_file():
        raise AdvisorError(f"{flag} {shown} is not a regular file", f"pass a file path to {flag}")
    _check_parent(flag, shown, target.parent)
    return target


def check_folder(flag: str, path: str | os.PathLike) -> Path:
    """Refuse, before any work, a folder output that cannot be written (a file, a path through a file, an
    unwritable place); a missing folder is fine. Returns the absolute path."""
    shown = os.fspath(path)
    if not shown.strip():
        raise AdvisorError(f"empty {flag} path", f"pass a folder to {flag}")
    target = Path(os.path.abspath(os.path.expanduser(shown)))
    if os.path.lexists(target) and not target.is_dir():
        raise AdvisorError(f"{flag} {shown} is a file, not a folder", f"pass a folder to {flag}")
    if target.is_dir():
        if not os.access(target, os.W_OK | os.X_OK):
            raise AdvisorError(f"{flag} {shown}: folder {target} cannot be written", f"pass a writable {flag} folder")
    else:
        _check_parent(flag, shown, target)
    return target


def check_outputs(*named: tuple[str, str | os.PathLike | None]) -> list[Path | None]:
    """:func:`check_file` for each ``(flag, path)`` (``None`` paths skipped), and no two naming one file."""
    out = [check_file(flag, path) for flag, path in named]
    seen: dict[Path, str] = {}
    for (flag, _), target in zip(named, out):
        if target is None:
            continue
        if target in seen:
            raise AdvisorError(f"{seen[target]} and {flag} both name {target}", "give each output its own file")
        seen[target] = flag
    return out


def make_folders(folder: Path, flag: str | None = None) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created, outermost first (to remove them again)."""
    missing = []
    probe = folder
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    made: list[Path] = []
    try:
        for f in reversed(missing):
            f.mkdir()
            made.append(f)
    except OSError as e:
        remove_folders(made)
        raise _write_error(e, folder, 0, flag) from None
    return made


def remove_folders(made: list[Path]) -> None:
    """Remove the folders :func:`make_folders` created, innermost first, where they are still empty."""
    for f in reversed(made):
        try:
            f.rmdir()
        except OSError:
            pass


def _a_path(flag: str | None) -> str:
    return f"a {flag} path" if flag else "a path"


def _write_error(e: BaseException, path: Path, size: int, flag: str | None) -> AdvisorError:
    """The one line for an ``OSError`` while writing ``size`` bytes to ``path``."""
    code = getattr(e, "errno", None)
    if code in _NO_SPACE or code == errno.EFBIG:
        from advisor.context.cache import format_size as format_bytes

        have = _nearest_existing(path.parent)
        try:
            free = format_bytes(shutil.disk_usage(have).free)
        except OSError:
            free = "unknown"
        need = format_bytes(size)
        if code == errno.EFBIG:
            return AdvisorError(f"cannot write {path}: it needs {need}, more than the file-size limit allows "
                                f"({free} free on the disk)", "raise the limit (ulimit -f)")
        return AdvisorError(f"no space left to write {path}: it needs {need}, {free} free on the disk",
                            f"free some space, or pass {_a_path(flag)} on another disk")
    why = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return AdvisorError(f"cannot write {path} ({why})", f"pass {_a_path(flag)} in a writable folder")


def _write_temp(out: Output) -> Path:
    """``out.data`` in a new temporary file beside ``out.path``, flushed to disk; the file is removed
    again if anything fails."""
    fd, name = tempfile.mkstemp(prefix=f".{out.path.name}.", suffix=".tmp", dir=out.path.parent)
    tmp = Path(name)
    try:
        try:
            view = memoryview(out.data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            try:
                os.fchmod(fd, _mode_for(out.path))
            except OSError:
                pass  # a file system without Unix modes: its own default stands
        finally:
            os.close(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _mode_for(path: Path) -> int:
    """The permission bits the finished file gets: an existing file's own, else 0o666 less the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the renames themselves are done
    finally:
        os.close(fd)


def write_outputs(*outputs: Output) -> list[Path]:
    """Write every output, all or none (see the module docstring); returns their paths.

    Raises :class:`AdvisorError` (one line) when a file cannot be written; then no output path has
    changed, no temporary file is left and no folder it created remains.
    """
    paths = [o.path for o in outputs]
    if len(set(paths)) != len(paths):
        raise AdvisorError("two outputs name the same file", "give each output its own file")
    made: list[Path] = []
    temps: list[Path | None] = [None] * len(outputs)
    backups: list[Path | None] = [None] * len(outputs)
    existed = [o.path.is_file() for o in outputs]
    done = 0  # renames done
    current: Output | None = None
    try:
        for o in outputs:
            current = o
            made += make_folders(o.path.parent, o.flag)
        for i, o in enumerate(outputs):
            current = o
            temps[i] = _write_temp(o)
        for i, o in enumerate(outputs):
            current = o
            if len(outputs) > 1 and existed[i]:
                backups[i] = _backup(o.path)
            os.replace(temps[i], o.path)
            temps[i] = None
            done += 1
    except BaseException as e:
        for i in reversed(range(done)):  # put back what the renames already replaced
            _restore(outputs[i].path, backups[i], existed[i])
            backups[i] = None
        for t in temps + backups:
            if t is not None:
                t.unlink(missing_ok=True)
        remove_folders(made)
        if isinstance(e, OSError):
            o = current or outputs[0]
            raise _write_error(e, o.path, len(o.data), o.flag) from None
        raise
    for b in backups:
        if b is not None:
            b.unlink(missing_ok=True)
    for folder in dict.fromkeys(p.parent for p in paths):
        _fsync_folder(folder)
    return paths


def _backup(path: Path) -> Path | None:
    """A hard link to the existing ``path`` (so a later failure can put it back), or None where the file
    system has no hard links."""
    name = path.with_name(f".{path.name}.{secrets.token_hex(4)}.old.tmp")
    try:
        os.link(path, name)
    except OSError:
        return None
    return name


def _restore(path: Path, backup: Path | None, existed: bool) -> None:
    """Undo one rename: the old file back from its hard link, or no file where there was none."""
    try:
        if backup is not None:
            os.replace(backup, path)
        elif not existed:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def write_text(path: str | os.PathLike, text: str, flag: str | None = None) -> Path:
    """One text file, atomically (see :func:`write_outputs`)."""
    return write_outputs(Output(path, text, flag))[0]
