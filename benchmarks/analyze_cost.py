"""analyze's wall time divided by one plain forward pass over the same sample.

Both are measured in this one run, on the same machine, same backbone, same
images, same preprocessing and batch size. The plain pass is what any tool must
spend at least: load + preprocess each image and run the network once. Target:
ratio <= 1.3. analyze runs with the measured check off (the check trains candidates: it
is not part of the measurement pass), and pays its own model loading. Each side is
warmed up once first (imports, lazy init, the allocator): a first analyze in a fresh
process also imports scikit-learn and the measures, reported as ``analyze_first_call_s``.

    .venv/bin/python benchmarks/analyze_cost.py [--dataset fashion-mnist] [--model mobilenet_v2]
        [--sample 1000] [--image-size 224] [--threads 1] [--repeats 1] [--json PATH]
        [--check off|auto|on] [--check-rung on|off] [--check-shift on|off] [--check-budget SECONDS]

The small-data case of issue 22 (target: at most 6x with the measured check): ``--dataset fashion-mnist:30
--check auto`` (18 training images per class, the weights' own 224 px); ``--check-rung on`` measures the check
with its rung (advisor.advise.check.RUNG).

The ViT-S/14 at the advice grid's ViT resolution: ``--model timm:vit_small_patch14_dinov2 --image-size 56``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

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


def limit_threads(n: int) -> None:
    """torch's intra-op threads and the BLAS threads of numpy and scipy (the metrics') to ``n``: on a
    machine shared with other jobs, BLAS threads that spin waiting for a descheduled peer cost the
    metrics many times their single-thread time."""
    import scipy.linalg  # noqa: F401 - load scipy's own OpenBLAS too, so that the limit reaches it
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(n)


def blas_threads() -> int | None:
    """The BLAS thread count (the largest over the loaded BLAS libraries)."""
    from threadpoolctl import threadpool_info

    return max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--model", default="mobilenet_v2")
    ap.add_argument("--sample", type=int, default=1000)
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=1, help="analyze runs, interleaved with repeats+1 plain passes")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads and BLAS threads (numpy/scipy's OpenBLAS) alike (default: theirs)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--check", choices=("off", "auto", "on"), default="off",
                    help="analyze's measured check (default off: the measurement pass alone)")
    ap.add_argument("--check-rung", choices=("on", "off"), default=None, help="the check's rung (default: analyze's)")
    ap.add_argument("--check-shift", choices=("on", "off"), default=None,
                    help="the shift's candidates in the check (default: analyze's)")
    ap.add_argument("--check-budget", type=float, default=None,
                    help="analyze's --check-budget SECONDS: the cheapest candidates that fit (default: every one)")
    a = ap.parse_args()
    if a.threads:
        limit_threads(a.threads)

    device = resolve_device(a.device)
    data = load_dataset(a.dataset)
    ti = data.tasks.index(data.primary_task)
    split = stratified_split(data.labels[:, ti], seed=0)
    idx = split.train[stratified_sample(data.labels[split.train, ti], a.sample, 0)]
    bb = create_backbone(a.model, None, device=str(device), image_size=a.image_size)
    pre = Preprocess.from_config(bb.preprocessing, a.image_size or None)

    def run_analyze(sample: int, check: str = a.check):
        return analyze(a.dataset, a.model, sample=sample, image_size=a.image_size, device=a.device,
                       batch_size=a.batch_size, check=check,
                       check_shift=None if a.check_shift is None else a.check_shift == "on",
                       check_rung=None if a.check_rung is None else a.check_rung == "on",
                       check_budget=a.check_budget if check != "off" else None)

    plain_forward(bb, data, idx[: a.batch_size], pre, device, a.batch_size)  # warm-up (lazy init, allocator)
    t = time.perf_counter()
    run_analyze(min(a.sample, a.batch_size), "off")  # warm-up (imports, lazy init)
    first = time.perf_counter() - t
    # interleaved, plain first and last, so that a change of load while it runs hits both sides
    plains, analyses = [plain_forward(bb, data, idx, pre, device, a.batch_size)], []
    for _ in range(a.repeats):
        t = time.perf_counter()
        res = run_analyze(a.sample)
        analyses.append((time.perf_counter() - t, res.profile.timings))
        chk = res.advice.check
        plains.append(plain_forward(bb, data, idx, pre, device, a.batch_size))
    plain_mean = sum(plains) / len(plains)
    total = sum(w for w, _ in analyses) / len(analyses)
    out = {
        "dataset": a.dataset, "model": a.model, "sample": len(idx), "image_size": pre.crop_size,
        "device": str(device), "threads": torch.get_num_threads(), "blas_threads": blas_threads(),
        "plain_forward_s": round(plain_mean, 3), "plain_forward_runs_s": [round(p, 3) for p in plains],
        "analyze_s": round(total, 3), "analyze_runs_s": [round(w, 3) for w, _ in analyses],
        "analyze_breakdown_s": [tm for _, tm in analyses],
        "analyze_first_call_s": round(first, 3), "analyze_first_call_sample": min(a.sample, a.batch_size),
        "ratio": round(total / plain_mean, 3),
        "ratio_of_minima": round(min(w for w, _ in analyses) / min(plains), 3),
        "target": 1.3 if a.check == "off" else 6.0, "check": a.check, "check_rung": a.check_rung,
        "check_shift": a.check_shift, "check_budget": a.check_budget, "advice": res.advice.strategy,
        "check_runs": [] if chk is None else [{"strategy": r.strategy, "params": r.params, "val": r.val_accuracy,
                                               "seconds": r.seconds, "stopped_at": r.stopped_at} for r in chk.runs],
        "check_skipped": [] if chk is None else [{"strategy": r.strategy, "params": r.params,
                                                  "estimated_s": r.estimated_seconds} for r in chk.skipped],
        "load_average_1min": [round(x, 2) for x in os.getloadavg()][:1],
    }
    print(json.dumps(out, indent=2))
    print(f"analyze / plain forward = {out['ratio']:.3f} (means), {out['ratio_of_minima']:.3f} (minima)  "
          f"(target <= {out['target']:g})")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
