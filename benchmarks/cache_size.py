"""Sizes of activation-cache entries, and the folder cap holding a last_k search's entries.

1. The bytes of a pooled entry (the probes' features) and of every boundary entry a last_k search
   can ask for (k = 1 .. half the blocks: boundaries n_blocks - k), for the whole dataset.
2. Those boundary entries filled one after the other, as a search's trials would ask for them, under
   a cap (``--cap``, default: room for three of them): the folder's size after each fill and the
   entries evicted, least recently used first.

    .venv/bin/python benchmarks/cache_size.py [--dataset digits] [--image-size 64] [--cap 20M]
"""

from __future__ import annotations

import argparse
import json
import tempfile

import numpy as np

from advisor.train import make_context
from advisor.train.cache import ActivationCache, format_size, parse_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--model", default="mobilenet_v2")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cap", default=None, help="folder cap for part 2, e.g. 20M (default: three entries)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_context(a.dataset, a.model, image_size=a.image_size, device=a.device, cache_dir=False)
        n_blocks = len(ctx.backbone.block_names)
        idx = np.arange(len(ctx.dataset))
        sizer = ActivationCache(tmp + "/sizes", max_total=2**50)
        last = n_blocks - 1
        sizer.ensure(ctx, idx, pooled=(last,))
        pooled = sizer.entries()[0]
        out = {"dataset": a.dataset, "items": len(ctx.dataset), "model": a.model, "image_size": a.image_size,
               "pooled": {"block": pooled["block"], "bytes": pooled["bytes"]}, "boundaries": []}
        print(f"{a.model} at {a.image_size} px on {a.dataset} ({len(ctx.dataset)} items)")
        print(f"pooled {pooled['block']}: {format_size(pooled['bytes'])} ({pooled['bytes']} bytes)")
        bounds = [n_blocks - k for k in range(1, n_blocks // 2 + 1)]
        for b in bounds:
            nbytes = sizer.boundary_bytes(ctx, b)
            shape = sizer._item_shape(ctx, "boundary", b)
            out["boundaries"].append({"boundary": b, "k": n_blocks - b, "shape": list(shape), "data_bytes": nbytes})
            print(f"boundary {b:2d} (last_k k={n_blocks - b}): item {list(shape)} float16, "
                  f"{format_size(nbytes)} ({nbytes} bytes) + {len(ctx.dataset)} bytes of flags")

        data = sorted(x["data_bytes"] for x in out["boundaries"])
        cap = parse_size(a.cap) if a.cap else data[-1] + data[-2] + data[-3] + 3 * (len(ctx.dataset) + 1024)
        cache = ActivationCache(tmp + "/capped", max_total=cap)
        print(f"\nfilling boundaries {bounds[0]}..{bounds[-1]} under a {format_size(cap)} cap ({cap} bytes):")
        out["cap"], out["fills"] = cap, []
        for b in bounds:
            cache.boundary(ctx, b, ctx.split.train)  # what a last_k trial reads
            total = cache.total_bytes()
            held = [e["boundary"] for e in cache.entries(rows=False)]
            out["fills"].append({"boundary": b, "total_bytes": total, "entries": held,
                                 "evicted_so_far": cache.stats["evicted"]})
            print(f"  after boundary {b:2d}: {format_size(total):>9} in {len(held)} entries {held}, "
                  f"{cache.stats['evicted']} evicted so far, under the cap: {total <= cap}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
