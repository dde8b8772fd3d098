"""ONNX export of edgenas modules: eval mode, one self-contained file, a named input and output; and the exported
model file, which also describes itself in its metadata (the architecture JSON, the space hash, the class names and
the preprocessing: resolution, mean, std; `metadata.py`), so that `edgenas predict` can use it without edgenas's
PyTorch code. ONNX Runtime runs this file; OpenVINO converts it (`runtimes/`).

Uses PyTorch's TorchScript-based exporter (`dynamo=False`): on this project's machine it exported MobileNetV2 in
0.8 s against 15 s for the dynamo exporter, and 0.025 s against 1.35 s for a single block, which decides the
profiler's cost (hundreds of blocks); both give the same ONNX operators for these convolutional networks.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from edgenas.errors import EdgeNASError
from edgenas.files import atomic_write_bytes
from exporters.settings import ExportSettings

INPUT, OUTPUT = "input", "logits"  # the exported file's input (N x 3 x R x R float, dynamic batch) and output


def to_onnx(module, input_shape: tuple[int, ...], *, opset: int = ExportSettings.opset, dynamic_batch: bool = False,
            input_name: str = "input", output_name: str = "output") -> bytes:
    """Serialise `module` (in eval mode) for inputs of `input_shape` (no batch axis) to ONNX bytes."""
    import torch

    was_training = module.training
    module.eval()
    buffer = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                module, (torch.zeros(1, *input_shape),), buffer, dynamo=False, opset_version=opset,
                input_names=[input_name], output_names=[output_name], do_constant_folding=True,
                dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}} if dynamic_batch else None,
            )
    finally:
        module.train(was_training)
    return buffer.getvalue()


def write_model(model, arch, describe: dict, out: Path, opset: int) -> Path:
    """Write a run's network to `out` with its metadata (`metadata.file_metadata`), atomically, once the ONNX checker
    accepts it: the file ONNX Runtime runs, and the one the other runtimes convert."""
    import onnx

    from edgenas.version import __version__
    from exporters.metadata import file_metadata

    shape = (3, arch.resolution, arch.resolution)
    proto = onnx.load_from_string(to_onnx(model, shape, opset=opset, dynamic_batch=True, input_name=INPUT,
                                          output_name=OUTPUT))
    for key, value in file_metadata(arch, describe, opset).items():
        proto.metadata_props.add(key=key, value=value)
    # Who made the file: edgenas's version (torch.onnx wrote torch's there, "edgenas 2.14.1"); the exporter's in
    # edgenas.exported_with.
    proto.producer_name, proto.producer_version = "edgenas", __version__
    onnx.checker.check_model(proto, full_check=True)
    return atomic_write_bytes(out, proto.SerializeToString())


def onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of an ONNX file (`metadata_props`), read without loading its weights into Python objects."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others for files that are not ONNX
        raise EdgeNASError(f"{path} is not an ONNX file: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    return {p.key: p.value for p in proto.metadata_props}
