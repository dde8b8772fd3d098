"""A space's memory table: the counts of `memory.py` for every piece of the space (`space.pieces`), counted once and
cached as JSON like the FLOPs table, and an architecture's model size and peak memory from them.

Model size adds up over pieces, like FLOPs, so the knapsack sums it. Peak memory does not: a network is a chain of
pieces and only the tensor between two pieces crosses from one to the next, so the network's peak is the largest of
its pieces' peaks (each counted with its input held as long as it is read). A budget on it is therefore a cap per
piece: a network is within it exactly when each of its pieces is. The head's peak depends on the class count through
its last tensor, the logits: max(peak before the classifier, what is live beside the logits + classes). Reading a
cached table does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgenas.cost.memory import ELEMENT_BYTES, Counts, count_memory
from edgenas.errors import EdgeNASError
from edgenas.files import cache_dir, read_json, write_json
from edgenas.space.arch import Arch
from edgenas.space.pieces import block_key, head_key, space_pieces, stem_key
from edgenas.space.spec import Space

FORMAT = 2  # 2: strided convolutions' padded copies counted (LiteRT's PAD)
SIZE_RULE = ("weights after batch norm folding: FP32 4 bytes a parameter; INT8 1 byte a weight, and per output "
             "channel a float32 scale, an int8 zero point and an int32 bias")
PEAK_RULE = ("largest sum of live activation tensors at batch 1 over the network's operations, in execution order "
             "(FP32 4 bytes, INT8 1 byte an element; in-place activations; the padded copy LiteRT makes for a strided "
             "convolution; no runtime scratch buffers)")


@dataclass(frozen=True)
class MemoryTable:
    """The counts of every piece of one space at one resolution and width."""

    space: str
    space_hash: str
    stem: Counts
    head: Counts  # the head with a classifier of one class
    per_class: Counts  # what each further class adds to the head's weights
    layers: dict[str, dict[str, Counts]]

    def _check(self, arch: Arch) -> None:
        if arch.space_hash != self.space_hash:
            raise EdgeNASError(f"the memory table is for space {self.space} (hash {self.space_hash}), not for the "
                               f"architecture's space {arch.space} (hash {arch.space_hash})")

    def head_peak(self, num_classes: int) -> int:
        """Peak activation elements of the head with `num_classes` logits."""
        return max(self.head.before_last, self.head.beside_last + num_classes)

    def fixed_size(self, num_classes: int, precision: str) -> int:
        """Bytes of the stem's and the head's weights."""
        return (self.stem.size(precision) + self.head.size(precision)
                + (num_classes - 1) * self.per_class.size(precision))

    def fixed_peak(self, num_classes: int, precision: str) -> int:
        """Peak activation bytes of the stem and the head (the larger)."""
        return ELEMENT_BYTES[precision] * max(self.stem.peak, self.head_peak(num_classes))

    def model_size(self, arch: Arch, precision: str) -> int:
        """Bytes of the architecture's weights at `precision`: the sum over its pieces."""
        self._check(arch)
        return self.fixed_size(arch.num_classes, precision) + sum(
            self.layers[label][choice].size(precision) for label, choice in zip(self.layers, arch.layers,
                                                                                 strict=True))

    def peak_memory(self, arch: Arch, precision: str) -> int:
        """Peak activation bytes of the architecture at batch 1 and `precision`: the largest over its pieces."""
        self._check(arch)
        layers = (self.layers[label][choice].peak for label, choice in zip(self.layers, arch.layers, strict=True))
        return max(self.fixed_peak(arch.num_classes, precision), ELEMENT_BYTES[precision] * max(layers, default=0))

    def ranges(self, num_classes: int, precision: str) -> dict[str, tuple[int, int]]:
        """The least and the most model size and peak memory (bytes) of a network of the space: exact, as sums and
        maxima of each layer's extremes."""
        sizes = [[c.size(precision) for c in costs.values()] for costs in self.layers.values()]
        peaks = [[c.peak for c in costs.values()] for costs in self.layers.values()]
        fixed_size, fixed_peak = self.fixed_size(num_classes, precision), self.fixed_peak(num_classes, precision)
        element = ELEMENT_BYTES[precision]
        return {"model_size_bytes": (fixed_size + sum(map(min, sizes)), fixed_size + sum(map(max, sizes))),
                "peak_memory_bytes": (max(fixed_peak, element * max(map(min, peaks), default=0)),
                                      max(fixed_peak, element * max(map(max, peaks), default=0)))}

    def to_dict(self) -> dict:
        return {"format": FORMAT, "size_rule": SIZE_RULE, "peak_rule": PEAK_RULE, "space": self.space,
                "space_hash": self.space_hash, "counts": list(Counts.__dataclass_fields__),
                "stem": self.stem.to_list(), "head": self.head.to_list(), "per_class": self.per_class.to_list(),
                "layers": {label: {c: v.to_list() for c, v in costs.items()} for label, costs in self.layers.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> MemoryTable:
        layers = {label: {c: Counts.from_list(v) for c, v in costs.items()} for label, costs in data["layers"].items()}
        return cls(data["space"], data["space_hash"], Counts.from_list(data["stem"]), Counts.from_list(data["head"]),
                   Counts.from_list(data["per_class"]), layers)


def _cache_path(space: Space) -> Path:
    return cache_dir() / "memory" / f"{space.name}-{space.hash}.json"


def memory_table(space: Space, use_cache: bool = True) -> MemoryTable:
    """The space's memory table: from the cache when it holds this space's hash, else counted."""
    path = _cache_path(space)
    if use_cache and path.is_file():
        try:
            data = read_json(path)
            if data.get("format") == FORMAT and data.get("space_hash") == space.hash:
                return MemoryTable.from_dict(data)
        except (EdgeNASError, KeyError, TypeError, ValueError, AttributeError):
            pass  # a damaged cache entry is recounted and replaced
    table = count_table(space)
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, table.to_dict())
        except (OSError, EdgeNASError):
            pass  # a read-only home only costs a recount next time
    return table


def count_table(space: Space) -> MemoryTable:
    """Count every piece of the space (each key once); the identity `skip` holds and needs nothing."""
    import torch

    with torch.random.fork_rng(devices=[]):  # counts do not depend on weights: leave the caller's RNG alone
        pieces = space_pieces(space, head_classes=(1, 2))
        counts = {piece.key: count_memory(piece.build(), piece.input_shape) for piece in pieces}
    one, two = (counts[head_key(space, classes)] for classes in (1, 2))
    per_class = Counts(two.weights - one.weights, two.channels - one.channels, two.biases - one.biases,
                       two.other - one.other)
    layers = {layer.label: {choice: counts[block_key(layer, choice)] if choice in layer.costly_choices else Counts()
                            for choice in layer.choices}
              for layer in space}
    return MemoryTable(space.name, space.hash, counts[stem_key(space)], one, per_class, layers)


def memory_of_network(model, arch: Arch, precision: str) -> dict:
    """Model size and peak memory counted on the whole built network (not from the table): the final check."""
    counts = count_memory(model, (3, arch.resolution, arch.resolution))
    return {"model_size_bytes": counts.size(precision), "peak_memory_bytes": ELEMENT_BYTES[precision] * counts.peak}
