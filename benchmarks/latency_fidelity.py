"""Benchmark: how well latency tables predict whole networks, and what profiling costs.

For each thread count, profiles the `mobile` space at 224x224 with ONNX Runtime (the shipped protocol: 5
interleaved passes of 50 calls, best pass median) and measures N random networks spread over the FLOPs range,
plus MobileNetV2, end to end. Reports the prediction error before and after calibration (leave-one-out), the
error a single pass of 50 calls would have given, ranking quality against FLOPs, and the profiling wall time.

Run by hand on a quiet machine:  .venv/bin/python benchmarks/latency_fidelity.py [--threads 1 2] [--networks 30]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path


def single_pass(table_data: dict, space) -> dict:
    """Errors had each piece and each network been timed in one pass of 50 calls (the first pass)."""
    from edgenas.arch import make_arch
    from edgenas.calibration import error_stats
    from edgenas.latency import validate_table

    data = json.loads(json.dumps(table_data))
    for entry in data["entries"].values():
        entry["median_ms"] = entry["pass_medians_ms"][0]
    table = validate_table(data, "single-pass")
    errors = []
    for network in data["validation"]["networks"]:
        arch = make_arch(space, network["layers"], network["num_classes"])
        measured = network["measured_first_pass_ms"]
        errors.append(100 * (table.raw_ms(arch) - measured) / measured)
    return error_stats(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--networks", type=int, default=30)
    parser.add_argument("--space", default="mobile")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/latency_fidelity.json"))
    args = parser.parse_args()

    import onnxruntime
    import torch

    from edgenas import profiler
    from edgenas.space import get_space

    space = get_space(args.space)
    results = {"machine": profiler.host_info(), "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
               "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"), "space": space.name,
               "resolution": space.resolution, "networks": args.networks, "runs": []}
    for threads in args.threads:
        timer = profiler.make_backend("ort", threads, "cpu")
        archs = profiler.validation_archs(space, args.networks, seed=1)
        start = time.perf_counter()
        pieces = profiler.measure(profiler.space_pieces(space), timer, 10, 50, 5)
        pieces_s = time.perf_counter() - start
        nets = profiler.measure([profiler.network_piece(n, a) for n, a in archs], timer, 10, 50, 5)
        data = profiler.build_table(f"bench-t{threads}", space, timer.describe(), pieces,
                                    {k: v["median_ms"] for k, v in nets.items()}, archs, 10, 50, 5,
                                    profiler.host_info())
        for network in data["validation"]["networks"]:
            network["measured_first_pass_ms"] = nets[f"net:{network['name']}"]["pass_medians_ms"][0]
        v = data["validation"]
        run = {"threads": threads, "entries": len(pieces), "profiling_seconds_pieces": round(pieces_s, 1),
               "calibration": data["calibration"],
               "after_calibration_loo": {k: v[k] for k in ("median_abs_error_pct", "p95_abs_error_pct",
                                                           "within_10pct", "max_abs_error_pct")},
               "before_calibration": v["before_calibration"], "single_pass_uncalibrated": single_pass(data, space),
               "kendall_tau_table": v["kendall_tau_table"], "kendall_tau_flops": v["kendall_tau_flops"],
               "measured_ms_range": [min(n["measured_ms"] for n in v["networks"]),
                                     max(n["measured_ms"] for n in v["networks"])]}
        results["runs"].append(run)
        print(json.dumps(run, indent=2), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
