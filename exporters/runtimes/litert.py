"""LiteRT (TensorFlow Lite): the .tflite file of a run's network, its INT8 file, and sessions that run either on
NCHW float32 images. Measured choices (docs/BENCHMARKS.md):

- Converter: litert-torch, from the PyTorch network (`litert_convert`, which also converts a space's pieces for
  `edgenas profile --backend litert`: `piece_model`). onnx2tf (from the ONNX file) needs TensorFlow, and its INT8
  file of edgenas's QDQ graph was silently wrong (float, chance accuracy). litert-torch's FP32 file of the demo
  network agrees with PyTorch to 1.4e-6 of the largest logit, every answer the same.
- Layout: the file's input is NHWC (1 x R x R x 3), what LiteRT runs natively and an Android app feeds (an NCHW
  input costs the graph a TRANSPOSE). It is recorded in the metadata (`preprocessing.layout`); a session takes NCHW
  and transposes, so the verifier never knows. The file's batch is 1, resized by a session.
- INT8: litert-torch's own route, its PT2E quantiser (per-channel int8 weights, histogram-observed int8 activations,
  int8 input and output, a few float additions left inside squeeze-excitation), calibrated on training images:
  -0.28 points on the demo. ai-edge-quantizer's static recipe on the FP32 file (min-max ranges) lost 3.3 points
  there, beyond the 1-point gate. A session quantises the input and dequantises the logits.
- Metadata: edgenas's keys are entries of the flatbuffer's own `metadata` table (name -> buffer) of the TFLite
  schema, which LiteRT's tools keep: no sidecar. (TFLite Support's metadata, tflite-support, is archived.)
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np

from edgenas.errors import EdgeNASError
from edgenas.files import atomic_write_bytes
from exporters.runtimes.base import Converted, Runtime
from exporters.runtimes.litert_convert import first_line as _first_line
from exporters.runtimes.litert_convert import fp32_flatbuffer, int8_flatbuffer, quiet_native_logs

LAYOUT = "NHWC"
PREFIX = "edgenas."  # the metadata entries edgenas writes and reads; TFLite's own ("min_runtime_version") stay
INT8 = 9  # TensorType.INT8 in the TFLite schema
INT8_RECIPE = ("static INT8 by litert-torch's PT2E quantiser: int8 weights per channel (symmetric), int8 "
               "activations (histogram observers), int8 input and output")


class LiteRT(Runtime):
    """LiteRT on the CPU (XNNPACK), files converted and quantised by litert-torch."""

    name = "litert"
    suffix = ".tflite"
    modules = ("ai_edge_litert", "litert_torch", "torchao")
    extra = "litert"
    method = "litert-torch from the PyTorch network, NHWC input, batch 1 (resized by the session)"
    from_onnx = False

    def version(self) -> str:
        return _version("ai-edge-litert")

    def convert(self, model, onnx_path: Path, out: Path, metadata: dict[str, str]) -> Converted:
        self.require()
        preprocessing = _json(metadata, "edgenas.preprocessing")
        resolution = int(preprocessing["resolution"])
        flat = fp32_flatbuffer(model, (3, resolution, resolution))
        made = {"litert-torch": _version("litert-torch"), "layout": LAYOUT}
        metadata = {**metadata, "edgenas.preprocessing": json.dumps({**preprocessing, "layout": LAYOUT}),
                    "edgenas.converted_with": json.dumps(made)}
        atomic_write_bytes(out, with_metadata(flat, metadata))
        method = f"{self.method}; litert-torch {made['litert-torch']}"
        return Converted(Path(out), self.name, self.version(), "fp32", method)

    def quantize(self, model, fp32: Converted, calibration: list[np.ndarray], out: Path) -> Converted:
        self.require()
        images = sum(len(batch) for batch in calibration)
        if not images:
            raise EdgeNASError(f"cannot quantise {fp32.path}: no calibration images")
        metadata = self.metadata(Path(fp32.path))
        resolution = int(_json(metadata, "edgenas.preprocessing")["resolution"])
        flat = int8_flatbuffer(model, (3, resolution, resolution), calibration)
        metadata["edgenas.quantization"] = f"{INT8_RECIPE}, calibrated on {images} training images"
        atomic_write_bytes(out, with_metadata(flat, metadata))
        method = f"{INT8_RECIPE}; litert-torch {_version('litert-torch')}, torchao {_version('torchao')}"
        return Converted(Path(out), self.name, self.version(), "int8", method)

    def open(self, path: Path, threads: int, batch: int | None = None) -> LiteRTSession:
        return LiteRTSession(Path(path), threads, batch)

    def int8_weights(self, path: Path) -> int:
        return count_int8_weights(_read(Path(path)), str(path))

    def metadata(self, path: Path) -> dict[str, str]:
        return read_metadata(_read(Path(path)), str(path))

    def piece_model(self, module, input_shape: tuple[int, int, int], int8: bool = False,
                    calibration: list[np.ndarray] | None = None) -> bytes:
        """The piece's flatbuffer, NHWC in and (for a feature map) out, as activations flow inside a LiteRT graph
        (`litert_convert`)."""
        self.require()
        if int8:
            return int8_flatbuffer(module, input_shape, calibration or [], what="the piece")
        return fp32_flatbuffer(module, input_shape, what="the piece")

    def open_piece(self, model: bytes, input_shape: tuple[int, int, int], threads: int) -> LiteRTPiece:
        return LiteRTPiece(model, threads)

    def save_piece(self, model: bytes, out: Path) -> list[Path]:
        return [atomic_write_bytes(out, model)]

    def piece_settings(self, int8: bool) -> dict:
        settings = {"kernels": "LiteRT's default CPU kernels (XNNPACK)", "converter": f"litert-torch "
                    f"{_version('litert-torch')}", "layout": "NHWC input, and NHWC output where a feature map"}
        return {**settings, "quantization": INT8_RECIPE} if int8 else settings


class LiteRTPiece:
    """A LiteRT interpreter of a piece's flatbuffer pinned to `threads` threads, its NHWC input set once (random,
    quantised for an int8 input): `call` invokes it."""

    def __init__(self, flat: bytes, threads: int):
        quiet_native_logs()
        from ai_edge_litert.interpreter import Interpreter

        try:
            self._interpreter = Interpreter(model_content=flat, num_threads=threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:  # the interpreter's errors for a file it cannot load
            raise EdgeNASError(f"LiteRT cannot load the piece: {_first_line(exc)}") from None
        detail = self._interpreter.get_input_details()[0]
        images = np.random.default_rng(0).standard_normal(detail["shape"]).astype(np.float32)
        self._interpreter.set_tensor(detail["index"], _to_input(images, detail))
        self.precision = "int8" if count_int8_weights(flat, "the piece") else "fp32"
        self.call = self._interpreter.invoke


class LiteRTSession:
    """A LiteRT interpreter of one file, pinned to `threads` threads: `run` takes NCHW float32 images, and gives
    float32 logits, whatever the file's layout and input and output types."""

    def __init__(self, path: Path, threads: int, batch: int | None = None):
        quiet_native_logs()
        from ai_edge_litert.interpreter import Interpreter

        if threads < 1:
            raise EdgeNASError(f"bad thread count {threads}: expected 1 or more")
        flat = _read(path)
        metadata = read_metadata(flat, str(path))  # refuses a file that is not .tflite, in one line
        try:
            self._interpreter = Interpreter(model_content=flat, num_threads=threads)
        except (ValueError, RuntimeError) as exc:  # the interpreter's errors for a file it cannot load
            raise EdgeNASError(f"LiteRT cannot load {path}: {_first_line(exc)}") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        layout = json.loads(metadata.get("edgenas.preprocessing", "{}")).get("layout")
        self.layout = layout or ("NCHW" if self._input["shape"][1] == 3 else LAYOUT)
        self.precision = "int8" if count_int8_weights(flat, str(path)) else "fp32"
        self.how = f"{threads} thread(s), LiteRT's default CPU kernels (XNNPACK), {self.layout} input"
        self._shape: tuple[int, ...] | None = None
        if batch is not None:
            self._resize((batch, 3, self._input["shape"][2], self._input["shape"][2]))

    def _resize(self, nchw: tuple[int, ...]) -> None:
        n, c, h, w = nchw
        shape = [n, h, w, c] if self.layout == "NHWC" else [n, c, h, w]
        try:
            self._interpreter.resize_tensor_input(self._input["index"], shape)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:  # the interpreter's errors for a shape it cannot run
            raise EdgeNASError(f"LiteRT cannot run a batch of shape {tuple(nchw)}: {_first_line(exc)}") from None
        self._shape = tuple(nchw)

    def run(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] != 3:
            raise EdgeNASError(f"bad input shape {images.shape}: expected N x 3 x R x R (NCHW)")
        if images.shape != self._shape:
            self._resize(images.shape)
        if self.layout == "NHWC":
            images = images.transpose(0, 2, 3, 1)
        self._interpreter.set_tensor(self._input["index"], _to_input(np.ascontiguousarray(images), self._input))
        self._interpreter.invoke()
        logits = self._interpreter.get_tensor(self._output["index"])
        if self._output["dtype"] == np.int8:  # a quantised output: back to float logits
            scale, zero_point = self._output["quantization"]
            return (logits.astype(np.float32) - zero_point) * np.float32(scale)
        return logits.copy()


def _to_input(images: np.ndarray, detail: dict) -> np.ndarray:
    """The images in the input's type: quantised to int8 (round to nearest, saturate) for an int8 input."""
    if detail["dtype"] != np.int8:
        return images
    scale, zero_point = detail["quantization"]
    return np.clip(np.rint(images / np.float32(scale)) + zero_point, -128, 127).astype(np.int8)


def with_metadata(flat: bytes, metadata: dict[str, str]) -> bytes:
    """The flatbuffer with `metadata` as entries of its `metadata` table (UTF-8 buffers); entries of the same names
    are replaced, TFLite's own kept."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flat))
    model.metadata = [entry for entry in model.metadata or [] if _text(entry.name) not in metadata]
    for key, value in metadata.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(value.encode(), dtype=np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = key, len(model.buffers) - 1
        model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_metadata(flat: bytes, what: str) -> dict[str, str]:
    """The file's edgenas metadata entries (those named `edgenas.*`), read without unpacking the weights."""
    model = _root(flat, what)
    entries = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        name = _text(entry.Name())
        if name.startswith(PREFIX):
            buffer = model.Buffers(entry.Buffer())
            data = flat[buffer.Offset():buffer.Offset() + buffer.Size()] if buffer.Offset() > 1 else (
                buffer.DataAsNumpy().tobytes() if buffer.DataLength() else b"")
            entries[name] = data.decode()
    return entries


def count_int8_weights(flat: bytes, what: str) -> int:
    """How many constant tensors (a buffer with data, inline or past the flatbuffer) of the main graph are int8."""
    model = _root(flat, what)
    graph = model.Subgraphs(0)
    tensors = [graph.Tensors(i) for i in range(graph.TensorsLength())]
    return sum(1 for tensor in tensors if tensor.Type() == INT8
               and (model.Buffers(tensor.Buffer()).DataLength() or model.Buffers(tensor.Buffer()).Size()))


def _root(flat: bytes, what: str):
    from ai_edge_litert import schema_py_generated as schema

    if len(flat) < 8 or flat[4:8] != b"TFL3":
        raise EdgeNASError(f"{what} is not a LiteRT (.tflite) file")
    return schema.Model.GetRootAs(flat, 0)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise EdgeNASError(f"cannot read {path}: {exc.strerror or exc}") from None


def _json(metadata: dict[str, str], key: str) -> dict:
    try:
        return json.loads(metadata[key])
    except (KeyError, ValueError):
        raise EdgeNASError(f"the metadata to convert lacks a JSON {key}") from None


def _text(name: str | bytes | None) -> str:
    return name.decode() if isinstance(name, bytes) else (name or "")


def _version(package: str) -> str:
    try:
        return package_version(package)
    except PackageNotFoundError:
        raise EdgeNASError(f"runtime litert needs {package}, which is not installed: "
                           "pip install 'edgenas[litert]'") from None

