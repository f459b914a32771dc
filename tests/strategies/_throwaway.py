"""A throwaway strategy, the way a new one is added: this one file, then ``register(SHRUNK_PROBE)``.
It brings its own table too (``tables``), which ``advisor train`` prints after the common ones, and its runs in
the measured check (``check``: one run at each of the check's C values, as the shrinkage that gives it).

``shrunk_probe`` is a logistic-regression probe on the last block whose only parameter is the
share ``shrink`` of L2 shrinkage (C = 1 / shrink - 1 would do; here C = 1 - shrink + 0.01).
"""

from advisor import strategies
from advisor.strategies import Interval, Param, Strategy

SHRUNK_PROBE = Strategy(
    name="shrunk_probe",
    kind="probe",
    params=(Param("shrink", Interval(float, 0.0, 1.0), 0.5, help="share of L2 shrinkage", example="0.5",
                  flag=True, search={"type": "float", "low": 0.1, "high": 0.9}),),
    runner="tests.strategies._throwaway:run_shrunk_probe",
    summary="a test's logistic regression with its own parameter",
    tables="tests.strategies._throwaway:shrunk_tables",
    check=lambda b: [{"shrink": round(1.01 - c, 4)} for c in b.probe_c if 0.0 <= 1.01 - c <= 1.0],
)


def run_shrunk_probe(ctx, params, callback=None):
    from advisor.train._probe import run_linear_probe

    p = strategies.get("shrunk_probe").validate(params, n_blocks=len(ctx.backbone.blocks))
    result = run_linear_probe(ctx, {"C": 1.0 - p["shrink"] + 0.01}, callback)
    result.strategy, result.params = "shrunk_probe", p
    return result


def shrunk_tables(result) -> list:
    return [f"shrunk_probe's own table: C used {1.0 - result.params['shrink'] + 0.01:.2f}"]
