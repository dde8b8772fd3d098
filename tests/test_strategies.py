"""Issue 14's search mechanisms on the tiny space and the digits: warm-up, fair weight sampling, the measured pruning
score, the two-sided ramped cost, the budget floor in pruning and in the knapsack, the choice by measured accuracy,
the saved supernet, and their settings."""

import itertools
import json
import math
import re

import numpy as np
import pytest
import torch
from conftest import CHEAP, CHEAP_ARGS
from typer.testing import CliRunner

from edgenas.cli.app import app
from edgenas.cost.cost_model import CostModel, CostObjective, budget_penalty
from edgenas.cost.flops import cost_table
from edgenas.cost.presets import preset
from edgenas.data.dataset import load_dataset
from edgenas.errors import EdgeNASError
from edgenas.runs.settings import OLD_BEHAVIOUR, SearchSettings
from edgenas.searching.run import search
from edgenas.space.spec import get_space
from edgenas.space.supernet import Supernet
from edgenas.strategies import choice, danas, fairness, scoring
from edgenas.strategies.baselines import random_within_budget
from edgenas.strategies.derive import knapsack
from edgenas.strategies.schedule import Stage
from edgenas.training.device import Device
from edgenas.training.train import evaluate

CLASSES = 10


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cost(tiny):
    return CostModel.build(tiny, CLASSES, cost_table(tiny))


@pytest.fixture(scope="module")
def digits():
    return load_dataset(None, 16)


def _supernet(space, seed=0, alpha_seed=None):
    torch.manual_seed(seed)
    net = Supernet(space, CLASSES)
    if alpha_seed is not None:
        with torch.no_grad():
            net.alpha.copy_(torch.randn(net.alpha.shape, generator=torch.Generator().manual_seed(alpha_seed)))
    return net


def _archs(net):
    return list(itertools.product(*[[j for j in range(net.active.shape[1]) if net.active[i, j]]
                                    for i in range(net.active.shape[0])]))


def _flops(cost, arch):
    return cost.fixed_flops + sum(float(cost.flops[i, j]) for i, j in enumerate(arch))


# ------------------------------------------------------------------ a whole search with every mechanism on
@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny, cost):
    budget = 250_000
    settings = SearchSettings(space="tiny", schedule="0.5:1,1.0:1", epochs_scale=1.0, warmup_epochs=2,
                              retrain_epochs=0, batch_size=64, flops=budget, budget_floor=0.8, score_paths=12,
                              choice="eval", choice_candidates=6)
    out = tmp_path_factory.mktemp("strategies") / "run"
    result = search(settings, out=out, progress=False, log=lambda *a: None)
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    return result, history, budget


def test_no_architecture_step_and_no_pruning_before_the_warmup_ends(run):
    _, history, _ = run
    phases = [row["phase"] for row in history if "epoch" in row]
    assert phases == ["probe", "warmup", "warmup", "stage 0", "stage 1"]
    first_stage = next(k for k, row in enumerate(history) if row["phase"].startswith("stage"))
    before = history[:first_stage]
    assert all(row["arch_steps"] == 0 and "pruned" not in row for row in before)
    for row in before:  # alpha untouched: every layer's probabilities still uniform
        for probs in row["probs"]:
            assert max(probs) == pytest.approx(min(probs))
    warmups = [row for row in before if row["phase"] == "warmup"]
    assert all(row["admitted"] == history[first_stage]["admitted"] and row["classes"] == 5 for row in warmups)
    assert history[first_stage]["arch_steps"] > 0


def test_pruning_records_its_measured_scores(run, tiny):
    _, history, _ = run
    pruning = [row for row in history if "pruned" in row]
    assert len(pruning) == 2 and all(row["prune_score"] == "eval" for row in pruning)
    first = pruning[0]["scores"]
    for layer, losses, paths in zip(tiny, first["val_loss"], first["paths"], strict=True):
        assert len(losses) == len(layer.choices) and all(v is not None and v > 0 for v in losses)
        assert min(paths) >= 12 // len(layer.choices)  # every candidate measured, equally often within one
    # The candidates dropped are the ones of highest loss (ties against the later one).
    for layer, losses, dropped in zip(tiny, first["val_loss"], pruning[0]["pruned"], strict=True):
        keep = [c for c in layer.choices if c not in dropped]
        assert max(losses[layer.choices.index(c)] for c in keep) <= min(
            (losses[layer.choices.index(c)] for c in dropped), default=math.inf)


def test_the_choice_is_the_best_measured_candidate_within_floor_and_budget(run):
    result, _, budget = run
    found = json.loads((result.run / "candidates.json").read_text())
    candidates = found["candidates"]
    assert 1 <= len(candidates) <= 6 and sum(c["chosen"] for c in candidates) == 1
    assert len({tuple(c["layers"]) for c in candidates}) == len(candidates)
    floor = found["floors"][0]
    assert floor == pytest.approx(0.8 * budget) or found["notices"]
    assert all(floor <= c["flops"] <= budget for c in candidates)
    chosen = next(c for c in candidates if c["chosen"])
    assert (chosen["val_acc"], chosen["log_prob"]) == max((c["val_acc"], c["log_prob"]) for c in candidates)
    assert result.summary["arch"]["layers"] == chosen["layers"] and result.summary["flops"] == chosen["flops"]
    assert result.summary["inherited_val_acc"] == pytest.approx(chosen["val_acc"])


def test_the_final_supernet_is_saved_and_loads_safely(run, tiny):
    result, history, _ = run
    state = torch.load(result.run / "supernet.pt", weights_only=True)
    net = Supernet(tiny, CLASSES)
    net.load_state_dict(state)
    assert net.active_counts() == history[-1]["active"]
    assert torch.equal(state["alpha"], net.alpha.detach())
    config = json.loads((result.run / "config.json").read_text())["settings"]
    assert config["warmup_epochs"] == 2 and config["choice"] == "eval" and config["budget_floor"] == 0.8


# ------------------------------------------------------------------ fair weight sampling
def test_filter_warmup_draws_the_largest_candidate_as_often_as_it_says(tiny, cost):
    net = _supernet(tiny, alpha_seed=0)  # alpha far from uniform: the uniform scheme must ignore it
    epochs, per_epoch, share = 4, 60, 0.5
    largest = fairness.largest_active(net, cost)
    assert largest == tuple(int(cost.flops[i, : len(layer.choices)].argmax()) for i, layer in enumerate(tiny))
    g = torch.Generator().manual_seed(0)
    counts, expected, variance = np.zeros(len(tiny)), np.zeros(len(tiny)), np.zeros(len(tiny))
    for epoch in range(epochs):
        sampler = fairness.sampler(net, cost, "uniform", share, epochs * per_epoch, epoch * per_epoch)
        for step in range(per_epoch):
            path = sampler(net, g, step)
            p = fairness.largest_probability(epoch * per_epoch + step, round(share * epochs * per_epoch))
            for i, layer in enumerate(tiny):
                q = p + (1 - p) / len(layer.choices)
                counts[i] += path[i][0] == largest[i]
                expected[i] += q
                variance[i] += q * (1 - q)
    assert np.all(np.abs(counts - expected) <= 4 * np.sqrt(variance)), (counts, expected)
    # After the decay the largest is no more frequent than under uniform sampling: 1/3 or 1/4 of the draws.
    assert fairness.largest_probability(120, 120) == 0.0 and fairness.largest_probability(0, 120) == 1.0


def test_alpha_sampling_without_warmup_draws_as_before(tiny, cost):
    net = _supernet(tiny, alpha_seed=1)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    sampler = fairness.sampler(net, cost, "alpha")
    assert [sampler(net, g1, k) for k in range(20)] == [net.sample(g2, 1) for _ in range(20)]


# ------------------------------------------------------------------ the cost objective
def test_two_sided_cost_below_the_budget_moves_probability_to_costlier_candidates(tiny, cost):
    net = _supernet(tiny)
    start = net.probs().detach()
    start_flops = float(cost.expected(start)[0])
    largest = max(_flops(cost, a) for a in _archs(net))
    budget = start_flops + 0.6 * (largest - start_flops)
    assert budget_penalty(cost, net.probs(), budget, None, 1.0, "over").item() == 0.0  # the old form: no pull
    opt = torch.optim.Adam([net.alpha], lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        budget_penalty(cost, net.probs(), budget, None, 1.0, "two-sided").backward()
        opt.step()
    end = net.probs().detach()
    assert start_flops < float(cost.expected(end)[0])
    for i, layer in enumerate(tiny):
        costliest = int(cost.flops[i, : len(layer.choices)].argmax())
        assert end[i, costliest] > start[i, costliest], layer.label


def test_cost_strength_ramps_linearly_then_holds(tiny, cost):
    objective = CostObjective("two-sided", 2.0, 100, 200_000, None)
    assert [objective.strength_at(s) for s in (0, 50, 100, 400)] == [0.0, 1.0, 2.0, 2.0]
    assert CostObjective("over", 2.0, 0, 1.0, None).strength_at(0) == 2.0
    probs = _supernet(tiny).probs()
    assert objective(cost, probs, 0).item() == 0.0
    assert objective(cost, probs, 100).item() == pytest.approx(
        budget_penalty(cost, probs, 200_000, None, 2.0, "two-sided").item())


# ------------------------------------------------------------------ the measured pruning score
def test_candidate_scores_measure_every_active_candidate_and_leave_batch_norm_alone(tiny, digits):
    net = _supernet(tiny)
    with torch.no_grad():
        net.active[1, 2] = False
    before = {k: v.clone() for k, v in net.state_dict().items()}
    device = Device.pick("cpu")
    scores = scoring.candidate_scores(net, digits, [0, 1, 2], torch.Generator().manual_seed(0), device, 32, 10)
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key
    active = net.active
    assert torch.isnan(scores["loss"][~active]).all() and torch.isfinite(scores["loss"][active]).all()
    assert torch.all((scores["paths"][active] >= 2) & (scores["paths"][active] <= 4))
    assert torch.all(scores["paths"].sum(1) == 10)
    again = scoring.candidate_scores(net, digits, [0, 1, 2], torch.Generator().manual_seed(0), device, 32, 10)
    assert torch.equal(torch.nan_to_num(scores["loss"]), torch.nan_to_num(again["loss"]))


def test_prune_on_scores_drops_the_lowest_scored(tiny, cost):
    net = _supernet(tiny, alpha_seed=2)
    scores = torch.tensor([[0.0, 1.0, 2.0, 0.0], [3.0, 2.0, 1.0, 0.0], [1.0, 0.0, 2.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    pruned = danas.prune(net, 0.4, cost, None, None, scores)
    assert pruned.dropped == [["k3_e3"], ["skip"], ["k5_e3"], ["k3_e3"]]


def test_candidates_the_paths_cannot_tell_apart_are_kept(tiny, cost, digits):
    # Layer 0: the second candidate is 0.05 worse than the first with standard errors of 0.1 (undecided at z = 1);
    # the third is 1.0 worse (decided). Layer 1 has equal losses: nothing there is decided.
    nan = float("nan")
    measured = {"loss": torch.tensor([[1.0, 1.05, 2.0, nan], [1.0, 1.0, 1.0, 1.0]]),
                "stderr": torch.tensor([[0.1, 0.1, 0.1, nan], [0.1, 0.1, 0.1, 0.1]])}
    assert scoring.undecided(measured, 1.0).tolist() == [[True, True, False, False], [True, True, True, True]]
    assert not scoring.undecided(measured, 0.0).any()
    # A pruning drops only decided candidates: at z = 0 by the ratio alone, at a huge z none at all.
    net = _supernet(tiny)
    found = scoring.candidate_scores(net, digits, [0, 1, 2], torch.Generator().manual_seed(0), Device.pick("cpu"),
                                     32, 24)
    assert torch.isfinite(found["stderr"][net.active]).all() and (found["stderr"][net.active] > 0).all()
    by_ratio = danas.prune(_supernet(tiny), 0.4, cost, None, None, -found["loss"], 0.0,
                           scoring.undecided(found, 0.0))
    assert all(len(d) == 1 for d in by_ratio.dropped)
    none = danas.prune(_supernet(tiny), 0.4, cost, None, None, -found["loss"], 0.0,
                       scoring.undecided(found, 1e9))
    assert none.dropped == [[], [], [], []]


# ------------------------------------------------------------------ the budget floor
def test_pruning_gives_back_expensive_candidates_to_keep_the_floor_reachable(tiny, cost):
    net = _supernet(tiny)
    with torch.no_grad():  # the cheapest candidates most probable: a plain pruning drops the expensive ones
        net.alpha.copy_(-(cost.flops / cost.flops.max()).float() * 5)
    budget = 0.98 * max(_flops(cost, a) for a in _archs(net))
    plain = _supernet(tiny)
    plain.alpha.data.copy_(net.alpha.data)
    danas.prune(plain, 0.5, cost, budget, None)
    assert max(_flops(cost, a) for a in _archs(plain)) < 0.95 * budget  # what the floor must prevent
    pruned = danas.prune(net, 0.5, cost, budget, None, floor=0.95)
    assert any(pruned.given_back)
    assert max(_flops(cost, a) for a in _archs(net)) >= 0.95 * budget
    for i, layer in enumerate(tiny):  # what was given back is active again and not reported dropped
        for c in pruned.given_back[i]:
            assert net.active[i, layer.choices.index(c)] and c not in pruned.dropped[i]
    assert danas.prune(_supernet(tiny), 0.5, cost, budget, None, floor=0.0).given_back == [[], [], [], []]


@pytest.mark.parametrize("seed", range(3))
def test_knapsack_with_a_floor_equals_brute_force(tiny, cost, seed):
    net = _supernet(tiny, alpha_seed=seed)
    with np.errstate(divide="ignore"):
        logp = np.log(net.probs().detach().double().numpy())
    archs = _archs(net)
    flops = {a: _flops(cost, a) for a in archs}
    ms = 0.1 + torch.rand(cost.flops.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    times = {a: sum(float(ms[i, j]) for i, j in enumerate(a)) for a in archs}
    low, high = min(flops.values()), max(flops.values())
    scores = [np.where(np.arange(logp.shape[1]) < len(layer.choices), logp[i], -np.inf) for i, layer in
              enumerate(tiny)]
    for budget in np.linspace(low, high, 6)[1:]:
        for floor in (0.8, 0.95):
            band = [a for a in archs if floor * budget <= flops[a] <= budget]
            expected = max(band, key=lambda a: sum(logp[i, j] for i, j in enumerate(a)), default=None)
            costs = [cost.flops.numpy()[i][:, None] for i in range(len(tiny))]
            got = knapsack(scores, costs, [budget - cost.fixed_flops], [floor * budget - cost.fixed_flops])
            assert (None if got is None else tuple(got)) == expected, (budget, floor)
            # Two budgets: a latency budget that cuts, with a floor on both.
            ms_budget = float(np.median(list(times.values())))
            band2 = [a for a in band if 0.8 * ms_budget <= times[a] <= ms_budget]
            costs2 = [np.stack([cost.flops.numpy()[i], ms.numpy()[i]], 1) for i in range(len(tiny))]
            got2 = knapsack(scores, costs2, [budget - cost.fixed_flops, ms_budget],
                            [floor * budget - cost.fixed_flops, 0.8 * ms_budget])
            if got2 is None:
                assert not band2
            else:
                assert tuple(got2) in band2
                best = max(sum(logp[i, j] for i, j in enumerate(a)) for a in band2)
                assert sum(logp[i, j] for i, j in enumerate(got2)) >= best - 1e-9



@pytest.mark.parametrize("columns", [1, 2, 3])
def test_knapsack_takes_negative_costs_and_equals_brute_force(columns):
    # A calibration with a negative cost per piece made cheap blocks cost less than nothing: negative grid steps
    # then broke the grid ("could not broadcast input array from shape (69,101,99) into shape (69,1,99)").
    rng = np.random.default_rng(columns)
    layers, options = 4, 5
    costs = [rng.uniform(-0.3, 1.0, (options, columns)) for _ in range(layers)]
    scores = [rng.normal(size=options) for _ in range(layers)]
    scores[1][2] = -np.inf  # an unavailable option, the cheapest of its layer in every cost
    costs[1][2] = -5.0
    archs = [a for a in itertools.product(range(options), repeat=layers) if a[1] != 2]
    total = {a: sum(costs[i][j] for i, j in enumerate(a)) for a in archs}
    value = {a: sum(scores[i][j] for i, j in enumerate(a)) for a in archs}
    least, most = np.min(list(total.values()), 0), np.max(list(total.values()), 0)
    assert least.min() < 0  # whole architectures below nothing too
    checked = 0
    for share in (0.0, 0.1, 0.3, 0.6, 1.0):
        budgets = least + share * (most - least)
        for floors in (None, list(budgets - 0.4 * (most - least))):  # some below 0, some above
            # a floor of 0 or below is none
            low = np.full(columns, -np.inf) if floors is None else np.where(np.array(floors) > 0, floors, -np.inf)
            band = [a for a in archs if np.all(total[a] <= budgets + 1e-12) and np.all(total[a] >= low - 1e-12)]
            got = knapsack(scores, costs, list(budgets), floors)
            if not band:
                assert got is None
                continue
            assert got is not None and tuple(got) in band, (share, floors)
            assert value[tuple(got)] == pytest.approx(max(value[a] for a in band)), (share, floors)
            checked += 1
    assert checked >= 6
    assert knapsack(scores, costs, list(least - 1e-6), None) is None


def test_the_cheapest_front_holds_the_fastest_network_and_the_fewest_flops(tiny, cost):
    # The fastest network under a cache calibration (the larger of two additive costs), alone and under a FLOPs
    # budget, and the fewest FLOPs under a latency budget: each equals brute force over every architecture.
    g = torch.Generator().manual_seed(3)
    ms = torch.rand(cost.flops.shape, generator=g, dtype=torch.float64) - 0.2  # some cost less than nothing
    params = torch.rand(cost.flops.shape, generator=g, dtype=torch.float64)
    cached = CostModel(tiny, CLASSES, cost.flops, cost.fixed_flops, ms, 0.5, ms + 0.8 * params, 0.5 - 1.2)
    archs = _archs(_supernet(tiny))
    flops = {a: cached.of(_arch(tiny, a))[0] for a in archs}
    predicted = {a: cached.of(_arch(tiny, a))[1] for a in archs}
    index, fastest = cached.fastest()
    assert fastest == pytest.approx(min(predicted.values())) and predicted[tuple(index)] == pytest.approx(fastest)
    assert cached.ms_range() == pytest.approx((min(predicted.values()), max(predicted.values())))
    by_flops = min(archs, key=lambda a: (flops[a], predicted[a]))
    assert predicted[by_flops] > fastest  # fewest FLOPs is not fastest here: the test can tell them apart
    for budget in np.quantile(list(flops.values()), [0.0, 0.2, 0.5, 0.9]):
        index, got = cached.fastest(budget)
        assert got == pytest.approx(min(predicted[a] for a in archs if flops[a] <= budget))
        assert flops[tuple(index)] <= budget
    assert cached.fastest(min(flops.values()) - 1) is None
    for budget in np.quantile(list(predicted.values()), [0.0, 0.3, 0.7]):
        index, got = cached.fewest_flops(budget)
        assert got == min(flops[a] for a in archs if predicted[a] <= budget) and predicted[tuple(index)] <= budget
    assert cached.fewest_flops(fastest - 1e-9) is None


def _arch(space, index):
    from edgenas.space.arch import make_arch

    return make_arch(space, [layer.choices[j] for layer, j in zip(space, index, strict=True)], CLASSES)


# ------------------------------------------------------------------ the choice
def test_choice_measures_candidates_in_the_band_and_picks_the_most_accurate(tiny, cost, digits):
    net = _supernet(tiny, alpha_seed=4)
    budget = 240_000
    limits = choice.band(cost, budget, None, 0.9, True, False)
    notices = []
    found, floors = choice.candidates(net, cost, limits, 8, torch.Generator().manual_seed(0), notices)
    assert not notices and floors == [0.9 * budget] and 2 <= len(found) <= 8
    assert len({tuple(c.index) for c in found}) == len(found)
    assert all(0.9 * budget <= c.flops <= budget for c in found)
    with np.errstate(divide="ignore"):
        logp = np.log(net.probs().detach().double().numpy())
    band = [a for a in _archs(net) if 0.9 * budget <= _flops(cost, a) <= budget]
    assert tuple(found[0].index) == max(band, key=lambda a: sum(logp[i, j] for i, j in enumerate(a)))
    device = Device.pick("cpu")
    measured = {tuple(c.layers): evaluate(choice.inherited(net, c.layers, digits, 64, 0), digits, "val", device)
                for c in found}
    best = choice.choose(found, lambda c: measured[tuple(c.layers)])
    assert found[best].chosen and found[best].val_acc == max(measured.values())
    assert [c.val_acc for c in found] == [measured[tuple(c.layers)] for c in found]


def test_the_uniform_pool_draws_candidates_from_the_surviving_ones_whatever_alpha_says(tiny, cost):
    net = _supernet(tiny)
    with torch.no_grad():
        net.alpha[:, 0] = 8.0  # alpha all but certain of each layer's first candidate
        net.active[:, -1] = False  # and each layer's last one pruned
    budget = float(cost.fixed_flops + cost.flops.max(1).values.sum())  # every architecture fits
    limits = choice.band(cost, budget, None, 0.0, False, False)

    def sampled(uniform):
        found, _ = choice.candidates(net, cost, limits, 12, torch.Generator().manual_seed(0), [], uniform=uniform)
        assert found[0].source == "knapsack" and found[0].index == [0] * len(tiny)  # alpha's best leads either way
        return [j for c in found[1:] for j in c.index], len(found)

    by_alpha, count_alpha = sampled(False)
    by_uniform, count_uniform = sampled(True)
    assert count_uniform == 12 and count_alpha < 12  # alpha's draws mostly repeat its favourite
    assert by_alpha.count(0) > 0.7 * len(by_alpha)  # each draw differs from the favourite somewhere
    assert by_uniform.count(0) < 0.5 * len(by_uniform)  # about 1 in (active candidates per layer)
    assert all(net.active[i % len(tiny), j] for i, j in enumerate(by_uniform))


def test_the_uniform_pool_fills_its_candidates_in_a_narrow_band_of_a_large_space():
    # mobile-small at 40% of the largest FLOPs: about 1 uniform draw in 1,000 lands in [0.95B, B]
    space = get_space("mobile-small", 32, 0.5)
    table = cost_table(space)
    cost = CostModel.build(space, CLASSES, table)
    budget = 0.4 * table.flops(preset("largest", space, CLASSES))
    limits = choice.band(cost, budget, None, 0.95, True, False)
    found, _ = choice.candidates(Supernet(space, CLASSES), cost, limits, 6, torch.Generator().manual_seed(1), [],
                                 uniform=True)
    assert len(found) == 6 and all(0.95 * budget <= c.flops <= budget for c in found)


def test_choice_by_training_scores_each_candidate_by_a_real_short_training_and_picks_the_best(tiny, cost, digits):
    from edgenas.space.arch import make_arch
    from edgenas.training.train import TrainSettings

    net = _supernet(tiny, alpha_seed=4)
    budget = 240_000
    found, _ = choice.candidates(net, cost, choice.band(cost, budget, None, 0.9, True, False), 4,
                                 torch.Generator().manual_seed(0), [])
    assert len(found) >= 2 and all(0.9 * budget <= c.flops <= budget for c in found)
    device, settings = Device.pick("cpu"), TrainSettings(3, 64, 0.1, 0.9, 4e-5, 0.1)
    epochs = []

    def trained(candidate):
        return choice.trained_accuracy(make_arch(tiny, candidate.layers, CLASSES), digits, settings, device, 0,
                                       epochs.append)

    best = choice.choose(found, trained)
    assert len(epochs) == 3 * len(found) and all(e["images"] > 0 for e in epochs)  # three real epochs each
    assert found[best].chosen and found[best].val_acc == max(c.val_acc for c in found)
    # Trained, not inherited: the supernet's weights play no part, and the score is reproducible from the seed.
    assert trained(found[best]) == found[best].val_acc
    assert found[best].val_acc > 0.2  # digits after three epochs: well above the 10% of chance
    assert len({c.val_acc for c in found}) > 1


def test_the_band_keeps_the_larger_latency_of_a_cache_calibrated_table_within_the_budget(tiny, cost):
    # A table with a cache term predicts max(without it, with it): every candidate must fit both, and the first is
    # the most probable architecture that does.
    g = torch.Generator().manual_seed(5)
    ms = 0.1 + torch.rand(cost.flops.shape, generator=g, dtype=torch.float64)
    cached = CostModel(tiny, CLASSES, cost.flops, cost.fixed_flops, ms, 0.2,
                       ms + 0.6 * torch.rand(cost.flops.shape, generator=g, dtype=torch.float64), 0.2 - 0.9)
    net = _supernet(tiny, alpha_seed=6)
    archs = _archs(net)
    latency = {a: max(cached.fixed_ms + sum(float(ms[i, j]) for i, j in enumerate(a)),
                      cached.fixed_ms_cache + sum(float(cached.ms_cache[i, j]) for i, j in enumerate(a)))
               for a in archs}
    flops_budget, ms_budget = max(_flops(cost, a) for a in archs), float(np.median(list(latency.values())))
    limits = choice.band(cached, flops_budget, ms_budget, 0.0, False, True)
    found, _ = choice.candidates(net, cached, limits, 6, torch.Generator().manual_seed(0), [])
    assert found and all(latency[tuple(c.index)] <= ms_budget + 1e-9 for c in found)
    with np.errstate(divide="ignore"):
        logp = np.log(net.probs().detach().double().numpy())
    fits = [a for a in archs if latency[a] <= ms_budget]
    warm_only = [a for a in archs if cached.fixed_ms + sum(float(ms[i, j]) for i, j in enumerate(a)) <= ms_budget]
    assert set(fits) < set(warm_only)  # the cache column binds somewhere: without it the test would fail
    assert tuple(found[0].index) == max(fits, key=lambda a: sum(logp[i, j] for i, j in enumerate(a)))


def test_an_unreachable_floor_is_lowered_to_the_highest_reachable_with_a_notice(tiny, cost):
    net = _supernet(tiny)
    with torch.no_grad():  # only each layer's cheapest candidate left
        for i, layer in enumerate(tiny):
            cheapest = int(cost.flops[i, : len(layer.choices)].argmin())
            net.active[i] = False
            net.active[i, cheapest] = True
    only = _flops(cost, _archs(net)[0])
    limits = choice.band(cost, only / 0.5, None, 0.95, True, False)
    notices = []
    found, floors = choice.candidates(net, cost, limits, 4, torch.Generator().manual_seed(0), notices)
    assert len(notices) == 1 and "not reachable" in notices[0]
    assert floors == [pytest.approx(only)] and [c.flops for c in found] == [round(only)]


def test_a_lowered_floor_admits_the_architecture_it_was_lowered_to():
    # mobile-small with two candidates left a layer: the highest reachable cost is one architecture's exactly, which
    # the knapsack's cost grid rounded below the lowered floor in 21 of these 40 cases before (the floors were then
    # dropped and the choice could land anywhere under the budget).
    space = get_space("mobile-small", 16)
    model = CostModel.build(space, CLASSES, cost_table(space))
    for seed in range(40):
        generator = torch.Generator().manual_seed(seed)
        net = Supernet(space, CLASSES)
        with torch.no_grad():
            for i, layer in enumerate(space):
                net.active[i] = False
                net.active[i, torch.randperm(len(layer.choices), generator=generator)[:2]] = True
        net.changed()
        highest = model.fixed_flops + sum(float(model.flops[i][net.active[i]].max()) for i in range(len(space)))
        notices = []
        found, floors = choice.candidates(net, model, choice.band(model, highest / 0.9, None, 0.95, True, False), 1,
                                          generator, notices)
        assert floors == [pytest.approx(highest)] and not any("dropped" in n for n in notices), (seed, notices)
        assert 0.999 * highest <= found[0].flops <= highest


def test_the_random_baseline_draws_uniformly_within_the_floor_and_budget_or_below_without_a_floor(tiny, cost):
    archs = list(itertools.product(*[range(len(layer.choices)) for layer in tiny]))
    flops = {a: _flops(cost, a) for a in archs}
    budget = float(np.quantile(list(flops.values()), 0.6))
    band = [a for a in archs if 0.95 * budget <= flops[a] <= budget]
    assert 0 < len(band) < len(archs) / 4  # a narrow band: draws from the whole space would mostly miss it
    g = torch.Generator().manual_seed(0)
    matched = [random_within_budget(choice.band(cost, budget, None, 0.95, True, False), tiny, CLASSES, g)
               for _ in range(40)]
    picked = [tuple(layer.choices.index(c) for layer, c in zip(tiny, a.layers, strict=True)) for a in matched]
    assert all(p in band for p in picked) and len(set(picked)) > len(band) // 4
    anywhere = [random_within_budget(choice.band(cost, budget, None, 0.0, True, False), tiny, CLASSES, g)
                for _ in range(40)]
    spent = [_flops(cost, [layer.choices.index(c) for layer, c in zip(tiny, a.layers, strict=True)])
             for a in anywhere]
    assert max(spent) <= budget and min(spent) < 0.95 * budget


def test_random_search_with_the_training_choice_retrains_the_best_of_its_draws(tmp_path):
    settings = SearchSettings(space="tiny", strategy="random", choice="train", choice_candidates=3,
                              choice_epochs=2, retrain_epochs=0, flops=250_000, retrain_lr=0.1)
    result = search(settings, out=tmp_path / "run", progress=False, log=lambda *a: None)
    found = json.loads((result.run / "candidates.json").read_text())["candidates"]
    assert len(found) == 3 and len({tuple(c["layers"]) for c in found}) == 3
    assert all(0.95 * 250_000 <= c["flops"] <= 250_000 for c in found) and all(c["source"] == "random" for c in found)
    chosen = [c for c in found if c["chosen"]]
    assert len(chosen) == 1 and chosen[0]["val_acc"] == max(c["val_acc"] for c in found)
    assert result.summary["arch"]["layers"] == chosen[0]["layers"]
    assert result.summary["search_images"] >= 3 * 2 * 1000  # the trainings count as search work (digits: 1,295)


@pytest.mark.parametrize(("given", "choice_made", "uniform", "scored"), [
    ({}, "train", True, 6),  # the defaults retrain 30 epochs: the candidates train 3
    ({"retrain_epochs": 0}, "alpha", False, 1),  # trained elsewhere: the supernet's pick
    ({"retrain_epochs": 3}, "alpha", False, 1),  # a "short" training as long as the retraining shortens nothing
    ({"strategy": "full"}, "train", True, 6),
    ({"strategy": "random"}, "alpha", False, 1),  # the random baseline stays one draw
    ({"choice": "alpha"}, "alpha", False, 1),
    ({"choice": "eval"}, "eval", False, 24),
    ({"choice": "train", "retrain_epochs": 0}, "train", True, 6),
    ({"choice_pool": "alpha"}, "train", False, 6),
    ({"choice": "eval", "choice_pool": "uniform"}, "eval", True, 24),
])
def test_the_automatic_choice_trains_candidates_only_as_a_shortened_retraining(given, choice_made, uniform, scored):
    settings = SearchSettings(**given)
    assert (settings.final_choice, settings.uniform_pool, settings.candidates_scored) == (choice_made, uniform, scored)


def test_a_default_search_that_retrains_chooses_by_short_trainings_of_uniform_draws(tmp_path):
    settings = SearchSettings(space="tiny", schedule="1.0:1", probe_epochs=0, retrain_epochs=2, choice_epochs=1,
                              choice_candidates=3, batch_size=128, flops=250_000, **CHEAP)
    result = search(settings, out=tmp_path / "run", progress=False, log=lambda *a: None)
    described = json.loads((result.run / "candidates.json").read_text())
    assert described["method"] == choice.METHODS["train"]
    found = described["candidates"]
    assert [c["source"] for c in found] == ["knapsack", "sampled", "sampled"]
    assert all(0.95 * 250_000 <= c["flops"] <= 250_000 for c in found)
    chosen = [c for c in found if c["chosen"]]
    assert len(chosen) == 1 and chosen[0]["val_acc"] == max(c["val_acc"] for c in found)
    assert result.summary["arch"]["layers"] == chosen[0]["layers"] and result.summary["choice"] == "train"
    trained = [json.loads(line) for line in (result.run / "history.jsonl").read_text().splitlines()]
    assert [r["candidate"] for r in trained if r.get("phase") == "choice"] == [1, 2, 3]
    config = json.loads((result.run / "config.json").read_text())["settings"]
    assert (config["choice"], config["choice_pool"]) == ("auto", "auto")


def test_plan_puts_the_warmup_before_the_first_stage_and_leaves_full_epochs_alone():
    stages = [Stage(0.2, 3), Stage(1.0, 4)]
    danas_plan = danas.plan("danas", stages, 1, warmup_epochs=2)
    assert [(p.name, p.epochs, p.fraction, p.train_arch, p.prune_after, p.scheduled) for p in danas_plan[:2]] == [
        ("probe", 1, 1.0, False, False, False), ("warmup", 2, 0.2, False, False, True)]
    full = danas.plan("full", stages, 0, epochs=5, warmup_epochs=2)
    assert [(p.name, p.epochs, p.fraction, p.train_arch) for p in full] == [("warmup", 2, 1.0, False),
                                                                            ("full", 5, 1.0, True)]
    assert [p.name for p in danas.plan("danas", stages, 0)] == ["stage 0", "stage 1"]


def test_a_strategy_keeps_its_own_state_and_says_what_it_does():
    from edgenas.strategies.strategy import get_strategy

    stages = [Stage(0.2, 1), Stage(1.0, 1)]
    danas_strategy = get_strategy("danas")
    probe, stage = danas_strategy.phases(stages, 1, None, 0)[:2]
    assert danas_strategy.classes(probe, 10, lambda: pytest.fail("no order is needed in the probe")) == list(range(10))
    assert danas_strategy.state_dict() == {}  # no class order before the probe's
    assert danas_strategy.classes(stage, 10, lambda: [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]) == [8, 9]  # no probe: given
    resumed = get_strategy("danas")
    resumed.load_state_dict({**danas_strategy.state_dict(), "phase": 2})  # a checkpoint's other keys come along
    assert resumed.class_order == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    full = get_strategy("full")
    assert [full.classes(p, 10, lambda: pytest.fail("full trains on every class")) for p in
            full.phases(stages, 0, 3, 1)] == [list(range(10))] * 2 and full.state_dict() == {}
    assert [get_strategy(name).trains_supernet for name in ("danas", "full", "random", "mobilenetv2")] == [
        True, True, False, False]
    assert [get_strategy(name).choice_made(choice_made) for name, choice_made in (
        ("danas", "alpha"), ("random", "alpha"), ("random", "train"), ("mobilenetv2", "train"))] == [
        "alpha", None, "train", None]
    assert not get_strategy("mobilenetv2").trains_candidates("train") and get_strategy("random").trains_candidates(
        "train")


def test_a_loss_scored_choice_takes_the_candidate_of_lowest_validation_loss(tmp_path):
    settings = SearchSettings(space="tiny", schedule="1.0:1", probe_epochs=0, retrain_epochs=0, choice="eval",
                              choice_score="loss", choice_pool="uniform", choice_candidates=4, batch_size=128,
                              flops=250_000, **CHEAP)
    result = search(settings, out=tmp_path / "run", progress=False, log=lambda *a: None)
    described = json.loads((result.run / "candidates.json").read_text())
    assert described["method"] == choice.METHODS["eval-loss"]
    found = described["candidates"]
    assert len(found) >= 2 and all(c["val_loss"] > 0 and 0 <= c["val_acc"] <= 1 for c in found)
    chosen = [c for c in found if c["chosen"]]
    assert len(chosen) == 1 and chosen[0]["val_loss"] == min(c["val_loss"] for c in found)
    assert result.summary["arch"]["layers"] == chosen[0]["layers"]
    assert result.summary["inherited_val_acc"] == pytest.approx(chosen[0]["val_acc"])


# ------------------------------------------------------------------ settings
@pytest.mark.parametrize(("args", "message"), [
    (["--budget-floor", "1.5"], "bad --budget-floor 1.5: expected a number in [0, 1]"),
    (["--filter-warmup", "-0.1"], "bad --filter-warmup -0.1: expected a number in [0, 1]"),
    (["--cost-ramp", "2"], "bad --cost-ramp 2: expected a number in [0, 1]"),
    (["--warmup-epochs", "-1"], "bad --warmup-epochs -1: expected 0 or more"),
    (["--score-paths", "0"], "bad --score-paths 0: expected 1 or more"),
    (["--prune-confidence", "-1"], "bad --prune-confidence -1: expected 0 or more"),
    (["--choice-candidates", "0"], "bad --choice-candidates 0: expected 1 or more"),
    (["--choice-pool", "random"], "bad --choice-pool 'random': expected one of auto, alpha, uniform"),
    (["--choice", "best"], "bad --choice 'best': expected one of auto, eval, alpha, train"),
    (["--choice-epochs", "0"], "bad --choice-epochs 0: expected 1 or more"),
    (["--weight-sampling", "fair"], "bad --weight-sampling 'fair': expected one of uniform, alpha"),
    (["--prune-score", "loss"], "bad --prune-score 'loss': expected one of eval, alpha"),
    (["--cost-form", "abs"], "bad --cost-form 'abs': expected one of two-sided, over"),
    (["--choice-score", "top5"], "bad --choice-score 'top5': expected one of accuracy, loss"),
    (["--choice-score", "loss"], "--choice-score loss applies to --choice eval only (this run's choice: train)"),
])
def test_bad_mechanism_settings_are_one_line_and_write_nothing(tmp_path, args, message):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["search", "--space", "tiny", *args, "--out", str(out)])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_every_declared_setting_is_an_option_of_search():
    import dataclasses

    from edgenas.runs.declared import flag_of

    result = CliRunner().invoke(app, ["search", "--help"], env={"COLUMNS": "200"})
    declared = [f for f in dataclasses.fields(SearchSettings) if "help" in f.metadata]
    assert {f.name for f in declared} >= set(OLD_BEHAVIOUR)
    for f in declared:
        assert flag_of(f) in result.output


def test_a_config_without_the_new_settings_reads_back_as_the_old_behaviour(tmp_path):
    from edgenas.runs.folder import Run

    stored = {k: v for k, v in dataclasses_asdict(SearchSettings(space="tiny")).items() if k not in OLD_BEHAVIOUR}
    run = Run.create(tmp_path / "old", {"settings": stored})
    settings = SearchSettings.of_run(run)
    assert all(getattr(settings, k) == v for k, v in OLD_BEHAVIOUR.items())


def dataclasses_asdict(value):
    import dataclasses

    return dataclasses.asdict(value)


@pytest.mark.parametrize(("settings", "message"), [
    ({"lr": 0.0}, "bad --lr 0: expected a positive number"),
    ({"epochs_scale": -0.5}, "bad --epochs-scale -0.5: expected a positive number"),
    ({"prune_ratio": 1.0}, "bad --prune-ratio 1: expected a number in [0, 1)"),
    ({"arch_every": 0}, "bad --arch-every 0: expected 1 or more"),
])
def test_ranges_declared_on_settings_without_an_option_are_checked_too(settings, message):
    """Ranges live on the fields of SearchSettings (the Python API and config.json set the fields without an option,
    such as lr); validate() generates the check from them, with the same one-line message."""
    with pytest.raises(EdgeNASError, match=f"^{re.escape(message)}$"):
        SearchSettings(**settings).validate()


# ------------------------------------------------------------------ the sandwich rule with in-place distillation
def test_the_sandwich_paths_are_each_layers_largest_and_smallest_active_candidates(tiny, cost):
    net = _supernet(tiny)
    largest, smallest = fairness.sandwich_paths(net, cost)
    for i, ((big,), (small,)) in enumerate(zip(largest, smallest, strict=True)):
        active = [j for j in range(net.active.shape[1]) if net.active[i, j]]
        assert float(cost.flops[i, big]) == max(float(cost.flops[i, j]) for j in active)
        assert float(cost.flops[i, small]) == min(float(cost.flops[i, j]) for j in active)
    with torch.no_grad():
        net.active[0, largest[0][0]] = False  # pruned: the next largest takes its place
    assert fairness.sandwich_paths(net, cost)[0][0] != largest[0]


def test_a_sandwich_step_trains_the_largest_on_labels_and_the_others_on_its_outputs(tiny, cost, digits):
    from torch.nn import functional as F

    from edgenas.training.train import _weight_step

    device = Device.pick("cpu")
    net = _supernet(tiny)
    largest, smallest = fairness.sandwich_paths(net, cost)
    path = smallest  # the sampled path: only the smallest candidates' weights
    from edgenas.data.batches import batches

    x, y = next(iter(batches(digits, "train", 64)))
    admitted = torch.arange(CLASSES)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.0)  # lr 0: the step leaves the weights as they were
    with torch.no_grad():
        teacher = net(x, largest).softmax(1)
        expected = F.cross_entropy(net(x, path), teacher)
    loss, _ = _weight_step(net, device, scaler, opt, x, y, admitted, path, (largest, smallest), 0.1)
    assert torch.allclose(loss, expected, atol=1e-5)  # the sampled path learns the largest's outputs
    k, layer = next((k, layer) for k, layer in enumerate(net.mixed_layers())
                    if layer.specs[smallest[k][0]] is not None
                    and layer.specs[smallest[k][0]].expansion < layer.specs[largest[k][0]].expansion)
    small_hidden = layer.in_channels * layer.specs[smallest[k][0]].expansion
    assert layer.expand.conv.weight.grad[small_hidden:].abs().sum() > 0  # channels only the largest has: trained
    _weight_step(net, device, scaler, opt, x, y, admitted, path, None, 0.1)
    assert layer.expand.conv.weight.grad[small_hidden:].abs().sum() == 0  # without the sandwich, they are not


def test_a_search_with_the_sandwich_counts_its_three_passes_in_the_plan_and_the_summary(tmp_path):
    args = ["search", "--space", "tiny", "--schedule", "0.5:1,1.0:1", "--sandwich", "--retrain-epochs", "0",
            "--batch-size", "64", "--flops", "250K", *CHEAP_ARGS, "--out", str(tmp_path / "run"), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    plan = next(line for line in result.stderr.splitlines() if line.startswith("plan: "))
    assert f"about {summary['search_images']:,} image-steps of search" in plan
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["settings"]["sandwich"] is True
    rows = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    trained = [row for row in rows if "epoch" in row and row.get("phase") in ("warmup", "stage 0", "stage 1")]
    assert trained and all(row["extra_images"] == 2 * row["images"] for row in trained)
    assert all("extra_images" not in row for row in rows if row.get("phase") == "probe")
