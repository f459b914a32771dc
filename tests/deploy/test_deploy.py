"""Using what a search found, end to end on real weights: a tiny search (2 linear-probe trials on 300
digits at 32 px through ImageNet MobileNetV2) logs and registers its best model; then predict (from the
study, the run, the registry), the pyfunc, serving with ``mlflow models serve`` and ONNX/TorchScript
export must all give the same classes on real image files the test writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from advisor.cli import main
from tests.deploy._helpers import (ROOT, digit_images, free_port, images_payloads, labelled_folder, png, predict,
                                   serving, skip_without_serving)

REGISTERED = "digits-best"


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    """See tests/conftest.py."""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The search (through the CLI, as a user runs it), a labelled image folder (class sub-folders), an
    unlabelled folder (loose files)."""
    from types import SimpleNamespace

    tmp = tmp_path_factory.mktemp("deploy")
    assert main(["search", "digits:30", "--strategy", "linear_probe", "--trials", "2", "--image-size", "32",
                 "--workspace", str(tmp / "ws"), "--cache-dir", str(tmp / "cache"), "--study-name", "dig",
                 "--experiment", "dig-exp", "--register", REGISTERED, "--json", str(tmp / "search.json"),
                 "--quiet"]) == 0
    result = SimpleNamespace(**json.loads((tmp / "search.json").read_text()))
    images, labels = digit_images(30)
    labelled = labelled_folder(tmp / "labelled", images, labels)
    loose = tmp / "loose"
    loose.mkdir()
    for k, img in enumerate(images[:6]):
        png(img, loose / f"img{k}.png")
    return {"tmp": tmp, "search": result, "ws": str(tmp / "ws"), "labelled": labelled, "loose": loose,
            "uri": result.tracking_uri}


def _predict(world, model_args: list[str], data, out: Path, *extra: str) -> list[dict]:
    return predict(model_args, data, out, "--workspace", world["ws"], *extra)


def test_search_logs_and_registers_the_best_model_with_its_preprocessing(world):
    import mlflow.pyfunc
    from mlflow.tracking import MlflowClient

    r = world["search"]
    assert r.model_uri and r.registered_version == "1"
    client = MlflowClient(r.tracking_uri)
    version = client.get_model_version(REGISTERED, "1")
    tags = version.tags
    assert tags["advisor.study_name"] == "dig" and tags["advisor.strategy"] == "linear_probe"
    assert len(tags["advisor.dataset_fingerprint"]) == 64
    assert float(tags["advisor.test_accuracy"]) == pytest.approx(r.test_accuracy)
    from advisor.track import scoped_tracking_uri

    with scoped_tracking_uri(r.tracking_uri):
        loaded = mlflow.pyfunc.load_model(f"models:/{REGISTERED}/1")
    meta = loaded.metadata
    assert [c.name for c in meta.get_input_schema().inputs] == ["image", "path"]
    assert [c.name for c in meta.get_output_schema().inputs][:3] == ["class", "class_index", "probability"]
    assert meta.saved_input_example_info is not None
    bundle = loaded.unwrap_python_model().bundle
    assert bundle.preprocess.crop_size == 32 and bundle.classes == [str(i) for i in range(10)]
    pf = meta.flavors["python_function"]  # models from code: nothing of it is a pickle
    assert pf["loader_module"] == "mlflow.pyfunc.loaders.code_model" and "python_model" not in pf
    assert meta.metadata["advisor"]["format"] == "advisor.pyfunc/2" and sorted(pf["artifacts"]) == [
        "advisor_meta", "advisor_model"]
    reqs = (Path(loaded._model_impl.context.artifacts["advisor_model"]).parents[1] / "requirements.txt").read_text()
    assert "torch==" in reqs and "mlflow==" in reqs and "pillow==" in reqs


def test_predict_from_the_study_the_run_and_the_registry_agree_and_score_the_labels(world, tmp_path, capsys):
    r = world["search"]
    a = _predict(world, ["--experiment", "dig-exp"], world["labelled"], tmp_path / "a.csv",
                 "--json", str(tmp_path / "a.json"), "--top-k", "2")
    b = _predict(world, [f"runs:/{r.parent_run_id}/model"], world["labelled"], tmp_path / "b.csv", "--top-k", "2")
    c = _predict(world, [f"models:/{REGISTERED}/1"], world["labelled"], tmp_path / "c.csv", "--top-k", "2")
    assert a == b == c and len(a) == 30
    assert list(a[0]) == ["item", "predicted", "probability", "label", "top1_class", "top1_prob", "top2_class",
                          "top2_prob"]
    assert all(Path(row["item"]).parent.name == row["label"] for row in a)
    report = json.loads((tmp_path / "a.json").read_text())
    acc = np.mean([row["predicted"] == row["label"] for row in a])
    assert report["metrics"]["accuracy"] == pytest.approx(acc) and report["metrics"]["n"] == 30
    conf = np.array(report["metrics"]["confusion"]["matrix"])
    assert conf.sum() == 30 and np.trace(conf) == round(acc * 30)
    assert acc > 0.3  # chance is 0.1
    out = capsys.readouterr().out
    assert "accuracy" in out and "confusion matrix" in out and "per class" in out


def test_predictions_equal_the_network_on_the_same_preprocessed_images(world, tmp_path):
    """advisor predict is the model's own forward pass and softmax (no other transform on the way)."""
    import torch

    from advisor.data import load_folder
    from advisor.deploy.resolve import load_bundle

    rows = _predict(world, ["--experiment", "dig-exp"], world["labelled"], tmp_path / "p.csv", "--top-k", "10")
    bundle = load_bundle(None, experiment="dig-exp", workspace=world["ws"])
    ds = load_folder(world["labelled"])
    x = torch.stack([bundle.preprocess(ds.load(i)) for i in range(len(ds))])
    with torch.no_grad():
        probs = torch.softmax(bundle.model(x), 1).numpy()
    assert [row["item"] for row in rows] == [str(p) for p in ds.paths]
    got = np.array([[float(row[f"top{j}_prob"]) for j in range(1, 11)] for row in rows])
    assert np.allclose(got, -np.sort(-probs, axis=1), rtol=0, atol=1e-6)  # float32 printed as float64
    assert [row["predicted"] for row in rows] == [bundle.classes[i] for i in probs.argmax(1)]


def test_parquet_output_holds_the_same_rows(world, tmp_path):
    import pyarrow.parquet as pq

    rows = _predict(world, ["--experiment", "dig-exp"], world["labelled"], tmp_path / "p.csv")
    _predict(world, ["--experiment", "dig-exp"], world["labelled"], tmp_path / "p.parquet")
    table = pq.read_table(tmp_path / "p.parquet").to_pylist()
    assert [t["predicted"] for t in table] == [r["predicted"] for r in rows]
    assert np.allclose([t["top1_prob"] for t in table], [float(r["top1_prob"]) for r in rows])


def test_an_unlabelled_folder_and_an_unreadable_image_fail_or_skip_by_the_flag(world, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in world["loose"].iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.png").write_bytes(b"not a png at all")
    out = tmp_path / "out.csv"
    capsys.readouterr()
    code = main(["predict", "--experiment", "dig-exp", str(folder), "--workspace", world["ws"], "--out", str(out),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "broken.png" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".*tmp"))  # nothing half-written
    rows = _predict(world, ["--experiment", "dig-exp"], folder, out, "--unreadable", "skip",
                    "--json", str(tmp_path / "r.json"))
    assert len(rows) == 6 and "label" not in rows[0]
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "broken.png" in lines[0] and lines[0].startswith("advisor: skipped: cannot read")
    assert [f["item"] for f in json.loads((tmp_path / "r.json").read_text())["failures"]] == [str(folder / "broken.png")]


def test_the_pyfunc_takes_paths_bytes_and_arrays(world):
    import mlflow.pyfunc
    import pandas as pd

    from advisor.track import scoped_tracking_uri

    paths = sorted(world["loose"].iterdir())
    with scoped_tracking_uri(world["uri"]):
        loaded = mlflow.pyfunc.load_model(f"runs:/{world['search'].parent_run_id}/model")
    by_path = loaded.predict(pd.DataFrame({"path": [str(p) for p in paths]}))
    by_bytes = loaded.predict(pd.DataFrame({"image": [p.read_bytes() for p in paths]}))
    images, _ = digit_images(30)
    by_array = loaded.unwrap_python_model().predict(None, images[:6])
    assert list(by_path["class"]) == list(by_bytes["class"]) == list(by_array["class"])
    assert np.allclose(by_path["probability"], by_array["probability"], atol=1e-7)
    assert np.allclose(by_path[[f"p_{i}" for i in range(10)]].sum(axis=1), 1.0, atol=1e-5)


def test_mlflow_loads_the_pyfunc_with_the_advisor_code_it_carries(world, tmp_path):
    """``mlflow.pyfunc.load_model`` in a fresh process, outside this checkout and without it on PYTHONPATH:
    the model object comes from the ``code/advisor`` copy logged with the model (``code_paths``), so serving
    needs no advisor install, and it predicts like ``advisor predict``."""
    rows = _predict(world, ["--experiment", "dig-exp"], world["loose"], tmp_path / "p.csv")
    script = (
        "import sys, mlflow, mlflow.pyfunc, pandas as pd\n"
        f"mlflow.set_tracking_uri({world['uri']!r})\n"
        f"m = mlflow.pyfunc.load_model('models:/{REGISTERED}/1')\n"
        "mod = sys.modules[type(m.unwrap_python_model()).__module__]\n"
        "print(mod.__file__)\n"
        "print(','.join(m.predict(pd.DataFrame({'path': sys.argv[1:]}))['class']))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    r = subprocess.run([sys.executable, "-c", script, *[row["item"] for row in rows]], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    where, classes = r.stdout.strip().splitlines()[-2:]
    assert Path(where).parts[-4:] == ("code", "advisor", "deploy", "pyfunc.py") and ROOT not in Path(where).parents
    assert classes.split(",") == [row["predicted"] for row in rows]


def _export(world, fmt: str, out: Path) -> dict:
    assert main(["export", "--experiment", "dig-exp", "--workspace", world["ws"], "--format", fmt,
                 "--out", str(out)]) == 0
    return json.loads(out.with_name(out.name + ".preprocess.json").read_text())


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_models_equal_pytorch_on_real_images_within_roundoff(world, tmp_path, fmt):
    """Parity on the image files, preprocessed from the JSON written beside the export. The tolerance is
    derived, not picked: ``roundoff_tolerance`` measures PyTorch's own float32 error against a float64
    evaluation on these very inputs and allows 10 times it (docstring there)."""
    import torch

    from advisor.data import Preprocess, load_folder
    from advisor.deploy.exporting import roundoff_tolerance, run_exported
    from advisor.deploy.resolve import load_bundle

    spec = _export(world, fmt, tmp_path / f"m.{fmt}")
    assert spec["classes"] == [str(i) for i in range(10)] and spec["input"]["shape"][1:] == [3, 32, 32]
    pre = Preprocess(**spec["preprocess"])
    ds = load_folder(world["labelled"])
    x = torch.stack([pre(ds.load(i)) for i in range(len(ds))])
    bundle = load_bundle(None, experiment="dig-exp", workspace=world["ws"])
    assert pre == bundle.preprocess and spec["preprocess"]["interpolation"] == bundle.preprocess.interpolation
    with torch.no_grad():
        expected = bundle.model(x).numpy()
    got = run_exported(fmt, tmp_path / f"m.{fmt}", x)
    tol = roundoff_tolerance(bundle.model, x)
    assert tol < 1e-2  # a roundoff scale, not a loose bound
    assert np.abs(got - expected).max() <= tol
    rows = _predict(world, ["--experiment", "dig-exp"], world["labelled"], tmp_path / "p.csv")
    assert [spec["classes"][i] for i in got.argmax(1)] == [row["predicted"] for row in rows]


def test_onnx_missing_names_the_extra_and_writes_nothing(world, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    out = tmp_path / "m.onnx"
    code = main(["export", "--experiment", "dig-exp", "--workspace", world["ws"], "--format", "onnx",
                 "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "advisor[export]" in err and "onnxruntime" in err
    assert not list(tmp_path.iterdir())


def test_mlflow_models_serve_answers_like_advisor_predict(world, tmp_path):
    skip_without_serving()
    rows = _predict(world, ["--experiment", "dig-exp"], world["labelled"], tmp_path / "p.csv")
    with serving(f"models:/{REGISTERED}/1", world["uri"], tmp_path / "serve.log") as post:
        as_bytes, as_paths = images_payloads([Path(row["item"]) for row in rows])
        by_bytes, by_paths = post(as_bytes), post(as_paths)
    assert [p["class"] for p in by_bytes] == [p["class"] for p in by_paths] == [r["predicted"] for r in rows]
    assert np.allclose([p["probability"] for p in by_bytes], [float(r["probability"]) for r in rows], atol=1e-6)


def _one_line_error(capsys, argv) -> str:
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("advisor: error:"), err
    return err


def test_bad_models_are_one_line_and_status_2(world, tmp_path, capsys):
    out = tmp_path / "out.csv"
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 100)
    common = [str(world["loose"]), "--workspace", world["ws"], "--out", str(out), "--quiet"]
    assert "not a readable advisor model" in _one_line_error(capsys, ["predict", str(junk), *common])
    import torch

    torch.save({"format": "something/1"}, tmp_path / "other.pt")
    assert "not an advisor model" in _one_line_error(capsys, ["predict", str(tmp_path / "other.pt"), *common])
    from mlflow.tracking import MlflowClient

    client = MlflowClient(world["uri"])
    trial_run = client.search_runs([client.get_experiment_by_name("dig-exp").experiment_id],
                                   filter_string="tags.`advisor.kind` = 'trial'")[0]
    assert "no model at runs:/" in _one_line_error(capsys, ["predict", f"runs:/{trial_run.info.run_id}/model",
                                                            *common])
    assert "no model at models:/" in _one_line_error(capsys, ["predict", f"models:/{REGISTERED}/7", *common])
    assert "no MLflow experiment" in _one_line_error(capsys, ["predict", "--experiment", "nope", *common])
    down = f"http://127.0.0.1:{free_port()}"
    err = _one_line_error(capsys, ["predict", f"models:/{REGISTERED}/1", str(world["loose"]), "--tracking-uri", down,
                                   "--out", str(out), "--quiet"])
    assert "127.0.0.1" in err
    assert "end it with .csv or .parquet" in _one_line_error(capsys, ["predict", "--experiment", "dig-exp",
                                                                     str(world["loose"]), "--workspace", world["ws"],
                                                                     "--out", str(tmp_path / "x.txt")])
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".*tmp"))


def test_a_saved_probe_predicts_through_the_same_command(world, tmp_path):
    """advisor train --save of svm_early (a probe on an early block) predicts like the search's models."""
    save = tmp_path / "svm.pt"
    assert main(["train", "digits:30", "--strategy", "svm_early", "--image-size", "32", "--save", str(save),
                 "--cache-dir", str(world["tmp"] / "cache"), "--quiet"]) == 0
    rows = _predict(world, [str(save)], world["labelled"], tmp_path / "p.csv", "--batch-size", "7")
    assert len(rows) == 30 and np.mean([r["predicted"] == r["label"] for r in rows]) > 0.3


def test_a_pipeline_model_with_its_two_stage_head_predicts_through_the_same_command(world, tmp_path):
    """The pipeline exports x -> z (network head) -> softmax -> y (stage 2's linear map) as one head; predict
    reads the final task's classes and returns the composed probabilities."""
    from types import SimpleNamespace

    import torch
    from PIL import Image

    from advisor.data import Preprocess
    from advisor.deploy.resolve import load_bundle
    from advisor.models import create_backbone
    from advisor.deploy.model import TransferModel
    from advisor.deploy.modelfile import save_model

    bb = create_backbone("mobilenet_v2")
    pp = bb.preprocessing
    pre = Preprocess(pp["resize_size"], pp["crop_size"], pp["mean"], pp["std"]).with_image_size(32)
    torch.manual_seed(0)
    blocks = list(bb.blocks)[:5]
    with torch.no_grad():
        width = TransferModel(blocks, {}, "y", layout=bb.layout).features(torch.zeros(1, 3, 32, 32)).shape[1]
    head = torch.nn.Sequential(torch.nn.Linear(width, 6), torch.nn.Softmax(dim=1), torch.nn.Linear(6, 3))
    model = TransferModel(blocks, {"y": head}, "y", layout=bb.layout).eval()
    result = SimpleNamespace(model=model, strategy="pipeline_vs_end_to_end", params={}, val_accuracy=0.5,
                             test_accuracy=0.5)
    save = save_model(result, tmp_path / "pipe.pt", model_name="mobilenet_v2", weights=None, preprocess=pre,
                      classes={"z": [f"z{i}" for i in range(6)], "y": ["same", "group", "other"]})
    rows = _predict(world, [str(save)], world["loose"], tmp_path / "p.csv")
    bundle = load_bundle(str(save))
    assert bundle.classes == ["same", "group", "other"]
    x = torch.stack([pre(Image.open(r["item"])) for r in rows])
    with torch.no_grad():
        expected = torch.softmax(model(x), 1).numpy()
    assert [r["predicted"] for r in rows] == [bundle.classes[i] for i in expected.argmax(1)]
    assert np.allclose([float(r["top1_prob"]) for r in rows], expected.max(1), atol=1e-6)


@pytest.mark.parametrize("dataset, strategy", [("fashion-pairs:40", "multi_task"),
                                               ("fashion-chain:60", "pipeline_vs_end_to_end")])
def test_a_trained_multi_task_or_pipeline_model_predicts_its_final_task(world, tmp_path, dataset, strategy):
    """Really trained (two epochs), saved as `advisor train --save` saves it, then `advisor predict` on
    image files: the final task's classes, and the trained network's own answers on the same images."""
    import torch
    from PIL import Image

    from advisor.context import make_context
    from advisor.deploy.resolve import load_bundle
    from advisor.train import run_strategy
    from advisor.deploy.modelfile import save_model

    ctx = make_context(dataset, "mobilenet_v2", image_size=32, cache_dir=str(world["tmp"] / "cache"))
    params = {"k": 2, "epochs": 2, **({"learning_curve": False} if strategy == "pipeline_vs_end_to_end" else {})}
    result = run_strategy(ctx, strategy, params)
    save = save_model(result, tmp_path / "m.pt", model_name="mobilenet_v2", weights=None, preprocess=ctx.preprocess,
                      dataset_name=ctx.dataset.name, classes=ctx.dataset.classes)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in ctx.split.test[:12]:
        png(np.asarray(ctx.dataset.images[i]), folder / f"{int(i):05d}.png")
    rows = _predict(world, [str(save)], folder, tmp_path / "p.csv")
    final = ctx.dataset.primary_task
    assert load_bundle(str(save)).classes == list(ctx.dataset.classes[final])
    x = torch.stack([ctx.preprocess(Image.open(r["item"])) for r in rows])
    with torch.no_grad():
        expected = torch.softmax(result.model.eval()(x), 1).numpy()
    assert [r["predicted"] for r in rows] == [ctx.dataset.classes[final][i] for i in expected.argmax(1)]
    assert np.allclose([float(r["top1_prob"]) for r in rows], expected.max(1), atol=1e-5)


def test_npz_and_csv_data_predict_like_the_image_folder(world, tmp_path):
    """The same 30 images as an NPZ (rows are indices) and as a CSV manifest (rows are paths) get the same classes
    as from the folder."""
    from PIL import Image

    rows = _predict(world, ["--experiment", "dig-exp"], world["labelled"], tmp_path / "f.csv")
    files = [Path(r["item"]) for r in rows]
    x = np.stack([np.asarray(Image.open(f)) for f in files])
    y = np.array([int(f.parent.name) for f in files])
    np.savez(tmp_path / "d.npz", x=x, y=y)
    by_npz = _predict(world, ["--experiment", "dig-exp"], tmp_path / "d.npz", tmp_path / "n.csv")
    assert [r["item"] for r in by_npz] == [str(i) for i in range(30)]
    assert [r["predicted"] for r in by_npz] == [r["predicted"] for r in rows]
    assert [r["label"] for r in by_npz] == [r["label"] for r in rows]
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,digit\n" + "".join(f"{f},{f.parent.name}\n" for f in files))
    by_csv = _predict(world, ["--experiment", "dig-exp"], manifest, tmp_path / "c.csv")
    assert [r["predicted"] for r in by_csv] == [r["predicted"] for r in rows]


def test_a_model_logged_without_its_preprocessing_is_refused_in_one_line(world, tmp_path, capsys):
    """A plain PyTorch-flavour model (what searches logged before the pyfunc) is refused unread: its flavor is a
    pickle, and nothing says how to preprocess images or what the classes are."""
    import torch
    from mlflow.tracking import MlflowClient

    from advisor.track import log_pytorch_model

    client = MlflowClient(world["uri"])
    exp = client.get_experiment_by_name("dig-exp").experiment_id
    run = client.create_run(exp, tags={"advisor.kind": "other"})
    log_pytorch_model(world["uri"], run.info.run_id, torch.nn.Linear(2, 2), experiment_id=exp)
    client.set_terminated(run.info.run_id)
    err = _one_line_error(capsys, ["predict", f"runs:/{run.info.run_id}/model", str(world["loose"]),
                                   "--workspace", world["ws"], "--out", str(tmp_path / "o.csv"), "--quiet"])
    assert "not an advisor model" in err and "flavor pytorch" in err and not (tmp_path / "o.csv").exists()


def test_a_registry_that_fails_at_the_end_is_one_line_and_loses_no_trial(tmp_path, capsys, monkeypatch):
    """The registry refuses after the trials ran: status 2 with one line, the study run ended, its model logged."""
    import advisor.deploy.pyfunc as pyfunc
    from advisor.errors import AdvisorError

    def refuse(*args, **kwargs):
        raise AdvisorError("cannot register the model (registry refused)", "check the Model Registry")

    monkeypatch.setattr(pyfunc, "register", refuse)
    err = _one_line_error(capsys, ["search", "digits:30", "--strategy", "linear_probe", "--trials", "2",
                                   "--image-size", "32", "--workspace", str(tmp_path / "ws"), "--cache-dir",
                                   str(tmp_path / "cache"), "--experiment", "e", "--register", "m", "--quiet"])
    assert "registry refused" in err
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'ws' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("e").experiment_id
    parent = client.search_runs([exp], filter_string="tags.`advisor.kind` = 'study'")[0]
    assert parent.info.status == "FINISHED" and "advisor.best_trial" in parent.data.tags
    assert len(client.search_runs([exp], filter_string="tags.`advisor.kind` = 'trial'")) == 2
    assert [m.name for m in client.search_logged_models(experiment_ids=[exp])] == ["model"]
