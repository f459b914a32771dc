"""Shift measures behind one interface (issue 20, sections 1 and 4): BatchNorm statistics, reference
moments of a source sample stored beside the weights, or none with the reason."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import advisor
from advisor.advise.rules import DEFAULT_THRESHOLDS, Thresholds, advise
from advisor.api import reference
from advisor.errors import AdvisorError
from advisor.measure._reference_store import load_reference, reference_path, save_reference, weights_digest
from advisor.measure.shift import MEASURES, BNStatsShift, NoShift, ReferenceShift, ShiftMeasure, choose_shift, measure_of
from advisor.models import create_backbone
from tests.hostile._harness import advisor_env, assert_ok, assert_refused, run_advisor, snapshot, assert_unchanged

VIT = "timm:vit_tiny_patch16_224"
SIZE = 32
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _images(seed: int, n_per_class: int = 20, shifted: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Two classes of 32 px greyscale images: horizontal or vertical stripes under noise, mid-grey.
    ``shifted``: the same scenes at a third of the contrast on a bright background (an input-level shift)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    grid = np.arange(SIZE)
    for c in (0, 1):
        for _ in range(n_per_class):
            phase, period = rng.uniform(0, 2 * np.pi), rng.uniform(4, 8)
            wave = np.sin(2 * np.pi * grid / period + phase)
            img = 128 + 60 * (wave[:, None] if c == 0 else wave[None, :]) + rng.normal(0, 20, (SIZE, SIZE))
            if shifted:
                img = 210 + 0.3 * (img - 128)
            xs.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
            ys.append(c)
    return np.stack(xs), np.asarray(ys)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A random-weight ViT saved as a weights file, a source sample and two targets (as NPZ datasets)."""
    d = tmp_path_factory.mktemp("shift")
    torch.manual_seed(0)
    import timm

    torch.save(timm.create_model(VIT.split(":", 1)[1], pretrained=False).state_dict(), d / "vit.pth")
    torch.manual_seed(1)
    torch.save(timm.create_model(VIT.split(":", 1)[1], pretrained=False).state_dict(), d / "vit-other.pth")
    for name, seed, shifted in (("source", 0, False), ("same", 1, False), ("shifted", 2, True)):
        x, y = _images(seed, shifted=shifted)
        np.savez(d / f"{name}.npz", x=x, y=y)
    return d


def _analyze(world, target: str, weights: str = "vit.pth"):
    return advisor.analyze(str(world / f"{target}.npz"), VIT, weights=str(world / weights), image_size=SIZE,
                           sample=24, check="off")


def _mean_shift(profile) -> float:
    return float(np.mean([b.shift for b in profile.blocks]))


# ------------------------------------------------------------------ the interface
def test_every_measure_declares_itself():
    assert set(MEASURES) == {"bn_stats", "reference", "none"}
    for name, cls in MEASURES.items():
        assert issubclass(cls, ShiftMeasure) and cls.name == name
        assert cls.label and cls.needs and cls.caption
        # a measure that gives values names the Thresholds field its summary is compared with
        if cls.threshold is not None:
            assert cls.threshold in Thresholds.__dataclass_fields__
    assert NoShift.threshold is None
    with pytest.raises(TypeError):
        ShiftMeasure()  # abstract


def test_choice_bn_network_without_reference(tmp_path):
    bb = create_backbone("timm:mobilenetv2_050", "random", image_size=SIZE)
    m = choose_shift(bb, SIZE, reference_root=tmp_path)
    assert isinstance(m, BNStatsShift) and m.reason is None


# ------------------------------------------------------------------ BatchNorm numbers unchanged
def test_bn_profile_bit_identical_to_the_recorded_one(monkeypatch):
    """The CNN path's Profile (recorded before the change, tests/engine/reference_before*.json: one per CPU
    kind, see tests/engine/test_engine_reference.py) is unchanged, every float by its bits; the new record
    says which measure produced the shift and the network family."""
    from advisor.serialize import to_dict

    import torch
    from threadpoolctl import threadpool_limits

    from tests.engine.test_engine_reference import REFERENCES, _close_mismatches

    from advisor.models import engine, registry

    monkeypatch.setattr(registry, "CHANNELS_LAST", False)  # the recording's memory order (tests/engine)
    monkeypatch.setattr(engine, "FOLD_BN", False)  # and BatchNorm unfolded, as recorded
    profiles = [json.loads(r.read_text())["profile"] for r in REFERENCES]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as recorded: one torch thread and one BLAS thread (LogME's last bits follow them)
    try:
        with threadpool_limits(limits=1):
            a = advisor.analyze("digits:20", "mobilenet_v2", sample=100, image_size=32, seed=0, check="off")
    finally:
        torch.set_num_threads(threads)
    now = to_dict(a.profile)
    now.pop("timings")
    recorded = profiles[0]
    if not any({k: now[k] for k in r} == r for r in profiles):  # bit for bit on a recorded CPU kind
        own = ROOT / "tests" / "engine" / f"reference_before-{torch.backends.cpu.get_cpu_capability()}.json"
        assert not own.is_file(), "differs from the reference recorded on this CPU kind"
        assert not _close_mismatches(recorded, json.loads(json.dumps(now)))  # elsewhere: to float32 error
    # fields added since the reference was recorded (task_transfer: empty for one task)
    assert set(now) - set(recorded) == {"shift_measure", "family", "task_transfer"} and now["family"] == "cnn"
    assert now["shift_measure"] == {"measure": "bn_stats", "reason": None, "source": None}
    assert any(b.shift is not None for b in a.profile.blocks)


# ------------------------------------------------------------------ reference moments on a ViT
def test_vit_without_reference_shows_dash_with_reason(world, tmp_path, monkeypatch):
    from rich.console import Console

    from advisor.report.tables import blocks_table
    from advisor.report.terminal import rich_table

    monkeypatch.setenv("ADVISOR_REFERENCE_DIR", str(tmp_path / "none-here"))
    a = _analyze(world, "same")
    info = a.profile.shift_measure
    assert info.measure == "none" and "no BatchNorm" in info.reason and "no reference moments" in info.reason
    assert all(b.shift is None for b in a.profile.blocks)
    console = Console(width=400)
    with console.capture() as cap:
        console.print(rich_table(blocks_table(a.profile)))
    text = " ".join(cap.get().split())  # the caption wraps at the table's width
    assert "shift: - (no BatchNorm layers with running statistics and no reference moments" in text
    assert text.count("│ - │") == len(a.profile.blocks)  # the shift column: '-' in every row
    # the rules say the shift is absent and let the transferability curves decide
    ev = [e for e in a.advice.evidence if e.name == "shift from the source"]
    assert len(ev) == 1 and ev[0].value is None and "absent" in ev[0].threshold
    assert any("No shift from the source is measured" in n for n in a.advice.notes)


def test_reference_moments_separate_a_shifted_target(world, tmp_path, monkeypatch):
    monkeypatch.setenv("ADVISOR_REFERENCE_DIR", str(tmp_path))
    r = reference(str(world / "source.npz"), VIT, weights=str(world / "vit.pth"), image_size=SIZE, sample=40)
    assert Path(r.path) == reference_path(r.digest, SIZE, tmp_path) and r.n_images == 40
    same, shifted = _analyze(world, "same"), _analyze(world, "shifted")
    for a in (same, shifted):
        assert a.profile.shift_measure.measure == "reference"
        assert "40 images" in a.profile.shift_measure.source
        assert all(b.shift is not None and b.shift >= 0 for b in a.profile.blocks)
        assert measure_of(a.profile).label == "ref. shift"
    # an input-level shift moves every block's moments more than a fresh sample of the source domain does
    assert _mean_shift(shifted.profile) > 3 * _mean_shift(same.profile)
    assert shifted.profile.blocks[0].shift > same.profile.blocks[0].shift
    # the rules read the reference measure's own threshold: none is calibrated (benchmarks/shift_auc.py), so
    # the value is evidence only; with a threshold it decides
    assert DEFAULT_THRESHOLDS.reference_shift_different is None
    ev = [e for e in shifted.advice.evidence if e.name.startswith("ref. shift") and not e.name.endswith("peak block")]
    assert len(ev) == 1 and ev[0].verdict.startswith("informative only")
    # summarised by the first block (the measure's declaration, benchmarks/shift_auc.py), not the mean
    assert ev[0].name == "ref. shift, first block (sym. KL, nats)"
    assert ev[0].value == round(shifted.profile.blocks[0].shift, 4) != round(_mean_shift(shifted.profile), 4)
    strict = advise(same.profile, Thresholds(reference_shift_different=1e-9))
    assert [e.verdict for e in strict.evidence if e.name.startswith("ref. shift") and "peak" not in e.name] == ["different"]
    lax = advise(shifted.profile, Thresholds(reference_shift_different=1e9))
    assert [e.verdict for e in lax.evidence if e.name.startswith("ref. shift") and "peak" not in e.name] == ["similar"]

    # keyed by the weights' digest: other weights (another file) get no reference
    other = create_backbone(VIT, str(world / "vit-other.pth"), image_size=SIZE)
    assert weights_digest(other) != r.digest
    assert load_reference(other, SIZE, tmp_path) is None
    assert isinstance(choose_shift(other, SIZE, reference_root=tmp_path), NoShift)
    # ... and neither does another input size of the same weights
    mine = create_backbone(VIT, str(world / "vit.pth"), image_size=SIZE)
    assert load_reference(mine, 48, tmp_path) is None
    assert isinstance(choose_shift(mine, SIZE, reference_root=tmp_path), ReferenceShift)


def test_block_outputs_read_through_the_layout():
    """Token moments are over the patch tokens, channels last in the tensor: a known tensor gives known moments."""
    from advisor.measure._block_moments import BlockMoments
    from advisor.models import Layout

    x = torch.zeros(2, 5, 3)  # 2 images, 1 class token + 4 patch tokens, 3 channels
    x[:, 0] = 100.0  # the class token is left out
    x[:, 1:, 1] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    x[:, 1:, 2] = 7.0
    bm = BlockMoments(Layout("nlc", "token", 1), 1, every=1, min_images=1)
    bm.update(0, x)
    (mean, var), = bm.result()
    np.testing.assert_array_equal(mean, [0.0, 2.5, 7.0])
    np.testing.assert_array_equal(var, [0.0, 1.25, 0.0])
    nhwc = BlockMoments(Layout("nhwc", "avg", 0), 1, every=1, min_images=1)
    nhwc.update(0, x[:, 1:].reshape(2, 2, 2, 3))
    np.testing.assert_array_equal(nhwc.result()[0][0], [0.0, 2.5, 7.0])


# ------------------------------------------------------------------ stored files: refused in one line
def test_store_refuses_wrong_shape_and_pickle_in_python(world, tmp_path):
    bb = create_backbone(VIT, str(world / "vit.pth"), image_size=SIZE)
    moments = [(np.zeros(c), np.ones(c)) for c in bb.block_channels]
    path = save_reference(bb, SIZE, moments, dataset="x", n_images=1, root=tmp_path)
    assert [m.tolist() for m in load_reference(bb, SIZE, tmp_path).means] == [m.tolist() for m, _ in moments]
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["var_3"] = np.ones(7)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(AdvisorError, match="shape"):
        load_reference(bb, SIZE, tmp_path)
    arrays["var_3"] = -np.ones(bb.block_channels[3])
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(AdvisorError, match="negative"):
        load_reference(bb, SIZE, tmp_path)


class _Payload:
    """Unpickling this writes a marker file: proof that a reference file is never unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "ran"))


def test_cli_reference_then_analyze_and_bad_files(world, tmp_path):
    ref = tmp_path / "ref"
    env = advisor_env({"ADVISOR_REFERENCE_DIR": str(ref)})
    weights = ["--model", VIT, "--weights", world / "vit.pth", "--image-size", SIZE]
    out = assert_ok(run_advisor(["reference", world / "source.npz", *weights, "--sample", 40], env=env))
    assert "wrote reference moments of 40 images" in out.stdout
    files = list(ref.glob("*.npz"))
    assert len(files) == 1 and not list(ref.glob(".*tmp*"))
    analyze = ["analyze", world / "shifted.npz", *weights, "--sample", 24, "--check", "off", "--quiet"]
    out = assert_ok(run_advisor([*analyze, "--json", tmp_path / "a.json"], env=env))
    assert "ref. shift" in out.stdout
    assert json.loads((tmp_path / "a.json").read_text())["profile"]["shift_measure"]["measure"] == "reference"

    # a pickle where the reference file should be: refused in one line, never unpickled
    marker = tmp_path / "unpickled"
    files[0].write_bytes(pickle.dumps(_Payload(str(marker))))
    before = snapshot(ref)
    line = assert_refused(run_advisor(analyze, env=env), "reference moments file", "advisor reference")
    assert "not an NPZ" in line and not marker.exists()
    assert_unchanged(before, ref)

    # moments of the wrong shape (another network's channels): refused in one line
    bb = create_backbone(VIT, str(world / "vit.pth"), image_size=SIZE)
    save_reference(bb, SIZE, [(np.zeros(c + 1), np.ones(c + 1)) for c in bb.block_channels], dataset="x",
                   n_images=1, root=ref)
    assert_refused(run_advisor(analyze, env=env), "shape", "delete it")

    # an unwritable reference folder: one line, nothing left behind
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = run_advisor(["reference", world / "source.npz", *weights, "--sample", 40],
                      env=advisor_env({"ADVISOR_REFERENCE_DIR": str(blocker / "sub")}))
    assert_refused(out, "cannot write reference moments", "ADVISOR_REFERENCE_DIR")
    assert blocker.read_text() == "x"


def test_shift_summaries():
    from advisor.measure.shift import SUMMARIES, summarise

    vals = [None, 3.0, 1.0, 8.0]
    assert summarise(vals, "first") == 3.0  # the first block that has a value
    assert summarise(vals, "mean") == 4.0 and summarise(vals, "median") == 3.0
    assert summarise([None, None], "first") is None
    with pytest.raises(ValueError, match="unknown shift summary"):
        summarise(vals, "max")
    assert set(SUMMARIES) == {"mean", "median", "first"}
    # each measure's declared summary is one the rules know; BatchNorm's is the rules' calibrated shift_stat
    assert ReferenceShift.summary == "first" and BNStatsShift.summary is None and NoShift.summary is None


def test_reference_uses_every_image_of_its_sample(world, tmp_path, monkeypatch):
    """``advisor reference`` takes every image of its sample, not analyze's first quarter of each batch: a sample
    stored class by class would otherwise leave whole classes out of a batch's quarter."""
    from advisor.measure._block_moments import BlockMoments

    monkeypatch.setenv("ADVISOR_REFERENCE_DIR", str(tmp_path))
    seen = []
    update = BlockMoments.update

    def spy(self, i, x):
        if i == 0:
            seen.append((x.shape[0], self.every))
        return update(self, i, x)

    monkeypatch.setattr(BlockMoments, "update", spy)
    r = reference(str(world / "source.npz"), VIT, weights=str(world / "vit.pth"), image_size=SIZE, sample=40,
                  batch_size=16)
    assert sum(n for n, _ in seen) == 40 and {e for _, e in seen} == {1}
    ref = load_reference(create_backbone(VIT, str(world / "vit.pth"), image_size=SIZE), SIZE, tmp_path)
    assert ref is not None and Path(r.path).is_file()
