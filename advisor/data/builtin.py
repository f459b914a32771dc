"""Built-in datasets: ``fashion-mnist`` and ``digits``, optionally ``NAME:K`` per class."""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

import numpy as np

from advisor.data._base import ArrayDataset, check_usable
from advisor.errors import AdvisorError

BUILTIN_DATASETS: dict[str, str] = {
    "fashion-mnist": "Fashion-MNIST: 70,000 28x28 greyscale clothing images, 10 classes",
    "digits": "scikit-learn digits: 1,797 8x8 greyscale handwritten digits, 10 classes",
}

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_ROOT = Path.home() / ".cache" / "advisor" / "datasets"
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_FASHION_FILES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("t10k", "images"): "t10k-images-idx3-ubyte.gz",
    ("t10k", "labels"): "t10k-labels-idx1-ubyte.gz",
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    code, ndim = data[2], data[3]
    if code not in dtypes:
        raise ValueError(f"{path}: unknown IDX data type 0x{code:02x}")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(dtypes[code])
    count = int(np.prod(dims)) if dims else 0
    offset = 4 + 4 * ndim
    if len(data) - offset < count * dtype.itemsize:
        raise ValueError(f"{path} is truncated")
    arr = np.frombuffer(data, dtype, count=count, offset=offset).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False)


def readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@functools.lru_cache(maxsize=2)
def _fashion_from_idx(folder: str) -> tuple[np.ndarray, np.ndarray]:
    d = Path(folder)
    xs, ys = [], []
    for split in ("train", "t10k"):
        xs.append(read_idx(d / _FASHION_FILES[(split, "images")]))
        ys.append(read_idx(d / _FASHION_FILES[(split, "labels")]))
    return readonly(np.concatenate(xs).astype(np.uint8)), readonly(
        np.concatenate(ys).astype(np.int64)
    )


@functools.lru_cache(maxsize=1)
def _fashion_from_torchvision(root: str) -> tuple[np.ndarray, np.ndarray]:
    from torchvision.datasets import FashionMNIST

    xs, ys = [], []
    for train in (True, False):
        ds = FashionMNIST(root=root, train=train, download=True)
        xs.append(ds.data.numpy())
        ys.append(ds.targets.numpy())
    return readonly(np.concatenate(xs).astype(np.uint8)), readonly(
        np.concatenate(ys).astype(np.int64)
    )


def fashion_mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 Fashion-MNIST images ``[70000, 28, 28]`` uint8 and labels (train then t10k)."""
    folder = Path(FASHION_MNIST_DIR)
    if all((folder / f).is_file() for f in _FASHION_FILES.values()):
        try:
            return _fashion_from_idx(str(folder))
        except (OSError, ValueError, EOFError) as exc:
            raise AdvisorError(
                f"Fashion-MNIST files in {folder} are unreadable ({' '.join(str(exc).split())})",
                "reinstall the Debian package dataset-fashion-mnist",
            ) from None
    try:
        return _fashion_from_torchvision(str(DOWNLOAD_ROOT))
    except Exception:  # noqa: BLE001 - any failure means: not available
        raise AdvisorError(
            f"Fashion-MNIST not found at {folder} and could not be downloaded",
            "install the Debian package dataset-fashion-mnist or connect to the internet",
        ) from None


@functools.lru_cache(maxsize=1)
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ``[1797, 8, 8]`` uint8 (0..16 scaled to 0..255) and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return readonly(x), readonly(d.target.astype(np.int64))


def parse_named_spec(spec: str, names, unit: str = "samples per class") -> tuple[str, int | None] | None:
    """``"NAME:K"`` -> ``(name, K)`` and ``"NAME"`` -> ``(name, None)`` for a name in ``names``; ``None`` for
    any other name. Raises AdvisorError for a known name with a bad ``:K`` suffix (``unit`` says what K counts)."""
    base, sep, k = str(spec).strip().partition(":")
    key = base.strip().lower()
    if key not in names:
        return None
    if not sep:
        return key, None
    k = k.strip()
    if not k.isdigit() or int(k) <= 0:
        raise AdvisorError(
            f"bad sample count {k!r} in dataset {spec!r}",
            f"use a positive integer of {unit}, e.g. {key}:100",
        )
    return key, int(k)


def parse_builtin_spec(spec: str) -> tuple[str, int | None] | None:
    """``"fashion-mnist:100"`` -> ``("fashion-mnist", 100)``; ``None`` if not a builtin name.

    Raises AdvisorError for a builtin name with a bad ``:K`` suffix.
    """
    return parse_named_spec(spec, BUILTIN_DATASETS)


def per_class_sample(labels: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``k`` random items per class (all of a class with fewer)."""
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if idx.size > k:
            idx = rng.choice(idx, size=k, replace=False)
        picked.append(idx)
    return np.sort(np.concatenate(picked)).astype(np.int64)


def load_builtin(spec: str, *, seed: int = 0) -> ArrayDataset:
    """Load a builtin dataset; ``NAME:K`` keeps a seeded stratified ``K`` per class."""
    parsed = parse_builtin_spec(spec)
    if parsed is None:
        raise AdvisorError(
            f"unknown built-in dataset {spec!r}",
            f"use one of: {', '.join(BUILTIN_DATASETS)}",
        )
    key, per_class = parsed
    if key == "fashion-mnist":
        x, y = fashion_mnist_arrays()
        classes = list(FASHION_MNIST_CLASSES)
    else:
        x, y = digits_arrays()
        classes = [str(i) for i in range(10)]
    ds = ArrayDataset(str(spec), x, y[:, None], tasks=["label"], classes={"label": classes})
    if per_class is not None:
        ds = ds.subset(per_class_sample(y, per_class, seed))
    return check_usable(ds, str(spec))
