"""FLOPs and parameters: closed-form counts per block, table sums equal fvcore, MobileNetV2 equals torchvision."""

import random

import pytest
import torch

from edgenas.cost.flops import cost_table, count_flops, count_params
from edgenas.cost.presets import preset, random_arch
from edgenas.space.arch import make_arch
from edgenas.space.blocks import ConvBNAct, InvertedResidual, SqueezeExcite, make_block
from edgenas.space.choices import make_divisible
from edgenas.space.network import build_model
from edgenas.space.spec import get_space


def test_conv_flops_closed_form():
    # 3x3 conv, 8 -> 16 channels, stride 2, 20x20 input -> 10x10 output: k*k*cin*cout*H*W multiply-adds.
    assert count_flops(ConvBNAct(8, 16, 3, 2), (8, 20, 20)) == 3 * 3 * 8 * 16 * 10 * 10
    # Depthwise 5x5 on 24 channels, stride 1: k*k*C*H*W.
    assert count_flops(ConvBNAct(24, 24, 5, 1, groups=24), (24, 12, 12)) == 5 * 5 * 24 * 12 * 12


def test_squeeze_excite_flops_closed_form():
    channels, size = 48, 6
    squeezed = make_divisible(channels // 4)
    # Global pooling reads every element once; the two 1x1 convolutions act on a 1x1 map (biases are free).
    expected = channels * size * size + channels * squeezed + squeezed * channels
    assert count_flops(SqueezeExcite(channels), (channels, size, size)) == expected


@pytest.mark.parametrize(("kernel", "expansion", "stride", "se"), [(3, 6, 1, False), (7, 3, 2, True),
                                                                    (5, 1, 1, False), (3, 6, 2, True)])
def test_inverted_residual_flops_and_params_closed_form(kernel, expansion, stride, se):
    cin, cout, size = 16, 24, 12
    hidden, out = cin * expansion, (size - 1) // stride + 1
    flops = kernel * kernel * hidden * out * out + hidden * cout * out * out
    params = kernel * kernel * hidden + 2 * hidden + hidden * cout + 2 * cout
    if expansion != 1:
        flops += cin * hidden * size * size
        params += cin * hidden + 2 * hidden
    if se:
        squeezed = make_divisible(hidden // 4)
        flops += hidden * out * out + 2 * hidden * squeezed
        params += 2 * hidden * squeezed + hidden + squeezed
    block = InvertedResidual(cin, cout, kernel, expansion, stride, se)
    assert count_flops(block, (cin, size, size)) == flops
    assert count_params(block) == params


def test_skip_is_free_and_keeps_the_tensor():
    block = make_block("skip", 24, 24, 1)
    x = torch.randn(1, 24, 5, 5)
    assert torch.equal(block(x), x) and count_params(block) == 0


def covering_archs(space, rng: random.Random, extra: int) -> list:
    """Architectures that together use every choice of every layer (architecture k takes each layer's choice k
    modulo its count, the layers' choice lists shuffled), then `extra` random ones; class counts 2, 10 or 1000."""
    orders = [rng.sample(layer.choices, len(layer.choices)) for layer in space]
    archs = [make_arch(space, [order[k % len(order)] for order in orders], rng.choice([2, 10, 1000]))
             for k in range(max(len(order) for order in orders))]
    return archs + [random_arch(space, num_classes=rng.choice([2, 10, 1000]), seed=rng.randrange(10**9))
                    for _ in range(extra)]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny", "mobile-small", "mobile"])
def test_table_sum_equals_fvcore_on_the_built_network(name):
    # A table is a sum of per-layer pieces, so an architecture that uses each (layer, choice) at least once checks
    # each piece; the random ones check the sum over mixed choices.
    space = get_space(name)
    table = cost_table(space)
    archs = covering_archs(space, random.Random(name), extra=5)
    assert {(i, c) for a in archs for i, c in enumerate(a.layers)} == {
        (i, c) for i, layer in enumerate(space) for c in layer.choices}
    for arch in archs:
        model = build_model(arch)
        assert table.flops(arch) == count_flops(model, (3, space.resolution, space.resolution)), arch.layers
        assert table.params(arch) == count_params(model)


def test_table_sum_equals_fvcore_with_width_multiplier_and_other_resolution():
    space = get_space("mobile-small", 48, 0.35)
    table = cost_table(space)
    for seed in range(5):
        arch = random_arch(space, 7, seed)
        model = build_model(arch)
        assert table.flops(arch) == count_flops(model, (3, 48, 48))
        assert table.params(arch) == count_params(model)


def test_mobilenetv2_preset_matches_torchvision():
    import torchvision

    arch = preset("mobilenetv2", get_space("mobile"), num_classes=1000)
    reference = torchvision.models.mobilenet_v2(weights=None)
    ours = build_model(arch)
    assert count_flops(reference, (3, 224, 224)) == 300_836_992
    assert count_flops(ours, (3, 224, 224)) == 300_836_992 == cost_table(get_space("mobile")).flops(arch)
    assert count_params(ours) == count_params(reference) == 3_504_872


def test_width_scaled_mobilenetv2_matches_torchvision():
    import torchvision

    arch = preset("mobilenetv2", get_space("mobile", 224, 0.5), num_classes=1000)
    reference = torchvision.models.mobilenet_v2(weights=None, width_mult=0.5)
    assert cost_table(arch.resolve_space()).flops(arch) == count_flops(reference, (3, 224, 224))
    assert count_params(build_model(arch)) == count_params(reference)


def test_smallest_and_largest_bound_every_architecture():
    space = get_space("tiny")
    table = cost_table(space)
    low = table.flops(preset("smallest", space, 10))
    high = table.flops(preset("largest", space, 10))
    assert preset("smallest", space, 10).layers == ("k3_e3", "skip", "k3_e3", "skip")
    assert high < 1_000_000  # the test space stays cheap
    for seed in range(30):
        assert low <= table.flops(random_arch(space, 10, seed)) <= high


def test_cached_table_is_reused_and_a_damaged_cache_is_recounted(tmp_path, monkeypatch):
    from edgenas.cost.flops import _cache_path

    monkeypatch.setenv("EDGENAS_CACHE_DIR", str(tmp_path))
    space = get_space("tiny")
    first = cost_table(space)
    path = _cache_path(space)
    assert path.is_file() and path.parent.parent == tmp_path
    assert cost_table(space) == first
    path.write_text('{"format": 1, "space_hash": "')  # truncated
    assert cost_table(space) == first
    assert cost_table(space) == first


@pytest.mark.parametrize(("name", "resolution", "width", "digest"), [
    ("tiny", None, 1.0, "7d84df764f3e49f4"), ("tiny", 32, 0.5, "88d0ec86a3090a68"),
    ("macro", None, 1.0, "25bb059a8c5bbfb1")])
def test_the_counted_tables_are_those_counted_before_the_one_listing_of_pieces(name, resolution, width, digest):
    """sha256 of the table's JSON as commit b6823b7 counted it (each layer's every choice built and counted; the
    identity skip 0): counting the listed pieces once each must give the same table, byte for byte."""
    import hashlib
    import json

    from edgenas.cost.flops import count_table

    table = count_table(get_space(name, resolution, width)).to_dict()
    assert hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()[:16] == digest
