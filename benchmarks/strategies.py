"""The cost of every registered strategy on one scenario: trainable parameters (and their share of full
fine-tuning's), peak memory, time per epoch, test accuracy.

    .venv/bin/python benchmarks/strategies.py [--dataset fashion-mnist:50] [--model mobilenet_v2]
        [--weights default] [--image-size 32] [--epochs N] [--threads 1] [--only a,b] [--json PATH]

Each strategy runs in a process of its own, so that its memory is its own: the peak resident set size (CPU RSS)
is the process's peak *during the run* (Linux's ``VmHWM`` after resetting it through ``/proc/self/clear_refs``
once data and backbone are loaded; ``ru_maxrss``, the whole process's peak, where that reset is not possible),
beside the RSS before the run (lora's ``peft`` and ``transformers`` are imported before it, since their modules'
memory is not the run's); on CUDA also ``torch.cuda.max_memory_allocated`` over the run. Time per epoch is
the mean of the fine-tuning epochs' own timings (the LP-FT heads-only epochs left out); a probe has no epoch and
shows its whole fit. Each strategy starts from a cold activation cache.

multi_task runs on fashion-pairs and pipeline_vs_end_to_end on fashion-chain (they need several label columns /
an intermediate label), with the same number of items per final class. ``--json`` (default
``benchmarks/results/strategies.json``) holds every row and the arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's advisor, not another install

#: Each strategy's parameters here (beyond its defaults): a contiguous range for surgical, LP-FT for full
#: fine-tuning as the grid runs it.
PARAMS = {
    "last_k": {"k": 3},
    "full_finetune": {"warmup": True},
    "surgical": {"first": 0, "last": 3},
}
DATASET_OF = {"multi_task": "fashion-pairs", "pipeline_vs_end_to_end": "fashion-chain"}


def _mib(kib: float) -> float:
    return round(kib / 1024.0, 1)


def _status_kib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def run_one(strategy: str, a: argparse.Namespace) -> dict:
    """One strategy in this process: the row of the table."""
    import torch

    from advisor import strategies
    from advisor.context import make_context
    from advisor.train import run_strategy

    if a.threads:
        torch.set_num_threads(a.threads)
    per_class = a.dataset.split(":")[1] if ":" in a.dataset else None
    data = DATASET_OF.get(strategy, a.dataset.split(":")[0]) + (f":{per_class}" if per_class else "")
    params = dict(PARAMS.get(strategy, {}))
    declared = strategies.get(strategy)
    if a.epochs and declared.has("epochs"):
        params["epochs"] = a.epochs
    weights = None if a.weights == "default" else a.weights
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_context(data, a.model, weights=weights, image_size=a.image_size, device=a.device, cache_dir=tmp,
                           seed=a.seed)
        if strategy == "lora":  # its libraries' own memory is not the run's: import them before measuring
            import peft  # noqa: F401
        cuda = str(ctx.device).startswith("cuda")
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        rss_before = _status_kib("VmRSS")
        reset = _reset_peak()
        t = time.perf_counter()
        r = run_strategy(ctx, strategy, params)
        wall = time.perf_counter() - t
        peak = _status_kib("VmHWM") if reset else None
        if peak is None:
            peak = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    warm = int(r.params.get("warmup_epochs") or 0)
    tuned = [e.seconds for e in r.history if e.epoch > warm] or [e.seconds for e in r.history]
    row = {
        "strategy": strategy, "dataset": data, "model": a.model, "image_size": a.image_size, "device": str(ctx.device),
        "params": {k: v for k, v in r.params.items() if k in ("k", "C", "block", "warmup", "first", "last", "rank",
                                                              "alpha", "probe", "epochs")},
        "trainable_params": int(r.trainable_params),
        "train_items": len(ctx.split.train),
        "epochs_run": len(r.history) if declared.trains_network else 0,
        "seconds_per_epoch": round(sum(tuned) / len(tuned), 3) if r.history and declared.trains_network else None,
        "wall_s": round(wall, 2),
        "peak_rss_mib": _mib(peak), "rss_before_run_mib": _mib(rss_before) if rss_before else None,
        "peak_rss_scope": "run" if reset else "process",
        "run_rss_increase_mib": _mib(peak - rss_before) if rss_before else None,
        "cuda_peak_mib": round(cuda_peak, 1) if cuda_peak is not None else None,
        "val_accuracy": round(r.val_accuracy, 4), "test_accuracy": round(r.test_accuracy, 4),
        "test_macro_f1": round(r.test_macro_f1, 4),
    }
    if strategy == "lora":
        row["adapted_layers"] = r.extra.get("adapted_layers")
    if strategy == "auto_rgn":
        row["rgn_mean_scale"] = {k: round(v, 4) for k, v in r.extra.get("rgn_mean_scale", {}).items()}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist:50")
    ap.add_argument("--model", default="mobilenet_v2")
    ap.add_argument("--weights", default="default", help="'default' (the pretrained file), 'random' or a path")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs of every network strategy")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each run (0: torch's own)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="comma-separated strategies")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "strategies.json"))
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # the child process: one strategy, a JSON line
    a = ap.parse_args()
    if a.one:
        print("ROW " + json.dumps(run_one(a.one, a)), flush=True)
        return

    from advisor import strategies

    names = [n for n in strategies.names() if not a.only or n in a.only.split(",")]
    rows = []
    for name in names:
        cmd = [sys.executable, __file__, "--one", name, *sys.argv[1:]]
        env = dict(os.environ, OMP_NUM_THREADS=str(a.threads or os.environ.get("OMP_NUM_THREADS", "")) or "1")
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith("ROW ")), None)
        if done.returncode or line is None:
            print(f"{name}: failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}", flush=True)
            rows.append({"strategy": name, "error": (done.stderr.strip().splitlines() or ["?"])[-1]})
            continue
        row = json.loads(line[4:])
        rows.append(row)
        print(json.dumps(row), flush=True)
    full = next((r["trainable_params"] for r in rows
                 if r.get("strategy") == "full_finetune" and "error" not in r), None)
    for r in rows:
        if full and "trainable_params" in r:
            r["share_of_full_finetune"] = round(r["trainable_params"] / full, 4)
    print(f"\n{'strategy':24s} {'trainable':>10s} {'of full':>8s} {'peak RSS MiB':>12s} {'+ in run':>8s} "
          f"{'CUDA MiB':>8s} {'s/epoch':>8s} {'epochs':>6s} {'test acc':>8s}")
    for r in rows:
        if "error" in r:
            print(f"{r['strategy']:24s} failed: {r['error']}")
            continue
        share = f"{100 * r['share_of_full_finetune']:.1f}%" if "share_of_full_finetune" in r else ""
        spe = f"{r['seconds_per_epoch']:.2f}" if r["seconds_per_epoch"] is not None else f"({r['wall_s']:.1f})"
        inc = f"{r['run_rss_increase_mib']:.1f}" if r.get("run_rss_increase_mib") is not None else "-"
        gpu = f"{r['cuda_peak_mib']:.1f}" if r.get("cuda_peak_mib") is not None else "-"
        print(f"{r['strategy']:24s} {r['trainable_params']:10,d} {share:>8s} {r['peak_rss_mib']:12.1f} {inc:>8s} "
              f"{gpu:>8s} {spe:>8s} {r['epochs_run']:6d} {r['test_accuracy']:8.4f}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        args = {k: v for k, v in vars(a).items() if k != "one"}
        with open(a.json, "w") as f:
            json.dump({"args": args, "cpu_count": os.cpu_count(), "rows": rows}, f, indent=2)
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
