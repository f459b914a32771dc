"""Image preprocessing (resize, center crop, normalise) and a torch Dataset view."""

from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from advisor.data._base import TargetDataset
from advisor.data._images import to_l_or_rgb
from advisor.errors import AdvisorError


def _check_size(value, what: str) -> int:
    ok = (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and int(value) >= 8
    )
    if not ok:
        raise AdvisorError(
            f"bad image size {value!r} ({what})",
            "use an integer of at least 8, e.g. --image-size 224",
        )
    return int(value)


def _check_stats(values, what: str) -> tuple[float, float, float]:
    try:
        vals = tuple(float(v) for v in values)
    except TypeError:
        vals = (float(values),)
    except ValueError:
        vals = ()
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3 or not all(np.isfinite(vals)) or (what == "std" and min(vals) <= 0):
        need = "three positive numbers" if what == "std" else "three numbers"
        raise AdvisorError(
            f"bad normalisation {what} {values!r}", f"use {need}, e.g. (0.5, 0.5, 0.5)"
        )
    return vals  # type: ignore[return-value]


#: The resampling filters a weights' evaluation transform may name (torchvision's
#: ``InterpolationMode`` values), as PIL filters: torchvision and timm resize PIL images
#: with ``Image.resize`` and these filters, so ours gives the same pixels.
INTERPOLATIONS = {
    "nearest": Image.NEAREST,
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "box": Image.BOX,
    "hamming": Image.HAMMING,
    "lanczos": Image.LANCZOS,
}


def _check_interpolation(value) -> str:
    name = str(getattr(value, "value", value)).strip().lower()
    if name not in INTERPOLATIONS:
        raise AdvisorError(
            f"unknown interpolation {value!r}", f"use one of {', '.join(INTERPOLATIONS)}"
        )
    return name


class Preprocess:
    """PIL image -> float32 tensor ``[3, crop, crop]``: a weights' evaluation transform.

    Any mode is converted to 3 channels (greyscale is repeated), the shorter
    side is resized to ``resize_size`` (with ``interpolation``, antialiased as
    PIL does), the centre ``crop_size`` square is cut out, values are scaled
    to [0, 1] and normalised with ``mean`` / ``std`` per channel. Built from a
    backbone's ``preprocessing`` (:meth:`from_config`), which is read from the
    weights' own transform (torchvision's ``weights.transforms()``, timm's
    ``resolve_data_config`` + ``create_transform``), it gives the same tensor as
    that transform on an RGB image.
    """

    def __init__(
        self,
        resize_size: int,
        crop_size: int,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        interpolation: str = "bilinear",
    ):
        self.resize_size = _check_size(resize_size, "resize size")
        self.crop_size = _check_size(crop_size, "crop size")
        self.mean = _check_stats(mean, "mean")
        self.std = _check_stats(std, "std")
        self.interpolation = _check_interpolation(interpolation)
        self._filter = INTERPOLATIONS[self.interpolation]
        m = np.asarray(self.mean, dtype=np.float64).reshape(3, 1, 1)
        s = np.asarray(self.std, dtype=np.float64).reshape(3, 1, 1)
        # (x / 255 - mean) / std  ==  x * scale + bias
        self._scale = (1.0 / (255.0 * s)).astype(np.float32)
        self._bias = (-m / s).astype(np.float32)

    # ------------------------------------------------------------- variants
    @classmethod
    def from_config(cls, config: dict, image_size: int | None = None) -> "Preprocess":
        """From a backbone's ``preprocessing`` dict, at crop ``image_size`` when given."""
        pre = cls(config["resize_size"], config["crop_size"], config["mean"], config["std"],
                  config.get("interpolation", "bilinear"))
        return pre if image_size is None else cls.for_image_size(pre, image_size)

    @classmethod
    def for_image_size(cls, base: "Preprocess", image_size: int) -> "Preprocess":
        """Same recipe as ``base`` at crop ``image_size`` (resize scaled by the same ratio)."""
        image_size = _check_size(image_size, "image size")
        resize = max(8, int(round(image_size * base.resize_size / base.crop_size)))
        return cls(resize, image_size, base.mean, base.std, base.interpolation)

    def with_image_size(self, image_size: int) -> "Preprocess":
        """Method form of :meth:`for_image_size`."""
        return type(self).for_image_size(self, image_size)

    # ------------------------------------------------------------- protocol
    def __repr__(self) -> str:
        return (
            f"Preprocess(resize_size={self.resize_size}, crop_size={self.crop_size}, "
            f"mean={self.mean}, std={self.std}, interpolation={self.interpolation!r})"
        )

    def __eq__(self, other) -> bool:
        return isinstance(other, Preprocess) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self):
        return (self.resize_size, self.crop_size, self.mean, self.std, self.interpolation)

    def __getstate__(self):
        return {"resize_size": self.resize_size, "crop_size": self.crop_size,
                "mean": self.mean, "std": self.std, "interpolation": self.interpolation}

    def __setstate__(self, state):
        self.__init__(**state)

    # ------------------------------------------------------------- pipeline
    def resized_crop(self, img: Image.Image) -> Image.Image:
        """Resize the shorter side to ``resize_size`` and cut the centre crop (mode L or RGB)."""
        if img.mode not in ("L", "RGB"):
            img = to_l_or_rgb(img)
        w, h = img.size
        r = self.resize_size
        if w <= h:
            new = (r, max(1, int(r * h / w)))
        else:
            new = (max(1, int(r * w / h)), r)
        if new != (w, h):
            img = img.resize(new, self._filter)
        w, h = new
        c = self.crop_size
        left = int(round((w - c) / 2.0))
        top = int(round((h - c) / 2.0))
        if (left, top, w, h) != (0, 0, c, c):
            # PIL pads with zeros where the box leaves the image, like torchvision.
            img = img.crop((left, top, left + c, top + c))
        return img

    def __call__(self, img: Image.Image) -> torch.Tensor:
        img = self.resized_crop(img)
        arr = np.asarray(img)
        # numpy, not torch: single-threaded and cheap for one image; torch's
        # intra-op threads cost milliseconds per call on a busy machine.
        x = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # [1 or 3, H, W]
        out = np.empty((3, self.crop_size, self.crop_size), dtype=np.float32)
        np.multiply(x, self._scale, out=out)  # grey [1, H, W] broadcasts to 3 channels
        out += self._bias
        return torch.from_numpy(out)


def with_image_size(base: Preprocess, image_size: int) -> Preprocess:
    """``base`` at crop ``image_size``; resize = round(image_size * base.resize / base.crop)."""
    return Preprocess.for_image_size(base, image_size)


class TorchView(torch.utils.data.Dataset):
    """``(preprocessed image, labels row)`` pairs for some items of a dataset.

    ``view[k]`` returns ``(tensor [3, crop, crop] float32, labels int64 [n_tasks])``
    for item ``indices[k]`` (all items in order if ``indices`` is None).
    """

    def __init__(
        self,
        dataset: TargetDataset,
        indices: Sequence[int] | np.ndarray | None,
        preprocess: Preprocess,
    ):
        n = len(dataset)
        idx = np.arange(n, dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"indices out of range for a dataset of {n} items")
        self.dataset = dataset
        self.indices = idx
        self.preprocess = preprocess

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = int(self.indices[k])
        x = self.preprocess(self.dataset.load(i))
        y = torch.from_numpy(self.dataset.labels[i].copy())
        return x, y
