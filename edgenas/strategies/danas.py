"""DA-NAS and its baselines as plans: phases of supernet training over growing class sets, with pruning between.

`danas`: a difficulty probe on all classes (uniform paths, no architecture steps) ranks classes easy to hard;
a warm-up trains the weights alone on the first stage's classes (DA-NAS warms up 10 epochs); then each stage trains
on the easiest `fraction` of classes and ends by pruning every layer's weakest candidates.
`full`: the same warm-up on all classes, then one stage on all classes and all candidates, as many epochs as the
DA-NAS schedule in total (or `--epochs`), no pruning: the ProxylessNAS-like ablation. `random` and `mobilenetv2`
need no supernet (see `baselines.py`).

Pruning never leaves the budgets unreachable (the candidates of the best feasible architecture are given back),
nor the largest reachable cost below `floor` x a binding budget (dropped candidates are given back, most
expensive first, until the most expensive architecture of the active candidates reaches it again).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgenas.cost.cost_model import CostModel
from edgenas.space.supernet import Supernet
from edgenas.strategies.derive import knapsack
from edgenas.strategies.schedule import Stage, classes_admitted


@dataclass(frozen=True)
class Phase:
    name: str  # "probe", "warmup", "stage N" or "full"
    epochs: int
    fraction: float  # of classes, in the class order
    prune_after: bool
    train_arch: bool
    uniform: bool
    scheduled: bool = True  # under the weights' cosine schedule (which spans the warm-up and the stages)


def plan(strategy: str, stages: list[Stage], probe_epochs: int, epochs: int | None = None,
         warmup_epochs: int = 0) -> list[Phase]:
    """The phases of a run; `warmup_epochs` already at the schedule's scale."""
    if strategy == "danas":
        phases = [Phase("probe", probe_epochs, 1.0, False, False, True, False)] if probe_epochs > 0 else []
        if warmup_epochs > 0:
            phases.append(Phase("warmup", warmup_epochs, stages[0].fraction, False, False, False))
        return phases + [Phase(f"stage {i}", s.epochs, s.fraction, True, True, False) for i, s in enumerate(stages)]
    if strategy == "full":
        total = epochs if epochs is not None else sum(s.epochs for s in stages)
        warmup = [Phase("warmup", warmup_epochs, 1.0, False, False, False)] if warmup_epochs > 0 else []
        return [*warmup, Phase("full", total, 1.0, False, True, False)]
    raise ValueError(strategy)


def class_order(per_class_accuracy: list[float]) -> list[int]:
    """Classes from easiest (highest probe accuracy) to hardest; ties by class index."""
    return sorted(range(len(per_class_accuracy)), key=lambda c: (-per_class_accuracy[c], c))


def admitted(order: list[int], fraction: float) -> list[int]:
    return sorted(order[: classes_admitted(fraction, len(order))])


def min_cost_feasible(net: Supernet, cost: CostModel, flops_budget: float | None, ms_budget: float | None,
                      size_budget: float | None = None) -> bool:
    """Whether some architecture of the active candidates meets every budget."""
    return derive(net, cost, flops_budget, ms_budget, uniform=True, size_budget=size_budget) is not None


@dataclass
class Pruned:
    dropped: list[list[str]]  # per layer, the choices dropped (after any given back)
    restored: bool  # the best feasible architecture's candidates were given back
    given_back: list[list[str]]  # per layer, the choices given back to keep the budget floor reachable


def prune(net: Supernet, ratio: float, cost: CostModel, flops_budget: float | None, ms_budget: float | None,
          scores=None, floor: float = 0.0, undecided=None, size_budget: float | None = None) -> Pruned:
    """Prune every layer by `ratio` on alpha (or on `scores`, higher is better). If that leaves no architecture
    within the budgets, the candidates of the most probable architecture that met them before pruning are given
    back; if it leaves the most expensive architecture below `floor` x a (binding) budget, dropped candidates are
    given back, most expensive first, until it reaches it again. (A peak memory budget needs nothing here: the
    candidates over it were never active.)"""
    keep = derive(net, cost, flops_budget, ms_budget, size_budget=size_budget)
    dropped = net.prune(ratio, scores, undecided)
    restored = keep is not None and not min_cost_feasible(net, cost, flops_budget, ms_budget, size_budget)
    if restored:
        for i, (layer, j) in enumerate(zip(net.space, keep, strict=True)):
            if not net.active[i, j]:
                net.active[i, j] = True
                dropped[i].remove(layer.choices[j])
    given_back = _keep_floor(net, cost, dropped, floor, flops_budget, ms_budget, size_budget)
    net.changed()
    return Pruned(dropped, restored, given_back)


def largest_cost(net: Supernet, table) -> float:
    """The summed per-layer maximum of `table` (layers x candidates) over the active candidates, fixed cost apart."""
    return float(table.masked_fill(~net.active.cpu(), -float("inf")).max(1).values.clamp(min=0).sum())


def largest_cost_of_layer(net: Supernet, table, layer: int) -> float:
    return float(table[layer].masked_fill(~net.active[layer].cpu(), -float("inf")).max().clamp(min=0))


def _keep_floor(net: Supernet, cost: CostModel, dropped: list[list[str]], floor: float, flops_budget: float | None,
                ms_budget: float | None, size_budget: float | None = None) -> list[list[str]]:
    given = [[] for _ in dropped]
    if floor <= 0:
        return given
    columns = [(cost.flops, flops_budget, cost.fixed_flops)] if flops_budget is not None else []
    if ms_budget is not None and cost.ms is not None:
        columns.append((cost.ms, ms_budget, cost.fixed_ms))
    if size_budget is not None:
        columns.append((cost.size, size_budget, cost.fixed_size))
    layers = list(net.space)
    for table, budget, fixed in columns:
        target = floor * budget - fixed  # what the layers' own costs must reach
        candidates = sorted(((float(table[i, layers[i].choices.index(c)]), i, c) for i, row in enumerate(dropped)
                             for c in row), key=lambda t: (-t[0], t[1]))
        for value, i, choice in candidates:
            if largest_cost(net, table) >= target:
                break
            if value <= largest_cost_of_layer(net, table, i):
                continue  # the layer has a costlier candidate already: giving this one back raises nothing
            net.active[i, layers[i].choices.index(choice)] = True
            dropped[i].remove(choice)
            given[i].append(choice)
    return given


def derive(net: Supernet, cost: CostModel, flops_budget: float | None, ms_budget: float | None,
           uniform: bool = False, size_budget: float | None = None) -> list[int] | None:
    """Per layer, the candidate index that maximises the summed log-probability within the budgets (knapsack).

    Without any budget this is each layer's most probable candidate.
    """
    probs = net.probs().detach().double().cpu().numpy()
    active = net.active.cpu().numpy()
    with np.errstate(divide="ignore"):
        scores = [np.where(active[i], 0.0 if uniform else np.log(probs[i]), -np.inf) for i in range(len(probs))]
    costs, budgets = cost.constraints(flops_budget, ms_budget, size_budget)
    if not costs:
        return [int(np.argmax(s)) for s in scores]
    return knapsack([s[: len(layer.choices)] for s, layer in zip(scores, net.space, strict=True)], costs, budgets)
