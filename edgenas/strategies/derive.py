"""Derivation: the architecture that maximises the summed log-probability of its choices under FLOPs and latency
budgets, solved as a multiple-choice knapsack by dynamic programming.

One budget: exact, over the Pareto front of (cost, score) of partial architectures, layer by layer (a partial
architecture is dropped only when another costs no more and scores at least as well). Two budgets: over a grid
of 400 x 400 cost steps (three budgets, as a FLOPs budget with a latency table whose calibration has a cache term:
100 x 100 x 100; four, with a model size budget as well: 30 steps each), costs rounded to the nearest step; the
winner's exact costs are checked, and if rounding let it exceed a budget the grid budget is tightened and the
problem solved again. An infeasible problem gives None.

With floors (the least summed cost k wanted: a budget to fill, not just to meet) the Pareto front is no longer
exact (a cheaper partial architecture that scores better may end below the floor), so the floored problem runs on
the grid, of 20,000 steps for one budget, with the same exact check and retry at both ends of the band.

Costs may be negative (a calibration's cost per piece can make a cheap block cost less than nothing): each layer's
costs are shifted by the layer's least, and the budgets and floors by their sum, so the grid only sees costs from
0. Rounding can hide the few architectures of a budget just above the cheapest reachable: where the grid finds
none, the exact front of the cheapest architectures (`cost.cheapest`) gives the most probable one of them that fits.
"""

from __future__ import annotations

import numpy as np

from edgenas.cost.cost_model import cheapest

GRID_1D = 20000
GRID_2D = 400
GRID_3D = 100
GRID_4D = 30


def knapsack(scores: list[np.ndarray], costs: list[np.ndarray], budgets: list[float],
             floors: list[float] | None = None) -> list[int] | None:
    """Per layer, the index of the chosen option.

    scores[i][j]: value of option j at layer i (-inf for unavailable options); costs[i][j, k]: its cost under
    constraint k; budgets[k]: the limit on the summed cost k (fixed costs already removed); floors[k], when given,
    the least summed cost k accepted (0: none).
    """
    budgets = np.asarray(budgets, dtype=np.float64)
    if len(budgets) not in (1, 2, 3, 4):
        raise ValueError("one to four budgets")
    floors = np.zeros_like(budgets) if floors is None else np.asarray(floors, dtype=np.float64)
    available = [np.isfinite(s) for s in scores]
    if not all(a.any() for a in available):
        return None
    # From the least cost each layer can take: every cost from 0 (a budget below the sum of the least is infeasible).
    least = [np.asarray(c, dtype=np.float64)[a].min(0) for c, a in zip(costs, available, strict=True)]
    costs = [np.asarray(c, dtype=np.float64) - m for c, m in zip(costs, least, strict=True)]
    slack = 1e-9 * np.maximum(1.0, np.abs(budgets))  # a budget at the least total, summed in another order
    budgets = budgets - np.sum(least, 0)
    floors = np.where(floors > 0, np.maximum(0.0, floors - np.sum(least, 0)), 0.0)  # 0 stays none
    if np.any(budgets < -slack) or np.any(floors > budgets + slack):
        return None
    budgets = np.maximum(budgets, 0.0)
    if len(budgets) == 1 and not np.any(floors > 0):
        return _pareto(scores, [c[:, 0] for c in costs], float(budgets[0]))
    return _grid(scores, costs, budgets, floors) or _cheapest_that_fits(scores, costs, available, budgets, floors)


def _grid(scores, costs, budgets, floors) -> list[int] | None:
    """The knapsack on the grid, the winner's exact costs checked; None where the grid finds none that fits."""
    grid = {1: GRID_1D, 2: GRID_2D, 3: GRID_3D, 4: GRID_4D}[len(budgets)]
    limit, low = budgets.copy(), floors.copy()
    for _ in range(8):
        choice = _solve(scores, costs, limit, grid, low)
        if choice is None:
            return None
        total = sum(costs[i][j] for i, j in enumerate(choice))
        over, under = total - budgets, floors - total
        tolerance = 1e-9 * np.maximum(1.0, budgets)
        if np.all(over <= tolerance) and np.all(under <= tolerance):
            return choice
        # Rounding let it through: move the offending end of the band inwards and retry.
        step = limit / grid
        limit = limit - np.where(over > tolerance, over + step, 0.0)
        low = low + np.where(under > tolerance, under + step, 0.0)
        if np.any(low > limit):
            return None
    return None


def _cheapest_that_fits(scores, costs, available, budgets, floors) -> list[int] | None:
    """The most probable of the cheapest architectures (the exact front) within the budgets and floors."""
    index, totals = cheapest(costs, available)
    tolerance = 1e-9 * np.maximum(1.0, budgets)
    fits = np.all(totals <= budgets + tolerance, 1) & np.all(totals >= floors - tolerance, 1)
    if not fits.any():
        return None
    value = np.array([sum(s[j] for s, j in zip(scores, row, strict=True)) for row in index[fits]])
    return index[fits][int(np.argmax(value))].tolist()


def _solve(scores, costs, limit, grid, low=None) -> list[int] | None:
    k = len(limit)
    unit = np.where(limit > 0, limit / grid, 1.0)
    shape = (grid + 1,) * k
    value = np.full(shape, -np.inf)
    value[(0,) * k] = 0.0
    back = []
    for score, cost in zip(scores, costs, strict=True):
        # An option over the limit alone cannot fit (no cost is negative); the others rounded to the nearest step.
        steps = np.where(cost > limit, grid + 1, np.rint(cost / unit)).astype(np.int64)
        best = np.full(shape, -np.inf)
        arg = np.full(shape, -1, dtype=np.int16)
        for j, (s, step) in enumerate(zip(score, steps, strict=True)):
            if not np.isfinite(s) or np.any(step > grid):
                continue
            shifted = np.full(shape, -np.inf)
            target = tuple(slice(int(d), None) for d in step)
            source = tuple(slice(0, grid + 1 - int(d)) for d in step)
            shifted[target] = value[source] + s
            better = shifted > best
            best[better] = shifted[better]
            arg[better] = j
        value = best
        back.append((arg, steps))
    if low is not None and np.any(low > 0):
        for d in range(k):  # cells below the floor are out
            first = int(np.ceil(low[d] / unit[d] - 1e-9))
            index = [slice(None)] * k
            index[d] = slice(0, max(0, first))
            value[tuple(index)] = -np.inf
    if not np.isfinite(value).any():
        return None
    cell = np.unravel_index(int(np.argmax(value)), shape)
    choice = []
    for arg, steps in reversed(back):
        j = int(arg[cell])
        choice.append(j)
        cell = tuple(int(c - d) for c, d in zip(cell, steps[j], strict=True))
    return choice[::-1]


def _pareto(scores: list[np.ndarray], costs: list[np.ndarray], budget: float) -> list[int] | None:
    """Exact one-budget knapsack: keep, after each layer, the partial architectures no other one dominates."""
    finite = [np.isfinite(s) for s in scores]
    if not all(f.any() for f in finite):
        return None
    # The cheapest completion of the layers still to come, to drop partial architectures that cannot fit.
    cheapest = [float(c[f].min()) for c, f in zip(costs, finite, strict=True)]
    rest = np.concatenate([np.cumsum(cheapest[::-1])[::-1][1:], [0.0]])
    cost, score = np.zeros(1), np.zeros(1)
    parents = []
    for i, (s, c, f) in enumerate(zip(scores, costs, finite, strict=True)):
        options = np.flatnonzero(f)
        total = (cost[:, None] + c[options][None, :]).ravel()
        value = (score[:, None] + s[options][None, :]).ravel()
        parent = np.repeat(np.arange(len(cost)), len(options))
        choice = np.tile(options, len(cost))
        fits = total <= budget - rest[i] + 1e-9 * max(1.0, abs(budget))
        if not fits.any():
            return None
        total, value, parent, choice = total[fits], value[fits], parent[fits], choice[fits]
        order = np.lexsort((-value, total))  # by cost, then best score first
        total, value, parent, choice = total[order], value[order], parent[order], choice[order]
        best_before = np.maximum.accumulate(np.concatenate([[-np.inf], value[:-1]]))
        keep = value > best_before  # strictly better than everything that costs no more
        cost, score = total[keep], value[keep]
        parents.append((parent[keep], choice[keep]))
    index = int(np.argmax(score))
    picked = []
    for parent, choice in reversed(parents):
        picked.append(int(choice[index]))
        index = int(parent[index])
    return picked[::-1]
