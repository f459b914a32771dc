"""Reference moments on disk: one small NPZ per weights and input size, beside the weights.

``advisor reference`` computes every block's per-channel output moments on a sample of the source
domain (:mod:`advisor.measure._block_moments`); analyze finds them again by the weights themselves:

    $ADVISOR_REFERENCE_DIR, default <torch hub dir>/checkpoints/advisor-reference/
        <weights digest, 32 hex>-<S>px.npz

The weights digest is the sha256 of the blocks' tensors (names, dtypes, shapes and bytes; the source
head changes no block output), so other weights, a fine-tuned copy or another file never pick up a
reference that is not theirs. The input side is in the name because a block's moments depend on it
(a ViT interpolates its position embedding; a CNN sees other scales).

The file holds only arrays (never a pickle; read with ``allow_pickle=False``): ``meta`` (UTF-8 JSON as
bytes: format, digest, model, weights, image size, block names and channels, the source dataset and
its image count), and ``mean_<i>``, ``var_<i>`` (float64 ``[C_i]``) per block. Anything else, a file
for other blocks or channels, non-finite or negative values, is refused in one line.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advisor.errors import AdvisorError

FORMAT = 1
ENV = "ADVISOR_REFERENCE_DIR"


@dataclass
class Reference:
    """Per-block source moments of one network's weights at one input size."""

    digest: str
    image_size: int
    block_names: list[str]
    means: list[np.ndarray]  # per block, float64 [C]
    variances: list[np.ndarray]  # per block, float64 [C]
    meta: dict

    def describe(self) -> str:
        """Where the moments came from, in words."""
        return f"{self.meta.get('n_images', '?')} images of {self.meta.get('dataset', '?')}"


def reference_dir() -> Path:
    """``$ADVISOR_REFERENCE_DIR`` if set, else ``advisor-reference`` in the torch hub checkpoint folder."""
    env = os.environ.get(ENV, "").strip()
    if env:
        return Path(env).expanduser()
    from advisor.models._weights import hub_checkpoints_dir

    return Path(hub_checkpoints_dir()) / "advisor-reference"


def weights_digest(backbone) -> str:
    """sha256 (hex) of the backbone's block tensors: what the reference moments depend on."""
    from advisor.models._vit_weights import content_digest

    return content_digest({k: v for k, v in backbone.state_dict().items() if k.startswith("blocks.")})


def reference_path(digest: str, image_size: int, root: str | Path | None = None) -> Path:
    """The file of ``digest``'s reference moments at ``image_size`` px."""
    return Path(root or reference_dir()) / f"{digest[:32]}-{int(image_size)}px.npz"


def save_reference(backbone, image_size: int, moments, *, dataset: str, n_images: int,
                   root: str | Path | None = None) -> Path:
    """Write ``moments`` (per block ``(mean [C], var [C])``) for ``backbone``'s weights; atomic.

    Returns the file written (an existing one for the same weights and size is replaced).
    """
    digest = weights_digest(backbone)
    if len(moments) != len(backbone.block_names):
        raise AdvisorError(f"{len(moments)} blocks of moments for {len(backbone.block_names)} blocks",
                           "report this as a bug in advisor.measure")
    meta = {"format": FORMAT, "digest": digest, "model": backbone.name, "weights": backbone.weights_id,
            "image_size": int(image_size), "layout": backbone.layout.to_dict(),
            "block_names": list(backbone.block_names), "channels": [int(m.shape[0]) for m, _ in moments],
            "dataset": dataset, "n_images": int(n_images)}
    arrays = {"meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)}
    for i, (mean, var) in enumerate(moments):
        arrays[f"mean_{i}"] = np.asarray(mean, dtype=np.float64)
        arrays[f"var_{i}"] = np.asarray(var, dtype=np.float64)
    path = reference_path(digest, image_size, root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as e:
        raise AdvisorError(f"cannot write reference moments to {path.parent}: {e.strerror or e}",
                           f"set ${ENV} to a writable folder") from None
    return path


def _bad(path: Path, what: str) -> AdvisorError:
    return AdvisorError(f"reference moments file {path} {what}",
                        "delete it and run 'advisor reference SOURCE_DATA --model NAME' again")


def load_reference(backbone, image_size: int, root: str | Path | None = None) -> Reference | None:
    """The stored reference moments of ``backbone``'s weights at ``image_size`` px, or ``None`` if none.

    A file that is not what :func:`save_reference` wrote for exactly these blocks (a pickle, another
    network's blocks or channels, bad values) is an :class:`AdvisorError`, never silently used.
    """
    digest = weights_digest(backbone)
    path = reference_path(digest, image_size, root)
    if not path.is_file():
        return None
    try:
        data = path.read_bytes()
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise _bad(path, f"is not an NPZ of arrays ({' '.join(str(e).split())[:80]})") from None
    try:
        meta = json.loads(bytes(np.asarray(arrays.pop("meta"), dtype=np.uint8)).decode("utf-8"))
        if not isinstance(meta, dict):
            raise ValueError
    except (KeyError, ValueError, TypeError):
        raise _bad(path, "has no readable 'meta' record") from None
    names, n = list(backbone.block_names), len(backbone.block_names)
    if meta.get("format") != FORMAT or meta.get("digest") != digest or meta.get("image_size") != int(image_size):
        raise _bad(path, "was written for other weights, another input size or another format")
    if meta.get("block_names") != names or set(arrays) != {f"{k}_{i}" for k in ("mean", "var") for i in range(n)}:
        raise _bad(path, f"does not hold the {n} blocks of {backbone.name}")
    means, variances = [], []
    for i, c in enumerate(backbone.block_channels):
        m, v = arrays[f"mean_{i}"], arrays[f"var_{i}"]
        if m.shape != (c,) or v.shape != (c,) or m.dtype.kind != "f" or v.dtype.kind != "f":
            raise _bad(path, f"has moments of shape {m.shape} / {v.shape} for block {names[i]} of {c} channels")
        if not (np.all(np.isfinite(m)) and np.all(np.isfinite(v)) and np.all(v >= 0)):
            raise _bad(path, f"has non-finite or negative moments for block {names[i]}")
        means.append(m.astype(np.float64))
        variances.append(v.astype(np.float64))
    return Reference(digest, int(image_size), names, means, variances, meta)
