"""The Python API: ``analyze`` measures a dataset against a backbone and advises.

The API never prints or exits; bad input raises ``advisor.errors.AdvisorError``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from advisor.advise import Advice, advise
from advisor.advise.rules import wants_check
from advisor.advise.thresholds import DEFAULT_THRESHOLDS
from advisor.errors import AdvisorError
from advisor.measure.profile import Profile
from advisor.serialize import from_dict, write_json

# progress(stage, done, total): stage is "measure" (images) or "metrics" (blocks)
ProgressFn = Callable[[str, int, int], None]


@dataclass
class Analysis:
    """What ``analyze`` returns: the measured Profile and the Advice drawn from it."""

    profile: Profile
    advice: Advice

    def save(self, path: str | Path, flag: str | None = None) -> None:
        """Write as JSON, atomically; ``flag`` names the option that gave ``path`` in a one-line error."""
        write_json(self, path, flag)

    @classmethod
    def load(cls, path: str | Path) -> "Analysis":
        try:
            data = json.loads(Path(path).read_text())
            return from_dict(cls, data)
        except FileNotFoundError:
            raise AdvisorError(f"no such analysis file: {path}", "run advisor analyze ... --json PATH first") from None
        except (ValueError, TypeError, KeyError) as e:
            raise AdvisorError(f"{path} is not an advisor analysis JSON ({e.__class__.__name__})",
                               "write one with advisor analyze ... --json PATH") from None


def analyze(
    dataset: str,
    model: str = "mobilenet_v2",
    *,
    weights: str | None = None,
    sample: int = 1000,
    image_size: int | None = None,
    device: str = "auto",
    seed: int = 0,
    batch_size: int = 64,
    source_data: str | None = None,
    label_columns: list[str] | None = None,
    intermediate: str | None = None,
    progress: ProgressFn | None = None,
    split=None,
    check: str = "auto",
    drop_rare_classes: bool = False,
    check_budget: float | None = None,
    on_check_plan: Callable | None = None,
    check_shift: bool | None = None,
    check_rung: bool | None = None,
    check_wide: bool | None = None,
    check_middle: bool | None = None,
) -> Analysis:
    """Measure ``dataset`` through ``model`` block by block and recommend a strategy.

    Parameters
    ----------
    dataset : image folder, CSV manifest, NPZ file, or built-in name (``fashion-mnist``,
        ``digits``, optionally ``NAME:K`` for K samples per class).
    model : torchvision model name or ``timm:NAME``.
    weights : None for the pretrained ImageNet weights from the torch hub cache,
        a path to a local state dict, or ``"random"``.
    sample : at most this many training-split images are measured (stratified).
    image_size : input resolution; default is the weights' own.
    source_data : optional dataset spec sampling the source domain (labels ignored)
        for Frechet distance and domain-classifier accuracy per block.
    split : train/val/test fractions (``"0.3,0.5,0.2"`` or three numbers); None: 0.6/0.2/0.2.
        Per-class counts are of the training split; the split's sizes are in ``profile.size.split``.
        A class with too few images for one in each part is refused; ``drop_rare_classes`` leaves such
        classes out instead, with an advisor.errors.AdvisorWarning naming them.
    check : the measured check (advisor.advise.check): "auto" runs it where the advice's rules say
        (a single task with at most ``check_per_class`` training images per class), "on" on any single
        task, "off" never. It trains on the training split and scores on the validation split only.
    check_budget : seconds the check may take: its candidates run cheapest first while they fit (each
        estimated on this device before it starts, advisor.advise.check_cost); the rest are skipped and
        named in the advice. None: no limit.
    on_check_plan : called with the check's plan (advisor.advise.check_cost.Plan: candidates, estimates,
        skipped) before the check trains anything.
    check_shift : the shift's candidates (bn_adapt, surgical on the third holding the largest shift) join the
        check on small data; None: as advisor.advise.check.SHIFT_CANDIDATES says (on).
    check_rung : each of the check's fine-tunes stops after a quarter of its epochs when it is by then more than
        two standard errors below the best probe; None: as advisor.advise.check.RUNG says (on).
    check_wide : the check also runs last_k on its top blocks and LP-FT at each of the family's wide rate ratios
        (a CNN: 0.1 and 0.5); None: as advisor.advise.check.WIDE_CHECK says (off: protocol s11's judge did not
        adopt it).
    check_middle : the check also runs LP-FT at each of the family's wide rate ratios and, with the shift's
        candidates, surgical on the middle third of the blocks (W of protocol s13; a CNN only); None: as
        advisor.advise.check.MIDDLE_CHECK says (off: protocol s13's judge did not adopt it).
    """
    from advisor.context import make_context

    _check_sample(sample)
    _check_check(check)
    _check_batch(batch_size)
    _check_budget(check_budget)
    ctx = make_context(dataset, model, weights=weights, image_size=image_size, device=device, seed=seed,
                       cache_dir=False, label_columns=label_columns, intermediate=intermediate, split=split,
                       drop_rare_classes=drop_rare_classes)
    return _analyze_ctx(ctx, dataset, model, sample=sample, batch_size=batch_size, source_data=source_data,
                        progress=progress, check=check, check_budget=check_budget, announce=on_check_plan,
                        check_shift=check_shift, check_rung=check_rung, check_wide=check_wide,
                        check_middle=check_middle)


def analyze_context(ctx, dataset: str, model: str, *, sample: int = 1000, batch_size: int = 64,
                    progress: ProgressFn | None = None, check: str = "auto", check_budget: float | None = None,
                    on_check_plan: Callable | None = None, check_shift: bool | None = None,
                    check_rung: bool | None = None, check_wide: bool | None = None,
                    check_middle: bool | None = None) -> Analysis:
    """:func:`analyze` on what a training context already loaded (data, split, backbone,
    preprocessing), so a search that needs the advice does not load them twice. The result
    equals ``analyze(dataset, model, ...)`` with the context's seed and image size. Its timings
    include the context's data and model loading, as a direct analyze's do."""
    _check_sample(sample)
    _check_check(check)
    _check_batch(batch_size)
    _check_budget(check_budget)
    return _analyze_ctx(ctx, dataset, model, sample=sample, batch_size=batch_size, source_data=None,
                        progress=progress, check=check, check_budget=check_budget, announce=on_check_plan,
                        check_shift=check_shift, check_rung=check_rung, check_wide=check_wide,
                        check_middle=check_middle)


CHECK_MODES = ("auto", "on", "off")


def _check_sample(sample) -> None:
    if not isinstance(sample, int) or sample < 2:
        raise AdvisorError(f"bad sample size {sample!r}", "use --sample with an integer of at least 2, e.g. 1000")


def _check_batch(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise AdvisorError(f"bad forward batch size {batch_size!r}",
                           "use --forward-batch with a positive integer, e.g. 64")


def _check_budget(budget) -> None:
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float))
                               or not math.isfinite(budget) or budget <= 0):
        raise AdvisorError(f"bad check budget {budget!r}", "use --check-budget with a positive number of seconds, "
                           "e.g. 60 (or --check off to skip the check)")


def _check_check(check) -> None:
    if check not in CHECK_MODES:
        raise AdvisorError(f"bad check mode {check!r}", f"use one of {', '.join(CHECK_MODES)}")


def run_check(ctx, progress=None, *, budget: float | None = None, forward_per_image: float | None = None,
              announce=None, profile=None, shift: bool | None = None, rung: bool | None = None,
              bn_svm: bool | None = None, wide: bool | None = None, middle: bool | None = None):
    """Run the measured check's candidates (advisor.advise.check) on ``ctx``: trained on the training
    split, scored on the validation split; the test split is never touched. The probes share one
    forward pass through an activation cache (a temporary one when ``ctx`` has none).

    Before anything trains, every candidate's cost is estimated on this device (advisor.advise.check_cost,
    from ``forward_per_image``, the seconds of one image's forward pass, and a short timed step) and
    ``announce(plan)`` is told. ``budget`` (seconds): the candidates run cheapest first while the time spent
    plus the next one's estimate stays within it; the rest are recorded as skipped. ``progress(done, total)``
    counts estimated seconds and moves inside a run, epoch by epoch. ``profile``: the analysis of ``ctx``; with
    it and ``shift`` (default advisor.advise.check.SHIFT_CANDIDATES, on) the shift's candidates join where they
    are cheap enough (advisor.advise.check.offer). ``rung`` (default advisor.advise.check.RUNG, on): each network
    candidate stops after its rung epoch when it is by then more than two standard errors below the best probe
    (advisor.advise.check.rung_stops); it enters the check with its best validation accuracy so far. ``bn_svm``
    (default advisor.advise.check.BN_SVM, on): bn_adapt's early SVM on the best plain early SVM's block joins the
    shift's candidates (advisor.advise.check.resolve names the block once the probes have run). ``wide`` (default
    advisor.advise.check.WIDE_CHECK, off): last_k on the top blocks and LP-FT at each wide ratio join. ``middle``
    (default advisor.advise.check.MIDDLE_CHECK): LP-FT at each wide ratio and surgical on the middle third join."""
    import tempfile

    import numpy as np

    from advisor import strategies
    from advisor.advise import check_cost
    from advisor.advise.check import RUNG, CheckRun, MeasuredCheck, SkippedRun, offer, resolve, rung_stops
    from advisor.context import without_test
    from advisor.train import run_strategy
    from advisor.train._base import TrainingPruned

    _check_budget(budget)
    rung = RUNG if rung is None else bool(rung)
    n_blocks = len(ctx.backbone.block_names)
    n_train, n_val = len(ctx.split.train), len(ctx.split.val)
    offered = offer(n_blocks, n_train, ctx.backbone.layout.family, profile, backbone=ctx.backbone, shift=shift,
                    bn_svm=bn_svm, wide=wide, middle=middle)
    cands = offered.candidates
    t_plan = time.perf_counter()
    if forward_per_image is None:  # no trained block: a forward alone
        fixed, per = check_cost.step_seconds(ctx.backbone, n_blocks, int(ctx.preprocess.crop_size), 2, ctx.device)
        forward_per_image = per + fixed / 64
    costs = check_cost.Costs(forward_per_image=float(forward_per_image), n_train=n_train, n_val=n_val)
    n_classes = len(ctx.dataset.classes[ctx.dataset.primary_task])
    for s, p in cands:
        first = check_cost.first_trained(s, p, n_blocks)
        if first is not None and first not in costs.steps:
            costs.steps[first] = check_cost.step_seconds(ctx.backbone, first, int(ctx.preprocess.crop_size),
                                                         n_classes, ctx.device)
    plan_seconds, fill_seconds = time.perf_counter() - t_plan, 0.0
    # the estimate's own timed steps count against the budget
    planned = check_cost.plan(cands, costs, n_blocks, None if budget is None else max(0.0, budget - plan_seconds))
    planned.rung = rung
    planned.overhead = plan_seconds
    if announce:
        announce(planned)
    total = max(1, round(planned.seconds))
    done = 0.0
    runs, skipped = [], []
    t_start = t_plan
    with tempfile.TemporaryDirectory(prefix="advisor-check-") as tmp:
        c = without_test(ctx)
        if c.cache is None:
            from advisor.context.cache import ActivationCache

            c = dataclasses.replace(c, cache=ActivationCache(tmp))
        for strategy, params in cands:
            est = check_cost.estimate(strategy, params, costs, n_blocks)
            if skipped or (budget is not None and time.perf_counter() - t_start + est > budget):
                skipped.append(SkippedRun(strategy, dict(params), round(est, 1)))
                continue
            if not costs.filled:
                # one forward pass fills every block the probes read
                t_fill = time.perf_counter()
                c.cache.ensure(c, np.concatenate([c.split.train, c.split.val]), pooled=tuple(range(n_blocks)))
                fill_seconds = time.perf_counter() - t_fill
                costs.filled = True
            params = resolve(params, runs)
            if params is None:  # its block comes from an early SVM, and none ran
                done += est
                continue

            def moved(stage, epoch, epochs, base=done, est=est, high=[0]):
                # a run reports epochs, and images of any pass it makes itself (bn_adapt's features, the
                # frozen prefix of a surgical range): the bar takes the furthest point, never going back
                if progress and epochs:
                    high[0] = max(high[0], min(total, round(base + est * epoch / epochs)))
                    progress(high[0], total)

            probe_vals = [x.val_accuracy for x in runs if check_cost.first_trained(x.strategy, x.params, n_blocks)
                          is None]
            best_probe = max(probe_vals) if rung and probe_vals else None
            curve: list[float] = []

            def on_epoch(epoch, val, params=params, best=best_probe, curve=curve):
                # the rung's one rule (advisor.advise.check.rung_stops), as the advice grid reads it from records
                curve.append(float(val))
                if best is not None and rung_stops(curve, params, best, n_val) == epoch:
                    raise TrainingPruned(f"more than 2 SE below the best probe's {best:.4f} after epoch {epoch}")

            t_run = time.perf_counter()
            try:
                r = run_strategy(dataclasses.replace(c, progress=moved), strategy, params, on_epoch)
                runs.append(CheckRun(strategy, params, float(r.val_accuracy), round(float(r.wall_time), 3)))
                if check_cost.first_trained(strategy, params, n_blocks) is None \
                        and not strategies.get(strategy).forward_images:  # a fit on cached features
                    costs.probe = max(costs.probe if len(runs) > 1 else 0.0, float(r.wall_time))
            except TrainingPruned:
                runs.append(CheckRun(strategy, params, max(curve), round(time.perf_counter() - t_run, 3),
                                     stopped_at=len(curve)))
            costs.ran.add(strategy)
            done += est
            if progress:
                progress(min(total, round(done)), total)
    if progress:
        progress(total, total)
    return MeasuredCheck(runs=runs, n_val=int(n_val), n_train=int(n_train), shift_note=offered.shift_note,
                         rung=rung, skipped=skipped, budget_seconds=budget,
                         estimated_seconds=round(planned.seconds, 1), plan_seconds=round(plan_seconds, 3),
                         fill_seconds=round(fill_seconds, 3))


def _analyze_ctx(ctx, dataset, model, *, sample, batch_size, source_data, progress, check="auto",
                 check_budget=None, announce=None, check_shift=None, check_rung=None, check_wide=None,
                 check_middle=None) -> Analysis:
    """Measure what ``ctx`` (advisor.context.make_context) loaded; its loading times count in the total."""
    from advisor.data import load_dataset, stratified_sample
    from advisor.measure._task_transfer import task_transfers
    from advisor.measure.blocks import block_profiles
    from advisor.measure.collect import collect
    from advisor.measure.shift import BLOCK_MOMENTS, BN_INPUTS, choose_shift, shift_info
    from advisor.measure.size import size_profile
    from advisor.measure.source import source_profile

    data, split, backbone, pre, dev, seed = ctx.dataset, ctx.split, ctx.backbone, ctx.preprocess, ctx.device, ctx.seed
    timings = {k: float(ctx.timings[k]) for k in ("data", "model") if k in ctx.timings}
    t0 = time.perf_counter() - sum(timings.values())
    task_i = data.tasks.index(data.primary_task)
    size = size_profile(data, split)
    fingerprint = data.fingerprint()
    train_labels = data.labels[split.train, task_i]
    chosen = split.train[stratified_sample(train_labels, sample, seed)]

    def stage(name):
        return (lambda d, n: progress(name, d, n)) if progress else None

    shift = choose_shift(backbone, int(pre.crop_size))
    t = time.perf_counter()
    col = collect(backbone, data, chosen, pre, device=dev, batch_size=batch_size, workers=ctx.workers,
                  progress=stage("measure"), with_bn=BN_INPUTS in shift.collects,
                  with_moments=BLOCK_MOMENTS in shift.collects)
    timings["pass"] = time.perf_counter() - t
    timings["forward"] = col.seconds["forward"]

    source_pooled = None
    if source_data is not None:
        t = time.perf_counter()
        src = load_dataset(source_data, seed=seed)
        src_idx = stratified_sample(src.labels[:, src.tasks.index(src.primary_task)], min(sample, len(src)), seed)
        source_pooled = collect(backbone, src, src_idx, pre, device=dev, batch_size=batch_size, workers=ctx.workers,
                                with_bn=False, with_source=False, progress=stage("source")).pooled
        timings["source_pass"] = time.perf_counter() - t

    t = time.perf_counter()
    blocks = block_profiles(col, backbone.block_names, data.tasks, seed=seed, shifts=shift.block_shifts(col),
                            source_pooled=source_pooled, progress=stage("metrics"))
    source = source_profile(col.source_probs, col.labels[:, task_i]) if col.source_probs is not None else None
    final = [task for task in data.tasks if task != data.intermediate]
    transfers = task_transfers(col.pooled[-1], col.labels, list(data.tasks), final, backbone.block_names[-1],
                               seed=seed) if len(final) >= 2 else []
    timings["metrics"] = time.perf_counter() - t

    profile = Profile(
        dataset=dataset,
        fingerprint=fingerprint,
        model=model,
        weights=backbone.weights_id,
        image_size=int(pre.crop_size),
        primary_task=data.primary_task,
        intermediate=data.intermediate,
        size=size,
        sample_size=int(len(chosen)),
        seed=seed,
        num_parameters=int(sum(p.numel() for p in backbone.parameters())),
        blocks=blocks,
        source=source,
        source_data=source_data,
        shift_measure=shift_info(shift),
        family=backbone.layout.family,
        task_transfer=transfers,
    )
    t = time.perf_counter()
    thresholds = DEFAULT_THRESHOLDS if check != "on" else dataclasses.replace(DEFAULT_THRESHOLDS,
                                                                              check_per_class=float("inf"))
    adv = advise(profile, thresholds)
    if check != "off" and wants_check(profile, thresholds):
        t1 = time.perf_counter()
        adv = advise(profile, thresholds, run_check(ctx, stage("check"), budget=check_budget, announce=announce,
                                                    forward_per_image=col.seconds["forward"] / max(1, len(chosen)),
                                                    profile=profile, shift=check_shift, rung=check_rung,
                                                    wide=check_wide, middle=check_middle))
        timings["check"] = time.perf_counter() - t1
    timings["advise"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    profile.timings = {k: round(v, 4) for k, v in timings.items()}
    return Analysis(profile=profile, advice=adv)


@dataclass
class ReferenceResult:
    """What ``reference`` wrote: the file, the weights digest it is keyed by, and the sample."""

    path: str
    digest: str
    model: str
    weights: str
    image_size: int
    dataset: str
    n_images: int
    seconds: float


def reference(
    dataset: str,
    model: str = "mobilenet_v2",
    *,
    weights: str | None = None,
    sample: int = 1000,
    image_size: int | None = None,
    device: str = "auto",
    seed: int = 0,
    batch_size: int = 64,
    label_columns: list[str] | None = None,
    split=None,
    intermediate: str | None = None,
    root: str | Path | None = None,
) -> ReferenceResult:
    """Compute reference moments of ``model``'s blocks on ``dataset``, a sample of its SOURCE domain,
    and store them beside the weights (``advisor.measure._reference_store``), keyed by the weights'
    digest and the input size. Later analyses of these weights at that size measure the shift against
    them (``advisor.measure.shift``), with or without BatchNorm.

    ``sample``: at most this many images of ``dataset`` (all splits; stratified by the first label
    column, which is otherwise ignored). ``root``: the folder (default ``$ADVISOR_REFERENCE_DIR`` or
    the torch hub checkpoint folder's ``advisor-reference``). ``split``, ``intermediate``: as for
    :func:`analyze` (checked; the sample is drawn from every split).
    """
    from advisor.context import make_context
    from advisor.data import stratified_sample
    from advisor.measure._reference_store import save_reference, weights_digest
    from advisor.measure.collect import collect

    _check_sample(sample)
    _check_batch(batch_size)
    ctx = make_context(dataset, model, weights=weights, image_size=image_size, device=device, seed=seed,
                       cache_dir=False, label_columns=label_columns, intermediate=intermediate, split=split)
    data, backbone, pre = ctx.dataset, ctx.backbone, ctx.preprocess
    t = time.perf_counter()
    idx = stratified_sample(data.labels[:, data.tasks.index(data.primary_task)], min(sample, len(data)), seed)
    # every image of the sample (not analyze's first quarter of each batch): the reference is made once, and a
    # sample drawn from a dataset stored class by class would otherwise give a batch's quarter one class only
    col = collect(backbone, data, idx, pre, device=ctx.device, batch_size=batch_size, with_bn=False,
                  with_source=False, with_moments=True, bn_every=1)
    size = int(pre.crop_size)
    path = save_reference(backbone, size, col.moments, dataset=dataset, n_images=len(idx), root=root)
    return ReferenceResult(path=str(path), digest=weights_digest(backbone), model=model,
                           weights=backbone.weights_id, image_size=size, dataset=dataset, n_images=int(len(idx)),
                           seconds=round(time.perf_counter() - t, 3))
