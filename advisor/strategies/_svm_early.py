"""``svm_early``: a linear SVM on an earlier block's pooled, standardised features."""

from advisor.strategies._base import Param, Strategy
from advisor.strategies._constraints import BlockRef
from advisor.strategies._shared import C_param, max_iter_param

SVM_EARLY = Strategy(
    name="svm_early",
    kind="probe",
    params=(
        Param("block", BlockRef(), None, help="block name or index whose features the SVM reads", example='"60%"',
              default_text="2/3 depth", flag=True, search={"type": "int", "low": "30%", "high": "90%"}),
        C_param(0.1, 1e-4, 1e1),
        max_iter_param(5000),
    ),
    runner="advisor.train._probe:run_svm_early",
    summary="linear SVM on an earlier block's pooled features",
    # on each of the check's early blocks, at each of its C values
    check=lambda b: [{"block": block, "C": c} for block in b.probe_blocks for c in b.probe_c],
)
