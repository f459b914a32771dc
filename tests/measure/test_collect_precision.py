"""Analyze measures in float32 on every device: its per-block numbers feed the advice's thresholds.

The measuring pass (advisor.measure.collect) used to run under bf16 autocast on CUDA, so the same
data could get different numbers (and near a threshold different advice) on a GPU than on a CPU.
No GPU here: the checks run on the CPU, where an autocast region a caller opened would do what the
old CUDA autocast did (bf16 convolutions), and the pass must switch it off.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advisor.measure.collect import collect


@pytest.fixture(scope="module")
def setup(one_torch_thread):
    from advisor.data import Preprocess, load_dataset, stratified_sample
    from advisor.models import create_backbone

    ds = load_dataset("digits")
    idx = stratified_sample(ds.primary_labels, 20, seed=0)
    bb = create_backbone("mobilenet_v2")
    pp = bb.preprocessing
    pre = Preprocess(pp["resize_size"], pp["crop_size"], pp["mean"], pp["std"]).with_image_size(32)
    return ds, idx, bb, pre


def test_the_measuring_pass_runs_in_float32_even_inside_an_autocast_region(setup):
    ds, idx, bb, pre = setup
    seen = []

    def spy(module, inputs, output):
        seen.append((output.dtype, torch.is_autocast_enabled("cpu"), torch.backends.cudnn.allow_tf32,
                     torch.backends.cuda.matmul.allow_tf32))

    hooks = [block.register_forward_hook(spy) for block in bb.blocks]
    tf32_before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        plain = collect(bb, ds, idx, pre, device="cpu", batch_size=8)
        n_plain = len(seen)
        # what bf16 autocast on CUDA did to the numbers, reproduced on the CPU: the pass must undo it
        with torch.autocast("cpu", dtype=torch.bfloat16):
            inside = collect(bb, ds, idx, pre, device="cpu", batch_size=8)
    finally:
        for h in hooks:
            h.remove()
    assert n_plain and len(seen) == 2 * n_plain
    assert all(dtype == torch.float32 for dtype, _, _, _ in seen), {d for d, _, _, _ in seen}
    assert not any(on for _, on, _, _ in seen)  # no autocast while measuring
    assert not any(c or m for _, _, c, m in seen)  # and no TF32 (cuDNN's default on CUDA)
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == tf32_before  # restored
    for a, b in zip(plain.pooled, inside.pooled):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(plain.source_probs, inside.source_probs)
    for la, lb in zip(plain.bn, inside.bn):
        for ma, mb in zip(la, lb):
            np.testing.assert_array_equal(ma.target_mean, mb.target_mean)
            np.testing.assert_array_equal(ma.target_var, mb.target_var)


def test_float32_switches_autocast_off_for_the_device_it_measures_on():
    from advisor.models.engine import float32

    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")
        with float32(torch.device("cpu")):
            assert not torch.is_autocast_enabled("cpu")
            assert torch.matmul(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32
        assert torch.is_autocast_enabled("cpu")
