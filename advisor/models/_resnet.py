"""How torchvision ResNets (and wide / ResNeXt variants) are cut: ``stem``, ``layerL.B``."""

from __future__ import annotations

from torch import nn

from advisor.models._cut import Cut


def cut_resnet(model: nn.Module) -> Cut:
    """``stem`` = conv1, bn1, relu, maxpool; then every residual block ``layer1.0`` .. ``layer4.K``.

    The head is the average pool, flatten and ``fc``.
    """
    stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
    blocks: list[tuple[str, nn.Module]] = [("stem", stem)]
    for li in range(1, 5):
        layer = getattr(model, f"layer{li}")
        blocks += [(f"layer{li}.{bi}", b) for bi, b in enumerate(layer)]
    head = nn.Sequential(model.avgpool, nn.Flatten(1), model.fc)
    return Cut(blocks=blocks, head=head, classifier="fc", head_prefixes=("fc.",))
