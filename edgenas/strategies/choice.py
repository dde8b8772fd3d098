"""The final choice: which architecture of the pruned supernet the search derives.

Candidates fill the budget: each costs at most the budget and at least `floor` x each binding FLOPs or latency budget.
They are the most probable such architecture (the knapsack with a floor) and architectures drawn from alpha's
probabilities, or uniformly from each layer's surviving candidates (the pool `uniform`: the pruned space as SPOS
samples it, where alpha's preferences are not to be trusted), that land in the band (rejection, at most
`DRAWS_PER_CANDIDATE`, or for `uniform` `UNIFORM_DRAWS_PER_CANDIDATE`, draws per candidate wanted, deduplicated). With
`measure`, each is extracted from the supernet with its inherited weights, its batch norm recalibrated on the same few
training batches (at most one pass over the training split: a small dataset's images seen again teach batch norm
nothing new), and scored by its search-validation accuracy: the best wins, ties going to the higher log-probability
(as SPOS and Once-for-All choose). With `train`, each is instead trained on its own from its initial weights for a few
epochs (the retraining's settings, the same batches for every candidate) and scored by its search-validation accuracy:
on CIFAR-10 with little data the supernet's inherited weights rank architectures the wrong way round, a short training
the right way (docs/BENCHMARKS.md). Without either, the knapsack's one is the choice.
If no architecture of the active candidates reaches a floor, the floor is lowered to the highest cost reachable
within the budgets, and a notice says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from edgenas.cost.cost_model import CostModel
from edgenas.data.batches import batches
from edgenas.data.dataset import Dataset
from edgenas.space.arch import make_arch
from edgenas.space.network import build_model
from edgenas.space.supernet import Supernet, recalibrate_batch_norm
from edgenas.strategies.derive import knapsack
from edgenas.training import distributed
from edgenas.training.device import Device
from edgenas.training.train import TrainSettings, evaluate, make_optimizer, train_epoch

DRAWS_PER_CANDIDATE = 200
# Uniform draws land in a narrow band far less often than alpha's, which the cost term centres on the budget: on
# mobile-small at 40% of the largest FLOPs about 1 in 1,000 lands in [0.95B, B] (as many as the random baseline's).
UNIFORM_DRAWS_PER_CANDIDATE = 10_000
RECALIBRATION_BATCHES = 20


@dataclass
class Candidate:
    index: list[int]  # per layer, the candidate index
    layers: list[str]
    source: str  # "knapsack" or "sampled"
    flops: int
    predicted_ms: float | None
    log_prob: float
    val_acc: float | None = None
    val_loss: float | None = None  # --choice-score loss: mean search-validation cross-entropy
    chosen: bool = False

    def to_dict(self) -> dict:
        """Its fields; `val_loss` only where measured, so that runs scored by accuracy keep their files' keys."""
        return {k: v for k, v in asdict(self).items() if not (k == "val_loss" and v is None)}


@dataclass
class Band:
    """Per cost column (FLOPs, then latency when given, then model size when it binds): the budget and the floor,
    both with fixed costs included; and the candidates within a binding peak memory budget (a cap per candidate)."""

    tables: list[np.ndarray]  # layers x candidates
    fixed: list[float]
    budgets: list[float]
    floors: list[float]  # 0 where no floor applies
    names: list[str] = field(default_factory=lambda: ["FLOPs", "latency (ms)"])
    allowed: np.ndarray | None = None  # layers x candidates; None: every candidate
    solved: list[int] | None = None  # the columns the knapsack is given (None: all); the others cannot bind

    def column(self, name: str) -> int | None:
        return self.names.index(name) if name in self.names else None

    def totals(self, index: np.ndarray) -> np.ndarray:
        """Costs of architectures `index` (archs x layers): archs x columns."""
        rows = np.arange(index.shape[1])
        return np.stack([f + t[rows, index].sum(1) for t, f in zip(self.tables, self.fixed, strict=True)], 1)

    def holds(self, index: np.ndarray, floors: list[float] | None = None) -> np.ndarray:
        """Which architectures `index` (archs x layers) cost at most each budget and at least each floor."""
        totals = self.totals(index)
        floors = self.floors if floors is None else floors
        within = np.all(totals <= np.array(self.budgets) * (1 + 1e-12), 1) & np.all(totals >= np.array(floors), 1)
        if self.allowed is not None:
            within &= self.allowed[np.arange(index.shape[1]), index].all(1)
        return within

    def solve(self, scores: list[np.ndarray], floors: list[float] | None = None) -> list[int] | None:
        floors = self.floors if floors is None else floors
        if self.allowed is not None:
            scores = [np.where(self.allowed[i, : len(s)], s, -np.inf) for i, s in enumerate(scores)]
        keep = range(len(self.tables)) if self.solved is None else self.solved
        costs = [np.stack([self.tables[k][i] for k in keep], 1) for i in range(len(scores))]
        return knapsack(scores, costs, [self.budgets[k] - self.fixed[k] for k in keep],
                        [max(0.0, floors[k] - self.fixed[k]) if floors[k] > 0 else 0.0 for k in keep])


def band(cost: CostModel, flops_budget: float, ms_budget: float | None, floor: float, flops_binds: bool,
         latency_binds: bool, size_budget: float | None = None, allowed: np.ndarray | None = None) -> Band:
    """The band of a search's budgets; `size_budget` a binding model size budget (with its floor, like FLOPs),
    `allowed` the candidates within a binding peak memory budget (`CostModel.allowed`)."""
    tables, fixed, budgets, floors = [cost.flops.numpy()], [cost.fixed_flops], [flops_budget], [
        floor * flops_budget if flops_binds else 0.0]
    names = ["FLOPs"]
    if ms_budget is not None:
        # The floor on the cost without the cache term: reaching it there reaches it for the prediction, the larger.
        for k, (table, fixed_ms) in enumerate(cost.ms_columns()):
            tables.append(table.numpy())
            fixed.append(fixed_ms)
            budgets.append(ms_budget)
            floors.append(floor * ms_budget if latency_binds and k == 0 else 0.0)
            names.append("latency (ms)" if k == 0 else "latency with the cache term (ms)")
    if size_budget is None:
        return Band(tables, fixed, budgets, floors, names, allowed)
    tables, fixed, budgets = [*tables, cost.size.numpy()], [*fixed, cost.fixed_size], [*budgets, size_budget]
    floors, names = [*floors, floor * size_budget], [*names, "model size (bytes)"]
    # A column no architecture can exceed, without a floor, constrains nothing: the knapsack is spared it (finer grid).
    solved = [k for k, (t, f, b, lo) in enumerate(zip(tables, fixed, budgets, floors, strict=True))
              if lo > 0 or f + t.max(1).sum() > b]
    return Band(tables, fixed, budgets, floors, names, allowed, solved or [0])


def _log_probs(net: Supernet) -> np.ndarray:
    probs = net.probs().detach().double().cpu().numpy()
    with np.errstate(divide="ignore"):
        return np.where(net.active.cpu().numpy(), np.log(probs), -np.inf)


def reachable_floors(net: Supernet, limits: Band, notices: list[str]) -> list[float]:
    """The band's floors, each lowered to the highest cost reachable within the budgets where it is not reached."""
    active = net.active.cpu().numpy()
    floors = list(limits.floors)
    if limits.solve([np.where(a, 0.0, -np.inf) for a in active]) is not None:
        return floors
    active = active if limits.allowed is None else active & limits.allowed
    names = limits.names
    for k, floor in enumerate(floors):
        if floor <= 0:
            continue
        scores = [np.where(active[i], limits.tables[k][i], -np.inf) for i in range(len(active))]
        best = limits.solve(scores, [0.0] * len(floors))
        if best is None:
            continue
        highest = float(limits.totals(np.array([best]))[0, k])
        if highest < floor:
            notices.append(f"the budget floor of {names[k]} ({floor:.6g}, {floor / limits.budgets[k]:.0%} of the "
                           f"budget) is not reachable with the remaining candidates: the most expensive architecture "
                           f"within the budgets costs {highest:.6g} ({highest / limits.budgets[k]:.1%}); the floor "
                           f"is lowered to it")
            floors[k] = highest
    return floors


def candidates(net: Supernet, cost: CostModel, limits: Band, count: int, generator: torch.Generator,
               notices: list[str], uniform: bool = False) -> tuple[list[Candidate], list[float]]:
    """The knapsack's most probable architecture in the band, then up to `count - 1` distinct ones that land in it,
    drawn from alpha (or with `uniform`, uniformly from each layer's active candidates); and the floors used
    (lowered where unreachable)."""
    logp = _log_probs(net)
    floors = reachable_floors(net, limits, notices)
    best = limits.solve(list(logp), floors)
    if best is None and floors != limits.floors:
        # A floor lowered to the highest reachable cost admits that one architecture exactly, which the knapsack's
        # grid can round below it: a thousandth lower lets the grid see it.
        best = limits.solve(list(logp), [f * (1 - 1e-3) for f in floors])
    if best is None:
        notices.append("no architecture fills the budget floors together: the floors are dropped")
        floors = [0.0] * len(floors)
        best = limits.solve(list(logp), floors)
    if best is None:
        return [], floors
    chosen = [np.array(best)]
    if count > 1:
        active = net.active.double().cpu()
        probs = active if uniform else net.probs().detach().double().cpu() + 1e-12 * active
        draws = count * (UNIFORM_DRAWS_PER_CANDIDATE if uniform else DRAWS_PER_CANDIDATE)
        index = torch.stack([torch.multinomial(row, draws, replacement=True, generator=generator) for row in probs],
                            1).numpy()
        ok = limits.holds(index, floors)
        seen = {tuple(best)}
        for row in index[ok]:
            key = tuple(int(j) for j in row)
            if key not in seen:
                seen.add(key)
                chosen.append(row)
                if len(chosen) == count:
                    break
    rows = np.arange(logp.shape[0])
    out = []
    ms = limits.column("latency (ms)")
    for n, row in enumerate(chosen):
        totals = limits.totals(row[None, :])[0]
        out.append(Candidate([int(j) for j in row], [layer.choices[int(j)] for layer, j in zip(net.space, row,
                                                                                               strict=True)],
                             "knapsack" if n == 0 else "sampled", round(float(totals[0])),
                             float(totals[ms]) if ms is not None else None, float(logp[rows, row].sum())))
    return out, floors


def inherited(net: Supernet, layers: list[str], data: Dataset, batch_size: int, seed: int):
    """The standalone network of `layers` with the supernet's weights, batch norm recalibrated on the same
    RECALIBRATION_BATCHES augmented training batches (fewer when one pass over the training split takes fewer)
    whatever the architecture (drawn from `seed`)."""
    model = net.extract(make_arch(net.space, layers, net.num_classes))
    count = min(RECALIBRATION_BATCHES, math.ceil(data.size("train") / batch_size))
    stream = batches(data, "train", batch_size, generator=torch.Generator().manual_seed(seed), train=True)
    recalibrate_batch_norm(model, (b for _, b in zip(range(count), stream, strict=False)))
    return model


def train_from_scratch(arch, data: Dataset, settings: TrainSettings, device: Device, seed: int,
                       batch_seed: int | None = None, on_epoch: Callable[[dict], None] = lambda metrics: None,
                       on_step: Callable[[], None] = lambda: None):
    """The network of `arch` trained from scratch for `settings.epochs` epochs (TrainSettings): its initial weights
    and dropout drawn from `seed + 1` as retraining draws them, its batches from `batch_seed` (default `seed + 3`),
    so that the result is reproducible and the caller's random stream untouched. `on_epoch` gets each epoch's
    metrics, `on_step` is called after each step (a time estimate's clock)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        model = device.prepare(build_model(arch))
        steps = settings.epochs * max(1, data.size("train") // (settings.batch_size * device.ranks.world))
        optimizer, scheduler = make_optimizer(model, settings, steps)
        replica = distributed.wrap(model, device.ranks, device.device)
        generator = torch.Generator().manual_seed(seed + 3 if batch_seed is None else batch_seed)
        scaler = device.scaler()
        for _ in range(settings.epochs):
            on_epoch(train_epoch(replica, data, optimizer, scheduler, settings, generator, device, scaler, on_step))
    return model


def trained_accuracy(arch, data: Dataset, settings: TrainSettings, device: Device, seed: int,
                     on_epoch: Callable[[dict], None] = lambda metrics: None,
                     on_step: Callable[[], None] = lambda: None) -> float:
    """Search-validation accuracy of `arch` after `train_from_scratch`: the same batches for every architecture."""
    return evaluate(train_from_scratch(arch, data, settings, device, seed, on_epoch=on_epoch, on_step=on_step),
                    data, "val", device)


def choose(found: list[Candidate], accuracy: Callable[[Candidate], float] | None, by_loss: bool = False) -> int:
    """Index of the chosen candidate: by `accuracy` (or, `by_loss`, by the lowest `val_loss`, which `accuracy` then
    fills; ties: higher log-probability, then the earlier), or the first (the knapsack's) when not measured. Marks
    it and fills each candidate's `val_acc`."""
    if accuracy is not None:
        for c in found:
            c.val_acc = accuracy(c)
        best = max(range(len(found)), key=lambda n: (-found[n].val_loss if by_loss else found[n].val_acc,
                                                     found[n].log_prob, -n))
    else:
        best = 0
    found[best].chosen = True
    return best


METHODS = {"eval": "search-validation accuracy of each candidate with the supernet's weights, batch norm recalibrated "
                   "on the same training batches; ties: higher log-probability",
           "eval-loss": "lowest search-validation loss (mean cross-entropy) of each candidate with the supernet's "
                        "weights, batch norm recalibrated on the same training batches; ties: higher log-probability",
           "train": "search-validation accuracy of each candidate trained from scratch for --choice-epochs epochs "
                    "(the retraining's settings, the same batches for every candidate); ties: higher log-probability",
           "alpha": "the knapsack's most probable architecture within the band (not measured)"}


def describe(found: list[Candidate], limits: Band, floors: list[float], notices: list[str], how: str) -> dict:
    return {"method": METHODS[how],
            "budgets": limits.budgets, "floors_asked": limits.floors, "floors": floors, "notices": notices,
            "units": "FLOPs (fvcore table), then milliseconds (latency table) where a latency budget is given, then "
                     "bytes of the weights where a model size budget binds", "columns": limits.names,
            "candidates": [{k: v for k, v in c.to_dict().items() if k != "index"} for c in found]}
