"""Named architectures of a space: `mobilenetv2`, `largest`, `smallest`, and `random` with a seed."""

from __future__ import annotations

import random as _random

from edgenas.errors import EdgeNASError
from edgenas.space.arch import Arch, make_arch
from edgenas.space.choices import SKIP
from edgenas.space.spec import Space

PRESETS = ("mobilenetv2", "largest", "smallest", "random")


def mobilenetv2(space: Space, num_classes: int) -> Arch:
    """MobileNetV2 layer for layer: k3_e6 on the first 2, 3, 4, 3, 3, 1 layers of the stages, skip on the rest."""
    depths = space.spec.mobilenetv2_depths
    if depths is None or "k3_e6" not in space.spec.candidates:
        raise EdgeNASError(f"preset 'mobilenetv2' cannot be expressed in space {space.name}; spaces that can: "
                           "mobile, mobile-small, mcu")
    return make_arch(space, ["k3_e6" if layer.index < depths[layer.stage] else SKIP for layer in space],
                     num_classes)


def random_arch(space: Space, num_classes: int, seed: int) -> Arch:
    """Each layer's choice drawn uniformly from its choices, with its own generator seeded by `seed`."""
    rng = _random.Random(seed)
    return make_arch(space, [rng.choice(layer.choices) for layer in space], num_classes)


def extreme(space: Space, num_classes: int, largest: bool) -> Arch:
    """The architecture with the most (or fewest) FLOPs: each layer's extreme choice, since FLOPs add up."""
    from edgenas.cost.flops import cost_table

    table = cost_table(space)
    sign = -1 if largest else 1
    layers = [min(layer.choices, key=lambda c, label=layer.label: (sign * table.layers[label][c][0],
                                                                    sign * table.layers[label][c][1]))
              for layer in space]
    return make_arch(space, layers, num_classes)


def preset(name: str, space: Space, num_classes: int = 1000, seed: int | None = None) -> Arch:
    if name == "mobilenetv2":
        return mobilenetv2(space, num_classes)
    if name in ("largest", "smallest"):
        return extreme(space, num_classes, largest=name == "largest")
    if name == "random":
        return random_arch(space, num_classes, 0 if seed is None else seed)
    raise EdgeNASError(f"unknown preset {name!r}: expected one of {', '.join(PRESETS)}")
