"""``bn_adapt``: every BatchNorm layer's running statistics re-estimated on the target's training split (no
gradient step: one pass, a cumulative average), then a probe on the adapted features (Li et al. 2017, AdaBN;
Schneider et al. 2020). A network without BatchNorm (a ViT) refuses it."""

from advisor.strategies._base import BEST_SVM_BLOCK, Param, Strategy
from advisor.strategies._constraints import BlockRef, Interval, Options

BN_ADAPT = Strategy(
    name="bn_adapt",
    kind="probe",
    params=(
        Param("probe", Options(("linear_probe", "svm_early")), "linear_probe",
              help="the probe fitted on the adapted features", example='"svm_early"', flag=True,
              search={"type": "categorical", "choices": ["linear_probe", "svm_early"]}),
        Param("block", BlockRef(), None, help="block whose adapted features the probe reads (default: linear_probe the last, svm_early 2/3 depth)",
              example='"60%"', default_text="the probe's"),
        Param("C", Interval(float, 0.0, None, "neither"), None, help="the probe's inverse regularisation strength (default: linear_probe 1.0, svm_early 0.1)",
              example="1e-3", flag=True, default_text="the probe's",
              search={"type": "float", "low": 1e-4, "high": 1e2, "log": True}),
        Param("max_iter", Interval(int, 1), None, help="solver iterations at most (default: linear_probe 1000, svm_early 5000)", example="1000",
              default_text="the probe's"),
        Param("adapt_batch_size", Interval(int, 2), 64, help="images per batch of the statistics pass",
              unit="images", example="64"),
    ),
    runner="advisor.train._bn_adapt:run_bn_adapt",
    backbone_check="advisor.train._bn_adapt:check_has_batchnorm",
    summary="no gradient step: every BatchNorm's statistics re-estimated on the train split, then the probe "
            "on the adapted features; needs BatchNorm",
    # when the check offers the shift's candidates: the linear probe on the adapted last block, at each C; with
    # ``bn_svm`` also the early SVM (C 1.0) on the block where the plain early SVM did best
    check=lambda b: ([{"probe": "linear_probe", "C": c} for c in b.probe_c]
                     + ([{"probe": "svm_early", "block": BEST_SVM_BLOCK, "C": 1.0}] if b.bn_svm else [])) if b.shift
    else [],
    # its statistics pass over the train split, then the adapted features of train and validation
    forward_images=lambda n_train, n_val: 2 * n_train + n_val,
    # a later run on the same context reuses the adaptation (advisor.train._bn_adapt.reused) and the first run's
    # features: its feature pass kept every adapted block's while they fit in ALL_BLOCKS_MAX_BYTES, and the check's
    # first bn_adapt run adapts every block (the linear probe reads the last), so a later one in the check passes no
    # image (up to SHIFT_MAX_TRAIN images, where the shift's candidates run, MobileNetV2's pooled blocks take
    # about 25 MB)
    forward_images_again=lambda n_train, n_val: 0,
)
