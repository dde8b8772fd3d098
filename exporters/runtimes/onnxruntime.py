"""ONNX Runtime as a `Runtime`: the exported ONNX file itself, sessions with pinned threads, and the INT8 recipe.

Sessions run sequentially with every graph optimisation on and a fixed intra-op thread count, so a latency is a
property of the model, the runtime and the thread count. Timing keeps one session alive at a time: with two
threads, idle sessions' spinning worker threads were seen to slow every measurement by 26-48%.

`int8_model` is the INT8 recipe (static, QDQ, per-channel weights), shared with the profiler (`edgenas profile
--int8` times pieces quantised by it) and with OpenVINO, which converts the QDQ file it writes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from edgenas.errors import EdgeNASError
from edgenas.files import atomic_write_bytes
from exporters.onnx_export import INPUT, onnx_metadata
from exporters.runtimes.base import Converted, Runtime

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "coreml": "CoreMLExecutionProvider",
             "openvino": "OpenVINOExecutionProvider", "dml": "DmlExecutionProvider"}

RECIPE = ("static INT8, QDQ, per-channel weights, QUInt8 activations, QInt8 weights in 7 bits (reduce_range; ONNX "
          "Runtime quantize_static)")


def provider_name(provider: str) -> str:
    """`cpu` -> `CPUExecutionProvider`, checked against what this onnxruntime build offers."""
    import onnxruntime as ort

    name = PROVIDERS.get(provider.lower(), provider)
    available = ort.get_available_providers()
    if name not in available:
        raise EdgeNASError(f"execution provider {provider!r} is not available in this onnxruntime; available: "
                           f"{', '.join(available)}")
    return name


def make_session(model: bytes | str, threads: int = 1, provider: str = "cpu"):
    """An InferenceSession for an ONNX file or bytes, pinned to `threads` intra-op threads."""
    import onnxruntime as ort

    if threads < 1:
        raise EdgeNASError(f"bad thread count {threads}: expected 1 or more")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model, options, providers=[provider_name(provider)])
    except EdgeNASError:
        raise
    except Exception as exc:  # onnxruntime raises its own exception types for files it cannot load
        what = model if isinstance(model, str) else "model"
        raise EdgeNASError(f"onnxruntime cannot load {what}: {str(exc).splitlines()[0]}") from None


def int8_model(fp32: bytes | str | os.PathLike, calibration: list[np.ndarray], input_name: str = INPUT,
               what: str | None = None) -> bytes:
    """The INT8 model (serialised ONNX) of an FP32 one: the one recipe behind `edgenas export --int8` and
    `edgenas profile --int8`, so that a table times exactly what an export ships.

    The FP32 graph is first pre-processed as ONNX Runtime recommends (shape inference, graph optimisation, so that
    batch norm is folded and biases are initialisers); without it the INT8 MobileNetV2 ran slower than FP32 here.
    `calibration` holds the batches fed to `input_name` to choose the activations' scales; `what` names the model in
    an error (default: the file, or "model").
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration)

        def get_next(self):
            item = next(self.items, None)
            return None if item is None else {input_name: item}

    what = what or (str(fp32) if not isinstance(fp32, bytes) else "model")
    with tempfile.TemporaryDirectory() as folder:
        source, prepared, quantized = (Path(folder) / name for name in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        if isinstance(fp32, bytes):
            source.write_bytes(fp32)
        else:
            source = Path(fp32)
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            # Weights in 7 bits: on x86 CPUs without VNNI (AVX2 alone: Zen 1-3, Intel before Cascade Lake) ONNX
            # Runtime's U8S8 kernels add pairs of 8-bit products in 16 bits, which saturate; a make demo network lost
            # 9.75 points of accuracy that way on a Zen 3 EPYC, and none with 7-bit weights (docs/BENCHMARKS.md).
            quantize_static(str(prepared), str(quantized), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        except Exception as exc:  # onnxruntime's quantiser raises many types; say which step failed
            raise EdgeNASError(f"INT8 quantisation of {what} failed: {str(exc).splitlines()[0]}") from None
        return quantized.read_bytes()


def quantized_file(fp32: Path, calibration: list[np.ndarray]) -> bytes:
    """The INT8 ONNX file of the FP32 file `fp32` (`int8_model`), with its metadata and the recipe's."""
    import onnx

    proto = onnx.load_from_string(int8_model(fp32, calibration))
    del proto.metadata_props[:]
    for key, value in onnx_metadata(fp32).items():
        proto.metadata_props.add(key=key, value=value)
    proto.metadata_props.add(key="edgenas.quantization",
                             value=f"{RECIPE}, calibrated on {sum(len(c) for c in calibration)} training images")
    return proto.SerializeToString()


class OrtSession:
    """An ONNX Runtime session of an exported file, taking NCHW images and giving logits; `how` it runs."""

    layout = "NCHW"

    def __init__(self, session, precision: str, threads: int):
        self.session, self.precision = session, precision
        self.how = f"{threads} intra-op thread(s)"

    def run(self, images: np.ndarray) -> np.ndarray:
        return self.session.run(None, {INPUT: images})[0]


class OnnxRuntime(Runtime):
    name, suffix, modules, extra = "onnxruntime", ".onnx", ("onnxruntime", "onnx"), None
    method = "torch.onnx.export (TorchScript exporter), one file with edgenas's metadata, onnx.checker full check"

    def version(self) -> str:
        import onnxruntime

        return onnxruntime.__version__

    def convert(self, model, onnx_path: Path, out: Path, metadata: dict[str, str]) -> Converted:
        """The ONNX file is this runtime's file: copied to `out` when written elsewhere (it holds `metadata`)."""
        if Path(onnx_path).resolve() != Path(out).resolve():
            atomic_write_bytes(out, Path(onnx_path).read_bytes())
        return Converted(Path(out), self.name, self.version(), "fp32", self.method)

    def quantize(self, model, fp32: Converted, calibration: list[np.ndarray], out: Path) -> Converted:
        path = atomic_write_bytes(out, quantized_file(fp32.path, calibration))
        return Converted(path, self.name, self.version(), "int8", RECIPE)

    def open(self, path: Path, threads: int, batch: int | None = None) -> OrtSession:
        """A session of the file (its batch axis is dynamic: `batch` changes nothing)."""
        session = make_session(str(path), threads)  # first: its error says when the file is not ONNX
        return OrtSession(session, "int8" if self.int8_weights(path) else "fp32", threads)

    def int8_weights(self, path: Path) -> int:
        """INT8 (or UINT8) initialisers that a DequantizeLinear node turns into weights."""
        import onnx

        graph = onnx.load(str(path)).graph
        dequantized = {node.input[0] for node in graph.node if node.op_type == "DequantizeLinear"}
        small = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
        return sum(1 for t in graph.initializer if t.name in dequantized and t.data_type in small)

    def metadata(self, path: Path) -> dict[str, str]:
        return onnx_metadata(path)

    def report_path(self, path: Path) -> Path:
        return path.with_suffix(".report.json")
