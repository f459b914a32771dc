"""A trained model with what it needs to be used (preprocessing, class names), and batched inference.

Every strategy exports as one :class:`~advisor.deploy.model.TransferModel` (probes and the pipeline
included), so one loop (:func:`run_model`) predicts for all of them: images -> ``Preprocess`` (the
training recipe: resize, centre crop, greyscale to 3 channels, mean/std) -> network -> softmax over the
primary task's classes (:func:`infer`), or the predicted classes that ``advisor.train.evaluate_model``
scores. For the SVM probe the softmax of its decision values orders the classes like the SVM but is not
a calibrated probability.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from advisor.errors import AdvisorError


@dataclass
class Bundle:
    """The network (eval mode), its preprocessing and the primary task's class names."""

    model: Any  # TransferModel
    preprocess: Any  # advisor.data.Preprocess
    classes: list[str]
    meta: dict = field(default_factory=dict)
    source: str = ""

    @property
    def task(self) -> str:
        return self.model.primary


def bundle_from_file(path: str | os.PathLike, source: str | None = None) -> Bundle:
    """Load a file written by ``advisor train --save`` as a Bundle on the CPU (data only, schema checked)."""
    from advisor.deploy.modelfile import load_model

    model, meta = load_model(path)
    return make_bundle(model, meta, meta.get("preprocess"), (meta.get("classes") or {}).get(model.primary),
                       source or str(path), where=str(path))


def make_bundle(model, meta: dict, preprocess_state, classes, source: str, *, where: str) -> Bundle:
    """A Bundle from a loaded network, its preprocessing state (a plain dict) and the primary task's class
    names (their count must match the network's outputs; none given: the output indices); ``where`` names
    the file in the one line a bad value gives."""
    from advisor.data import Preprocess

    fix = "save the model again with advisor train --save (or re-run the search that logged it)"
    if not isinstance(preprocess_state, dict) or not preprocess_state:
        raise AdvisorError(f"{where} holds no preprocessing", fix)
    try:
        preprocess = Preprocess(**preprocess_state)
    except AdvisorError as e:
        raise AdvisorError(f"{where} holds bad preprocessing ({e.problem})", fix) from None
    except (TypeError, ValueError) as e:
        raise AdvisorError(f"{where} holds bad preprocessing ({' '.join(str(e).split())[:120]})", fix) from None
    n_out = _n_outputs(model)
    classes = list(classes or [])
    if not classes:
        classes = [str(i) for i in range(n_out)]
    if len(classes) != n_out or not all(isinstance(c, str) for c in classes):
        raise AdvisorError(f"{where} names {len(classes)} classes for a network with {n_out} outputs", fix)
    return Bundle(model, preprocess, classes, meta, source)


def _n_outputs(model) -> int:
    head = model.heads[model.primary]
    last = head[-1] if hasattr(head, "__getitem__") else head
    return int(last.out_features)


# ----------------------------------------------------------------------------- images
def decode_image(value: Any):
    """A PIL image (mode L or RGB) from a path, encoded image bytes, an array or a PIL image.

    Arrays: ``[H, W]``, ``[H, W, C]`` (C = 1, 3 or 4) or ``[C, H, W]`` (C = 1 or 3); uint8 as is,
    floats in [0, 1] scaled by 255 (other floats clipped to 0..255).
    """
    from PIL import Image

    from advisor.data._images import IMAGE_ERRORS, decode_image_source, read_image_file, to_l_or_rgb

    if isinstance(value, Image.Image):
        return to_l_or_rgb(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return decode_image_source(io.BytesIO(bytes(value)))
        except IMAGE_ERRORS as e:
            raise AdvisorError(f"cannot decode image bytes ({' '.join(str(e).split()) or type(e).__name__})",
                               "send an encoded PNG/JPEG/... image") from None
    if isinstance(value, (str, os.PathLike)):
        return read_image_file(Path(value))
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        return _from_array(value)
    raise AdvisorError(f"cannot use a {type(value).__name__} as an image",
                       "pass an image file path, encoded image bytes or an array")


def _from_array(arr: np.ndarray):
    from PIL import Image

    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3, 4):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 3 and a.shape[-1] == 4:
        a = a[..., :3]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] != 3) or 0 in a.shape:
        raise AdvisorError(f"cannot use an array of shape {tuple(np.shape(arr))} as an image",
                           "pass [H, W], [H, W, C] or [C, H, W] with C = 1 or 3")
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        if a.size and np.nanmin(a) >= 0 and np.nanmax(a) <= 1:
            a = a * 255.0
        a = np.clip(np.rint(np.nan_to_num(a)), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(a), "L" if a.ndim == 2 else "RGB")


# ----------------------------------------------------------------------------- inference
@dataclass
class BatchOutput:
    probs: np.ndarray  # [kept, classes] float64
    kept: list[int]  # positions in the input that were predicted
    failures: list[tuple[int, str]]  # (position, reason) of inputs that could not be read


def infer(bundle: Bundle, items: Sequence[Any], load: Callable[[Any], Any] = decode_image, *,
          batch_size: int = 64, device: str = "cpu", skip_unreadable: bool = False,
          progress: Callable[[int, int], None] | None = None, threads: int | None = None) -> BatchOutput:
    """Softmax probabilities of the primary task for ``items`` (each turned into a PIL image by ``load``),
    by :func:`run_model`."""
    outs, kept, failures = run_model(bundle.model, bundle.preprocess, items, load, _probabilities,
                                     batch_size=batch_size, device=device, skip_unreadable=skip_unreadable,
                                     progress=progress, threads=threads)
    width = len(bundle.classes)
    return BatchOutput(np.concatenate(outs) if outs else np.zeros((0, width)), kept, failures)


def _probabilities(model, x) -> np.ndarray:
    import torch

    return torch.softmax(model(x).float(), dim=1).double().cpu().numpy()


def run_model(model, preprocess, items: Sequence[Any], load: Callable[[Any], Any],
              compute: Callable[[Any, Any], np.ndarray], *, batch_size: int = 64, device: str = "cpu",
              skip_unreadable: bool = False, progress: Callable[[int, int], None] | None = None,
              threads: int | None = None) -> tuple[list[np.ndarray], list[int], list[tuple[int, str]]]:
    """The one inference loop over a saved model: ``compute(model, x)`` for every batch ``x`` of ``items``
    (each ``preprocess(load(item))``), in eval mode on ``device``, without gradients. Returns the
    per-batch results, the positions in ``items`` they cover, and ``(position, reason)`` of inputs
    that could not be read. :func:`infer` (probabilities) and
    :func:`advisor.train.evaluate_model` (predicted classes, scored) both run it.

    Images are read and preprocessed ``batch_size`` at a time by a few threads (decoding and
    resizing release the GIL), the next batch while the network runs on this one; an unreadable image
    raises its AdvisorError, or with ``skip_unreadable`` is left out and reported in the failures.
    """
    import torch

    from advisor.models import resolve_device

    if batch_size < 1:
        raise AdvisorError(f"bad batch size {batch_size}", "use a positive integer, e.g. 64")
    dev = resolve_device(device)
    model = model.to(dev).eval()
    n = len(items)
    threads = threads or min(4, os.cpu_count() or 1)

    def prepare(pos: int):
        try:
            return pos, preprocess(load(items[pos])), None
        except AdvisorError as e:
            if not skip_unreadable:
                raise
            return pos, None, str(e.problem)

    outs, kept, failures = [], [], []
    done = 0
    starts = list(range(0, n, batch_size))

    def submit(pool, start):  # the next batch is read while the network runs on this one
        return [pool.submit(prepare, pos) for pos in range(start, min(n, start + batch_size))]

    with ThreadPoolExecutor(max_workers=threads) as pool, torch.inference_mode():
        pending = submit(pool, starts[0]) if starts else []
        for b, start in enumerate(starts):
            batch = [f.result() for f in pending]
            pending = submit(pool, starts[b + 1]) if b + 1 < len(starts) else []
            good = [(p, x) for p, x, _ in batch if x is not None]
            failures += [(p, why) for p, _, why in batch if why is not None]
            if good:
                x = torch.stack([t for _, t in good])
                if dev.type == "cuda":
                    x = x.pin_memory().to(dev, non_blocking=True)
                outs.append(compute(model, x))
                kept += [p for p, _ in good]
            done += len(batch)
            if progress is not None:
                progress(done, n)
    return outs, kept, failures


def top_k(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indices [n, k], probabilities [n, k])`` of the k most probable classes, highest first
    (ties: the lower class index first)."""
    k = max(1, min(int(k), probs.shape[1] if probs.ndim == 2 and probs.shape[1] else 1))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(probs, order, axis=1)
