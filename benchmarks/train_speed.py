"""Speed of the caches, measured in one run and printed as ratios.

1. An epoch of last_k (k=1 and k=2) with the frozen part's output (the boundary
   activations) read from the cache, against the same epoch recomputing the frozen
   part for every batch. The cache is filled first; the epoch compared is the
   second one of each run (steady state), from the run's own per-epoch timings.
2. A linear-probe run from cached features, against extraction plus fit (cold cache).

    .venv/bin/python benchmarks/train_speed.py [--dataset fashion-mnist:100] [--model mobilenet_v2]
        [--image-size 112] [--threads 1] [--json PATH]

On the ViT-S/14: ``--model timm:vit_small_patch14_dinov2 --image-size 56`` (a multiple of 14). A ViT
block's boundary entry is its ``[L, C]`` tokens (class token and patch tokens), a CNN's its ``[C, H, W]`` map.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's advisor, not another install
sys.path.insert(0, str(Path(__file__).resolve().parent))  # analyze_cost beside this file

from analyze_cost import blas_threads, limit_threads  # noqa: E402

from advisor.context import make_context  # noqa: E402
from advisor.train import run_strategy  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist:100")
    ap.add_argument("--model", default="mobilenet_v2")
    ap.add_argument("--image-size", type=int, default=112)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch and BLAS threads (default: theirs)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.threads:
        limit_threads(a.threads)

    out = {"dataset": a.dataset, "model": a.model, "image_size": a.image_size, "threads": a.threads,
           "blas_threads": blas_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        cached = make_context(a.dataset, a.model, image_size=a.image_size, device=a.device, cache_dir=tmp)
        plain = make_context(a.dataset, a.model, image_size=a.image_size, device=a.device, cache_dir=False)
        out["device"] = str(cached.device)
        out["train_items"], out["val_items"] = len(cached.split.train), len(cached.split.val)
        for k in (1, 2):
            params = {"k": k, "epochs": 2, "patience": 5}
            run_strategy(cached, "last_k", params)  # fills the boundary cache (first epoch pays)
            warm = run_strategy(cached, "last_k", params)
            cold = run_strategy(plain, "last_k", params)
            assert warm.extra.get("boundary_from_cache") and not cold.extra.get("boundary_from_cache")
            e_cache, e_plain = warm.history[1].seconds, cold.history[1].seconds
            out[f"last_k{k}_epoch_cached_s"] = round(e_cache, 3)
            out[f"last_k{k}_epoch_recompute_s"] = round(e_plain, 3)
            out[f"last_k{k}_speedup"] = round(e_plain / e_cache, 1)
            out[f"last_k{k}_same_val_accuracy"] = [round(warm.val_accuracy, 4), round(cold.val_accuracy, 4)]

        with tempfile.TemporaryDirectory() as tmp2:
            probe_ctx = make_context(a.dataset, a.model, image_size=a.image_size, device=a.device, cache_dir=tmp2)
            cold = run_strategy(probe_ctx, "linear_probe", {})
            warm = run_strategy(probe_ctx, "linear_probe", {})
        out["probe_cold_s"] = round(cold.wall_time, 3)
        out["probe_cached_s"] = round(warm.wall_time, 3)
        out["probe_speedup"] = round(cold.wall_time / warm.wall_time, 1)
        out["probe_same_test_accuracy"] = [round(cold.test_accuracy, 4), round(warm.test_accuracy, 4)]
    print(json.dumps(out, indent=2))
    print(f"last_k k=1: epoch from cache {out['last_k1_speedup']}x faster than recomputing the frozen part")
    print(f"last_k k=2: epoch from cache {out['last_k2_speedup']}x faster than recomputing the frozen part")
    print(f"linear_probe: cached features {out['probe_speedup']}x faster than extraction + fit")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
