"""The bytes of an exported ONNX file by role: what a deployment must store of the network's weights, and the rest of
the file (its overhead), so that `--model-size` (docs/COSTS.md) can be checked against real files.

Each initializer is given one role, by the node that reads it:
- `weights`: a convolution's or a linear layer's weights (FP32 float32; INT8 QDQ the int8 tensor a
  DequantizeLinear reads);
- `weight_scales`: per output channel, the float32 scale and the int8 zero point of the INT8 weights;
- `biases`: FP32 the float32 biases; INT8 the int32 biases a DequantizeLinear reads;
- `bias_scales`: the float32 scale and int32 zero point of an INT8 bias. ONNX Runtime's QDQ format stores them,
  but each is the product of the input's and the weight's scales (zero point 0): a runtime derives them, so they are
  overhead, not weights;
- `activation_scales`: the scale and zero point of each quantised activation (a few bytes a tensor);
- `other`: any other initializer (a shape, a constant).
The weight bytes are `weights + weight_scales + biases`; the overhead is the file's size less them.
"""

from __future__ import annotations

import os
from pathlib import Path

ROLES = ("weights", "weight_scales", "biases", "bias_scales", "activation_scales", "other")
WEIGHT_ROLES = ("weights", "weight_scales", "biases")


def weight_bytes(model: bytes | str | os.PathLike) -> dict:
    """Bytes by role (`ROLES`) of an ONNX file (a path or its bytes), the weight bytes (`weight_bytes`), the file's
    size (`file_bytes`) and the rest (`overhead_bytes`: graph, names, metadata, bias and activation scales)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    data = model if isinstance(model, bytes) else Path(model).read_bytes()
    graph = onnx.load_from_string(data).graph
    size = {i.name: numpy_helper.to_array(i).nbytes for i in graph.initializer}
    dtype = {i.name: numpy_helper.to_array(i).dtype for i in graph.initializer}
    role: dict[str, str] = {}
    for node in graph.node:
        inputs = [name for name in node.input if name in size]
        if node.op_type == "DequantizeLinear" and node.input[0] in size:
            quantised, *qparams = node.input
            kind = "biases" if dtype[quantised] == np.int32 else "weights"
            role.setdefault(quantised, kind)
            for name in qparams:
                role.setdefault(name, "bias_scales" if kind == "biases" else "weight_scales")
        elif node.op_type in ("DequantizeLinear", "QuantizeLinear"):
            for name in inputs:
                role.setdefault(name, "activation_scales")
        elif node.op_type in ("Conv", "Gemm", "MatMul"):
            for k, name in enumerate(node.input):
                if name in size:
                    role.setdefault(name, "biases" if k == 2 else "weights")
    counts = dict.fromkeys(ROLES, 0)
    for name, nbytes in size.items():
        counts[role.get(name, "other")] += nbytes
    weights = sum(counts[r] for r in WEIGHT_ROLES)
    return {**counts, "weight_bytes": weights, "file_bytes": len(data), "overhead_bytes": len(data) - weights}
