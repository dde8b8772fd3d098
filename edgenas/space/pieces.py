"""A space's pieces: the modules every network of a space is a chain of (the stem with any fixed first block, one
block per searchable layer, the head with pooling and classifier), each named by a key made from its spec and input
shape (`ir:k5_e6:16x112x112:24:s2`).

This is the one listing of them: FLOPs tables count these pieces, latency tables hold one timing per key, and the
profiler times them. A key names what a piece builds and the shape it runs on, so identical blocks at identical
shapes (in two layers, or in two spaces) share one key and are counted and timed once. This module does not
import torch; a piece's `build()` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from edgenas.space.spec import Layer, Space

# The head is listed with two classifier sizes; other class counts are interpolated (a linear layer's cost is
# linear in its outputs).
HEAD_CLASSES = (10, 1000)


@dataclass(frozen=True)
class Piece:
    """Something to count or time: its key, how to build it and its input shape (channels, height, width)."""

    key: str
    build: Callable[[], Any]  # -> torch.nn.Module
    input_shape: tuple[int, int, int]


def block_key(layer: Layer, choice: str) -> str:
    return f"ir:{choice}:{layer.in_channels}x{layer.in_size}x{layer.in_size}:{layer.out_channels}:s{layer.stride}"


def stem_key(space: Space) -> str:
    r = space.resolution
    first = "" if space.first_channels is None else f":{space.first_channels}"  # a space without a fixed block
    return f"stem:3x{r}x{r}:{space.stem_channels}:s{space.spec.stem_stride}{first}"


def head_key(space: Space, num_classes: int) -> str:
    s = space.last_size
    return f"head:{space.last_channels}x{s}x{s}:{space.head_channels}:c{num_classes}"


def _stem(space: Space):
    from edgenas.space.network import Stem

    return Stem(space)


def _head(space: Space, num_classes: int):
    from edgenas.space.network import Head

    return Head(space, num_classes)


def _block(layer: Layer, choice: str, activation: str):
    from edgenas.space.blocks import make_block

    return make_block(choice, layer.in_channels, layer.out_channels, layer.stride, activation)


def stem_piece(space: Space) -> Piece:
    return Piece(stem_key(space), partial(_stem, space), (3, space.resolution, space.resolution))


def head_piece(space: Space, num_classes: int) -> Piece:
    return Piece(head_key(space, num_classes), partial(_head, space, num_classes),
                 (space.last_channels, space.last_size, space.last_size))


def block_piece(space: Space, layer: Layer, choice: str) -> Piece:
    return Piece(block_key(layer, choice), partial(_block, layer, choice, space.spec.activation),
                 (layer.in_channels, layer.in_size, layer.in_size))


def space_pieces(space: Space, head_classes: tuple[int, ...] = HEAD_CLASSES) -> list[Piece]:
    """Every distinct piece of `space`, each key once, in order: the stem, the head at each of `head_classes`, then
    each layer's choices that build a module with a cost (`Layer.costly_choices`: the identity `skip` has none)."""
    pieces = [stem_piece(space)] + [head_piece(space, classes) for classes in head_classes]
    pieces += [block_piece(space, layer, choice) for layer in space for choice in layer.costly_choices]
    distinct: dict[str, Piece] = {}
    for piece in pieces:
        distinct.setdefault(piece.key, piece)
    return list(distinct.values())
