"""How torchvision's Swin Transformers (``swin_t`` ... ``swin_v2_b``) are cut: ``stem``, ``stage1`` .. ``stage4``.

``stem`` = features[0] (patch embedding to channels-last ``(N, H, W, C)`` windows); each stage of
Swin blocks is one block, the patch merging before it included (as ConvNeXt's downsampling joins
the stage it precedes); the last stage carries the final ``norm``. The head is torchvision's own
permute, average pool, flatten and ``head``. Layout: ``nhwc``, pooled by the mean over positions.
Any input side runs (the windows are padded). Free of weight decay (as timm's Swin declares it): the
relative-position bias tables, and V2's continuous position-bias MLP and attention logit scales.
"""

from __future__ import annotations

from torch import nn

from advisor.models._cut import Cut
from advisor.models._layout import Layout


#: Parameter-name parts that take no weight decay (timm's ``no_weight_decay()`` for Swin V1 and V2).
NO_DECAY_PARTS = ("relative_position_bias_table", "cpb_mlp", "logit_scale")


def cut_swin(model: nn.Module) -> Cut:
    feats = list(model.features)
    blocks: list[tuple[str, nn.Module]] = [("stem", feats[0])]
    pending: nn.Module | None = None
    for module in feats[1:]:
        if not isinstance(module, nn.Sequential):
            pending = module  # patch merging before the next stage
            continue
        stage = module if pending is None else nn.Sequential(pending, module)
        pending = None
        blocks.append((f"stage{len(blocks)}", stage))
    name, last = blocks[-1]
    tail = [m for m in (pending, model.norm) if m is not None]
    blocks[-1] = (name, nn.Sequential(last, *tail))
    head = nn.Sequential(model.permute, model.avgpool, model.flatten, model.head)
    no_decay = tuple(p for n, p in model.named_parameters() if any(part in n for part in NO_DECAY_PARTS))
    return Cut(blocks=blocks, head=head, classifier="head", head_prefixes=("head.",),
               layout=Layout("nhwc", "avg", 0), no_decay=no_decay)
