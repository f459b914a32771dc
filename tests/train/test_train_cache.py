"""ActivationCache: pooled and boundary activations on disk, keyed, shared, computed once."""

from __future__ import annotations

import copy
import dataclasses
import json
import threading

import numpy as np
import pytest
import torch

from advisor.data import Preprocess, load_dataset, stratified_split
from advisor.errors import AdvisorError
from advisor.models import create_backbone
from advisor.train._base import TrainContext
from advisor.train.cache import ActivationCache, default_cache_dir, extract

LAST = 18  # mobilenet_v2: stem, ir1..ir17, conv_last


@pytest.fixture(scope="module")
def base():
    ds = load_dataset("digits:40")  # 400 items, 40 per class
    bb = create_backbone("mobilenet_v2")
    pp = bb.preprocessing
    pre = Preprocess.for_image_size(Preprocess(pp["resize_size"], pp["crop_size"], pp["mean"], pp["std"]), 32)
    split = stratified_split(ds.primary_labels, seed=0)
    return ds, bb, pre, split


def make_ctx(base, **changes) -> TrainContext:
    ds, bb, pre, split = base
    ctx = TrainContext(dataset=ds, split=split, backbone=bb, make_backbone=lambda: copy.deepcopy(bb),
                       preprocess=pre, device=torch.device("cpu"))
    return dataclasses.replace(ctx, **changes)


def direct_blocks(ctx, indices) -> list[torch.Tensor]:
    """Every block's output for ``indices``, computed by hand (no cache code)."""
    x = torch.stack([ctx.preprocess(ctx.dataset.load(int(i))) for i in indices])
    with torch.no_grad():
        return ctx.backbone.forward_blocks(x)


def test_pooled_equals_direct_and_is_computed_once(base, tmp_path):
    ctx = make_ctx(base)
    cache = ActivationCache(tmp_path)
    idx = ctx.split.val
    got = cache.pooled(ctx, LAST, idx)
    assert got.dtype == np.float32 and got.shape == (len(idx), 1280)
    want = direct_blocks(ctx, idx)[LAST].mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert cache.stats["computed"] == len(idx) and cache.stats["passes"] == 1

    again = cache.pooled(ctx, "conv_last", idx[::-1])  # by name, other order: served, nothing computed
    np.testing.assert_array_equal(again, got[::-1])
    assert cache.stats["computed"] == len(idx) and cache.stats["served"] == len(idx)

    # a superset computes only the new items
    both = np.concatenate([ctx.split.val, ctx.split.test])
    cache.pooled(ctx, LAST, both)
    assert cache.stats["computed"] == len(both)


def test_one_pass_fills_every_requested_entry(base, tmp_path):
    ctx = make_ctx(base)
    cache = ActivationCache(tmp_path)
    seen = []
    ctx = dataclasses.replace(ctx, progress=lambda stage, done, total: seen.append((stage, done, total)))
    idx = ctx.split.test
    cache.ensure(ctx, idx, pooled=(3, 12), boundaries=(5, 9), batch_size=32)
    assert cache.stats["passes"] == 1 and cache.stats["computed"] == len(idx)
    assert seen[-1] == ("cache", len(idx), len(idx))
    outs = direct_blocks(ctx, idx)
    for i in (3, 12):
        np.testing.assert_allclose(cache.pooled(ctx, i, idx), outs[i].mean(dim=(2, 3)).numpy(), rtol=1e-4, atol=1e-5)
    for b in (5, 9):
        got = cache.boundary(ctx, b, idx)
        assert got.dtype == torch.float32 and got.shape == outs[b - 1].shape
        torch.testing.assert_close(got, outs[b - 1], rtol=2e-3, atol=2e-3)  # float16 storage
    assert cache.stats["passes"] == 1  # all served from that one pass


def test_boundary_equals_direct_blocks_prefix(base, tmp_path):
    ctx = make_ctx(base)
    cache = ActivationCache(tmp_path)
    idx = ctx.split.val[:50]
    x = torch.stack([ctx.preprocess(ctx.dataset.load(int(i))) for i in idx])
    for b in (1, 4, LAST):
        with torch.no_grad():
            want = x
            for block in ctx.backbone.blocks[:b]:
                want = block(want)
        got = cache.boundary(ctx, b, idx)
        assert got.shape == want.shape
        scale = float(want.abs().max())
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3 * scale)
    with pytest.raises(AdvisorError) as err:
        cache.boundary(ctx, 0, idx)
    assert "boundary 0" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(AdvisorError):
        cache.ensure(ctx, idx, boundaries=(LAST + 1,))


def test_two_caches_on_one_root_share_entries(base, tmp_path):
    ctx = make_ctx(base)
    first, second = ActivationCache(tmp_path), ActivationCache(tmp_path)
    idx = ctx.split.train[:100]
    a = first.pooled(ctx, LAST, idx)
    b = second.pooled(ctx, LAST, idx)
    np.testing.assert_array_equal(a, b)
    assert first.stats["computed"] == len(idx)
    assert second.stats["computed"] == 0 and second.stats["served"] == len(idx)
    # the sidecar names the key parts
    key = first.key(ctx, pooled=LAST)
    meta = json.loads((tmp_path / key[:2] / key / "meta.json").read_text())
    assert meta["block"] == "conv_last" and meta["backbone"].startswith("mobilenet_v2@")
    assert meta["dataset"] == ctx.dataset.fingerprint() and meta["kind"] == "pooled"


def test_concurrent_fillers_compute_each_item_once(base, tmp_path):
    ctx = make_ctx(base)
    caches = [ActivationCache(tmp_path), ActivationCache(tmp_path)]
    idx = ctx.split.val
    errors = []

    def work(cache):
        try:
            cache.ensure(ctx, idx, pooled=(6,), boundaries=(7,))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(c.stats["computed"] for c in caches) == len(idx)
    assert sum(c.stats["served"] for c in caches) == len(idx)


def test_keys_follow_preprocess_dataset_block_and_weights(base):
    ctx = make_ctx(base)
    cache = ActivationCache("/nonexistent/never/written")
    k = cache.key(ctx, pooled=LAST)
    assert k == cache.key(ctx, pooled="conv_last")
    assert k != cache.key(ctx, pooled=LAST - 1)
    assert cache.key(ctx, boundary=LAST) != k  # same block output, other kind
    ds, bb, pre, split = base
    assert cache.key(make_ctx(base, preprocess=pre.with_image_size(40)), pooled=LAST) != k
    other = load_dataset("digits:30")
    assert cache.key(make_ctx(base, dataset=other), pooled=LAST) != k
    # a copy with the same weights shares keys; changing a late block changes only the keys that depend on it
    tuned = copy.deepcopy(bb)
    assert cache.key(make_ctx(base, backbone=tuned), pooled=LAST) == k
    with torch.no_grad():
        next(tuned.blocks[LAST].parameters()).add_(0.01)
    assert cache.key(make_ctx(base, backbone=tuned), pooled=LAST) != k
    assert cache.key(make_ctx(base, backbone=tuned), pooled=5) == cache.key(ctx, pooled=5)
    assert cache.key(make_ctx(base, backbone=tuned), boundary=LAST) == cache.key(ctx, boundary=LAST)


def test_ensure_leaves_the_backbone_alone(base, tmp_path):
    bb = copy.deepcopy(base[1])
    bb.train()
    bb.blocks[2].eval()
    for p in bb.blocks[:10].parameters():
        p.requires_grad_(False)
    before_modes = [m.training for m in bb.modules()]
    before_grad = [p.requires_grad for p in bb.parameters()]
    before_state = {k: v.clone() for k, v in bb.state_dict().items()}
    ctx = make_ctx(base, backbone=bb)
    cache = ActivationCache(tmp_path)
    idx = ctx.split.test[:40]
    cache.ensure(ctx, idx, pooled=(LAST,), boundaries=(10,))
    assert [m.training for m in bb.modules()] == before_modes
    assert [p.requires_grad for p in bb.parameters()] == before_grad
    for k, v in bb.state_dict().items():
        assert torch.equal(v, before_state[k]), k  # BatchNorm running statistics included
    # computed in eval mode: equal to the pristine (eval) backbone's features
    np.testing.assert_allclose(cache.pooled(ctx, LAST, idx), extract(make_ctx(base), idx, pooled=(LAST,))[0][LAST],
                               rtol=1e-4, atol=1e-5)


def test_boundary_too_big_for_the_limit_is_recomputed_not_stored(base, tmp_path):
    ctx = make_ctx(base)
    n = len(ctx.dataset)
    cache = ActivationCache(tmp_path, max_bytes=10_000)
    nbytes = cache.boundary_bytes(ctx, 2)
    assert nbytes == n * 16 * 16 * 16 * 2  # ir1 output at 32 px: [16, 16, 16] float16
    assert not cache.fits(ctx, 2)
    assert ActivationCache(tmp_path, max_bytes=nbytes).fits(ctx, 2)
    idx = ctx.split.val[:20]
    cache.ensure(ctx, idx, boundaries=(2,))
    assert cache.stats["computed"] == 0 and not any(tmp_path.iterdir())
    got = cache.boundary(ctx, 2, idx)
    torch.testing.assert_close(got, direct_blocks(ctx, idx)[1])  # exact: never went through float16
    assert cache.stats["bypassed"] == len(idx) and not any(tmp_path.iterdir())


def test_empty_and_bad_indices(base, tmp_path):
    ctx = make_ctx(base)
    cache = ActivationCache(tmp_path)
    assert cache.pooled(ctx, 3, []).shape == (0, 24)
    assert tuple(cache.boundary(ctx, 3, []).shape) == (0, 24, 8, 8)
    with pytest.raises(IndexError):
        cache.pooled(ctx, 3, [len(ctx.dataset)])
    with pytest.raises(AdvisorError):
        cache.pooled(ctx, "nope", [0])


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ADVISOR_CACHE", str(tmp_path / "acts"))
    assert default_cache_dir() == tmp_path / "acts"
    monkeypatch.delenv("ADVISOR_CACHE")
    assert default_cache_dir().parts[-3:] == (".cache", "advisor", "activations")
