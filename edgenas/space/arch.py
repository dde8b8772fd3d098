"""Architectures as data: a space, its structural hash, resolution, width, class count and one choice per layer.

An `Arch` is what a search produces and what `build_model` consumes. It is saved as a small JSON file and
validated against its space on load, with an error that names the offending layer, value or key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgenas.errors import EdgeNASError
from edgenas.files import read_json, write_json
from edgenas.space.choices import parse_choice
from edgenas.space.spec import Space, get_space

FORMAT = 1
KEYS = ("format", "space", "space_hash", "resolution", "width_mult", "num_classes", "layers")


@dataclass(frozen=True)
class Arch:
    space: str
    space_hash: str
    resolution: int
    width_mult: float
    num_classes: int
    layers: tuple[str, ...]

    def resolve_space(self) -> Space:
        return get_space(self.space, self.resolution, self.width_mult)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "space": self.space, "space_hash": self.space_hash,
                "resolution": self.resolution, "width_mult": self.width_mult,
                "num_classes": self.num_classes, "layers": list(self.layers)}

    def save(self, path: str | os.PathLike) -> Path:
        return write_json(path, self.to_dict())


def make_arch(space: Space, layers: list[str] | tuple[str, ...], num_classes: int) -> Arch:
    """An architecture of `space`, checked like a loaded one."""
    return from_dict({"space": space.name, "space_hash": space.hash, "resolution": space.resolution,
                      "width_mult": space.width_mult, "num_classes": num_classes, "layers": list(layers)})


def _field(data: dict, key: str, kind: type | tuple[type, ...], source: str) -> Any:
    if key not in data:
        raise EdgeNASError(f"{source}: missing key {key!r}")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise EdgeNASError(f"{source}: {key!r} is {value!r}; expected {names}")
    return value


def from_dict(data: Any, source: str = "architecture") -> Arch:
    """Validate plain data against its space; every problem names the key or layer and what was expected."""
    if not isinstance(data, dict):
        raise EdgeNASError(f"{source}: expected a JSON object with keys space, space_hash, resolution, "
                           "width_mult, num_classes and layers")
    if data.get("format", FORMAT) != FORMAT:
        raise EdgeNASError(f"{source}: architecture format {data.get('format')!r} is not supported; "
                           f"expected {FORMAT}")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise EdgeNASError(f"{source}: unknown key {unknown[0]!r}; expected only {', '.join(KEYS)}")
    name = _field(data, "space", str, source)
    resolution = _field(data, "resolution", int, source)
    width_mult = _field(data, "width_mult", (int, float), source)
    num_classes = _field(data, "num_classes", int, source)
    space_hash = _field(data, "space_hash", str, source)
    layers = _field(data, "layers", list, source)
    if num_classes < 2:
        raise EdgeNASError(f"{source}: 'num_classes' is {num_classes}; expected at least 2")
    try:
        space = get_space(name, resolution, float(width_mult))
    except EdgeNASError as exc:
        raise EdgeNASError(f"{source}: {exc}") from None
    if space_hash != space.hash:
        raise EdgeNASError(f"{source}: space_hash {space_hash!r} does not match space {name} at resolution "
                           f"{resolution} and width {float(width_mult)} (hash {space.hash!r}); the file was made "
                           "for another configuration or version of the space")
    if len(layers) != len(space):
        raise EdgeNASError(f"{source}: 'layers' has {len(layers)} entries; space {name} has {len(space)} "
                           "searchable layers")
    for layer, choice in zip(space, layers, strict=True):
        if not isinstance(choice, str):
            raise EdgeNASError(f"{source}: layer {layer.label} is {choice!r}; expected a choice string such as "
                               f"{layer.choices[0]}")
        if choice not in layer.choices:
            try:
                parse_choice(choice)  # a malformed string gets the format error
            except EdgeNASError as exc:
                raise EdgeNASError(f"{source}: layer {layer.label}: {exc}") from None
            if choice == "skip":
                raise EdgeNASError(f"{source}: layer {layer.label} cannot be 'skip' (it changes shape: "
                                   f"{layer.in_channels}x{layer.in_size} -> {layer.out_channels}x{layer.out_size}); "
                                   f"expected one of {', '.join(layer.choices)}")
            raise EdgeNASError(f"{source}: layer {layer.label} has unknown choice {choice!r}; expected one of "
                               f"{', '.join(layer.choices)}")
    return Arch(name, space_hash, resolution, float(width_mult), num_classes, tuple(layers))


def load_arch(path: str | os.PathLike) -> Arch:
    return from_dict(read_json(path, "architecture file"), source=str(path))
