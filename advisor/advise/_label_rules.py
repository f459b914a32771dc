"""The rules for labels beyond one final task: multi-task (two or more final label columns) and pipeline versus
end-to-end (an intermediate label column); README, "How the advice is decided", rules 1 and 2."""

from __future__ import annotations

import math

import numpy as np

from advisor.advise._space import _space
from advisor.advise.advice import Advice, Alternative, Evidence
from advisor.advise.thresholds import Thresholds
from advisor.measure.profile import Profile


def _chance(profile: Profile, task: str) -> float:
    return 1.0 / max(profile.size.task(task).n_classes, 1)


def _curve(profile: Profile, task: str) -> np.ndarray:
    return np.array([v if v is not None else np.nan for v in profile.block_values("knn_accuracy", task)], float)


def _shared_features(profile: Profile, tasks: list[str]) -> tuple[float | None, str]:
    """The smallest, over pairs of ``tasks``, of the pair's larger cross-task probe transfer (either task's
    probe carrying the other's information), with the pair it came from; None (and why) where a pair has none."""
    got = {(x.source, x.target): x.transfer for x in profile.task_transfer if x.transfer is not None}
    worst, where = None, ""
    for i, a in enumerate(tasks):
        for b in tasks[i + 1:]:
            both = [v for v in (got.get((a, b)), got.get((b, a))) if v is not None]
            if not both:
                why = ("not measured (a Profile written before the measure)" if not profile.task_transfer
                       else f"not measured for {a} and {b} (too few images labelled for both, or a task no "
                            "linear probe reads above chance)")
                return None, why
            if worst is None or max(both) < worst:
                worst, where = max(both), f"{a} / {b}"
    return worst, where


def _multi_task_check(profile: Profile, tasks: list[str], t: Thresholds):
    counts = [profile.size.task(task).n_labelled for task in tasks]
    balance = min(counts) / max(max(counts), 1)
    if any(np.isnan(_curve(profile, task)).all() for task in tasks):
        return None
    shared, where = _shared_features(profile, tasks)
    block = profile.task_transfer[0].block if profile.task_transfer else profile.blocks[-1].name
    ev = [
        Evidence("task balance (smallest / largest labelled count)", round(balance, 3), f">= {t.mt_min_balance}",
                 "balanced" if balance >= t.mt_min_balance else "unbalanced"),
        Evidence(f"shared features (cross-task probe transfer at {block}, weakest pair"
                 + (f": {where})" if shared is not None else ")"),
                 None if shared is None else round(shared, 3), f">= {t.mt_min_transfer}",
                 where if shared is None else "shared" if shared >= t.mt_min_transfer else "not shared"),
        Evidence("backbone parameters", profile.num_parameters, f">= {t.mt_min_params:,}",
                 "big enough" if profile.num_parameters >= t.mt_min_params else "too small"),
    ]
    failed = []
    if balance < t.mt_min_balance:
        failed.append(f"tasks are unbalanced ({balance:.2f} < {t.mt_min_balance})")
    if shared is None:
        failed.append(f"shared features are {where}")
    elif shared < t.mt_min_transfer:
        failed.append(f"the tasks share little: a linear probe for one carries {shared:.2f} of the other's label "
                      f"information above chance ({where}; < {t.mt_min_transfer})")
    if profile.num_parameters < t.mt_min_params:
        failed.append(f"the network is small ({profile.num_parameters:,} parameters)")
    return not failed, ev, failed


def _pipeline(profile: Profile, evidence: list[Evidence], notes: list[str], n: int, t: Thresholds) -> Advice:
    final, inter = profile.primary_task, profile.intermediate
    y_size, z_size = profile.size.task(final), profile.size.task(inter)
    ky, kz = _curve(profile, final), _curve(profile, inter)
    y_acc, z_acc = float(np.nanmax(ky)), float(np.nanmax(kz))
    small = y_size.median_per_class < t.pipeline_per_class
    z_richer = z_size.n_labelled / max(z_size.n_classes, 1) > y_size.median_per_class
    evidence += [
        Evidence(f"median samples per class of final label {final}", y_size.median_per_class,
                 f"too small for the mapping < {t.pipeline_per_class}", "too small" if small else "enough"),
        Evidence(f"best k-NN accuracy, intermediate {inter}", round(z_acc, 4),
                 f"final {final}: {y_acc:.4f}", "intermediate easier" if z_acc / _chance(profile, inter) > y_acc / _chance(profile, final) else "final as easy"),
    ]
    prefer = "pipeline" if (small or z_richer) else "end_to_end"
    return Advice(
        strategy="pipeline_vs_end_to_end",
        params={"intermediate": inter, "final": final, "prefer": prefer},
        confidence=0.7 if small else 0.55,
        summary=(f"Intermediate labels ({inter}) exist: compare a pipeline x->{inter}->{final} against end-to-end "
                 f"x->{final}; the measurements favour the {prefer.replace('_', '-')}."),
        evidence=evidence,
        reasons=[("The final label has too little data to learn the whole mapping; each sub-task has more."
                  if small else "There is enough data for the final label to learn the mapping directly.")],
        alternatives=[Alternative("last_k", {"k": max(1, math.ceil(n / 4))}, f"end-to-end on {final} only")],
        search_space=_space("pipeline_vs_end_to_end", n, (1, max(1, n // 2)), (0.03, 1.0), profile, [], [True, False], t),
        notes=notes,
    )
