"""A ViT model deployed like a CNN's (issue 20, section 5), on real image files (PNGs of scikit-learn's digits):

* a tiny search (one linear-probe trial, random-weight ``timm:vit_tiny_patch16_224`` at 32 px) logs and
  registers the pyfunc; ``advisor predict`` from the experiment and the registry, the pyfunc loaded back
  by MLflow, and ``mlflow models serve`` all give the same classes;
* an ``advisor train --save`` file of a ViT whose top transformer blocks trained predicts through the same
  command, and exports to ONNX and TorchScript whose outputs equal PyTorch's within the derived roundoff
  tolerance, for any batch size;
* the real pretrained ViT-S/14 (``timm:vit_small_patch14_dinov2``) at 56 px: analyze, a linear probe,
  predict and ONNX export through the CLI, the probe well above chance.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from advisor.cli import main
from tests.deploy._helpers import (digit_images, images_payloads, labelled_folder, predict, serving,
                                   skip_without_serving)

VIT, SIZE, REGISTERED = "timm:vit_tiny_patch16_224", 32, "vit-best"
COMMON = ["--model", VIT, "--weights", "random", "--image-size", str(SIZE)]


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    """See tests/conftest.py."""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The search and a trained ``--save`` file (both through the CLI, as a user runs them), and 30 digit PNGs
    in class folders (images the 20-per-class dataset does not hold)."""
    tmp = tmp_path_factory.mktemp("vit-deploy")
    cache = ["--cache-dir", str(tmp / "cache")]
    assert main(["search", "digits:20", *COMMON, "--strategy", "linear_probe", "--trials", "1", *cache,
                 "--workspace", str(tmp / "ws"), "--study-name", "vit", "--experiment", "vit-exp",
                 "--register", REGISTERED, "--json", str(tmp / "search.json"), "--quiet"]) == 0
    search = json.loads((tmp / "search.json").read_text())
    save = tmp / "vit_last2.pt"
    assert main(["train", "digits:20", *COMMON, "--strategy", "last_k", "--k", "2", "--epochs", "2",
                 "--batch-size", "32", *cache, "--save", str(save), "--quiet"]) == 0
    images, labels = digit_images(30)
    return {"tmp": tmp, "ws": str(tmp / "ws"), "uri": search["tracking_uri"], "search": search, "save": save,
            "labelled": labelled_folder(tmp / "labelled", images, labels)}


def _files(world) -> list[Path]:
    return sorted(world["labelled"].glob("*/*.png"))


def test_predict_from_the_experiment_the_registry_and_the_pyfunc_agree(world, tmp_path):
    import mlflow.pyfunc
    import pandas as pd

    from advisor.track import scoped_tracking_uri

    ws = ["--workspace", world["ws"]]
    a = predict(["--experiment", "vit-exp"], world["labelled"], tmp_path / "a.csv", *ws)
    b = predict([f"models:/{REGISTERED}/1"], world["labelled"], tmp_path / "b.csv", *ws)
    assert a == b and len(a) == 30
    with scoped_tracking_uri(world["uri"]):
        loaded = mlflow.pyfunc.load_model(f"models:/{REGISTERED}/1")
    meta = loaded.metadata.metadata["advisor"]
    assert meta["format"] == "advisor.pyfunc/2"
    by_path = loaded.predict(pd.DataFrame({"path": [r["item"] for r in a]}))
    assert list(by_path["class"]) == [r["predicted"] for r in a]
    assert np.allclose(by_path["probability"], [float(r["probability"]) for r in a], atol=1e-6)
    bundle = loaded.unwrap_python_model().bundle
    assert bundle.model.layout.kind == "nlc" and bundle.preprocess.crop_size == SIZE
    # random weights, yet a probe on 200 digits' class tokens is far above chance (0.1) on unseen images
    assert np.mean([r["predicted"] == r["label"] for r in a]) > 0.3


def test_mlflow_models_serve_answers_like_advisor_predict_for_a_vit(world, tmp_path):
    skip_without_serving()
    rows = predict([f"models:/{REGISTERED}/1"], world["labelled"], tmp_path / "p.csv", "--workspace", world["ws"])
    with serving(f"models:/{REGISTERED}/1", world["uri"], tmp_path / "serve.log") as post:
        as_bytes, as_paths = images_payloads([Path(r["item"]) for r in rows])
        by_bytes, by_paths = post(as_bytes), post(as_paths)
    assert [p["class"] for p in by_bytes] == [p["class"] for p in by_paths] == [r["predicted"] for r in rows]
    assert np.allclose([p["probability"] for p in by_bytes], [float(r["probability"]) for r in rows], atol=1e-6)


def test_a_saved_vit_with_trained_blocks_predicts_its_own_answers(world, tmp_path):
    """``advisor predict FILE`` is the saved network's forward pass and softmax on the preprocessed files."""
    from PIL import Image

    from advisor.deploy.resolve import load_bundle

    rows = predict([str(world["save"])], world["labelled"], tmp_path / "p.csv", "--batch-size", "7")
    bundle = load_bundle(str(world["save"]))
    assert bundle.meta["strategy"] == "last_k" and bundle.meta["layout"]["kind"] == "nlc"
    x = torch.stack([bundle.preprocess(Image.open(r["item"])) for r in rows])
    with torch.no_grad():
        probs = torch.softmax(bundle.model(x), 1).numpy()
    assert [r["predicted"] for r in rows] == [bundle.classes[i] for i in probs.argmax(1)]
    assert np.allclose([float(r["probability"]) for r in rows], probs.max(1), atol=1e-6)


def _export_and_compare(save: Path, fmt: str, folder: Path, out: Path) -> None:
    """``advisor export SAVE``, then the file run by ONNX Runtime or TorchScript on the PNGs of ``folder``
    preprocessed from the JSON written beside it equals PyTorch within :func:`roundoff_tolerance` (PyTorch's
    own float32 error against float64 on these inputs, times 10), in one batch of all, one of 1 and one of 7."""
    from advisor.data import Preprocess, load_folder
    from advisor.deploy.exporting import roundoff_tolerance, run_exported
    from advisor.deploy.resolve import load_bundle

    assert main(["export", str(save), "--format", fmt, "--out", str(out)]) == 0
    spec = json.loads(out.with_name(out.name + ".preprocess.json").read_text())
    assert spec["input"]["shape"] == ["N", 3, SIZE, SIZE]
    pre = Preprocess(**spec["preprocess"])
    ds = load_folder(folder)
    x = torch.stack([pre(ds.load(i)) for i in range(len(ds))])
    model = load_bundle(str(save)).model
    tol = roundoff_tolerance(model, x)
    assert tol < 1e-2  # a roundoff scale, not a loose bound
    for batch in (x, x[:1], x[3:10]):
        got = run_exported(fmt, out, batch)
        with torch.no_grad():
            want = model(batch).numpy()
        assert got.shape == want.shape and np.abs(got - want).max() <= tol
        assert [spec["classes"][i] for i in got.argmax(1)] == [spec["classes"][i] for i in want.argmax(1)]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_an_exported_vit_equals_pytorch_on_real_images_for_any_batch(world, tmp_path, fmt):
    _export_and_compare(world["save"], fmt, world["labelled"], tmp_path / f"vit.{fmt}")


def test_an_exported_timm_swin_equals_pytorch_on_real_images(world, tmp_path):
    """timm's Swin at 32 px: its last stages see 4 x 4 and 2 x 2 maps under 7 x 7 windows shifted by 3 (the
    shifted-window mask and a roll larger than the map, both fixed once for the export)."""
    save = tmp_path / "swin.pt"
    assert main(["train", "digits:10", "--model", "timm:swin_tiny_patch4_window7_224", "--weights", "random",
                 "--image-size", str(SIZE), "--strategy", "linear_probe", "--cache-dir", str(world["tmp"] / "cache"),
                 "--save", str(save), "--quiet"]) == 0
    _export_and_compare(save, "onnx", world["labelled"], tmp_path / "swin.onnx")


def test_the_export_copy_resamples_the_position_embedding_once_to_the_same_values(world):
    """What the exporter traces: a copy whose ViT holds the position embedding of the crop's patch grid,
    computing bit for bit what the network computes; the network itself keeps its own."""
    from advisor.deploy.resolve import load_bundle
    from advisor.models._timm import at_input_size

    model = load_bundle(str(world["save"])).model
    fixed = at_input_size(model, SIZE)
    stem, fixed_stem = model.blocks[0].net, fixed.blocks[0].net
    assert tuple(stem.pos_embed.shape) == (1, 1 + 14 * 14, 192)  # 224 px: resampled at every call
    assert tuple(fixed_stem.pos_embed.shape) == (1, 1 + 2 * 2, 192)
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(fixed(x), model(x))


def test_an_operator_the_exporter_cannot_write_is_one_line_and_writes_nothing(tmp_path):
    """The operator a ViT's per-call position-embedding resampling needs (antialiased bicubic) has no ONNX
    form: a network that uses it is refused in one line naming the other format, and no file appears;
    TorchScript writes it."""
    from types import SimpleNamespace

    import torch.nn.functional as F

    from advisor.data import Preprocess
    from advisor.deploy.exporting import export_model
    from advisor.errors import AdvisorError

    class Resampling(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 2)

        def forward(self, x):
            y = F.interpolate(x, size=(5, 5), mode="bicubic", antialias=True, align_corners=False)
            return self.fc(y.mean(dim=(2, 3)))

    torch.manual_seed(0)
    bundle = SimpleNamespace(model=Resampling().eval(), preprocess=Preprocess(SIZE, SIZE), classes=["a", "b"],
                             task="y", meta={}, source="test")
    with pytest.raises(AdvisorError) as info:
        export_model(bundle, "onnx", tmp_path / "m.onnx")
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("cannot export this model as onnx") and "other --format" in msg
    assert not list(tmp_path.iterdir())
    assert export_model(bundle, "torchscript", tmp_path / "m.pt").max_abs_diff == 0.0


def test_the_real_vit_s14_analyzes_probes_and_predicts_through_the_cli(tmp_path):
    """The pretrained DINOv2-architecture ViT-S/14 at 56 px (4 x 4 patches): analyze (check off), a linear
    probe saved with --save, and predict on 30 digit PNGs it never saw. The probe is far above chance."""
    from PIL import Image

    from advisor.data import Preprocess
    from advisor.deploy.exporting import run_exported
    from advisor.models import _vit_weights as vw

    if not Path(vw.converted_path()).is_file():
        pytest.skip(f"the converted ViT-S/14 weights are not in the torch hub cache ({vw.SETUP_FIX})")
    model = ["--model", f"timm:{vw.MODEL}", "--image-size", "56"]
    assert main(["analyze", "digits:15", *model, "--check", "off", "--json", str(tmp_path / "a.json"),
                 "--quiet"]) == 0
    analysis = json.loads((tmp_path / "a.json").read_text())
    assert len(analysis["profile"]["blocks"]) == 13 and analysis["advice"]["strategy"]
    save = tmp_path / "probe.pt"
    assert main(["train", "digits:15", *model, "--strategy", "linear_probe", "--save", str(save),
                 "--cache-dir", str(tmp_path / "cache"),
                 "--json", str(tmp_path / "t.json"), "--quiet"]) == 0
    trained = json.loads((tmp_path / "t.json").read_text())
    images, labels = digit_images(30)
    folder = labelled_folder(tmp_path / "digits", images, labels)
    rows = predict([str(save)], folder, tmp_path / "p.csv", "--json", str(tmp_path / "p.json"))
    accuracy = json.loads((tmp_path / "p.json").read_text())["metrics"]["accuracy"]
    assert accuracy == pytest.approx(np.mean([r["predicted"] == r["label"] for r in rows]))
    print(f"ViT-S/14 at 56 px, linear probe on 150 digits: validation {trained['val_accuracy']:.3f}, "
          f"30 unseen PNGs {accuracy:.3f}")
    assert accuracy >= 0.6  # chance is 0.1
    # its position embedding (a 37 x 37 grid) resampled to 4 x 4 once for ONNX: the same classes as predict
    out = tmp_path / "probe.onnx"
    assert main(["export", str(save), "--format", "onnx", "--out", str(out)]) == 0
    spec = json.loads(out.with_name(out.name + ".preprocess.json").read_text())
    pre = Preprocess(**spec["preprocess"])
    x = torch.stack([pre(Image.open(r["item"])) for r in rows])
    assert [spec["classes"][i] for i in run_exported("onnx", out, x).argmax(1)] == [r["predicted"] for r in rows]
