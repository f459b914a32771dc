"""Backbones by name, cut into an ordered list of named blocks.

Blocks are the unit of per-block measurement and of freeze depth::

    from advisor.models import create_backbone
    bb = create_backbone("mobilenet_v2")          # ImageNet weights from the torch hub cache
    feats = bb.forward_blocks(x)                  # one tensor per block in bb.block_names
    vecs = [bb.pool(f) for f in feats]            # (N, C) each, as bb.layout declares

The names load on first use, so reading the device spelling (``advisor.models._device``) loads no torch.
"""

__all__ = ["Backbone", "Layout", "backbone_spec_id", "create_backbone", "global_pool", "list_models", "resolve_device"]

_OWNERS = {"Backbone": "_backbone", "backbone_spec_id": "_backbone", "global_pool": "_backbone",
           "resolve_device": "_device", "Layout": "_layout", "create_backbone": "registry", "list_models": "registry"}


def __getattr__(name: str):
    if name in _OWNERS:
        import importlib

        return getattr(importlib.import_module(f"advisor.models.{_OWNERS[name]}"), name)
    if not name.startswith("__"):  # a submodule (engine, registry, ...), as the eager imports used to load
        import importlib
        import importlib.util

        if importlib.util.find_spec(f"advisor.models.{name}") is not None:
            return importlib.import_module(f"advisor.models.{name}")
    raise AttributeError(f"module 'advisor.models' has no attribute {name!r}")
