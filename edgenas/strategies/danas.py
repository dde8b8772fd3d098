"""DA-NAS and its baselines as plans: phases of supernet training over growing class sets, with pruning between.

`danas`: a difficulty probe on all classes (uniform paths, no architecture steps) ranks classes easy to hard;
then each stage trains on the easiest `fraction` of classes and ends by pruning every layer's weakest candidates.
`full`: one stage on all classes and all candidates, as many epochs as the DA-NAS schedule in total (or `--epochs`),
no pruning: the ProxylessNAS-like ablation. `random` and `mobilenetv2` need no supernet (see `baselines.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cost import CostModel
from ..supernet import Supernet
from .derive import knapsack
from .schedule import Stage, classes_admitted


@dataclass(frozen=True)
class Phase:
    name: str  # "probe" or "stage N"
    epochs: int
    fraction: float  # of classes, in the class order
    prune_after: bool
    train_arch: bool
    uniform: bool


def plan(strategy: str, stages: list[Stage], probe_epochs: int, epochs: int | None = None) -> list[Phase]:
    if strategy == "danas":
        phases = [Phase("probe", probe_epochs, 1.0, False, False, True)] if probe_epochs > 0 else []
        return phases + [Phase(f"stage {i}", s.epochs, s.fraction, True, True, False) for i, s in enumerate(stages)]
    if strategy == "full":
        total = epochs if epochs is not None else sum(s.epochs for s in stages)
        return [Phase("full", total, 1.0, False, True, False)]
    raise ValueError(strategy)


def class_order(per_class_accuracy: list[float]) -> list[int]:
    """Classes from easiest (highest probe accuracy) to hardest; ties by class index."""
    return sorted(range(len(per_class_accuracy)), key=lambda c: (-per_class_accuracy[c], c))


def admitted(order: list[int], fraction: float) -> list[int]:
    return sorted(order[: classes_admitted(fraction, len(order))])


def min_cost_feasible(net: Supernet, cost: CostModel, flops_budget: float | None, ms_budget: float | None) -> bool:
    """Whether some architecture of the active candidates meets every budget."""
    return derive(net, cost, flops_budget, ms_budget, uniform=True) is not None


def prune(net: Supernet, ratio: float, cost: CostModel, flops_budget: float | None,
          ms_budget: float | None) -> tuple[list[list[str]], bool]:
    """Prune every layer by `ratio`. If that leaves no architecture within the budgets, the candidates of the most
    probable architecture that met them before pruning are given back. Returns (dropped per layer, restored)."""
    keep = derive(net, cost, flops_budget, ms_budget)
    dropped = net.prune(ratio)
    if keep is None or min_cost_feasible(net, cost, flops_budget, ms_budget):
        return dropped, False
    for i, (layer, j) in enumerate(zip(net.space, keep, strict=True)):
        if not net.active[i, j]:
            net.active[i, j] = True
            dropped[i].remove(layer.choices[j])
    net.changed()
    return dropped, True


def derive(net: Supernet, cost: CostModel, flops_budget: float | None, ms_budget: float | None,
           uniform: bool = False) -> list[int] | None:
    """Per layer, the candidate index that maximises the summed log-probability within the budgets (knapsack).

    Without any budget this is each layer's most probable candidate.
    """
    probs = net.probs().detach().double().cpu().numpy()
    active = net.active.cpu().numpy()
    with np.errstate(divide="ignore"):
        scores = [np.where(active[i], 0.0 if uniform else np.log(probs[i]), -np.inf) for i in range(len(probs))]
    columns, budgets = [], []
    if flops_budget is not None:
        columns.append(cost.flops.numpy())
        budgets.append(flops_budget - cost.fixed_flops)
    if ms_budget is not None and cost.ms is not None:
        columns.append(cost.ms.numpy())
        budgets.append(ms_budget - cost.fixed_ms)
    if not columns:
        return [int(np.argmax(s)) for s in scores]
    costs = [np.stack([c[i] for c in columns], axis=1) for i in range(len(scores))]
    return knapsack(scores, costs, budgets)
