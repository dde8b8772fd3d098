"""Benchmark: ONNX Runtime (FP32 and INT8) against PyTorch eager, and edgenas's export against a plain one.

Networks: the `mobilenetv2` preset built by edgenas, torchvision's `mobilenet_v2` exported plainly (same opset),
and optionally searched runs (`--run RUN`, repeatable; their retrained weights and data). For each network and
thread count: latency at batch 1 (best of 5 interleaved pass medians of 50 calls, after warm-up) for ONNX Runtime
FP32, ONNX Runtime INT8 (`exporters.runtimes.onnxruntime`: static QDQ, per-channel; calibrated on random inputs for the
MobileNetV2s, on training images for runs) and PyTorch eager; the achieved multiply-adds per second against those
of PyTorch's fp32 matrix product at the same thread count (the densest kernel the machine runs, measured, since
the nominal clock understates the boost clock), and, from ONNX Runtime's node profiler, the time and rate of its
dense and depthwise convolutions; and ONNX Runtime FP32 without its blocked (NCHWc) layout, to show which layout
is the fast one.

Run by hand on a quiet machine:  .venv/bin/python benchmarks/export_speed.py [--threads 1 2] [--run runs/X]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def sgemm_gmacs(threads: int, n: int = 1024) -> float:
    """Multiply-adds per second of PyTorch's n x n fp32 matrix product at `threads` threads (best of 5 medians).

    The densest kernel this machine runs, boost clock included: the ceiling a convolution can approach.
    """
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    ms = interleaved({"mm": lambda: torch.mm(a, b)}, repeats=20)["mm"]
    return n ** 3 / ms / 1e6


def ort_session(path: Path, threads: int, level: str = "ALL", profile: bool = False):
    """An ONNX Runtime session set up as `exporters.runtimes.onnxruntime.make_session` does (pinned threads,
    sequential), at graph optimisation `level` (EXTENDED: every fusion but the blocked NCHWc layout of ALL),
    optionally profiling its nodes into a file beside `path`."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = getattr(onnxruntime.GraphOptimizationLevel, f"ORT_ENABLE_{level}")
    options.log_severity_level = 3
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = str(path.with_suffix(""))
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_conv_split(path: Path, x: np.ndarray, threads: int, runs: int = 100) -> dict:
    """Where ONNX Runtime's time goes: milliseconds per call and multiply-adds per second of its dense convolutions
    and of its depthwise ones (one input channel per filter), from ONNX Runtime's own node profiler.

    Multiply-adds are those ONNX Runtime executes, read from the node shapes it reports (channels padded to its
    blocked layout where it chose one), so the rate is the rate of the work done.
    """
    session = ort_session(path, threads, profile=True)
    for _ in range(runs):
        session.run(None, {"input": x})
    events = json.loads(Path(session.end_profiling()).read_text())
    split = {"dense": [0.0, 0], "depthwise": [0.0, 0], "other": [0.0, 0]}
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        args = event["args"]
        kind = "other"
        if args["op_name"] == "Conv":
            weight = next(iter(args["input_type_shape"][1].values()))
            output = next(iter(args["output_type_shape"][0].values()))
            kind = "depthwise" if weight[1] == 1 else "dense"  # one input channel per filter
            split[kind][1] += int(np.prod(output)) * int(np.prod(weight[1:]))
        split[kind][0] += event["dur"] / 1000
    return {f"{kind}_ms": ms / runs for kind, (ms, _) in split.items()} | \
        {f"{kind}_gmacs_per_s": macs / ms / 1e6 for kind, (ms, macs) in split.items() if kind != "other" and ms}


def interleaved(calls: dict, passes: int = 5, repeats: int = 50, warmup: int = 10) -> dict:
    from exporters.timing import time_calls

    for call in calls.values():
        for _ in range(warmup):
            call()
    medians = {name: [] for name in calls}
    for _ in range(passes):
        for name, call in calls.items():
            medians[name].append(statistics.median(time_calls(call, (), 0, repeats)))
    return {name: min(values) for name, values in medians.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--run", type=Path, action="append", default=[])
    parser.add_argument("--opset", type=int, default=17)
    args = parser.parse_args()

    import onnxruntime
    import torch
    import torchvision

    from edgenas.cost.flops import cost_table, count_flops
    from edgenas.cost.presets import preset
    from edgenas.space.network import build_model
    from edgenas.space.spec import get_space
    from exporters.onnx_export import to_onnx
    from exporters.runtimes.onnxruntime import make_session, quantized_file

    sgemm = {threads: sgemm_gmacs(threads) for threads in args.threads}
    print(json.dumps({"sgemm_gmacs_per_s": sgemm}), flush=True)
    folder = Path(tempfile.mkdtemp())
    networks = {}
    space = get_space("mobile")
    arch = preset("mobilenetv2", space, 1000)
    networks["mobilenetv2 (edgenas preset)"] = (build_model(arch).eval(), cost_table(space).flops(arch), None)
    reference = torchvision.models.mobilenet_v2().eval()
    networks["mobilenetv2 (torchvision, plain export)"] = (reference, count_flops(reference, (3, 224, 224)), None)
    for run in args.run:
        from edgenas.runs.folder import Run
        from edgenas.runs.settings import SearchSettings, load_data
        from edgenas.runs.weights import load_model

        model, run_arch = load_model(run)
        settings = SearchSettings(**Run.open(run).config()["settings"])
        data = load_data(settings, run_arch.resolution)
        networks[f"searched {run.name}"] = (model, cost_table(run_arch.resolve_space()).flops(run_arch), data)

    results = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
               "python": platform.python_version(), "opset": args.opset, "sgemm_gmacs_per_s": sgemm,
               "rows": []}
    for name, (model, macs, data) in networks.items():
        resolution = 224 if data is None else data.resolution
        fp32 = folder / f"{len(results['rows'])}.onnx"
        if "plain" in name:  # what a user would do without edgenas
            torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), str(fp32), dynamo=False,
                              opset_version=args.opset, input_names=["input"], output_names=["output"])
        else:
            fp32.write_bytes(to_onnx(model, (3, resolution, resolution), opset=args.opset))
        rng = np.random.default_rng(0)
        # Batch-1 files (as deployed): calibration feeds one image at a time.
        if data is None:
            calibration = [rng.standard_normal((1, 3, resolution, resolution)).astype(np.float32) for _ in range(32)]
        else:
            from edgenas.data.batches import batches

            calibration = [x.numpy() for x, _ in list(batches(data, "train", 1))[:200]]

        int8 = fp32.with_suffix(".int8.onnx")
        int8.write_bytes(quantized_file(fp32, calibration))
        x = rng.standard_normal((1, 3, resolution, resolution)).astype(np.float32)
        tensor = torch.from_numpy(x)
        for threads in args.threads:
            torch.set_num_threads(threads)
            s32, s8 = make_session(str(fp32), threads), make_session(str(int8), threads)
            with torch.inference_mode():
                ms = interleaved({"ort_fp32": lambda s=s32, x=x: s.run(None, {"input": x}),
                                  "ort_int8": lambda s=s8, x=x: s.run(None, {"input": x}),
                                  "pytorch_eager": lambda m=model, t=tensor: m(t)})
            del s8  # two sessions alive at most: idle ones' spinning threads slow the others
            plain = ort_session(fp32, threads, "EXTENDED")
            layout = interleaved({"with": lambda s=s32, x=x: s.run(None, {"input": x}),
                                  "without": lambda s=plain, x=x: s.run(None, {"input": x})})
            del s32, plain
            row = {"network": name, "threads": threads, "macs": macs, **{f"{k}_ms": v for k, v in ms.items()},
                   "fp32_vs_eager": ms["ort_fp32"] / ms["pytorch_eager"],
                   "int8_vs_fp32": ms["ort_int8"] / ms["ort_fp32"],
                   "without_nchwc_vs_with": layout["without"] / layout["with"],
                   "fp32_gmacs_per_s": macs / ms["ort_fp32"] / 1e6,
                   "fp32_share_of_sgemm": macs / ms["ort_fp32"] / 1e6 / sgemm[threads],
                   "ort_fp32_profile": ort_conv_split(fp32, x, threads)}
            results["rows"].append(row)
            print(json.dumps(row), flush=True)
    edgenas_rows = {r["threads"]: r for r in results["rows"] if r["network"].endswith("preset)")}
    plain_rows = {r["threads"]: r for r in results["rows"] if "plain" in r["network"]}
    results["preset_vs_plain_fp32"] = {t: edgenas_rows[t]["ort_fp32_ms"] / plain_rows[t]["ort_fp32_ms"]
                                       for t in edgenas_rows}
    print(json.dumps({"preset_vs_plain_fp32": results["preset_vs_plain_fp32"]}))
    out = Path("benchmarks/results/export_speed.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
