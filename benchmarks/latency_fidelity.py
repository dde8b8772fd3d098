"""Benchmark: how well latency tables predict whole networks, and what profiling costs.

For each space and resolution, precision (FP32, or INT8 quantised as `edgenas export --int8` quantises) and thread
count, profiles the space with ONNX Runtime (the shipped protocol: `--passes` interleaved passes, 5 by default, of 50
calls after 10 warm-up calls, best pass median) and measures N random networks spread over the FLOPs range, plus
MobileNetV2 where the space has it and the smallest and largest networks, end to end, in the same passes as the
pieces (`--protocols separate`: after them, the protocol of the first shipped tables). Reports the prediction error
before and after calibration (leave-one-out), the error a single pass of 50 calls would have given, ranking
quality against FLOPs and against the measurement's own repeatability (`kendall_tau_retest`: the networks' best of
the even passes against their best of the odd ones, how far two measurements of the same networks agree on their
order), the profiling wall time (INT8: quantising the pieces included, as in `edgenas profile --int8`), the
leave-one-out error of every calibration kind tried, and the cost of one empty `session.run` (the per-call
overhead). With more than 5 passes it also reports, from the same measurements, the calibrated figures the table
would have had after its first 5, 10, ... passes (each piece and network its best median of those passes): fewer
and more passes side by side, in one run; and the figures `edgenas profile --passes 5 --max-passes PASSES` would
have stopped at.

Run by hand on a quiet machine, for example:
  .venv/bin/python benchmarks/latency_fidelity.py --spaces mobile:224 mobile-small:32 mobile-small:16 \
      --precisions fp32 int8 --threads 1 2 --networks 30
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from edgenas.cost import notes


def single_pass(table_data: dict, space) -> dict:
    """Errors had each piece and each network been timed in one pass of 50 calls (the first pass)."""
    from edgenas.cost.calibration import error_stats
    from edgenas.cost.latency import validate_table
    from edgenas.space.arch import make_arch

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


def first_passes(space, pieces: dict, nets: dict, archs: list, timer, k: int) -> dict:
    """The calibrated leave-one-out figures of the table had it been profiled with the first `k` passes only."""
    from edgenas.profiling import profiler

    entries = {key: {**v, "median_ms": min(v["pass_medians_ms"][:k])} for key, v in pieces.items()}
    networks = {key: min(v["pass_medians_ms"][:k]) for key, v in nets.items()}
    data = profiler.build_table("first-passes", space, timer.describe(), entries, networks, archs, 10, 50, k,
                                notes.host_info())
    v = data["validation"]
    return {"passes": k, **{key: v[key] for key in ("median_abs_error_pct", "p95_abs_error_pct", "within_10pct",
                                                    "max_abs_error_pct", "kendall_tau_table")}}


def retest_tau(networks: list[dict]) -> float | None:
    """Kendall tau between the networks' best pass medians of the even and of the odd passes: how far two
    measurements of the same networks agree on their order, the most a table's ranking can be checked to."""
    from edgenas.cost.calibration import kendall_tau

    if min(len(n["pass_medians_ms"]) for n in networks) < 2:
        return None
    return kendall_tau([min(n["pass_medians_ms"][0::2]) for n in networks],
                       [min(n["pass_medians_ms"][1::2]) for n in networks])


def space_case(text: str):
    """`mobile-small:32` -> that space at 32x32; `mobile` -> at its own resolution."""
    from edgenas.errors import EdgeNASError
    from edgenas.space.spec import get_space

    name, _, resolution = text.partition(":")
    try:
        return get_space(name, int(resolution) if resolution else None)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad space {text!r}: expected SPACE or SPACE:RESOLUTION") from None
    except EdgeNASError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def null_call_ms(resolution: int, threads: int) -> float:
    """Best pass median of one `session.run` of an ONNX Identity on a 1x3xRxR input: the overhead every piece timed
    alone pays once, and a whole network pays once in all."""
    import numpy as np
    from onnx import TensorProto, helper

    from exporters.runtimes.onnxruntime import make_session
    from exporters.timing import median_latency

    shape = [1, 3, resolution, resolution]
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "null",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = make_session(model.SerializeToString(), threads)
    x = {"input": np.zeros(shape, dtype=np.float32)}
    return median_latency(lambda: session.run(None, x), 10, 200, 5)["median_ms"]


def profile_once(space, precision: str, threads: int, networks: int, keep: Path | None = None,
                 protocol: str = "interleaved", passes: int = 5) -> dict:
    """One table of `space`, measured here in `precision` with `threads` threads by `protocol` in `passes` passes,
    and its fidelity."""
    from edgenas.profiling import profiler
    from edgenas.profiling.measure import make_backend, measure
    from edgenas.profiling.validation import network_piece, validation_archs
    from edgenas.space.pieces import space_pieces

    timer = make_backend("ort", threads, "cpu", int8=precision == "int8")
    archs = validation_archs(space, networks, seed=1)
    pieces = space_pieces(space)
    networks = [network_piece(n, a) for n, a in archs]
    if protocol == "interleaved":  # as `edgenas profile` does: networks in the same passes as the pieces
        timed = measure(pieces + networks, timer, 10, 50, passes)
    else:  # the first shipped tables' protocol: every piece's passes, then the networks'
        timed = {**measure(pieces, timer, 10, 50, passes), **measure(networks, timer, 10, 50, passes)}
    nets = {net.key: timed.pop(net.key) for net in networks}
    pieces = timed
    pieces_s = sum(v.pop("seconds") for v in pieces.values())
    data = profiler.build_table(f"bench-{precision}-t{threads}", space, timer.describe(), pieces,
                                {k: v["median_ms"] for k, v in nets.items()}, archs, 10, 50, passes,
                                notes.host_info(), precision)
    for network in data["validation"]["networks"]:
        network["measured_first_pass_ms"] = nets[f"net:{network['name']}"]["pass_medians_ms"][0]
        network["measured_pass_medians_ms"] = nets[f"net:{network['name']}"]["pass_medians_ms"]
    if keep is not None:  # the whole table, to analyse other calibrations on the same measurements later
        keep.mkdir(parents=True, exist_ok=True)
        (keep / f"{space.name}-{space.resolution}-{precision}-t{threads}-{protocol}.json").write_text(json.dumps(data))
    v = data["validation"]
    fewer = [first_passes(space, pieces, nets, archs, timer, k) for k in range(5, passes, 5)]
    full = {"passes": passes, **{key: v[key] for key in ("median_abs_error_pct", "p95_abs_error_pct", "within_10pct",
                                                          "max_abs_error_pct", "kendall_tau_table")}}
    return {"space": space.name, "resolution": space.resolution, "precision": precision, "threads": threads,
            "protocol": protocol, "passes": passes,
            "entries": len(pieces), "validation_networks": v["count"], "profiling_seconds_pieces": round(pieces_s, 1),
            "calibration": data["calibration"],
            "after_calibration_loo": {k: v[k] for k in ("median_abs_error_pct", "p95_abs_error_pct",
                                                        "within_10pct", "max_abs_error_pct")},
            "before_calibration": v["before_calibration"], "single_pass_uncalibrated": single_pass(data, space),
            "kendall_tau_table": v["kendall_tau_table"], "kendall_tau_flops": v["kendall_tau_flops"],
            "kendall_tau_retest": retest_tau(list(nets.values())),
            "first_passes_loo": fewer,
            # what `edgenas profile --passes 5 --max-passes PASSES` makes of the same timings: stop at the first 5,
            # 10, ... passes whose validation meets the goal
            "adaptive_loo": next((f for f in fewer if notes.fidelity_shortfall(f) is None), full),
            "calibrations_tried_loo": v["kinds_tried"], "null_call_ms": null_call_ms(space.resolution, threads),
            "measured_ms_range": [min(n["measured_ms"] for n in v["networks"]),
                                  max(n["measured_ms"] for n in v["networks"])]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", type=space_case, nargs="+", default=["mobile"], metavar="SPACE[:RESOLUTION]",
                        help="spaces to profile, each at its own or the given resolution (default: mobile, 224)")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "int8"], default=["fp32"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--networks", type=int, default=30, help="random validation networks per table")
    parser.add_argument("--passes", type=int, default=5,
                        help="interleaved passes per table, as `edgenas profile --passes`")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/latency_fidelity.json"))
    parser.add_argument("--keep-tables", type=Path, default=None, help="folder to write each measured table to")
    parser.add_argument("--protocols", nargs="+", choices=["interleaved", "separate"], default=["interleaved"],
                        help="interleaved: the networks timed in the pieces' passes (as `edgenas profile`); "
                             "separate: after all pieces (the first shipped tables); several: each case side by side")
    args = parser.parse_args()

    import onnxruntime
    import torch


    spaces = [space_case(s) if isinstance(s, str) else s for s in args.spaces]  # argparse leaves a default as is
    results = {"machine": notes.host_info(), "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
               "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"), "networks": args.networks,
               "protocol": f"10 warm-up calls, {args.passes} interleaved passes of 50 timed calls, best pass median, "
                           "batch 1",
               "runs": []}
    for space in spaces:
        for precision in args.precisions:
            for threads in args.threads:
                for protocol in args.protocols:
                    run = profile_once(space, precision, threads, args.networks, args.keep_tables, protocol,
                                       args.passes)
                    results["runs"].append(run)
                    print(json.dumps(run, indent=2), flush=True)
                    args.out.parent.mkdir(parents=True, exist_ok=True)  # after every run: a long one keeps its rows
                    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
