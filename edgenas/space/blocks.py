"""Blocks: conv-BN-activation, squeeze-excite, inverted residual, skip and strided skip; one implementation for every
network.

The standalone network and the supernet both build their layers with `make_block`, so a block's parameter names
are the same wherever it lives and weights move between them by copying a state dict.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from edgenas.space.choices import make_divisible, parse_choice

# The modules of a space's `activation` (space.ACTIVATIONS names them).
_ACTIVATIONS = {"relu6": nn.ReLU6, "relu": nn.ReLU}


class ConvBNAct(nn.Sequential):
    """Convolution without bias (batch norm follows), batch norm, and an activation (ReLU6 unless told)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: bool = True, activation: str = "relu6"):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = _ACTIVATIONS[activation](inplace=True) if act else nn.Identity()


class SqueezeExcite(nn.Module):
    """MobileNetV3's squeeze-excite: pool, 1x1 reduce to a quarter (multiple of 8), ReLU, 1x1, hard sigmoid."""

    def __init__(self, channels: int):
        super().__init__()
        squeezed = make_divisible(channels // 4)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Hardsigmoid(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.gate(self.fc2(self.act(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * scale


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand, kxk depthwise, optional squeeze-excite, 1x1 linear projection.

    The residual connection is used when the block keeps its shape (stride 1, same width).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, expansion: int, stride: int,
                 se: bool = False, activation: str = "relu6"):
        super().__init__()
        hidden = in_channels * expansion
        self.has_residual = stride == 1 and in_channels == out_channels
        self.expand = ConvBNAct(in_channels, hidden, 1, activation=activation) if expansion != 1 else nn.Identity()
        self.dw = ConvBNAct(hidden, hidden, kernel, stride, groups=hidden, activation=activation)
        self.se = SqueezeExcite(hidden) if se else nn.Identity()
        self.project = ConvBNAct(hidden, out_channels, 1, act=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.project(self.se(self.dw(self.expand(x))))
        return x + out if self.has_residual else out


class StridedSkip(nn.Module):
    """`skip` on a layer that changes shape (NAS-Bench-Macro's strided identity): 1x1 convolution with the layer's
    stride and batch norm, no activation. Its weights live under `skip.`, the name the supernet's layer gives its
    own copy, so a state dict moves between the two unrenamed."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.skip = ConvBNAct(in_channels, out_channels, 1, stride, act=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x)


def make_block(choice: str, in_channels: int, out_channels: int, stride: int, activation: str = "relu6") -> nn.Module:
    """The module for a choice string at a layer; `skip` is the identity where the layer keeps its shape, else a
    strided skip (only spaces with `strided_skip` offer it there)."""
    block = parse_choice(choice)
    if block is None:
        return nn.Identity() if stride == 1 and in_channels == out_channels else StridedSkip(in_channels,
                                                                                            out_channels, stride)
    return InvertedResidual(in_channels, out_channels, block.kernel, block.expansion, stride, block.se, activation)
