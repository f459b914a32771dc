"""lora and auto_rgn (issue 21, part 2) on digits with small random-weight networks at 32 px: timm:mobilenetv2_050
(6 blocks) and a ViT (timm:vit_tiny_patch16_224). What trains, the merge, the 5% budget, one-line refusals before
the data loads, Auto-RGN's per-tensor rates on a tiny model, save / predict / export parity, a search each."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tests.train.test_train_finetune import one_line_error
from tests.train.test_train_new_strategies import (CNN, FAST, SIZE, VIT, _block_states, _context, _full_count, _same,
                                                  predicts_and_exports_like_itself)

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def cnn():
    return _context(CNN)


@pytest.fixture(scope="module")
def vit():
    return _context(VIT)


def _adapter_count(targets, rank: int) -> int:
    """LoRA's parameters by hand: ``rank * (in + out)`` per Linear, ``rank * (in * kh * kw + out)`` per Conv2d."""
    total = 0
    for t in targets:
        m = t.module
        if isinstance(m, nn.Linear):
            total += rank * (m.in_features + m.out_features)
        else:
            total += rank * (m.in_channels * m.kernel_size[0] * m.kernel_size[1] + m.out_channels)
    return total


# ----------------------------------------------------------------------------- lora: what trains
@pytest.mark.parametrize("which", ["cnn", "vit"])
def test_lora_trains_only_the_adapters_and_the_head_then_merges_them(which, request):
    from advisor.train import run_strategy
    from advisor.train._lora import default_targets

    ctx = request.getfixturevalue(which)
    names = list(ctx.backbone.block_names)
    targets = default_targets(ctx.backbone)
    target_weights = {f"blocks.{t.block}.{t.path}.weight" for t in targets}
    before = {f"blocks.{i}.{k}": v.detach().clone() for i, b in enumerate(ctx.backbone.blocks)
              for k, v in b.state_dict().items()}
    r = run_strategy(ctx, "lora", {**FAST, "head_lr": 0.05, "lr_ratio": 1.0})
    assert r.params["rank"] == 4 and r.params["alpha"] == 4.0 and r.params["target"] is None
    after = {k: v for k, v in r.model.state_dict().items() if k.startswith("blocks.")}
    # merged: the saved model is the backbone's own architecture, no adapter left in it
    assert after.keys() == before.keys()
    assert not any("lora" in type(m).__module__ for m in r.model.modules())
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    moved_params = {k for k in moved if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    assert moved_params and moved_params <= target_weights, sorted(moved_params - target_weights)[:5]
    assert len(moved_params) == len(target_weights)  # every adapter moved its layer
    # the blocks below the lowest adapted one are frozen, their BatchNorm statistics too
    assert r.extra["frozen_blocks"] == names[:min(t.block for t in targets)] == ["stem"]
    assert not any(k.startswith("blocks.0.") for k in moved)
    if which == "cnn":  # BatchNorm statistics follow the target in the adapted blocks and travel with the model
        assert any(k.endswith("running_mean") for k in moved)
    head = sum(p.numel() for p in r.model.heads.parameters())
    assert r.trainable_params == _adapter_count(targets, 4) + head
    assert r.extra["adapted_layers"] == len(targets)
    # the context's backbone is untouched: the run injected its adapters into its own copy
    from advisor.train._lora import Adapted

    assert not Adapted.adapter_params(ctx.backbone.blocks)
    assert all(torch.equal(v, before[f"blocks.{i}.{k}"]) for i, b in enumerate(ctx.backbone.blocks)
               for k, v in b.state_dict().items())
    assert r.extra["merge_max_abs_diff"] <= 1e-5 * r.extra["merge_logit_scale"], r.extra  # float rounding
    if which == "vit":  # attention qkv and proj, MLP fc1 and fc2 of every block; the patch embedding is left out
        assert {".".join(t.path.split(".")[-2:]) for t in targets} == {"attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"}
        assert len(targets) == 4 * (len(names) - 1)
        assert r.trainable_params <= 0.05 * _full_count(ctx)
    else:  # pointwise convs only: never a depthwise or the stem's 3x3
        assert all(t.module.kernel_size == (1, 1) and t.module.groups == 1 for t in targets)


def test_merged_weights_give_the_adapted_networks_outputs(cnn, vit):
    """With non-zero adapters (B random, not the zero it starts at), the merged blocks compute what the adapted
    ones did, to float rounding; the merge also puts the plain layer types back."""
    from advisor.models import engine
    from advisor.train._lora import Adapted, default_targets, select_targets

    g = torch.Generator().manual_seed(0)
    for ctx, target in ((cnn, None), (vit, r"attn\.qkv|mlp\.fc2"), (cnn, r"stem\.conv_stem|conv_pwl")):
        bb = copy.deepcopy(ctx.backbone).eval()
        targets = select_targets(bb, target, 4) if target else default_targets(bb)
        adapted = Adapted(bb, targets, rank=4, alpha=8.0)
        with torch.no_grad():
            for p in Adapted.adapter_params(bb.blocks):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
            x = torch.randn(4, 3, SIZE, SIZE, generator=g)
            want = engine.pooled(list(bb.blocks), x, bb.layout)
            adapted.merge()
            got = engine.pooled(list(bb.blocks), x, bb.layout)
        assert not Adapted.adapter_params(bb.blocks)
        assert {type(t.module) for t in targets} <= {type(m) for m in bb.modules()}
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        baseline = engine.pooled(list(ctx.backbone.blocks), x, bb.layout)
        assert not torch.allclose(baseline, got, atol=1e-4)  # the adapters did change the network


@pytest.mark.parametrize("model", ["mobilenet_v2", VIT])
def test_lora_and_norm_tune_train_at_most_five_percent_of_full_fine_tuning(model):
    """On mobilenet_v2's structure (torchvision, 19 blocks) and the ViT, with a 10-class head, counted on the
    injected adapters (lora, default rank) and on the norm layers and biases (norm_tune)."""
    from advisor.models import create_backbone
    from advisor.train._lora import Adapted, default_targets
    from advisor.train._model import norm_and_bias_params

    bb = create_backbone(model, "random", device="cpu", image_size=SIZE)
    head = bb.feature_dim * 10 + 10
    full = sum(p.numel() for p in bb.blocks.parameters()) + head
    norm = sum(p.numel() for p in norm_and_bias_params(list(bb.blocks))) + head
    targets = default_targets(bb)
    Adapted(bb, targets, rank=4, alpha=4.0)
    lora = sum(p.numel() for p in Adapted.adapter_params(bb.blocks)) + head
    assert lora == _adapter_count(targets, 4) + head
    assert lora <= 0.05 * full, (lora, full)
    assert norm <= 0.05 * full, (norm, full)


# ----------------------------------------------------------------------------- lora: bad input
def test_lora_refuses_bad_input_in_one_line(cnn, vit, monkeypatch):
    from advisor import strategies
    from advisor.train import run_strategy
    from advisor.train._lora import check_lora

    lora = strategies.get("lora")
    one_line_error(lambda: lora.validate({"rank": 0}), "bad rank=0", ">= 1")
    one_line_error(lambda: lora.validate({"rank": -2}), "bad rank=-2")
    one_line_error(lambda: lora.validate({"target": "conv_(pw"}), "not a regular expression")
    one_line_error(lambda: check_lora(cnn.backbone, {"target": "nothing_here"}), "'nothing_here' matches no Conv2d",
                   "blocks.")
    one_line_error(lambda: check_lora(vit.backbone, {"target": r"norm1$"}), "matches only blocks.0.norm1",
                   "not a Conv2d or Linear")
    # depthwise convs: a rank their groups do not divide, and one they do (peft cannot merge either)
    one_line_error(lambda: check_lora(cnn.backbone, {"target": "conv_dw", "rank": 4}),
                   "rank 4 is not divisible by the groups (16) of targeted conv blocks.0.0.conv_dw")
    one_line_error(lambda: check_lora(cnn.backbone, {"target": r"blocks\.0\.0\.conv_dw", "rank": 16}),
                   "grouped conv blocks.0.0.conv_dw", "cannot merge")
    check_lora(cnn.backbone, {"target": "conv_pwl", "rank": 3})  # fine
    # the trainer checks too (a search's trials), before any image is read
    one_line_error(lambda: run_strategy(cnn, "lora", {"target": "nothing_here"}), "matches no Conv2d")
    # peft missing: the extra that installs it
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    one_line_error(lambda: check_lora(cnn.backbone, {}), "lora needs the peft package",
                   "pip install 'advisor[lora]'")


def test_lora_bad_input_is_refused_before_the_data_loads_by_the_cli_and_the_api(monkeypatch, capsys):
    import advisor.data
    from advisor.train import train
    from tests.test_cli import run_cli

    def no_data(*a, **k):
        raise AssertionError("the data must not load")

    monkeypatch.setattr(advisor.data, "load_dataset", no_data)
    one_line_error(lambda: train("digits:20", CNN, "lora", params={"target": "conv_dw"}, weights="random",
                                 image_size=SIZE, device="cpu", cache_dir=False), "not divisible by the groups")
    base = ["train", "digits:20", "--model", CNN, "--weights", "random", "--image-size", str(SIZE), "--strategy",
            "lora", "--no-cache", "--quiet"]
    for extra, needle in ((["--target", "nope"], "'nope' matches no Conv2d"), (["--rank", "0"], "bad rank=0"),
                          (["--target", "conv_dw", "--rank", "8"], "not divisible by the groups (16)")):
        code, _, err = run_cli([*base, *extra], capsys)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


# ----------------------------------------------------------------------------- auto_rgn
def test_auto_rgn_scales_each_tensors_rate_by_its_relative_gradient_norm_over_the_largest():
    """One step on a tiny model: every tensor's rate is its group's times (|g|/|w|) / max over tensors, the step
    AdamW takes follows that rate, and a tensor of norm 0 keeps its group's full rate."""
    from advisor.train._loop import Stepper

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    with torch.no_grad():
        model[2].bias.zero_()  # no relative gradient: full rate, outside the maximum
    groups = [{"params": [p], "lr": lr, "weight_decay": 0.0, "name": name}
              for (name, lr), p in zip([("block:a", 0.01), ("block:a", 0.01), ("head:y", 0.1), ("head:y", 0.1)],
                                       model.parameters())]
    stepper = Stepper(groups, head_lr=0.1, weight_decay=0.0, dev=torch.device("cpu"), rgn=True)
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    w0 = [p.detach().clone() for p in model.parameters()]
    stepper.step(nn.functional.cross_entropy(model(x), y))
    ratios = [float(p.grad.norm() / w.norm()) if w.norm() > 0 else None for p, w in zip(model.parameters(), w0)]
    top = max(r for r in ratios if r is not None)
    base = [0.01, 0.01, 0.1, 0.1]
    for g, r, b, p, w in zip(stepper.opt.param_groups, ratios, base, model.parameters(), w0):
        want = b * (r / top if r is not None else 1.0)
        assert g["lr"] == pytest.approx(want, rel=1e-6)
        # AdamW's first step moves each coordinate with a gradient by (about) its rate
        moved = (p.detach() - w).abs()[p.grad.abs() > 1e-6]
        assert torch.allclose(moved, torch.full_like(moved, want), rtol=1e-3), (moved.max(), want)
    assert sum(r == top for r in ratios if r is not None) == 1 and min(g["lr"] for g in stepper.opt.param_groups) < 0.01
    with pytest.raises(ValueError, match="its own parameter group"):
        Stepper([{"params": list(model.parameters()), "lr": 0.1, "name": "head:y"}], head_lr=0.1, weight_decay=0.0,
                dev=torch.device("cpu"), rgn=True)


@pytest.mark.parametrize("which", ["cnn", "vit"])
def test_auto_rgn_trains_every_block_with_its_scales_recorded(which, request):
    from advisor.train import run_strategy

    ctx = request.getfixturevalue(which)
    before = _block_states(ctx.backbone.blocks)
    r = run_strategy(ctx, "auto_rgn", FAST)
    assert "layer_decay" not in r.params and r.extra["frozen_blocks"] == []
    assert r.params["lr_ratio"] == (0.1 if which == "cnn" else 0.01)  # the family's recipe
    after = _block_states(r.model.blocks)
    assert all(not _same(a, b) for a, b in zip(before, after))
    scales = r.extra["rgn_mean_scale"]
    assert set(scales) == {"head:label", *(f"block:{n}" for n in ctx.backbone.block_names)}
    assert all(0.0 < v <= 1.0 for v in scales.values())
    assert min(scales.values()) < 1.0  # rates were scaled down, not left as they were
    assert r.trainable_params == _full_count(ctx)


# ----------------------------------------------------------------------------- save, predict, export, search
@pytest.mark.parametrize("extra", [["--strategy", "lora", "--epochs", "1", "--rank", "2", "--alpha", "4"],
                                   ["--strategy", "auto_rgn", "--epochs", "1"]], ids=lambda e: e[1])
def test_a_saved_model_predicts_and_exports_like_itself(extra, cnn, tmp_path, capsys):
    """``advisor train --save`` (lora: merged), then ``advisor predict`` and a TorchScript ``advisor export``: the
    same predictions as the reloaded module, whose test accuracy is the run's."""
    import json

    from advisor.train import evaluate_model, load_model
    from tests.test_cli import run_cli

    save = tmp_path / "m.pt"
    code, out, err = run_cli(["train", "digits:20", "--model", CNN, "--weights", "random", "--image-size", str(SIZE),
                              "--no-cache", "--quiet", "--save", str(save), "--json", str(tmp_path / "r.json"),
                              *extra], capsys)
    assert code == 0, err
    # its own table: where the adapters went and the merge's rounding; Auto-RGN's scale per block
    assert ("lora adapters (merged into the weights)" in out) if extra[1] == "lora" \
        else ("Auto-RGN: mean rate scale" in out and "block:stem" in out), out
    run = json.loads((tmp_path / "r.json").read_text())
    model, meta = load_model(save)
    assert meta["strategy"] == extra[1]
    assert evaluate_model(model, cnn, cnn.split.test)["accuracy"] == pytest.approx(run["test_accuracy"], abs=1e-12)
    predicts_and_exports_like_itself(save, model, meta, cnn, tmp_path, capsys)


def test_lora_on_a_vit_saves_and_reloads_to_the_same_accuracy(vit, tmp_path):
    from advisor.train import evaluate_model, load_model, run_strategy, save_model

    r = run_strategy(vit, "lora", {**FAST, "epochs": 1, "target": r"attn\.qkv"})
    assert r.extra["adapted_layers"] == len(vit.backbone.block_names) - 1
    model, _ = load_model(save_model(r, tmp_path / "v.pt", model_name=VIT, weights="random",
                                     preprocess=vit.preprocess))
    assert evaluate_model(model, vit, vit.split.test)["accuracy"] == pytest.approx(r.test_accuracy, abs=1e-12)


def test_each_is_searchable_and_a_space_may_name_the_target(tmp_path):
    from advisor.errors import AdvisorError
    from advisor.search import SearchConfig, load_space, run_search

    for strategy in ("lora", "auto_rgn"):
        cfg = SearchConfig(dataset="digits:20", model=CNN, weights="random", strategy=strategy, trials=1,
                           image_size=SIZE, device="cpu", workspace=str(tmp_path / f"ws-{strategy}"),
                           cache_dir=str(tmp_path / "cache"), study_name=strategy, pruner="none")
        result = run_search(cfg)
        assert result.n_complete == 1 and result.best_strategy == strategy, strategy
        if strategy == "lora":
            assert result.best_params["rank"] in (2, 4, 8)
    good = tmp_path / "t.yaml"
    good.write_text("strategy: lora\nparams:\n  target: {type: categorical, choices: ['conv_pw$', 'conv_pwl']}\n"
                    "  rank: 2\n")
    assert load_space(good).strategies["lora"].params["target"].choices == ["conv_pw$", "conv_pwl"]
    bad = tmp_path / "b.yaml"
    bad.write_text("strategy: lora\nparams:\n  target: 'conv_(pw'\n")
    with pytest.raises(AdvisorError, match="not a regular expression"):
        load_space(bad)
    bad.write_text("strategy: lora\nparams:\n  target: {type: int, low: 1, high: 2}\n")
    with pytest.raises(AdvisorError, match="search it with"):
        load_space(bad)


def test_a_lora_run_calls_nobody(tmp_path):
    """peft and transformers are imported (lazily, by the lora trainer) under advisor's switches: no connection
    and no name lookup (the audit hook of tests/hostile)."""
    from tests.hostile._harness import assert_ok, run_advisor
    from tests.hostile.test_hostile_network import _events, _user_env

    env, log = _user_env(tmp_path)
    out = run_advisor(["train", "digits:10", "--model", CNN, "--weights", "random", "--image-size", str(SIZE),
                       "--strategy", "lora", "--epochs", "1", "--no-cache", "--quiet"], cwd=tmp_path, env=env)
    assert_ok(out)
    assert _events(log) == []


def test_help_does_not_import_peft():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from advisor.cli import main\ntry:\n    main(['train', '--help'])\n"
            "except SystemExit:\n    pass\nprint('peft' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    assert "--rank" in out and "--target" in out
    assert out.strip().splitlines()[-1] == "False False"


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_saved_lora_vit_predicts_and_exports_within_roundoff(fmt, tmp_path):
    """The deploy tests' ViT check (tests/deploy/test_deploy_transformer.py) on a lora ``--save`` file: predict is
    the merged network's forward pass, and ONNX / TorchScript equal PyTorch within the derived roundoff tolerance
    for any batch size."""
    from PIL import Image

    from advisor.cli import main
    from advisor.deploy.resolve import load_bundle
    from tests.deploy._helpers import digit_images, labelled_folder, predict
    from tests.deploy.test_deploy_transformer import _export_and_compare

    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    save = tmp_path / "vit_lora.pt"
    assert main(["train", "digits:20", "--model", VIT, "--weights", "random", "--image-size", str(SIZE), "--strategy",
                 "lora", "--rank", "2", "--epochs", "1", "--batch-size", "32", "--no-cache", "--save", str(save),
                 "--quiet"]) == 0
    images, labels = digit_images(12)
    folder = labelled_folder(tmp_path / "labelled", images, labels)
    rows = predict([str(save)], folder, tmp_path / "p.csv")
    bundle = load_bundle(str(save))
    assert bundle.meta["strategy"] == "lora" and bundle.meta["params"]["rank"] == 2
    x = torch.stack([bundle.preprocess(Image.open(r["item"])) for r in rows])
    with torch.no_grad():
        probs = torch.softmax(bundle.model(x), 1).numpy()
    assert [r["predicted"] for r in rows] == [bundle.classes[i] for i in probs.argmax(1)]
    _export_and_compare(save, fmt, folder, tmp_path / f"vit.{fmt}")
