"""Backbones by name, cut into an ordered list of named blocks.

Blocks are the unit of per-block measurement and of freeze depth::

    from advisor.models import create_backbone
    bb = create_backbone("mobilenet_v2")          # ImageNet weights from the torch hub cache
    feats = bb.forward_blocks(x)                  # one tensor per block in bb.block_names
    vecs = [bb.pool(f) for f in feats]            # (N, C) each, as bb.layout declares
"""

from advisor.models._backbone import Backbone, backbone_spec_id, global_pool
from advisor.models._device import resolve_device
from advisor.models._layout import Layout
from advisor.models.registry import create_backbone, list_models

__all__ = ["Backbone", "Layout", "backbone_spec_id", "create_backbone", "global_pool", "list_models", "resolve_device"]
