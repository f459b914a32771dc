"""The grid's report: the summaries of scored rows (regrets, the baselines', the confidence's calibration) and
their Markdown tables."""

from __future__ import annotations

import numpy as np

from advisor.advise import confidence
from advisor.measure.stats import binomial_se  # the one owner; re-exported as grid.binomial_se

from .scoring import BASELINES


def summarise(rows: list[dict]) -> dict:
    """Targets' numbers for a set of scored rows: share within 1 point, mean regrets, baselines'."""
    if not rows:
        return {"n": 0}
    sr = np.array([r["strategy_regret"] for r in rows])
    cr = np.array([r["config_regret"] for r in rows])
    out = {"n": len(rows), "within_1pt": float(np.mean(sr <= 1.0)), "mean_strategy_regret": float(sr.mean()),
           "mean_config_regret": float(cr.mean()), "baselines": {}}
    for b in BASELINES:
        scored = [r for r in rows if b in r["baselines"]]
        if not scored:
            continue
        if len(scored) < len(rows):  # a wide-budget baseline on a part partly scored with the seeds' budget
            b_name = f"{b} ({len(scored)} of {len(rows)} rows)"
        else:
            b_name = b
        bs = np.array([r["baselines"][b]["strategy_regret"] for r in scored])
        bc = np.array([r["baselines"][b]["config_regret"] for r in scored])
        out["baselines"][b_name] = {"within_1pt": float(np.mean(bs <= 1.0)), "mean_strategy_regret": float(bs.mean()),
                               "mean_config_regret": float(bc.mean())}
    bands = {}
    for lo, hi in ((0.0, 0.6), (0.6, 0.8), (0.8, 1.01)):
        sel = [r for r in rows if lo <= r["confidence"] < hi]
        if sel:
            bands[f"{lo:.1f}-{min(hi, 1.0):.1f}"] = {"n": len(sel), "within_1pt": float(np.mean(
                [r["strategy_regret"] <= 1.0 for r in sel]))}
    out["confidence_bands"] = bands
    right = [r["strategy_regret"] <= 1.0 for r in rows]
    out["mean_confidence"] = float(np.mean([r["confidence"] for r in rows]))
    out["ece"] = confidence.ece([r["confidence"] for r in rows], right)
    out["ece_floor"], out["ece_floor_90"] = confidence.ece_floor([r["confidence"] for r in rows])
    if all(r.get("raw_confidence") is not None for r in rows):
        out["ece_raw"] = confidence.ece([r["raw_confidence"] for r in rows], right)
    return out


def markdown(rows: list[dict], summary: dict, title: str) -> str:
    lines = [f"### {title}", "",
             "| scenario | shift | conf. | advised | oracle | oracle test ± SE | advised test ± SE | config regret "
             "| strategy regret |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def acc(p):
            return f"{100 * p:.1f} ± {100 * binomial_se(p, r['n_test']):.1f}"

        lines.append(f"| {r['id']} | {r['shift']} | {r['confidence']:.2f} | {r['advised']} | {r['oracle']} | "
                     f"{acc(r['oracle_test'])} | {acc(r['advised_test'])} | "
                     f"{r['config_regret']:+.1f} | {r['strategy_regret']:+.1f} |")
    if summary.get("n"):
        lines += ["", "| rule | within 1 pt (strategy) | mean strategy regret | mean config regret |", "|---|---|---|---|",
                  f"| advice | {100 * summary['within_1pt']:.0f}% | {summary['mean_strategy_regret']:.2f} | "
                  f"{summary['mean_config_regret']:.2f} |"]
        for b, s in summary["baselines"].items():
            lines.append(f"| {b} | {100 * s['within_1pt']:.0f}% | {s['mean_strategy_regret']:.2f} | "
                         f"{s['mean_config_regret']:.2f} |")
        if summary.get("confidence_bands"):
            lines += ["", "confidence band: share within 1 point: " + "; ".join(
                f"{k}: {100 * v['within_1pt']:.0f}% of {v['n']}" for k, v in summary["confidence_bands"].items())]
    return "\n".join(lines) + "\n"


THIRD_NAMES = ("first", "middle", "last")


def lee_markdown(rows: list[dict]) -> str:
    """For each shift kind, which third of the blocks won when tuned alone (surgical on the first, middle or
    last third, chosen on validation as the oracle would), against Lee et al.'s claim (2023): the first block
    for an input-level shift, the last for a label-level one. Rows whose budget ran the three thirds only."""
    claim = {"input": "first", "label": "last"}
    lines = ["### Where tuning one third pays: surgical by shift kind (Lee et al., 2023)", "",
             "Each scenario's winning third among surgical on the first, middle and last third of the blocks, by "
             "validation accuracy (ties: the earlier third); test accuracy beside. Lee et al.: the first block for "
             "input-level shift, the last for label-level.", "",
             "| shift kind | scenarios | first third won | middle | last | Lee et al. | held? | mean test: first / "
             "middle / last |", "|---|---|---|---|---|---|---|---|"]
    kinds: dict[str, list] = {}
    for r in rows:
        if r.get("surgical_thirds") and len(r["surgical_thirds"]) == 3:
            kinds.setdefault(r["shift"], []).append(r["surgical_thirds"])
    for kind, runs in sorted(kinds.items()):
        wins = [0, 0, 0]
        for third in runs:
            wins[max(range(3), key=lambda i: (third[i]["val"], -i))] += 1
        tests = [100 * float(np.mean([t[i]["test"] for t in runs])) for i in range(3)]
        want = claim.get(kind)
        won = THIRD_NAMES[max(range(3), key=lambda i: (wins[i], -i))]
        held = "-" if want is None else ("yes" if won == want else "no")
        lines.append(f"| {kind} | {len(runs)} | {wins[0]} | {wins[1]} | {wins[2]} | {want or '-'} | {held} | "
                     + " / ".join(f"{t:.1f}" for t in tests) + " |")
    return "\n".join(lines) + "\n"


def confidence_markdown(groups: list[tuple[str, list[dict]]]) -> str:
    """Per part: how often the advice was right (within 1 point) against its mean confidence, and the
    expected calibration error (10 equal-width bins) of the calibrated confidence and of the raw margin score,
    beside the ECE an exact probability would show on the same rows (:func:`advisor.advise.confidence.ece_floor`)."""
    lines = ["### Confidence", "", "Right = strategy regret <= 1 point. ECE over 10 equal-width bins; *raw*: the "
             "rules' and the check's margin score before calibration (advisor.advise.confidence); *floor*: the "
             "ECE of a confidence that is exactly a probability, on rows with these confidences (outcomes drawn "
             "from them, 2,000 draws): mean and 90th percentile.", "",
             "| part | scenarios | right | mean confidence | ECE | ECE, raw score | floor (90th pct.) |",
             "|---|---|---|---|---|---|---|"]
    for name, rows in groups:
        s = summarise(rows)
        if s["n"]:
            raw = f"{s['ece_raw']:.3f}" if "ece_raw" in s else "-"
            lines.append(f"| {name} | {s['n']} | {100 * s['within_1pt']:.0f}% | {s['mean_confidence']:.2f} | "
                         f"{s['ece']:.3f} | {raw} | {s['ece_floor']:.3f} ({s['ece_floor_90']:.3f}) |")
    return "\n".join(lines) + "\n"


def summary_markdown(groups: list[tuple[str, list[dict]]]) -> str:
    """One table of the targets' numbers, the advice and every baseline, for each part and pooled parts."""
    lines = ["### Summary", "", "| part | scenarios | rule | within 1 pt (strategy) | mean strategy regret | "
             "mean config regret |", "|---|---|---|---|---|---|"]
    for name, rows in groups:
        s = summarise(rows)
        if not s["n"]:
            continue
        lines.append(f"| {name} | {s['n']} | **advice** | **{100 * s['within_1pt']:.0f}%** | "
                     f"**{s['mean_strategy_regret']:.2f}** | **{s['mean_config_regret']:.2f}** |")
        for b, bs in s["baselines"].items():
            lines.append(f"| | | {b} | {100 * bs['within_1pt']:.0f}% | {bs['mean_strategy_regret']:.2f} | "
                         f"{bs['mean_config_regret']:.2f} |")
    return "\n".join(lines) + "\n"
