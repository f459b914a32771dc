"""Decoding one image: any PIL mode to "L" or "RGB", what a broken or hostile file may raise, and the one-line
error naming the file. The datasets (``advisor.data._base``), the transforms and inference decode through here."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from advisor.errors import AdvisorError, one_line

# An image whose header declares more than PIL's MAX_IMAGE_PIXELS (about 89 million) is refused like one
# above twice that (PIL's DecompressionBombError): a warning line, then gigabytes decoded, is not an answer.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


def to_l_or_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to "L" or "RGB"."""
    mode = img.mode
    if mode in ("L", "RGB"):
        return img
    if mode in ("1", "LA", "La"):
        return img.convert("L")
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        if mode.startswith("I;16"):
            lo, hi = 0.0, 65535.0
        elif mode == "I" and lo >= 0 and hi <= 255:
            lo, hi = 0.0, 255.0
        elif mode == "F" and lo >= 0 and hi <= 1:
            lo, hi = 0.0, 1.0
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        out = np.clip(np.rint((arr - lo) * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(out, "L")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


#: What decoding a hostile or broken image may raise (PIL's bomb warning is an error here: see above).
IMAGE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError,
                Image.DecompressionBombWarning)


def decode_image_source(source) -> Image.Image:
    """Fully decode an image (a path or a binary file object) to mode "L" or "RGB".

    Raises one of :data:`IMAGE_ERRORS`; an image that declares more pixels than PIL's ``MAX_IMAGE_PIXELS`` is
    refused before it is decoded, whatever the warnings filters say (a caller's ``catch_warnings`` may have
    reset ours).
    """
    with Image.open(source) as img:
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and img.width * img.height > limit:
            raise Image.DecompressionBombError(
                f"it declares {img.width}x{img.height} pixels, more than the {limit} allowed "
                "(a possible decompression bomb)")
        img.load()
        out = to_l_or_rgb(img)
        return img.copy() if out is img else out


def read_image_file(path: Path) -> Image.Image:
    """Fully decode an image file to mode "L" or "RGB"; AdvisorError naming the file if it fails."""
    try:
        return decode_image_source(path)
    except IMAGE_ERRORS as exc:
        raise AdvisorError(
            f"cannot read image file {path}: {one_line(exc) or type(exc).__name__}",
            "replace or remove the file (or its manifest row)",
        ) from None
