"""Does the multi-task shared-features measure separate tasks that share features from tasks that do not? (issue 21)

    .venv/bin/python benchmarks/shared_features.py [--sample 300] [--sources imagenet,fmnist04]

For each multi-task family of the advice grid's older parts (never the fifth held-out part, ``s5-*``, whose
results must not exist before the advice method is complete), on the grid's own data builder
(``advice_grid.build_dataset``) and source, analyze runs for real (``advisor.api.analyze_context``, no check)
on a stratified sample of ``--sample`` training images, and the script prints, next to the family's truth
(``FAMILIES[...]["truth"]["shared"]``):

- the new measure: cross-task probe transfer at the last block, each direction and the larger one (what
  the rule compares with ``mt_min_transfer``; ``advisor.measure._task_transfer``);
- the measure it replaced: the correlation of the two tasks' per-block k-NN accuracy curves.

The item families ask for what one centred Fashion-MNIST item shows: its class and its group (shared: the
group is a function of the class), or its class and a scikit-learn digit blended 50/50 into it (not shared);
the pair families put two items side by side (left and right class; a digit on the right for mt-unshared).
No training; the controlled source's weights come from ``controlled_source.py`` (``$ADVISOR_GRID_CACHE``).
Results go to ``benchmarks/results/shared_features.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import advice_grid as grid  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "shared_features.json"
#: the families measured: every multi-task family outside the fifth held-out part, items first
FAMILIES = ("in-mt-item-group", "in-mt-item-digit", "mt-item-group", "mt-item-digit", "mt-shared", "mt-unshared")


def curve_correlation(profile, tasks: list[str]) -> float:
    """The replaced measure: correlation of the two tasks' per-block k-NN accuracy curves."""
    a, b = (np.array([blk.knn_accuracy.get(t, np.nan) for blk in profile.blocks], float) for t in tasks)
    ok = ~(np.isnan(a) | np.isnan(b))
    return float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() >= 3 and a[ok].std() > 0 and b[ok].std() > 0 else 1.0


def measure(family: str, sample: int) -> dict:
    from advisor.api import analyze_context

    sc = next(s for s in grid.all_scenarios() if s.family == family)
    ctx = grid.make_scenario_context(sc)
    t = time.perf_counter()
    a = analyze_context(ctx, sc.id, grid.SOURCES[sc.source][0], sample=sample, check="off")
    seconds = time.perf_counter() - t
    p = a.profile
    tasks = [x.task for x in p.size.tasks if x.task != p.intermediate]
    tr = {(x.source, x.target): x for x in p.task_transfer}
    directions = {f"{s}->{d}": None if x.transfer is None else round(x.transfer, 3) for (s, d), x in tr.items()}
    values = [x.transfer for x in tr.values() if x.transfer is not None]
    shared = next(e for e in a.advice.evidence if e.name.startswith("shared features"))
    return {"id": sc.id, "part": sc.part, "truth_shared": bool(sc.spec["truth"]["shared"]), "sample": p.sample_size,
            "block": p.blocks[-1].name, "transfer": directions, "pair_transfer": max(values) if values else None,
            # target accuracy read from: the source probe, the null probe, the features; chance; images
            "accuracies": {f"{s}->{d}": [round(x.accuracy_from_probe, 3), round(x.accuracy_from_null, 3),
                                         round(x.accuracy_from_features, 3), round(x.chance, 3), x.n]
                           for (s, d), x in tr.items()},
            "curve_correlation": round(curve_correlation(p, tasks), 3), "verdict": shared.verdict,
            "analyze_seconds": round(seconds, 1), "metrics_seconds": p.timings.get("metrics")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=300, help="training images measured per scenario")
    ap.add_argument("--sources", default="imagenet,fmnist04", help="grid sources to include, comma-separated")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    keep = set(a.sources.split(","))
    rows = []
    for fam in FAMILIES:
        if grid.FAMILIES[fam]["source"] not in keep:
            continue
        rows.append(measure(fam, a.sample))
        r = rows[-1]
        print(f"{r['id']:34s} {r['part']:12s} truth shared={r['truth_shared']!s:5s} transfer {r['transfer']} "
              f"pair {r['pair_transfer']} | old curve corr {r['curve_correlation']} ({r['analyze_seconds']} s)",
              flush=True)
    lines = ["| scenario | part | truth | transfer, each direction | pair (larger) | old: k-NN curve corr. |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['id']} | {r['part']} | {'shared' if r['truth_shared'] else 'not shared'} | "
                     + ", ".join(f"{k} {v}" for k, v in r["transfer"].items())
                     + f" | {r['pair_transfer'] if r['pair_transfer'] is None else round(r['pair_transfer'], 3)} "
                     f"| {r['curve_correlation']} |")
    shared = [r["pair_transfer"] for r in rows if r["truth_shared"] and r["pair_transfer"] is not None]
    apart = [r["pair_transfer"] for r in rows if not r["truth_shared"] and r["pair_transfer"] is not None]
    old_s = [r["curve_correlation"] for r in rows if r["truth_shared"]]
    old_a = [r["curve_correlation"] for r in rows if not r["truth_shared"]]
    gap = (min(shared) - max(apart)) if shared and apart else None
    old_gap = (min(old_s) - max(old_a)) if old_s and old_a else None
    print("\n".join(lines))
    print(f"separation (lowest shared - highest not shared): transfer {gap if gap is None else round(gap, 3)}, "
          f"old curve correlation {old_gap if old_gap is None else round(old_gap, 3)}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"sample": a.sample, "rows": rows, "separation": gap,
                                       "old_separation": old_gap}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
