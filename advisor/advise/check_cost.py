"""What the measured check will cost, known before it starts: per candidate, from a short timed step here.

``advisor analyze`` says how long its check will take before it trains anything, and ``--check-budget
SECONDS`` keeps the cheapest candidates that fit (:func:`plan`). The estimate of each candidate
(:func:`estimate`) is built from two measurements on this device and these images' size:

* ``forward_per_image``: seconds of one image's forward pass through the whole network, from the
  analyze pass that just ran (its ``forward`` time over its sample); the check's one pass over the training
  and validation images (the activation cache's fill) costs that per image;
* ``step_seconds(first)``: one optimiser step's forward and backward through blocks ``first..n-1`` and a
  linear head, timed at two batch sizes (:data:`STEP_IMAGES`) after an untimed warm-up step, as a fixed cost
  per step plus a cost per image. The blocks below ``first`` are not timed: a trainer reads them from the
  activation cache.

A network candidate then costs ``epochs`` passes of its training images through that step (at most: early
stopping can end it sooner) plus one validation pass per epoch through its trained blocks; an LP-FT
warm-up's heads-only epochs read the cache and are not counted. A probe fits on cached pooled features: its cost is the fit
alone, taken as :data:`PROBE_SECONDS` until the first probe has run, then as the slowest probe so far; a probe that
passes images forward itself (bn_adapt: its declared ``forward_images``) adds those at ``forward_per_image``, and
a later run of the same strategy its ``forward_images_again`` where declared (bn_adapt reuses its adaptation).
Which block a network candidate trains from is its strategy's declaration (``Strategy.lowest_trained``).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

#: images of the two timed steps (one untimed warm-up step first): a step's cost is fitted as fixed + per image
STEP_IMAGES = (4, 16)
#: a probe's fit before one has been timed (seconds; scikit-learn on at most a few thousand pooled vectors)
PROBE_SECONDS = 1.0


@dataclass
class Costs:
    """This device's measured costs (seconds)."""

    forward_per_image: float
    n_train: int
    n_val: int
    steps: dict[int, tuple[float, float]] = field(default_factory=dict)  # first trained block -> step_seconds()
    probe: float = PROBE_SECONDS
    filled: bool = False  # the cache already holds every pooled block
    ran: set = field(default_factory=set)  # strategies with a run before this one (forward_images_again)


def step_seconds(backbone, first: int, image_size: int, n_classes: int, device="cpu") -> tuple[float, float]:
    """One training step (forward and backward) of blocks ``first..n-1`` and a linear head, timed on this device
    as ``(fixed, per_image)`` seconds: a step of ``n`` images costs ``fixed + n * per_image``. Fitted from steps of
    :data:`STEP_IMAGES` random images at ``image_size``, after an untimed warm-up step; the backbone itself is
    untouched (a copy trains)."""
    import torch
    from torch import nn

    from advisor.models import engine

    net = copy.deepcopy(backbone).to(device)
    net.train()
    blocks = list(net.blocks)
    gen = torch.Generator().manual_seed(0)
    head = nn.Linear(net.block_channels[-1], max(2, n_classes)).to(device)
    for p in net.parameters():
        p.requires_grad_(False)
    for b in blocks[first:]:
        for p in b.parameters():
            p.requires_grad_(True)
    times = []
    for n in (2, *STEP_IMAGES):  # the first step pays lazy initialisation: not timed
        x = torch.randn(n, 3, image_size, image_size, generator=gen).to(device)
        y = torch.randint(0, max(2, n_classes), (n,), generator=gen).to(device)
        with torch.no_grad():  # the frozen bottom comes from the activation cache: not timed
            h = engine.run(blocks[:first], x) if first else x
        t = time.perf_counter()
        out = head(net.layout.pool_tensor(engine.run(blocks[first:], h)))
        if first < len(blocks):
            nn.functional.cross_entropy(out, y).backward()
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    del net
    (n1, n2), (t1, t2) = STEP_IMAGES, times[1:]
    per_image = max(0.0, (t2 - t1) / (n2 - n1))
    return max(0.0, t1 - n1 * per_image), per_image


def first_trained(strategy: str, params: dict, n_blocks: int) -> int | None:
    """The lowest block a network candidate trains (its strategy's declaration); None for a probe."""
    from advisor import strategies

    return strategies.get(strategy).lowest_trained(params, n_blocks)


def estimate(strategy: str, params: dict, costs: Costs, n_blocks: int) -> float:
    """Estimated seconds of one candidate (see the module docstring); the cache's fill counts in the first
    candidate that needs it (``costs.filled`` then turns true)."""
    from advisor import strategies

    fill = 0.0 if costs.filled else costs.forward_per_image * (costs.n_train + costs.n_val)
    first = first_trained(strategy, params, n_blocks)
    if first is None:
        declared = strategies.get(strategy)
        own = declared.forward_images
        if strategy in costs.ran and declared.forward_images_again is not None:
            own = declared.forward_images_again
        return fill + costs.probe + (costs.forward_per_image * own(costs.n_train, costs.n_val) if own else 0.0)
    fixed, per_image = costs.steps[first]
    epochs = int(params.get("epochs", 10))
    batch = int(params.get("batch_size", 64))
    share = (n_blocks - first) / n_blocks  # validation runs the trained blocks; the frozen bottom is cached
    return fill + epochs * (math.ceil(costs.n_train / batch) * fixed + costs.n_train * per_image) \
        + epochs * costs.n_val * costs.forward_per_image * share


@dataclass
class Plan:
    """The candidates the check will run (with their estimates), and those a budget left out."""

    run: list[tuple[str, dict, float]]
    skipped: list[tuple[str, dict, float]]
    budget: float | None
    #: the check's rung is on: each fine-tune's estimate is for all its epochs, so the total is an upper bound
    rung: bool = False
    #: estimated seconds of the candidates before the first one that trains a network (the probes and bn_adapt), and
    #: of that first fine-tune; None when there is no fine-tune to leave out, or nothing before it
    no_fine_tune_seconds: float | None = None
    first_fine_tune_seconds: float | None = None
    #: seconds the estimate itself took (its timed steps), which a budget counts too
    overhead: float = 0.0

    @property
    def seconds(self) -> float:
        return float(sum(s for _, _, s in self.run))

    @property
    def without_fine_tunes_seconds(self) -> float | None:
        """Estimated seconds of the check without its fine-tunes, the estimate's own time included; None without one."""
        return None if self.no_fine_tune_seconds is None else self.overhead + self.no_fine_tune_seconds

    def budget_without_fine_tunes(self) -> int | None:
        """A ``--check-budget`` (whole seconds) that keeps every candidate before the first fine-tune and none after:
        the estimate's own time and those candidates' estimates, with a quarter more for a run slower than its
        estimate while that stays below what the first fine-tune would add. None when there is no such budget."""
        base = self.without_fine_tunes_seconds
        if base is None or self.first_fine_tune_seconds is None:
            return None
        roomy = math.ceil(1.25 * base)
        return roomy if roomy < base + self.first_fine_tune_seconds else math.ceil(base)


def plan(cands: list[tuple[str, dict]], costs: Costs, n_blocks: int, budget: float | None = None) -> Plan:
    """Estimate every candidate in order (cheapest first) and keep them while the running total stays within
    ``budget`` seconds (``None``: keep all); once one does not fit, it and every later one are skipped."""
    run, skipped, total = [], [], 0.0
    filled, ran = costs.filled, set(costs.ran)
    before, first_network = 0.0, None  # the estimates before the first network candidate, and its own
    for strategy, params in cands:
        est = estimate(strategy, params, costs, n_blocks)
        if first_network is None:
            if first_trained(strategy, params, n_blocks) is None:
                before += est
            else:
                first_network = est
        if skipped or (budget is not None and total + est > budget):
            skipped.append((strategy, params, est))
            continue
        run.append((strategy, params, est))
        total += est
        costs.filled = True  # later candidates read the filled cache
        costs.ran.add(strategy)
    costs.filled, costs.ran = filled, ran
    some = first_network is not None and before > 0
    return Plan(run=run, skipped=skipped, budget=budget, no_fine_tune_seconds=before if some else None,
                first_fine_tune_seconds=first_network if some else None)
