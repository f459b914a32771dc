"""Record what the CNN path computes, so the one-engine change can be shown bit-identical (issue 20, section 1).

Run on the code BEFORE the change: ``python tests/engine/record_reference.py OUT.json``. The test
``tests/engine/test_engine_reference.py`` recomputes the same things with today's code and compares
exactly (every float by its bits, every array and state dict by its sha256).

What it records, on scikit-learn's digits (20 per class) at 32 px through ImageNet MobileNetV2, seed 0:
- the Profile of ``analyze`` (sample 100, measured check off), timings removed;
- the activation-cache keys of a pooled and a boundary entry, and the sha256 of their contents;
- the sha256 of the saved model's state dict after ``linear_probe``, ``last_k`` (k=2, 2 epochs, from the
  boundary cache) and ``full_finetune`` (1 epoch, no cache), each with its validation accuracy.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile

import numpy as np
import torch

DATASET, MODEL, SIZE, SEED = "digits:20", "mobilenet_v2", 32, 0
RUNS = {
    "linear_probe": {},
    "last_k": {"k": 2, "epochs": 2, "batch_size": 32},
    "full_finetune": {"epochs": 1, "batch_size": 32},
}


def digest_array(a) -> str:
    a = np.ascontiguousarray(a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a))
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()


def digest_state(state: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(digest_array(state[k]).encode())
    return h.hexdigest()


def without_timings(d):
    if isinstance(d, dict):
        return {k: without_timings(v) for k, v in d.items() if k not in ("timings", "seconds")}
    if isinstance(d, list):
        return [without_timings(v) for v in d]
    return d


def record() -> dict:
    """The values, computed with one thread for torch and for BLAS (threadpoolctl): LogME's float64 linear
    algebra sums in another order on two BLAS threads, so its last bits follow the thread count; the reference
    was recorded with ``OMP_NUM_THREADS=1``."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _record()


def _record() -> dict:
    import advisor
    from advisor.context import make_context
    from advisor.serialize import to_dict
    from advisor.train import run_strategy

    torch.set_num_threads(1)
    out: dict = {}
    a = advisor.analyze(DATASET, MODEL, sample=100, image_size=SIZE, seed=SEED, check="off")
    out["profile"] = without_timings(to_dict(a.profile))
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_context(DATASET, MODEL, image_size=SIZE, seed=SEED, cache_dir=tmp, device="cpu")
        idx = np.arange(len(ctx.dataset))
        n = len(ctx.backbone.block_names)
        out["cache"] = {
            "pooled_key": ctx.cache.key(ctx, pooled=n - 1),
            "boundary_key": ctx.cache.key(ctx, boundary=n - 2),
            "pooled_sha": digest_array(ctx.cache.pooled(ctx, n - 1, idx)),
            "boundary_sha": digest_array(ctx.cache.boundary(ctx, n - 2, idx[:64])),
        }
        out["runs"] = {}
        for strategy, params in RUNS.items():
            r = run_strategy(ctx, strategy, params)
            out["runs"][strategy] = {"state_sha": digest_state(r.model.state_dict()),
                                     "val_accuracy": float(r.val_accuracy).hex()}
    return out


if __name__ == "__main__":
    result = record()
    text = json.dumps(result, indent=1, sort_keys=True)
    if len(sys.argv) > 1:
        open(sys.argv[1], "w").write(text + "\n")
    else:
        print(text)
