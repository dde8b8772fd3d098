"""The budgets of a search, decided once: the FLOPs budget (given, or a default said with its reason), the latency,
model size and peak memory budgets, whether each binds, and the refusal of a budget (or of budgets together) that no
network of the space can meet, before any training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgenas.cost.cost_model import CostModel
from edgenas.cost.flops import FlopsTable
from edgenas.cost.latency import LatencyTable
from edgenas.cost.presets import extreme, mobilenetv2, preset
from edgenas.errors import EdgeNASError
from edgenas.space.spec import Space
from edgenas.strategies.derive import knapsack
from edgenas.units import format_bytes, format_flops


@dataclass(frozen=True)
class Budgets:
    flops: float
    flops_binds: bool  # below the largest network's FLOPs
    flops_default: str | None  # how the FLOPs budget was chosen when none was given (None when one was)
    ms: float | None  # the latency budget, in the table's milliseconds (FP32 or INT8)
    latency_binds: bool
    precision: str = "fp32"  # of the model size and peak memory budgets
    size: float | None = None  # the model size budget, bytes
    size_binds: bool = False
    peak: float | None = None  # the peak memory budget, bytes
    peak_binds: bool = False


def default_flops(space: Space, num_classes: int, table: FlopsTable, low: int, high: int) -> tuple[int, str]:
    """The FLOPs budget when none is given, and how it was chosen."""
    if space.spec.mobilenetv2_depths is not None:
        return table.flops(mobilenetv2(space, num_classes)), "MobileNetV2's FLOPs in this space"
    return (low + high) // 2, "the middle of the space's FLOPs range"


def resolve_budgets(flops: float | None, ms: float | None, space: Space, num_classes: int, table: FlopsTable,
                    cost: CostModel, latency: LatencyTable | None, log, size: float | None = None,
                    peak: float | None = None) -> Budgets:
    """The budgets asked (`flops`, `ms`, `size`, `peak`; None: not given) checked against the space; `log` is told of
    a budget that does not bind. With a memory budget, `cost` holds the memory table (`CostModel.with_memory`), and
    without a FLOPs budget the FLOPs do not bind: the memory budgets decide."""
    low, high = (table.flops(extreme(space, num_classes, largest)) for largest in (False, True))
    flops_default = None
    memory_decides = flops is None and (size is not None or peak is not None)
    if memory_decides:
        flops, flops_default = high, "the largest network's FLOPs: the memory budgets decide"
    elif flops is None:
        flops, flops_default = default_flops(space, num_classes, table, low, high)
    if flops < low:
        unit = f" (a number without a unit counts FLOPs: did you mean {flops}M?)" if flops < 1000 else ""
        raise EdgeNASError(f"FLOPs budget {format_flops(flops)} is infeasible: the smallest network of space "
                           f"{space.name} at {space.resolution}x{space.resolution}, width {space.width_mult}, "
                           f"{num_classes} classes has {format_flops(low)} FLOPs{unit}")
    flops_binds = flops < high
    if not flops_binds and not memory_decides:
        log(f"FLOPs budget {format_flops(flops)} does not bind: the largest network has {format_flops(high)} FLOPs")
    latency_binds = False
    if ms is not None:
        latency_binds = _check_latency(flops, ms, space, num_classes, cost, latency, log)
    if size is None and peak is None:
        return Budgets(float(flops), flops_binds, flops_default, ms, latency_binds)
    size_binds, peak_binds = _check_memory(size, peak, space, num_classes, cost, log)
    _check_together(Budgets(float(flops), flops_binds, flops_default, ms, latency_binds, cost.precision,
                            size, size_binds, peak, peak_binds), space, cost)
    return Budgets(float(flops), flops_binds, flops_default, ms, latency_binds, cost.precision, size, size_binds,
                   peak, peak_binds)


def _check_latency(flops: float, ms: float, space: Space, num_classes: int, cost: CostModel, latency: LatencyTable,
                   log) -> bool:
    """Refuse a latency budget that no network meets, alone or with the FLOPs budget; whether it binds."""
    fastest_ms, slowest_ms = cost.ms_range()
    if ms < fastest_ms:
        raise EdgeNASError(f"latency budget {ms:g} ms is infeasible: the fastest network of space {space.name} "
                           f"({num_classes} classes) is predicted at {fastest_ms:.3f} ms by table "
                           f"{latency.name}{_not_smallest(space, num_classes, cost, fastest_ms)}")
    binds = ms < slowest_ms
    if not binds:
        log(f"latency budget {ms:g} ms does not bind: the slowest network is predicted at {slowest_ms:.3f} ms")
    # Both budgets together can be infeasible even when each alone is not.
    fastest = cost.fastest(flops)
    if fastest[1] > ms:
        fewest = cost.fewest_flops(ms)[1]
        raise EdgeNASError(
            f"the budgets {format_flops(flops)} FLOPs and {ms:g} ms cannot be met together by any network of space "
            f"{space.name}: within {format_flops(flops)} FLOPs the fastest is predicted at {fastest[1]:.3f} ms, and "
            f"within {ms:g} ms the fewest FLOPs are {format_flops(fewest)} (table {latency.name})")
    return binds


def _not_smallest(space: Space, num_classes: int, cost: CostModel, fastest_ms: float) -> str:
    """Where the fewest FLOPs are not the fastest, a clause that says so (`edgenas latency` shows both)."""
    smallest = cost.of(preset("smallest", space, num_classes))[1]
    return (f" (the `smallest` preset, of fewest FLOPs, at {smallest:.3f} ms: fewest FLOPs is not fastest)"
            if smallest > fastest_ms + 5e-4 else "")


def _check_memory(size: float | None, peak: float | None, space: Space, num_classes: int, cost: CostModel,
                  log) -> tuple[bool, bool]:
    """Refuse a peak memory budget below the least peak of a network of the space, and a model size budget below the
    least model size within it; whether each binds (the model size judged within the peak memory budget)."""
    where = (f"space {space.name} at {space.resolution}x{space.resolution}, width {space.width_mult}, "
             f"{num_classes} classes")
    precision = cost.precision.upper()
    peak_binds = size_binds = False
    if peak is not None:
        low, high = cost.peak_range()
        _refuse_below(peak, low, "peak memory", f"the network of least peak memory of {where} has {format_bytes(low)} "
                      f"({low:,.0f} bytes) of {precision} activations live at once")
        peak_binds = peak < high
        if not peak_binds:
            log(f"peak memory budget {format_bytes(peak)} does not bind: the largest network needs "
                f"{format_bytes(high)} of {precision} activations")
    if size is not None:
        within = f" within the peak memory budget {format_bytes(peak)}" if peak_binds else ""
        low, high = cost.size_range(cost.allowed(peak) if peak_binds else None)
        _refuse_below(size, low, "model size", f"the smallest network of {where}{within} has {format_bytes(low)} "
                      f"({low:,.0f} bytes) of {precision} weights")
        size_binds = size < high
        if not size_binds:
            log(f"model size budget {format_bytes(size)} does not bind: the largest network{within} has "
                f"{format_bytes(high)} of {precision} weights")
    return size_binds, peak_binds


def _refuse_below(budget: float, low: float, what: str, smallest: str) -> None:
    if budget < low:
        hint = f" (a number without a unit counts bytes: did you mean {budget:g}KB?)" if budget < 1000 else ""
        raise EdgeNASError(f"{what} budget {format_bytes(budget)} ({budget:,.0f} bytes) is infeasible: {smallest}"
                           f"{hint}")


def _check_together(budgets: Budgets, space: Space, cost: CostModel) -> None:
    """Refuse memory budgets that no network meets together with the other budgets (each alone can), naming the
    least model size (or FLOPs) the other budgets leave."""
    allowed = cost.allowed(budgets.peak) if budgets.peak_binds else None
    size = budgets.size if budgets.size_binds else None
    flops = budgets.flops if budgets.flops_binds else None
    costs, limits = cost.constraints(flops, budgets.ms, size)
    if (size is None and allowed is None) or not costs or (allowed is None and len(limits) == 1):
        return  # no memory budget binds, or one budget alone: checked already
    scores = [np.where(allowed[i, : len(c)], 0.0, -np.inf) if allowed is not None else np.zeros(len(c))
              for i, c in enumerate(costs)]
    if knapsack(scores, costs, limits) is not None:
        return
    column = len(limits) - 1 if size is not None else 0  # the model size, or the FLOPs
    others = [k for k in range(len(limits)) if k != column]
    least = knapsack([np.where(np.isfinite(s), -c[:, column], -np.inf) for s, c in zip(scores, costs, strict=True)],
                     [c[:, others] for c in costs], [limits[k] for k in others]) if others else [
        int(np.argmax(np.where(np.isfinite(s), -c[:, column], -np.inf))) for s, c in zip(scores, costs, strict=True)]
    given = ", ".join(text for text, value in (
        (f"{format_flops(budgets.flops)} FLOPs", flops), (f"{budgets.ms:g} ms" if budgets.ms else "", budgets.ms),
        (f"model size {format_bytes(budgets.size or 0)}", size),
        (f"peak memory {format_bytes(budgets.peak or 0)}", allowed)) if value is not None)
    names = ([("FLOPs", cost.fixed_flops, format_flops)] if flops is not None else []) + [
        ("latency", fixed, lambda ms: f"{ms:.3f} ms") for _, fixed in (cost.ms_columns() if budgets.ms else [])] + (
        [("model size", cost.fixed_size, format_bytes)] if size is not None else [])
    reach = ""
    if least is not None:
        name, fixed, shown = names[column]
        total = sum(float(c[j, column]) for c, j in zip(costs, least, strict=True)) + fixed
        reach = f": within the other budgets the least {name} is {shown(total)}"
    raise EdgeNASError(f"the budgets {given} ({cost.precision.upper()}) cannot be met together by any network of "
                       f"space {space.name}{reach}")
