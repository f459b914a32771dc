"""``lora``: low-rank adapters (Hu et al. 2022) through Hugging Face ``peft``, merged into the weights after training.

What gets an adapter (:func:`select_targets`): the ``Conv2d`` and ``Linear`` layers of the backbone's blocks whose
qualified name ``BLOCK.PATH`` (``blocks.3.attn.qkv``, ``blocks.1.0.conv_pw``, ``stem.conv_stem``) the regular
expression ``target`` is found in; without ``target``, per family (:func:`default_targets`): a CNN's pointwise
convolutions (1x1, ungrouped) and linear layers, a transformer's linear layers (in timm's ViT and Swin blocks:
attention ``qkv`` and ``proj``, MLP ``fc1`` and ``fc2``; an ``nn.MultiheadAttention``'s own projection, which it
reads without calling, is left out). A grouped convolution (a depthwise one) is never a default target, and a
``target`` that matches one is refused: ``peft`` needs the rank divisible by the groups to build its adapter, and
even then cannot merge it (the adapter of a grouped conv mixes channels, which no grouped kernel can hold),
while the saved model is always the merged one.

Training: ``peft.LoraModel`` injects the adapters into the blocks in place (``lora_dropout`` 0, ``B`` = 0 at the
start, so training starts from the pretrained network exactly; the update is ``alpha / rank * B A``); the shared
loop (:func:`advisor.train._loop.fit_network`) trains the adapters and a new head only, over the blocks from the
lowest to the highest adapted one (those below are frozen, their output from the activation cache; those
blocks run in train mode, so a CNN's BatchNorm running statistics follow the target as in full fine-tuning;
BatchNorm scales and shifts do not train). Rates, decay, LP-FT and the family recipe as in last_k.

After training (best epoch restored), ``merge_and_unload`` folds every adapter into its layer's weight and
puts the plain layer back: the network is the backbone's own architecture again, with its BatchNorm buffers
(the running statistics learnt on the target) in place, so ``--save``, predict, the pyfunc, serve and export
need nothing of ``peft``. ``extra["merge_max_abs_diff"]``: the largest difference between the adapted and the
merged network's logits on (up to 64) validation items, which is float rounding (``merge_logit_scale``: the
largest logit's magnitude, what it is relative to).

``peft`` is imported only here, when a lora run starts (``advisor --help`` never loads it); a missing ``peft`` is
one line naming ``pip install 'advisor[lora]'``. advisor's switches (``HF_HUB_OFFLINE``,
``HF_HUB_DISABLE_TELEMETRY``, :mod:`advisor.offline`) are set before ``peft`` and ``transformers`` load.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from advisor import strategies
from advisor.context import TrainContext
from advisor.errors import AdvisorError
from advisor.train._base import EpochCallback, TrainResult
from advisor.train._finetune import _FIT_KEYS, _result
from advisor.train._loop import fit_network
from advisor.train._network import parse_network_params

#: The oldest peft this trainer is written for (``pyproject.toml``'s ``lora`` extra).
MIN_PEFT = (0, 16)
INSTALL = "pip install 'advisor[lora]'"
ADAPTER = "default"


# =========================================================================== peft
def _version_tuple(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split(".")[:3]:
        digits = re.match(r"\d+", part)
        out.append(int(digits.group()) if digits else 0)
    return tuple(out)


def check_peft() -> str:
    """peft's version, without importing it; one-line AdvisorError when it is missing or older than MIN_PEFT."""
    import importlib.metadata
    import importlib.util

    try:
        found = importlib.util.find_spec("peft") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise AdvisorError("lora needs the peft package, which is not installed", INSTALL)
    try:
        version = importlib.metadata.version("peft")
    except importlib.metadata.PackageNotFoundError:
        version = "0"
    if _version_tuple(version) < MIN_PEFT:
        raise AdvisorError(f"lora needs peft >= {'.'.join(map(str, MIN_PEFT))}, found {version}",
                           "pip install -U 'advisor[lora]'")
    return version


def _peft():
    check_peft()
    import advisor.offline

    advisor.offline.apply_defaults()  # no call home from transformers or the hub (set already by `import advisor`)
    import peft

    return peft


# =========================================================================== targets
@dataclass(frozen=True)
class Target:
    """One layer that can take an adapter: its qualified name, its block's index, its path inside the block."""

    name: str  # BLOCK.PATH
    block: int
    path: str
    module: nn.Module

    @property
    def groups(self) -> int:
        return int(getattr(self.module, "groups", 1))


def adaptable(backbone) -> list[Target]:
    """Every ``Conv2d`` and ``Linear`` layer of the backbone's blocks, in order (none inside an
    ``nn.MultiheadAttention``, which reads its projections' weights without calling them)."""
    out = []
    for i, (bname, block) in enumerate(zip(backbone.block_names, backbone.blocks)):
        if isinstance(block, (nn.Conv2d, nn.Linear)):  # a block that is one layer
            out.append(Target(bname, i, "", block))
            continue
        if isinstance(block, nn.MultiheadAttention):
            continue
        attention = [path for path, m in block.named_modules() if path and isinstance(m, nn.MultiheadAttention)]
        for path, m in block.named_modules():
            if path and isinstance(m, (nn.Conv2d, nn.Linear)) and not any(path.startswith(a + ".") for a in attention):
                out.append(Target(f"{bname}.{path}", i, path, m))
    return out


def default_targets(backbone) -> list[Target]:
    """The layers ``target`` picks when not given: a CNN's pointwise (1x1, ungrouped) Conv2d and Linear layers;
    a transformer's Linear layers (timm: attention qkv and proj, MLP fc1 and fc2)."""
    family = backbone.layout.family
    out = []
    for t in adaptable(backbone):
        if isinstance(t.module, nn.Linear):
            out.append(t)
        elif family == "cnn" and t.groups == 1 and all(k == 1 for k in t.module.kernel_size):
            out.append(t)
    return out


def select_targets(backbone, target: str | None, rank: int) -> list[Target]:
    """The layers that get adapters, checked against ``rank``: one-line AdvisorError for a pattern that matches no
    Conv2d or Linear layer, or one that matches a grouped convolution."""
    if target is None:
        chosen = default_targets(backbone)
        if not chosen:
            raise AdvisorError(f"{backbone.name} has no layer lora adapts by default "
                               f"({strategies.LORA_DEFAULT_TARGETS.get(backbone.layout.family, '')})",
                               "pass target=REGEX naming Conv2d or Linear layers")
        return chosen
    rx = re.compile(target)
    layers = adaptable(backbone)
    chosen = [t for t in layers if rx.search(t.name)]
    if not chosen:
        other = [f"{bname}.{path}" for bname, block in zip(backbone.block_names, backbone.blocks)
                 for path, _ in block.named_modules() if path and rx.search(f"{bname}.{path}")]
        what = f" (it matches only {other[0]}, which is not a Conv2d or Linear layer)" if other else ""
        examples = ", ".join(t.name for t in layers[:3])
        raise AdvisorError(f"lora target {target!r} matches no Conv2d or Linear layer of {backbone.name}{what}",
                           f"use a regular expression found in names such as {examples}")
    for t in chosen:
        if t.groups > 1:
            if rank % t.groups:
                raise AdvisorError(f"lora rank {rank} is not divisible by the groups ({t.groups}) of targeted conv "
                                   f"{t.name}",
                                   f"use a rank divisible by {t.groups}, or a target that leaves {t.name} out")
            raise AdvisorError(f"lora target {target!r} matches grouped conv {t.name} (groups {t.groups}), whose "
                               "adapter peft cannot merge into its weights (a lora model is saved merged)",
                               "use a target that leaves grouped (depthwise) convs out, e.g. 'conv_pw'")
    return chosen


def check_lora(backbone, params: dict | None = None) -> None:
    """Everything about a lora run that can fail before the data loads: peft installed, the parameters valid,
    the target matching layers that can take a mergeable adapter (the strategy's ``backbone_check``)."""
    check_peft()
    p = strategies.get("lora").validate(params or {}, n_blocks=len(backbone.blocks))
    select_targets(backbone, p["target"], p["rank"])


# =========================================================================== adapters
class Adapted:
    """The backbone's blocks with peft's LoRA layers injected in place; :meth:`merge` folds them back."""

    def __init__(self, backbone, targets: list[Target], rank: int, alpha: float):
        peft = _peft()
        self.backbone = backbone
        self.root = nn.ModuleList(list(backbone.blocks))  # names "I.PATH", the same module objects
        names = [f"{t.block}.{t.path}" if t.path else str(t.block) for t in targets]
        config = peft.LoraConfig(r=int(rank), lora_alpha=float(alpha), lora_dropout=0.0, bias="none",
                                 target_modules="|".join(re.escape(n) for n in names), init_lora_weights=True)
        self.model = peft.LoraModel(self.root, config, ADAPTER)
        self._sync()
        self.names = [t.name for t in targets]

    def _sync(self) -> None:
        """The backbone's block list holds what the root holds (a block that was itself a layer is replaced)."""
        for i, block in enumerate(self.root):
            if self.backbone.blocks[i] is not block:
                self.backbone.blocks[i] = block

    @staticmethod
    def adapter_params(modules) -> list[torch.Tensor]:
        """The adapters' parameters (``lora_A``, ``lora_B``) in ``modules``: what trains besides the head."""
        out: dict[int, torch.Tensor] = {}
        for m in modules:
            for name, p in m.named_parameters():
                if ".lora_A." in f".{name}" or ".lora_B." in f".{name}":
                    out[id(p)] = p
        return list(out.values())

    def merge(self) -> nn.ModuleList:
        """Fold every adapter into its layer's weight and put the plain layers back (in place)."""
        self.root = self.model.merge_and_unload(progressbar=False, safe_merge=True)
        self._sync()
        return self.root


def _replace_blocks(net, blocks) -> None:
    """Point the trained network's block lists at ``blocks`` (after a merge replaced a block that was a layer)."""
    flat = [net.frozen, net.top, net.above]
    i = 0
    for part in flat:
        for j in range(len(part)):
            if part[j] is not blocks[i]:
                part[j] = blocks[i]
            i += 1


def run_lora(ctx: TrainContext, params: dict, callback: EpochCallback | None = None) -> TrainResult:
    """Train low-rank adapters and a new head, then merge the adapters (see the module docstring)."""
    t0 = time.perf_counter()
    bb = ctx.backbone
    n = len(bb.blocks)
    p = parse_network_params(params, strategy="lora", n_blocks=n, family=bb.layout.family)
    if p["alpha"] is None:
        p["alpha"] = float(p["rank"])
    targets = select_targets(bb, p["target"], p["rank"])  # before any image is read
    adapted = Adapted(bb, targets, p["rank"], p["alpha"])
    first, last = min(t.block for t in targets), max(t.block for t in targets)
    fitted = fit_network(ctx, [ctx.dataset.primary_task], ctx.split.train, ctx.split.val, callback=callback,
                         progress_stage="lora", block_range=(first, last), only=Adapted.adapter_params,
                         **{key: p[key] for key in _FIT_KEYS if key != "k"})
    probe = np.asarray(ctx.split.val, dtype=np.int64)[:64]
    before = fitted.logits(probe)[0]
    merged = adapted.merge()
    _replace_blocks(fitted.net, list(merged))
    after = fitted.logits(probe)[0]
    result = _result("lora", ctx, fitted, p, t0)
    result.extra.update({
        "adapted_layers": len(targets),
        "adapted_blocks": sorted({bb.block_names[t.block] for t in targets}, key=list(bb.block_names).index),
        "merge_max_abs_diff": float((before - after).abs().max()) if before.numel() else 0.0,
        "merge_logit_scale": float(before.abs().max()) if before.numel() else 0.0,
        "peft_version": check_peft(),
    })
    return result
