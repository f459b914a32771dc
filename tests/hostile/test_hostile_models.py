"""Hostile models (issue 19, sections 1 and 7): loading a model must never run code from the model.

Every malicious file here is live: unpickling it (or reading its YAML unsafely, or importing its code) runs
``exec`` of a line that writes a marker file into ``$HOSTILE_MARKERS``. ``test_the_payloads_are_live``
proves it, loading each the unsafe way (``pickle``, ``torch.load(weights_only=False)``,
``yaml.unsafe_load``, ``mlflow.pyfunc.load_model``) and finding the marker; every refusal then asserts the
harness's rules (exit 2, one line of ours, no traceback, no leftovers, stores byte-identical) and that no
marker exists. Good paths stand beside them: a real models-from-code advisor model predicts and exports
from a ``--save`` file, a local MLflow folder, ``runs:/`` and ``models:/``.
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.hostile._harness import (advisor_env, assert_no_leftovers, assert_ok, assert_refused, assert_unchanged,
                                    run_advisor, snapshot)


class Payload:
    """Unpickling this object runs ``exec(code)``."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def _code(name: str) -> str:
    return f"import os; open(os.path.join(os.environ['HOSTILE_MARKERS'], {name!r}), 'w').write('ran')"


def _save_evil_torch(path: Path, name: str, **kw) -> Path:
    torch.save(Payload(_code(name)), path, **kw)
    return path


def _edit_mlmodel(folder: Path, edit) -> None:
    doc = yaml.safe_load((folder / "MLmodel").read_text())
    edit(doc)
    (folder / "MLmodel").write_text(yaml.safe_dump(doc))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A real advisor model (3 MobileNetV2 blocks, random weights, 32 px), saved as a file, logged as models
    from code into a sqlite MLflow store and registered; malicious models beside it (folders, a run, a
    registered version, files)."""
    from types import SimpleNamespace

    import mlflow.pyfunc
    from mlflow.tracking import MlflowClient
    from PIL import Image

    from advisor.data import Preprocess
    from advisor.deploy.pyfunc import AdvisorImageModel, log_pyfunc, register
    from advisor.models import create_backbone
    from advisor.deploy.model import TransferModel
    from advisor.deploy.modelfile import save_model

    tmp = tmp_path_factory.mktemp("hostile-models")
    markers = tmp / "markers"
    markers.mkdir()
    torch.manual_seed(0)
    bb = create_backbone("mobilenet_v2", "random")
    pp = bb.preprocessing
    pre = Preprocess(pp["resize_size"], pp["crop_size"], pp["mean"], pp["std"]).with_image_size(32)
    model = TransferModel(list(bb.blocks)[:3], {"label": torch.nn.Linear(bb.block_channels[2], 3)}, "label",
                          layout=bb.layout).eval()
    result = SimpleNamespace(model=model, strategy="linear_probe", params={"C": 1.0}, val_accuracy=0.5,
                             test_accuracy=0.5)
    good_file = save_model(result, tmp / "good.pt", model_name="mobilenet_v2", weights=None, preprocess=pre,
                           dataset_name="toy", classes={"label": ["cat", "dog", "owl"]})
    images = tmp / "images"
    images.mkdir()
    g = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(g.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(images / f"{i}.png")

    # the MLflow store: the good model logged as models from code and registered
    store = tmp / "store"
    store.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("e", artifact_location=(store / "artifacts").as_uri())
    run = client.create_run(exp)
    info = log_pyfunc(uri, run.info.run_id, good_file, classes=["cat", "dog", "owl"], preprocess=pre,
                      model_name="mobilenet_v2", task="label", experiment_id=exp, strategy="linear_probe")
    register(uri, info.model_uri, "good", {})
    client.set_terminated(run.info.run_id)
    import mlflow.artifacts

    from advisor.track import scoped_tracking_uri

    with scoped_tracking_uri(uri):
        good_folder = Path(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/model",
                                                               dst_path=str(tmp / "good-download")))

    class EvilPyfunc(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

        def __reduce__(self):
            return (exec, (_code("python_model.pkl"),))

    folders = tmp / "folders"
    folders.mkdir()
    mlflow.pyfunc.save_model(str(folders / "pickled"), python_model=EvilPyfunc(), pip_requirements=[])
    mlflow.pyfunc.save_model(str(folders / "old-advisor"), python_model=AdvisorImageModel(), pip_requirements=[],
                             artifacts={"advisor_model": str(good_file)})

    def variant(name: str) -> Path:
        dst = folders / name
        shutil.copytree(good_folder, dst)
        return dst

    torch_flavor = variant("pytorch")
    (torch_flavor / "data").mkdir()
    _save_evil_torch(torch_flavor / "data" / "model.pth", "pytorch")
    _edit_mlmodel(torch_flavor, lambda d: d["flavors"].update(
        pytorch={"model_data": "data", "pytorch_version": str(torch.__version__), "code": None},
        python_function={"loader_module": "mlflow.pytorch", "data": "data", "env": {"conda": "conda.yaml"}}))
    sk = variant("sklearn")
    (sk / "model.pkl").write_bytes(pickle.dumps(Payload(_code("sklearn"))))
    _edit_mlmodel(sk, lambda d: d["flavors"].update(
        sklearn={"pickled_model": "model.pkl", "serialization_format": "cloudpickle", "sklearn_version": "1.5"},
        python_function={"loader_module": "mlflow.sklearn", "model_path": "model.pkl"}))
    tagged = variant("yaml-tag")
    with open(tagged / "MLmodel", "a") as f:
        f.write(f"evil: !!python/object/apply:builtins.exec [{_code('yaml')!r}]\n")
    loader = variant("loader")
    (loader / "code" / "evil_loader.py").write_text(_code("loader") + "\n")
    _edit_mlmodel(loader, lambda d: d["flavors"]["python_function"].update(loader_module="evil_loader"))
    code = variant("code")
    (code / "_pyfunc_code.py").write_text(_code("code") + "\n")
    code_name = variant("code-name")
    (code_name / "evil.py").write_text(_code("code-name") + "\n")
    _edit_mlmodel(code_name, lambda d: d["flavors"]["python_function"].update(model_code_path="/x/evil.py"))
    escape = variant("escape")
    _save_evil_torch(folders / "outside.pt", "escape")
    _edit_mlmodel(escape, lambda d: d["flavors"]["python_function"]["artifacts"]["advisor_model"].update(
        path="../outside.pt"))
    swapped = variant("swapped")
    other = save_model(result, tmp / "other.pt", model_name="mobilenet_v2", weights=None, preprocess=pre,
                       dataset_name="other", classes={"label": ["a", "b", "c"]})
    shutil.copyfile(other, next((swapped / "artifacts").glob("*.pt")))

    # the malicious pickled pyfunc as a run's model and as a registered version, in the same real store
    evil_run = client.create_run(exp)
    client.log_artifacts(evil_run.info.run_id, str(folders / "pickled"), "model")
    client.set_terminated(evil_run.info.run_id)
    client.create_registered_model("evil")
    client.create_model_version("evil", f"{evil_run.info.artifact_uri}/model", run_id=evil_run.info.run_id)

    # advisor.model files
    files = tmp / "files"
    files.mkdir()
    payload = torch.load(good_file, weights_only=True)

    def variant_file(name: str, **changes) -> Path:
        data = {**payload, **changes}
        for k in [k for k, v in changes.items() if v is None and k != "weights"]:
            data.pop(k)
        torch.save(data, files / name)
        return files / name

    state = dict(payload["state_dict"])
    state.pop(next(iter(state)))
    file_cases = {
        "evil": _save_evil_torch(files / "evil.pt", "file"),
        "evil-protocol-4": _save_evil_torch(files / "evil4.pt", "file4", pickle_protocol=4),
        "missing-keys": variant_file("missing.pt", state_dict=None, heads=None, n_blocks=None),
        "wrong-types": variant_file("types.pt", n_blocks="3", standardise="no"),
        "state-dict": variant_file("state.pt", state_dict=state),
        "heads": variant_file("heads.pt", heads={"label": {"kind": "evil", "in": 24, "out": 3}}),
        "hub-name": variant_file("hub.pt", model_name="timm:hf-hub:someone/evil"),
    }
    raw = good_file.read_bytes()
    (files / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    (files / "empty.pt").write_bytes(b"")
    (files / "a-folder").mkdir()
    file_cases.update(truncated=files / "truncated.pt", empty=files / "empty.pt", folder=files / "a-folder")
    return SimpleNamespace(tmp=tmp, markers=markers, images=images, good_file=good_file, good_folder=good_folder,
                           uri=uri, store=store, good_run=run.info.run_id, evil_run=evil_run.info.run_id,
                           folders=folders, files=file_cases, evil_weights=_save_evil_torch(tmp / "w.pt", "weights"))


def _env(world) -> dict:
    return advisor_env({"HOSTILE_MARKERS": str(world.markers), "ADVISOR_CACHE": str(world.tmp / "cache")})


def _assert_nothing_ran(world) -> None:
    assert not list(world.markers.iterdir()), f"the model's code ran: {list(world.markers.iterdir())}"


def _refused(world, args: list[str], *needles: str, cwd: Path | None = None) -> str:
    for marker in world.markers.iterdir():  # a payload an earlier case ran failed that case; judge this one alone
        marker.unlink()
    cwd = cwd or world.tmp / "cwd"
    cwd.mkdir(exist_ok=True)
    before = snapshot(world.store, world.folders, world.good_file)
    line = assert_refused(run_advisor(args, cwd=cwd, env=_env(world)), *needles)
    _assert_nothing_ran(world)
    assert_unchanged(before, world.store, world.folders, world.good_file)
    assert_no_leftovers(world.tmp)
    assert not list(cwd.iterdir()), f"left in the working folder: {list(cwd.iterdir())}"
    return line


def _predict(world, model: str, *extra: str) -> list[str]:
    return ["predict", model, str(world.images), "--tracking-uri", world.uri, "--quiet", *extra]


def _export(world, model: str) -> list[str]:
    return ["export", model, "--format", "torchscript", "--out", str(world.tmp / "cwd" / "m.ts"),
            "--tracking-uri", world.uri]


# ------------------------------------------------------------------------------------------- the payloads
def test_the_payloads_are_live(world, tmp_path):
    """Loaded the unsafe way, every malicious file runs its code: the refusals below are not vacuous."""
    f = world.folders
    script = f"""
import pickle, sys, torch, yaml, importlib.util, mlflow.pyfunc
torch.load({str(world.files['evil'])!r}, weights_only=False)
torch.load({str(world.files['evil-protocol-4'])!r}, weights_only=False)
torch.load({str(world.evil_weights)!r}, weights_only=False)
torch.load({str(f / 'pytorch' / 'data' / 'model.pth')!r}, weights_only=False)
torch.load({str(f / 'outside.pt')!r}, weights_only=False)
pickle.loads(open({str(f / 'sklearn' / 'model.pkl')!r}, 'rb').read())
yaml.unsafe_load(open({str(f / 'yaml-tag' / 'MLmodel')!r}).read())
for name in ('loader', 'code', 'pickled'):
    try:
        mlflow.pyfunc.load_model({str(f)!r} + '/' + name)
    except Exception:
        pass
spec = importlib.util.spec_from_file_location('x', {str(f / 'code-name' / 'evil.py')!r})
spec.loader.exec_module(importlib.util.module_from_spec(spec))
"""
    env = advisor_env({"HOSTILE_MARKERS": str(tmp_path)})
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["file", "file4", "weights", "pytorch", "escape", "sklearn", "yaml", "loader", "code", "python_model.pkl",
         "code-name"])
    _assert_nothing_ran(world)


# ------------------------------------------------------------------------------------------- MLflow folders
@pytest.mark.parametrize("name, needles", [
    ("pickled", ("python_model.pkl", "unpickle")),
    ("pytorch", ("not an advisor model", "flavor pytorch")),
    ("yaml-tag", ("MLmodel", "Python object tags")),
    ("loader", ("loader module", "evil_loader")),
    ("code", ("_pyfunc_code.py", "not this advisor's own code")),
    ("escape", ("advisor_model", "inside the model folder")),
    ("swapped", ("sha256",)),
])
def test_predict_refuses_a_hostile_mlflow_folder(world, name, needles):
    _refused(world, _predict(world, str(world.folders / name)), *needles)


@pytest.mark.parametrize("name, needles", [
    ("pickled", ("python_model.pkl",)),
    ("sklearn", ("flavor sklearn",)),
    ("code-name", ("evil.py",)),
])
def test_export_refuses_a_hostile_mlflow_folder(world, name, needles):
    _refused(world, _export(world, str(world.folders / name)), *needles)


def test_an_old_pickled_advisor_pyfunc_is_refused_and_the_file_it_carries_predicts(world, tmp_path):
    """Refused in one line (loading it would unpickle); the line names the advisor.model file it carries,
    which loads as data: that advice works."""
    line = _refused(world, _predict(world, str(world.folders / "old-advisor")), "re-run advisor search",
                    "python_model.pkl")
    carried = line.split("it carries (", 1)[1].split(")", 1)[0]
    assert len(_predicted(world, carried, tmp_path / "p.csv")) == 4
    _assert_nothing_ran(world)


def test_a_run_and_a_registered_version_holding_a_malicious_model_are_refused(world):
    _refused(world, _predict(world, f"runs:/{world.evil_run}/model"), "python_model.pkl", "unpickle")
    _refused(world, _export(world, "models:/evil/1"), "python_model.pkl", "unpickle")


# ------------------------------------------------------------------------------------------- model files
@pytest.mark.parametrize("case, needles", [
    ("evil", ("not a readable advisor model", "unpickling")),
    ("evil-protocol-4", ("not a readable advisor model",)),  # torch's "Detected pickle protocol 4" stays silent
    ("missing-keys", ("missing", "n_blocks", "heads", "state_dict")),
    ("wrong-types", ("n_blocks is a str", "1 more wrong")),
    ("state-dict", ("do not fit its architecture", "1 missing")),
    ("truncated", ("not a readable advisor model",)),
    ("empty", ("not a readable advisor model",)),
    ("folder", ("a folder",)),
    ("hub-name", ("model_name", "not a model this package builds")),
])
def test_predict_refuses_a_hostile_model_file(world, case, needles):
    _refused(world, _predict(world, str(world.files[case])), *needles)


@pytest.mark.parametrize("case, needles", [
    ("evil", ("not a readable advisor model",)),
    ("heads", ("head 'label'", "no valid spec")),
])
def test_export_refuses_a_hostile_model_file(world, case, needles):
    _refused(world, _export(world, str(world.files[case])), *needles)


@pytest.mark.parametrize("command", [
    ["analyze", "digits:5", "--image-size", "32", "--quiet"],
    ["train", "digits:5", "--strategy", "linear_probe", "--image-size", "32", "--quiet"],
])
def test_a_malicious_weights_file_is_refused(world, command):
    _refused(world, [*command, "--weights", str(world.evil_weights)], "weights file")


# ------------------------------------------------------------------------------------------- good paths
def _predicted(world, spec: str, out: Path) -> list[str]:
    import csv

    assert_ok(run_advisor(_predict(world, spec, "--out", str(out)), env=_env(world)))
    with open(out, newline="") as f:
        return [(Path(row["item"]).name, row["predicted"], row["probability"]) for row in csv.DictReader(f)]


def test_a_models_from_code_advisor_model_predicts_from_the_file_the_folder_the_run_and_the_registry(world, tmp_path):
    """The same four answers, whichever way the model is named; MLflow's loader is never needed."""
    answers = {}
    for k, spec in enumerate((str(world.good_file), str(world.good_folder), f"runs:/{world.good_run}/model",
                              "models:/good/1")):
        answers[spec] = _predicted(world, spec, tmp_path / f"p{k}.csv")
    first = next(iter(answers.values()))
    assert [a[0] for a in first] == [f"{i}.png" for i in range(4)] and {a[1] for a in first} <= {"cat", "dog", "owl"}
    assert all(a == first for a in answers.values()), answers
    _assert_nothing_ran(world)


def test_a_models_from_code_advisor_model_exports(world, tmp_path):
    import json

    for spec in (str(world.good_folder), "models:/good/1"):
        out = tmp_path / f"{len(list(tmp_path.iterdir()))}.ts"
        assert_ok(run_advisor(["export", spec, "--format", "torchscript", "--out", str(out), "--tracking-uri",
                               world.uri], env=_env(world)))
        spec_json = json.loads(out.with_name(out.name + ".preprocess.json").read_text())
        assert spec_json["classes"] == ["cat", "dog", "owl"] and spec_json["input"]["shape"][2:] == [32, 32]
    _assert_nothing_ran(world)


def test_the_logged_model_is_models_from_code_with_our_metadata(world):
    """No pickle in what search logs: MLflow's models-from-code loader, our code file, our two data artifacts."""
    from advisor.deploy.mlmodel import CODE_FILE, check_folder

    doc = yaml.safe_load((world.good_folder / "MLmodel").read_text())
    pf = doc["flavors"]["python_function"]
    assert list(doc["flavors"]) == ["python_function"]
    assert pf["loader_module"] == "mlflow.pyfunc.loaders.code_model" and "python_model" not in pf
    assert not list(world.good_folder.rglob("*.pkl"))
    assert (world.good_folder / CODE_FILE.name).read_bytes() == CODE_FILE.read_bytes()
    assert doc["metadata"]["advisor"]["format"] == "advisor.pyfunc/2"
    checked = check_folder(world.good_folder)
    assert checked.model_file.suffix == ".pt" and checked.meta_file.name == "advisor.json"


def test_the_pyfunc_class_raises_no_type_hint_warning():
    """Section 7: MLflow warns "Add type hints to the `predict` method" (colour-coded) when a PythonModel
    subclass is defined without one: in every search that logs a model, and when MLflow loads it from code."""
    r = subprocess.run([sys.executable, "-W", "always", "-c", "import advisor.deploy.pyfunc"], env=advisor_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "type hints" not in r.stderr.lower(), r.stderr[-2000:]
