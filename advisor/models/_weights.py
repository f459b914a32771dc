"""Where a backbone's weights come from: pretrained (torchvision / timm caches), random, or a local file.

Nothing here calls out unless the user allows it (``HF_HUB_OFFLINE=0``, see :mod:`advisor.offline`):
a missing pretrained file is an :class:`AdvisorError` naming the exact file and folder to put it in.
Allowed, it is downloaded after a quick (≤ 3 s) connectivity check, so nothing hangs without network.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

import torch
from torch import nn

from advisor.errors import AdvisorError, one_line
from advisor.offline import downloads_allowed

RANDOM_WORDS = frozenset({"random", "none", "scratch"})
PRETRAINED_WORDS = frozenset({"imagenet", "pretrained"})
WRAPPER_KEYS = ("state_dict", "model", "state_dict_ema", "model_state_dict")
STRIP_PREFIXES = ("module.", "_orig_mod.")
CONNECT_TIMEOUT_S = 3.0
ALLOW_DOWNLOADS = "HF_HUB_OFFLINE=0"  # advisor/offline.py: no download unless the user allows it
WEIGHTS_FIX = "pass --weights PATH to a state dict, --weights random, or leave --weights out for ImageNet weights"

IMAGENET_PREPROCESSING = {
    "resize_size": 256,
    "crop_size": 224,
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
    "interpolation": "bilinear",
}


#: the longest an exception's message is quoted inside a weights error (``one_line(e, MESSAGE_LIMIT)``)
MESSAGE_LIMIT = 160


# --------------------------------------------------------------------------- request parsing
@dataclass(frozen=True)
class WeightsRequest:
    """What ``weights=`` asked for: ``kind`` is pretrained, named, random or file."""

    kind: str
    value: str | None = None


def parse_weights(weights: object, named: tuple[str, ...] = ()) -> WeightsRequest:
    """Classify a ``weights`` argument. ``named`` lists accepted weight names (e.g. torchvision enum names)."""
    if weights is None:
        return WeightsRequest("pretrained")
    if isinstance(weights, os.PathLike):
        return WeightsRequest("file", os.fspath(weights))
    if not isinstance(weights, str):
        raise AdvisorError(f"weights must be a string or path, got {type(weights).__name__}", WEIGHTS_FIX)
    text = weights.strip()
    if not text:
        raise AdvisorError("weights is an empty string", WEIGHTS_FIX)
    if text.lower() in RANDOM_WORDS:
        return WeightsRequest("random")
    if text.lower() in PRETRAINED_WORDS:
        return WeightsRequest("pretrained")
    if os.path.exists(os.path.expanduser(text)):
        return WeightsRequest("file", os.path.expanduser(text))
    if text.upper() in named:
        return WeightsRequest("named", text.upper())
    return WeightsRequest("file", os.path.expanduser(text))


# --------------------------------------------------------------------------- preprocessing
def torchvision_default_weights(name: str):
    """IMAGENET1K_V1 when the model has it (its file is the classic one), else DEFAULT, else None."""
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(name)
    except (ValueError, KeyError):
        return None
    members = enum.__members__
    if "IMAGENET1K_V1" in members:
        return members["IMAGENET1K_V1"]
    return members.get("DEFAULT")


def torchvision_weight_names(name: str) -> tuple[str, ...]:
    from torchvision.models import get_model_weights

    try:
        return tuple(get_model_weights(name).__members__)
    except (ValueError, KeyError):
        return ()


def _first(v):
    return v[0] if isinstance(v, (list, tuple)) else v


def torchvision_preprocessing(weights) -> dict:
    """resize/crop/mean/std of a torchvision weights entry's own evaluation transform."""
    if weights is None:
        return dict(IMAGENET_PREPROCESSING)
    t = weights.transforms()
    interp = getattr(t, "interpolation", None)
    return {
        "resize_size": int(_first(t.resize_size)),
        "crop_size": int(_first(t.crop_size)),
        "mean": tuple(float(m) for m in t.mean),
        "std": tuple(float(s) for s in t.std),
        "interpolation": str(getattr(interp, "value", interp or "bilinear")),
    }


def timm_preprocessing(cfg: Mapping | None) -> dict:
    """resize/crop/mean/std/interpolation of timm's own evaluation transform for a pretrained_cfg.

    The transform is built the way timm builds it (``resolve_data_config`` then
    ``create_transform``) and read back, so a timm change of defaults reaches us
    too. Only the "center" crop mode (Resize of the shorter side, CenterCrop) maps
    onto :class:`advisor.data.Preprocess`; any other is refused rather than
    approximated.
    """
    if not cfg:
        return dict(IMAGENET_PREPROCESSING)
    from timm.data import create_transform, resolve_data_config
    from torchvision import transforms as T

    data_cfg = resolve_data_config({}, pretrained_cfg=dict(cfg))
    steps = list(create_transform(**data_cfg, is_training=False).transforms)
    resize = next((t for t in steps if isinstance(t, T.Resize)), None)
    crop = next((t for t in steps if isinstance(t, T.CenterCrop)), None)
    norm = next((t for t in steps if isinstance(t, T.Normalize)), None)
    if resize is None or crop is None or norm is None or not isinstance(resize.size, int):
        raise AdvisorError(
            f"timm's evaluation transform for {cfg.get('architecture', 'this model')} is not resize + centre crop "
            f"(crop_mode {data_cfg.get('crop_mode')!r})",
            "use a model whose pretrained_cfg has crop_mode 'center'",
        )
    return {
        "resize_size": int(resize.size),
        "crop_size": int(_first(crop.size)),
        "mean": tuple(float(m) for m in data_cfg["mean"]),  # what Normalize was given, before float32
        "std": tuple(float(s) for s in data_cfg["std"]),
        "interpolation": str(getattr(resize.interpolation, "value", resize.interpolation)),
    }


# --------------------------------------------------------------------------- network / caches
def host_reachable(host: str | None, port: int = 443, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """Whether a TCP connection to host:port opens within ``timeout`` (DNS included; never blocks longer)."""
    if not host:
        return False
    result: dict[str, bool] = {}

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result["ok"] = True
        except OSError:
            result["ok"] = False

    worker = threading.Thread(target=attempt, name="advisor-connectivity-check", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return result.get("ok", False)


def hub_checkpoints_dir() -> str:
    """The torch hub cache folder torchvision downloads weights into."""
    return os.path.join(torch.hub.get_dir(), "checkpoints")


def hub_checkpoint_path(url: str) -> str:
    return os.path.join(hub_checkpoints_dir(), os.path.basename(urlparse(url).path))


def load_torchvision_pretrained(name: str, weights, num_classes: int | None = None) -> nn.Module:
    """Build torchvision model ``name`` with ``weights``, from the hub cache or (if reachable) the network."""
    from torchvision.models import get_model

    url = weights.url
    path = hub_checkpoint_path(url)
    filename = os.path.basename(path)
    folder = os.path.dirname(path) + os.sep
    put_it = f"put {filename} into {folder} (the torch hub cache; from {url}) or pass --weights PATH"
    if not os.path.isfile(path):
        host = urlparse(url).hostname
        if not downloads_allowed():
            raise AdvisorError(f"pretrained weights for {name} not found in the torch hub cache",
                               f"{put_it}, or set {ALLOW_DOWNLOADS} to let advisor download them")
        if not host_reachable(host):
            raise AdvisorError(f"pretrained weights for {name} not found ({host} is unreachable)", put_it)
    try:
        return get_model(name, weights=weights)
    except Exception as e:  # noqa: BLE001 - translated into one clear line
        if os.path.isfile(path):
            raise AdvisorError(
                f"cannot load pretrained weights file {path} for {name} "
                f"({type(e).__name__}: {one_line(e, MESSAGE_LIMIT)})",
                "delete the file so it is fetched again, or pass --weights PATH",
            ) from e
        raise AdvisorError(
            f"downloading pretrained weights for {name} failed ({type(e).__name__}: {one_line(e, MESSAGE_LIMIT)})",
            put_it,
        ) from e


@contextlib.contextmanager
def hf_hub_offline():
    """Make huggingface_hub answer from its local cache only (HF_HUB_OFFLINE semantics), then restore."""
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - timm then uses plain URLs
        yield
        return
    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


def hf_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover
        return os.path.join(os.path.expanduser("~"), ".cache", "huggingface", "hub")


def load_timm_pretrained(name: str, **kwargs) -> nn.Module:
    """timm.create_model(name, pretrained=True, **kwargs), from local caches first, the network only if reachable.

    A model whose weights we convert at set-up (``_vit_weights``) loads only from that file.
    """
    import timm
    from timm.models import get_pretrained_cfg

    from advisor.models._vit_weights import create_converted

    converted = create_converted(name, **kwargs)
    if converted is not None:
        return converted

    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError as e:
        raise AdvisorError(f"timm model {name} has no such pretrained tag ({one_line(e, MESSAGE_LIMIT)})",
                           WEIGHTS_FIX) from e
    cfg_d = cfg.to_dict() if cfg is not None and hasattr(cfg, "to_dict") else (dict(vars(cfg)) if cfg else {})
    hub_id, url = cfg_d.get("hf_hub_id"), cfg_d.get("url")
    if not (hub_id or url or cfg_d.get("file") or cfg_d.get("state_dict")):
        raise AdvisorError(f"timm model {name} has no pretrained weights", WEIGHTS_FIX)

    if hub_id:
        where = f"the Hugging Face cache {hf_cache_dir()}"
        host = "huggingface.co"
        cached_first = True
    else:
        path = hub_checkpoint_path(url) if url else ""
        where = f"{os.path.dirname(path) + os.sep} as {os.path.basename(path)}" if url else "its cache"
        host = urlparse(url).hostname if url else None
        cached_first = not url or os.path.isfile(path)

    if cached_first:
        try:
            with hf_hub_offline():
                return timm.create_model(name, pretrained=True, **kwargs)
        except Exception:  # noqa: BLE001 - not cached: decide below whether the network can help
            pass
    if not downloads_allowed():
        raise AdvisorError(
            f"pretrained weights for timm:{name} not found in {where}",
            f"fetch them on a connected machine (then copy that cache), pass --weights PATH, "
            f"or set {ALLOW_DOWNLOADS} to let advisor download them",
        )
    if not host_reachable(host):
        raise AdvisorError(
            f"pretrained weights for timm:{name} not found in {where} and {host} is unreachable",
            "fetch them on a connected machine (then copy that cache) or pass --weights PATH",
        )
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except Exception as e:  # noqa: BLE001
        raise AdvisorError(
            f"downloading pretrained weights for timm:{name} failed ({type(e).__name__}: {one_line(e, MESSAGE_LIMIT)})",
            "pass --weights PATH to a local state dict",
        ) from e


# --------------------------------------------------------------------------- local files
def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_weights_id(path: str) -> str:
    return "file:" + file_sha256(path)[:16]


def _unwrap(obj: object) -> object:
    for _ in range(3):
        if not isinstance(obj, Mapping):
            return obj
        inner = next((obj[k] for k in WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            return obj
        obj = inner
    return obj


def _strip_prefixes(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        changed = True
        while changed:
            changed = False
            for p in STRIP_PREFIXES:
                if k.startswith(p):
                    k, changed = k[len(p) :], True
        out[k] = v
    return out


def read_state_dict(path: str) -> tuple[dict[str, torch.Tensor], str]:
    """Load a state dict from ``path`` (unwrapping checkpoints, stripping ``module.``) and its weights_id."""
    if not os.path.exists(path):
        raise AdvisorError(f"weights file {path} not found", WEIGHTS_FIX)
    if os.path.isdir(path):
        raise AdvisorError(f"weights path {path} is a folder, not a file", WEIGHTS_FIX)
    try:
        weights_id = file_weights_id(path)
    except OSError as e:
        raise AdvisorError(f"cannot read weights file {path} ({one_line(e, MESSAGE_LIMIT)})",
                           "check the file's permissions") from e
    fix = "pass a file written by torch.save(model.state_dict(), PATH)"
    try:
        with warnings.catch_warnings():  # e.g. torch's "Detected pickle protocol": a refusal is our line alone
            warnings.simplefilter("ignore")
            if path.endswith(".safetensors"):
                from safetensors.torch import load_file

                obj = load_file(path, device="cpu")
            else:  # data only: a pickle that would call anything is refused by torch's restricted unpickler
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file
        raise AdvisorError(
            f"cannot read weights file {path} as a PyTorch state dict ({type(e).__name__}: {one_line(e, 100)})", fix
        ) from e
    sd = _unwrap(obj)
    if not isinstance(sd, Mapping) or not sd:
        raise AdvisorError(f"weights file {path} holds a {type(obj).__name__}, not a state dict", fix)
    bad = [k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise AdvisorError(
            f"weights file {path} is not a state dict ({len(bad)} entries are not tensors, e.g. {str(bad[0])!r})", fix
        )
    return _strip_prefixes(sd), weights_id


def classes_in(sd: Mapping[str, torch.Tensor], classifier: str) -> int | None:
    """Number of classes of the final linear layer ``classifier`` in ``sd`` (None when absent)."""
    if not classifier:
        return None
    w = sd.get(f"{classifier}.weight")
    if w is None or w.dim() < 1:
        return None
    return int(w.shape[0])


def load_checked(
    model: nn.Module,
    sd: Mapping[str, torch.Tensor],
    *,
    label: str,
    path: str,
    classifier: str,
    head_prefixes: tuple[str, ...],
) -> bool:
    """Load ``sd`` into ``model`` exactly; return whether the checkpoint carries the source head.

    A checkpoint may lack the head entirely (a feature-only checkpoint); any other
    missing, unexpected or differently shaped key is an :class:`AdvisorError`.
    """
    own = model.state_dict()
    shaped = [k for k in sd if k in own and tuple(sd[k].shape) != tuple(own[k].shape)]
    unexpected = [k for k in sd if k not in own]
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    headless = (
        bool(classifier)
        and f"{classifier}.weight" not in sd
        and bool(head_prefixes)
        and all(k.startswith(head_prefixes) for k in missing)
    )
    if headless:
        missing = []
    if shaped or unexpected or missing:
        total = len(shaped) + len(unexpected) + len(missing)
        examples = [f"missing {k}" for k in missing[:2]] + [f"unexpected {k}" for k in unexpected[:2]]
        examples += [f"{k} is {tuple(sd[k].shape)} not {tuple(own[k].shape)}" for k in shaped[:2]]
        raise AdvisorError(
            f"weights file {path} does not fit {label}: {total} keys mismatched "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(shaped)} of another shape; "
            f"e.g. {', '.join(examples[:3])})",
            f"pass a state dict saved from {label} or choose the matching model",
        )
    model.load_state_dict(dict(sd), strict=False)
    return not headless
