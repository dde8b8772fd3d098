"""INT8: the calibration images, and the check of a runtime's INT8 file against its FP32 file.

Each runtime quantises by its own route (`Runtime.quantize`; ONNX Runtime's recipe is `runtimes.onnxruntime.
int8_model`). The INT8 file is kept only when it holds int8 weights (proof that it runs int8 kernels) and its top-1
accuracy on the test split drops by at most `max_drop` points against the FP32 file; otherwise it is deleted and the
FP32 file stays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def calibration_batches(data, images: int = 300, batch: int = 32) -> list[np.ndarray]:
    """Up to `images` training images (normalised, not augmented), in batches."""
    from edgenas.data.batches import batches

    calibration = []
    for x, _ in batches(data, "train", batch):
        calibration.append(x.cpu().numpy())
        if sum(len(c) for c in calibration) >= images:
            break
    return calibration


def size_bytes(runtime, path: Path) -> int:
    """The bytes of every file that makes up the model (OpenVINO: .xml and .bin)."""
    return sum(p.stat().st_size for p in runtime.files(path) if p.is_file())


def check_int8(runtime, fp32: Path, int8, data, threads: int, warmup: int, repeats: int, fp32_accuracy: float,
               fp32_latency_ms: float, max_drop: float, on_batch=lambda: None) -> dict:
    """Accuracy, drop, int8 weights, size and latency of the INT8 file `int8` (a `Converted`); deletes it when it
    holds no int8 weights or drops more than `max_drop` points. `on_batch` follows each test batch (a bar)."""
    from edgenas.data.batches import batches
    from exporters.timing import time_file

    weights = runtime.int8_weights(int8.path)
    session = runtime.open(int8.path, threads)
    correct = total = 0
    for x, y in batches(data, "test", 64):
        correct += int((session.run(x.cpu().numpy()).argmax(1) == y.cpu().numpy()).sum())
        total += len(y)
        on_batch()
    precision = session.precision
    del session  # one session alive at a time
    accuracy = correct / max(1, total)
    one = np.random.default_rng(0).standard_normal((1, 3, data.resolution, data.resolution)).astype(np.float32)
    latency, _ = time_file(runtime, int8.path, threads, one, warmup, repeats)
    drop = 100.0 * (fp32_accuracy - accuracy)
    result = {"file": str(int8.path), "method": int8.method, "precision": precision,
              "int8_weights": weights, "accuracy": accuracy, "drop_points": drop, "max_drop_points": max_drop,
              "size_bytes": size_bytes(runtime, int8.path), "fp32_size_bytes": size_bytes(runtime, fp32),
              "latency": latency, "fp32_latency_ms": fp32_latency_ms,
              "latency_vs_fp32": latency["median_ms"] / fp32_latency_ms,
              "kept": drop <= max_drop and weights > 0}
    if not result["kept"]:
        for path in runtime.files(int8.path):
            path.unlink(missing_ok=True)
        result["file"] = None
    return result
