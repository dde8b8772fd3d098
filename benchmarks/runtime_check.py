"""Benchmark: the runtimes edgenas ships to, side by side on one run's network, in one process.

For each runtime installed (`exporters.runtimes`; ONNX Runtime and OpenVINO, and LiteRT with its extra): the FP32
file and the INT8 file as `edgenas export` makes them, each against PyTorch on the whole test split (max |diff| on
the first batch of 64 test images, absolute and relative to the largest logit; top-1 agreement; accuracy), its int8
weight tensors and size; for OpenVINO also the FP32 file compiled with no precision hint, which is what OpenVINO
runs by default (bf16 on a CPU with AMX). Then batch-1 latency with `--threads` threads, interleaved: in each of
`--passes` passes every file gets a fresh batch-1 session, `--warmup` untimed calls and `--repeats` timed ones
(`exporters.timing.time_calls`), and is closed before the next (one session alive at a time); a file's latency is
its best pass median, and each is given as a ratio to ONNX Runtime's FP32 file.

Run by hand:  OMP_NUM_THREADS=1 python benchmarks/runtime_check.py RUN [--runtimes onnxruntime,openvino]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def compare(model, data, session) -> dict:
    """`session` (NCHW batch -> logits) against PyTorch on the test split."""
    import torch

    from edgenas.data.batches import batches

    agree = correct = total = 0
    first = None
    for x, y in batches(data, "test", 64):
        got = session.run(x.numpy())
        with torch.no_grad():
            reference = model(x).numpy()
        if first is None:
            difference, largest = float(np.abs(got - reference).max()), float(np.abs(reference).max())
            first = {"max_abs_diff": difference, "max_diff_of_largest_logit": difference / largest}
        agree += int((got.argmax(1) == reference.argmax(1)).sum())
        correct += int((got.argmax(1) == y.numpy()).sum())
        total += len(y)
    return {**first, "top1_agreement": agree / total, "accuracy": correct / total, "images": total}


class DefaultOpenVINO:
    """OpenVINO as a user who sets no precision hint gets it: the CPU plugin's own choice, which it reports."""

    name = "openvino (no precision hint)"

    def open(self, path: Path, threads: int, batch: int | None = None):
        import openvino

        from exporters.runtimes.openvino import RAN, OvSession

        model = openvino.Core().read_model(str(path))
        if batch is not None:
            shape = [batch, *(d.get_length() for d in list(model.inputs[0].get_partial_shape())[1:])]
            model.reshape({model.inputs[0].get_any_name(): shape})
        compiled = openvino.Core().compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
                                                                "PERFORMANCE_HINT": "LATENCY"})
        ran = str(compiled.get_property("INFERENCE_PRECISION_HINT").to_string())
        return OvSession(compiled, RAN.get(ran, ran), f"no hint (ran {ran})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--runtimes", default="onnxruntime,openvino,litert",
                        help="comma-separated; those not installed are skipped, and said so")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    import torch

    from edgenas.data.batches import batches
    from edgenas.errors import EdgeNASError
    from edgenas.runs.folder import Run
    from edgenas.runs.settings import SearchSettings, load_data
    from exporters.metadata import file_metadata
    from exporters.onnx_export import write_model
    from exporters.quantize import calibration_batches, size_bytes
    from exporters.run_network import load_run_network
    from exporters.runtimes import runtime
    from exporters.timing import time_calls

    torch.set_num_threads(args.threads)
    model, arch, describe = load_run_network(args.run)
    data = load_data(SearchSettings.of_run(Run.open(args.run)), arch.resolution)
    calibration = calibration_batches(data)
    folder = Path(tempfile.mkdtemp(prefix="runtime-check-"))
    onnx_path = write_model(model, arch, describe, folder / "exported.onnx", 17)
    metadata = file_metadata(arch, describe, 17)
    report = {"run": args.run, "arch": " ".join(arch.layers), "threads": args.threads, "torch": torch.__version__,
              "runtimes": {}, "skipped": {}}
    files = {}  # label -> (runtime, path)
    for name in args.runtimes.split(","):
        try:
            rt = runtime(name)
            rt.require()
        except EdgeNASError as exc:
            report["skipped"][name] = str(exc)
            continue
        report["runtimes"][name] = rt.version()
        start = time.perf_counter()
        fp32 = rt.convert(model, onnx_path, folder / f"model{rt.suffix}", metadata)
        report[f"{name}_convert_s"] = time.perf_counter() - start
        start = time.perf_counter()
        int8 = rt.quantize(model, fp32, calibration, rt.int8_path(fp32.path))
        report[f"{name}_int8_s"] = time.perf_counter() - start
        files[f"{name}_fp32"], files[f"{name}_int8"] = (rt, fp32.path), (rt, int8.path)
        if name == "openvino":
            files["openvino_fp32_default"] = (DefaultOpenVINO(), fp32.path)
    with torch.inference_mode():
        for label, (rt, path) in files.items():
            session = rt.open(path, args.threads)
            report[label] = {**compare(model, data, session), "precision": session.precision}
            if not isinstance(rt, DefaultOpenVINO):  # the same file as openvino_fp32
                report[label].update(int8_weights=rt.int8_weights(path), size_bytes=size_bytes(rt, path))
            del session
        if "openvino_fp32_default" in files:  # what the default changes, on the same first batch
            x = next(iter(batches(data, "test", 64)))[0]
            f32 = files["openvino_fp32"][0].open(files["openvino_fp32"][1], args.threads).run(x.numpy())
            default = DefaultOpenVINO().open(files["openvino_fp32"][1], args.threads).run(x.numpy())
            report["openvino_default_vs_f32_max_abs_diff"] = float(np.abs(default - f32).max())
        one = np.random.default_rng(0).standard_normal((1, 3, arch.resolution, arch.resolution)).astype(np.float32)
        medians = {label: [] for label in files}
        for _ in range(args.passes):
            for label, (rt, path) in files.items():
                session = rt.open(path, args.threads, batch=1)
                medians[label].append(statistics.median(time_calls(session.run, (one,), args.warmup, args.repeats)))
                del session
        eager = [statistics.median(time_calls(model, (torch.from_numpy(one),), args.warmup, args.repeats))
                 for _ in range(args.passes)]
    base = min(medians.get("onnxruntime_fp32", [float("nan")]))
    for label in files:
        report[label]["latency_ms"] = min(medians[label])
        report[label]["pass_medians_ms"] = medians[label]
        report[label]["latency_vs_onnxruntime_fp32"] = min(medians[label]) / base
    report["pytorch_eager_ms"] = min(eager)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
