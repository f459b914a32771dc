"""How torchvision ConvNeXt is cut: ``stem``, ``stageS.J`` (downsampling merged into a stage's first block)."""

from __future__ import annotations

from torch import nn

from advisor.models._cut import Cut


def cut_convnext(model: nn.Module) -> Cut:
    """``stem`` = features[0]; then every CNBlock as ``stageS.J``.

    torchvision lays features out as stem, stage1, downsample, stage2, downsample, ...;
    each downsampling layer is merged into the first block of the stage it precedes
    (``stage2.0`` = Sequential(downsample, first CNBlock)). The head is the average
    pool and ``model.classifier`` (LayerNorm2d, Flatten, Linear).
    """
    feats = list(model.features)
    blocks: list[tuple[str, nn.Module]] = [("stem", feats[0])]
    pending: nn.Module | None = None
    stage = 0
    for module in feats[1:]:
        is_stage = len(module) > 0 and all(type(b).__name__ == "CNBlock" for b in module)
        if not is_stage:
            pending = module  # downsampling layer before the next stage
            continue
        stage += 1
        for j, b in enumerate(module):
            if j == 0 and pending is not None:
                b = nn.Sequential(pending, b)
                pending = None
            blocks.append((f"stage{stage}.{j}", b))
    if pending is not None:  # a trailing non-stage module: keep it in the last block
        name, last = blocks[-1]
        blocks[-1] = (name, nn.Sequential(last, pending))
    head = nn.Sequential(model.avgpool, model.classifier)
    last_idx = len(model.classifier) - 1
    return Cut(blocks=blocks, head=head, classifier=f"classifier.{last_idx}", head_prefixes=("classifier.",))
