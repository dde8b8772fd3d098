"""LiteRT (TensorFlow Lite): the .tflite file of a run's network, its INT8 file, and sessions that run either on
NCHW float32 images. Measured choices (docs/BENCHMARKS.md):

- Converter: litert-torch, from the PyTorch network. onnx2tf (from the ONNX file) needs TensorFlow, and its INT8
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

import contextlib
import json
import logging
import os
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np

from edgenas.errors import EdgeNASError
from edgenas.files import atomic_write_bytes
from exporters.runtimes.base import Converted, Runtime

LAYOUT = "NHWC"
PROGRESS = "LITERT_TORCH_SHOW_PROGRESS"
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
        flat = _convert_fp32(model, int(preprocessing["resolution"]))
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
        flat = int8_flatbuffer(model, int(_json(metadata, "edgenas.preprocessing")["resolution"]), calibration)
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


class LiteRTSession:
    """A LiteRT interpreter of one file, pinned to `threads` threads: `run` takes NCHW float32 images, and gives
    float32 logits, whatever the file's layout and input and output types."""

    def __init__(self, path: Path, threads: int, batch: int | None = None):
        _quiet_native_logs()
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


def _quiet_native_logs() -> None:
    """LiteRT's C++ code writes INFO lines ("Created TensorFlow Lite XNNPACK delegate", the converter's op counts)
    to file descriptor 2, past Python, into the middle of edgenas's output: off unless the user chose a level."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


@contextlib.contextmanager
def _litert_torch():
    """litert-torch, imported and run quietly: its progress drawing (on unless its variable says no) and torch's
    one-line deprecation notice on importing torchao are off inside, as they were before outside."""
    _quiet_native_logs()
    previous = os.environ.get(PROGRESS)
    os.environ[PROGRESS] = "n"
    pytree = logging.getLogger("torch.utils._pytree")
    level = pytree.level
    pytree.setLevel(logging.ERROR)
    try:
        import litert_torch

        yield litert_torch
    finally:
        pytree.setLevel(level)
        os.environ.pop(PROGRESS)
        os.environ.update({} if previous is None else {PROGRESS: previous})


def _convert_fp32(model, resolution: int) -> bytes:
    """The FP32 flatbuffer of `model` (eval mode) for NHWC inputs of 1 x `resolution` x `resolution` x 3."""
    import torch

    with _litert_torch() as litert_torch:
        nhwc = litert_torch.to_channel_last_io(model, args=[0]).eval()  # a permute before the network, folded away
        try:
            with torch.no_grad():
                return bytes(litert_torch.convert(nhwc, (torch.zeros(1, resolution, resolution, 3),)).model_content())
        except Exception as exc:  # litert-torch raises torch.export's and the MLIR converter's own types
            raise EdgeNASError(f"litert-torch cannot convert the network: {_first_line(exc)}") from None


def int8_flatbuffer(model, resolution: int, calibration: list[np.ndarray]) -> bytes:
    """The INT8 flatbuffer of `model` (INT8_RECIPE): exported whole (strict: torch.export then sees the residual
    additions, which the quantiser annotates), observed on `calibration` (NCHW batches), converted by litert-torch."""
    import torch

    with _litert_torch() as litert_torch:
        from litert_torch.quantize import pt2e_quantizer
        from litert_torch.quantize.quant_config import QuantConfig
        from torchao.quantization.pt2e import move_exported_model_to_eval
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        nhwc = litert_torch.to_channel_last_io(model, args=[0]).eval()
        sample = (torch.zeros(1, resolution, resolution, 3),)
        config = pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True)
        quantizer = pt2e_quantizer.PT2EQuantizer().set_global(config)
        try:
            with torch.no_grad():
                batch = torch.export.Dim("batch", min=1)  # calibrated a batch at a time, converted for batch 1
                two = (torch.zeros(2, resolution, resolution, 3),)  # a batch of 1 would be specialised to 1
                exported = torch.export.export(nhwc, two, dynamic_shapes=(({0: batch},),), strict=True)
                observed = prepare_pt2e(exported.module(), quantizer)
                move_exported_model_to_eval(observed)
                for images in calibration:
                    observed(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 2, 3, 1))))
                quantized = convert_pt2e(observed, fold_quantize=False)
                # An exported graph's ops are fixed (eval's were chosen above); only litert-torch's "converted in
                # training mode" warning reads the flag, and a GraphModule refuses .eval().
                quantized.training = False
                converted = litert_torch.convert(quantized, sample, quant_config=QuantConfig(pt2e_quantizer=quantizer))
        except Exception as exc:  # torch.export, torchao and litert-torch raise many types: say which step failed
            raise EdgeNASError(f"INT8 conversion by litert-torch failed: {_first_line(exc)}") from None
        return bytes(converted.model_content())


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
