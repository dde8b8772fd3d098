"""An architecture's costs as `edgenas cost` (`flops`) and `edgenas latency` report them: FLOPs and parameters from
the space's per-block table (checked, on request, against fvcore's count of the built network), model size and peak
memory at FP32 and INT8 from the memory table (checked, on request, against a count of the built network), the latency
a table predicts (beside the fastest network of the space by that table), and a prediction set against a measurement.
"""

from __future__ import annotations

from edgenas.cost.flops import RULE, cost_table
from edgenas.cost.latency import LatencyTable
from edgenas.cost.memory import PRECISIONS, check_precision
from edgenas.cost.memory_table import PEAK_RULE, SIZE_RULE, memory_of_network, memory_table
from edgenas.cost.notes import host_note, miss_note
from edgenas.space.arch import Arch


def flops_of(arch: Arch, verify: bool = False) -> dict:
    """FLOPs and parameters from the space's table; with `verify`, fvcore's count of the whole built network too
    (`verify.agrees`: both numbers equal). Without `verify`, a cached table answers without torch."""
    table = cost_table(arch.resolve_space())
    result = {"flops": table.flops(arch), "params": table.params(arch),
              "method": f"sum of the space's per-block table ({RULE})", "resolution": arch.resolution}
    if verify:
        from edgenas.cost.flops import count_flops, count_params
        from edgenas.space.network import build_model

        model = build_model(arch)
        shape = (3, arch.resolution, arch.resolution)
        result["verify"] = {"flops": count_flops(model, shape), "params": count_params(model),
                            "method": "fvcore on the whole built network"}
        result["verify"]["agrees"] = (result["verify"]["flops"] == result["flops"]
                                      and result["verify"]["params"] == result["params"])
    return result


def memory_of(arch: Arch, verify: bool = False) -> dict:
    """Model size and peak memory in bytes at each precision, from the space's memory table (summed, and the largest
    of the pieces' peaks); with `verify`, counted on the whole built network too (`verify.agrees`: all equal)."""
    table = memory_table(arch.resolve_space())
    result = {precision: {"model_size_bytes": table.model_size(arch, precision),
                          "peak_memory_bytes": table.peak_memory(arch, precision)} for precision in PRECISIONS}
    result.update(model_size_method=f"sum of the space's per-block memory table ({SIZE_RULE})",
                  peak_memory_method=f"largest of the space's per-block peaks ({PEAK_RULE})")
    if verify:
        from edgenas.space.network import build_model

        model = build_model(arch)
        result["verify"] = {precision: memory_of_network(model, arch, precision) for precision in PRECISIONS}
        result["verify"]["method"] = "counted on the whole built network"
        result["verify"]["agrees"] = all(result["verify"][p] == result[p] for p in PRECISIONS)
    return result


def peak_memory_bytes(arch: Arch, precision: str = "int8", counted: bool = False) -> int:
    """The peak of live activation bytes of `arch` at batch 1 and `precision` (fp32 or int8), as docs/COSTS.md
    defines it: the figure to set against a runtime's arena. The architecture carries its space, resolution, width
    and classes (`make_arch(get_space(name, resolution, width), layers, classes)`). From the space's memory table,
    or (`counted`) counted on the built network: the two are equal (tests/test_memory.py)."""
    if counted:
        from edgenas.space.network import build_model

        return memory_of_network(build_model(arch), arch, check_precision(precision))["peak_memory_bytes"]
    return memory_table(arch.resolve_space()).peak_memory(arch, check_precision(precision))


def model_size_bytes(arch: Arch, precision: str = "int8") -> int:
    """The bytes of `arch`'s weights at `precision` (fp32 or int8), as docs/COSTS.md defines them: what an exported
    file's weight initializers hold (`exporters.weight_bytes`)."""
    return memory_table(arch.resolve_space()).model_size(arch, check_precision(precision))


def latency_of(arch: Arch, table: LatencyTable) -> dict:
    """The latency `table` predicts for `arch` (calibrated and raw), the table's description, and the fastest network
    a search of the same space could derive with the same classes (the least latency budget a search takes)."""
    result = {"predicted_ms": table.predict(arch), "predicted_raw_ms": table.raw_ms(arch),
              "table": table.source, "device": table.name, "precision": table.precision,
              "runtime": table.data["runtime"],
              "method": "sum of the table's per-piece medians with its calibration, batch 1"}
    from edgenas.cost.cost_model import CostModel  # torch: imported only where a prediction is asked for

    space = arch.resolve_space()
    index, result["fastest_ms"] = CostModel.build(space, arch.num_classes, cost_table(space), table).fastest()
    result["fastest_layers"] = [layer.choices[j] for layer, j in zip(space, index, strict=True)]
    return result


def against_measured(table: LatencyTable, predicted_ms: float, measured_ms: float) -> dict:
    """A prediction set against a measurement of the same network here: the error (percent of the measurement) and
    the notes that say what it is worth (a table of another host, a miss beyond the table's validation)."""
    error_pct = 100.0 * (predicted_ms - measured_ms) / measured_ms
    return {"measured_ms": measured_ms, "error_pct": error_pct, "host_note": host_note(table),
            "miss_note": miss_note(table, error_pct)}
