"""The grid's command line: run (or read back) the selected scenarios, then print and write the tables, or
calibrate on the calibration parts."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from . import __doc__ as PACKAGE_DOC
from .budget import set_budget
from .calibration import calibrate, calibrate_config, write_confidence_table
from .families import (CALIBRATION, CALIBRATION_PARTS, CONFIDENCE_PARTS, SEEN_PARTS, HELDOUT, HELDOUT2, HELDOUT3, HELDOUT4,
                       EIGHTH_HELDOUT, ELEVENTH_HELDOUT, NINTH_HELDOUT, TENTH_HELDOUT, TWELFTH_HELDOUT, THIRTEENTH_HELDOUT, SEVENTH_HELDOUT, SHIFT_HELDOUT, SIXTH_HELDOUT,
                       VIT_CALIBRATION, VIT_HELDOUT, VIT_HELDOUT2, VIT_HELDOUT3)
from .report import confidence_markdown, lee_markdown, markdown, summarise, summary_markdown
from .scenarios import QUICK, select
from .scoring import grid_check, score_scenario
from .store import RESULTS, Runner, _write, code_version

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.advice_grid", description=PACKAGE_DOC.splitlines()[0])
    ap.add_argument("--only", help="scenario ids, families or prefixes, comma-separated (see --list)")
    ap.add_argument("--quick", action="store_true", help=f"the {len(QUICK)} scenarios of QUICK (about 15 min)")
    ap.add_argument("--list", action="store_true", help="list the scenarios with their part and exit")
    ap.add_argument("--report-only", action="store_true", help="score what is stored; compute nothing")
    ap.add_argument("--calibration-only", action="store_true",
                    help="print and score only the calibration parts (to develop rules without seeing the held-out)")
    ap.add_argument("--calibrate", action="store_true",
                    help="search the rules' thresholds on each calibration part's stored results (CNN and ViT "
                         "separately) and print them")
    ap.add_argument("--calibrate-confidence", action="store_true",
                    help="fit the confidence's calibration on the stored results of the calibration parts and the "
                         "fifth held-out part (method by leave-one-out log loss) and write "
                         "advisor/advise/_confidence_table.py")
    ap.add_argument("--version", default=None, help="code version folder to read (default: the current code's); "
                    "a comma-separated list reads each scenario from the first that holds it")
    ap.add_argument("--budget", choices=("seeds", "wide"), default="seeds",
                    help="the oracle's budget on the older parts: the seeds' strategies, or every strategy (issue "
                         "21); the fifth held-out part always takes the wide one")
    ap.add_argument("--check-shift", choices=("default", "on", "off"), default="default",
                    help="the measured check's shift candidates on the wide budget's rows: analyze's default (on "
                         "since the seventh held-out part judged them, protocol s7), or on/off")
    ap.add_argument("--check-rung", choices=("default", "on", "off"), default="default",
                    help="the measured check's rung (each network candidate stopped after a quarter of its epochs "
                         "when more than 2 SE below the best probe), read from the records' validation curves: "
                         "analyze's default (off), or on (protocol benchmarks/protocols/s7-rung-and-shift.md)")
    ap.add_argument("--check-middle", choices=("default", "on", "off"), default="default",
                    help="W of protocol s13 in the measured check (LP-FT at 0.5 and surgical on the middle third): "
                         "analyze's default, or on/off")
    ap.add_argument("--confidence-parts", choices=("fitted", "seen"), default="fitted",
                    help="the rows --calibrate-confidence fits on: the parts today's table was fitted on "
                         "(CONFIDENCE_PARTS), or every part seen before protocol s13 (SEEN_PARTS)")
    ap.add_argument("--confidence-out", default=None,
                    help="where --calibrate-confidence writes its table (default: advisor/advise/_confidence_table.py)")
    ap.add_argument("--out", default=str(RESULTS.parent), help="where advice_grid.md/json are written")
    a = ap.parse_args(argv)
    set_budget(a.budget)
    from . import scoring

    scoring.CHECK_SHIFT = {"default": None, "on": True, "off": False}[a.check_shift]
    scoring.CHECK_RUNG = {"default": None, "on": True, "off": False}[a.check_rung]
    scoring.CHECK_MIDDLE = {"default": None, "on": True, "off": False}[a.check_middle]
    fit_parts = SEEN_PARTS if a.confidence_parts == "seen" else CONFIDENCE_PARTS
    scs = select(a.only, a.quick)
    if a.calibrate_confidence:
        scs = [s for s in scs if s.part in fit_parts]
    elif a.calibration_only or a.calibrate:
        scs = [s for s in scs if s.part in CALIBRATION_PARTS]
    if a.list:
        for s in scs:
            print(f"{s.id:34s} {s.part:12s} {s.kind:10s} shift={s.shift:8s} similar={s.similar!s:5s} "
                  f"{'small' if s.small else 'large'}  {s.spec['desc']}")
        return 0
    import torch

    from advisor.advise import advise

    if os.environ.get("ADVISOR_GRID_THREADS"):  # e.g. 1 when several grid processes share the cores
        torch.set_num_threads(int(os.environ["ADVISOR_GRID_THREADS"]))
    if a.calibrate or a.calibrate_confidence:
        a.report_only = True  # they read stored results; a missing one is reported, never trained
    version = a.version or code_version()
    if not a.report_only and version != code_version():
        # training here would file today's code's results under another version's name
        print(f"advice_grid: --version {version} is not this code's ({code_version()}): add --report-only to score "
              "what is stored there, or leave --version out to compute")
        return 2
    print(f"advice grid: {len(scs)} scenarios, code version {version}")
    rows, failed, missing = [], [], []
    t0 = time.perf_counter()
    for i, sc in enumerate(scs, 1):
        print(f"[{i}/{len(scs)}] {sc.id} ({sc.part}) at {time.perf_counter() - t0:.0f} s", flush=True)
        runner = Runner(sc, version)
        try:
            row = score_scenario(sc, runner, advise, compute=not a.report_only)
        except Exception:  # noqa: BLE001 - one broken scenario must not lose the others' hours
            import traceback

            failed.append(sc.id)
            print(f"  FAILED {sc.id}:\n{traceback.format_exc()}", flush=True)
            continue
        if row is not None:
            rows.append(row)
        elif a.report_only:
            missing.append(sc.id)
    cal = [r for r in rows if r["part"] == CALIBRATION]
    held = [r for r in rows if r["part"] == HELDOUT]
    held2 = [r for r in rows if r["part"] == HELDOUT2]
    held3 = [r for r in rows if r["part"] == HELDOUT3]
    held4 = [r for r in rows if r["part"] == HELDOUT4]
    vit_cal = [r for r in rows if r["part"] == VIT_CALIBRATION]
    vit_held = [r for r in rows if r["part"] == VIT_HELDOUT]
    vit_held2 = [r for r in rows if r["part"] == VIT_HELDOUT2]
    vit_held3 = [r for r in rows if r["part"] == VIT_HELDOUT3]
    held5 = [r for r in rows if r["part"] == SHIFT_HELDOUT]
    held6 = [r for r in rows if r["part"] == SIXTH_HELDOUT]
    held7 = [r for r in rows if r["part"] == SEVENTH_HELDOUT]
    held8 = [r for r in rows if r["part"] == EIGHTH_HELDOUT]
    held9 = [r for r in rows if r["part"] == NINTH_HELDOUT]
    held10 = [r for r in rows if r["part"] == TENTH_HELDOUT]
    held11 = [r for r in rows if r["part"] == ELEVENTH_HELDOUT]
    held12 = [r for r in rows if r["part"] == TWELFTH_HELDOUT]
    held13 = [r for r in rows if r["part"] == THIRTEENTH_HELDOUT]
    fixed = held10 + held11 + held12  # every part written since today's method was fixed (protocol s12)
    if a.calibrate_confidence:
        write_confidence_table([r for r in rows if r["part"] in fit_parts], version,
                               **({"path": Path(a.confidence_out)} if a.confidence_out else {}))
        return 0
    if a.calibrate:
        # each calibration part on its own: a ViT threshold may differ from the CNN one where its data says so
        for part, part_rows in ((CALIBRATION, cal), (VIT_CALIBRATION, vit_cal)):
            if not part_rows:
                continue
            ids = {r["id"] for r in part_rows}
            profiles = {sc.id: Runner(sc, version).analysis().profile for sc in scs if sc.id in ids}
            runners = {sc.id: Runner(sc, version) for sc in scs if sc.id in ids}
            checks = {i: grid_check(next(sc for sc in scs if sc.id == i), r) for i, r in runners.items()}
            print(f"{part}:")
            chosen = calibrate(part_rows, profiles, checks=checks)
            chosen.update(calibrate_config(part_rows, profiles, runners, chosen, checks=checks))
            print(json.dumps(chosen, indent=1))
        return 0
    unseen = held2 + held3 + held4  # the parts written before the method they judge
    def by_size(name: str, part_rows: list[dict]) -> list[tuple[str, list[dict]]]:  # a part built as issue 21 asks
        return [(f"{name}, {k} per class", [r for r in part_rows if r["per_class"] == k]) for k in (10, 50, 200)]

    pooled = [("thirteenth held-out (judge of protocol s13 and issue 21's targets)", held13),
              *by_size("thirteenth", held13),
              ("twelfth held-out (judge of issue 21's targets, protocol s12)", held12),
              *by_size("twelfth", held12),
              ("tenth to twelfth held-out (since today's method was fixed)", fixed),
              ("eleventh held-out (judge of protocol s11)", held11), ("tenth held-out (judge of protocol s10)", held10),
              ("ninth held-out (judge of protocol s9)", held9), ("eighth held-out (judge of protocol s8)", held8),
              ("seventh held-out (judge of the check's rung and shift candidates)", held7),
              ("sixth held-out (judge of the confidence's refit)", held6),
              ("fifth held-out (issue 21's judge)", held5), ("fourth held-out (multi-task, pipeline)", held4), ("third held-out (multi-task, pipeline)", held3),
              ("second held-out (single-task)", held2), ("first held-out (seen before the check)", held),
              ("second to fourth held-out", unseen), ("every held-out part", held + unseen),
              ("calibration", cal), ("ViT held-out (both ViT sources)", vit_held),
              ("ViT held-out, controlled ViT", [r for r in vit_held if r["id"].startswith("fmnist04-vit/")]),
              ("ViT held-out, ViT-S/14", [r for r in vit_held if r["id"].startswith("vits14/")]),
              ("ViT held-out 3 (controlled ViT, written before the two-ratio check's results)", vit_held3),
              ("ViT held-out 2 (controlled ViT, written before the recipe's results)", vit_held2),
              ("ViT calibration", vit_cal)]
    out = {"version": version, "scenarios_scored": len(rows), "scenarios_selected": len(scs),
           "calibration": summarise(cal), "held_out": summarise(held), "held_out_2": summarise(held2),
           "held_out_3": summarise(held3), "held_out_4": summarise(held4),
           "held_out_2_to_4": summarise(unseen), "held_out_all": summarise(held + unseen),
           "vit_calibration": summarise(vit_cal), "vit_held_out": summarise(vit_held),
           "vit_held_out_2": summarise(vit_held2), "vit_held_out_3": summarise(vit_held3),
           "held_out_5": summarise(held5), "held_out_6": summarise(held6),
           "held_out_7": summarise(held7), "held_out_8": summarise(held8), "held_out_9": summarise(held9), "held_out_10": summarise(held10),
           "held_out_11": summarise(held11), "held_out_12": summarise(held12), "held_out_13": summarise(held13),
           "held_out_10_to_12": summarise(fixed), "rows": rows}
    out.update(failed=failed, missing=missing)
    text = (f"Advice grid, code version {version}: {len(rows)} of {len(scs)} selected scenarios scored"
            + (f"; not yet run: {', '.join(missing)}" if missing else "")
            + (f"; FAILED: {', '.join(failed)}" if failed else "") + ".\n\n"
            + summary_markdown(pooled) + "\n" + confidence_markdown(pooled) + "\n"
            + (lee_markdown(rows) + "\n" if any(r.get("surgical_thirds") for r in rows) else "")
            + (markdown(held13, out["held_out_13"], "Thirteenth held-out part (protocol s13's judge, wide budget)")
               + "\n" if held13 else "")
            + (markdown(held12, out["held_out_12"], "Twelfth held-out part (issue 21's judge, wide budget)") + "\n"
               if held12 else "")
            + (markdown(held11, out["held_out_11"], "Eleventh held-out part (shift kinds, wide budget)") + "\n"
               if held11 else "")
            + (markdown(held10, out["held_out_10"], "Tenth held-out part (shift kinds, wide budget)") + "\n"
               if held10 else "")
            + (markdown(held9, out["held_out_9"], "Ninth held-out part (shift kinds, wide budget)") + "\n"
               if held9 else "")
            + (markdown(held8, out["held_out_8"], "Eighth held-out part (shift kinds, wide budget)") + "\n"
               if held8 else "")
            + (markdown(held7, out["held_out_7"], "Seventh held-out part (shift kinds, wide budget)") + "\n"
               if held7 else "")
            + (markdown(held6, out["held_out_6"], "Sixth held-out part (shift kinds, wide budget)") + "\n"
               if held6 else "")
            + (markdown(held5, out["held_out_5"], "Fifth held-out part (shift kinds, wide budget)") + "\n"
               if held5 else "")
            + (markdown(held4, out["held_out_4"], "Fourth held-out part") + "\n" if held4 else "")
            + (markdown(held3, out["held_out_3"], "Third held-out part") + "\n" if held3 else "")
            + (markdown(held2, out["held_out_2"], "Second held-out part") + "\n" if held2 else "")
            + (markdown(held, out["held_out"], "Held-out part") + "\n" if held or not rows else "")
            + (markdown(cal, out["calibration"], "Calibration part") if cal or not rows else "")
            + ("\n" + markdown(vit_held3, out["vit_held_out_3"], "Third ViT held-out part") if vit_held3 else "")
            + ("\n" + markdown(vit_held2, out["vit_held_out_2"], "Second ViT held-out part") if vit_held2 else "")
            + ("\n" + markdown(vit_held, out["vit_held_out"], "ViT held-out part") if vit_held else "")
            + ("\n" + markdown(vit_cal, out["vit_calibration"], "ViT calibration part") if vit_cal else ""))
    print(text)
    if not a.only and not a.quick and not a.calibration_only and not failed:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        _write(Path(a.out) / "advice_grid.json", out)
        (Path(a.out) / "advice_grid.md").write_text(text)
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0
