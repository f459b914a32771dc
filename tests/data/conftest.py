"""Shared fixtures for the advisor.data tests: tiny datasets written into tmp_path."""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advisor.errors import AdvisorError


def _pixels(seed: int, size=(12, 10), mode: str = "L") -> np.ndarray:
    """Deterministic random pixels [H, W] (L) or [H, W, 3] (RGB); size is (W, H)."""
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


@pytest.fixture
def pixels():
    """pixels(seed, size=(W, H), mode="L"|"RGB") -> deterministic uint8 array."""
    return _pixels


@pytest.fixture
def write_image():
    """write_image(path, array) writes a PIL image (format from the extension); returns path."""

    def _write(path: Path, arr: np.ndarray) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path)
        return path

    return _write


@pytest.fixture
def make_folder(write_image):
    """make_folder(root, {class: n_images}, ext=".png", mode="L") -> {relative path: pixels}."""

    def _make(root: Path, counts: dict[str, int], ext: str = ".png", mode: str = "L"):
        written = {}
        seed = 0
        for cls, n in counts.items():
            (Path(root) / cls).mkdir(parents=True, exist_ok=True)
            for k in range(n):
                arr = _pixels(seed, mode=mode)
                seed += 1
                rel = f"{cls}/img{k:02d}{ext}"
                write_image(Path(root) / rel, arr)
                written[rel] = arr
        return written

    return _make


@pytest.fixture
def write_csv():
    """write_csv(path, header, rows) writes a CSV manifest; returns path."""

    def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
        return path

    return _write


@pytest.fixture
def expect_error():
    """``with expect_error("fragment", ...):`` asserts a one-line AdvisorError containing each fragment."""

    @contextlib.contextmanager
    def _expect(*fragments: str):
        with pytest.raises(AdvisorError) as info:
            yield info
        msg = str(info.value)
        assert msg, "empty error message"
        assert "\n" not in msg and "\r" not in msg, f"message is not one line: {msg!r}"
        assert "; " in msg, f"message names no fix: {msg!r}"
        for frag in fragments:
            assert frag in msg, f"{frag!r} not in {msg!r}"

    return _expect
