"""The cost model: per-candidate FLOPs and latency of a space, expected costs under alpha, and the budget penalty.

FLOPs come from the fvcore table (`flops.py`), latency from a measured table (`latency.py`) with its calibration
spread over the pieces (scale x median + ms per parameter x parameters; the offset is a fixed cost). Costs are
additive over layers, so the expected cost is differentiable in alpha and the derivation is a knapsack.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .arch import Arch
from .flops import CostTable
from .latency import LatencyTable, arch_keys, block_key, stem_key
from .space import Space


@dataclass
class CostModel:
    """`flops[i, j]` and `ms[i, j]`: cost of candidate j at layer i (0 for the identity and padding; a strided skip
    costs its 1x1 convolution); fixed costs apart."""

    space: Space
    num_classes: int
    flops: Tensor
    fixed_flops: float
    ms: Tensor | None
    fixed_ms: float

    @classmethod
    def build(cls, space: Space, num_classes: int, flops_table: CostTable,
              latency_table: LatencyTable | None = None) -> CostModel:
        width = max(len(layer.choices) for layer in space)
        flops = torch.zeros(len(space), width, dtype=torch.float64)
        ms = torch.zeros(len(space), width, dtype=torch.float64) if latency_table else None
        for i, layer in enumerate(space):
            for j, choice in enumerate(layer.choices):
                flops[i, j] = flops_table.layers[layer.label][choice][0]
                if ms is not None and choice in layer.costly_choices:
                    ms[i, j] = _block_ms(latency_table, block_key(layer, choice),
                                         flops_table.layers[layer.label][choice][1])
        fixed_flops = (flops_table.stem[0] + flops_table.head[0] + (num_classes - 1) * flops_table.per_class[0])
        fixed_ms = 0.0
        if latency_table is not None:
            c = latency_table.data["calibration"]
            fixed_params = (flops_table.stem[1] + flops_table.head[1] + (num_classes - 1) * flops_table.per_class[1])
            fixed_ms = (c.get("scale", 1.0) * (latency_table.median(stem_key(space))
                                               + latency_table.head_ms(space, num_classes))
                        + c.get("ms_per_mparam", 0.0) * fixed_params / 1e6 + c.get("offset_ms", 0.0))
        return cls(space, num_classes, flops, float(fixed_flops), ms, fixed_ms)

    def expected(self, probs: Tensor) -> tuple[Tensor, Tensor | None]:
        """Expected FLOPs and milliseconds of a network drawn from per-layer probabilities (differentiable)."""
        flops = (probs * self.flops.to(probs)).sum() + self.fixed_flops
        ms = (probs * self.ms.to(probs)).sum() + self.fixed_ms if self.ms is not None else None
        return flops, ms

    def of(self, arch: Arch) -> tuple[int, float | None]:
        """FLOPs and calibrated latency of an architecture, from the same numbers the search uses."""
        index = [layer.choices.index(c) for layer, c in zip(self.space, arch.layers, strict=True)]
        flops = self.fixed_flops + sum(float(self.flops[i, j]) for i, j in enumerate(index))
        ms = None if self.ms is None else self.fixed_ms + sum(float(self.ms[i, j]) for i, j in enumerate(index))
        return round(flops), ms


def _block_ms(table: LatencyTable, key: str, params: int) -> float:
    c = table.data["calibration"]
    return c.get("scale", 1.0) * table.median(key) + c.get("ms_per_mparam", 0.0) * params / 1e6


def budget_penalty(model: CostModel, probs: Tensor, flops_budget: float | None, ms_budget: float | None,
                   strength: float, form: str = "over") -> Tensor:
    """`over`: strength x (relu(E[FLOPs] / budget - 1) + relu(E[ms] / budget - 1)): zero inside the budget, a pull
    toward cheaper candidates that grows with the excess outside it. `two-sided`: strength x (|E[FLOPs] / budget -
    1| + |E[ms] / budget - 1|), TuNAS's absolute reward: it also pulls toward costlier candidates below the budget."""
    shape = torch.relu if form == "over" else torch.abs
    flops, ms = model.expected(probs)
    penalty = probs.new_zeros(())
    if flops_budget is not None:
        penalty = penalty + shape(flops / flops_budget - 1)
    if ms_budget is not None and ms is not None:
        penalty = penalty + shape(ms / ms_budget - 1)
    return strength * penalty


@dataclass(frozen=True)
class CostObjective:
    """The budget penalty of architecture step `step` (counted over the whole search): its strength rises linearly
    from 0 to `strength` over the first `ramp_steps` steps, so that cost cannot decide before accuracy can."""

    form: str
    strength: float
    ramp_steps: int
    flops_budget: float | None
    ms_budget: float | None

    def strength_at(self, step: int) -> float:
        if self.ramp_steps <= 0:
            return self.strength
        return self.strength * min(1.0, step / self.ramp_steps)

    def __call__(self, model: CostModel, probs: Tensor, step: int) -> Tensor:
        return budget_penalty(model, probs, self.flops_budget, self.ms_budget, self.strength_at(step), self.form)


def check_keys(model: CostModel, table: LatencyTable, arch: Arch) -> None:
    """Every key the architecture needs exists (a missing one raises, naming it)."""
    for key in arch_keys(arch, model.space):
        table.median(key)
