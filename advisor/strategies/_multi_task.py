"""``multi_task``: one shared backbone, one head per label column (and each task alone to compare)."""

from advisor.strategies._base import Param, Strategy
from advisor.strategies._constraints import Boolean, Labels
from advisor.strategies._shared import NETWORK_PARAMS, k_param

MULTI_TASK = Strategy(
    name="multi_task",
    kind="multi",
    params=(
        k_param(lambda n: max(1, n // 4), "a quarter of the blocks", search={"type": "int", "low": "10%", "high": "50%"}),
        *NETWORK_PARAMS,
        Param("tasks", Labels(), None, help="label columns to train together", example="[species, genus]",
              default_text="every column but the intermediate one", flag=True),
        Param("compare", Boolean(), True, help="also train one model per task and compare", example="false",
              search=False),
    ),
    runner="advisor.train._multitask:run_multi_task",
    summary="one shared backbone, one head per label column; the loss sums over present labels only; "
            "also each task alone for comparison, on validation accuracy (`multi_minus_separate`)",
    tables="advisor.report.run_tables:multi_task_tables",
)
