"""The cost model: per-candidate FLOPs and latency of a space, expected costs under alpha, and the budget penalty.

FLOPs come from the fvcore table (`flops.py`), latency from a measured table (`latency.py`) with its calibration
spread over the pieces (scale x median + ms per call + ms per parameter x parameters; the offset is a fixed cost).
Costs are additive over layers, so the expected cost is differentiable in alpha and the derivation is a knapsack.
A calibration with a cache term predicts the larger of two additive costs, without it and with it (each million
parameters beyond the cache charged): `ms_columns` gives both, and a budget on the latency is a budget on each.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .arch import Arch
from .flops import CostTable
from .latency import LatencyTable, apply_calibration, arch_keys, block_key, stem_key
from .space import Space


@dataclass
class CostModel:
    """`flops[i, j]` and `ms[i, j]`: cost of candidate j at layer i (0 for the identity and padding; a strided skip
    costs its 1x1 convolution); fixed costs apart. `ms_cache`, `fixed_ms_cache`: the same with the cache term, when
    the table's calibration has one."""

    space: Space
    num_classes: int
    flops: Tensor
    fixed_flops: float
    ms: Tensor | None
    fixed_ms: float
    ms_cache: Tensor | None = None
    fixed_ms_cache: float = 0.0

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
        if latency_table is None:
            return cls(space, num_classes, flops, float(fixed_flops), None, 0.0)
        c = latency_table.data["calibration"]
        fixed_params = (flops_table.stem[1] + flops_table.head[1] + (num_classes - 1) * flops_table.per_class[1])
        ends_ms = latency_table.median(stem_key(space)) + latency_table.head_ms(space, num_classes)
        fixed_ms = apply_calibration(ends_ms, fixed_params, 2, _additive(c))  # the stem and the head: 2 calls
        over = c.get("ms_per_mparam_over_cache", 0.0)
        if not over:
            return cls(space, num_classes, flops, float(fixed_flops), ms, fixed_ms)
        params = torch.zeros_like(ms)
        for i, layer in enumerate(space):
            for j, choice in enumerate(layer.choices):
                params[i, j] = flops_table.layers[layer.label][choice][1] / 1e6
        return cls(space, num_classes, flops, float(fixed_flops), ms, fixed_ms, ms + over * params,
                   fixed_ms + over * (fixed_params / 1e6 - c.get("cache_mparams", 0.0)))

    def ms_columns(self) -> list[tuple[Tensor, float]]:
        """The additive latency costs whose maximum is the prediction: (per-candidate ms, fixed ms) each."""
        if self.ms is None:
            return []
        cache = [(self.ms_cache, self.fixed_ms_cache)] if self.ms_cache is not None else []
        return [(self.ms, self.fixed_ms), *cache]

    def constraints(self, flops_budget: float | None, ms_budget: float | None) -> tuple[list, list[float]]:
        """The knapsack's view of the budgets: per layer, its candidates' costs (candidates x constraints, a numpy
        array), and each constraint's budget with the fixed costs taken off; ([], []) without a budget."""
        columns = [(self.flops, flops_budget - self.fixed_flops)] if flops_budget is not None else []
        if ms_budget is not None:
            columns += [(table, ms_budget - fixed) for table, fixed in self.ms_columns()]
        if not columns:
            return [], []
        costs = [torch.stack([table[i, : len(layer.choices)] for table, _ in columns], 1).numpy()
                 for i, layer in enumerate(self.space)]
        return costs, [budget for _, budget in columns]

    def expected(self, probs: Tensor) -> tuple[Tensor, Tensor | None]:
        """Expected FLOPs and milliseconds of a network drawn from per-layer probabilities (differentiable; with a
        cache term, the larger of the two expected costs)."""
        flops = (probs * self.flops.to(probs)).sum() + self.fixed_flops
        columns = [(probs * table.to(probs)).sum() + fixed for table, fixed in self.ms_columns()]
        return flops, (torch.stack(columns).max() if columns else None)

    def of(self, arch: Arch) -> tuple[int, float | None]:
        """FLOPs and calibrated latency of an architecture, from the same numbers the search uses."""
        index = [layer.choices.index(c) for layer, c in zip(self.space, arch.layers, strict=True)]
        flops = self.fixed_flops + sum(float(self.flops[i, j]) for i, j in enumerate(index))
        columns = [fixed + sum(float(table[i, j]) for i, j in enumerate(index)) for table, fixed in self.ms_columns()]
        return round(flops), (max(columns) if columns else None)

    def ms_range(self) -> tuple[float, float]:
        """A lower bound on the fastest network's predicted latency (exact without a cache term) and the slowest's."""
        def ends(table: Tensor, fixed: float, pick) -> float:
            return fixed + float(sum(pick(table[i, : len(layer.choices)]) for i, layer in enumerate(self.space)))

        columns = self.ms_columns()
        return (max(ends(t, f, torch.min) for t, f in columns), max(ends(t, f, torch.max) for t, f in columns))


def _additive(calibration: dict) -> dict:
    """The calibration without its cache term: what sums over pieces (the cache column adds the term back)."""
    return {**calibration, "ms_per_mparam_over_cache": 0.0}


def _block_ms(table: LatencyTable, key: str, params: int) -> float:
    """A block's share of the prediction: one call of its median and parameters (the offset is a fixed cost)."""
    return apply_calibration(table.median(key), params, 1, {**_additive(table.data["calibration"]), "offset_ms": 0.0})


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
