"""How a timm model is cut: through its ``feature_info`` stage information.

Block 0 ``stem`` holds every top-level module run before the first feature module
(and that module too when it is a stride-2 stem output rather than a stage container,
such as ResNet's ``act1`` or MobileNetV3's ``bn1``). Then one block per ``feature_info`` entry, named
after its module (``layer1``, ``stages.0``, ``blocks.1``), holding every module run
since the previous cut; modules run after the last stage and before the head
(``conv_head``, ``bn2``, ``norm`` ...) join the last block. The head runs timm's
own ``forward_head`` on a copy of the model that keeps only the head's modules.

Transformers are cut by the same rule. A ViT keeps its class/register tokens and position
embedding on the model itself (tensors that timm's ``group_matcher()`` assigns to the stem) and adds
them in a method (``_pos_embed``), so its stem is :class:`TimmStem`: timm's own ``forward_features`` on
a copy of the model whose later modules are empty (patch embedding, tokens and position embedding,
``patch_drop``, ``norm_pre``). Its blocks are ``blocks.0`` .. ``blocks.N-1`` (``feature_info``), the
last one with the final ``norm``; the head is ``forward_head`` (pooling, ``fc_norm``, ``head``). Swin
gives ``stem`` (``patch_embed``) and ``layers.0`` .. ``layers.3``. Token models are built with timm's
``dynamic_img_size=True`` (:func:`dynamic_twin`), so any input side that is a whole number of patches
runs, with the position embedding resampled to the patch grid as timm resamples it.

The block outputs' :class:`~advisor.models._layout.Layout` is read from the model: 3-D outputs are
``nlc`` tokens with ``num_prefix_tokens`` prefix tokens, pooled like the model's ``global_pool``
(``token`` or ``avg``); 4-D outputs of a model whose ``output_fmt`` is ``NHWC`` are ``nhwc``; others
``nchw``. The cut is checked on a random input: blocks then head must reproduce ``model(x)``, every
block must output the layout's tensors, and every parameter must belong to exactly one block or the head.
"""

from __future__ import annotations

import copy
import inspect
import math
import re
from collections import OrderedDict

import torch
from torch import nn

from advisor.errors import AdvisorError
from advisor.models._backbone import PROBE_SIZE
from advisor.models._cut import Cut
from advisor.models._layout import Layout


class TimmHead(nn.Module):
    """timm's ``forward_head`` (global pool + classifier) as a module of its own."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net  # a copy of the timm model that holds only the head's modules

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(x)


class TimmStem(nn.Module):
    """What timm's ``forward_features`` runs before the first feature module, as a module of its own.

    ``net`` is a copy of the timm model holding only the stem's modules and the model's own tensors
    (class/register tokens, position embedding); every later body module is replaced by an empty
    one, so ``net.forward_features`` stops where the first block begins.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)


def _cannot_cut(name: str, why: str) -> AdvisorError:
    return AdvisorError(
        f"timm model {name} cannot be cut into sequential blocks ({why})",
        "use a CNN such as timm:resnet18 or a ViT such as timm:vit_small_patch14_dinov2",
    )


def dynamic_twin(model: nn.Module, name: str) -> nn.Module:
    """The model rebuilt with timm's ``dynamic_img_size=True`` and the same weights, when its class
    takes that option (ViT, DeiT, DINOv2, EVA, Swin ...); the model itself otherwise (every CNN).

    Such a model runs on any side that is a whole number of patches, its position embedding
    resampled to the patch grid at each call (timm's ``resample_abs_pos_embed``, as at load), so
    ``--image-size`` needs no new weights. The global random state is left as it was.
    """
    import timm

    if "dynamic_img_size" not in inspect.signature(type(model).__init__).parameters:
        return model
    if getattr(model, "dynamic_img_size", False):
        return model
    try:
        twin = _twin_on_meta(model, name)
        if twin is None:
            with torch.random.fork_rng(devices=[]):
                twin = timm.create_model(name, pretrained=False, num_classes=model.num_classes,
                                         dynamic_img_size=True)
            twin.load_state_dict(model.state_dict())
    except Exception:  # noqa: BLE001 - no dynamic twin: the model runs at its own size only
        return model
    twin.pretrained_cfg = getattr(model, "pretrained_cfg", None)
    twin.default_cfg = twin.pretrained_cfg
    return twin.train(model.training)


def at_input_size(module: nn.Module, side: int) -> nn.Module:
    """A copy of ``module`` (images in) in which every timm token model built by :func:`dynamic_twin` has
    what it would compute per call at ``side`` px computed once, with timm's own code, to the same values.

    * A ViT resamples its position embedding to the patch grid at every call (antialiased bicubic, an
      operator ONNX cannot express): timm's ``set_input_size`` resamples it once, with the same call on
      the same tensor; a call at ``side`` then adds it as it is.
    * A Swin block builds its shifted-window attention mask at every call: the block's own
      ``get_attn_mask`` builds it once for the map it sees at ``side`` (window and shift unchanged), kept
      as the buffer timm's static path reads; its cyclic shift becomes the shift modulo the map's side (the
      same roll; ONNX's form of ``torch.roll`` is wrong for a shift larger than the side, as on a 2 x 2
      map with shift 3).

    ``module`` is left unchanged; a module without such a model comes back as a plain copy. Inputs of
    another side still run for a ViT; a Swin copy expects ``side``. For exporting at a fixed input size.
    """
    copy_ = copy.deepcopy(module)
    grid_models = [m for m in copy_.modules() if getattr(m, "dynamic_img_size", False) is True
                   and hasattr(m, "set_input_size") and getattr(m, "pos_embed", None) is not None]
    for m in grid_models:
        with torch.no_grad():
            m.set_input_size(img_size=(int(side), int(side)))
    masked = [m for m in copy_.modules() if getattr(m, "dynamic_mask", False) is True and hasattr(m, "get_attn_mask")]
    if masked:
        seen: dict[int, torch.Tensor] = {}
        hooks = [m.register_forward_pre_hook(lambda _m, args, key=id(m): seen.setdefault(key, args[0]))
                 for m in masked]
        try:
            device = next(copy_.parameters(), torch.zeros(())).device
            with torch.no_grad():
                copy_(torch.zeros(1, 3, int(side), int(side), device=device))
        finally:
            for h in hooks:
                h.remove()
        for m in masked:
            x = seen[id(m)]  # (1, H, W, C): the mask covers the map padded to whole windows, as per call
            pad = [(-d) % w for d, w in zip(x.shape[1:3], m.window_size)]
            padded = torch.zeros(1, x.shape[1] + pad[0], x.shape[2] + pad[1], 1, dtype=x.dtype)
            mask = m.get_attn_mask(padded)
            m.dynamic_mask = False
            m.register_buffer("attn_mask", mask, persistent=False)
            # the cyclic shift rolls the unpadded map: by the shift modulo its side, the same roll (ONNX's
            # form of torch.roll assumes a shift smaller than the side, which a small map breaks)
            m.shift_size = tuple(int(s) % int(d) for s, d in zip(m.shift_size, x.shape[1:3]))
    return copy_


def _twin_on_meta(model: nn.Module, name: str) -> nn.Module | None:
    """The dynamic twin built on the meta device (no memory, no random initialisation), then given
    copies of ``model``'s tensors; None where that does not give a whole model (a buffer outside the
    state dict left without a value, a constructor that reads tensor values), for the caller to build
    it the plain way. The random initialisation was a third of a pretrained ViT-S/14's loading time,
    only to be overwritten."""
    import timm

    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            twin = timm.create_model(name, pretrained=False, num_classes=model.num_classes, dynamic_img_size=True)
        twin.load_state_dict({k: v.detach().clone() for k, v in model.state_dict().items()}, assign=True)
    except Exception:  # noqa: BLE001 - the plain way decides
        return None
    if any(t.is_meta for t in (*twin.parameters(), *twin.buffers())):
        return None
    return twin


def _first_reduction(model: nn.Module) -> int:
    info = getattr(model, "feature_info", None) or [{}]
    return max(1, int(info[0].get("reduction") or 1))


def probe_sizes_for(model: nn.Module) -> list[int]:
    """Input sides to probe with: the model's own size when it needs a fixed input, else a small
    side first and the model's nominal size as a fallback (some stems need more than 64 pixels).
    A ``dynamic_img_size`` model probes at the smallest whole number of patches >= 64 px."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    nominal = int(cfg["input_size"][-1]) if cfg.get("input_size") else 224
    if getattr(model, "dynamic_img_size", False) is True:
        r = _first_reduction(model)
        small = math.ceil(PROBE_SIZE / r) * r
        return [small] if small >= nominal else [small, nominal]
    if cfg.get("fixed_input_size"):
        return [nominal]
    small = max(PROBE_SIZE, int((cfg.get("min_input_size") or (3, 0, 0))[-1]))
    return [small] if small >= nominal else [small, nominal]


def _trace_top_level(model: nn.Module, fn, x):
    """Names of the top-level children called while running ``fn(x)``, in call order."""
    order: list[str] = []
    handles = []
    for child_name, child in model.named_children():
        handles.append(child.register_forward_pre_hook(lambda _m, _a, n=child_name: order.append(n)))
    try:
        out = fn(x)
    finally:
        for h in handles:
            h.remove()
    return order, out


def _expand(path: str, module: nn.Module, feature_paths: list[str]) -> list[tuple[str, nn.Module]]:
    """Split containers that hold feature modules into their children (recursively)."""
    if not any(f.startswith(path + ".") for f in feature_paths):
        return [(path, module)]
    units: list[tuple[str, nn.Module]] = []
    for child_name, child in module.named_children():
        units += _expand(f"{path}.{child_name}", child, feature_paths)
    return units


def _as_block(units: list[tuple[str, nn.Module]]) -> nn.Module:
    if len(units) == 1:
        return units[0][1]
    return nn.Sequential(OrderedDict((p.replace(".", "_"), m) for p, m in units))


def _stem_pattern(model: nn.Module) -> str | None:
    """timm's own regex for the stem's parameters (``group_matcher()["stem"]``), if the model has one."""
    try:
        matcher = model.group_matcher(coarse=True)
    except Exception:  # noqa: BLE001 - no matcher: the model keeps no stem tensors of its own
        return None
    stem = matcher.get("stem") if isinstance(matcher, dict) else None
    return stem if isinstance(stem, str) and stem else None


def _stem_net(model: nn.Module, stem_names: list[str], body_names: list[str]) -> nn.Module:
    """A copy of ``model`` with the stem's modules and the model's own tensors; later body modules empty."""
    net = copy.copy(model)
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    for child_name, child in model.named_children():
        if child_name in stem_names:
            modules[child_name] = child
        elif child_name in body_names:  # an empty stand-in: a container stays iterable
            modules[child_name] = nn.Sequential() if isinstance(child, (nn.Sequential, nn.ModuleList)) else nn.Identity()
    net._modules = modules
    net._parameters = OrderedDict(model._parameters)
    net._buffers = OrderedDict(model._buffers)
    net._non_persistent_buffers_set = set(model._non_persistent_buffers_set)
    return net


def _layout_of(model: nn.Module, out: torch.Tensor, name: str) -> Layout:
    """The layout of the last block's output ``out``, from the model's own declarations."""
    global_pool = getattr(model, "global_pool", None)
    if out.dim() == 3:
        n_prefix = int(getattr(model, "num_prefix_tokens", 0) or 0)
        if out.shape[1] <= n_prefix:
            raise _cannot_cut(name, "its last block outputs no patch tokens")
        pool = "token" if global_pool == "token" and n_prefix >= 1 else "avg"
        return Layout("nlc", pool, n_prefix)
    if out.dim() == 4:
        fmt = str(getattr(model, "output_fmt", "NCHW") or "NCHW").upper()
        return Layout("nhwc" if fmt == "NHWC" else "nchw", "avg", 0)
    raise _cannot_cut(name, f"its last block outputs a {out.dim()}-D tensor")


_WANT = {"nchw": "(N, C, H, W)", "nlc": "(N, L, C)", "nhwc": "(N, H, W, C)"}


def _run_stem(stem: nn.Module, side: int) -> bool:
    try:
        with torch.no_grad():
            stem(torch.zeros(1, 3, side, side))
        return True
    except Exception:  # noqa: BLE001 - the stem refuses that side
        return False


def cut_timm(model: nn.Module, name: str) -> Cut:
    """Cut a timm model (in eval mode afterwards) into sequential blocks plus ``forward_head``.

    Build token models through :func:`dynamic_twin` first for any input side to run.
    """
    model.eval()
    info = getattr(model, "feature_info", None)
    feature_paths = [f.get("module") for f in info] if info else []
    if not feature_paths or not all(isinstance(p, str) and p for p in feature_paths):
        raise _cannot_cut(name, "it has no feature_info stage information")
    reductions = [f.get("reduction", 0) for f in info]
    own_tensors = list(model._parameters) + list(model._buffers)
    if own_tensors:
        stem_re = _stem_pattern(model)
        outside = [t for t in own_tensors if not (stem_re and re.match(stem_re, t))]
        if outside:
            raise _cannot_cut(name, f"it keeps tensors outside its modules: {', '.join(outside)}")
    if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
        raise _cannot_cut(name, "it has no forward_features/forward_head")

    failure: Exception | None = None
    for size in probe_sizes_for(model):
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        try:
            with torch.no_grad():
                reference = model(x)
                body_order, feats = _trace_top_level(model, model.forward_features, x)
                head_order, _ = _trace_top_level(model, model.forward_head, feats)
            failure = None
            break
        except Exception as e:  # noqa: BLE001 - any failure means the model does not fit the scheme
            failure = e
    if failure is not None:
        raise _cannot_cut(name, f"probe forward failed: {type(failure).__name__}") from failure
    if len(set(body_order)) != len(body_order):
        raise _cannot_cut(name, "a top-level module runs more than once")
    if set(body_order) & set(head_order):
        raise _cannot_cut(name, "a module runs in both features and head")

    children = dict(model.named_children())
    units: list[tuple[str, nn.Module]] = []
    for child_name in body_order:
        units += _expand(child_name, children[child_name], feature_paths)
    unit_paths = [p for p, _ in units]
    missing = [f for f in feature_paths if f not in unit_paths]
    if missing:
        raise _cannot_cut(name, f"feature module {missing[0]} is not a sequential step")
    positions = [unit_paths.index(f) for f in feature_paths]
    if positions != sorted(positions):
        raise _cannot_cut(name, "feature modules do not run in order")

    groups: list[tuple[str, list[tuple[str, nn.Module]]]] = []
    feature_chs: dict[str, int] = {}  # block name -> channels feature_info promises at its end
    first = positions[0]
    if 0 < reductions[0] <= 2 and not isinstance(units[first][1], (nn.Sequential, nn.ModuleList)):
        # the first feature is the stem's own output (ResNet act1, MobileNetV3 bn1, CSPDarknet
        # stem.conv1), not a stage of blocks (EfficientNet blocks.0 is a stride-2 stage)
        groups.append(("stem", units[: first + 1]))
        feature_chs["stem"] = int(info[0].get("num_chs", 0))
        start = first + 1
        todo = list(zip(feature_paths[1:], positions[1:]))
    else:
        if first > 0:
            groups.append(("stem", units[:first]))
        start = first
        todo = list(zip(feature_paths, positions))
    chs_by_path = {f.get("module"): int(f.get("num_chs", 0)) for f in info}
    for fpath, pos in todo:
        groups.append((fpath, units[start : pos + 1]))
        feature_chs[fpath] = chs_by_path[fpath]
        start = pos + 1
    # modules after the last stage (conv_head, bn2, norm, ...) join the last block
    if start < len(units):
        last_name, last_units = groups[-1]
        groups[-1] = (last_name, last_units + units[start:])
        feature_chs.pop(last_name, None)  # its output is no longer the feature module's
    blocks = [(n, _as_block(u)) for n, u in groups]
    if own_tensors:
        # the model adds its own tensors in a method (a ViT's _pos_embed): the stem runs timm's
        # forward_features, stopped where the first block begins
        if not groups or groups[0][0] != "stem" or any("." in p for p, _ in groups[0][1]):
            raise _cannot_cut(name, "its own tensors are not used by a stem of whole top-level modules")
        stem_names = [p for p, _ in groups[0][1]]
        blocks[0] = ("stem", TimmStem(_stem_net(model, stem_names, body_order)))

    # head: a copy of the model holding every top-level module the body does not run
    head_names = [n for n in children if n not in body_order]
    net = copy.copy(model)
    net._modules = OrderedDict((n, children[n]) for n in head_names)
    net._parameters = OrderedDict()
    net._buffers = OrderedDict()
    net._non_persistent_buffers_set = set()
    head = TimmHead(net)

    # every parameter in exactly one place
    owned: list[int] = []
    for _, block in blocks:
        owned += [id(p) for p in block.parameters()]
    owned += [id(p) for p in head.parameters()]
    all_params = {id(p) for p in model.parameters()}
    if len(owned) != len(set(owned)) or set(owned) != all_params:
        raise _cannot_cut(name, "its parameters do not split cleanly between blocks and head")

    try:
        with torch.no_grad():
            y = x
            outs: list[torch.Tensor] = []
            for block_name, block in blocks:
                y = block(y)
                if not isinstance(y, torch.Tensor) or y.dim() not in (3, 4):
                    raise _cannot_cut(name, f"block {block_name} does not output one (N, C, H, W) or (N, L, C) tensor")
                outs.append(y)
            layout = _layout_of(model, y, name)
            for (block_name, _), o in zip(blocks, outs):
                if o.dim() != y.dim():
                    raise _cannot_cut(name, f"block {block_name} does not output one {_WANT[layout.kind]} tensor")
                want = feature_chs.get(block_name)
                if want and o.shape[layout.channel_dim] != want:
                    raise _cannot_cut(name, f"block {block_name} does not output {layout.kind} "
                                            f"{'channels-first maps' if layout.kind == 'nchw' else 'tensors'}")
            out = head(y)
    except AdvisorError:
        raise
    except Exception as e:  # noqa: BLE001
        raise _cannot_cut(name, f"running the blocks in order failed: {type(e).__name__}") from e
    if not isinstance(out, torch.Tensor) or out.shape != reference.shape or not torch.allclose(
        out, reference, rtol=1e-4, atol=1e-5
    ):
        raise _cannot_cut(name, "running the blocks in order does not reproduce the model")

    # which input sides run: a dynamic token model needs whole patches where its stem does not pad
    cfg = getattr(model, "pretrained_cfg", None) or {}
    dynamic = getattr(model, "dynamic_img_size", False) is True
    fixed_size = None
    patch_size = 1
    if not dynamic and cfg.get("fixed_input_size"):
        fixed_size = int(x.shape[-1])
    elif dynamic and not _run_stem(blocks[0][1], int(x.shape[-1]) + 1):
        patch_size = _first_reduction(model)
    no_decay_names = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    no_decay = tuple(p for k, p in model.named_parameters() if k in no_decay_names)

    classifier = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or ""
    if isinstance(classifier, (list, tuple)):
        classifier = classifier[0] if classifier else ""
    return Cut(
        blocks=blocks,
        head=head,
        classifier=str(classifier),
        head_prefixes=tuple(f"{n}." for n in head_names),
        probe_size=x.shape[-1],
        layout=layout,
        patch_size=patch_size,
        fixed_size=fixed_size,
        no_decay=no_decay,
    )
