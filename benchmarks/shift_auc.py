"""How well each shift measure separates the grid's similar targets from its different ones (issue 20, section 4).

    .venv/bin/python benchmarks/shift_auc.py [--sample 1000] [--version 8098388255bb]

No training: ``advice_grid.FAMILIES`` declares each family's truth (``similar``); only the single-task families
count (multi-task and pipeline scenarios ask another question). Score = a summary of a per-block shift;
positive class = "different from the source"; AUC = the probability that a random different target scores
above a random similar one (ties count half; scikit-learn's ``roc_auc_score``).

Sources with a source sample here: the controlled CNN (``fmnist04``: timm mobilenetv2_050 trained on
Fashion-MNIST classes 0-4 at 32 px, ``controlled_source.py``) and the controlled ViT (``fmnist04-vit``, the same
images at 28 px). Their reference moments come from ``--sample`` of the very images they trained on (classes 0-4,
official training part, ``source_rows``), from every image, stored with the package's ``save_reference`` as
``advisor reference`` stores them. Each target is measured as the grid's analyze measured it (the same 500-image
stratified training sample, seed 0, one pass that gathers the BatchNorm input moments and the block-output
moments, so both measures see the same images). BN shift is also read from the grid's stored analyses
(``--version``), which checks that this pass reproduces them.

First round (2026-12-04): the mean over blocks (``SHIFT_SUMMARY``, the advice's own ``SHIFT_STAT``), fixed
before any result; reported AUC 0.61 for BN shift and 0.46 for the reference shift on the controlled CNN.
Second round (issue 20), protocol written on 2026-12-05 at 07:49 UTC (commit 3cf6f14), before any per-block
number was computed and before any reference shift of the controlled ViT was ever computed. Candidate summaries of the same per-block, per-channel
symmetric KL against reference moments of the source sample (``SUMMARIES``):
  R1 ``mean``:         mean over all blocks (the first round's);
  R2 ``first``:        the first block alone (the stem's output: where an input-level shift lives, and where
                       new classes of the same domain move the statistics least);
  R3 ``bottom_third``: mean over the first ceil(n/3) blocks;
  R4 ``class_rel``:    per block, the KL divided by the mean KL of each source class's own moments against the
                       whole source sample (how far the target is, in units of how far the source's own classes
                       are), then the mean over blocks (per-class moments computed here; the package's
                       reference stores none).
Selection: the candidate with the highest AUC on the controlled CNN's single-task scenarios (fmnist04, 39, the
first round's set), the lower-numbered on a tie. Judge: the selected candidate's AUC on the controlled ViT's
single-task scenarios (fmnist04-vit, every part; measured for the first time here), against BN shift's AUC on
the controlled CNN (the issue's bar). Every candidate's AUC on both sources is reported, selected or not.
Result (2026-12-05, benchmarks/results/shift_auc.json): R2 selected (CNN 0.762; R1 0.562, R3 0.753, R4 0.725);
judged on the ViT: 0.826 (R1 0.841, R3 0.868, R4 0.853), against BN shift's 0.522 on the CNN, from the stored
analyses and recomputed alike (the first round's reported 0.61 is not what this script reads from them).
ImageNet MobileNetV2 has no source sample here (no ImageNet images on this machine): reference moments
are absent there, as the tables say.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # advice_grid and controlled_source beside this file

import advice_grid as grid  # noqa: E402
from advisor.measure._reference_shift import EPS  # noqa: E402

#: The reference is made from every image of its sample, as ``advisor reference`` makes it.
REFERENCE_EVERY = 1

SHIFT_SUMMARY = "mean"  # the first round's summary over blocks: fixed before any result was seen
GRID_SAMPLE = 500  # the grid's analyze sample (advice_grid.Runner: analyze_context(..., sample=500))
#: The second round's candidate summaries (module docstring), fixed before their results.
SUMMARIES = ("R1 mean", "R2 first", "R3 bottom_third", "R4 class_rel")
SELECT_ON, JUDGE_ON = "fmnist04", "fmnist04-vit"


def auc(different: list[bool], scores: list[float]) -> float:
    """ROC AUC of ``scores`` for the positive class "different"."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(different, int), np.asarray(scores, float)))


def stored_scenarios(version: str) -> list[tuple["grid.Scenario", float]]:
    """Single-task scenarios with a stored analysis, and their stored mean BN shift."""
    out = []
    for sc in grid.all_scenarios():
        if sc.kind != "single" or sc.part in grid.WIDE_PARTS:
            continue
        path = grid.RESULTS / version / sc.id.replace("/", "__") / "analysis.json"
        if not path.is_file():
            continue
        blocks = json.loads(path.read_text())["profile"]["blocks"]
        shifts = [b["shift"] for b in blocks if b["shift"] is not None]
        if shifts:
            out.append((sc, float(np.mean(shifts))))
    return out


def source_moments(backbone, pre, n: int, root: Path):
    """Reference moments of ``n`` of the images the controlled source trained on, stored with the package's own
    ``save_reference`` exactly as ``advisor reference`` makes them (``advisor.api.reference``); and each source
    class's own moments from the same images (for R4)."""
    from advisor.data import stratified_sample
    from advisor.data._base import ArrayDataset
    from advisor.data.builtin import fashion_mnist_arrays
    from advisor.measure._reference_store import save_reference
    from advisor.measure.collect import collect
    from controlled_source import source_rows

    x, y = fashion_mnist_arrays()
    rows = source_rows(y)
    ds = ArrayDataset("fmnist04-source", x[rows], y[rows])
    idx = stratified_sample(ds.labels[:, 0], min(n, len(ds)), 0)
    kw = dict(with_bn=False, with_source=False, with_moments=True, bn_every=REFERENCE_EVERY)
    col = collect(backbone, ds, idx, pre, **kw)
    path = save_reference(backbone, pre.crop_size, col.moments, dataset="fmnist04 source images (classes 0-4)",
                          n_images=len(idx), root=root)
    per_class = [collect(backbone, ds, idx[ds.labels[idx, 0] == c], pre, **kw).moments
                 for c in np.unique(ds.labels[idx, 0])]
    return str(path), col.moments, per_class


def summaries(per_block: list[float], spread: list[float]) -> dict[str, float]:
    """The four candidate summaries of one target's per-block reference shifts."""
    v = np.asarray(per_block, float)
    third = math.ceil(len(v) / 3)
    return {"R1 mean": float(v.mean()), "R2 first": float(v[0]), "R3 bottom_third": float(v[:third].mean()),
            "R4 class_rel": float(np.mean(v / np.asarray(spread, float)))}


def measure_source(source: str, sample: int, log=print) -> list[dict]:
    """Every single-task scenario of ``source``: its similar flag, part, BN shift (mean over blocks, where the
    network has BatchNorm) and the four reference-shift summaries, each target measured as analyze measures it
    (the grid's 500-image stratified training sample, its image size, seed 0, one pass)."""
    from advisor.data import stratified_sample
    from advisor.measure._bn_shift import bn_divergence
    from advisor.measure.collect import collect
    from advisor.measure.shift import BNStatsShift, ReferenceShift

    # the fifth and sixth held-out parts (issue 21's judges) stay unseen: no measurement of their targets
    scs = [sc for sc in grid.all_scenarios() if sc.kind == "single" and sc.source == source
           and sc.part not in grid.WIDE_PARTS]
    out = []
    with tempfile.TemporaryDirectory(prefix="shift-auc-") as tmp:
        first = grid.make_scenario_context(scs[0], cache_root=Path(tmp))
        backbone, pre = first.backbone, first.preprocess
        root = Path(tmp) / "reference"
        t = time.perf_counter()
        path, ref, per_class = source_moments(backbone, pre, sample, root)
        log(f"{source}: reference moments of {sample} source images: {path} ({time.perf_counter() - t:.1f} s)")
        spread = [float(np.mean([bn_divergence(*pc[i], *ref[i], EPS) for pc in per_class])) for i in range(len(ref))]
        bn, rs = BNStatsShift(), ReferenceShift(root)
        has_bn = bn.prepare(backbone, pre.crop_size) is None
        assert rs.prepare(backbone, pre.crop_size) is None
        for sc in scs:
            ctx = grid.make_scenario_context(sc, cache_root=Path(tmp))
            data, split = ctx.dataset, ctx.split
            chosen = split.train[stratified_sample(data.labels[split.train, 0], GRID_SAMPLE, ctx.seed)]
            col = collect(backbone, data, chosen, pre, with_bn=has_bn, with_source=False, with_moments=True)
            per_block = rs.block_shifts(col)
            row = {"id": sc.id, "similar": sc.similar, "part": sc.part, "per_block": per_block,
                   **summaries(per_block, spread)}
            if has_bn:
                row["BN mean"] = float(np.mean([v for v in bn.block_shifts(col) if v is not None]))
            out.append(row)
            log(f"{sc.id:40s} similar={sc.similar!s:5s} " + "  ".join(
                f"{k.split()[0]} {row[k]:9.3f}" for k in ("BN mean", *SUMMARIES) if k in row))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=1000, help="source images for the reference moments (default 1000)")
    ap.add_argument("--version", default="8098388255bb", help="the grid results folder whose stored BN shifts are "
                    "read (default %(default)s)")
    ap.add_argument("--json", default=None, help="also write the rows and AUCs here")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    t0 = time.perf_counter()
    stored = stored_scenarios(a.version)
    rows = {src: measure_source(src, a.sample) for src in (SELECT_ON, JUDGE_ON)}
    table = []

    def add(name, pairs):
        diff = [not sim for sim, _ in pairs]
        n_sim = len(diff) - sum(diff)
        value = auc(diff, [v for _, v in pairs]) if 0 < n_sim < len(diff) else float("nan")
        table.append({"measure": name, "scenarios": len(pairs), "similar": n_sim, "different": len(pairs) - n_sim,
                      "auc": value})

    add(f"BN shift, stored grid analyses ({a.version}), every single-task scenario",
        [(sc.similar, v) for sc, v in stored])
    add(f"BN shift, stored grid analyses ({a.version}), {SELECT_ON}",
        [(sc.similar, v) for sc, v in stored if sc.source == SELECT_ON])
    add(f"BN shift, mean over blocks, recomputed, {SELECT_ON}", [(r["similar"], r["BN mean"]) for r in rows[SELECT_ON]])
    for src in (SELECT_ON, JUDGE_ON):
        for key in SUMMARIES:
            add(f"ref. shift {key}, {src}", [(r["similar"], r[key]) for r in rows[src]])
    sel = max(SUMMARIES, key=lambda k: next(t["auc"] for t in table if t["measure"] == f"ref. shift {k}, {SELECT_ON}"))
    print(f"\nAUC for 'different from the source' ({time.perf_counter() - t0:.0f} s; the higher the better, 0.5 chance)")
    print(f"{'measure':78s} {'scenarios':>9s} {'similar':>7s} {'different':>9s} {'AUC':>6s}")
    for t in table:
        print(f"{t['measure']:78s} {t['scenarios']:9d} {t['similar']:7d} {t['different']:9d} {t['auc']:6.3f}")
    judged = next(t["auc"] for t in table if t["measure"] == f"ref. shift {sel}, {JUDGE_ON}")
    bars = [t["auc"] for t in table if t["measure"].startswith("BN shift") and SELECT_ON in t["measure"]]
    print(f"selected on {SELECT_ON}: {sel}; judged on {JUDGE_ON}: AUC {judged:.3f} against BN shift's "
          f"{' / '.join(f'{b:.3f}' for b in bars)} on {SELECT_ON} (stored / recomputed): "
          f"{'met' if judged >= max(bars) else 'NOT met'}")
    print("imagenet and ViT-S/14 scenarios: no source sample here (no ImageNet or LVD-142M images), so no "
          "reference moments; their truth is 'different' for all, so they add no pair on their own")
    if a.json:
        Path(a.json).write_text(json.dumps({"table": table, "selected": sel, "judged_auc": judged, "rows": rows},
                                           indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
