"""FLOPs and parameters: a per-layer, per-candidate table counted once with fvcore, then sums.

Counting rule (fvcore's): one multiply-add is one FLOP, at batch 1 and the space's resolution. Batch norm is
left out because it folds into the preceding convolution at export, so MobileNetV2 at 224x224 counts
300,836,992 FLOPs, the "300M" the literature quotes (fvcore's default would also count batch norm: 314,193,216).
The network is a chain of pieces (stem with any fixed first block, one module per searchable layer, head with
pooling and classifier), so the network's count is exactly the sum of its pieces' counts. The table is cached
as JSON (see `edgenas.files.cache_dir`); reading it does not import torch.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from edgenas.errors import EdgeNASError
from edgenas.files import cache_dir, read_json, write_json
from edgenas.space.arch import Arch
from edgenas.space.pieces import block_key, head_key, space_pieces, stem_key
from edgenas.space.spec import Space

FORMAT = 1
RULE = "fvcore count at batch 1, one multiply-add = one FLOP, batch norm folded (not counted)"


@dataclass(frozen=True)
class FlopsTable:
    """FLOPs and parameters of every piece of one space at one resolution and width: (flops, params) pairs."""

    space: str
    space_hash: str
    stem: tuple[int, int]
    head: tuple[int, int]  # head conv, pooling and a classifier with one class
    per_class: tuple[int, int]  # what each further class adds to the classifier
    layers: dict[str, dict[str, tuple[int, int]]]

    def _check(self, arch: Arch) -> None:
        if arch.space_hash != self.space_hash:
            raise EdgeNASError(f"the FLOPs table is for space {self.space} (hash {self.space_hash}), not for the "
                               f"architecture's space {arch.space} (hash {arch.space_hash})")

    def _total(self, arch: Arch, index: int) -> int:
        self._check(arch)
        fixed = self.stem[index] + self.head[index] + (arch.num_classes - 1) * self.per_class[index]
        return fixed + sum(self.layers[label][choice][index] for label, choice in zip(self.layers, arch.layers,
                                                                                         strict=True))

    def flops(self, arch: Arch) -> int:
        return self._total(arch, 0)

    def params(self, arch: Arch) -> int:
        return self._total(arch, 1)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "rule": RULE, "space": self.space, "space_hash": self.space_hash,
                "stem": list(self.stem), "head": list(self.head), "per_class": list(self.per_class),
                "layers": {label: {c: list(v) for c, v in costs.items()} for label, costs in self.layers.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> FlopsTable:
        def pair(value) -> tuple[int, int]:
            flops, params = value
            return int(flops), int(params)

        return cls(data["space"], data["space_hash"], pair(data["stem"]), pair(data["head"]),
                   pair(data["per_class"]),
                   {label: {c: pair(v) for c, v in costs.items()} for label, costs in data["layers"].items()})


def _cache_path(space: Space) -> Path:
    return cache_dir() / "flops" / f"{space.name}-{space.hash}.json"


def cost_table(space: Space, use_cache: bool = True) -> FlopsTable:
    """The space's FLOPs and parameter table: from the cache when it holds this space's hash, else counted."""
    path = _cache_path(space)
    if use_cache and path.is_file():
        try:
            data = read_json(path)
            if data.get("format") == FORMAT and data.get("space_hash") == space.hash:
                return FlopsTable.from_dict(data)
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


def count_flops(module, input_shape: tuple[int, ...]) -> int:
    """fvcore's FLOPs of `module` on one input of `input_shape` (no batch axis), batch norm not counted."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # fvcore's import uses the deprecated torch.jit.script
        from fvcore.nn import FlopCountAnalysis

    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analysis = FlopCountAnalysis(module, torch.zeros(1, *input_shape))
            # fvcore 0.1.5: set_op_handle(name, None) keeps the default handle; a handle returning 0 removes it.
            analysis.set_op_handle("aten::batch_norm", lambda inputs, outputs: 0)
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            return int(analysis.total())
    finally:
        module.train(was_training)


def count_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_table(space: Space) -> FlopsTable:
    """Count every piece of the space with fvcore; identical blocks at identical shapes are counted once."""
    import torch
    from torch import nn

    def cost(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, int]:
        return count_flops(module, shape), count_params(module)

    with torch.random.fork_rng(devices=[]):  # counts do not depend on weights: leave the caller's RNG alone
        return _count_pieces(space, cost)


def _count_pieces(space: Space, cost) -> FlopsTable:
    """The table from `cost(module, input_shape)` of each of the space's pieces (`space.pieces`), each key once. The
    head is counted with one and two classes, whose difference is what each further class adds; the identity `skip`
    builds no module with a cost and counts (0, 0)."""
    pieces = space_pieces(space, head_classes=(1, 2))
    costs = {piece.key: cost(piece.build(), piece.input_shape) for piece in pieces}
    stem_cost = costs[stem_key(space)]
    head_costs = [costs[head_key(space, classes)] for classes in (1, 2)]
    per_class = (head_costs[1][0] - head_costs[0][0], head_costs[1][1] - head_costs[0][1])
    layers = {layer.label: {choice: costs[block_key(layer, choice)] if choice in layer.costly_choices else (0, 0)
                            for choice in layer.choices}
              for layer in space}
    return FlopsTable(space.name, space.hash, stem_cost, head_costs[0], per_class, layers)
