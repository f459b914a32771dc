"""``advisor reference``: store a source sample's per-block moments beside the weights
(advisor.api.reference)."""

from __future__ import annotations

from advisor.cli import _common

HELP = ("store a source sample's per-block moments beside the weights, so analyze measures the shift of "
        "networks without BatchNorm (ViTs)")
PARENTS = ("data",)
DESCRIPTION = ("Run a sample of the SOURCE domain (DATASET: any dataset form, labels ignored; "
               "all splits) through the network once and store every block's per-channel "
               "output moments, keyed by the weights' digest and the image size, in "
               "$ADVISOR_REFERENCE_DIR (default: advisor-reference in the torch hub "
               "checkpoint folder). analyze then reports the shift against them.")


def options(rf) -> None:
    rf.add_argument("--sample", type=int, default=1000, metavar="N",
                    help="at most N images of DATASET, stratified (default 1000)")
    rf.add_argument("--forward-batch", type=int, default=64, metavar="B", help="images per forward pass (default 64)")


def run(args) -> int:
    from advisor.api import reference
    from advisor.report.terminal import make_console

    console = make_console()
    r = reference(args.dataset, args.model, sample=args.sample, batch_size=args.forward_batch,
                  **_common.context_args(args))
    console.print(f"wrote reference moments of {r.n_images} images of {r.dataset} through {r.model} ({r.weights}) "
                  f"at {r.image_size}px: {r.path} ({r.seconds:.1f} s)")
    return 0
