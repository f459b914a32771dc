"""ActivationCache: pooled and boundary activations on disk, keyed, shared, computed once."""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
import time

import numpy as np
import pytest
import torch

from advisor.context import TrainContext
from advisor.context.cache import DEFAULT_CACHE_MAX, ActivationCache, _Lock, default_cache_dir, extract
from advisor.data import ArrayDataset, Preprocess, load_dataset, stratified_split
from advisor.errors import AdvisorError
from advisor.models import create_backbone

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


def in_threads(fn, args) -> list[Exception]:
    """Run ``fn(a)`` for every ``a`` in ``args`` at once, one thread each; the exceptions raised."""
    errors = []

    def work(a):
        try:
            fn(a)
        except Exception as exc:  # pragma: no cover - returned
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(a,)) for a in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


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
    assert meta["images"] == ctx.dataset.images_fingerprint() and meta["kind"] == "pooled"
    # MobileNetV2's Conv-BN pairs fold in every frozen pass (advisor.models.engine.FOLD_BN): the key says so
    assert meta["device"] == "cpu" and meta["precision"] == "float32,bn-folded" and meta["format"] == 2
    assert set(meta["versions"]) == {"torch", "torchvision", "timm"}


def test_concurrent_fillers_compute_each_item_once(base, tmp_path):
    ctx = make_ctx(base)
    caches = [ActivationCache(tmp_path), ActivationCache(tmp_path)]
    idx = ctx.split.val
    assert not in_threads(lambda cache: cache.ensure(ctx, idx, pooled=(6,), boundaries=(7,)), caches)
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


# ------------------------------------------------------------------ the folder cap and LRU eviction
def _used_later(cache, ctx, block, idx):
    """Read an entry a little later than the last use of any other (mtime ticks are coarse)."""
    time.sleep(0.02)
    return cache.pooled(ctx, block, idx)


def test_filling_past_the_cap_evicts_the_least_recently_used_unlocked_entry(base, tmp_path):
    ctx = make_ctx(base)
    idx = ctx.split.val[:20]
    sizer = ActivationCache(tmp_path, max_total=2**40)
    for b in (7, 8):  # ir7, ir8: 64 channels each, so every entry takes the same bytes
        _used_later(sizer, ctx, b, idx)
    one = sizer.total_bytes() // 2
    assert one >= len(ctx.dataset) * 64 * 4
    keys = {b: sizer.key(ctx, pooled=b) for b in (7, 8, 9, 10)}

    cache = ActivationCache(tmp_path, max_total=2 * one)  # room for two entries
    _used_later(cache, ctx, 7, idx)  # 7 is now more recent than 8
    _used_later(cache, ctx, 9, idx)  # a third: 8, the least recently used, goes
    assert [e["key"] for e in cache.entries()] == [keys[7], keys[9]]
    assert cache.stats["evicted"] == 1 and cache.total_bytes() <= cache.max_total
    assert cache.entries()[0]["rows_done"] == len(idx)

    # 7 is now the least recently used, but someone reads it (a shared lock): 9 goes instead
    with _Lock(tmp_path / keys[7][:2] / keys[7] / "lock", shared=True):
        _used_later(cache, ctx, 10, idx)
    assert {e["key"] for e in cache.entries()} == {keys[7], keys[10]}
    # and with both locked nothing can go: the new entry is still served (the cap is exceeded meanwhile)
    with _Lock(tmp_path / keys[7][:2] / keys[7] / "lock", shared=True), \
            _Lock(tmp_path / keys[10][:2] / keys[10] / "lock", shared=True):
        got = _used_later(cache, ctx, 8, idx)
    assert {e["key"] for e in cache.entries()} == {keys[7], keys[10], keys[8]}
    np.testing.assert_allclose(got, direct_blocks(ctx, idx)[8].mean(dim=(2, 3)).numpy(), rtol=1e-4, atol=1e-5)


def test_an_evicted_entry_is_computed_again_and_a_waiting_filler_recreates_it(base, tmp_path):
    ctx = make_ctx(base)
    idx = ctx.split.val[:10]
    cache = ActivationCache(tmp_path)
    first = cache.pooled(ctx, 4, idx)
    key = cache.key(ctx, pooled=4)
    removed, in_use = cache.clear(keys=[key[:8]])
    assert [e["key"] for e in removed] == [key] and not in_use and not cache.entries()
    np.testing.assert_array_equal(cache.pooled(ctx, 4, idx), first)
    assert cache.stats["computed"] == 2 * len(idx)
    # a filler that waited for the lock of an entry being removed locks the new file, not the removed one
    lock = tmp_path / key[:2] / key / "lock"
    holder = _Lock(lock)
    assert holder.acquire()
    waiter = _Lock(lock)
    t = threading.Thread(target=waiter.acquire)
    t.start()
    time.sleep(0.1)
    for name in ("data.npy", "done.npy", "meta.json", "used", "lock"):
        (lock.parent / name).unlink(missing_ok=True)
    holder.release()
    t.join(5)
    assert not t.is_alive() and lock.exists()
    assert not _Lock(lock, blocking=False).acquire()  # the waiter holds the file now at that path
    waiter.release()


def test_the_cap_comes_from_advisor_cache_max(base, monkeypatch, tmp_path):
    monkeypatch.delenv("ADVISOR_CACHE_MAX", raising=False)
    assert ActivationCache(tmp_path).max_total == DEFAULT_CACHE_MAX == 20 * 2**30
    for text, want in (("20G", 20 * 2**30), ("500M", 500 * 2**20), ("123456", 123456), ("1.5GiB", 3 * 2**29),
                       (" 64k ", 65536), ("2TB", 2 * 2**40)):
        monkeypatch.setenv("ADVISOR_CACHE_MAX", text)
        assert ActivationCache(tmp_path).max_total == want, text
    for bad in ("lots", "-5G", "20X", "1e9"):
        monkeypatch.setenv("ADVISOR_CACHE_MAX", bad)
        with pytest.raises(AdvisorError) as err:
            ActivationCache(tmp_path)
        msg = str(err.value)
        assert "ADVISOR_CACHE_MAX" in msg and repr(bad) in msg and "20G" in msg and "\n" not in msg
    # a boundary bigger than the cap does not fit: computed, never stored
    ctx = make_ctx(base)
    monkeypatch.setenv("ADVISOR_CACHE_MAX", "100K")
    cache = ActivationCache(tmp_path)
    assert cache.boundary_bytes(ctx, 2) > 100 * 2**10 and not cache.fits(ctx, 2)
    cache.boundary(ctx, 2, ctx.split.val[:5])
    assert cache.stats["bypassed"] == 5 and not cache.entries()


# ------------------------------------------------------------------ keys: images only; device, precision, versions
def test_two_labelings_of_the_same_images_share_entries(base, tmp_path):
    ds = base[0]
    relabeled = ArrayDataset("digits-shifted", ds.images, (ds.primary_labels + 3) % 10)
    assert relabeled.fingerprint() != ds.fingerprint()
    ctx, other = make_ctx(base), make_ctx(base, dataset=relabeled)
    first, second = ActivationCache(tmp_path), ActivationCache(tmp_path)
    assert first.key(ctx, pooled=LAST) == second.key(other, pooled=LAST)
    assert first.key(ctx, boundary=9) == second.key(other, boundary=9)
    idx = ctx.split.val
    a = first.pooled(ctx, LAST, idx)
    np.testing.assert_array_equal(second.pooled(other, LAST, idx), a)
    assert second.stats["computed"] == 0 and second.stats["served"] == len(idx)
    # other images (a subset) do not share
    assert first.key(make_ctx(base, dataset=ds.subset(np.arange(len(ds) - 1))), pooled=LAST) != first.key(
        ctx, pooled=LAST)


def test_keys_follow_device_precision_and_versions(base, monkeypatch):
    from advisor.context import cache as cache_mod

    ctx = make_ctx(base)
    cache = ActivationCache("/nonexistent/never/written")
    k = cache.key(ctx, pooled=LAST)
    assert cache.key(make_ctx(base, backbone=copy.deepcopy(base[1]).double()), pooled=LAST) != k
    assert cache.key(make_ctx(base, backbone=copy.deepcopy(base[1]).half()), pooled=LAST) != k
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    on_gpu = cache.key(make_ctx(base, device=torch.device("cuda")), pooled=LAST)
    assert on_gpu != k
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Other GPU")
    assert cache.key(make_ctx(base, device=torch.device("cuda")), pooled=LAST) not in (k, on_gpu)
    for package in ("torch", "torchvision", "timm"):
        with monkeypatch.context() as m:
            m.setitem(cache_mod._VERSIONS, package, "0.0.0-other")
            assert cache.key(ctx, pooled=LAST) != k, package
    assert cache.key(ctx, pooled=LAST) == k


# ------------------------------------------------------------------ threads
def test_threads_sharing_one_cache_and_one_backbone_match_one_thread(base, tmp_path):
    bb = copy.deepcopy(base[1])
    bb.train()  # a trainer's backbone: every fill must run it in eval mode and give the mode back
    before = {k: v.clone() for k, v in bb.state_dict().items()}
    ctx = make_ctx(base, backbone=bb)
    idx = ctx.split.val
    jobs = [dict(pooled=(6,)), dict(boundaries=(7,)), dict(pooled=(10,)), dict(pooled=(6,), boundaries=(12,)),
            dict(boundaries=(7,))]
    shared = ActivationCache(tmp_path / "threads")
    assert not in_threads(lambda job: shared.ensure(ctx, idx, batch_size=4, **job), jobs)
    assert all(m.training for m in bb.modules())
    for k, v in bb.state_dict().items():
        assert torch.equal(v, before[k]), k  # no BatchNorm statistics updated by a pass in training mode
    one = ActivationCache(tmp_path / "one")
    alone = make_ctx(base)  # the pristine backbone, in eval mode, the same jobs one after the other
    for job in jobs:
        one.ensure(alone, idx, batch_size=4, **job)
    for i in (6, 10):
        np.testing.assert_array_equal(shared.pooled(ctx, i, idx), one.pooled(alone, i, idx))
    for b in (7, 12):
        torch.testing.assert_close(shared.boundary(ctx, b, idx), one.boundary(alone, b, idx), rtol=0, atol=0)
    # each entry's rows computed once, whichever thread came first
    assert shared.stats["computed"] + shared.stats["served"] == len(jobs) * len(idx) + 4 * len(idx)
    assert shared.stats["passes"] <= 4


def test_two_processes_filling_one_entry_compute_each_row_once(base, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = """
import sys, json, torch
torch.set_num_threads(1)
from advisor.context import TrainContext
from advisor.context.cache import ActivationCache
from advisor.data import Preprocess, load_dataset
from advisor.models import create_backbone
ds = load_dataset("digits:40"); bb = create_backbone("mobilenet_v2"); pp = bb.preprocessing
pre = Preprocess.for_image_size(Preprocess(pp["resize_size"], pp["crop_size"], pp["mean"], pp["std"]), 32)
ctx = TrainContext(dataset=ds, split=None, backbone=bb, make_backbone=None, preprocess=pre, device=torch.device("cpu"))
cache = ActivationCache(sys.argv[1])
cache.ensure(ctx, range(len(ds)), pooled=(8,), boundaries=(9,), batch_size=16)
print(json.dumps(cache.stats))
"""
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "c")], cwd=repo, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    stats = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    ctx = make_ctx(base)
    n = len(ctx.dataset)
    assert sum(s["computed"] for s in stats) == n and sum(s["served"] for s in stats) == n
    here = ActivationCache(tmp_path / "c")
    idx = np.arange(n)
    np.testing.assert_allclose(here.pooled(ctx, 8, idx), extract(ctx, idx, pooled=(8,))[0][8], rtol=1e-4, atol=1e-5)
    assert here.stats["computed"] == 0 and len(here.entries()) == 2
