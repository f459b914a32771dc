"""Backbones by name: ``create_backbone`` and ``list_models``."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from advisor.errors import AdvisorError
from advisor.models._backbone import Backbone
from advisor.models._convnext import cut_convnext
from advisor.models._cut import Cut
from advisor.models._device import resolve_device
from advisor.models._efficientnet import cut_efficientnet
from advisor.models._mobilenet import cut_mobilenet
from advisor.models._resnet import cut_resnet
from advisor.models._swin import cut_swin
from advisor.models._timm import cut_timm, dynamic_twin
from advisor.models._vit import build_vit, check_vit_side, cut_vit, is_vit
from advisor.models._weights import (
    classes_in,
    load_checked,
    load_timm_pretrained,
    load_torchvision_pretrained,
    parse_weights,
    read_state_dict,
    timm_preprocessing,
    torchvision_default_weights,
    torchvision_preprocessing,
    torchvision_weight_names,
)

TIMM_PREFIX = "timm:"

#: torchvision models this package knows how to cut, and how.
_FAMILIES: dict[str, Callable[[nn.Module], Cut]] = {
    "mobilenet_v2": cut_mobilenet,
    "mobilenet_v3_small": cut_mobilenet,
    "mobilenet_v3_large": cut_mobilenet,
    **{n: cut_resnet for n in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")},
    **{n: cut_resnet for n in ("wide_resnet50_2", "wide_resnet101_2")},
    **{n: cut_resnet for n in ("resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d")},
    **{f"efficientnet_b{i}": cut_efficientnet for i in range(8)},
    **{f"efficientnet_v2_{s}": cut_efficientnet for s in ("s", "m", "l")},
    **{f"convnext_{s}": cut_convnext for s in ("tiny", "small", "base", "large")},
    **{f"vit_{s}": cut_vit for s in ("b_16", "b_32", "l_16", "l_32", "h_14")},
    **{f"swin_{s}": cut_swin for s in ("t", "s", "b", "v2_t", "v2_s", "v2_b")},
}


def list_models() -> list[str]:
    """torchvision model names ``create_backbone`` accepts; any ``timm:NAME`` CNN, ViT or Swin is accepted too."""
    return list(_FAMILIES)


#: A CNN's convolution weights are stored channels-last: its convolutions then run channels-last whatever the
#: input's layout (PyTorch follows the weight), about 1.1-1.5x faster on a CPU in measuring, caching, probing and
#: training (benchmarks/channels_last.py) and the layout a GPU's tensor cores want. The same computation in
#: another memory order: the numbers agree to float32 roundoff, not bit for bit (tests/engine pins both).
CHANNELS_LAST = True


def create_backbone(name: str, weights: str | None = None, *, device: str = "cpu",
                    image_size: int | None = None, pool: str | None = None) -> Backbone:
    """Build the backbone ``name`` cut into named blocks, in eval mode on ``device``.

    Args:
        name: a name from :func:`list_models` or ``timm:NAME`` (e.g. ``timm:resnet18``,
            ``timm:vit_small_patch14_dinov2``).
        weights: ``None`` for pretrained ImageNet weights (from the local cache; downloaded
            only when the network is reachable), ``"random"``/``"none"`` for random init,
            a torchvision weights name such as ``"IMAGENET1K_V2"``, or a path to a state dict.
        device: ``"cpu"``, ``"cuda"`` (``"cuda:N"``) or ``"auto"``.
        image_size: the input side the backbone will see, checked here (a ViT needs a whole
            number of patches). torchvision's ViT is built at this side, its position embedding
            interpolated from the weights' (bicubic, torchvision's ``interpolate_embeddings``);
            timm's transformers run any whole number of patches. ``None``: the weights' own size.
        pool: ``"avg"`` or ``"token"`` to override the layout's default pooling (see
            :class:`~advisor.models._layout.Layout`); ``None`` keeps the family's default.
    """
    if not isinstance(name, str) or not name.strip():
        raise AdvisorError("model name is empty", f"choose one of {', '.join(_FAMILIES)} or timm:NAME")
    dev = resolve_device(device)
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise AdvisorError(f"image size must be a whole number of pixels >= 1, got {image_size!r}",
                           "pass --image-size N")
    text = name.strip()
    if text.lower().startswith(TIMM_PREFIX):
        backbone = _create_timm(text[len(TIMM_PREFIX) :].strip(), weights)
    else:
        backbone = _create_torchvision(text.lower(), weights, image_size)
    if image_size is not None:
        backbone.check_image_size(image_size)
    if pool is not None:
        backbone.set_pool(pool)
    backbone.to(dev)
    if CHANNELS_LAST and backbone.layout.kind == "nchw":
        backbone.to(memory_format=torch.channels_last)
    backbone.eval()
    return backbone


def _build_backbone(label: str, weights_id: str, cut: Cut, has_head: bool,
                    num_classes: int | None, preprocessing: dict) -> Backbone:
    return Backbone(
        name=label,
        weights_id=weights_id,
        blocks=cut.blocks,
        head=cut.head if has_head else None,
        num_source_classes=num_classes if has_head else None,
        preprocessing=preprocessing,
        probe_size=cut.probe_size,
        layout=cut.layout,
        patch_size=cut.patch_size,
        fixed_size=cut.fixed_size,
        no_decay=cut.no_decay_names(has_head),
    )


def _num_classes(model: nn.Module, cut: Cut) -> int | None:
    w = model.state_dict().get(f"{cut.classifier}.weight") if cut.classifier else None
    return int(w.shape[0]) if w is not None else None


# --------------------------------------------------------------------------- torchvision
def _create_torchvision(name: str, weights, image_size: int | None = None) -> Backbone:
    from torchvision.models import get_model

    if name not in _FAMILIES:
        raise AdvisorError(f"unknown model '{name}'", f"choose one of {', '.join(_FAMILIES)} or timm:NAME")
    cut_fn = _FAMILIES[name]
    request = parse_weights(weights, named=torchvision_weight_names(name))
    default = torchvision_default_weights(name)
    vit = is_vit(name)
    if vit and image_size is not None:
        check_vit_side(name, image_size)  # before building: torchvision asserts it
    at_size = vit and image_size is not None

    if request.kind in ("pretrained", "named"):
        if request.kind == "named":
            from torchvision.models import get_model_weights

            entry = get_model_weights(name)[request.value]
        else:
            entry = default
            if entry is None:
                raise AdvisorError(f"torchvision has no pretrained weights for {name}", "pass --weights PATH")
        model = load_torchvision_pretrained(name, entry)
        if vit and image_size is not None and image_size != model.image_size:
            model = build_vit(name, image_size, model.state_dict(), num_classes=model.num_classes)
        model.eval()
        cut = cut_fn(model)
        weights_id = entry.name if hasattr(entry, "name") else str(entry)
        return _build_backbone(name, weights_id, cut, True, _num_classes(model, cut),
                               torchvision_preprocessing(entry))

    if request.kind == "random":
        model = _seeded(lambda: build_vit(name, image_size) if at_size else get_model(name, weights=None))
        model.eval()
        cut = cut_fn(model)
        return _build_backbone(name, "random", cut, True, _num_classes(model, cut),
                               torchvision_preprocessing(default))

    # a local state-dict file
    sd, weights_id = read_state_dict(request.value)
    model = get_model(name, weights=None)
    cut = cut_fn(model)
    k = classes_in(sd, cut.classifier)
    if k is not None and k != _num_classes(model, cut):
        model = get_model(name, weights=None, num_classes=k)
        cut = cut_fn(model)
    has_head = load_checked(model, sd, label=name, path=request.value, classifier=cut.classifier,
                            head_prefixes=cut.head_prefixes)
    if at_size and image_size != model.image_size:
        model = build_vit(name, image_size, model.state_dict(), num_classes=model.num_classes)
        cut = cut_fn(model)
    model.eval()
    return _build_backbone(name, weights_id, cut, has_head, _num_classes(model, cut),
                           torchvision_preprocessing(default))


# --------------------------------------------------------------------------- timm
def _create_timm(name: str, weights) -> Backbone:
    import timm

    label = f"{TIMM_PREFIX}{name}"
    if not name or not timm.is_model(name):
        raise AdvisorError(
            f"unknown timm model '{name}'",
            "pick a name from timm.list_models() such as timm:resnet18 or timm:efficientnet_b0",
        )
    request = parse_weights(weights)
    if request.kind == "pretrained":
        model = dynamic_twin(load_timm_pretrained(name), name)
        model.eval()
        cut = cut_timm(model, name)
        cfg = getattr(model, "pretrained_cfg", None) or {}
        weights_id = f"timm:{cfg.get('tag') or 'default'}"
        return _build_backbone(label, weights_id, cut, True, _num_classes(model, cut),
                               timm_preprocessing(cfg))

    if request.kind == "random":
        model = _seeded(lambda: _timm_random(name))
        cut = cut_timm(model, name)
        return _build_backbone(label, "random", cut, True, _num_classes(model, cut),
                               timm_preprocessing(getattr(model, "pretrained_cfg", None)))

    sd, weights_id = read_state_dict(request.value)
    model = _timm_random(name)
    cut = cut_timm(model, name)
    k = classes_in(sd, cut.classifier)
    if k is not None and k != _num_classes(model, cut):
        model = _timm_random(name, num_classes=k)
        cut = cut_timm(model, name)
    has_head = load_checked(model, sd, label=label, path=request.value, classifier=cut.classifier,
                            head_prefixes=cut.head_prefixes)
    model.eval()
    return _build_backbone(label, weights_id, cut, has_head, _num_classes(model, cut),
                           timm_preprocessing(getattr(model, "pretrained_cfg", None)))


#: ``--weights random`` draws its initial weights from this seed, so "random" names one set of weights: the caches
#: (keyed by the weights' id) and a rerun see the same network. The caller's random state is left as it was.
RANDOM_INIT_SEED = 0


def _seeded(build):
    """``build()`` with torch's CPU generator seeded by :data:`RANDOM_INIT_SEED`, restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        return build()


def _timm_random(name: str, **kwargs) -> nn.Module:
    import timm

    try:
        model = timm.create_model(name, pretrained=False, **kwargs)
    except Exception as e:  # noqa: BLE001
        raise AdvisorError(
            f"timm could not build {name} ({type(e).__name__}: {' '.join(str(e).split())[:120]})",
            "pick another name from timm.list_models()",
        ) from e
    return dynamic_twin(model, name).eval()

