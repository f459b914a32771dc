"""How good is the advice: regret of ``advisor analyze``'s strategy against an oracle, on a grid of transfer scenarios.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.advice_grid [--quick | --only ID[,ID...]] [--list] [--report-only]

(from the repository root; ``python -m`` because the grid is a package, and ``PYTHONPATH=$PWD`` so that the
checkout's ``advisor`` is the one imported)

A scenario is a source network, a target dataset and a number of training images per class. For each
one the grid (1) runs analyze on the scenario's training split and stores the Profile, (2) runs every
candidate of the oracle on a small fixed tuning budget (ORACLE_BUDGET below), selecting on the
validation split and reporting each configuration once on the test split, and (3) runs the advised
configuration. The advice is recomputed from the stored Profile with the current rules at report time,
so changing a rule needs no re-measurement, only the advised configuration's run when it is new.

Regrets (points of test accuracy), per scenario:
- configuration regret = oracle test - test of the advised strategy with its advised parameters;
- strategy regret      = oracle test - test of the advised strategy's best-validation configuration
  in the budget.
The oracle's answer is the configuration with the best validation accuracy over the whole budget
(first in budget order on a tie); its test accuracy is the reference. Baselines get the same regrets:
the plain 2x2 rule of DESIGN.md (given the true size and similarity), always full fine-tune with LP-FT,
always linear probe. For multi-task and pipeline scenarios the choice is shared-vs-separate or
pipeline-vs-end-to-end; there both regrets are the same number, and the baselines take the option that
needs no special structure (separate networks, end-to-end).

Calibration honesty: a scenario's part (calibration or held-out) is fixed by its target family in
FAMILIES below, written before any result was seen. Thresholds and fitted models may only use the
calibration part; the README reports the held-out part separately.

Resumable: every result is a JSON file under ``benchmarks/results/advice_grid/``, keyed by the scenario,
the configuration and the code version (a hash of the trainer's and the measurements' source files);
a re-run computes only what is missing. Activations are cached under ``$ADVISOR_GRID_CACHE``
(default ``.cache/advice_grid``), with the controlled source's weights (benchmarks/controlled_source.py).

The package, one module per concept (each imports only the ones above it in this list):

- ``sources``: the checkout's root, the source networks (model, weights, image size) and their training cost;
- ``families``: the calibration and held-out parts and every target family (its truth, sizes and part);
- ``scenarios``: :class:`Scenario` (a source, a family, a size), every scenario, ``--only``/``--quick``;
- ``images``, ``single``, ``multi``, ``data``: the target data builders (rows, transforms, splits; single-task
  targets; multi-task and pipeline targets; :func:`build_dataset`);
- ``context``: the source backbones and the scenario's training context;
- ``budget``: the oracle's budget (the seeds' and the wide one);
- ``configs``: a strategy's configuration in the budget's form, its defaults from the strategy registry;
- ``store``: the code version, the result files and :class:`Runner` (runs or reads back a scenario);
- ``scoring``: the oracle's answer, the baselines, the measured check from the records, the regrets;
- ``report``: the summaries and Markdown tables;
- ``calibration``: the threshold, advised-parameter and confidence calibration;
- ``main``: the command line (``__main__`` runs it).

The names below are the grid's public face (the benchmarks beside it and the tests use them).
"""

from __future__ import annotations

import sys

from .sources import BENCH

if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))  # controlled_source.py, beside the package, imports as ``controlled_source``

from .budget import (FAMILY_LR_RATIOS, LAST_K_FRACTIONS, LORA_RANKS, LR_RATIOS, PROBE_C, last_ks,  # noqa: E402
                     network_common, oracle_budget, set_budget, svm_blocks, thirds, uses_wide, wide_budget)
from .calibration import (CONFIDENCE_TABLE, SEARCH_CONFIG, SEARCH_MT, SEARCH_PEAK, SEARCH_PIPELINE,  # noqa: E402
                          SEARCH_SINGLE, calibrate, calibrate_config, strategy_regret_under, write_confidence_table)
from .configs import _fill_defaults, _norm_params, advised_config, default  # noqa: E402
from .context import _BACKBONES, backbone_for, make_scenario_context  # noqa: E402
from .data import build_dataset  # noqa: E402
from .families import (_S5_INPUT, CALIBRATION, CALIBRATION_PARTS, CHAIN_PART, CONFIDENCE_PARTS,  # noqa: E402
                       FAMILIES, HELDOUT, HELDOUT2, HELDOUT3, HELDOUT4, PARTS, S5_BREEDS, SHIFT_HELDOUT,
                       EIGHTH_HELDOUT, ELEVENTH_HELDOUT, NINTH_HELDOUT, TENTH_HELDOUT, TWELFTH_HELDOUT, THIRTEENTH_HELDOUT, SEVENTH_HELDOUT, SIXTH_HELDOUT, VIT_CALIBRATION, VIT_FAMILIES, VIT_HELDOUT, VIT_HELDOUT2, VIT_HELDOUT3,
                       VIT_SIZES, WIDE_PARTS)
from .main import main  # noqa: E402
from .multi import ITEM_GROUP_NAMES, ITEM_GROUPS  # noqa: E402
from .report import (THIRD_NAMES, binomial_se, confidence_markdown, lee_markdown, markdown,  # noqa: E402
                     summarise, summary_markdown)
from .scenarios import QUICK, SMALL_2X2, Scenario, all_scenarios, grid_family, select  # noqa: E402
from .scoring import (BASELINE_OPTION, BASELINES, WIDE_BASELINES, best_by_val, check_candidates,  # noqa: E402
                      grid_check, plain_2x2, points, regrets, score_scenario)
from .sources import ROOT, SOURCE_COST, SOURCES, VIT_SOURCE  # noqa: E402
from .store import GRID_VERSION, RESULTS, Runner, _config_key, _scenario_dir, code_version  # noqa: E402

__all__ = [
    "advised_config", "all_scenarios", "backbone_for", "_BACKBONES", "BASELINE_OPTION", "BASELINES", "best_by_val",
    "binomial_se", "build_dataset", "calibrate", "calibrate_config", "CALIBRATION", "CALIBRATION_PARTS",
    "CHAIN_PART", "check_candidates", "CONFIDENCE_PARTS", "code_version", "confidence_markdown", "CONFIDENCE_TABLE",
    "_config_key",
    "default", "FAMILIES", "FAMILY_LR_RATIOS", "_fill_defaults", "grid_check", "grid_family", "GRID_VERSION",
    "HELDOUT", "HELDOUT2", "HELDOUT3", "HELDOUT4", "ITEM_GROUP_NAMES", "ITEM_GROUPS", "LAST_K_FRACTIONS", "last_ks",
    "lee_markdown", "LORA_RANKS", "LR_RATIOS", "main", "make_scenario_context", "markdown", "network_common",
    "_norm_params", "oracle_budget", "PARTS", "plain_2x2", "points", "PROBE_C", "QUICK", "regrets", "RESULTS", "ROOT",
    "Runner", "S5_BREEDS", "_S5_INPUT", "Scenario", "_scenario_dir", "score_scenario", "SEARCH_CONFIG", "SEARCH_MT",
    "SEARCH_PEAK", "SEARCH_PIPELINE", "SEARCH_SINGLE", "select", "set_budget", "SHIFT_HELDOUT", "SEVENTH_HELDOUT", "SIXTH_HELDOUT", "EIGHTH_HELDOUT", "NINTH_HELDOUT", "TENTH_HELDOUT", "ELEVENTH_HELDOUT", "TWELFTH_HELDOUT", "THIRTEENTH_HELDOUT",
    "SMALL_2X2",
    "SOURCE_COST", "SOURCES", "strategy_regret_under", "summarise", "summary_markdown", "svm_blocks", "THIRD_NAMES",
    "thirds", "uses_wide", "VIT_CALIBRATION", "VIT_FAMILIES", "VIT_HELDOUT", "VIT_HELDOUT2", "VIT_HELDOUT3",
    "VIT_SIZES", "VIT_SOURCE", "WIDE_BASELINES", "WIDE_PARTS", "wide_budget", "write_confidence_table",
]
