"""Every strategy with its defaults on one dataset: test accuracy, macro-F1, wall time, trainable parameters.

    .venv/bin/python benchmarks/strategies.py [--dataset fashion-mnist:100] [--image-size 112]

multi_task runs on fashion-pairs and pipeline_vs_end_to_end on fashion-chain (they need several
label columns / an intermediate label), with the same number of items per final class. Each
strategy starts from a cold activation cache, so its wall time includes feature extraction.
"""

from __future__ import annotations

import argparse
import json
import tempfile

from advisor.context import make_context
from advisor.train import run_strategy

RUNS = [
    ("linear_probe", {}),
    ("svm_early", {}),
    ("last_k", {"k": 3}),
    ("full_finetune", {"warmup": True}),
    ("multi_task", {}),
    ("pipeline_vs_end_to_end", {}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist:100")
    ap.add_argument("--model", default="mobilenet_v2")
    ap.add_argument("--image-size", type=int, default=112)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--only", default=None, help="comma-separated strategies")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    per_class = a.dataset.split(":")[1] if ":" in a.dataset else None
    rows = []
    for strategy, params in RUNS:
        if a.only and strategy not in a.only.split(","):
            continue
        data = a.dataset
        if strategy == "multi_task":
            data = "fashion-pairs" + (f":{per_class}" if per_class else "")
        elif strategy == "pipeline_vs_end_to_end":
            data = "fashion-chain" + (f":{per_class}" if per_class else "")
        with tempfile.TemporaryDirectory() as tmp:
            ctx = make_context(data, a.model, image_size=a.image_size, device=a.device, cache_dir=tmp)
            r = run_strategy(ctx, strategy, params)
        row = {"strategy": strategy, "dataset": data, "params": {k: v for k, v in r.params.items()
                                                                  if k in ("k", "C", "block", "warmup", "tasks")},
               "val_accuracy": round(r.val_accuracy, 4), "test_accuracy": round(r.test_accuracy, 4),
               "test_macro_f1": round(r.test_macro_f1, 4), "wall_s": round(r.wall_time, 1),
               "trainable_params": r.trainable_params, "epochs_run": len(r.history)}
        if strategy == "multi_task":
            row["separate_test_accuracy"] = {t: round(m["test_accuracy"], 4)
                                             for t, m in r.extra.get("separate", {}).items()}
        if strategy == "pipeline_vs_end_to_end":
            row["winner"] = r.extra["winner"]
            row["pipeline_test"] = round(r.extra["pipeline"]["test_accuracy"], 4)
            row["end_to_end_test"] = round(r.extra["end_to_end"]["test_accuracy"], 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"{'strategy':24s} {'dataset':22s} {'test acc':>8s} {'macro-F1':>8s} {'wall s':>8s} {'trainable':>10s}")
    for r in rows:
        print(f"{r['strategy']:24s} {r['dataset']:22s} {r['test_accuracy']:8.4f} {r['test_macro_f1']:8.4f} "
              f"{r['wall_s']:8.1f} {r['trainable_params']:10,d}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
