"""The validation networks of a profile: whole networks timed end to end beside the pieces, which fit the table's
calibration and measure its fidelity.
"""

from __future__ import annotations

import random

from edgenas.space.arch import Arch
from edgenas.space.pieces import HEAD_CLASSES, Piece
from edgenas.space.spec import Space


def validation_archs(space: Space, count: int, seed: int) -> list[tuple[str, Arch]]:
    """`count` random architectures spread evenly over the space's FLOPs range, plus MobileNetV2 where it exists and
    the smallest and largest networks.

    Uniform random choices all land near the middle of the range; here network i aims at the (i + 0.5) / count
    quantile of each layer's choices sorted by FLOPs, with noise, so the networks span cheap to expensive. Their
    classifiers alternate between the table's head sizes (10 and 1000 classes), and the smallest network has the
    smallest head, the largest the largest: a calibration is then fitted over the networks searches really
    produce (a 10-class head has 1.3M fewer parameters than a 1000-class one), not extrapolated to them.
    """
    from edgenas.cost.flops import cost_table
    from edgenas.cost.presets import mobilenetv2
    from edgenas.space.arch import make_arch

    table = cost_table(space)
    rng = random.Random(seed)
    archs = []
    for i in range(count):
        target = (i + 0.5) / count
        layers = []
        for layer in space:
            ranked = sorted(layer.choices, key=lambda c, la=layer.label: table.layers[la][c][0])
            position = target * (len(ranked) - 1) + rng.gauss(0, max(0.5, len(ranked) / 8))
            layers.append(ranked[min(len(ranked) - 1, max(0, round(position)))])
        archs.append((f"random{i:02d}", make_arch(space, layers, HEAD_CLASSES[i % len(HEAD_CLASSES)])))
    if space.spec.mobilenetv2_depths is not None:
        archs.append(("mobilenetv2", mobilenetv2(space, max(HEAD_CLASSES))))
    if count:  # the ends of the range too, so that no calibration is fitted only on mid-sized networks
        from edgenas.cost.presets import extreme

        archs += [("smallest", extreme(space, min(HEAD_CLASSES), largest=False)),
                  ("largest", extreme(space, max(HEAD_CLASSES), largest=True))]
    return archs


def network_piece(name: str, arch: Arch) -> Piece:
    from edgenas.space.network import build_model

    return Piece(f"net:{name}", lambda: build_model(arch), (3, arch.resolution, arch.resolution))
