"""CSV manifest: a column of image paths plus one or more label columns."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from advisor.data._base import FileDataset, check_usable
from advisor.errors import AdvisorError, one_line

PATH_COLUMNS = ("path", "image", "file", "filename")


def _read_rows(csv_path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except UnicodeDecodeError:
        raise AdvisorError(
            f"CSV manifest {csv_path} is not UTF-8 text", "save it as UTF-8 CSV"
        ) from None
    except csv.Error as exc:
        raise AdvisorError(
            f"cannot parse CSV manifest {csv_path}: {one_line(exc)}",
            "check its quoting and delimiters (comma-separated, header row first)",
        ) from None
    except OSError as exc:
        raise AdvisorError(
            f"cannot read CSV manifest {csv_path}: {exc.strerror or exc}",
            "check the path and its permissions",
        ) from None
    if not rows:
        raise AdvisorError(
            f"CSV manifest {csv_path} is empty",
            "write a header row (e.g. path,label) and one row per image",
        )
    header = [h.strip() for h in rows[0]]
    seen: set[str] = set()
    for h in header:
        if not h:
            raise AdvisorError(
                f"CSV manifest {csv_path} has an unnamed column",
                "give every column a name in the header row",
            )
        if h in seen:
            raise AdvisorError(
                f"column {h!r} appears twice in the header of {csv_path}",
                "give each column a unique name",
            )
        seen.add(h)
    return header, rows[1:]


def _refuse_repeats(paths: list[Path], csv_path: Path) -> None:
    """One file, one row: a file listed twice (under any spelling, a link or a hard link included) would
    be read twice and could land in both the training and the test split."""
    first: dict[tuple, int] = {}
    for r, p in enumerate(paths, start=2):
        st = p.stat()
        key = (st.st_dev, st.st_ino)
        if key in first:
            raise AdvisorError(
                f"rows {first[key]} and {r} of {csv_path} list the same image file {p}",
                "list each image once (a row per image, its labels in columns)",
            )
        first[key] = r


def load_manifest(
    csv_path: str | os.PathLike,
    *,
    label_columns: Sequence[str] | None = None,
    intermediate: str | None = None,
    path_column: str | None = None,
    name: str | None = None,
) -> FileDataset:
    """Load a CSV manifest.

    The path column is ``path_column`` if given, else the first of ``path``,
    ``image``, ``file``, ``filename`` present (case-insensitive). Relative paths
    are relative to the CSV's folder. Label columns default to every other
    column; each holds string labels (classes = sorted distinct non-empty values)
    and an empty cell is a missing label (-1). ``intermediate`` marks one label
    column as the intermediate label of ``x -> z -> y``. Items keep row order.
    """
    csv_path = Path(csv_path)
    name = str(csv_path) if name is None else name
    header, rows = _read_rows(csv_path)
    cols = ", ".join(header)

    if path_column is not None:
        if path_column not in header:
            raise AdvisorError(
                f"unknown path column {path_column!r} in {csv_path}",
                f"available columns: {cols}",
            )
        pcol = path_column
    else:
        lower = {h.lower(): h for h in header}
        pcol = next((lower[c] for c in PATH_COLUMNS if c in lower), None)
        if pcol is None:
            raise AdvisorError(
                f"no image path column in CSV manifest {csv_path} (columns: {cols})",
                "name the column of image paths path, image, file or filename",
            )

    if label_columns is None:
        tasks = [h for h in header if h != pcol]
    else:
        if isinstance(label_columns, str):
            label_columns = [label_columns]
        tasks = [str(c) for c in label_columns]
        for c in tasks:
            if c not in header:
                raise AdvisorError(
                    f"unknown label column {c!r} in {csv_path}",
                    f"available columns: {cols}",
                )
            if c == pcol:
                raise AdvisorError(
                    f"column {c!r} of {csv_path} holds the image paths, not labels",
                    f"pick label columns among: {', '.join(h for h in header if h != pcol) or '(none)'}",
                )
        if len(set(tasks)) != len(tasks):
            raise AdvisorError(
                f"a label column is listed twice: {', '.join(tasks)}",
                "list each label column once",
            )
    if intermediate is not None:
        if intermediate not in header or intermediate == pcol:
            raise AdvisorError(
                f"unknown intermediate label column {intermediate!r} in {csv_path}",
                f"available columns: {cols}",
            )
        if intermediate not in tasks:
            tasks.insert(0, intermediate)
    if not tasks:
        raise AdvisorError(
            f"CSV manifest {csv_path} has no label column (columns: {cols})",
            f"add a column of class labels next to {pcol!r}",
        )
    if intermediate is not None and len(tasks) < 2:
        raise AdvisorError(
            f"intermediate label {intermediate!r} is the only label column of {csv_path}",
            "add a final label column besides the intermediate one",
        )
    if not rows:
        raise AdvisorError(
            f"no images in CSV manifest {csv_path} (it has a header but no rows)",
            "add one row per image",
        )

    width = len(header)
    pi = header.index(pcol)
    ti = [header.index(t) for t in tasks]
    base = csv_path.parent
    paths: list[Path] = []
    cells: list[list[str]] = [[] for _ in tasks]
    for r, row in enumerate(rows, start=2):
        if len(row) > width and any(c.strip() for c in row[width:]):
            raise AdvisorError(
                f"row {r} of {csv_path} has {len(row)} cells but the header has {width}",
                "quote cells that contain commas, or fix the row",
            )
        row = row + [""] * (width - len(row))
        p = row[pi].strip()
        if not p:
            raise AdvisorError(
                f"row {r} of {csv_path} has an empty {pcol!r} cell",
                "fill in the image path or remove the row",
            )
        if not p.isprintable():
            raise AdvisorError(
                f"the {pcol!r} cell of row {r} of {csv_path} holds a control character: {p!r}",
                "write plain file paths",
            )
        path = Path(os.path.expanduser(p))
        paths.append(path if path.is_absolute() else base / path)
        for j, c in enumerate(ti):
            cells[j].append(row[c].strip())

    missing = [p for p in paths if not p.exists()]
    if missing:
        raise AdvisorError(
            f"{len(missing)} of {len(paths)} image files listed in {csv_path} do not exist, "
            f"e.g. {missing[0]}",
            "fix the paths (relative paths are relative to the CSV's folder)",
        )
    odd = [p for p in paths if not p.is_file()]  # a folder, a FIFO, a device: never read
    if odd:
        what = "a folder" if odd[0].is_dir() else "not a regular file"
        raise AdvisorError(
            f"{len(odd)} of {len(paths)} paths listed in {csv_path} are not image files, e.g. {odd[0]} is {what}",
            "list one image file per row",
        )
    _refuse_repeats(paths, csv_path)

    classes: dict[str, list[str]] = {}
    labels = np.full((len(paths), len(tasks)), -1, dtype=np.int64)
    for j, t in enumerate(tasks):
        values = sorted({v for v in cells[j] if v})
        if not values:
            raise AdvisorError(
                f"label column {t!r} of {csv_path} is empty",
                "fill in its labels or leave it out with label_columns",
            )
        index = {v: k for k, v in enumerate(values)}
        classes[t] = values
        labels[:, j] = [index[v] if v else -1 for v in cells[j]]

    ds = FileDataset(name, paths, labels, tasks, classes, intermediate)
    return check_usable(ds, f"label column {ds.primary_task!r} of {csv_path}")
