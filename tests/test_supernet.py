"""Supernet: exact weight sharing, extraction, pruning, sampling, alpha gradients, costs, derivation, recalibration."""

import copy
import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from edgenas.cost.cost_model import CostModel, budget_penalty
from edgenas.cost.flops import cost_table
from edgenas.cost.presets import random_arch
from edgenas.space.arch import make_arch
from edgenas.space.network import build_model
from edgenas.space.spec import get_space
from edgenas.space.supernet import Supernet, recalibrate_batch_norm
from edgenas.strategies import danas

CLASSES = 10


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def table(tiny):
    return cost_table(tiny)


@pytest.fixture(scope="module")
def cost(tiny, table):
    return CostModel.build(tiny, CLASSES, table)


def _supernet(space, seed=0):
    torch.manual_seed(seed)
    return Supernet(space, CLASSES)


def _randomise(net: nn.Module, seed: int) -> None:
    """Perturb every batch norm's statistics and affine parameters, and every convolution's bias, a little."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.weight.copy_(1 + 0.1 * torch.randn(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
            elif isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))


def _all_archs(space, net):
    """Every combination of each layer's active candidate indices."""
    return itertools.product(*[[j for j in range(len(layer.choices)) if net.active[i, j]]
                               for i, layer in enumerate(space)])


def _flops(cost, choice):
    return cost.fixed_flops + sum(float(cost.flops[i, j]) for i, j in enumerate(choice))


def _ms(cost, choice):
    return cost.fixed_ms + sum(float(cost.ms[i, j]) for i, j in enumerate(choice))


def _brute_force(net, cost, flops_budget, ms_budget=None):
    with np.errstate(divide="ignore"):  # log 0 on pruned candidates and padding: -inf, never chosen
        logp = np.log(net.probs().detach().double().numpy())
    feasible = [c for c in _all_archs(net.space, net) if _flops(cost, c) <= flops_budget
                and (ms_budget is None or _ms(cost, c) <= ms_budget)]
    if not feasible:
        return None
    return list(max(feasible, key=lambda c: sum(logp[i, j] for i, j in enumerate(c))))


def _choice_index(space, arch):
    return [layer.choices.index(c) for layer, c in zip(space, arch.layers, strict=True)]


def _random_alpha(net, seed):
    with torch.no_grad():
        net.alpha.copy_(torch.randn(net.alpha.shape, generator=torch.Generator().manual_seed(seed)))


WEIGHT_SHARING_CASES = [("tiny", None, 1.0, seed) for seed in range(5)] + \
                       [("mobile-small", 16, 0.5, seed) for seed in range(3)]


@pytest.mark.parametrize(("name", "resolution", "width", "seed"), WEIGHT_SHARING_CASES)
def test_supernet_path_equals_extracted_network(name, resolution, width, seed):
    space = get_space(name, resolution, width)
    _check_path_equals_extracted(space, random_arch(space, CLASSES, seed), seed)


# macro: ReLU, no fixed first block, and a strided skip with weights of its own on every stage's first layer.
MACRO_MIXED = ["skip", "k3_e3", "k5_e6", "skip", "k3_e3", "skip", "skip", "k5_e6"]


@pytest.mark.parametrize(("layers", "seed"), [(["skip"] * 8, 0), (["k5_e6"] * 8, 1), (MACRO_MIXED, 2)])
def test_macro_supernet_path_equals_extracted_network(layers, seed):
    space = get_space("macro", 16, 0.5)
    arch = make_arch(space, layers, CLASSES)
    net = _supernet(space, seed)
    assert list(net.extract(arch).state_dict()) == list(build_model(arch).state_dict())
    assert "stages.1.0.skip.conv.weight" in net.state_dict() and "stages.1.1.skip.conv.weight" not in net.state_dict()
    assert not any(isinstance(m, nn.ReLU6) for m in net.modules())
    _check_path_equals_extracted(space, arch, seed)


def test_macro_supernet_alpha_step_reaches_the_strided_skip():
    space = get_space("macro", 16, 0.25)
    net = _supernet(space)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 3, 16, 16, generator=g), torch.randint(0, CLASSES, (4,), generator=g)
    skip = space.layers[0].choices.index("skip")
    paths = [(skip, 0), *net.sample(g, paths=2)[1:]]
    nn.functional.cross_entropy(net(x, paths), y).backward()
    assert net.alpha.grad[0, [skip, 0]].abs().sum() > 0
    assert net.stages[0][0].skip.conv.weight.grad.abs().sum() > 0


def _check_path_equals_extracted(space, arch, seed):
    net = _supernet(space, seed)
    _randomise(net, seed)
    x = torch.randn(2, 3, space.resolution, space.resolution, generator=torch.Generator().manual_seed(seed))
    model = net.extract(arch)
    net.eval()
    model.eval()
    with torch.no_grad():
        assert torch.allclose(net(x, net.path_of(arch)), model(x), atol=1e-5)

    # Train mode: batch statistics (and the same dropout mask), on fresh copies.
    net, model = copy.deepcopy(net).train(), copy.deepcopy(model).train()
    with torch.no_grad():
        torch.manual_seed(123)
        out_net = net(x, net.path_of(arch))
        torch.manual_seed(123)
        out_model = model(x)
    assert torch.allclose(out_net, out_model, atol=1e-5)
    # The supernet updated the slices of its shared running statistics exactly as the standalone network did.
    source = net.state_dict()
    for key, value in model.state_dict().items():
        if key.endswith("running_mean") or key.endswith("running_var"):
            assert torch.allclose(source[key][: value.shape[0]], value, atol=1e-5), key


def test_extract_matches_build_model_keys_and_centres_kernels(tiny):
    net = _supernet(tiny)
    arch = make_arch(tiny, ["k3_e3", "skip", "k5_e3", "k3_e6_se"], CLASSES)
    model = net.extract(arch)
    assert list(model.state_dict()) == list(build_model(arch).state_dict())
    # stages.0.0 is k3_e3 on 8 input channels: 24 hidden channels, the central 3x3 of the supernet's 5x5.
    full = net.stages[0][0].dw.conv.weight
    assert full.shape == (48, 1, 5, 5)
    assert torch.equal(model.stages[0][0].dw.conv.weight, full[:24, :, 1:4, 1:4])
    # stages.1.0 is k5_e3: the whole 5x5 of the first 48 channels.
    assert torch.equal(model.stages[1][0].dw.conv.weight, net.stages[1][0].dw.conv.weight[:48])
    # The copy is independent of the supernet.
    with torch.no_grad():
        model.stages[0][0].dw.conv.weight.zero_()
    assert full.abs().sum() > 0


def test_prune_keeps_the_most_probable_candidates(tiny):
    net = _supernet(tiny)
    with torch.no_grad():
        net.alpha.copy_(torch.tensor([[0.1, 2.0, -1.0, 0.0],
                                      [0.5, -2.0, 1.0, 3.0],
                                      [-1.0, 0.0, 1.0, 0.0],
                                      [2.0, 1.0, -3.0, 0.0]]))
    before = net.active_counts()
    dropped = net.prune(0.4)
    assert net.active_counts() == [max(1, n - math.floor(0.4 * n)) for n in before] == [2, 3, 2, 3]
    assert dropped == [["k3_e6_se"], ["k5_e3"], ["k3_e3"], ["k3_e6_se"]]
    assert net.active_choices() == [["k3_e3", "k5_e3"], ["k3_e3", "k3_e6_se", "skip"], ["k5_e3", "k3_e6_se"],
                                    ["k3_e3", "k5_e3", "skip"]]
    # Pruned candidates get probability 0; the rest still sum to 1.
    probs = net.probs()
    assert torch.all(probs[~net.active] == 0)
    assert torch.allclose(probs.sum(1), torch.ones(len(tiny)))


def test_prune_ties_go_against_later_candidates(tiny):
    net = _supernet(tiny)  # alpha = 0: every candidate ties
    assert net.prune(0.5) == [["k3_e6_se"], ["k3_e6_se", "skip"], ["k3_e6_se"], ["k3_e6_se", "skip"]]


@pytest.mark.parametrize("ratio", [0.4, 0.9, 1.0])
def test_repeated_pruning_never_empties_a_layer(tiny, ratio):
    net = _supernet(tiny)
    _random_alpha(net, 3)
    for _ in range(6):
        before = net.active_counts()
        net.prune(ratio)
        after = net.active_counts()
        assert after == [max(1, n - math.floor(ratio * n)) for n in before]
        assert min(after) >= 1
    assert torch.isfinite(net.probs()).all()


def test_prune_zero_drops_nothing(tiny):
    net = _supernet(tiny)
    _random_alpha(net, 1)
    assert net.prune(0.0) == [[], [], [], []]
    assert net.active_counts() == [len(layer.choices) for layer in tiny]


def test_sample_two_distinct_active_candidates(tiny):
    net = _supernet(tiny)
    _random_alpha(net, 2)
    with torch.no_grad():
        net.active[0, 1:] = False  # layer 0: only k3_e3 left
        net.active[1, 2] = False  # layer 1: k3_e6_se pruned
    g = torch.Generator().manual_seed(0)
    seen = [set() for _ in tiny]
    for _ in range(300):
        paths = net.sample(g, 2)
        assert paths[0] == (0,)
        for path in paths[1:]:
            assert len(path) == 2 and path[0] != path[1]
        for i, path in enumerate(paths):
            assert all(net.active[i, j] for j in path)
            seen[i].update(path)
    assert seen == [{0}, {0, 1, 3}, {0, 1, 2}, {0, 1, 2, 3}]
    for _ in range(100):
        path = net.sample(g, 1, uniform=True)
        assert path[0] == (0,) and path[1][0] != 2


def test_sample_is_reproducible_from_the_seed(tiny):
    net = _supernet(tiny)
    _random_alpha(net, 4)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert [net.sample(g1, 2) for _ in range(20)] == [net.sample(g2, 2) for _ in range(20)]
    g3 = torch.Generator().manual_seed(6)
    assert [net.sample(g1, 2) for _ in range(20)] != [net.sample(g3, 2) for _ in range(20)]


def test_binary_gate_alpha_gradient_is_proxylessnas_formula(tiny):
    net = _supernet(tiny).eval()
    _randomise(net, 0)
    _random_alpha(net, 6)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([1, 7])
    layer, (a, b) = 2, (1, 2)
    paths = [(0,), (3,), (a, b), (2,)]
    loss = nn.functional.cross_entropy(net(x, paths), target)
    loss.backward()
    grad = net.alpha.grad.clone()

    # By hand: explicit gates g = (1, 0) on the two candidate outputs, dL/dg by autograd.
    blocks = net.mixed_layers()
    with torch.no_grad():
        h = net.stem(x)
        for i in range(layer):
            h = blocks[i](h, paths[i])
    gates = torch.tensor([1.0, 0.0], requires_grad=True)
    h = gates[0] * blocks[layer].run(h, a) + gates[1] * blocks[layer].run(h, b)
    h = blocks[layer + 1](h, paths[layer + 1])
    dl_dg = torch.autograd.grad(nn.functional.cross_entropy(net.head(h), target), gates)[0]
    p = torch.softmax(net.alpha.detach()[layer, [a, b]], 0)
    expected = torch.stack([sum(dl_dg[j] * p[j] * (float(i == j) - p[i]) for j in range(2)) for i in range(2)])

    assert torch.allclose(grad[layer, [a, b]], expected, atol=1e-6, rtol=1e-4)
    assert expected.abs().max() > 1e-6  # not a vacuous comparison
    others = torch.ones_like(grad, dtype=torch.bool)
    others[layer, [a, b]] = False
    assert torch.all(grad[others] == 0)


def test_cost_model_matches_flops_table(tiny, table, cost):
    for seed in range(20):
        arch = random_arch(tiny, CLASSES, seed)
        flops, ms = cost.of(arch)
        assert flops == table.flops(arch)
        assert ms is None
        probs = torch.zeros(cost.flops.shape, dtype=torch.float64)
        for i, j in enumerate(_choice_index(tiny, arch)):
            probs[i, j] = 1.0
        expected, expected_ms = cost.expected(probs)
        assert float(expected) == pytest.approx(table.flops(arch), abs=0.5)
        assert expected_ms is None


def test_tight_flops_budget_moves_probability_to_cheaper_candidates(tiny, cost):
    net = _supernet(tiny)
    start = net.probs().detach()
    start_flops = float(cost.expected(start)[0])
    budget = 0.6 * start_flops
    opt = torch.optim.Adam([net.alpha], lr=0.05)
    for _ in range(50):
        opt.zero_grad()
        budget_penalty(cost, net.probs(), budget, None, strength=1.0).backward()
        opt.step()
    end = net.probs().detach()
    assert float(cost.expected(end)[0]) < start_flops
    for i, layer in enumerate(tiny):
        cheapest = int(cost.flops[i, : len(layer.choices)].argmin())
        assert end[i, cheapest] > start[i, cheapest], layer.label


def test_loose_flops_budget_gives_no_penalty_and_no_gradient(tiny, cost):
    net = _supernet(tiny)
    _random_alpha(net, 0)
    largest = max(_flops(cost, c) for c in _all_archs(tiny, net))
    penalty = budget_penalty(cost, net.probs(), largest * 1.01, None, strength=1.0)
    assert penalty.item() == 0.0
    penalty.backward()
    assert net.alpha.grad is not None and torch.all(net.alpha.grad == 0)


def _budgets(net, cost, count):
    costs = [_flops(cost, c) for c in _all_archs(net.space, net)]
    low, high = min(costs), max(costs)
    return low, high, [low + (high - low) * f for f in np.linspace(0.03, 0.97, count)]


def test_derive_equals_brute_force_one_budget(tiny, cost):
    for seed in range(3):
        net = _supernet(tiny)
        _random_alpha(net, seed)
        low, _, budgets = _budgets(net, cost, 9)
        for budget in budgets:
            assert danas.derive(net, cost, budget, None) == _brute_force(net, cost, budget), (seed, budget)
        assert danas.derive(net, cost, low - 1, None) is None
        assert danas.derive(net, cost, low - 1, None, uniform=True) is None


def test_derive_equals_brute_force_with_pruned_candidates(tiny, cost):
    for seed in range(3):
        net = _supernet(tiny)
        _random_alpha(net, 10 + seed)
        net.prune(0.4)
        low, _, budgets = _budgets(net, cost, 9)
        for budget in budgets:
            choice = danas.derive(net, cost, budget, None)
            assert choice == _brute_force(net, cost, budget), (seed, budget)
            assert all(net.active[i, j] for i, j in enumerate(choice))
        assert danas.derive(net, cost, low - 1, None) is None


def test_derive_without_budget_is_most_probable(tiny, cost):
    net = _supernet(tiny)
    _random_alpha(net, 5)
    arch = net.most_likely()
    assert danas.derive(net, cost, None, None) == _choice_index(tiny, arch)


def test_derive_equals_brute_force_two_budgets(tiny, cost):
    g = torch.Generator().manual_seed(1)
    ms = 0.1 + torch.rand(cost.flops.shape, generator=g, dtype=torch.float64)
    two = CostModel(tiny, CLASSES, cost.flops, cost.fixed_flops, ms, 0.5)
    for seed in range(3):
        net = _supernet(tiny)
        _random_alpha(net, 20 + seed)
        all_ms = [_ms(two, c) for c in _all_archs(tiny, net)]
        _, _, flops_budgets = _budgets(net, two, 4)
        for flops_budget in flops_budgets:
            for ms_budget in np.linspace(min(all_ms), max(all_ms), 6)[1:-1]:
                assert danas.derive(net, two, flops_budget, ms_budget) == _brute_force(net, two, flops_budget,
                                                                                     ms_budget)
        assert danas.derive(net, two, max(_flops(two, c) for c in _all_archs(tiny, net)), min(all_ms) - 0.01) is None


def test_derive_budgets_the_larger_of_the_two_costs_of_a_cache_calibration(tiny, cost):
    # A table whose calibration charges parameters beyond the cache predicts max(without, with the charge): the
    # knapsack must keep both under a latency budget, which the first alone does not ensure.
    g = torch.Generator().manual_seed(2)
    ms = 0.1 + torch.rand(cost.flops.shape, generator=g, dtype=torch.float64)
    params = torch.rand(cost.flops.shape, generator=g, dtype=torch.float64)
    cached = CostModel(tiny, CLASSES, cost.flops, cost.fixed_flops, ms, 0.5, ms + 0.8 * params, 0.5 - 1.5)
    warm_only = CostModel(tiny, CLASSES, cost.flops, cost.fixed_flops, ms, 0.5)
    loose = 10 * max(_flops(cost, c) for c in _all_archs(tiny, _supernet(tiny)))
    differ = 0
    for seed in range(3):
        net = _supernet(tiny)
        _random_alpha(net, 40 + seed)
        with np.errstate(divide="ignore"):
            logp = np.log(net.probs().detach().double().numpy())
        archs = list(_all_archs(tiny, net))
        predicted = {c: cached.of(make_arch(tiny, [la.choices[j] for la, j in zip(tiny, c, strict=True)],
                                            CLASSES))[1] for c in archs}
        assert all(predicted[c] == pytest.approx(max(_ms(cached, c), 0.5 - 1.5 + sum(
            float(ms[i, j] + 0.8 * params[i, j]) for i, j in enumerate(c)))) for c in archs)
        for budget in np.linspace(min(predicted.values()), max(predicted.values()), 7)[1:-1]:
            best = max((c for c in archs if predicted[c] <= budget), key=lambda c: sum(logp[i, j] for i, j in
                                                                                       enumerate(c)))
            assert danas.derive(net, cached, None, budget) == list(best)
            differ += danas.derive(net, warm_only, None, budget) != list(best)
        # With a FLOPs budget too (three constraints, a coarser grid): still within both latency costs.
        for budget in np.linspace(min(predicted.values()), max(predicted.values()), 4)[1:-1]:
            got = danas.derive(net, cached, loose, budget)
            assert got is not None and predicted[tuple(got)] <= budget + 1e-9
    assert differ > 0  # the cache column changed the choice somewhere: the test can fail


def test_derive_equals_brute_force_at_budgets_equal_to_an_architectures_flops(tiny, cost):
    net = _supernet(tiny)
    _random_alpha(net, 1)
    # At a budget of 230016 FLOPs, k5_e3 k3_e3 k3_e3 k5_e3 costs exactly 230016 and is the most probable one within
    # budget, but its costs round up to 20001 grid steps of 20000; derive returns a less probable architecture.
    budgets = sorted({_flops(cost, c) for c in _all_archs(tiny, net)})
    wrong = [b for b in budgets if danas.derive(net, cost, b, None) != _brute_force(net, cost, b)]
    assert wrong == []


def _cheap_unlikely(net, cost):
    """alpha that ranks every layer's candidates from most expensive (most probable) to cheapest (least)."""
    with torch.no_grad():
        net.alpha.copy_((cost.flops / cost.flops.max()).float() * 5)


def test_feasibility_keeping_prune_restores_the_cheapest_candidates(tiny, cost):
    net = _supernet(tiny)
    _cheap_unlikely(net, cost)
    low, _, _ = _budgets(net, cost, 1)
    budget = low + 100
    before = net.active.clone()
    pruned = danas.prune(net, 0.5, cost, budget, None)
    dropped = pruned.dropped
    assert pruned.restored is True
    assert any(_flops(cost, c) <= budget for c in _all_archs(tiny, net))
    for i, layer in enumerate(tiny):
        cheapest = int(cost.flops[i, : len(layer.choices)].argmin())
        assert net.active[i, cheapest]
        assert layer.choices[cheapest] not in dropped[i]
        # What is reported dropped is exactly what went from active to inactive.
        assert sorted(dropped[i]) == sorted(layer.choices[j] for j in range(len(layer.choices))
                                            if before[i, j] and not net.active[i, j])
    assert danas.derive(net, cost, budget, None) is not None


def test_feasibility_keeping_prune_with_loose_budget_is_plain_prune(tiny, cost):
    net, plain = _supernet(tiny), _supernet(tiny)
    _cheap_unlikely(net, cost)
    _cheap_unlikely(plain, cost)
    pruned = danas.prune(net, 0.5, cost, 1e9, None)
    assert pruned.restored is False
    assert pruned.dropped == plain.prune(0.5)
    assert torch.equal(net.active, plain.active)


def test_feasibility_keeping_prune_with_two_budgets_stays_feasible(tiny, cost):
    # Made-up latencies that run opposite to FLOPs: the FLOPs-cheapest candidate is the slowest.
    ms = cost.flops.max() - cost.flops
    ms = (ms / ms.max()) * (cost.flops > 0) + 0.01
    two = CostModel(tiny, CLASSES, cost.flops, cost.fixed_flops, ms, 0.0)
    net = _supernet(tiny)
    with torch.no_grad():  # the FLOPs-cheapest candidates are the most probable, the ms-cheapest the least
        net.alpha.copy_(-(cost.flops / cost.flops.max()).float() * 5)
    flops_budget = max(_flops(two, c) for c in _all_archs(tiny, net))
    ms_budget = min(_ms(two, c) for c in _all_archs(tiny, net)) + 0.001
    assert danas.min_cost_feasible(net, two, flops_budget, ms_budget)
    danas.prune(net, 0.5, two, flops_budget, ms_budget)
    assert any(_ms(two, c) <= ms_budget for c in _all_archs(tiny, net))


def test_recalibrate_batch_norm_averages_over_batches(tiny):
    torch.manual_seed(0)
    model = build_model(random_arch(tiny, CLASSES, 0))
    _randomise(model, 0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.3
    model.eval()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(4, 3, 16, 16, generator=g) * (k + 1) + k, torch.zeros(4, dtype=torch.long))
               for k in range(3)]
    recalibrate_batch_norm(model, batches)
    assert not model.training
    bn = model.stem.conv.bn
    assert bn.momentum == 0.3
    with torch.no_grad():
        features = [model.stem.conv.conv(x) for x, _ in batches]
    mean = torch.stack([f.mean((0, 2, 3)) for f in features]).mean(0)
    var = torch.stack([f.var((0, 2, 3), unbiased=True) for f in features]).mean(0)
    assert torch.allclose(bn.running_mean, mean, atol=1e-4, rtol=1e-4)
    assert torch.allclose(bn.running_var, var, atol=1e-4, rtol=1e-4)


def test_recalibrate_batch_norm_through_the_supernet(tiny):
    net = _supernet(tiny)
    arch = random_arch(tiny, CLASSES, 3)
    path = net.path_of(arch)
    batches = [(torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(k)), None) for k in range(3)]
    model = net.extract(arch)
    recalibrate_batch_norm(model, batches)
    recalibrate_batch_norm(net, batches, forward=lambda x: net(x, path))
    hidden = model.stages[0][0].dw.bn.num_features
    assert torch.allclose(net.stages[0][0].dw.bn.running_mean[:hidden], model.stages[0][0].dw.bn.running_mean,
                          atol=1e-5)


@torch.no_grad()
def _hand_written_recalibration(model: nn.Module, batches, forward=None) -> None:
    """The loop `recalibrate_batch_norm` was until it became `torch.optim.swa_utils.update_bn` (commit b6823b7)."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    was_training = model.training
    model.train()
    for x, _ in batches:
        (forward or model)(x)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.train(was_training)


@pytest.mark.parametrize("through", ["supernet path", "extracted network"])
def test_update_bn_recalibrates_exactly_as_the_hand_written_loop(tiny, through):
    """Same statistics bit for bit, same momenta and mode afterwards, the same augmented training batches drawn in the
    same order and the same global RNG left (the network's dropout draws from it in training mode)."""
    from edgenas.data.batches import batches
    from edgenas.data.dataset import load_dataset

    data = load_dataset(None, 16, train_per_class=12, test_per_class=2)
    net = _supernet(tiny)
    _randomise(net, 1)
    arch = random_arch(tiny, CLASSES, 5)
    path = net.path_of(arch)
    results = []
    for recalibrate in (_hand_written_recalibration, recalibrate_batch_norm):
        model = copy.deepcopy(net) if through == "supernet path" else net.extract(arch)
        model.eval()
        before = copy.deepcopy(model.state_dict())
        forward = (lambda x, m=model: m(x, path)) if through == "supernet path" else None
        generator = torch.Generator().manual_seed(7)
        stream = batches(data, "train", 16, generator=generator, train=True)
        torch.manual_seed(11)
        recalibrate(model, (b for _, b in zip(range(4), stream, strict=False)), forward)
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        results.append((model.state_dict(), [m.momentum for m in norms], [m.training for m in model.modules()],
                        generator.get_state(), torch.get_rng_state()))
    (old, old_momenta, old_modes, old_data, old_rng), (new, new_momenta, new_modes, new_data, new_rng) = results
    assert old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in old)
    assert any(not torch.equal(old[k], before[k]) for k in old if k.endswith("running_mean"))  # recalibrated
    assert old_momenta == new_momenta and old_modes == new_modes and not any(new_modes)
    assert torch.equal(old_data, new_data) and torch.equal(old_rng, new_rng)
