"""Images per second of ``advisor predict`` on this machine, at 64 and 224 px.

The model (``--model``, default ImageNet MobileNetV2; ``timm:vit_small_patch14_dinov2`` for the ViT-S/14,
at sizes that are multiples of 14) is the backbone's pretrained blocks, pooled by its layout, and a
10-class linear head, saved with ``advisor.deploy.modelfile.save_model`` -- the cost of every strategy's
export up to the head. The images are
real: scikit-learn digits upscaled to 256 x 256 RGB PNG files in a temporary folder, so each image is
read from disk, decoded, resized to the resolution, cropped and normalised, then batched through the
network (``advisor.deploy.predict.predict_data``, what the CLI runs). A first full pass warms the file
cache and the allocator and is not counted. For comparison it also times the network alone on random
tensors already in memory (two batches): the gap is what reading, decoding and preprocessing cost.

    python benchmarks/predict_speed.py [--model mobilenet_v2] [--n 512] [--sizes 64,224] [--batch-size 64]
        [--threads T] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's advisor, not another install


def write_images(folder: Path, n: int) -> None:
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    for k in range(n):
        a = (d.images[k % len(d.images)] * (255.0 / 16.0)).astype(np.uint8)
        Image.fromarray(a, "L").resize((256, 256), Image.BICUBIC).convert("RGB").save(folder / f"{k:05d}.png")


def save_pretrained(model_name: str, path: Path, size: int) -> None:
    """``model_name``'s pretrained blocks and a seeded 10-class linear head, saved as ``advisor train`` saves."""
    import torch

    from advisor.data import Preprocess
    from advisor.models import create_backbone
    from advisor.deploy.model import TransferModel
    from advisor.deploy.modelfile import save_model

    bb = create_backbone(model_name, image_size=size)
    pre = Preprocess.from_config(bb.preprocessing, size)
    torch.manual_seed(0)
    head = torch.nn.Linear(int(bb.feature_dim), 10)
    model = TransferModel(list(bb.blocks), {"label": head}, "label", layout=bb.layout).eval()
    result = SimpleNamespace(model=model, strategy="full_finetune", params={}, val_accuracy=float("nan"),
                             test_accuracy=float("nan"))
    save_model(result, path, model_name=model_name, weights=None, preprocess=pre, dataset_name="bench",
               classes={"label": [str(i) for i in range(10)]})


def predict_rate(model_path: Path, folder: Path, batch_size: int, device: str):
    """``advisor predict``'s images per second over ``folder`` (a first, uncounted pass warms the file
    cache and the allocator), and the loaded bundle."""
    from advisor.deploy.inference import bundle_from_file
    from advisor.deploy.predict import predict_data

    bundle = bundle_from_file(model_path)
    predict_data(bundle, str(folder), batch_size=batch_size, device=device)  # warm-up
    t = time.perf_counter()
    pred = predict_data(bundle, str(folder), batch_size=batch_size, device=device)
    return pred, time.perf_counter() - t, bundle


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mobilenet_v2")
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--sizes", default="64,224")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "imgs").mkdir()
        write_images(tmp / "imgs", args.n)
        print(f"{args.model}: {args.n} PNG files 256x256, batch {args.batch_size}, device {args.device}, "
              f"torch threads {torch.get_num_threads()}")
        for size in (int(s) for s in args.sizes.split(",")):
            save_pretrained(args.model, tmp / f"m{size}.pt", size)
            pred, wall, bundle = predict_rate(tmp / f"m{size}.pt", tmp / "imgs", args.batch_size, args.device)
            x = torch.randn(args.batch_size, 3, size, size, device=args.device)
            model = bundle.model.to(args.device)
            with torch.inference_mode():
                t = time.perf_counter()
                for _ in range(2):
                    model(x)
                forward = 2 * args.batch_size / (time.perf_counter() - t)
            print(f"{size:4d} px: {pred.images_per_second:7.1f} images/s ({len(pred.items)} images in {wall:.2f} s); "
                  f"the network alone on ready tensors: {forward:7.1f} images/s")


if __name__ == "__main__":
    main()
