"""Fair weight training: which path a supernet weight step runs.

`uniform` draws each layer's candidate uniformly over its active ones (SPOS), so that every candidate's weights
train about equally often whatever alpha says; `alpha` draws from the architecture probabilities (ProxylessNAS).
The filter warm-up (TuNAS) runs each layer's largest active candidate with a probability that falls linearly from
1 at the warm-up's first step to 0 after `share` of its steps: the wide and large-kernel slices, which the small
candidates never touch, then start trained too. "Largest" is the candidate of most FLOPs (ties: the first).

The sandwich rule (`--sandwich`, BigNAS) adds to each weight step the path of every layer's largest active candidate,
trained on the labels, and the path of the smallest, which learns with the sampled path from the largest's outputs
(in-place distillation): the weights that the small and the large networks share are trained for both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgenas.cost.cost_model import CostModel
from edgenas.space.supernet import Supernet


def largest_active(net: Supernet, cost: CostModel) -> tuple[int, ...]:
    """Per layer, the index of the active candidate of most FLOPs (the first among equals)."""
    flops = cost.flops.masked_fill(~net.active.cpu(), -1.0)
    return tuple(int(row.argmax()) for row in flops)


def smallest_active(net: Supernet, cost: CostModel) -> tuple[int, ...]:
    """Per layer, the index of the active candidate of fewest FLOPs (the first among equals; a skip where active)."""
    flops = cost.flops.masked_fill(~net.active.cpu(), float("inf"))
    return tuple(int(row.argmin()) for row in flops)


def sandwich_paths(net: Supernet, cost: CostModel) -> tuple[list[tuple[int]], list[tuple[int]]]:
    """The sandwich rule's two fixed paths (BigNAS, Once-for-All): every layer's largest active candidate (the
    teacher of in-place distillation) and its smallest."""
    return ([(i,) for i in largest_active(net, cost)], [(i,) for i in smallest_active(net, cost)])


def largest_probability(step: int, decay_steps: int) -> float:
    """The chance that a layer runs its largest candidate at warm-up step `step`: 1 - step / decay_steps, then 0."""
    if decay_steps <= 0:
        return 0.0
    return max(0.0, 1.0 - step / decay_steps)


@dataclass(frozen=True)
class WeightSampler:
    """Paths for one epoch's weight steps: `first_step` is this epoch's first step counted from the warm-up's
    start, `decay_steps` the steps over which the largest candidate's forced share falls to 0 (0: no warm-up)."""

    uniform: bool
    largest: tuple[int, ...] = ()
    first_step: int = 0
    decay_steps: int = 0

    def __call__(self, net: Supernet, generator: torch.Generator, step: int) -> list[tuple[int, ...]]:
        path = net.sample(generator, 1, uniform=self.uniform)
        p = largest_probability(self.first_step + step, self.decay_steps)
        if p <= 0:
            return path
        coins = torch.rand(len(path), generator=generator).tolist()
        return [(self.largest[i],) if coin < p else drawn for i, (coin, drawn) in enumerate(zip(coins, path,
                                                                                             strict=True))]


def sampler(net: Supernet, cost: CostModel, scheme: str, share: float = 0.0, warmup_steps: int = 0,
            first_step: int = 0) -> WeightSampler:
    """The sampler of scheme `uniform` or `alpha`; with a filter warm-up of `share` of `warmup_steps` steps when
    this epoch is in the warm-up (`first_step` its first step), else without."""
    decay = round(share * warmup_steps)
    if decay <= first_step:
        return WeightSampler(scheme == "uniform")
    return WeightSampler(scheme == "uniform", largest_active(net, cost), first_step, decay)
