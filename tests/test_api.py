"""The Python API on real images the tests write, with real pretrained weights."""

import csv

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

import advisor
from advisor.advise import Advice
from advisor.measure.profile import Profile


@pytest.fixture(scope="module")
def digits_csv(tmp_path_factory):
    """300 real digit images as PNGs with three label columns: digit, parity (every 5th missing), big."""
    root = tmp_path_factory.mktemp("digits_csv")
    d = load_digits()
    rows = []
    for i in range(300):
        img = (d.images[i] * 255 / 16).astype(np.uint8)
        name = f"img/{i}.png"
        (root / "img").mkdir(exist_ok=True)
        Image.fromarray(img).resize((32, 32)).save(root / name)
        y = int(d.target[i])
        rows.append({"path": name, "digit": y, "parity": "" if i % 5 == 0 else ("even" if y % 2 == 0 else "odd"),
                     "big": "yes" if y >= 5 else "no"})
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "digit", "parity", "big"])
        w.writeheader()
        w.writerows(rows)
    return root / "labels.csv"


def test_api_returns_dataclasses_and_never_prints(digits_csv, capsys, tmp_path):
    res = advisor.analyze(str(digits_csv), "mobilenet_v2", sample=150, image_size=32, device="cpu",
                          label_columns=["digit", "parity"])
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert isinstance(res.profile, Profile) and isinstance(res.advice, Advice)
    sizes = {t.task: t for t in res.profile.size.tasks}
    # label counts are the training split's (180 of the 300 items), missing labels included
    assert res.profile.size.split["train"] == 180 and res.profile.size.n_samples == 300
    assert sizes["parity"].n_missing + sizes["parity"].n_labelled == 180
    assert sizes["digit"].n_labelled == 180 and 0 < sizes["parity"].n_missing < 60
    assert sizes["digit"].n_classes == 10 and sizes["parity"].n_classes == 2
    # per-task transferability is measured at every block
    assert all(set(b.knn_accuracy) == {"digit", "parity"} for b in res.profile.blocks)
    # two final tasks: multi-task is decided on its conditions, and its evidence is shown either way
    names = [e.name for e in res.advice.evidence]
    assert any("task balance" in n for n in names) and any("shared features" in n for n in names)
    # parity is a function of the digit: a digit probe carries it, a parity probe carries little of the digit
    tr = {(x.source, x.target): x for x in res.profile.task_transfer}
    assert set(tr) == {("digit", "parity"), ("parity", "digit")}
    assert tr["digit", "parity"].transfer > tr["parity", "digit"].transfer
    assert tr["digit", "parity"].block == res.profile.blocks[-1].name
    assert 100 <= tr["digit", "parity"].n < 150 and tr["parity", "digit"].n == 150  # parity: every 5th missing
    res.save(tmp_path / "a.json")
    assert advisor.api.Analysis.load(tmp_path / "a.json").profile.task_transfer == res.profile.task_transfer


def test_intermediate_labels_lead_to_pipeline_advice(digits_csv):
    res = advisor.analyze(str(digits_csv), "mobilenet_v2", sample=150, image_size=32, device="cpu",
                          label_columns=["digit", "big"], intermediate="digit")
    assert res.profile.intermediate == "digit" and res.profile.primary_task == "big"
    assert res.advice.strategy == "pipeline_vs_end_to_end"
    assert res.advice.params["intermediate"] == "digit" and res.advice.params["final"] == "big"


def test_source_data_gives_frechet_and_domain_accuracy(tmp_path):
    # a "source" sample of natural photo crops (scikit-learn's bundled photos) against the digits
    from sklearn.datasets import load_sample_images

    src = tmp_path / "src"
    for k, photo in enumerate(load_sample_images().images):
        for j in range(30):
            y, x = (j * 37) % (photo.shape[0] - 64), (j * 53) % (photo.shape[1] - 64)
            (src / f"photo{k}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(photo[y:y + 64, x:x + 64]).save(src / f"photo{k}" / f"{j}.png")
    res = advisor.analyze("digits", "mobilenet_v2", sample=60, image_size=32, device="cpu", source_data=str(src))
    blocks = res.profile.blocks
    assert all(b.frechet is not None and b.frechet > 0 for b in blocks)
    # digits vs photos are easy to tell apart at every depth
    assert np.mean([b.domain_accuracy for b in blocks]) > 0.9
    # the proxy A-distance is 2 (1 - 2 err) of the same domain classifier, err = 1 - accuracy, floored at 0
    assert all(b.proxy_a_distance == pytest.approx(max(0.0, 2 * (1 - 2 * (1 - b.domain_accuracy)))) for b in blocks)


def test_analyze_context_equals_analyze_and_leaves_the_backbone_untouched(digits_csv):
    """The search's analyze on its already-loaded context measures exactly what analyze measures."""
    import torch

    from advisor.api import analyze_context
    from advisor.context import make_context

    ctx = make_context(str(digits_csv), "mobilenet_v2", image_size=32, device="cpu", seed=3, cache_dir=False,
                       label_columns=["digit"])
    before = {k: v.clone() for k, v in ctx.backbone.state_dict().items()}
    via_ctx = analyze_context(ctx, str(digits_csv), "mobilenet_v2", sample=120)
    direct = advisor.analyze(str(digits_csv), "mobilenet_v2", sample=120, image_size=32, device="cpu", seed=3,
                             label_columns=["digit"])
    assert via_ctx.advice.strategy == direct.advice.strategy and via_ctx.advice.params == direct.advice.params
    assert via_ctx.profile.fingerprint == direct.profile.fingerprint
    assert via_ctx.profile.sample_size == direct.profile.sample_size == 120
    for a, b in zip(via_ctx.profile.blocks, direct.profile.blocks):
        assert a.knn_accuracy == pytest.approx(b.knn_accuracy) and a.shift == pytest.approx(b.shift, rel=1e-4, abs=1e-6)
    after = ctx.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats included
    # the loading the context did counts in the profile's timings, as a direct analyze's loading does
    t = via_ctx.profile.timings
    assert t["data"] == pytest.approx(ctx.timings["data"], abs=1e-3) and t["model"] > 0
    assert t["model"] == pytest.approx(ctx.timings["model"], abs=1e-3)
    assert t["total"] >= t["data"] + t["model"] + t["pass"]


def test_measured_check_trains_on_train_and_scores_on_validation_only(digits_csv, monkeypatch):
    """18 training images per class: the measured check decides, every run it makes sees no test item,
    and its advice is the best validation run; with check="off" the rules alone decide."""
    import advisor.train as train_mod
    from advisor.advise.check import candidates

    seen = []
    real = train_mod.run_strategy

    def spy(ctx, strategy, params=None, callback=None):  # the real trainer, watched
        seen.append((strategy, len(ctx.split.test), len(ctx.split.val)))
        return real(ctx, strategy, params, callback)

    monkeypatch.setattr(train_mod, "run_strategy", spy)
    res = advisor.analyze(str(digits_csv), "mobilenet_v2", sample=120, image_size=32, device="cpu",
                          label_columns=["digit"])
    chk = res.advice.check
    assert chk is not None and res.profile.size.task("digit").median_per_class == 18
    n_blocks = len(res.profile.blocks)
    assert [r.strategy for r in chk.runs] == [s for s, _ in candidates(n_blocks, 180, "cnn", res.profile)]
    assert chk.n_val == res.profile.size.split["val"] > 0
    assert seen and all(n_test == 0 and n_val == chk.n_val for _, n_test, n_val in seen)
    win = max(chk.runs, key=lambda r: r.val_accuracy)
    assert res.advice.strategy == win.strategy
    assert any(e.name.startswith("measured:") for e in res.advice.evidence)
    assert "check" in res.profile.timings

    seen.clear()
    off = advisor.analyze(str(digits_csv), "mobilenet_v2", sample=120, image_size=32, device="cpu",
                          label_columns=["digit"], check="off")
    assert off.advice.check is None and not seen


def test_bad_check_mode_is_one_clear_error(digits_csv):
    from advisor.errors import AdvisorError

    with pytest.raises(AdvisorError, match="bad check mode 'maybe'"):
        advisor.analyze(str(digits_csv), "mobilenet_v2", image_size=32, check="maybe")
