"""Images per second of analyze, of one training epoch and of predict, per model and image size, in one run.

For every model (default: the ViT-S/14 ``timm:vit_small_patch14_dinov2`` and ImageNet MobileNetV2) and
every image size (default 56 px, the ViT's resolution in the advice grid, and 224 px), in one process:

- analyze: ``advisor.api.analyze`` on a stratified Fashion-MNIST sample, the measured check off, its wall
  time including the model's loading (the rate of the measurement pass alone is beside it);
- one training epoch of ``full_finetune`` and of ``last_k`` (k=2) on ``fashion-mnist:K``, recomputing the
  frozen part (no activation cache: ``benchmarks/train_speed.py`` measures what the cache saves). The
  epoch timed is the second of two (steady state); the rate is training images / that epoch's wall
  time, which also validates the validation split (forward only, a seventh as many images: split 0.7/0.1/0.2);
- predict: ``advisor predict``'s rate over PNG files (``predict_speed.py``), the model being the one
  the ``full_finetune`` run just trained, saved as ``advisor train --save`` saves it.

Images per second depend on the machine and on whatever else runs on it; the ratios between models
and sizes measured in the same run are the figures to read. ``--threads`` sets torch's and the BLAS
threads (the analysis' metrics run on numpy/scipy's OpenBLAS).

    python benchmarks/throughput.py [--models timm:vit_small_patch14_dinov2,mobilenet_v2] [--sizes 56,224]
        [--sample 512,64] [--per-class 30,10] [--predict-n 256,64] [--threads 1] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's advisor, not another install
sys.path.insert(0, str(Path(__file__).resolve().parent))  # analyze_cost and predict_speed beside this file

import torch  # noqa: E402

from analyze_cost import blas_threads, limit_threads  # noqa: E402
from predict_speed import predict_rate, write_images  # noqa: E402

EPOCH_RUNS = (("full_finetune", {}), ("last_k", {"k": 2}))
SPLIT = "0.7,0.1,0.2"


def per_size(text: str, sizes: list[int], what: str) -> dict[int, int]:
    """``"512,64"`` against sizes ``[56, 224]`` -> ``{56: 512, 224: 64}``; one value serves every size."""
    vals = [int(v) for v in text.split(",")]
    if len(vals) == 1:
        vals = vals * len(sizes)
    if len(vals) != len(sizes):
        raise SystemExit(f"{what}: give one value or one per size ({len(sizes)})")
    return dict(zip(sizes, vals))


def analyze_rate(dataset: str, model: str, size: int, sample: int, batch_size: int, device: str) -> dict:
    from advisor.api import analyze

    t = time.perf_counter()
    res = analyze(dataset, model, sample=sample, image_size=size, device=device, batch_size=batch_size,
                  check="off")
    wall = time.perf_counter() - t
    n = res.profile.sample_size
    return {"images": n, "wall_s": round(wall, 3), "images_per_s": round(n / wall, 2),
            "pass_images_per_s": round(n / res.profile.timings["pass"], 2), "timings_s": res.profile.timings}


def epoch_rates(model: str, size: int, per_class: int, device: str, save_to: Path) -> dict:
    """The second epoch of each EPOCH_RUNS run (no cache); the full_finetune model saved to ``save_to``."""
    from advisor.context import make_context
    from advisor.train import run_strategy
    from advisor.deploy.modelfile import save_model

    ctx = make_context(f"fashion-mnist:{per_class}", model, image_size=size, device=device, cache_dir=False,
                       split=SPLIT)
    n_train, n_val = len(ctx.split.train), len(ctx.split.val)
    out = {"train_images": n_train, "val_images": n_val}
    for strategy, params in EPOCH_RUNS:
        r = run_strategy(ctx, strategy, {**params, "epochs": 2, "patience": 5})
        sec = r.history[1].seconds
        key = strategy if strategy != "last_k" else f"last_k{params['k']}"
        out[key] = {"epoch_s": round(sec, 3), "images_per_s": round(n_train / sec, 2),
                    "first_epoch_s": round(r.history[0].seconds, 3)}
        if strategy == "full_finetune":
            save_model(r, save_to, model_name=model, weights=None, preprocess=ctx.preprocess,
                       dataset_name=f"fashion-mnist:{per_class}", classes=ctx.dataset.classes)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="timm:vit_small_patch14_dinov2,mobilenet_v2")
    ap.add_argument("--sizes", default="56,224")
    ap.add_argument("--sample", default="512,64", help="analyze's sample, per size")
    ap.add_argument("--per-class", default="30,10", help="fashion-mnist:K for the training epochs, per size")
    ap.add_argument("--predict-n", default="256,64", help="PNG files predicted, per size")
    ap.add_argument("--batch-size", type=int, default=64, help="analyze's and predict's forward batch")
    ap.add_argument("--threads", type=int, default=None, help="torch and BLAS threads (default: theirs)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.threads:
        limit_threads(a.threads)
    models = a.models.split(",")
    sizes = [int(s) for s in a.sizes.split(",")]
    sample = per_size(a.sample, sizes, "--sample")
    per_class = per_size(a.per_class, sizes, "--per-class")
    predict_n = per_size(a.predict_n, sizes, "--predict-n")

    from advisor.api import analyze

    analyze("fashion-mnist", models[0], sample=a.batch_size, image_size=sizes[0], device=a.device,
            batch_size=a.batch_size, check="off")  # warm-up: imports, lazy init (not counted)
    out = {"device": a.device, "threads": torch.get_num_threads(), "blas_threads": blas_threads(),
           "split": SPLIT, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "rows": []}
    t_run = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="advisor-throughput-") as tmp:
        tmp = Path(tmp)
        folders = {}
        for n in sorted(set(predict_n.values())):
            folders[n] = tmp / f"imgs{n}"
            folders[n].mkdir()
            write_images(folders[n], n)
        for size in sizes:
            for model in models:
                row = {"model": model, "image_size": size}
                row["analyze"] = analyze_rate("fashion-mnist", model, size, sample[size], a.batch_size, a.device)
                saved = tmp / f"model-{len(out['rows'])}.pt"
                row.update(epoch_rates(model, size, per_class[size], a.device, saved))
                pred, wall, _ = predict_rate(saved, folders[predict_n[size]], a.batch_size, a.device)
                row["predict"] = {"images": len(pred.items), "wall_s": round(wall, 3),
                                  "images_per_s": round(pred.images_per_second, 2)}
                out["rows"].append(row)
                print(f"done {model} at {size} px ({time.perf_counter() - t_run:.0f} s)", file=sys.stderr, flush=True)
    out["run_s"] = round(time.perf_counter() - t_run, 1)

    print(f"images per second, device {a.device}, torch threads {out['threads']}, BLAS threads "
          f"{out['blas_threads']}; one run ({out['run_s']} s)")
    head = f"{'model':32s} {'px':>4s} {'analyze':>9s} {'full_ft ep':>11s} {'last_k2 ep':>11s} {'predict':>9s}"
    print(head)
    for r in out["rows"]:
        print(f"{r['model']:32s} {r['image_size']:4d} {r['analyze']['images_per_s']:9.1f} "
              f"{r['full_finetune']['images_per_s']:11.1f} {r['last_k2']['images_per_s']:11.1f} "
              f"{r['predict']['images_per_s']:9.1f}")
    for size in sizes:
        rows = {r["model"]: r for r in out["rows"] if r["image_size"] == size}
        if len(rows) >= 2:
            (m0, r0), (m1, r1) = list(rows.items())[:2]
            ratios = {k: round(r1[k]["images_per_s"] / r0[k]["images_per_s"], 1)
                      for k in ("analyze", "full_finetune", "last_k2", "predict")}
            out.setdefault("ratios", {})[f"{m1} / {m0} at {size} px"] = ratios
            print(f"{size} px: {m1} is " + ", ".join(f"{k} {v}x" for k, v in ratios.items()) + f" as fast as {m0}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
