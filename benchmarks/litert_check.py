"""Benchmark: LiteRT as edgenas ships it (`exporters.runtimes.litert`), beside ONNX Runtime, on a run's network.

For the run's retrained network: the FP32 .tflite against PyTorch (max |diff| on the first test batch, absolute and
relative to the largest logit; top-1 agreement and accuracy on the whole test split), the INT8 file (accuracy, drop,
int8 weight tensors, size), the conversion times, and batch-1 latency with one thread (median of 500 calls after 50,
best of 3 passes) of both files in LiteRT and of edgenas's ONNX and INT8 ONNX files in ONNX Runtime. With
`--aeq`, also ai-edge-quantizer's static INT8 recipe on the FP32 file, the route that was measured and not taken.

Run by hand (the litert extra installed):  OMP_NUM_THREADS=1 python benchmarks/litert_check.py RUN [--aeq]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def compare(model, data, run) -> dict:
    """Outputs of `run` (NCHW batch -> logits) against PyTorch's on the test split."""
    import torch

    from edgenas.data.batches import batches

    agree = correct = total = 0
    first = None
    for x, y in batches(data, "test", 64):
        got = run(x.numpy())
        with torch.no_grad():
            reference = model(x).numpy()
        if first is None:
            difference, largest = float(np.abs(got - reference).max()), float(np.abs(reference).max())
            first = {"max_abs_diff": difference, "max_diff_of_largest_logit": difference / largest}
        agree += int((got.argmax(1) == reference.argmax(1)).sum())
        correct += int((got.argmax(1) == y.numpy()).sum())
        total += len(y)
    return {**first, "top1_agreement": agree / total, "accuracy": correct / total, "images": total}


def aeq_int8(fp32: Path, calibration: list[np.ndarray]) -> bytes:
    """ai-edge-quantizer's static_wi8_ai8 recipe (min-max ranges) on the FP32 file, calibrated image by image."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe

    flat = fp32.read_bytes()
    key, signature = next(iter(Interpreter(model_content=flat).get_signature_list().items()))
    samples = [{signature["inputs"][0]: np.ascontiguousarray(image[None].transpose(0, 2, 3, 1))}
               for batch in calibration for image in batch]
    with contextlib.redirect_stderr(io.StringIO()):
        q = quantizer.Quantizer(bytearray(flat))
        q.load_quantization_recipe(recipe.static_wi8_ai8())
        return bytes(q.quantize(q.calibrate({key: samples}, num_threads=1), enable_progress_report=False)
                     .quantized_model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--aeq", action="store_true", help="also ai-edge-quantizer's static INT8 recipe")
    args = parser.parse_args()
    import torch

    from edgenas.runs.folder import Run
    from edgenas.runs.settings import SearchSettings, load_data
    from exporters.metadata import file_metadata
    from exporters.onnx_export import INPUT, write_model
    from exporters.quantize import calibration_batches
    from exporters.run_network import load_run_network
    from exporters.runtimes.litert import LiteRT
    from exporters.runtimes.onnxruntime import make_session, quantized_file
    from exporters.timing import median_latency

    torch.set_num_threads(1)
    model, arch, describe = load_run_network(args.run)
    data = load_data(SearchSettings.of_run(Run.open(args.run)), arch.resolution)
    calibration = calibration_batches(data)
    one = np.random.default_rng(0).standard_normal((1, 3, arch.resolution, arch.resolution)).astype(np.float32)
    folder = Path(tempfile.mkdtemp(prefix="litert-check-"))
    onnx_path = write_model(model, arch, describe, folder / "model.onnx", 17)
    metadata = file_metadata(arch, describe, 17)
    runtime, report = LiteRT(), {"run": args.run, "arch": " ".join(arch.layers), "litert": LiteRT().version()}
    start = time.perf_counter()
    fp32 = runtime.convert(model, onnx_path, folder / "model.tflite", metadata)
    report["convert_fp32_s"] = time.perf_counter() - start
    start = time.perf_counter()
    int8 = runtime.quantize(model, fp32, calibration, runtime.int8_path(fp32.path))
    report["convert_int8_s"] = time.perf_counter() - start
    files = {"litert_fp32": fp32.path, "litert_int8": int8.path}
    if args.aeq:
        start = time.perf_counter()
        files["litert_int8_aeq"] = folder / "model.aeq.tflite"
        files["litert_int8_aeq"].write_bytes(aeq_int8(fp32.path, calibration))
        report["convert_int8_aeq_s"] = time.perf_counter() - start
    for label, path in files.items():
        session = runtime.open(path, threads=1)
        report[label] = {**compare(model, data, session.run), "int8_weights": runtime.int8_weights(path),
                         "size_bytes": path.stat().st_size}
        single = runtime.open(path, threads=1, batch=1)
        report[label]["latency_ms"] = median_latency(lambda s=single: s.run(one), 50, 500)["median_ms"]
    int8_onnx = folder / "model.int8.onnx"
    int8_onnx.write_bytes(quantized_file(onnx_path, calibration))
    for label, path in {"onnxruntime_fp32": onnx_path, "onnxruntime_int8": int8_onnx}.items():
        session = make_session(str(path), 1)
        report[label] = {**compare(model, data, lambda x, s=session: s.run(None, {INPUT: x})[0]),
                         "size_bytes": Path(path).stat().st_size}
        report[label]["latency_ms"] = median_latency(lambda s=session: s.run(None, {INPUT: one}), 50, 500)["median_ms"]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
