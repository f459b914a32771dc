"""surgical, norm_tune and bn_adapt (issue 21, part 1) on digits with small random-weight networks at 32 px:
timm:mobilenetv2_050 (6 blocks: stem, blocks.0, blocks.1, blocks.2, blocks.4, blocks.6) and a ViT
(timm:vit_tiny_patch16_224). What trains, what stays bit-identical, one-line refusals, save and reload."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.train.test_train_finetune import one_line_error

CNN, VIT, SIZE = "timm:mobilenetv2_050", "timm:vit_tiny_patch16_224", 32
FAST = {"epochs": 2, "batch_size": 16, "patience": 5}


def _context(model: str, data: str = "digits:20", **kwargs):
    from advisor.context import make_context

    kwargs.setdefault("cache_dir", False)
    return make_context(data, model, weights="random", image_size=SIZE, seed=0, device="cpu", **kwargs)


@pytest.fixture(scope="module")
def cnn():
    return _context(CNN)


@pytest.fixture(scope="module")
def vit():
    return _context(VIT)


def _block_states(blocks) -> list[dict[str, torch.Tensor]]:
    return [{k: v.detach().clone() for k, v in b.state_dict().items()} for b in blocks]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- surgical
def test_surgical_trains_exactly_the_blocks_in_range(cnn):
    from advisor.train import run_strategy

    names = cnn.backbone.block_names
    before = _block_states(cnn.backbone.blocks)
    r = run_strategy(cnn, "surgical", {"first": 1, "last": 3, "layer_decay": 0.5, **FAST})
    assert r.params["first"] == names[1] and r.params["last"] == names[3]
    assert r.extra["trained_blocks"] == list(names[1:4]) and r.extra["above_blocks"] == list(names[4:])
    assert r.extra["frozen_blocks"] == [names[0]]
    after = _block_states(r.model.blocks)
    assert len(after) == len(names)  # the blocks above still run: the saved model holds them all
    for i in (0, 4, 5):  # below and above the range: weights and BatchNorm statistics bit-identical
        assert _same(before[i], after[i]), names[i]
    for i in (1, 2, 3):
        assert not _same(before[i], after[i]), names[i]
    # rates count from the top of the range: last at head_lr * lr_ratio, each block below halved
    lrs = r.extra["param_group_lrs"]
    assert set(lrs) == {"head:label", *(f"block:{n}" for n in names[1:4])}
    assert lrs[f"block:{names[3]}"] == pytest.approx(0.01 * 0.1)
    assert lrs[f"block:{names[1]}"] == pytest.approx(0.01 * 0.1 * 0.25)
    trainable = sum(p.numel() for b in list(cnn.backbone.blocks)[1:4] for p in b.parameters())
    assert r.trainable_params == trainable + sum(p.numel() for p in r.model.heads.parameters())


def test_surgical_on_a_vit_by_block_names_and_the_cache_below_first(tmp_path):
    from advisor.train import run_strategy

    ctx = _context(VIT, cache_dir=tmp_path / "acts")
    names = ctx.backbone.block_names
    before = _block_states(ctx.backbone.blocks)
    r = run_strategy(ctx, "surgical", {"first": names[2], "last": names[2], **FAST})
    after = _block_states(r.model.blocks)
    assert [n for n, a, b in zip(names, before, after) if not _same(a, b)] == [names[2]]
    assert r.extra["boundary_from_cache"] is True and r.extra["frozen_blocks"] == list(names[:2])


def test_surgical_refuses_a_bad_range_inone_line_error(cnn):
    from advisor import strategies
    from advisor.train import run_strategy

    n = len(cnn.backbone.block_names)
    surgical = strategies.get("surgical")
    one_line_error(lambda: surgical.validate({"first": 3, "last": 1}, n_blocks=n), "first=3 last=1", "first <= last")
    one_line_error(lambda: surgical.validate({"first": "3", "last": "1"}), "first is above last")
    one_line_error(lambda: surgical.validate({"first": 0, "last": n}, n_blocks=n), f"last={n}", f"0..{n - 1}")
    one_line_error(lambda: surgical.validate({"first": 0}), "surgical needs last")
    names = cnn.backbone.block_names
    one_line_error(lambda: run_strategy(cnn, "surgical", {"first": names[3], "last": names[1]}), "is above", names[3])
    one_line_error(lambda: run_strategy(cnn, "surgical", {"first": "nope", "last": names[1]}), "first='nope'",
              "not a block")


def test_last_k_is_surgical_over_the_top_k_blocks(cnn):
    """The generalised loop keeps last_k as it was: k = range [n-k, n-1], the same numbers."""
    from advisor.train import run_strategy

    n = len(cnn.backbone.block_names)
    a = run_strategy(cnn, "last_k", {"k": 2, **FAST})
    b = run_strategy(cnn, "surgical", {"first": n - 2, "last": n - 1, **FAST})
    assert [e.val_accuracy for e in a.history] == [e.val_accuracy for e in b.history]
    assert [e.train_loss for e in a.history] == [e.train_loss for e in b.history]
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


# ----------------------------------------------------------------------------- norm_tune
def _full_count(ctx) -> int:
    n_classes = len(ctx.dataset.classes[ctx.dataset.primary_task])
    head = ctx.backbone.feature_dim * n_classes + n_classes
    return sum(p.numel() for b in ctx.backbone.blocks for p in b.parameters()) + head


@pytest.mark.parametrize("which", ["cnn", "vit"])
def test_norm_tune_trains_only_norms_biases_and_the_head(which, request):
    from advisor.train import run_strategy
    from advisor.train._model import NORM_LAYERS

    ctx = request.getfixturevalue(which)
    pretrained = {f"blocks.{i}.{k}": v.detach().clone() for i, b in enumerate(ctx.backbone.blocks)
                  for k, v in b.named_parameters()}
    norm_names = {f"blocks.{i}.{mn}.{pn}".replace("..", ".") for i, b in enumerate(ctx.backbone.blocks)
                  for mn, m in b.named_modules() if isinstance(m, NORM_LAYERS)
                  for pn, _ in m.named_parameters(recurse=False)}
    r = run_strategy(ctx, "norm_tune", {**FAST, "head_lr": 0.05, "lr_ratio": 1.0})
    trained = dict(r.model.named_parameters())
    moved = {k for k, v in pretrained.items() if not torch.equal(v, trained[k])}
    assert moved, "nothing trained"
    assert all(k in norm_names or k.endswith("bias") for k in moved), sorted(moved - norm_names)[:5]
    assert moved & norm_names
    other_biases = {k for k in pretrained if k.endswith(".bias") and k not in norm_names}  # none in mobilenet_v2
    assert not other_biases or moved & other_biases
    assert r.trainable_params <= 0.05 * _full_count(ctx), (r.trainable_params, _full_count(ctx))


# ----------------------------------------------------------------------------- bn_adapt
def test_bn_adapt_changes_the_running_statistics_and_nothing_else(cnn, tmp_path):
    from advisor.train import evaluate_model, load_model, run_strategy, save_model

    before = _block_states(cnn.backbone.blocks)
    r = run_strategy(cnn, "bn_adapt", {"probe": "svm_early", "block": 3})
    assert r.params["probe"] == "svm_early" and r.params["C"] == 0.1 and r.extra["adapted_bn_layers"] > 0
    after = _block_states(r.model.blocks)
    assert len(after) == 4
    stats_moved = 0
    for b, a in zip(before, after):
        for k, v in a.items():
            if k.endswith(("running_mean", "running_var")):
                stats_moved += not torch.equal(v, b[k])
            elif not k.endswith("num_batches_tracked"):
                assert torch.equal(v, b[k]), k  # every weight, scale and shift as pretrained
    assert stats_moved > 0
    # the pristine backbone of the context is untouched (each run works on its own copy)
    assert all(_same(a, b) for a, b in zip(before, _block_states(cnn.backbone.blocks)))
    # the adapted statistics are saved: the reloaded model reproduces the run's test accuracy
    path = save_model(r, tmp_path / "bn.pt", model_name=CNN, weights="random", preprocess=cnn.preprocess)
    model, meta = load_model(path)
    assert meta["strategy"] == "bn_adapt"
    assert evaluate_model(model, cnn, cnn.split.test)["accuracy"] == pytest.approx(r.test_accuracy, abs=1e-12)


def test_bn_adapt_with_the_linear_probe_reads_the_last_block(cnn):
    from advisor.train import run_strategy

    r = run_strategy(cnn, "bn_adapt", {})
    assert r.params["probe"] == "linear_probe" and r.params["C"] == 1.0
    assert r.params["block"] == cnn.backbone.block_names[-1] and len(r.model.blocks) == len(cnn.backbone.blocks)
    assert 0.0 <= r.test_accuracy <= 1.0


def test_bn_adapt_runs_on_one_context_share_one_adaptation_and_match_runs_from_scratch(cnn, monkeypatch):
    """The check's three bn_adapt runs (the linear probe at two C values, the early SVM) make one statistics pass
    and one feature pass, not one of each per run (the pass keeps every adapted block's features while they are
    small, advisor.train._bn_adapt.ALL_BLOCKS_MAX_BYTES); every result, and every saved statistic, is what a
    run from scratch gives. Another split, or a block above the last adaptation's, adapts again."""
    import dataclasses

    import advisor.context.cache as cache_module
    from advisor.data.split import Split
    from advisor.train import _bn_adapt, run_strategy

    calls = {"adapt": 0, "extract": 0}
    adapt, extract = _bn_adapt.adapt_batchnorm, cache_module.extract

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(_bn_adapt, "adapt_batchnorm", counted("adapt", adapt))
    monkeypatch.setattr(cache_module, "extract", counted("extract", extract))
    runs = [{"probe": "linear_probe", "C": 0.1}, {"probe": "linear_probe", "C": 1.0},
            {"probe": "svm_early", "block": 3, "C": 1.0}]
    _bn_adapt._LAST.clear()
    shared = [run_strategy(cnn, "bn_adapt", p) for p in runs]
    # one statistics pass and one feature pass: it kept every adapted block's features, block 3's among them
    assert calls == {"adapt": 1, "extract": 1}
    assert [r.extra["adaptation_reused"] for r in shared] == [False, True, True]
    assert [r.extra["features_reused"] for r in shared] == [False, True, True]
    for p, r in zip(runs, shared):
        _bn_adapt._LAST.clear()
        alone = run_strategy(cnn, "bn_adapt", p)
        assert (alone.val_accuracy, alone.test_accuracy) == (r.val_accuracy, r.test_accuracy)
        assert all(_same(a, b) for a, b in zip(_block_states(alone.model.blocks), _block_states(r.model.blocks)))
    # the memo now holds an adaptation up to block 3: the linear probe reads block 5 and adapts again
    assert run_strategy(cnn, "bn_adapt", runs[0]).extra["adaptation_reused"] is False
    fewer = dataclasses.replace(cnn, split=Split(cnn.split.train[:-5], cnn.split.val, cnn.split.test))
    assert run_strategy(fewer, "bn_adapt", runs[1]).extra["adaptation_reused"] is False


def test_bn_adapt_keeps_only_the_block_asked_for_when_every_block_would_not_fit(cnn, monkeypatch):
    """Above ALL_BLOCKS_MAX_BYTES (a large training split) a feature pass keeps the one block asked for: the early
    SVM's later run then makes its own pass, with the same result."""
    import advisor.context.cache as cache_module
    from advisor.train import _bn_adapt, run_strategy

    runs = [{"probe": "linear_probe", "C": 0.1}, {"probe": "svm_early", "block": 3, "C": 1.0}]
    _bn_adapt._LAST.clear()
    small = [run_strategy(cnn, "bn_adapt", p) for p in runs]
    passes, extract = [], cache_module.extract
    monkeypatch.setattr(cache_module, "extract", lambda *a, **k: passes.append(k["pooled"]) or extract(*a, **k))
    monkeypatch.setattr(_bn_adapt, "ALL_BLOCKS_MAX_BYTES", 0)
    _bn_adapt._LAST.clear()
    big = [run_strategy(cnn, "bn_adapt", p) for p in runs]
    n = len(cnn.backbone.block_names)
    assert passes == [(n - 1,), (3,)]
    assert [r.extra["features_reused"] for r in big] == [False, False]
    assert [(r.val_accuracy, r.test_accuracy) for r in big] == [(r.val_accuracy, r.test_accuracy) for r in small]


def test_bn_adapt_refuses_a_vit_in_one_line_before_any_image_is_read(vit, monkeypatch):
    import advisor.data
    from advisor.train import run_strategy

    def no_images(*a, **k):
        raise AssertionError("no image may be read")

    monkeypatch.setattr(advisor.data, "TorchView", no_images)
    one_line_error(lambda: run_strategy(vit, "bn_adapt", {}), "bn_adapt needs BatchNorm", VIT, "has none")


def test_surgical_saves_and_reloads_to_the_same_accuracy(cnn, tmp_path):
    from advisor.train import evaluate_model, load_model, run_strategy, save_model

    r = run_strategy(cnn, "surgical", {"first": 0, "last": 1, **FAST})
    model, _ = load_model(save_model(r, tmp_path / "s.pt", model_name=CNN, weights="random",
                                     preprocess=cnn.preprocess))
    assert evaluate_model(model, cnn, cnn.split.test)["accuracy"] == pytest.approx(r.test_accuracy, abs=1e-12)


# ----------------------------------------------------------------------------- CLI and search
def test_the_cli_trains_each_and_a_search_uses_the_declared_ranges(tmp_path, capsys):
    from advisor.search import SearchConfig, run_search
    from tests.test_cli import run_cli

    base = ["train", "digits:20", "--model", CNN, "--weights", "random", "--image-size", str(SIZE), "--no-cache",
            "--quiet"]
    for extra in (["--strategy", "surgical", "--first", "1", "--last", "2", "--epochs", "1"],
                  ["--strategy", "norm_tune", "--epochs", "1"], ["--strategy", "bn_adapt", "--probe", "svm_early"]):
        code, out, err = run_cli([*base, *extra], capsys)
        assert code == 0, err
        assert f"{extra[1]} on digits:20" in out
    code, _, err = run_cli([*base, "--strategy", "surgical", "--first", "3", "--last", "1"], capsys)
    assert code == 2 and "first is above last" in err and len(err.strip().splitlines()) == 1
    for strategy in ("surgical", "bn_adapt", "norm_tune"):
        cfg = SearchConfig(dataset="digits:20", model=CNN, weights="random", strategy=strategy, trials=1,
                           image_size=SIZE, device="cpu", workspace=str(tmp_path / f"ws-{strategy}"),
                           cache_dir=str(tmp_path / "cache"), study_name=strategy, pruner="none")
        result = run_search(cfg)
        assert result.n_complete == 1 and result.best_strategy == strategy, strategy


def predicts_and_exports_like_itself(save, model, meta, ctx, tmp_path, capsys) -> list[dict]:
    """``advisor predict`` and a TorchScript ``advisor export`` of the saved ``save``: the export's outputs are the
    reloaded module's, and the predicted labels on the first images are its argmax. Returns the predicted rows."""
    import csv

    from tests.test_cli import run_cli

    code, _, err = run_cli(["predict", str(save), "digits:20", "--out", str(tmp_path / "p.csv"), "--quiet"], capsys)
    assert code == 0, err
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out = tmp_path / "m.torchscript"
    code, _, err = run_cli(["export", str(save), "--format", "torchscript", "--out", str(out)], capsys)
    assert code == 0, err
    x = torch.stack([ctx.preprocess(ctx.dataset.load(i)) for i in range(8)])
    with torch.no_grad():
        want = model(x)
        got = torch.jit.load(str(out))(x)
    assert torch.allclose(got, want, atol=1e-5)
    classes = meta["classes"][meta["primary"]]
    assert [r["predicted"] for r in rows[:8]] == [classes[i] for i in want.argmax(1).tolist()]
    return rows


@pytest.mark.parametrize("extra", [["--strategy", "bn_adapt", "--probe", "svm_early"],
                                   ["--strategy", "surgical", "--first", "0", "--last", "1", "--epochs", "1"],
                                   ["--strategy", "norm_tune", "--epochs", "1"]], ids=lambda e: e[1])
def test_a_saved_model_predicts_and_exports_like_itself(extra, cnn, tmp_path, capsys):
    """``advisor train --save``, then ``advisor predict`` and a TorchScript ``advisor export`` of the file:
    the same predictions as the reloaded module (bn_adapt's adapted statistics travel with it)."""
    from advisor.train import load_model
    from tests.test_cli import run_cli

    save = tmp_path / "m.pt"
    code, _, err = run_cli(["train", "digits:20", "--model", CNN, "--weights", "random", "--image-size", str(SIZE),
                            "--no-cache", "--quiet", "--save", str(save), *extra], capsys)
    assert code == 0, err
    model, meta = load_model(save)
    rows = predicts_and_exports_like_itself(save, model, meta, cnn, tmp_path, capsys)
    assert len(rows) == len(cnn.dataset)


def test_bn_adapt_on_a_vit_is_refused_before_the_data_loads_by_the_cli_and_the_api(monkeypatch, capsys):
    """The strategy declares its backbone check; train() and the CLI build the backbone first and run it."""
    import advisor.data
    from advisor.train import train
    from tests.test_cli import run_cli

    def no_data(*a, **k):
        raise AssertionError("the data must not load")

    monkeypatch.setattr(advisor.data, "load_dataset", no_data)
    one_line_error(lambda: train("digits:20", VIT, "bn_adapt", weights="random", image_size=SIZE, device="cpu",
                            cache_dir=False), "bn_adapt needs BatchNorm")
    code, _, err = run_cli(["train", "digits:20", "--model", VIT, "--weights", "random", "--image-size", str(SIZE),
                            "--strategy", "bn_adapt", "--no-cache", "--quiet"], capsys)
    assert code == 2 and "bn_adapt needs BatchNorm" in err and len(err.strip().splitlines()) == 1
