"""A frozen pass with BatchNorm folded into the convolutions, against the same pass unfolded (issue 22).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/fold_bn.py [--models mobilenet_v2,resnet18] [--size 224] [--json PATH]

Every frozen pass (analyze's check, the activation cache, bn_adapt's features) runs on
:func:`advisor.models.engine.folded` copies of the blocks. This times ``engine.run`` over one batch both ways, in
one process, alternating (unfolded, folded, ``--repeats`` times, after an untimed warm-up of each), with the weights
as the registry stores them (channels-last), and prints the ratio of the medians and the largest relative
difference of the outputs (float32 roundoff: the same function). Random weights with random BatchNorm statistics:
the time does not depend on the values.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mobilenet_v2,resnet18,efficientnet_b0")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    import torch
    from torch import nn

    from advisor.models import engine, registry

    if a.threads:
        torch.set_num_threads(a.threads)
    rows = []
    for name in a.models.split(","):
        bb = registry.create_backbone(name, weights="random", image_size=a.size)
        g = torch.Generator().manual_seed(0)
        for m in bb.modules():
            if isinstance(m, nn.BatchNorm2d):
                with torch.no_grad():
                    m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
                    m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        blocks = list(bb.blocks)
        fold = engine.folded(blocks)
        x = torch.randn(a.batch, 3, a.size, a.size, generator=g).contiguous(memory_format=torch.channels_last)
        times = {"unfolded": [], "folded": []}
        with torch.no_grad():
            out = {"unfolded": engine.run(blocks, x), "folded": engine.run(fold, x)}  # warm-up
            for _ in range(a.repeats):
                for kind, bs in (("unfolded", blocks), ("folded", fold)):
                    t = time.perf_counter()
                    engine.run(bs, x)
                    times[kind].append(round(time.perf_counter() - t, 4))
        diff = float((out["unfolded"] - out["folded"]).abs().max() / out["unfolded"].abs().max())
        row = {"model": name, "size": a.size, "batch": a.batch,
               "pairs": sum(len(engine._foldable_pairs(b)) for b in blocks),
               "norms_left": sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for b in fold for m in b.modules()),
               "unfolded_s": times["unfolded"], "folded_s": times["folded"], "max_rel_diff": diff,
               "ratio": round(statistics.median(times["unfolded"]) / statistics.median(times["folded"]), 3)}
        rows.append(row)
        print(f"{name}: {row['pairs']} pairs folded ({row['norms_left']} norms left), unfolded "
              f"{statistics.median(times['unfolded']):.3f} s, folded {statistics.median(times['folded']):.3f} s "
              f"per {a.batch} images at {a.size} px: {row['ratio']:.2f}x; outputs agree to {diff:.1e} relative")
    out = {"threads": torch.get_num_threads(), "rows": rows}
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
