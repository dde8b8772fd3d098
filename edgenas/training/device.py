"""Where training runs and how: the device, the precision, the memory format, compilation and the torchrun rank."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from edgenas.training.distributed import Ranks

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MEMORY_FORMATS = ("auto", "channels-last", "contiguous")


@dataclass(frozen=True)
class Device:
    """Where training runs and how: precision, memory format and compilation; under torchrun, which rank this
    process is (each rank takes the GPU of its LOCAL_RANK).

    `auto` picks what docs/BENCHMARKS.md ("CPU training speed") measured to pay: on a GPU bfloat16 autocast
    (float16 with loss scaling where bfloat16 is missing) and channels-last; on the CPU float32 and channels-last
    (oneDNN's channels-last convolutions took 0.44-0.64x the NCHW step time of both the standalone network and
    the sliced supernet).
    """

    device: torch.device
    amp_dtype: torch.dtype | None
    ranks: Ranks = field(default_factory=Ranks)
    channels_last: bool = False
    compile: bool = False  # standalone training only: a supernet's every path would compile anew

    @classmethod
    def pick(cls, name: str = "auto", precision: str = "auto", memory_format: str = "auto",
             compile: bool = False) -> Device:
        from edgenas.errors import EdgeNASError

        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
            raise EdgeNASError(f"bad device {name!r}: expected auto, cpu or cuda")
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise EdgeNASError(f"device {name!r} asked for, but no CUDA GPU is visible")
        if precision not in PRECISIONS:
            raise EdgeNASError(f"bad precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        if memory_format not in MEMORY_FORMATS:
            raise EdgeNASError(f"bad memory format {memory_format!r}: expected one of {', '.join(MEMORY_FORMATS)}")
        ranks = Ranks.from_env()
        if ranks.many and name.startswith("cuda"):
            name = f"cuda:{ranks.local_rank}"
            torch.cuda.set_device(ranks.local_rank)
        device = torch.device(name)
        ranks.start(device.type)
        cuda = device.type == "cuda"
        if precision == "auto":
            precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
        if precision == "fp16" and not cuda:
            raise EdgeNASError("precision fp16 needs a CUDA GPU: expected fp32 or bf16 on the CPU")
        dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        return cls(device, dtype, ranks, channels_last=memory_format != "contiguous", compile=compile)

    def describe(self) -> dict:
        """What `auto` resolved to, for config.json."""
        return {"device": str(self.device), "amp": str(self.amp_dtype),
                "memory_format": "channels-last" if self.channels_last else "contiguous", "compile": self.compile}

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def prepare(self, module: nn.Module) -> nn.Module:
        module = module.to(self.device)
        return module.to(memory_format=torch.channels_last) if self.channels_last else module

    def compiled(self, module: nn.Module) -> nn.Module:
        """`module` compiled when asked (its parameters stay `module`'s: save the original, not the result)."""
        return torch.compile(module) if self.compile else module

    def input(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @property
    def shard(self) -> tuple[int, int]:
        return self.ranks.rank, self.ranks.world

    def scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
