"""Image folder: one sub-folder per class (like torchvision's ImageFolder).

Links: a symbolic link (to a file or a folder) is followed only where it leads to a place inside the
dataset folder; a link that leads out of it is left out (with one warning line), and a folder link that
leads back into a folder already walked (a loop) is not walked again. Only regular files are read (a
FIFO or a device named ``x.png`` is not), and every file is read once: one reached by several paths
(a link, a hard link) counts once, under its first path in sorted order; the same file in two class
folders is refused.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from advisor.data._base import FileDataset, check_usable, preview_names
from advisor.errors import AdvisorError, warn

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_EXT_LIST = "/".join(e[1:] for e in IMAGE_EXTENSIONS)


def is_image_file(name: str) -> bool:
    """True for a non-hidden file name with an image extension (case-insensitive)."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


@dataclass
class Scan:
    """What a walk of a folder found: image files with their identity, and the links it left out."""

    files: list[tuple[Path, tuple]] = field(default_factory=list)  # (path, file identity), sorted by path
    outside: list[tuple[Path, str]] = field(default_factory=list)  # (link, where it leads) out of the root

    @property
    def paths(self) -> list[Path]:
        return [p for p, _ in self.files]


def _inside(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def scan_images(folder: str | os.PathLike, root: str | os.PathLike | None = None) -> Scan:
    """Image files anywhere under ``folder``, sorted by their path relative to it (see the module's
    rules on links); ``root`` (default ``folder``) is the dataset folder no link may lead out of."""
    folder = Path(folder)
    root_real = os.path.realpath(root if root is not None else folder)
    scan = Scan()
    start = os.path.realpath(folder)
    if not _inside(start, root_real):
        scan.outside.append((folder, start))
        return scan
    visited = {start}
    found: dict[tuple, tuple[PurePosixPath, Path]] = {}
    stack = [(folder, PurePosixPath())]
    while stack:
        where, rel = stack.pop()
        try:
            entries = sorted(os.scandir(where), key=lambda e: e.name)
        except OSError as exc:
            raise AdvisorError(f"cannot list folder {where}: {exc.strerror or exc}",
                               "check its permissions, or move it out of the dataset folder") from None
        for e in entries:
            if e.name.startswith("."):
                continue
            path = Path(e.path)
            if e.is_symlink():
                real = os.path.realpath(path)
                if not _inside(real, root_real):
                    scan.outside.append((path, real))
                    continue
            try:
                st = os.stat(path)
            except OSError:  # a dangling link or one that loops on itself: reading it reports it, if an image
                if e.is_symlink() and is_image_file(e.name) and os.path.lexists(path):
                    found.setdefault(("missing", str(path)), (rel / e.name, path))
                continue
            if stat.S_ISDIR(st.st_mode):
                real = os.path.realpath(path)
                if real not in visited:  # not a loop, not a folder this walk has been through
                    visited.add(real)
                    stack.append((path, rel / e.name))
            elif stat.S_ISREG(st.st_mode) and is_image_file(e.name):
                key = (st.st_dev, st.st_ino)
                if key not in found or (rel / e.name).as_posix() < found[key][0].as_posix():
                    found[key] = (rel / e.name, path)
    scan.files = sorted(((path, key) for key, (_, path) in found.items()),
                        key=lambda item: found[item[1]][0].as_posix())
    return scan


def _images_under(folder: Path) -> list[Path]:
    """Image files anywhere under ``folder``, sorted by their path relative to it; one warning line for
    links left out."""
    scan = scan_images(folder)
    warn_outside(scan.outside, folder)
    return scan.paths


def warn_outside(outside: list[tuple[Path, str]], root: Path) -> None:
    if outside:
        link, real = outside[0]
        warn(f"left out {_links(len(outside))} leading out of {root} (e.g. {link} -> {real}); "
             "copy the files in, or pass the folder they lead into")


def _links(n: int) -> str:
    return "1 link" if n == 1 else f"{n} links"


def load_folder(root: str | os.PathLike, name: str | None = None) -> FileDataset:
    """Load an image folder whose sub-folders are the classes (sorted by name).

    Images are files with extension jpg/jpeg/png/bmp/gif/webp/tif/tiff (any case)
    anywhere inside a class sub-folder; other and hidden files are ignored, and so
    are sub-folders that hold no images. Items are ordered by class, then by path.
    Links follow the module's rules: none out of the folder, none twice.
    """
    root = Path(root)
    name = str(root) if name is None else name
    try:
        subdirs = sorted(
            e.name for e in os.scandir(root) if not e.name.startswith(".") and e.is_dir()
        )
        loose = [e.name for e in os.scandir(root) if e.is_file() and is_image_file(e.name)]
    except OSError as exc:
        raise AdvisorError(
            f"cannot list dataset folder {root}: {exc.strerror or exc}",
            "check the path and its permissions",
        ) from None

    per_class: list[tuple[str, list[Path]]] = []
    outside: list[tuple[Path, str]] = []
    owner: dict[tuple, tuple[str, Path]] = {}  # file identity -> (class, path): one file, one class
    for cls in subdirs:
        scan = scan_images(root / cls, root)
        outside += scan.outside
        for path, key in scan.files:
            if key in owner:
                other, first = owner[key]
                raise AdvisorError(
                    f"{first} (class {other!r}) and {path} (class {cls!r}) are the same file",
                    "keep each image in one class folder (a link or a hard link is the same file)",
                )
            owner[key] = (cls, path)
        if scan.files:
            per_class.append((cls, scan.paths))

    if not per_class:
        left_out = f"; {_links(len(outside))} leading out of it left out" if outside else ""
        if loose:
            raise AdvisorError(
                f"no class sub-folders in {root} (found {len(loose)} images directly in it{left_out})",
                "put each class's images in its own sub-folder, e.g. "
                f"{root / 'cat'}/ and {root / 'dog'}/",
            )
        if subdirs:
            raise AdvisorError(
                f"the class sub-folders of {root} ({preview_names(subdirs)}) contain no images{left_out}",
                f"put image files ({_EXT_LIST}) inside the class sub-folders",
            )
        raise AdvisorError(
            f"no images found in {root} (looked for {_EXT_LIST} files in class sub-folders)",
            "pass a folder with one sub-folder of images per class",
        )

    classes = [cls for cls, _ in per_class]
    paths: list[Path] = []
    labels: list[np.ndarray] = []
    for k, (_, files) in enumerate(per_class):
        paths.extend(files)
        labels.append(np.full(len(files), k, dtype=np.int64))
    ds = FileDataset(
        name,
        paths,
        np.concatenate(labels)[:, None],
        tasks=["label"],
        classes={"label": classes},
    )
    ds = check_usable(ds, str(root))
    warn_outside(outside, root)
    return ds
