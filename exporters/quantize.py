"""INT8: ONNX Runtime static quantisation (QDQ, per-channel weights) calibrated on training images, and its check.

`int8_model` is the recipe itself, shared with the profiler (`edgenas profile --int8` times pieces quantised by it).
The quantised file keeps the FP32 file's metadata. It is kept only when its top-1 accuracy on the test split drops
by at most `max_drop` points against the FP32 file; otherwise it is deleted and the FP32 file stays.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from edgenas.errors import EdgeNASError
from edgenas.files import atomic_write_bytes
from exporters.onnx_export import INPUT


def int8_path(fp32: Path) -> Path:
    return fp32.with_name(fp32.stem + ".int8.onnx")


def calibration_batches(data, images: int = 300, batch: int = 32) -> list[np.ndarray]:
    """Up to `images` training images (normalised, not augmented), in batches."""
    from edgenas.data.batches import batches

    calibration = []
    for x, _ in batches(data, "train", batch):
        calibration.append(x.cpu().numpy())
        if sum(len(c) for c in calibration) >= images:
            break
    return calibration


RECIPE = ("static INT8, QDQ, per-channel weights, QUInt8 activations, QInt8 weights in 7 bits (reduce_range; ONNX "
          "Runtime quantize_static)")


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


def quantize(fp32: str | os.PathLike, calibration: list[np.ndarray], out: str | os.PathLike | None = None) -> Path:
    """Write the INT8 file (default `NAME.int8.onnx` beside the FP32 one), calibrated on `calibration` batches, with
    the FP32 file's metadata."""
    import onnx

    fp32 = Path(fp32)
    proto = onnx.load_from_string(int8_model(fp32, calibration))
    source = onnx.load(str(fp32), load_external_data=False)
    del proto.metadata_props[:]
    for entry in source.metadata_props:
        proto.metadata_props.add(key=entry.key, value=entry.value)
    proto.metadata_props.add(key="edgenas.quantization",
                             value=f"{RECIPE}, calibrated on {sum(len(c) for c in calibration)} training images")
    return atomic_write_bytes(Path(out) if out is not None else int8_path(fp32), proto.SerializeToString())


def check_int8(fp32: Path, int8: Path, data, threads: int, warmup: int, repeats: int, fp32_accuracy: float,
               fp32_latency_ms: float, max_drop: float, on_batch=lambda: None) -> dict:
    """Accuracy, drop, size and latency of the INT8 file; deletes it when the drop exceeds `max_drop` points.
    `on_batch` is called after each test batch (a progress bar)."""
    from edgenas.data.batches import batches
    from exporters.runtime import make_session, median_latency

    session = make_session(str(int8), threads)
    correct = total = 0
    for x, y in batches(data, "test", 64):
        correct += int((session.run(None, {INPUT: x.cpu().numpy()})[0].argmax(1) == y.cpu().numpy()).sum())
        total += len(y)
        on_batch()
    accuracy = correct / max(1, total)
    one = np.random.default_rng(0).standard_normal((1, 3, data.resolution, data.resolution)).astype(np.float32)
    latency = median_latency(lambda: session.run(None, {INPUT: one}), warmup, repeats)
    drop = 100.0 * (fp32_accuracy - accuracy)
    result = {"file": str(int8), "accuracy": accuracy, "drop_points": drop, "max_drop_points": max_drop,
              "size_bytes": int8.stat().st_size, "fp32_size_bytes": fp32.stat().st_size,
              "latency": latency, "fp32_latency_ms": fp32_latency_ms,
              "latency_vs_fp32": latency["median_ms"] / fp32_latency_ms,
              "kept": drop <= max_drop}
    if not result["kept"]:
        int8.unlink()
        result["file"] = None
    return result
