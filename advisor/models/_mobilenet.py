"""How torchvision MobileNetV2 / V3 are cut: ``stem``, ``ir1`` .. ``irN``, ``conv_last``."""

from __future__ import annotations

from torch import nn

from advisor.models._cut import Cut


def cut_mobilenet(model: nn.Module) -> Cut:
    """``stem`` = features[0], ``irK`` = each inverted residual, ``conv_last`` = features[-1].

    The head is adaptive average pooling, flatten and ``model.classifier`` (for V3 the
    classifier carries its own hidden layer, which stays in the head).
    """
    feats = list(model.features)
    blocks: list[tuple[str, nn.Module]] = [("stem", feats[0])]
    blocks += [(f"ir{i}", m) for i, m in enumerate(feats[1:-1], start=1)]
    blocks.append(("conv_last", feats[-1]))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), model.classifier)
    last = len(model.classifier) - 1
    return Cut(blocks=blocks, head=head, classifier=f"classifier.{last}", head_prefixes=("classifier.",))
