"""Image folder: one sub-folder per class (like torchvision's ImageFolder)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from advisor.data._base import FileDataset, check_usable
from advisor.errors import AdvisorError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_EXT_LIST = "/".join(e[1:] for e in IMAGE_EXTENSIONS)


def is_image_file(name: str) -> bool:
    """True for a non-hidden file name with an image extension (case-insensitive)."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _images_under(folder: Path) -> list[Path]:
    """Image files anywhere under ``folder``, sorted by their path relative to it."""
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = Path(dirpath).relative_to(folder)
        for fn in filenames:
            if is_image_file(fn):
                found.append(((rel_dir / fn).as_posix(), Path(dirpath) / fn))
    found.sort(key=lambda item: item[0])
    return [p for _, p in found]


def load_folder(root: str | os.PathLike, name: str | None = None) -> FileDataset:
    """Load an image folder whose sub-folders are the classes (sorted by name).

    Images are files with extension jpg/jpeg/png/bmp/gif/webp/tif/tiff (any case)
    anywhere inside a class sub-folder; other and hidden files are ignored, and so
    are sub-folders that hold no images. Items are ordered by class, then by path.
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
    for cls in subdirs:
        files = _images_under(root / cls)
        if files:
            per_class.append((cls, files))

    if not per_class:
        if loose:
            raise AdvisorError(
                f"no class sub-folders in {root} (found {len(loose)} images directly in it)",
                "put each class's images in its own sub-folder, e.g. "
                f"{root / 'cat'}/ and {root / 'dog'}/",
            )
        if subdirs:
            raise AdvisorError(
                f"the class sub-folders of {root} ({_preview(subdirs)}) contain no images",
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
    return check_usable(ds, str(root))


def _preview(names: list[str], k: int = 5) -> str:
    shown = ", ".join(names[:k])
    return shown + (f", ... ({len(names)} in all)" if len(names) > k else "")
