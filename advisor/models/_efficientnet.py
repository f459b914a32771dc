"""How torchvision EfficientNet (B0-B7, V2 S/M/L) is cut: ``stem``, ``stageS.J``, ``conv_last``."""

from __future__ import annotations

from torch import nn

from advisor.models._cut import Cut


def cut_efficientnet(model: nn.Module) -> Cut:
    """``stem`` = features[0]; every (Fused)MBConv block of features[1..-2] as ``stageS.J``;
    ``conv_last`` = features[-1]. The head is the average pool, flatten and ``model.classifier``.
    """
    feats = list(model.features)
    blocks: list[tuple[str, nn.Module]] = [("stem", feats[0])]
    for s, stage in enumerate(feats[1:-1], start=1):
        blocks += [(f"stage{s}.{j}", b) for j, b in enumerate(stage)]
    blocks.append(("conv_last", feats[-1]))
    head = nn.Sequential(model.avgpool, nn.Flatten(1), model.classifier)
    last = len(model.classifier) - 1
    return Cut(blocks=blocks, head=head, classifier=f"classifier.{last}", head_prefixes=("classifier.",))
