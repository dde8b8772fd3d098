"""Baselines that need no supernet: a random architecture within the budget, and MobileNetV2 width-scaled to it."""

from __future__ import annotations

import torch

from ..arch import Arch, make_arch
from ..cost import CostModel
from ..errors import EdgeNASError
from ..flops import count_flops
from ..latency import LatencyTable
from ..model import build_model
from ..presets import mobilenetv2
from ..space import get_space
from .derive import knapsack

MAX_DRAWS = 10000


def random_within_budget(cost: CostModel, flops_budget: float | None, ms_budget: float | None,
                         generator: torch.Generator) -> Arch:
    """Uniformly random choices, redrawn until within budget (at most MAX_DRAWS draws); if the budget is so tight
    that random draws keep missing, random scores solved by the knapsack give a random feasible architecture."""
    space = cost.space
    for _ in range(MAX_DRAWS):
        layers = [layer.choices[int(torch.randint(len(layer.choices), (1,), generator=generator))] for layer in space]
        arch = make_arch(space, layers, cost.num_classes)
        flops, ms = cost.of(arch)
        if (flops_budget is None or flops <= flops_budget) and (ms_budget is None or ms is None or ms <= ms_budget):
            return arch
    scores = [torch.rand(len(layer.choices), generator=generator).double().numpy() for layer in space]
    costs, budgets = cost.constraints(flops_budget, ms_budget)
    choice = knapsack(scores, costs, budgets)
    if choice is None:
        raise EdgeNASError("no architecture of the space meets the budget")
    return make_arch(space, [layer.choices[j] for layer, j in zip(space, choice, strict=True)], cost.num_classes)


def mobilenetv2_within_budget(space_name: str, resolution: int, num_classes: int, flops_budget: float | None,
                              ms_budget: float | None, table: LatencyTable | None) -> Arch:
    """MobileNetV2 in the space at the largest width multiplier (0.10 to 2.00, steps of 0.05) within the budget.

    Cost grows with width, so the widths are bisected. Each width tried counts the one network with fvcore (the
    same figure as its space's table, which would count every piece of a space that is used once). With a latency
    budget only the table's own width can be predicted, so only that width is tried.
    """
    widths = [step / 20 for step in range(2, 41)]
    if ms_budget is not None and table is not None:
        widths = [float(table.data["width_mult"])]

    def fits(width: float) -> bool:
        space = get_space(space_name, resolution, width)
        arch = mobilenetv2(space, num_classes)
        if flops_budget is not None and count_flops(build_model(arch), (3, resolution, resolution)) > flops_budget:
            return False
        if ms_budget is not None and table is not None:
            return table.data["space_hash"] == space.hash and table.predict(arch) <= ms_budget
        return True

    low, high = 0, len(widths)  # widths[:low] fit (checked), widths[high:] do not
    while low < high:
        middle = (low + high) // 2
        if fits(widths[middle]):
            low = middle + 1
        else:
            high = middle
    if low == 0:
        raise EdgeNASError(f"no width of MobileNetV2 in space {space_name} meets the budget")
    return mobilenetv2(get_space(space_name, resolution, widths[low - 1]), num_classes)
