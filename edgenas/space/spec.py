"""Search spaces: declared as data, registered by name, resolved at a resolution and width multiplier.

A `SpaceSpec` is the declaration (stem, stages, head, candidate blocks); `resolve()` turns it into a `Space`:
the concrete list of searchable layers with their shapes, the choices each admits, and a structural hash that
latency tables, FLOPs caches, architectures and runs record so that nothing measured for one space is used
for another. This module does not import torch: `edgenas cost` and `edgenas space` answer without it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from edgenas.errors import EdgeNASError
from edgenas.space.choices import SKIP, make_divisible, parse_choice

# Bump when the blocks' structure changes (what a choice string builds), so old tables and caches stop matching.
BLOCKS_VERSION = 1

# Activations a space can declare; `relu6` is MobileNetV2's and the default.
ACTIVATIONS = ("relu6", "relu")


@dataclass(frozen=True)
class Stage:
    """One searchable stage: output width, maximum depth, stride of its first layer."""

    width: int
    depth: int
    stride: int


@dataclass(frozen=True)
class SpaceSpec:
    """The declaration of a search space. Channel counts are at width multiplier 1.0."""

    name: str
    summary: str
    stem_channels: int  # 3x3 conv, batch norm, activation
    stem_stride: int
    first_channels: int | None  # a fixed inverted residual (expansion 1, kernel 3, stride 1); None: no such block
    stages: tuple[Stage, ...]
    head_channels: int  # 1x1 conv before global pooling; never narrowed below this (MobileNetV2's rule)
    candidates: tuple[str, ...]  # block choices of every layer; `skip` is added where the layer keeps its shape
    default_resolution: int
    dropout: float = 0.2
    # MobileNetV2's layer count per stage, when the space can express it (the `mobilenetv2` preset).
    mobilenetv2_depths: tuple[int, ...] | None = None
    activation: str = "relu6"  # of stem, blocks and head alike (one of ACTIVATIONS)
    # `skip` on every layer: where a layer changes shape it is a strided identity, a 1x1 convolution with the
    # layer's stride and batch norm (no activation), as in NAS-Bench-Macro. Off: `skip` only where the shape is kept.
    strided_skip: bool = False

    @property
    def total_stride(self) -> int:
        return self.stem_stride * math.prod(stage.stride for stage in self.stages)

    def resolve(self, resolution: int | None = None, width_mult: float = 1.0) -> Space:
        return _resolve(self, self.default_resolution if resolution is None else resolution, width_mult)


@dataclass(frozen=True)
class Layer:
    """One searchable layer of a resolved space. `label` is also the module name in built networks."""

    label: str
    stage: int
    index: int
    in_channels: int
    out_channels: int
    stride: int
    in_size: int
    out_size: int
    choices: tuple[str, ...]

    @property
    def allows_skip(self) -> bool:
        return SKIP in self.choices

    @property
    def blocks(self) -> tuple[str, ...]:
        """The choices that build a block (every choice but `skip`)."""
        return tuple(c for c in self.choices if c != SKIP)

    @property
    def skip_is_strided(self) -> bool:
        """`skip` is offered here and changes the shape: a 1x1 convolution and batch norm, not the identity."""
        return self.allows_skip and (self.stride != 1 or self.in_channels != self.out_channels)

    @property
    def costly_choices(self) -> tuple[str, ...]:
        """The choices that build a module with a cost: every block, and `skip` where it is a strided identity."""
        return tuple(c for c in self.choices if c != SKIP or self.skip_is_strided)


@dataclass(frozen=True)
class Space:
    """A space at one resolution and width multiplier: every layer's shapes and choices, and a structural hash."""

    spec: SpaceSpec
    resolution: int
    width_mult: float
    stem_channels: int
    stem_size: int
    first_channels: int | None
    head_channels: int
    layers: tuple[Layer, ...]
    hash: str = field(default="")

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def last_channels(self) -> int:
        return self.layers[-1].out_channels

    @property
    def last_size(self) -> int:
        return self.layers[-1].out_size

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def describe(self) -> dict:
        """Plain data for JSON output and for the structural hash.

        Keys that the first spaces did not have appear only where a space departs from the old format, so the
        hashes of `mobile`, `mobile-small` and `tiny` (recorded by shipped tables and saved runs) never change.
        """
        description = {
            "space": self.name,
            "resolution": self.resolution,
            "width_mult": self.width_mult,
            "blocks_version": BLOCKS_VERSION,
            "stem": {"channels": self.stem_channels, "stride": self.spec.stem_stride, "out_size": self.stem_size},
            "first": {"channels": self.first_channels, "choice": "k3_e1"},
            "layers": [
                {"label": layer.label, "in": [layer.in_channels, layer.in_size, layer.in_size],
                 "out": [layer.out_channels, layer.out_size, layer.out_size], "stride": layer.stride,
                 "choices": list(layer.choices)}
                for layer in self.layers
            ],
            "head": {"channels": self.head_channels, "pool": "global average", "dropout": self.spec.dropout},
        }
        if self.first_channels is None:
            description["first"] = None
        if self.spec.activation != "relu6":
            description["activation"] = self.spec.activation
        if self.spec.strided_skip:
            description["strided_skip"] = "conv 1x1 with the layer's stride, batch norm, no activation"
        return description


def _structural_hash(space_description: dict) -> str:
    canonical = json.dumps(space_description, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _conv_out(size: int, stride: int) -> int:
    # Every convolution pads kernel // 2, so the output size depends only on the stride.
    return (size - 1) // stride + 1


def _resolve(spec: SpaceSpec, resolution: int, width_mult: float) -> Space:
    if isinstance(resolution, bool) or not isinstance(resolution, int):
        raise EdgeNASError(f"bad resolution {resolution!r}: expected an integer such as {spec.default_resolution}")
    if resolution % 16 or resolution < max(16, spec.total_stride):
        raise EdgeNASError(f"bad resolution {resolution} for space {spec.name}: expected a multiple of 16 of at "
                           f"least {max(16, spec.total_stride)} (the space's total stride), such as "
                           f"{spec.default_resolution}")
    if not (isinstance(width_mult, int | float) and 0.1 <= width_mult <= 4.0):
        raise EdgeNASError(f"bad width multiplier {width_mult!r}: expected a number from 0.1 to 4.0, such as 1.0")
    width_mult = float(width_mult)
    stem_channels = make_divisible(spec.stem_channels * width_mult)
    first_channels = None if spec.first_channels is None else make_divisible(spec.first_channels * width_mult)
    head_channels = make_divisible(spec.head_channels * max(1.0, width_mult))
    size = _conv_out(resolution, spec.stem_stride)
    stem_size = size
    channels = stem_channels if first_channels is None else first_channels
    layers = []
    for s, stage in enumerate(spec.stages):
        width = make_divisible(stage.width * width_mult)
        for i in range(stage.depth):
            stride = stage.stride if i == 0 else 1
            out_size = _conv_out(size, stride)
            keeps_shape = stride == 1 and channels == width
            # Skip only on layers that are not the first of their stage: the stage's first layer sets its width;
            # a space with strided skips offers it everywhere (a 1x1 convolution where the shape changes).
            choices = spec.candidates + ((SKIP,) if spec.strided_skip or (i > 0 and keeps_shape) else ())
            layers.append(Layer(f"stages.{s}.{i}", s, i, channels, width, stride, size, out_size, choices))
            channels, size = width, out_size
    space = Space(spec, resolution, width_mult, stem_channels, stem_size, first_channels, head_channels,
                  tuple(layers))
    return replace(space, hash=_structural_hash(space.describe()))


class SpaceRegistry:
    """Spaces by name. Registering a name twice raises, so a typo cannot silently replace a space."""

    def __init__(self, specs: tuple[SpaceSpec, ...] = ()):
        self._specs: dict[str, SpaceSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: SpaceSpec) -> SpaceSpec:
        if spec.name in self._specs:
            raise EdgeNASError(f"a search space named {spec.name!r} is already registered")
        for choice in spec.candidates:
            if parse_choice(choice) is None:
                raise EdgeNASError(f"space {spec.name!r}: 'skip' is added by the space, not listed as a candidate")
        if spec.activation not in ACTIVATIONS:
            raise EdgeNASError(f"space {spec.name!r}: bad activation {spec.activation!r}; expected one of "
                               f"{', '.join(ACTIVATIONS)}")
        self._specs[spec.name] = spec
        return spec

    def names(self) -> list[str]:
        return list(self._specs)

    def get(self, name: str) -> SpaceSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise EdgeNASError(f"unknown search space {name!r}: expected one of {', '.join(self._specs)}") from None


_MOBILE_CANDIDATES = tuple(
    f"k{k}_e{e}" + ("_se" if se else "") for k in (3, 5, 7) for e in (3, 6) for se in (False, True)
)
_MOBILENETV2_STAGES = (Stage(24, 4, 2), Stage(32, 4, 2), Stage(64, 4, 2), Stage(96, 4, 1), Stage(160, 4, 2),
                       Stage(320, 1, 1))

MOBILE = SpaceSpec(
    name="mobile",
    summary="MobileNetV2's macro structure at 224x224 (ImageNet-like), 21 searchable layers, 13 choices each",
    stem_channels=32, stem_stride=2, first_channels=16,
    stages=_MOBILENETV2_STAGES,
    head_channels=1280, candidates=_MOBILE_CANDIDATES, default_resolution=224,
    mobilenetv2_depths=(2, 3, 4, 3, 3, 1),
)

# For 32x32 images (CIFAR, digits): the stem keeps stride 1, so the network downsamples 4 times (total stride
# 16, 32x32 -> 2x2) instead of 5 (total stride 32, which would leave 1x1 maps after the fourth stage). The
# stages keep MobileNetV2's strides. This costs 4x the FLOPs of `mobile` at 32x32, a quarter of a stride-8
# CIFAR MobileNetV2 (stem and first stage at stride 1), which trains at about 80 images/s on 2 CPU cores.
MOBILE_SMALL = SpaceSpec(
    name="mobile-small",
    summary="the `mobile` stages and candidates for 32x32 images: stride-1 stem, total stride 16",
    stem_channels=32, stem_stride=1, first_channels=16,
    stages=_MOBILENETV2_STAGES,
    head_channels=1280, candidates=_MOBILE_CANDIDATES, default_resolution=32,
    mobilenetv2_depths=(2, 3, 4, 3, 3, 1),
)

# For microcontrollers (issue 37): `mobile-small` at MobileNetV2 0.35's widths, with a 320-channel head where
# `mobile-small` keeps 1280 at every width (that 1x1 convolution alone held 143 KB of the 226 KB of INT8 weights of
# mobile-small's smallest network at width 0.35). With 10 classes its networks hold 0.10 to 0.96 MB of INT8 weights
# (MobileNetV2 in it: 0.33 MB) and need 33 to 61 KB of INT8 activations at once at 32x32, 131 to 246 KB at 64x64
# (docs/COSTS.md): the SRAM and flash of a 256-512 KB microcontroller.
MCU = SpaceSpec(
    name="mcu",
    summary="mobile-small at MobileNetV2 0.35's widths with a 320-channel head: microcontroller sizes at 32-64 px",
    stem_channels=16, stem_stride=1, first_channels=8,
    stages=(Stage(8, 4, 2), Stage(16, 4, 2), Stage(24, 4, 2), Stage(32, 4, 1), Stage(56, 4, 2), Stage(112, 1, 1)),
    head_channels=320, candidates=_MOBILE_CANDIDATES, default_resolution=32,
    mobilenetv2_depths=(2, 3, 4, 3, 3, 1),
)

# For tests: 4 layers, 3 blocks + skip, 144 architectures (few enough to enumerate), about 0.1M FLOPs at 16x16.
TINY = SpaceSpec(
    name="tiny",
    summary="two short stages and three candidates, for tests",
    stem_channels=8, stem_stride=2, first_channels=8,
    stages=(Stage(16, 2, 2), Stage(24, 2, 1)),
    head_channels=64, candidates=("k3_e3", "k5_e3", "k3_e6_se"), default_resolution=16,
)

# NAS-Bench-Macro (Su et al., CVPR 2021), built exactly: its table gives the CIFAR-10 accuracy of all 6,561
# architectures trained alone, so a search in this space is scored without retraining (benchmarks/). Stem 3x3 conv
# to 32 channels at stride 1 with no fixed first block, ReLU, three stages of 2, 3 and 3 layers, each with the
# identity (strided on stage firsts), k3_e3 and k5_e6; no dropout, as trained for the table.
MACRO = SpaceSpec(
    name="macro",
    summary="NAS-Bench-Macro for 32x32 images: 8 layers, identity (1x1 conv where strided), k3_e3 or k5_e6 each",
    stem_channels=32, stem_stride=1, first_channels=None,
    stages=(Stage(64, 2, 2), Stage(128, 3, 2), Stage(256, 3, 2)),
    head_channels=1280, candidates=("k3_e3", "k5_e6"), default_resolution=32, dropout=0.0,
    activation="relu", strided_skip=True,
)

SPACES = SpaceRegistry((MOBILE, MOBILE_SMALL, TINY, MACRO, MCU))


def get_space(name: str, resolution: int | None = None, width_mult: float = 1.0) -> Space:
    """The registered space `name` at `resolution` (the space's default when None) and `width_mult`."""
    return SPACES.get(name).resolve(resolution, width_mult)
