"""What storing a CNN's convolution weights channels-last buys (``advisor.models.registry.CHANNELS_LAST``), in one run.

For every model, on one process and one device, with the flag off and on in alternation (``--repeats`` rounds,
the median of each): a forward pass of a batch through the whole backbone in eval mode (analyze's measuring
pass, the activation cache's fill, a probe's features), and one training step of every block and a new
linear head (a fine-tune). Then, optionally, a whole ``advisor.api.analyze`` with the measured check on, the two orders alternated
``--analyze-repeats`` times (the median of each). It prints each ratio (contiguous time / channels-last time) and the largest relative difference of the
pooled features between the two orders (float32 roundoff, not a different computation).

Times depend on the machine and on whatever else runs on it; the ratios measured in the same run are the
figures to read.

    python benchmarks/channels_last.py [--models mobilenet_v2,timm:mobilenetv2_050,resnet18,efficientnet_b0]
        [--size 224] [--batch 16] [--repeats 3] [--threads 1] [--analyze fashion-mnist:30] [--analyze-size 112]
        [--analyze-repeats 2]
        [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's advisor, not another install

import torch  # noqa: E402


def _backbone(name: str, flag: bool, size: int):
    from advisor.models import create_backbone, registry

    registry.CHANNELS_LAST = flag
    torch.manual_seed(0)  # the same random weights in both orders
    weights = None if name == "mobilenet_v2" else "random"  # the one ImageNet CNN whose weights are offline
    return create_backbone(name, weights, device="cpu", image_size=size)


def _forward(bb, x) -> float:
    with torch.inference_mode():
        t = time.perf_counter()
        bb.forward_features(x)
        return time.perf_counter() - t


def _train_step(bb, head, opt, x, y) -> float:
    bb.train()
    t = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(head(bb.pool(bb.forward_features(x))), y)
    loss.backward()
    opt.step()
    bb.eval()
    return time.perf_counter() - t


def measure(name: str, size: int, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 10, (batch,))
    nets = {}
    for flag in (False, True):
        bb = _backbone(name, flag, size)
        head = torch.nn.Linear(bb.feature_dim, 10)
        opt = torch.optim.AdamW(list(bb.parameters()) + list(head.parameters()), lr=1e-4)
        nets[flag] = (bb, head, opt)
    with torch.inference_mode():
        a, b = (nets[f][0].pool(nets[f][0].forward_features(x)) for f in (False, True))
    rel = float(((a - b).abs().max() / a.abs().max().clamp_min(1e-12)).item())
    times = {(f, kind): [] for f in (False, True) for kind in ("forward", "train")}
    for flag in (False, True):  # one untimed warm-up of each
        _forward(nets[flag][0], x)
        _train_step(*nets[flag], x, y)
    for _ in range(repeats):
        for flag in (False, True):
            times[flag, "forward"].append(_forward(nets[flag][0], x))
            times[flag, "train"].append(_train_step(*nets[flag], x, y))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"model": name, "size": size, "batch": batch, "max_rel_diff_pooled": rel,
            "forward_s": [med[False, "forward"], med[True, "forward"]],
            "train_step_s": [med[False, "train"], med[True, "train"]],
            "forward_ratio": med[False, "forward"] / med[True, "forward"],
            "train_ratio": med[False, "train"] / med[True, "train"]}


def analyze_both(dataset: str, size: int, repeats: int) -> dict:
    """``repeats`` rounds of analyze with the check on, the two orders alternated; the median of each."""
    import advisor
    from advisor.models import registry

    seconds = {False: [], True: []}
    out = {}
    for _ in range(repeats):
        for flag in (False, True):
            registry.CHANNELS_LAST = flag
            t = time.perf_counter()
            a = advisor.analyze(dataset, "mobilenet_v2", image_size=size, check="on", sample=300)
            seconds[flag].append(time.perf_counter() - t)
            timings = a.profile.timings
            out[flag] = (a.advice.strategy, [r.val_accuracy for r in a.advice.check.runs],
                         {r.strategy: r.seconds for r in a.advice.check.runs if r.strategy == "full_finetune"})
    med = {f: statistics.median(v) for f, v in seconds.items()}
    return {"dataset": dataset, "size": size, "repeats": repeats, "seconds_all": [seconds[False], seconds[True]],
            "seconds": [med[False], med[True]], "ratio": med[False] / med[True],
            "advised": [out[False][0], out[True][0]], "check_val_accuracies": [out[False][1], out[True][1]],
            "check_finetune_seconds_last_round": [out[False][2], out[True][2]], "last_timings": timings}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mobilenet_v2,timm:mobilenetv2_050,resnet18,efficientnet_b0")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--analyze", default=None, metavar="DATASET",
                    help="also time a whole analyze with the check on (ImageNet MobileNetV2), off then on")
    ap.add_argument("--analyze-size", type=int, default=112)
    ap.add_argument("--analyze-repeats", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = []
    print(f"{'model':28s} {'forward s (off / on)':>22s} {'ratio':>6s} {'train step s':>18s} {'ratio':>6s} "
          f"{'max rel diff':>12s}")
    for name in a.models.split(","):
        r = measure(name.strip(), a.size, a.batch, a.repeats)
        rows.append(r)
        print(f"{r['model']:28s} {r['forward_s'][0]:10.3f} / {r['forward_s'][1]:8.3f} {r['forward_ratio']:6.2f} "
              f"{r['train_step_s'][0]:8.3f} / {r['train_step_s'][1]:7.3f} {r['train_ratio']:6.2f} "
              f"{r['max_rel_diff_pooled']:12.1e}", flush=True)
    result = {"threads": a.threads, "cpu": torch.backends.cpu.get_cpu_capability(), "rows": rows}
    if a.analyze:
        an = analyze_both(a.analyze, a.analyze_size, a.analyze_repeats)
        result["analyze"] = an
        print(f"analyze {an['dataset']} at {an['size']} px, check on, median of {an['repeats']}: "
              f"{an['seconds'][0]:.1f} s contiguous, {an['seconds'][1]:.1f} s channels-last ({an['ratio']:.2f}x); "
              f"advised {an['advised'][0]} / {an['advised'][1]}")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
