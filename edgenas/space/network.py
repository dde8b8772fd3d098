"""The network skeleton of a space (stem, fixed block if any, searchable layers, head) and `build_model(arch)`.

`Network` takes a factory that makes the module of each searchable layer: `build_model` passes one block per
layer; the supernet passes a module that holds every active candidate. Module names follow layer labels
(`stages.2.1`), so a standalone network's state dict lines up with the supernet's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from edgenas.space.arch import Arch
from edgenas.space.blocks import ConvBNAct, InvertedResidual, make_block
from edgenas.space.spec import Layer, Space


class Stem(nn.Sequential):
    """3x3 convolution, then MobileNetV2's fixed first block (expansion 1, kernel 3) where the space has one."""

    def __init__(self, space: Space):
        super().__init__()
        activation = space.spec.activation
        self.conv = ConvBNAct(3, space.stem_channels, 3, space.spec.stem_stride, activation=activation)
        if space.first_channels is not None:
            self.first = InvertedResidual(space.stem_channels, space.first_channels, 3, 1, 1, activation=activation)


class Head(nn.Module):
    """1x1 convolution, global average pooling, dropout, linear classifier."""

    def __init__(self, space: Space, num_classes: int):
        super().__init__()
        self.conv = ConvBNAct(space.last_channels, space.head_channels, 1, activation=space.spec.activation)
        self.dropout = nn.Dropout(space.spec.dropout)
        self.classifier = nn.Linear(space.head_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(F.adaptive_avg_pool2d(self.conv(x), 1), 1)
        return self.classifier(self.dropout(x))


class Network(nn.Module):
    """Stem, the searchable layers (`stages.S.I`, made by `make_layer`), head."""

    def __init__(self, space: Space, make_layer: Callable[[Layer], nn.Module], num_classes: int):
        super().__init__()
        self.stem = Stem(space)
        stages: list[list[nn.Module]] = [[] for _ in space.spec.stages]
        for layer in space:
            stages[layer.stage].append(make_layer(layer))
        self.stages = nn.ModuleList(nn.ModuleList(blocks) for blocks in stages)
        self.head = Head(space, num_classes)
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for stage in self.stages:
            for block in stage:
                x = block(x)
        return self.head(x)


def _init_weights(module: nn.Module) -> None:
    # torchvision's MobileNetV2 initialisation, which trains well from scratch.
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0, 0.01)
        nn.init.zeros_(module.bias)


def build_model(arch: Arch) -> Network:
    """The standalone network of an architecture, freshly initialised."""
    space = arch.resolve_space()
    choices = dict(zip((layer.label for layer in space), arch.layers, strict=True))

    def make_layer(layer: Layer) -> nn.Module:
        return make_block(choices[layer.label], layer.in_channels, layer.out_channels, layer.stride,
                          space.spec.activation)

    return Network(space, make_layer, arch.num_classes)
