"""Model size and peak memory (docs/COSTS.md): closed-form counts of hand-sized blocks, the space's table against a
count of the whole built network, and the predicted model size against the bytes of real exported files (FP32 ONNX
and the exporter's own INT8 QDQ file)."""

import numpy as np
import pytest
import torch
from torch import nn

from edgenas.cost.arch_cost import model_size_bytes, peak_memory_bytes
from edgenas.cost.memory import count_memory
from edgenas.cost.memory_table import memory_of_network, memory_table
from edgenas.cost.presets import preset
from edgenas.errors import EdgeNASError
from edgenas.space.arch import make_arch
from edgenas.space.blocks import ConvBNAct, InvertedResidual
from edgenas.space.network import build_model
from edgenas.space.spec import get_space
from exporters.onnx_export import to_onnx
from exporters.runtimes.onnxruntime import int8_model
from exporters.weight_bytes import weight_bytes


def test_a_convolution_with_batch_norm_counts_its_folded_weights_and_two_tensors():
    counts = count_memory(ConvBNAct(3, 8, 3), (3, 8, 8))
    # 3x8x3x3 weights; batch norm folds into 8 biases; the in-place ReLU6 adds no tensor: input and output live
    assert (counts.weights, counts.channels, counts.biases, counts.other) == (216, 8, 8, 0)
    assert counts.size("fp32") == 4 * (216 + 8)
    assert counts.size("int8") == 216 + 8 * (4 + 1) + 8 * 4  # int8 weights, a scale and zero point, an int32 bias
    assert counts.peak == 3 * 64 + 8 * 64


@pytest.mark.parametrize(("se", "peak"), [
    # the block's input (held for the residual), its expansion (48x8x8) and depthwise output while it is written
    (False, 8 * 64 + 48 * 64 + 48 * 64),
    # with squeeze-excite the depthwise output is read twice (pool, product): held while the product is written
    (True, 8 * 64 + 48 * 64 + 48 + 48 * 64),
])
def test_an_inverted_residual_holds_its_input_while_expanded(se, peak):
    counts = count_memory(InvertedResidual(8, 8, 3, 6, 1, se=se), (8, 8, 8))
    assert counts.peak == peak
    se_weights = 2 * 48 * 16 if se else 0  # 1x1 convolutions 48 -> 16 -> 48 (a quarter, a multiple of 8)
    assert counts.weights == 8 * 48 + 48 * 9 + 48 * 8 + se_weights


def test_a_stride_two_block_does_not_hold_its_input_but_pads_a_copy_of_its_expansion():
    counts = count_memory(InvertedResidual(8, 16, 3, 6, 2), (8, 8, 8))
    # PyTorch's 1-pixel padding on both sides of an 8-pixel input is not TFLite's SAME padding (0 before, 1 after):
    # LiteRT writes a PAD, so the expansion 48x8x8 and its padded copy 48x10x10 live at once; not the block's input
    assert counts.peak == 48 * 64 + 48 * 100
    # on an odd size the two paddings agree: no copy, the expansion 48x9x9 while the depthwise writes 48x5x5
    assert count_memory(InvertedResidual(8, 16, 3, 6, 2), (8, 9, 9)).peak == 48 * 81 + 48 * 25


# mcu at width 1.0 has mobile-small 0.35's blocks (its head aside): a third space would only cost a minute
@pytest.mark.parametrize(("name", "resolution", "width"), [("tiny", None, 1.0), ("mcu", 32, 1.0)])
def test_the_table_equals_the_count_of_the_whole_network(name, resolution, width):
    space = get_space(name, resolution, width)
    table = memory_table(space)
    for which, seed in (("smallest", None), ("largest", None), ("random", 3), ("random", 4)):
        arch = preset(which, space, 10, seed)
        model = build_model(arch)
        for precision in ("fp32", "int8"):
            assert memory_of_network(model, arch, precision) == {
                "model_size_bytes": table.model_size(arch, precision),
                "peak_memory_bytes": table.peak_memory(arch, precision)}, (which, precision)
    ends = table.ranges(10, "int8")
    assert ends["model_size_bytes"] == tuple(table.model_size(preset(w, space, 10), "int8")
                                             for w in ("smallest", "largest"))


def test_the_figures_from_python_take_an_architecture_and_a_precision():
    space = get_space("mcu", 64, 1.0)
    arch = make_arch(space, preset("mobilenetv2", space, 10).layers, 10)
    # 64x64: the first searchable block's expansion (48x64x64) while LiteRT's PAD writes its copy (48x66x66)
    assert peak_memory_bytes(arch, "int8") == peak_memory_bytes(arch, "int8", counted=True) == 48 * (64**2 + 66**2)
    assert peak_memory_bytes(arch, "fp32") == 4 * peak_memory_bytes(arch, "int8")
    assert model_size_bytes(arch, "fp32") == 4 * sum(p.numel() for p in build_model(arch).parameters()) - 4 * sum(
        m.num_features for m in build_model(arch).modules() if isinstance(m, nn.BatchNorm2d))
    with pytest.raises(EdgeNASError, match="bad precision 'int4'"):
        peak_memory_bytes(arch, "int4")


def _trained_like(arch, seed: int) -> nn.Module:
    """The built network with every weight and batch norm statistic moved off its initial value: as after training.
    (Fresh, all folded biases are 0, and the exporter stores identical tensors once: the file would be smaller.)"""
    generator = torch.Generator().manual_seed(seed)
    model = build_model(arch).eval()
    with torch.no_grad():
        means = [m.running_mean for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        for tensor in [*model.parameters(), *means]:
            tensor.add_(0.05 * torch.randn(tensor.shape, generator=generator))
    return model


@pytest.mark.parametrize(("name", "resolution", "width", "which"), [
    ("tiny", 16, 1.0, "largest"), ("tiny", 16, 1.0, "random"), ("mcu", 32, 1.0, "mobilenetv2"),
])
def test_the_predicted_model_size_is_the_exported_files_weight_bytes(name, resolution, width, which):
    space = get_space(name, resolution, width)
    arch = preset(which, space, 10, 1 if which == "random" else None)
    fp32 = to_onnx(_trained_like(arch, 0), (3, resolution, resolution), dynamic_batch=True)
    calibration = [np.random.default_rng(0).standard_normal((4, 3, resolution, resolution)).astype(np.float32)]
    int8 = int8_model(fp32, calibration)
    for precision, data in (("fp32", fp32), ("int8", int8)):
        predicted, found = model_size_bytes(arch, precision), weight_bytes(data)
        assert abs(predicted - found["weight_bytes"]) <= 0.02 * found["weight_bytes"], (precision, found)
        assert found["other"] == 0 and found["file_bytes"] == found["weight_bytes"] + found["overhead_bytes"]
    # what INT8 QDQ files carry beyond the weights: each bias's scale and zero point (a runtime derives them)
    found = weight_bytes(int8)
    assert found["bias_scales"] == 2 * found["biases"] and found["overhead_bytes"] > found["bias_scales"]
