"""Shared by the training tests: one intra-op thread, and 300 digits with ImageNet MobileNetV2 at 32 px."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    """See tests/conftest.py."""


@pytest.fixture(scope="session")
def digits300():
    """``(dataset, split, backbone, preprocess)``: 300 stratified sklearn digits, a 60/20/20 split,
    ImageNet MobileNetV2 (19 blocks) and its preprocessing at 32 x 32. Copy the backbone before training."""
    from advisor.data import Preprocess, load_dataset, stratified_sample, stratified_split
    from advisor.models import create_backbone

    ds = load_dataset("digits")
    ds = ds.subset(stratified_sample(ds.primary_labels, 300, seed=0))
    split = stratified_split(ds.primary_labels, seed=0)
    bb = create_backbone("mobilenet_v2")
    pp = bb.preprocessing
    pre = Preprocess(pp["resize_size"], pp["crop_size"], pp["mean"], pp["std"]).with_image_size(32)
    return ds, split, bb, pre
