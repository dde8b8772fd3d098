"""OpenVINO as a `Runtime`: the IR (NAME.xml and its weights, NAME.bin) converted from the ONNX file, edgenas's
metadata in the IR's rt_info, CPU sessions pinned to a thread count and a precision, and INT8 by OpenVINO's own
route.

FP32 weights stay FP32 (`save_model(..., compress_to_fp16=False)`); sessions run at `INFERENCE_PRECISION_HINT` f32
unless bf16 is asked, because on a CPU with AMX OpenVINO runs an FP32 model in bf16 by default (the demo network's
outputs moved by 0.098 and its accuracy by 0.28 points that way, issue 36). INT8: OpenVINO reads the QDQ file of
ONNX Runtime's recipe (`onnxruntime.int8_model`) into FakeQuantize operations and runs them with int8 kernels; the
IR keeps the weights as int8 constants. NNCF is not needed for these networks.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from edgenas.errors import EdgeNASError
from edgenas.files import atomic_write_bytes
from exporters.runtimes.base import Converted, Runtime

SECTION = "edgenas"  # rt_info section holding edgenas's metadata: <edgenas><arch value="..."/>...</edgenas>
HINTS = {"fp32": "f32", "bf16": "bf16"}  # --precision -> INFERENCE_PRECISION_HINT
RAN = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}  # compiled model's INFERENCE_PRECISION_HINT -> report


def _openvino():
    try:
        import openvino
    except ImportError as exc:
        raise EdgeNASError(f"OpenVINO cannot be imported ({exc}): pip install 'edgenas[openvino]'") from None
    return openvino


def _read(path: Path):
    try:
        return _openvino().Core().read_model(str(path))
    except RuntimeError as exc:  # OpenVINO raises RuntimeError (with its C++ trace) for a file it cannot read
        raise EdgeNASError(f"OpenVINO cannot read {path}: {str(exc).splitlines()[0]}") from None


def _save(model, out: Path, metadata: dict[str, str]) -> Path:
    """Write the IR `out` and its .bin with `metadata` in rt_info, each file atomically (the .bin first)."""
    ov = _openvino()
    for key, value in metadata.items():
        model.set_rt_info(value, [SECTION, key.removeprefix("edgenas.")])
    with tempfile.TemporaryDirectory() as folder:
        xml = Path(folder) / "model.xml"
        ov.save_model(model, str(xml), compress_to_fp16=False)
        atomic_write_bytes(out.with_suffix(".bin"), xml.with_suffix(".bin").read_bytes())
        return atomic_write_bytes(out, xml.read_bytes())


def _convert(onnx_path: Path, what: Path):
    try:
        return _openvino().convert_model(str(onnx_path))
    except Exception as exc:  # the converter raises its own types; the first line says what it could not convert
        raise EdgeNASError(f"OpenVINO cannot convert {what}: {str(exc).splitlines()[0]}") from None


class OvSession:
    """A compiled model and one inference request: NCHW float32 images in, logits out; `how` it runs."""

    layout = "NCHW"

    def __init__(self, compiled, precision: str, how: str):
        self.compiled, self.precision, self.how = compiled, precision, how
        self.request = compiled.create_infer_request()

    def run(self, images: np.ndarray) -> np.ndarray:
        self.request.infer({0: np.ascontiguousarray(images, np.float32)}, share_inputs=True)
        return self.request.get_output_tensor(0).data.copy()


class OvPiece:
    """A compiled piece and one inference request with a fixed random NCHW input in place: `call` runs it once."""

    def __init__(self, compiled, input_shape: tuple[int, int, int], precision: str):
        self.compiled, self.precision = compiled, precision
        self.request = compiled.create_infer_request()
        images = np.random.default_rng(0).standard_normal((1, *input_shape)).astype(np.float32)
        self.request.set_input_tensor(_openvino().Tensor(images))
        self.call = self.request.infer


class OpenVINO(Runtime):
    name, suffix, modules, extra = "openvino", ".xml", ("openvino",), "openvino"
    method = "openvino.convert_model from the ONNX file, save_model(compress_to_fp16=False): FP32 weights"
    precisions = ("fp32", "bf16")

    def version(self) -> str:
        from importlib.metadata import version

        return version("openvino")  # "2026.4.1"; openvino.__version__ adds the build and branch

    def convert(self, model, onnx_path: Path, out: Path, metadata: dict[str, str]) -> Converted:
        _save(_convert(onnx_path, out), out, metadata)
        return Converted(out, self.name, self.version(), self.precision, self.method)

    def quantize(self, model, fp32: Converted, calibration: list[np.ndarray], out: Path) -> Converted:
        """OpenVINO's own route: the network exported again to ONNX as the FP32 file was (same opset), quantised by
        ONNX Runtime's recipe into QDQ, converted to FakeQuantize with int8 weights."""
        from exporters.onnx_export import INPUT, OUTPUT, to_onnx
        from exporters.runtimes.onnxruntime import RECIPE, int8_model

        metadata = self.metadata(fp32.path)
        opset = json.loads(metadata["edgenas.exported_with"])["opset"]
        resolution = json.loads(metadata["edgenas.preprocessing"])["resolution"]
        onnx = to_onnx(model, (3, resolution, resolution), opset=opset, dynamic_batch=True, input_name=INPUT,
                       output_name=OUTPUT)
        with tempfile.TemporaryDirectory() as folder:
            qdq = Path(folder) / "int8.onnx"
            qdq.write_bytes(int8_model(onnx, calibration, INPUT, what=str(out)))
            converted = _convert(qdq, out)
        method = f"{RECIPE}, read by openvino.convert_model into FakeQuantize with int8 weights"
        metadata["edgenas.quantization"] = f"{method}, calibrated on {sum(map(len, calibration))} training images"
        _save(converted, out, metadata)
        return Converted(out, self.name, self.version(), "int8", method)

    def open(self, path: Path, threads: int, batch: int | None = None) -> OvSession:
        """CPU, `threads` inference threads, one stream, the latency hint, and the precision asked; with `batch`, the
        model reshaped to batch x 3 x R x R (static shapes: OpenVINO's fastest at batch 1)."""
        model, shape = _read(path), "dynamic batch"
        if batch is not None:
            dims = [batch, *(d.get_length() for d in list(model.inputs[0].get_partial_shape())[1:])]
            model.reshape({model.inputs[0].get_any_name(): dims})
            shape = f"model reshaped to {'x'.join(map(str, dims))}"
        compiled, ran = self._compile(model, threads, str(path))
        how = (f"{threads} inference thread(s), 1 stream, LATENCY hint, INFERENCE_PRECISION_HINT "
               f"{HINTS[self.precision]} (ran {ran}), CPU plugin, {shape}")
        return OvSession(compiled, "int8" if _int8_constants(model) else RAN.get(ran, ran), how)

    def _compile(self, model, threads: int, what: str):
        """The model compiled for the CPU as every session is (`piece_settings`), and the precision it runs at."""
        properties = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
                      "INFERENCE_PRECISION_HINT": HINTS[self.precision]}
        try:
            compiled = _openvino().Core().compile_model(model, "CPU", properties)
        except RuntimeError as exc:
            raise EdgeNASError(f"OpenVINO cannot compile {what}: {str(exc).splitlines()[0]}") from None
        return compiled, str(compiled.get_property("INFERENCE_PRECISION_HINT").to_string())

    def piece_model(self, module, input_shape: tuple[int, int, int], int8: bool = False,
                    calibration: list[np.ndarray] | None = None):
        """The piece exported to ONNX as a network is (batch 1, as a session opened for latency reshapes it), with
        `int8` quantised by ONNX Runtime's recipe into QDQ, then converted: an `openvino.Model`."""
        from exporters.onnx_export import to_onnx
        from exporters.runtimes.onnxruntime import int8_model
        from exporters.settings import ExportSettings

        self.require()
        onnx = to_onnx(module, input_shape, opset=ExportSettings.opset)
        if int8:
            onnx = int8_model(onnx, calibration or [], "input", what="the piece")
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "piece.onnx"
            path.write_bytes(onnx)
            return _convert(path, "the piece")

    def open_piece(self, model, input_shape: tuple[int, int, int], threads: int) -> OvPiece:
        compiled, ran = self._compile(model, threads, "the piece")
        return OvPiece(compiled, input_shape, "int8" if _int8_constants(model) else RAN.get(ran, ran))

    def save_piece(self, model, out: Path) -> list[Path]:
        """The IR as `save_model` writes it, FP32 weights kept (no FP16 compression), as `convert` writes a network."""
        _save(model, out, {})
        return self.files(out)

    def piece_settings(self, int8: bool) -> dict:
        settings = {"device": "CPU", "num_streams": 1, "performance_hint": "LATENCY",
                    "inference_precision_hint": HINTS[self.precision], "converted": "openvino.convert_model from "
                    "the ONNX file (torch.onnx.export, batch 1)"}
        if int8:
            from exporters.runtimes.onnxruntime import RECIPE

            settings["quantization"] = f"{RECIPE}, read by openvino.convert_model into FakeQuantize"
        return settings

    def int8_weights(self, path: Path) -> int:
        """Constants of the IR stored as i8 or u8: the weights of the FakeQuantize'd layers."""
        return _int8_constants(_read(path))

    def files(self, path: Path) -> list[Path]:
        return [path, path.with_suffix(".bin")]

    def metadata(self, path: Path) -> dict[str, str]:
        model = _read(path)
        if not model.has_rt_info([SECTION]):
            return {}
        keys = model.get_rt_info([SECTION]).astype(dict)
        return {f"edgenas.{key}": model.get_rt_info([SECTION, key]).astype(str) for key in keys}


def _int8_constants(model) -> int:
    small = {"i8", "u8"}
    return sum(1 for op in model.get_ops()
               if op.get_type_name() == "Constant" and op.get_output_element_type(0).get_type_name() in small)
