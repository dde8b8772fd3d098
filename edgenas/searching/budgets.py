"""The budgets of a search, decided once: the FLOPs budget (given, or a default said with its reason), the latency
budget, whether each binds, and the refusal of a budget no network of the space can meet, before any training."""

from __future__ import annotations

from dataclasses import dataclass

from edgenas.cost.cost_model import CostModel
from edgenas.cost.flops import FlopsTable
from edgenas.cost.latency import LatencyTable
from edgenas.cost.presets import extreme, mobilenetv2, preset
from edgenas.errors import EdgeNASError
from edgenas.space.spec import Space
from edgenas.units import format_flops


@dataclass(frozen=True)
class Budgets:
    flops: float
    flops_binds: bool  # below the largest network's FLOPs
    flops_default: str | None  # how the FLOPs budget was chosen when none was given (None when one was)
    ms: float | None  # the latency budget, in the table's milliseconds (FP32 or INT8)
    latency_binds: bool


def default_flops(space: Space, num_classes: int, table: FlopsTable, low: int, high: int) -> tuple[int, str]:
    """The FLOPs budget when none is given, and how it was chosen."""
    if space.spec.mobilenetv2_depths is not None:
        return table.flops(mobilenetv2(space, num_classes)), "MobileNetV2's FLOPs in this space"
    return (low + high) // 2, "the middle of the space's FLOPs range"


def resolve_budgets(flops: float | None, ms: float | None, space: Space, num_classes: int, table: FlopsTable,
                    cost: CostModel, latency: LatencyTable | None, log) -> Budgets:
    """The budgets asked (`flops`, `ms`; None: not given) checked against the space; `log` is told of a budget
    that does not bind."""
    low, high = (table.flops(extreme(space, num_classes, largest)) for largest in (False, True))
    flops_default = None
    if flops is None:
        flops, flops_default = default_flops(space, num_classes, table, low, high)
    if flops < low:
        unit = f" (a number without a unit counts FLOPs: did you mean {flops}M?)" if flops < 1000 else ""
        raise EdgeNASError(f"FLOPs budget {format_flops(flops)} is infeasible: the smallest network of space "
                           f"{space.name} at {space.resolution}x{space.resolution}, width {space.width_mult}, "
                           f"{num_classes} classes has {format_flops(low)} FLOPs{unit}")
    flops_binds = flops < high
    if not flops_binds:
        log(f"FLOPs budget {format_flops(flops)} does not bind: the largest network has {format_flops(high)} FLOPs")
    latency_binds = False
    if ms is not None:
        latency_binds = _check_latency(flops, ms, space, num_classes, cost, latency, log)
    return Budgets(float(flops), flops_binds, flops_default, ms, latency_binds)


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
