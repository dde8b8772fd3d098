"""Several processes, one search: PyTorch's DistributedDataParallel under `torchrun`, and the few collectives around it.

`torchrun --nproc_per_node N -m edgenas search ...` starts N processes with RANK, WORLD_SIZE and LOCAL_RANK set;
`Ranks.start()` joins them in a process group (NCCL on GPUs, Gloo on the CPU). Each rank trains on its shard of every
global batch (see `data.batches`), DDP averages the weight gradients, `average_()` the architecture gradients; all
ranks draw the same paths from one shared seed, so alphas, masks and pruning decisions stay identical, which
`check_same()` verifies at each stage. Only rank 0 writes files and prints. A single process (no torchrun) is a
world of one, where every function here does nothing.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
from torch import nn

from edgenas.errors import EdgeNASError

IGNORED_BY_DDP = ["alpha", "active"]  # architecture logits (averaged by hand) and the candidate mask (never trained)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def many(self) -> bool:
        return self.world > 1

    @classmethod
    def from_env(cls) -> Ranks:
        """The ranks torchrun describes in the environment (a world of one without torchrun)."""
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", "0"))
        except ValueError as exc:
            raise EdgeNASError(f"bad torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK): {exc}") from None
        return cls(rank, world, local)

    def start(self, device_type: str) -> None:
        """Join the process group (once per process): NCCL for CUDA devices, Gloo for the CPU."""
        import torch.distributed as dist

        if self.many and not dist.is_initialized():
            dist.init_process_group("nccl" if device_type == "cuda" else "gloo", rank=self.rank,
                                    world_size=self.world)


def wrap(model: nn.Module, ranks: Ranks, device: torch.device) -> nn.Module:
    """`model` under DistributedDataParallel when there are several ranks, else `model` itself."""
    if not ranks.many:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ignored = [name for name in IGNORED_BY_DDP if hasattr(model, name)]
    if ignored:
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, ignored)
    # A sampled path leaves the other candidates' weights without gradients: DDP must look for unused ones.
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=hasattr(model, "alpha"))


def average_(tensor: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """Average `tensor` in place over the ranks."""
    if ranks.many:
        import torch.distributed as dist

        dist.all_reduce(tensor)
        tensor /= ranks.world
    return tensor


def sum_(tensor: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    if ranks.many:
        import torch.distributed as dist

        dist.all_reduce(tensor)
    return tensor


def broadcast(obj, ranks: Ranks):
    """Rank 0's `obj` (any picklable value made by this program) on every rank."""
    if not ranks.many:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj, ranks: Ranks) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    if not ranks.many:
        return [obj]
    import torch.distributed as dist

    boxes = [None] * ranks.world
    dist.all_gather_object(boxes, obj)
    return boxes


def barrier(ranks: Ranks) -> None:
    if ranks.many:
        import torch.distributed as dist

        dist.barrier()


def fingerprint(*tensors: torch.Tensor) -> str:
    """A short digest of exact tensor contents, for comparing state across ranks."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def check_same(what: str, value, ranks: Ranks) -> None:
    """Refuse to go on when the ranks disagree on `value` (a fingerprint, a list of choices...)."""
    values = gather(value, ranks)
    if any(v != values[0] for v in values):
        raise EdgeNASError(f"ranks disagree on {what} ({values}); the distributed search is no longer one search")


def finish(ranks: Ranks) -> None:
    """Leave the process group, if this process joined one."""
    import torch.distributed as dist

    if ranks.many and dist.is_initialized():
        dist.destroy_process_group()
