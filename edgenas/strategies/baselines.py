"""Baselines that need no supernet: a random architecture within the budget (and above its floor), and MobileNetV2
width-scaled to the budget."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from edgenas.cost.flops import count_flops
from edgenas.cost.latency import LatencyTable
from edgenas.cost.presets import mobilenetv2
from edgenas.errors import EdgeNASError
from edgenas.space.arch import Arch, make_arch
from edgenas.space.network import build_model
from edgenas.space.spec import Space, get_space
from edgenas.strategies.choice import Band

MAX_DRAWS = 10000


@dataclass(frozen=True)
class MemoryBudgets:
    """Model size and peak memory budgets in bytes (None: not given) at a deployment precision."""

    precision: str
    size: float | None
    peak: float | None

    def met_by(self, model, arch: Arch) -> bool:
        """Whether the built network `model` of `arch` is within both, counted on the whole network."""
        from edgenas.cost.memory_table import memory_of_network

        counted = memory_of_network(model, arch, self.precision)
        return ((self.size is None or counted["model_size_bytes"] <= self.size)
                and (self.peak is None or counted["peak_memory_bytes"] <= self.peak))


def random_within_budget(limits: Band, space: Space, num_classes: int, generator: torch.Generator) -> Arch:
    """Uniformly random choices within the band: at most each budget and at least each floor (`choice.band`: the
    budget floor of a binding budget; 0 gives any architecture within the budget). MAX_DRAWS draws, the first in
    the band wins, so the pick is uniform over the band. If the band is so narrow that the draws all miss, random
    scores solved by the knapsack with the floors give a random architecture in it, or without the floors if none
    reaches them."""
    index = torch.stack([torch.randint(len(layer.choices), (MAX_DRAWS,), generator=generator) for layer in space],
                        1).numpy()
    ok = limits.holds(index)
    if ok.any():
        choice = [int(j) for j in index[int(np.argmax(ok))]]
    else:
        width = limits.tables[0].shape[1]  # tables are padded to the widest layer: padding is never chosen
        scores = [np.where(np.arange(width) < len(layer.choices),
                           torch.rand(width, generator=generator).double().numpy(), -np.inf) for layer in space]
        choice = limits.solve(scores)
        if choice is None:
            choice = limits.solve(scores, [0.0] * len(limits.floors))
        if choice is None:
            raise EdgeNASError("no architecture of the space meets the budget")
    return make_arch(space, [layer.choices[j] for layer, j in zip(space, choice, strict=True)], num_classes)


def mobilenetv2_within_budget(space_name: str, resolution: int, num_classes: int, flops_budget: float | None,
                              ms_budget: float | None, table: LatencyTable | None,
                              memory: MemoryBudgets | None = None) -> Arch:
    """MobileNetV2 in the space at the largest width multiplier (0.10 to 2.00, steps of 0.05) within the budget.

    Cost grows with width, so the widths are bisected. Each width tried counts the one network with fvcore (the
    same figure as its space's table, which would count every piece of a space that is used once). With a latency
    budget only the table's own width can be predicted, so only that width is tried. Memory budgets, where given,
    are counted on the same built network.
    """
    widths = [step / 20 for step in range(2, 41)]
    if ms_budget is not None and table is not None:
        widths = [float(table.data["width_mult"])]

    def fits(width: float) -> bool:
        space = get_space(space_name, resolution, width)
        arch = mobilenetv2(space, num_classes)
        model = build_model(arch)
        if flops_budget is not None and count_flops(model, (3, resolution, resolution)) > flops_budget:
            return False
        if memory is not None and not memory.met_by(model, arch):
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
