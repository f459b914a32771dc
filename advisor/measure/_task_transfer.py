"""Cross-task probe transfer: how much of task B's label information a linear probe for task A carries.

Multi-task learning pays when the tasks share features. The measure asks that of the features the
tasks' heads would read (the last block's pooled output): fit a linear probe for task A, then ask how
well task B's labels can be read from that probe's K_A outputs alone, against how well they can be read
from the full features, on images the A-probe never saw.

    transfer(A -> B) = (acc_B(A-probe outputs) - acc_B(null-probe outputs))
                       / (acc_B(features) - acc_B(null-probe outputs)), clipped to [0, 1]

Every accuracy is the cross-validated ridge probe of the Profile (``linear_probe_accuracy``) on the same
held-out images. The A-probe is a closed-form ridge regression on one-hot A labels (its outputs are linear
in the features, as a logistic probe's logits are), so B read from them is B restricted to the K_A
directions that separate A's classes: 1 when B's information lies in A's discriminant subspace (an item's
group read from a probe for its class), 0 when none of it does (a digit blended into the item, read from
the item probe). The null probe is the same regression fitted to A's labels shuffled: K_A directions that
know nothing of A, which still carry some of B when B dominates the features' variance. Measured from
that floor rather than from chance, a task the features cannot read (whose probe is no better than the
null one) carries nothing, however much its arbitrary directions happen to hold.

Held-out protocol: the images labelled for B are split into two stratified halves; for each half the
A-probe and the null probe are fitted on every image labelled for A outside it, and the B accuracies are
measured inside it (5-fold); the two halves' accuracies are averaged, weighted by their size. Costs four
ridge fits and six cross-validated ridge probes per ordered pair of tasks, on features analyze already holds.
"""

from __future__ import annotations

import numpy as np

from advisor.measure._knn import linear_probe_accuracy, stratified_folds
from advisor.measure.profile import TaskTransfer

#: fewer images labelled for the predicted task than this: no measurement (None)
MIN_ROWS = 20
#: B read from the full features must beat B read from the null probe by at least this, else there is
#: nothing to transfer
MIN_HEADROOM = 0.05


def _ridge_outputs(x_fit: np.ndarray, labels: np.ndarray, x_out: np.ndarray, l2: float) -> np.ndarray:
    """Outputs on ``x_out`` of a ridge regression fitted to one-hot ``labels`` on ``x_fit`` (features
    standardised with ``x_fit``'s statistics, unpenalised intercept); primal or dual, whichever is smaller."""
    mean, sd = x_fit.mean(axis=0), x_fit.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    zf, zo = (x_fit - mean) / sd, (x_out - mean) / sd
    classes, idx = np.unique(labels, return_inverse=True)
    y = np.eye(len(classes))[idx]
    y -= y.mean(axis=0)
    if zf.shape[1] <= zf.shape[0]:
        w = np.linalg.solve(zf.T @ zf + l2 * np.eye(zf.shape[1]), zf.T @ y)
    else:
        w = zf.T @ np.linalg.solve(zf @ zf.T + l2 * np.eye(zf.shape[0]), y)
    return zo @ w


def probe_transfer(features, labels_from, labels_to, *, seed: int = 0, l2: float = 1.0) -> dict | None:
    """``transfer(A -> B)`` of the module docstring, with A = ``labels_from`` and B = ``labels_to``.

    Args:
        features: ``[N, D]`` pooled features.
        labels_from, labels_to: ``[N]`` integer labels of tasks A and B, negative = missing.
        seed: seed of the halves and of the probes' folds.
        l2: ridge penalty of every probe (standardised features).

    Returns:
        ``{"n", "accuracy_from_probe", "accuracy_from_null", "accuracy_from_features", "chance", "transfer"}``
        (``chance``: the share of B's largest class; ``transfer`` None when B is read from the features less
        than ``MIN_HEADROOM`` above the null probe), or None when fewer than ``MIN_ROWS`` images carry B, B
        has one class, or A has fewer than two classes outside a half.
    """
    x = np.asarray(features, dtype=np.float64)
    a, b = np.asarray(labels_from).reshape(-1), np.asarray(labels_to).reshape(-1)
    rows = np.flatnonzero(b >= 0)
    if rows.size < MIN_ROWS or np.unique(b[rows]).size < 2:
        return None
    half = stratified_folds(np.unique(b[rows], return_inverse=True)[1], 2, seed)
    rng = np.random.default_rng(seed)
    acc = np.zeros(3)  # B from: the A-probe's outputs, the null probe's, the full features
    for h in (0, 1):
        held = rows[half == h]
        fit = np.setdiff1d(np.flatnonzero(a >= 0), held)
        if np.unique(a[fit]).size < 2 or np.unique(b[held]).size < 2 or held.size < 4:
            return None
        reads = (_ridge_outputs(x[fit], a[fit], x[held], l2), _ridge_outputs(x[fit], rng.permutation(a[fit]),
                                                                            x[held], l2), x[held])
        acc += held.size * np.array([linear_probe_accuracy(r, b[held], seed=seed, l2=l2) for r in reads])
    from_probe, from_null, from_features = acc / rows.size
    headroom = from_features - from_null
    transfer = None if headroom < MIN_HEADROOM else float(np.clip((from_probe - from_null) / headroom, 0.0, 1.0))
    return {"n": int(rows.size), "accuracy_from_probe": float(from_probe), "accuracy_from_null": float(from_null),
            "accuracy_from_features": float(from_features),
            "chance": float(np.bincount(np.unique(b[rows], return_inverse=True)[1]).max() / rows.size),
            "transfer": transfer}


def task_transfers(features, labels, tasks: list[str], final: list[str], block: str, *,
                   seed: int = 0) -> list[TaskTransfer]:
    """``probe_transfer`` for every ordered pair of the ``final`` tasks (names in ``tasks``, the columns of
    ``labels`` ``[N, T]``), on ``features`` of ``block``; pairs without a measurement are left out. A task the
    features do not read (no ``transfer`` into it) has a probe no better than the null one: its transfer to
    the others is None too, since whatever its outputs carry, arbitrary directions would."""
    out = []
    for src in final:
        for dst in final:
            if src == dst:
                continue
            r = probe_transfer(features, labels[:, tasks.index(src)], labels[:, tasks.index(dst)], seed=seed)
            if r is not None:
                out.append(TaskTransfer(source=src, target=dst, block=block, **r))
    unread = {t.target for t in out if t.transfer is None}
    for t in out:
        if t.source in unread:
            t.transfer = None
    return out
