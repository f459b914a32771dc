"""How a timm model is cut: through its ``feature_info`` stage information.

Block 0 ``stem`` holds every top-level module run before the first feature module
(and that module too when it is a stride-2 stem output rather than a stage container,
such as ResNet's ``act1`` or MobileNetV3's ``bn1``). Then one block per ``feature_info`` entry, named
after its module (``layer1``, ``stages.0``, ``blocks.1``), holding every module run
since the previous cut; modules run after the last stage and before the head
(``conv_head``, ``bn2``, ``norm_pre`` ...) join the last block. The head runs timm's
own ``forward_head`` on a copy of the model that keeps only the head's modules.

The cut is checked on a random input: blocks then head must reproduce ``model(x)``,
and every parameter must belong to exactly one block or the head.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn

from advisor.errors import AdvisorError
from advisor.models._backbone import PROBE_SIZE
from advisor.models._cut import Cut


class TimmHead(nn.Module):
    """timm's ``forward_head`` (global pool + classifier) as a module of its own."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net  # a copy of the timm model that holds only the head's modules

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(x)


def _cannot_cut(name: str, why: str) -> AdvisorError:
    return AdvisorError(
        f"timm model {name} cannot be cut into sequential blocks ({why})",
        "use a CNN such as timm:resnet18",
    )


def probe_sizes_for(model: nn.Module) -> list[int]:
    """Input sides to probe with: the model's own size when it needs a fixed input, else a small
    side first and the model's nominal size as a fallback (some stems need more than 64 pixels)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    nominal = int(cfg["input_size"][-1]) if cfg.get("input_size") else 224
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


def cut_timm(model: nn.Module, name: str) -> Cut:
    """Cut a timm model (in eval mode afterwards) into sequential blocks plus ``forward_head``."""
    model.eval()
    info = getattr(model, "feature_info", None)
    feature_paths = [f.get("module") for f in info] if info else []
    if not feature_paths or not all(isinstance(p, str) and p for p in feature_paths):
        raise _cannot_cut(name, "it has no feature_info stage information")
    reductions = [f.get("reduction", 0) for f in info]
    if model._parameters or model._buffers:
        tensors = ", ".join(list(model._parameters) + list(model._buffers))
        raise _cannot_cut(name, f"it keeps tensors outside its modules: {tensors}")
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
    # modules after the last stage (conv_head, bn2, norm_pre, ...) join the last block
    if start < len(units):
        last_name, last_units = groups[-1]
        groups[-1] = (last_name, last_units + units[start:])
        feature_chs.pop(last_name, None)  # its output is no longer the feature module's
    blocks = [(n, _as_block(u)) for n, u in groups]

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
            for block_name, block in blocks:
                y = block(y)
                if not isinstance(y, torch.Tensor) or y.dim() != 4:
                    raise _cannot_cut(name, f"block {block_name} does not output one (N, C, H, W) tensor")
                want = feature_chs.get(block_name)
                if want and y.shape[1] != want:
                    raise _cannot_cut(name, f"block {block_name} does not output channels-first maps")
            out = head(y)
    except AdvisorError:
        raise
    except Exception as e:  # noqa: BLE001
        raise _cannot_cut(name, f"running the blocks in order failed: {type(e).__name__}") from e
    if not isinstance(out, torch.Tensor) or out.shape != reference.shape or not torch.allclose(
        out, reference, rtol=1e-4, atol=1e-5
    ):
        raise _cannot_cut(name, "running the blocks in order does not reproduce the model")

    classifier = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or ""
    if isinstance(classifier, (list, tuple)):
        classifier = classifier[0] if classifier else ""
    return Cut(
        blocks=blocks,
        head=head,
        classifier=str(classifier),
        head_prefixes=tuple(f"{n}." for n in head_names),
        probe_size=x.shape[-1],
    )
