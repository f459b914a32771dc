"""benchmarks/check_sets.py's rules: the rung's verdict is the protocols' rule, to the point."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def cs():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("check_sets")
    finally:
        sys.path.remove(str(BENCH))


def _j(reg_base, reg_rung, s_base, s_rung):
    return {"B": {"mean_strategy_regret": reg_base, "check_seconds": s_base},
            "R": {"mean_strategy_regret": reg_rung, "check_seconds": s_rung}}


def test_the_rung_is_adopted_only_within_the_margin_and_cheaper(cs, capsys):
    m = cs.MARGIN
    assert m == pytest.approx(0.3)  # the margin
    assert cs._rung_rule("R", _j(0.5, 0.5 + m - 1e-9, 100, 50), "B", "R")
    assert not cs._rung_rule("R", _j(0.5, 0.5 + m + 1e-6, 100, 50), "B", "R")  # loses more than the margin
    assert not cs._rung_rule("R", _j(0.5, 0.4, 100, 100), "B", "R")  # better, but no cheaper
    assert capsys.readouterr().out.count("not adopted") == 2
