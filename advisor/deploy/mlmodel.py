"""An MLflow model folder, checked before anything in it is loaded, and read as data only.

``advisor search`` logs its best model as MLflow "models from code" (:mod:`advisor.deploy.pyfunc`): the
``MLmodel`` file, this package's ``_pyfunc_code.py`` (the file MLflow runs to get the model object),
``code/advisor`` (the package, for ``mlflow models serve`` without an advisor install) and two artifacts:
``advisor_model`` (the ``advisor.model/2`` file: tensors and plain values) and ``advisor_meta``
(``advisor.json``: preprocessing, class names, the weights file's sha256).

``advisor predict`` and ``export`` never hand a model to ``mlflow.pyfunc.load_model``. :func:`check_folder`
reads ``MLmodel`` with ``yaml.safe_load`` (no Python tags) and refuses, in one line, anything that is not
ours or that MLflow would unpickle or run: a flavor other than ``python_function`` (pytorch, sklearn, ...
pickles), a ``python_model.pkl`` (cloudpickle), a loader module other than MLflow's models-from-code
loader, a code file that differs from ours byte for byte, artifacts other than our two (or outside the
folder), no ``advisor`` metadata block of our format. :func:`bundle_from_folder` then loads the weights with
``torch.load(weights_only=True)`` (schema checked) and the preprocessing and classes from JSON. Nothing
from the folder is imported or executed. ``runs:/`` and ``models:/`` URIs are downloaded first
(:func:`download`: MLflow's artifact download copies files, it deserialises nothing), then checked the
same way.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from advisor.errors import AdvisorError

PYFUNC_FORMAT = "advisor.pyfunc/2"
ARTIFACT_MODEL = "advisor_model"  # the advisor.model/2 file
ARTIFACT_META = "advisor_meta"  # advisor.json
CODE_FILE = Path(__file__).with_name("_pyfunc_code.py")
CODE_LOADER = "mlflow.pyfunc.loaders.code_model"
MAX_MLMODEL_BYTES = 1 << 20
MAX_META_BYTES = 16 << 20
FIX = "pass a model logged by advisor search (runs:/RUN_ID/model, models:/NAME/VERSION, --experiment NAME), " \
      "or a file written by advisor train --save"


@dataclass
class Checked:
    """What :func:`check_folder` found: the two artifact files of an advisor pyfunc."""

    folder: Path
    model_file: Path
    meta_file: Path
    metadata: dict


def _refuse(source: str, problem: str, fix: str = FIX) -> AdvisorError:
    return AdvisorError(f"{source} {problem}", fix)


def read_mlmodel(folder: Path, source: str) -> dict:
    """``folder/MLmodel`` as plain YAML (``safe_load``: a ``!!python/...`` tag is refused, not built)."""
    import yaml

    path = folder / "MLmodel"
    if path.is_symlink() or not path.is_file():
        raise _refuse(source, "has no MLmodel file of its own (missing, a link or not a file)")
    try:
        if path.stat().st_size > MAX_MLMODEL_BYTES:
            raise _refuse(source, f"has an MLmodel file over {MAX_MLMODEL_BYTES >> 20} MiB, not one MLflow wrote")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _refuse(source, f"has an unreadable MLmodel file ({getattr(e, 'strerror', None) or e})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        tag = "Python object tags" if "python/" in str(e) else "invalid YAML"
        raise _refuse(source, f"has an MLmodel file with {tag}, refused unread (it could run code)") from None
    if not isinstance(doc, dict):
        raise _refuse(source, "has an MLmodel file that is not a YAML mapping")
    return doc


def check_folder(folder: str | os.PathLike, source: str | None = None) -> Checked:
    """The MLmodel of ``folder`` is an advisor models-from-code pyfunc, and nothing in it would be unpickled;
    one AdvisorError otherwise (see the module docstring for the list)."""
    folder = Path(folder)
    source = source or str(folder)
    doc = read_mlmodel(folder, source)
    flavors = doc.get("flavors")
    if not isinstance(flavors, dict) or not flavors:
        raise _refuse(source, "is not an MLflow model (its MLmodel names no flavor)")
    others = sorted(str(f) for f in flavors if f != "python_function")
    if others:
        raise _refuse(source, f"is not an advisor model (flavor {', '.join(others)[:80]}: loading it would "
                              "unpickle or import the model's own objects), refused unread")
    pf = flavors.get("python_function")
    if not isinstance(pf, dict):
        raise _refuse(source, "is not an advisor model (no python_function flavor)")
    artifacts = pf.get("artifacts")
    if "python_model" in pf or list(folder.glob("python_model.pkl*")):
        if isinstance(artifacts, dict) and ARTIFACT_MODEL in artifacts:
            carried = _artifact_path(folder, source, artifacts, ARTIFACT_MODEL, check=False)
            raise AdvisorError(f"{source} is an advisor model logged as a pickled pyfunc (python_model.pkl): "
                               "loading it would unpickle, refused unread",
                               f"re-run advisor search to log it again, or pass the advisor.model file it carries "
                               f"({carried}), which loads without unpickling")
        raise _refuse(source, "is a pickled pyfunc (python_model.pkl), not an advisor model: loading it would "
                              "unpickle, refused unread")
    loader = pf.get("loader_module")
    if loader != CODE_LOADER:
        raise _refuse(source, f"is not an advisor model (loader module {str(loader)[:60]!r}, not MLflow's "
                              "models-from-code loader), refused unread")
    code = pf.get("model_code_path")
    if not isinstance(code, str) or os.path.basename(code) != CODE_FILE.name:
        raise _refuse(source, f"is not an advisor model (its model code {os.path.basename(str(code))[:60]!r} is "
                              f"not advisor's {CODE_FILE.name}), refused unread")
    code_file = folder / CODE_FILE.name
    try:
        ours = code_file.is_file() and not code_file.is_symlink() and code_file.read_bytes() == CODE_FILE.read_bytes()
    except OSError:
        ours = False
    if not ours:
        raise _refuse(source, f"is not an advisor model (its {CODE_FILE.name} is not this advisor's own code), "
                              "refused unread", "re-run advisor search with this advisor version to log it again")
    metadata = (doc.get("metadata") or {}).get("advisor") if isinstance(doc.get("metadata"), dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != PYFUNC_FORMAT:
        raise _refuse(source, f"is not an advisor model (no advisor metadata of format {PYFUNC_FORMAT} in its "
                              "MLmodel)")
    if not isinstance(artifacts, dict) or set(artifacts) != {ARTIFACT_MODEL, ARTIFACT_META}:
        names = sorted(map(str, artifacts)) if isinstance(artifacts, dict) else []
        raise _refuse(source, f"is not an advisor model (artifacts {', '.join(names)[:80] or 'none'}, not "
                              f"{ARTIFACT_MODEL} and {ARTIFACT_META})")
    return Checked(folder, _artifact_path(folder, source, artifacts, ARTIFACT_MODEL),
                   _artifact_path(folder, source, artifacts, ARTIFACT_META), metadata)


def _artifact_path(folder: Path, source: str, artifacts: dict, name: str, check: bool = True) -> Path:
    """An artifact's file: a relative path inside ``folder``, a regular file, no link on the way."""
    entry = artifacts.get(name)
    rel = entry.get("path") if isinstance(entry, dict) else None
    if not isinstance(rel, str) or not rel or os.path.isabs(rel):
        raise _refuse(source, f"names no relative path for its artifact {name}")
    path = folder / rel
    if not check:
        return path
    steps = [folder.joinpath(*Path(rel).parts[: i + 1]) for i in range(len(Path(rel).parts))]
    try:
        inside = ".." not in Path(rel).parts and path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a link loop
        inside = False
    if not inside or any(p.is_symlink() for p in steps) or not path.is_file():
        raise _refuse(source, f"has no regular file for its artifact {name} inside the model folder ({rel[:80]})")
    return path


def write_meta(path: Path, model_file: Path, *, task: str, classes: list[str], preprocess_state: dict) -> Path:
    """``advisor.json``: what the pyfunc needs besides the weights, as plain JSON."""
    from advisor.models._weights import file_sha256

    path.write_text(json.dumps({"format": PYFUNC_FORMAT, "task": task, "classes": list(classes),
                                "preprocess": preprocess_state, "model_sha256": file_sha256(model_file)},
                               indent=2))
    return path


def read_meta(meta_file: Path, model_file: Path, source: str) -> dict:
    """``advisor.json`` checked: our format, the weights file it was written with."""
    try:
        if meta_file.stat().st_size > MAX_META_BYTES:
            raise _refuse(source, f"has an {meta_file.name} over {MAX_META_BYTES >> 20} MiB")
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise _refuse(source, f"has an unreadable {meta_file.name} ({' '.join(str(e).split())[:80]})") from None
    if not isinstance(meta, dict) or meta.get("format") != PYFUNC_FORMAT:
        raise _refuse(source, f"has an {meta_file.name} that is not of format {PYFUNC_FORMAT}")
    if not isinstance(meta.get("task"), str) or not isinstance(meta.get("preprocess"), dict) \
            or not isinstance(meta.get("classes"), list):
        raise _refuse(source, f"has an {meta_file.name} without its task, classes and preprocessing")
    from advisor.models._weights import file_sha256

    try:
        digest = file_sha256(model_file)
    except OSError as e:
        raise _refuse(source, f"has an unreadable weights file ({e.strerror or e})") from None
    if meta.get("model_sha256") != digest:
        raise _refuse(source, f"has a weights file that is not the one its {meta_file.name} was written with "
                              "(sha256 differs)")
    return meta


def bundle_from_artifacts(model_file: str | os.PathLike, meta_file: str | os.PathLike, source: str):
    """The Bundle of an advisor pyfunc's two artifacts: weights with ``weights_only=True`` (schema checked),
    preprocessing and classes from ``advisor.json``."""
    from advisor.deploy.inference import make_bundle
    from advisor.deploy.modelfile import load_model

    model_file, meta_file = Path(model_file), Path(meta_file)
    meta = read_meta(meta_file, model_file, source)
    model, file_meta = load_model(model_file)
    if meta["task"] != model.primary:
        raise _refuse(source, f"has an {meta_file.name} for task {meta['task'][:40]!r}, its network predicts "
                              f"{model.primary[:40]!r}")
    return make_bundle(model, file_meta, meta["preprocess"], meta["classes"], source, where=source)


def bundle_from_folder(folder: str | os.PathLike, source: str | None = None):
    """Check ``folder`` (:func:`check_folder`), then load its artifacts as data (:func:`bundle_from_artifacts`)."""
    checked = check_folder(folder, source)
    return bundle_from_artifacts(checked.model_file, checked.meta_file, source or str(folder))


def download(model_uri: str, tracking_uri: str, dst: Path) -> Path:
    """The files of ``model_uri`` (``runs:/``, ``models:/``) copied into ``dst``; nothing is deserialised."""
    import logging

    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from advisor.track.model_log import scoped_tracking_uri
    from advisor.track.quiet import quiet_downloads, quiet_logger

    try:  # the runs:/ repository looks the run's logged model up in the current tracking store
        with quiet_downloads(), scoped_tracking_uri(tracking_uri), quiet_logger("mlflow", logging.CRITICAL):
            local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst),
                                                        tracking_uri=tracking_uri)
    except MlflowException as e:
        first = (str(e.message).splitlines() or [""])[0][:300]
        raise AdvisorError(f"no model at {model_uri} ({first})",
                           "pass runs:/RUN_ID/model of a run that logged one, models:/NAME/VERSION of a "
                           "registered version, or --experiment NAME") from None
    except OSError as e:
        raise AdvisorError(f"cannot read the model at {model_uri} ({e.strerror or e})",
                           "check the tracking store and its artifact folder") from None
    path = Path(local)
    if not path.is_dir():
        raise AdvisorError(f"no model at {model_uri} (it is a single file, not a model folder)",
                           "pass runs:/RUN_ID/model of a run that logged one, or models:/NAME/VERSION")
    return path
