"""``pipeline_vs_end_to_end``: x -> z -> y (a network, then logistic regression) against x -> y."""

from advisor.strategies._base import Param, Strategy
from advisor.strategies._constraints import Boolean, Fractions, Interval, Options
from advisor.strategies._shared import NETWORK_PARAMS, k_param

#: ``k`` when not given (at most the backbone's block count).
K_DEFAULT = 2

PIPELINE_VS_END_TO_END = Strategy(
    name="pipeline_vs_end_to_end",
    kind="pipeline",
    params=(
        k_param(lambda n: min(K_DEFAULT, n), str(K_DEFAULT)),
        *NETWORK_PARAMS,
        Param("stage2_input", Options(("true", "predicted")), "true",
              help="what stage 2 is fitted on: the true z (one-hot) or stage 1's predicted probabilities",
              example='"true"', search="true"),
        Param("stage2_C", Interval(float, 0.0, None, "neither"), 1.0, help="stage 2's inverse regularisation",
              example="1.0", search={"type": "float", "low": 1e-2, "high": 1e2, "log": True}),
        Param("learning_curve", Boolean(), True, help="fit both approaches on growing fractions of the train split",
              example="false", search=False),
        Param("curve_fractions", Fractions(), (0.25, 0.5, 1.0), help="train-split fractions of the learning curve",
              example="[0.25, 0.5, 1.0]"),
    ),
    runner="advisor.train._pipeline:run_pipeline_vs_end_to_end",
    summary="x -> z (network) then z -> y (logistic regression) against x -> y, same test items, "
            "plus a learning curve with power-law fits",
    tables="advisor.report.run_tables:pipeline_tables",
    heads=("linear", "two_stage"),  # the end-to-end network's head, or z's head -> softmax -> stage 2
)
