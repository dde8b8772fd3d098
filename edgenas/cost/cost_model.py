"""The cost model: per-candidate FLOPs and latency of a space, expected costs under alpha, and the budget penalty.

FLOPs come from the fvcore table (`flops.py`), latency from a measured table (`latency.py`) with its calibration
spread over the pieces (scale x median + ms per call + ms per parameter x parameters; the offset is a fixed cost).
Costs are additive over layers, so the expected cost is differentiable in alpha and the derivation is a knapsack.
A calibration with a cache term predicts the larger of two additive costs, without it and with it (each million
parameters beyond the cache charged): `ms_columns` gives both, and a budget on the latency is a budget on each.
What a space can reach (the fastest network under a FLOPs budget, the fewest FLOPs under a latency budget) comes
from one exact Pareto front of the summed costs (`cheapest`), so that every message names the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from edgenas.cost.flops import FlopsTable
from edgenas.cost.latency import LatencyTable, apply_calibration, arch_keys, block_key, stem_key
from edgenas.cost.memory import ELEMENT_BYTES
from edgenas.cost.memory_table import MemoryTable
from edgenas.space.arch import Arch
from edgenas.space.spec import Space


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
    # With a memory table (`with_memory`): bytes of each candidate's weights and its peak activation bytes at the
    # deployment precision (0 for the identity and padding), the stem's and head's apart.
    precision: str | None = None
    size: Tensor | None = None
    fixed_size: float = 0.0
    peak: Tensor | None = None
    fixed_peak: float = 0.0
    # The tables as `expected` needs them, per (device, dtype): copied once, not at every architecture step.
    _copies: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def build(cls, space: Space, num_classes: int, flops_table: FlopsTable,
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

    def with_memory(self, table: MemoryTable, precision: str) -> CostModel:
        """This model with the memory table's model size and peak memory at `precision` (fp32 or int8)."""
        size, peak = (torch.zeros_like(self.flops) for _ in range(2))
        for i, layer in enumerate(self.space):
            for j, choice in enumerate(layer.choices):
                counts = table.layers[layer.label][choice]
                size[i, j] = counts.size(precision)
                peak[i, j] = counts.peak * ELEMENT_BYTES[precision]
        self.precision, self.size, self.peak = precision, size, peak
        self.fixed_size = float(table.fixed_size(self.num_classes, precision))
        self.fixed_peak = float(table.fixed_peak(self.num_classes, precision))
        return self

    def allowed(self, peak_budget: float | None) -> np.ndarray | None:
        """Per layer and candidate (padded to the widest layer), whether its peak memory is within `peak_budget`
        (None without a budget): the peak cap as a mask."""
        if peak_budget is None:
            return None
        mask = (self.peak <= peak_budget).numpy()
        for i, layer in enumerate(self.space):
            mask[i, len(layer.choices):] = False
        return mask

    def size_range(self, allowed: np.ndarray | None = None) -> tuple[float, float]:
        """The least and the most model size of a network of the space (of the `allowed` candidates, default all),
        in bytes (exact: sums of extremes)."""
        mask = self.allowed(np.inf) if allowed is None else allowed  # the padding past a layer's choices left out
        ends = [self.fixed_size + float(sum(reduce(self.size[i][torch.as_tensor(mask[i])])
                                            for i in range(len(self.space)))) for reduce in (torch.min, torch.max)]
        return ends[0], ends[1]

    def peak_range(self) -> tuple[float, float]:
        """The least and the most peak memory of a network of the space, in bytes (exact: maxima of extremes)."""
        ends = [max(self.fixed_peak, max(float(reduce(self.peak[i, : len(layer.choices)]))
                                         for i, layer in enumerate(self.space))) for reduce in (torch.min, torch.max)]
        return ends[0], ends[1]

    def memory_of(self, arch: Arch) -> tuple[int, int]:
        """Model size and peak memory of an architecture in bytes, from the same numbers the search uses."""
        index = [layer.choices.index(c) for layer, c in zip(self.space, arch.layers, strict=True)]
        size = self.fixed_size + sum(float(self.size[i, j]) for i, j in enumerate(index))
        return round(size), round(max(self.fixed_peak, *(float(self.peak[i, j]) for i, j in enumerate(index))))

    def expected_size(self, probs: Tensor) -> Tensor:
        """Expected model size in bytes of a network drawn from per-layer probabilities (differentiable)."""
        key = ("size", probs.device, probs.dtype)
        if key not in self._copies:
            self._copies[key] = self.size.to(probs)
        return (probs * self._copies[key]).sum() + self.fixed_size

    def ms_columns(self) -> list[tuple[Tensor, float]]:
        """The additive latency costs whose maximum is the prediction: (per-candidate ms, fixed ms) each."""
        if self.ms is None:
            return []
        cache = [(self.ms_cache, self.fixed_ms_cache)] if self.ms_cache is not None else []
        return [(self.ms, self.fixed_ms), *cache]

    def constraints(self, flops_budget: float | None, ms_budget: float | None,
                    size_budget: float | None = None) -> tuple[list, list[float]]:
        """The knapsack's view of the budgets: per layer, its candidates' costs (candidates x constraints, a numpy
        array), and each constraint's budget with the fixed costs taken off; ([], []) without a budget."""
        columns = [(self.flops, flops_budget - self.fixed_flops)] if flops_budget is not None else []
        if ms_budget is not None:
            columns += [(table, ms_budget - fixed) for table, fixed in self.ms_columns()]
        if size_budget is not None:
            columns.append((self.size, size_budget - self.fixed_size))
        if not columns:
            return [], []
        costs = [torch.stack([table[i, : len(layer.choices)] for table, _ in columns], 1).numpy()
                 for i, layer in enumerate(self.space)]
        return costs, [budget for _, budget in columns]

    def expected(self, probs: Tensor) -> tuple[Tensor, Tensor | None]:
        """Expected FLOPs and milliseconds of a network drawn from per-layer probabilities (differentiable; with a
        cache term, the larger of the two expected costs)."""
        key = (probs.device, probs.dtype)
        if key not in self._copies:
            self._copies[key] = (self.flops.to(probs), [(table.to(probs), fixed) for table, fixed in self.ms_columns()])
        flops_table, ms_columns = self._copies[key]
        flops = (probs * flops_table).sum() + self.fixed_flops
        columns = [(probs * table).sum() + fixed for table, fixed in ms_columns]
        return flops, (torch.stack(columns).max() if columns else None)

    def of(self, arch: Arch) -> tuple[int, float | None]:
        """FLOPs and calibrated latency of an architecture, from the same numbers the search uses."""
        index = [layer.choices.index(c) for layer, c in zip(self.space, arch.layers, strict=True)]
        flops = self.fixed_flops + sum(float(self.flops[i, j]) for i, j in enumerate(index))
        columns = [fixed + sum(float(table[i, j]) for i, j in enumerate(index)) for table, fixed in self.ms_columns()]
        return round(flops), (max(columns) if columns else None)

    def ms_range(self) -> tuple[float, float]:
        """The predicted latency of the fastest network (`fastest`) and of the slowest, in ms."""
        def slowest(table: Tensor, fixed: float) -> float:  # the largest column's largest sum: exact
            return fixed + float(sum(table[i, : len(layer.choices)].max() for i, layer in enumerate(self.space)))

        return self.fastest()[1], max(slowest(t, f) for t, f in self.ms_columns())

    def fastest(self, flops_budget: float | None = None) -> tuple[list[int], float] | None:
        """The network of least predicted latency (the table's calibration, its cache term included) among those
        within `flops_budget` FLOPs (default: all): per layer its candidate index, and its latency in ms; None if
        no network is within the budget. Exact."""
        index, totals = self._front()
        ms = totals[:, 1:].max(1)
        ms[totals[:, 0] > (np.inf if flops_budget is None else flops_budget)] = np.inf
        best = int(np.argmin(ms))
        return (index[best].tolist(), float(ms[best])) if np.isfinite(ms[best]) else None

    def fewest_flops(self, ms_budget: float) -> tuple[list[int], float] | None:
        """The network of fewest FLOPs among those predicted within `ms_budget` ms: per layer its candidate index,
        and its FLOPs; None if no network is. Exact."""
        index, totals = self._front()
        flops = np.where(totals[:, 1:].max(1) <= ms_budget, totals[:, 0], np.inf)
        best = int(np.argmin(flops))
        return (index[best].tolist(), float(flops[best])) if np.isfinite(flops[best]) else None

    def _front(self) -> tuple[np.ndarray, np.ndarray]:
        """`cheapest` over FLOPs and the latency columns, fixed costs included in the totals."""
        columns = [(self.flops, self.fixed_flops), *self.ms_columns()]
        costs = [np.stack([table[i, : len(layer.choices)].numpy() for table, _ in columns], 1)
                 for i, layer in enumerate(self.space)]
        index, totals = cheapest(costs)
        return index, totals + np.array([fixed for _, fixed in columns])


def cheapest(costs: list[np.ndarray], available: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every architecture that no other one matches or beats in each summed cost at once (the Pareto front, each
    cost minimised), exactly: per architecture its option index at each layer (archs x layers) and its totals
    (archs x costs). `costs[i][j, k]`: cost k of option j at layer i; `available[i]`: the options layer i may take
    (default: all). Whatever minimises a function of the totals that grows with each of them (the larger latency
    column under a FLOPs budget, the FLOPs under a latency budget) is among them. Costs of the shipped spaces' tables
    move together, so the front stays small (1 to 6 architectures on mobile-small and mobile): layer by layer, a
    partial architecture is kept only if no kept one is as cheap in every cost."""
    width = costs[0].shape[1] if costs else 0
    index, totals = np.zeros((1, 0), dtype=np.int64), np.zeros((1, width))
    for i, cost in enumerate(costs):
        options = np.arange(len(cost)) if available is None else np.flatnonzero(available[i])
        if not len(options):  # a layer with nothing to take: no architecture
            return np.zeros((0, len(costs)), dtype=np.int64), np.zeros((0, width))
        sums = (totals[:, None, :] + np.asarray(cost, dtype=np.float64)[options][None, :, :]).reshape(-1, width)
        keep = _undominated(sums)
        index = np.column_stack([index[keep // len(options)], options[keep % len(options)]])
        totals = sums[keep]
    return index, totals


def _undominated(points: np.ndarray) -> np.ndarray:
    """Indices of the points (rows) that no other point matches or beats in every column (of equal ones, one)."""
    kept: list[int] = []
    for n in np.lexsort(points.T[::-1]):  # a point can only be matched or beaten by one sorted before it
        if not kept or not np.any(np.all(points[kept] <= points[n], axis=1)):
            kept.append(int(n))
    return np.array(kept, dtype=np.int64)


def _additive(calibration: dict) -> dict:
    """The calibration without its cache term: what sums over pieces (the cache column adds the term back)."""
    return {**calibration, "ms_per_mparam_over_cache": 0.0}


def _block_ms(table: LatencyTable, key: str, params: int) -> float:
    """A block's share of the prediction: one call of its median and parameters (the offset is a fixed cost)."""
    return apply_calibration(table.median(key), params, 1, {**_additive(table.data["calibration"]), "offset_ms": 0.0})


def budget_penalty(model: CostModel, probs: Tensor, flops_budget: float | None, ms_budget: float | None,
                   strength: float, form: str = "over", size_budget: float | None = None) -> Tensor:
    """`over`: strength x (relu(E[FLOPs] / budget - 1) + relu(E[ms] / budget - 1)): zero inside the budget, a pull
    toward cheaper candidates that grows with the excess outside it. `two-sided`: strength x (|E[FLOPs] / budget -
    1| + |E[ms] / budget - 1|), TuNAS's absolute reward: it also pulls toward costlier candidates below the budget.
    A model size budget adds its own term of the same form. Peak memory has none: candidates over its cap are
    removed before training, so every network the search can draw is within it."""
    shape = torch.relu if form == "over" else torch.abs
    flops, ms = model.expected(probs)
    penalty = probs.new_zeros(())
    if flops_budget is not None:
        penalty = penalty + shape(flops / flops_budget - 1)
    if ms_budget is not None and ms is not None:
        penalty = penalty + shape(ms / ms_budget - 1)
    if size_budget is not None:
        penalty = penalty + shape(model.expected_size(probs) / size_budget - 1)
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
    size_budget: float | None = None

    def strength_at(self, step: int) -> float:
        if self.ramp_steps <= 0:
            return self.strength
        return self.strength * min(1.0, step / self.ramp_steps)

    def __call__(self, model: CostModel, probs: Tensor, step: int) -> Tensor:
        return budget_penalty(model, probs, self.flops_budget, self.ms_budget, self.strength_at(step), self.form,
                              self.size_budget)


def check_keys(model: CostModel, table: LatencyTable, arch: Arch) -> None:
    """Every key the architecture needs exists (a missing one raises, naming it)."""
    for key in arch_keys(arch, model.space):
        table.median(key)
