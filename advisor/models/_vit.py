"""How torchvision's Vision Transformers (``vit_b_16`` ...) are cut, and built at an image size.

Blocks: ``stem`` (``conv_proj`` patches to tokens, the class token prepended, the position
embedding added, dropout), ``encoder_layer_0`` .. ``encoder_layer_{N-1}`` (torchvision's own names;
the last one with the final ``ln``). The head takes the class token and applies ``heads``.
Layout: ``nlc`` tokens, one prefix token (the class token), pooled by the class token as the source
head pools. torchvision's ViT runs at the one side it was built for: :func:`build_vit` builds it at
``image_size`` and interpolates the weights' position embedding with torchvision's own
``interpolate_embeddings`` (bicubic).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from advisor.models._backbone import check_patch_multiple
from advisor.models._cut import Cut
from advisor.models._layout import Layout


def is_vit(name: str) -> bool:
    """Whether ``name`` is one of torchvision's Vision Transformers."""
    return name.startswith("vit_")


def vit_patch_size(name: str) -> int:
    """The patch side of torchvision model ``name`` (``vit_b_16`` -> 16; torchvision's names end with it)."""
    return int(name.rsplit("_", 1)[1])


class VitStem(nn.Module):
    """Patches to tokens (torchvision's own ``_process_input``), class token, position embedding, dropout."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.conv_proj = model.conv_proj
        self.class_token = model.class_token
        self.pos_embedding = model.encoder.pos_embedding
        self.dropout = model.encoder.dropout
        self.image_size = model.image_size
        self.patch_size = model.patch_size
        self.hidden_dim = model.hidden_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision.models.vision_transformer import VisionTransformer

        x = VisionTransformer._process_input(self, x)  # checks the side, (N, 3, S, S) -> (N, L, C)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.dropout(x + self.pos_embedding)


class ClassTokenHead(nn.Module):
    """The class token ``x[:, 0]`` through ``heads``."""

    def __init__(self, heads: nn.Module) -> None:
        super().__init__()
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(x[:, 0])


def check_vit_side(name: str, side: int) -> None:
    """One line unless ``side`` is a whole number of ``name``'s patches."""
    check_patch_multiple(name, side, vit_patch_size(name))


def build_vit(name: str, image_size: int, state: Mapping[str, torch.Tensor] | None = None,
              num_classes: int | None = None) -> nn.Module:
    """torchvision's ``name`` built for ``image_size`` px inputs, loaded with ``state`` (a state dict of
    the same architecture at any side: its position embedding is interpolated) when given."""
    from torchvision.models import get_model
    from torchvision.models.vision_transformer import interpolate_embeddings

    check_vit_side(name, image_size)
    kwargs = {"image_size": int(image_size)}
    if num_classes is not None:
        kwargs["num_classes"] = int(num_classes)
    model = get_model(name, weights=None, **kwargs)
    if state is not None:
        state = interpolate_embeddings(int(image_size), vit_patch_size(name), dict(state))
        model.load_state_dict(state)
    return model.eval()


def cut_vit(model: nn.Module) -> Cut:
    layers = list(model.encoder.layers.named_children())
    blocks: list[tuple[str, nn.Module]] = [("stem", VitStem(model))]
    blocks += [(n, m) for n, m in layers[:-1]]
    last_name, last = layers[-1]
    blocks.append((last_name, nn.Sequential(last, model.encoder.ln)))
    return Cut(
        blocks=blocks,
        head=ClassTokenHead(model.heads),
        classifier="heads.head",
        head_prefixes=("heads.",),
        probe_size=int(model.image_size),
        layout=Layout("nlc", "token", 1),
        patch_size=int(model.patch_size),
        fixed_size=int(model.image_size),
        no_decay=(model.class_token, model.encoder.pos_embedding),
    )
