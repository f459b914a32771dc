"""``advisor export``: write a trained model as ONNX or TorchScript, its preprocessing beside it
(advisor.export: advisor.deploy.exporting.export)."""

from __future__ import annotations

from advisor.cli import _common

HELP = "export a model to ONNX or TorchScript, its preprocessing beside it"
PARENTS = ("source", "tracking")
DESCRIPTION = ("Write MODEL (as for predict) as an ONNX or TorchScript file taking "
               "preprocessed images [N, 3, S, S] and returning the logits of the classes; "
               "PATH.preprocess.json holds the preprocessing and the class names.")


def options(ex) -> None:
    from advisor.deploy.formats import FORMATS

    ex.add_argument("--format", required=True, choices=list(FORMATS),
                    help=" or ".join(f"{f.name}" + (f" (needs {', '.join(f.needs)}: {f.install})" if f.needs else "")
                                     for f in FORMATS.values()))
    ex.add_argument("--out", required=True, metavar="PATH", help="the exported model file")


def run(args) -> int:
    from advisor.deploy.exporting import export
    from advisor.report.terminal import make_console
    from advisor.outputs import check_outputs

    console = make_console()
    check_outputs(("--out", args.out), ("--out", f"{args.out}.preprocess.json"))  # the model and its JSON
    out = export(args.model, args.format, args.out, **_common.model_args(args), flag="--out")
    console.print(f"wrote {out.model_path} ({args.format}) and {out.preprocess_path}")
    console.print(f"largest difference from PyTorch on {out.n_checked} images: {out.max_abs_diff:.2e} "
                  f"(tolerance {out.tolerance:.2e})")
    return 0
