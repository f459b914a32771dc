"""``advisor export``: the network in one of the export formats (ONNX, TorchScript: the registry
:mod:`advisor.deploy.formats`), its preprocessing as JSON beside it.

The exported graph takes preprocessed images ``image`` float32 ``[N, 3, S, S]`` (any N) and returns
``logits`` ``[N, classes]`` of the primary task (softmax gives the probabilities ``advisor predict``
prints). ``PATH.preprocess.json`` says how to get from an image file to ``image``: the
:class:`~advisor.data.Preprocess` state (shorter side resized to ``resize_size``, centre crop
``crop_size``, with ``interpolation``, greyscale repeated to 3 channels, ``(x / 255 - mean) /
std``), the class names in output order and the expected input.

Every export is checked before it is written: the exported file's outputs must equal PyTorch's
within :func:`roundoff_tolerance` on a seeded batch.
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advisor.deploy.formats import get
from advisor.errors import AdvisorError

JSON_FORMAT = "advisor.export/1"


@dataclass
class Exported:
    model_path: Path
    preprocess_path: Path
    max_abs_diff: float
    tolerance: float
    n_checked: int


def check_format(fmt: str) -> None:
    """One line for an unknown format, or naming the extra to install when the format's packages are missing."""
    get(fmt).check()


def roundoff_tolerance(model, x) -> float:
    """How far two correct float32 evaluations of ``model`` on ``x`` may differ.

    The float64 evaluation is the reference; PyTorch's float32 result differs from it by its own
    roundoff ``d`` (measured, largest element). Another float32 runtime (ONNX Runtime, TorchScript)
    makes errors of the same kind but sums in another order and may pick other convolution
    algorithms, so its distance to the reference is a few ``d``; by the triangle inequality the two
    float32 results differ by at most about their sum. We allow 10 ``d``, and never less than
    float32's unit roundoff (2^-24) times 64 times the largest logit, for networks so shallow that
    ``d`` is 0.
    """
    import torch

    with torch.inference_mode():
        ref = copy.deepcopy(model).double()(x.double())
        d = float((model(x).double() - ref).abs().max())
        scale = float(ref.abs().max())
    return max(10.0 * d, 64 * 2.0 ** -24 * scale)


def _check_batch(bundle, n: int = 8, seed: int = 0):
    """A seeded batch of preprocessed inputs: uniform random pixels through the model's own normalisation."""
    import torch

    pre = bundle.preprocess
    g = np.random.default_rng(seed)
    pix = g.integers(0, 256, size=(n, 3, pre.crop_size, pre.crop_size)).astype(np.float32)
    mean = np.asarray(pre.mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(pre.std, dtype=np.float32).reshape(1, 3, 1, 1)
    return torch.from_numpy((pix / 255.0 - mean) / std)


def run_exported(fmt: str, path: str | Path | bytes, x) -> np.ndarray:
    """Logits of an exported model (a file, or its bytes) on preprocessed images ``x`` (a tensor or array
    ``[N, 3, S, S]``)."""
    arr = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    return get(fmt).run(path, np.ascontiguousarray(arr, dtype=np.float32))


def export(model: str | None, fmt: str, out: str | Path, *, experiment: str | None = None,
           tracking_uri: str | None = None, workspace: str | None = None, flag: str | None = None) -> Exported:
    """Write ``model`` (as for :func:`advisor.deploy.predict.predict`) as ``fmt`` (one of
    :data:`advisor.deploy.formats.FORMATS`) at ``out``, its preprocessing beside it; a missing package is one
    AdvisorError before the model loads."""
    from advisor.deploy.resolve import load_bundle

    check_format(fmt)
    bundle = load_bundle(model, experiment=experiment, tracking_uri=tracking_uri, workspace=workspace)
    return export_model(bundle, fmt, out, flag=flag)


def export_model(bundle, fmt: str, out: str | Path, flag: str | None = None) -> Exported:
    """Write ``bundle``'s network as ``fmt`` to ``out`` and ``out.preprocess.json``: rendered in memory and
    checked first, then both written together (:func:`advisor.outputs.write_outputs`), so a failure leaves
    neither file half-written and no earlier file changed. ``flag`` names the option that gave ``out``."""
    import io

    import torch

    from advisor.outputs import Output, write_outputs

    from advisor.models._timm import at_input_size

    check_format(fmt)
    out = Path(out)
    model = bundle.model.cpu().eval()
    x = _check_batch(bundle)
    # a ViT built to take any size resamples its position embedding per call; the export takes one size
    # (the crop), so it is resampled once, here (the same values; checked below against ``model``)
    fixed = at_input_size(model, int(x.shape[-1]))
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            get(fmt).write(fixed, x[:2], buf)
    except Exception as e:  # noqa: BLE001 - an operator the exporter cannot write: one line, nothing written
        raise AdvisorError(f"cannot export this model as {fmt} ({type(e).__name__}: {str(e).splitlines()[0][:200]})",
                           "try the other --format, or report this model") from None
    del fixed
    data = buf.getvalue()
    with torch.no_grad():
        expected = model(x).numpy()
    got = run_exported(fmt, data, x)
    diff = float(np.abs(got.astype(np.float64) - expected).max())
    tol = roundoff_tolerance(model, x)
    if not diff <= tol:
        raise AdvisorError(f"the exported {fmt} model differs from PyTorch by {diff:.3g} (tolerance {tol:.3g})",
                           "report this model; try the other --format")
    json_path = out.with_name(out.name + ".preprocess.json")
    model_path, json_path = write_outputs(Output(out, data, flag),
                                          Output(json_path, json.dumps(describe(bundle, fmt, out), indent=2), flag))
    return Exported(model_path, json_path, diff, tol, int(x.shape[0]))


def describe(bundle, fmt: str, out: Path) -> dict:
    """The JSON written beside an exported model."""
    from advisor.deploy.modelfile import preprocess_state

    pre = bundle.preprocess
    return {
        "format": JSON_FORMAT,
        "model_file": out.name,
        "model_format": fmt,
        "input": {"name": "image", "dtype": "float32", "shape": ["N", 3, pre.crop_size, pre.crop_size],
                  "layout": "NCHW, RGB"},
        "output": {"name": "logits", "shape": ["N", len(bundle.classes)],
                   "probabilities": "softmax over the last axis"},
        "classes": list(bundle.classes),
        "task": bundle.task,
        "preprocess": preprocess_state(pre),
        "steps": ["decode; greyscale and palette images become 3 channels (grey repeated), alpha dropped",
                  f"resize the shorter side to {pre.resize_size} (interpolation: "
                  f"{pre.interpolation}, antialiased)",
                  f"centre crop {pre.crop_size} x {pre.crop_size}",
                  "x / 255, then (x - mean) / std per channel"],
        "model_name": bundle.meta.get("model_name"),
        "strategy": bundle.meta.get("strategy"),
        "source": bundle.source,
    }
