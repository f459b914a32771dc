"""analyze's wall time divided by one plain forward pass over the same sample.

Both are measured in this one run, on the same machine, same backbone, same
images, same preprocessing and batch size. The plain pass is what any tool must
spend at least: load + preprocess each image and run the network once. Target:
ratio <= 1.3.

    .venv/bin/python benchmarks/analyze_cost.py [--dataset fashion-mnist] [--sample 1000] [--image-size 224]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from advisor.api import analyze
from advisor.data import Preprocess, load_dataset, stratified_sample, stratified_split
from advisor.models import create_backbone, resolve_device


@torch.no_grad()
def plain_forward(model, data, indices, pre, device, batch_size) -> float:
    t = time.perf_counter()
    for s in range(0, len(indices), batch_size):
        x = torch.stack([pre(data.load(int(i))) for i in indices[s : s + batch_size]]).to(device)
        model(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--model", default="mobilenet_v2")
    ap.add_argument("--sample", type=int, default=1000)
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    device = resolve_device(a.device)
    data = load_dataset(a.dataset)
    ti = data.tasks.index(data.primary_task)
    split = stratified_split(data.labels[:, ti], seed=0)
    idx = split.train[stratified_sample(data.labels[split.train, ti], a.sample, 0)]
    bb = create_backbone(a.model, None, device=str(device))
    pre = Preprocess.from_config(bb.preprocessing, a.image_size or None)

    plain_forward(bb, data, idx[: a.batch_size], pre, device, a.batch_size)  # warm-up (lazy init, allocator)
    plain = plain_forward(bb, data, idx, pre, device, a.batch_size)
    t = time.perf_counter()
    res = analyze(a.dataset, a.model, sample=a.sample, image_size=a.image_size, device=a.device,
                  batch_size=a.batch_size)
    total = time.perf_counter() - t
    plain2 = plain_forward(bb, data, idx, pre, device, a.batch_size)
    plain_mean = (plain + plain2) / 2
    out = {
        "dataset": a.dataset, "model": a.model, "sample": len(idx), "image_size": pre.crop_size,
        "device": str(device), "threads": torch.get_num_threads(),
        "plain_forward_s": round(plain_mean, 3), "plain_forward_runs_s": [round(plain, 3), round(plain2, 3)],
        "analyze_s": round(total, 3), "analyze_breakdown_s": res.profile.timings,
        "ratio": round(total / plain_mean, 3), "target": 1.3,
    }
    print(json.dumps(out, indent=2))
    print(f"analyze / plain forward = {out['ratio']:.3f}  (target <= 1.3)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
