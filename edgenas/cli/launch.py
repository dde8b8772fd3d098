"""Several processes for one command: `--nproc N` relaunches the command under torchrun, and each rank learns
whether it is the one that prints."""

from __future__ import annotations

import contextlib
import sys

import typer

from edgenas.errors import EdgeNASError


def launch_ranks(nproc: int | None, device: str | None = None) -> None:
    """`--nproc N` (N > 1) outside torchrun: run this same command under `torchrun --standalone --nproc_per_node N`,
    wait for it and exit with its code. Returns (and this process does the work) in every other case."""
    import os
    import subprocess

    if nproc is None or "WORLD_SIZE" in os.environ:
        return
    if nproc < 1:
        raise EdgeNASError(f"bad --nproc {nproc}: expected 1 or more processes")
    if nproc == 1:
        return
    if device not in (None, "cpu"):
        import torch

        if torch.cuda.is_available() and nproc > torch.cuda.device_count():
            raise EdgeNASError(f"bad --nproc {nproc}: only {torch.cuda.device_count()} CUDA GPUs are visible "
                               "(one process per GPU)")
    argv, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            argv.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "edgenas", *argv]
    raise typer.Exit(subprocess.run(command).returncode)


@contextlib.contextmanager
def rank():
    """Yields whether this process prints its result (rank 0 of a torchrun launch, or a single process), and leaves
    the process group, if one was joined, on the way out."""
    from edgenas.training.distributed import Ranks, finish

    ranks = Ranks.from_env()
    try:
        yield ranks.main
    finally:
        finish(ranks)
