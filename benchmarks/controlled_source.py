"""The controlled source networks of the advice grid: a MobileNetV2 and a small ViT pretrained here on Fashion-MNIST classes 0-4.

    .venv/bin/python benchmarks/controlled_source.py [--arch mobilenetv2_050] [--out PATH] [--epochs 3]

Its source domain is known exactly (the images it saw are listed in the metadata file beside the
weights), so for a target built from Fashion-MNIST "similar" and "different" are facts.

Recipe (fixed, deterministic on the CPU: seeded init, seeded shuffles, one thread):
- timm ``mobilenetv2_050`` (MobileNetV2 at width 0.5, about 0.7 M parameters with its 5-class head;
  ``--arch mobilenetv2_035`` gives the narrower network of the multi-task "too small" condition),
  random init, 5 outputs. Width 0.5 rather than torchvision's 1.0: on 2 CPU cores it trains about 3x
  faster (about 200 against 60 images/s, forward and backward at 32 px), which is what lets the whole
  grid run in the time budget;
- inputs: the package's own preprocessing for ``timm:ARCH`` at 32 px (greyscale repeated to 3
  channels, ImageNet mean/std), exactly what ``--model timm:ARCH --weights PATH --image-size 32`` feeds it;
- images: ``SOURCE_PER_CLASS`` images per class of classes 0-4, drawn with seed 0 from the official
  *training* part of Fashion-MNIST; the other training images of those classes stay unseen, for targets;
- SGD (momentum 0.9, Nesterov), lr 0.1 with a cosine schedule, weight decay 4e-5, batch 128.

The controlled ViT (``--arch vit_grid_patch4_28``, a timm ``VisionTransformer`` registered under that name
when this module is imported: patch 4 at 28 px, so 7 x 7 patch tokens and a class token, width 64,
6 blocks, 2 heads, MLP ratio 3, about 0.3 M parameters; timm's ``test_vit`` shape with patch 4) has
its own recipe (``VIT_RECIPE_VERSION``), on the same images: at 28 px (Fashion-MNIST's own side, so
no resizing), timm's ViT preprocessing (mean and std 0.5), AdamW (lr 1e-3, weight decay 0.05,
batch 128), linear warm-up over the first ``VIT_WARMUP_STEPS`` steps then cosine, 5 epochs. Width 64
rather than 96: on one core it trains at about 260 against 100 images/s (measured at 32 px).

The weights land at ``--out`` (default ``$ADVISOR_GRID_CACHE/sources/fmnist04-ARCH-32px.pth``,
``ADVISOR_GRID_CACHE`` defaulting to ``.cache/advice_grid`` in the checkout) with a ``.json`` beside it;
an existing file with the same recipe is reused. Load it the normal way:
``advisor analyze DATA --model timm:mobilenetv2_050 --weights PATH --image-size 32``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

SOURCE_CLASSES = (0, 1, 2, 3, 4)
SOURCE_PER_CLASS = 4000
IMAGE_SIZE = 32
# 2: images resized with the weights' own interpolation (bicubic for timm's MobileNetV2), not always bilinear
RECIPE_VERSION = 2
DEFAULT_ARCH = "mobilenetv2_050"
FASHION_TRAIN_ROWS = 60000  # advisor's fashion_mnist_arrays(): official train rows first, then t10k

# ------------------------------------------------------------------ the controlled ViT
VIT_ARCH = "vit_grid_patch4_28"
VIT_IMAGE_SIZE = 28
VIT_RECIPE_VERSION = 1
VIT_EPOCHS = 5
VIT_WARMUP_STEPS = 100
VIT_SHAPE = dict(img_size=VIT_IMAGE_SIZE, patch_size=4, embed_dim=64, depth=6, num_heads=2, mlp_ratio=3)


def register_vit() -> None:
    """Register :data:`VIT_ARCH` with timm (once per process), so ``timm:vit_grid_patch4_28`` builds
    through timm's factory like any named model, with its own pretrained config (preprocessing)."""
    import timm
    from timm.models import generate_default_cfgs, register_model
    from timm.models.vision_transformer import _cfg, _create_vision_transformer

    if timm.is_model(VIT_ARCH):
        return
    globals()["default_cfgs"] = generate_default_cfgs({f"{VIT_ARCH}.fmnist04": _cfg(
        input_size=(3, VIT_IMAGE_SIZE, VIT_IMAGE_SIZE), crop_pct=1.0, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
        num_classes=len(SOURCE_CLASSES))})

    def vit_grid_patch4_28(pretrained: bool = False, **kwargs):
        return _create_vision_transformer(VIT_ARCH, pretrained=pretrained,
                                          **dict(VIT_SHAPE, dynamic_img_size=True, **kwargs))

    vit_grid_patch4_28.__module__ = __name__  # timm reads default_cfgs from the function's module
    register_model(vit_grid_patch4_28)


def is_vit(arch: str) -> bool:
    return arch == VIT_ARCH


def image_size(arch: str) -> int:
    return VIT_IMAGE_SIZE if is_vit(arch) else IMAGE_SIZE


def default_epochs(arch: str) -> int:
    return VIT_EPOCHS if is_vit(arch) else 3


def grid_cache_dir() -> Path:
    return Path(os.environ.get("ADVISOR_GRID_CACHE") or Path(__file__).resolve().parent.parent / ".cache" / "advice_grid")


def default_path(arch: str = DEFAULT_ARCH) -> Path:
    return grid_cache_dir() / "sources" / f"fmnist04-{arch}-{image_size(arch)}px.pth"


def source_rows(labels: np.ndarray) -> np.ndarray:
    """Rows of the Fashion-MNIST arrays the source trains on: SOURCE_PER_CLASS per source class,
    drawn with seed 0 from the official training part (rows < 60000). Sorted."""
    rng = np.random.default_rng(0)
    out = []
    for c in SOURCE_CLASSES:
        rows = np.flatnonzero(labels[:FASHION_TRAIN_ROWS] == c)
        out.append(np.sort(rng.choice(rows, SOURCE_PER_CLASS, replace=False)))
    return np.sort(np.concatenate(out))


def recipe(epochs: int, arch: str = DEFAULT_ARCH) -> dict:
    if is_vit(arch):
        return {"version": VIT_RECIPE_VERSION, "classes": list(SOURCE_CLASSES), "per_class": SOURCE_PER_CLASS,
                "image_size": VIT_IMAGE_SIZE, "epochs": epochs, "model": f"timm:{arch}", "shape": dict(VIT_SHAPE),
                "optimizer": "adamw", "lr": 1e-3, "batch": 128, "weight_decay": 0.05, "warmup_steps": VIT_WARMUP_STEPS}
    return {"version": RECIPE_VERSION, "classes": list(SOURCE_CLASSES), "per_class": SOURCE_PER_CLASS,
            "image_size": IMAGE_SIZE, "epochs": epochs, "model": f"timm:{arch}", "lr": 0.1, "batch": 128,
            "weight_decay": 4e-5}


def _optimizer(model, want: dict, steps: int):
    """The recipe's optimiser and per-step schedule: SGD + cosine (CNN), AdamW + warm-up + cosine (ViT)."""
    import math

    import torch

    if want.get("optimizer") == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=want["lr"], weight_decay=want["weight_decay"])
        warm = want["warmup_steps"]

        def factor(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))

        return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)
    opt = torch.optim.SGD(model.parameters(), lr=want["lr"], momentum=0.9, nesterov=True,
                          weight_decay=want["weight_decay"])
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)


def ensure_source(path: str | Path | None = None, *, arch: str = DEFAULT_ARCH, epochs: int | None = None,
                  log=print) -> Path:
    """Train the controlled source unless ``path`` already holds one made by the same recipe
    (``epochs``: default 3 for a MobileNetV2, :data:`VIT_EPOCHS` for the ViT)."""
    import timm
    import torch

    from advisor.data import TorchView
    from advisor.data._base import ArrayDataset
    from advisor.data.builtin import fashion_mnist_arrays
    from advisor.models import create_backbone

    if is_vit(arch):
        register_vit()
    epochs = default_epochs(arch) if epochs is None else epochs
    path = Path(path) if path else default_path(arch)
    meta_path = path.with_suffix(".json")
    want = recipe(epochs, arch)
    if path.is_file() and meta_path.is_file():
        try:
            if json.loads(meta_path.read_text()).get("recipe") == want:
                return path
        except ValueError:
            pass
    x, y = fashion_mnist_arrays()
    rows = source_rows(y)
    ds = ArrayDataset("fmnist04-source", x[rows], y[rows])
    # the preprocessing analyze/train use for --weights PATH at 32 px
    ref = create_backbone(f"timm:{arch}", "random")
    from advisor.data import Preprocess

    pre = Preprocess.from_config(ref.preprocessing, want["image_size"])
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False, num_classes=len(SOURCE_CLASSES))
    # the whole (small) source set as one tensor: preprocessing once, not every epoch
    view = TorchView(ds, None, pre)
    xs = torch.stack([view[i][0] for i in range(len(view))])
    ys = torch.as_tensor(ds.labels[:, 0])
    steps = epochs * ((len(ds) + want["batch"] - 1) // want["batch"])
    opt, sched = _optimizer(model, want, steps)
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    history = []
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(ds), generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for s in range(0, len(ds), want["batch"]):
            b = perm[s:s + want["batch"]]
            out = model(xs[b])
            loss = torch.nn.functional.cross_entropy(out, ys[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += len(b)
            correct += int((out.argmax(1) == ys[b]).sum())
            loss_sum += float(loss.detach()) * len(b)
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / total, "train_accuracy": correct / total,
                        "seconds": round(time.perf_counter() - t0, 1)})
        log(f"[source] epoch {epoch + 1}/{epochs}: loss {loss_sum / total:.4f}, train acc {correct / total:.4f}, "
            f"{time.perf_counter() - t0:.0f} s")
    # held-out accuracy on the official test images of the source classes
    model.eval()
    test_rows = np.flatnonzero(np.isin(y, SOURCE_CLASSES) & (np.arange(len(y)) >= FASHION_TRAIN_ROWS))
    tds = ArrayDataset("fmnist04-source-test", x[test_rows], y[test_rows])
    tview = TorchView(tds, None, pre)
    with torch.no_grad():
        xt = torch.stack([tview[i][0] for i in range(len(tview))])
        pred = torch.cat([model(xt[s:s + 512]).argmax(1) for s in range(0, len(xt), 512)])
    test_acc = float((pred.numpy() == tds.labels[:, 0]).mean())
    log(f"[source] test accuracy on {len(tds)} unseen images of classes 0-4: {test_acc:.4f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    meta = {"recipe": want, "rows_sha256": hashlib.sha256(rows.tobytes()).hexdigest(), "history": history,
            "source_test_accuracy": test_acc, "torch_threads": threads,
            "seconds": round(time.perf_counter() - t0, 1)}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="weights file (default: %(default)s -> the grid cache)")
    ap.add_argument("--arch", default=DEFAULT_ARCH,
                    help=f"timm MobileNetV2 variant or {VIT_ARCH} (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=None, help=f"default 3 (MobileNetV2), {VIT_EPOCHS} (ViT)")
    a = ap.parse_args()
    print(ensure_source(a.out, arch=a.arch, epochs=a.epochs))


if __name__ == "__main__":
    main()
