"""``linear_probe``: logistic regression on the last block's pooled, standardised features."""

from advisor.strategies._base import Strategy
from advisor.strategies._shared import C_param, max_iter_param

LINEAR_PROBE = Strategy(
    name="linear_probe",
    kind="probe",
    params=(C_param(1.0, 1e-3, 1e2), max_iter_param(1000)),
    runner="advisor.train._probe:run_linear_probe",
    summary="logistic regression on the last block's pooled, standardised features",
    check=lambda b: [{"C": c} for c in b.probe_c],  # at each of the check's C values
)
