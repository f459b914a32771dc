"""ONNX (opset 17, the batch axis dynamic), run by ONNX Runtime on the CPU with one thread."""

from __future__ import annotations


def write(model, x, buf) -> None:
    import torch

    torch.onnx.export(model, (x,), buf, dynamo=False, input_names=["image"], output_names=["logits"],
                      opset_version=17, dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})


def run(source, arr):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    source = source if isinstance(source, bytes) else str(source)
    sess = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    return sess.run(["logits"], {"image": arr})[0]
