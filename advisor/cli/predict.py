"""``advisor predict``: predict every image of a dataset with a trained model
(advisor.predict: advisor.deploy.predict.predict)."""

from __future__ import annotations

import sys

from advisor.cli import _common

UNREADABLE = ("fail", "skip")  # an image that cannot be read: stop with its name, or leave it out and list it

HELP = "predict every image of a dataset with a trained model"
PARENTS = ("source", "tracking")
DESCRIPTION = ("Predict with a model saved by advisor train --save, an MLflow model URI "
               "(runs:/RUN_ID/model, models:/NAME/VERSION) or a study's best model "
               "(--experiment NAME). One row per image: its path or index, the predicted "
               "class and the top-k probabilities. With labels: accuracy, macro-F1, a "
               "per-class table and the confusion matrix.")


def options(pr) -> None:
    pr.add_argument("data", metavar="DATA",
                    help="any DATASET form of analyze, or a folder of unlabelled images")
    pr.add_argument("--out", default=None, metavar="PATH", help="write the predictions: .csv or .parquet")
    pr.add_argument("--top-k", type=int, default=3, metavar="K", help="probabilities of the K best classes (3)")
    pr.add_argument("--forward-batch", "--batch-size", dest="forward_batch", type=int, default=64, metavar="B",
                    help="images per forward pass (default 64), as analyze --forward-batch")
    _common.add_device(pr)
    pr.add_argument("--unreadable", default=UNREADABLE[0], choices=list(UNREADABLE),
                    help="an image that cannot be read: stop with its name (fail, default) or leave it out and "
                         "list it (skip)")
    pr.add_argument("--seed", type=int, default=0, help="seed of NAME:K subsets (default 0)")
    _common.add_labels(pr)
    _common.add_json(pr, "the metrics (and failures)")
    _common.add_quiet(pr)


def run(args) -> int:
    from advisor.deploy.predict import predict, predictions_output
    from advisor.report.terminal import print_prediction
    from advisor.outputs import Output, check_outputs
    from advisor.serialize import json_text

    console, err = _common.consoles()
    if args.forward_batch < 1:
        raise _common.usage(f"bad --forward-batch {args.forward_batch}: use a positive integer, e.g. 64")
    if args.top_k < 1:
        raise _common.usage(f"bad --top-k {args.top_k}: use a positive integer, e.g. 3")
    check_outputs(("--out", args.out), ("--json", args.json))
    if args.out and not args.out.lower().endswith((".csv", ".parquet", ".pq")):
        raise _common.usage(f"unknown output format for --out {args.out}", "end it with .csv or .parquet")
    with _common.progress_bar(err, args.quiet) as progress:
        result = predict(args.model, args.data, **_common.model_args(args), batch_size=args.forward_batch,
                         device=args.device,
                         skip_unreadable=args.unreadable == "skip", seed=args.seed,
                         label_columns=_common.labels(args),
                         progress=lambda done, total: progress("predict", done, total))
    print_prediction(result, console, args.top_k, show_rows=args.out is None)
    for f in result.failures:  # one plain line each (no wrapping), for people and for grep
        sys.stderr.write(f"advisor: skipped: {' '.join(str(f['reason']).split())}\n")
    written = [(predictions_output(result, args.out, args.top_k, "--out"),
                f"wrote {args.out} ({len(result.items)} rows)")] if args.out else []
    if args.json:
        written.append((Output(args.json, json_text({
            "model": result.model, "dataset": result.dataset, "n": len(result.items),
            "images_per_second": result.images_per_second, "metrics": result.metrics,
            "metrics_note": result.metrics_note, "failures": result.failures}), "--json"), f"wrote {args.json}"))
    _common.write_all(console, *written)
    return 0
