"""The measured check's bn_adapt runs with one shared adaptation, against each run from scratch (issue 22).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bn_adapt_reuse.py [--dataset fashion-mnist:30] [--repeats 2]

The check runs bn_adapt three times on one split (the linear probe at each C, the early SVM on the best plain
early SVM's block). Each run used to make its own statistics pass and its own feature pass; now the later runs reuse
the first one's adaptation (``advisor.train._bn_adapt.reused``) and, for the same block, its features. This script
times the three runs both ways in one process, alternating (shared, then from scratch, ``--repeats`` times), checks
that both give the same validation accuracies, and prints the ratio of the summed seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist:30")
    ap.add_argument("--model", default="mobilenet_v2")
    ap.add_argument("--image-size", type=int, default=None, help="default: the weights' own")
    ap.add_argument("--block", type=int, default=15, help="the early SVM's block (the check's: the best plain SVM's)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    from advisor.context import make_context, without_test
    from advisor.train import _bn_adapt, run_strategy

    ctx = without_test(make_context(a.dataset, a.model, image_size=a.image_size, cache_dir=False))
    runs = [{"probe": "linear_probe", "C": 0.1}, {"probe": "linear_probe", "C": 1.0},
            {"probe": "svm_early", "block": a.block, "C": 1.0}]

    def three(shared: bool) -> tuple[float, list[float]]:
        _bn_adapt._LAST.clear()
        t, vals = time.perf_counter(), []
        for p in runs:
            if not shared:
                _bn_adapt._LAST.clear()
            vals.append(float(run_strategy(ctx, "bn_adapt", p).val_accuracy))
        return time.perf_counter() - t, vals

    three(True)  # warm-up: lazy initialisation and the data's first read are not timed
    out = {"dataset": a.dataset, "model": a.model, "n_train": int(len(ctx.split.train)),
           "n_val": int(len(ctx.split.val)), "shared_s": [], "scratch_s": []}
    for _ in range(a.repeats):
        s, v_shared = three(True)
        f, v_scratch = three(False)
        if v_shared != v_scratch:
            print(f"different validation accuracies: shared {v_shared}, from scratch {v_scratch}")
            return 1
        out["shared_s"].append(round(s, 3))
        out["scratch_s"].append(round(f, 3))
    out["val_accuracies"] = v_shared
    out["ratio"] = round(sum(out["scratch_s"]) / sum(out["shared_s"]), 3)
    print(json.dumps(out, indent=1))
    print(f"the check's three bn_adapt runs: {sum(out['shared_s']) / a.repeats:.1f} s shared, "
          f"{sum(out['scratch_s']) / a.repeats:.1f} s each from scratch: {out['ratio']:.2f}x faster, the same "
          f"validation accuracies")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
