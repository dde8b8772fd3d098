"""Batches: normalised batches of a split, shuffled and augmented (random crop with zero padding, horizontal flip) on
the training device for training, sharded across ranks for distributed training; streamed datasets decode their files
in DataLoader workers batch by batch and are augmented like cached ones.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.nn import functional as F

from edgenas.data.cache import ImageFiles
from edgenas.data.dataset import Dataset


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 images -> float, standardised per channel."""
    m = _upload(torch.tensor(mean).view(1, 3, 1, 1), x.device)
    s = _upload(torch.tensor(std).view(1, 3, 1, 1), x.device)
    return (x.float() / 255.0 - m) / s


def augment(x: torch.Tensor, generator: torch.Generator, flip: bool, pad: int,
            shard: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """Random crop with zero padding and horizontal flip, for a whole uint8 batch on its device.

    With `shard` (rank, world), `x` is the rank's part of a global batch `world` times larger: the random draws are
    made for the global batch, so every rank consumes the generator alike and the ranks together augment exactly
    as one process would.
    """
    n, _, h, w = x.shape
    rank, world = shard
    mine = slice(rank * n, (rank + 1) * n)
    if pad:
        padded = F.pad(x, (pad, pad, pad, pad))
        dy = _upload(torch.randint(0, 2 * pad + 1, (n * world, 1), generator=generator)[mine], x.device)
        dx = _upload(torch.randint(0, 2 * pad + 1, (n * world, 1), generator=generator)[mine], x.device)
        rows = dy + torch.arange(h, device=x.device)
        cols = dx + torch.arange(w, device=x.device)
        batch = torch.arange(n, device=x.device).view(n, 1, 1)
        # Advanced indices around a slice put their broadcast shape first: n x h x w x channels.
        x = padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        mirrored = _upload(torch.rand(n * world, generator=generator)[mine] < 0.5, x.device)
        x = torch.where(mirrored.view(n, 1, 1, 1), x.flip(3), x)
    return x.contiguous()


def _upload(values: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Small tensors made on the CPU (random draws from the shared generator, constants) moved to `device`. On a GPU
    through pinned memory, without waiting: a plain copy from pageable memory makes the host wait for every queued
    kernel, which in `augment` and `normalize` would be five synchronisations per training batch."""
    if device.type != "cuda":
        return values.to(device)
    return values.pin_memory().to(device, non_blocking=True)


def batches(data: Dataset, split: str, batch_size: int, *, classes: list[int] | None = None,
            generator: torch.Generator | None = None, train: bool = False, drop_last: bool = False,
            shard: tuple[int, int] = (0, 1)) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalised batches of `split`, only of `classes` when given; shuffled and augmented when `train`.

    `shard` (rank, world) splits every global batch of `world x batch_size` images (the same shuffle on every rank,
    from a shared generator) and yields this rank's part: the distributed sampler of the tensor cache. It needs
    `drop_last`, so that every rank makes the same number of steps.
    """
    rank, world = shard
    if world > 1 and not drop_last:
        raise ValueError("a sharded split needs drop_last (every rank must make the same number of steps)")
    y = data.y[split]
    index = torch.arange(len(y), device=y.device)
    if classes is not None:
        keep = torch.zeros(data.num_classes, dtype=torch.bool, device=y.device)
        keep[torch.as_tensor(classes, device=y.device)] = True
        index = index[keep[y]]
    if train:
        order = _upload(torch.randperm(len(index), generator=generator), index.device)
        index = index[order]
    pad = max(1, data.resolution // 8) if train else 0
    batch_size, step, stop = _chunking(len(index), batch_size, world, drop_last)
    chunks = [index[start:start + step][rank * batch_size:(rank + 1) * batch_size] for start in range(0, stop, step)]
    images = _stream(data, split, chunks) if data.files is not None else (data.x[split][c] for c in chunks)
    for chunk, x in zip(chunks, images, strict=True):
        if train:
            x = augment(x, generator, data.flip, pad, shard)
        yield normalize(x, data.mean, data.std), y[chunk]


def _chunking(images: int, batch_size: int, world: int, drop_last: bool) -> tuple[int, int, int]:
    """How `batches` cuts a split of `images` images: (images per rank and batch, per global batch, used)."""
    if world > 1 and images < batch_size * world:
        batch_size = images // world  # fewer images than one global batch: one smaller step (or none)
    step = batch_size * world
    stop = images - (images % step if drop_last and images >= step else 0) if step else 0
    return batch_size, step, stop


def batch_sizes(images: int, batch_size: int, world: int = 1, drop_last: bool = False) -> list[int]:
    """The sizes of the global batches (all ranks together) that `batches` makes of `images` images, in order."""
    _, step, stop = _chunking(images, batch_size, world, drop_last)
    return [min(step, stop - start) for start in range(0, stop, step)] if step else []


def _stream(data: Dataset, split: str, chunks: list[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Decode the chunks' files in DataLoader workers, in order, and move each batch to the labels' device."""
    if not chunks:
        return iter(())
    loader = torch.utils.data.DataLoader(ImageFiles(data.files[split], data.resolution),
                                         batch_sampler=[c.tolist() for c in chunks], num_workers=data.workers,
                                         pin_memory=data.y[split].device.type == "cuda")
    device = data.y[split].device
    return (x.to(device, non_blocking=True) for x in loader)


def cycle(make) -> Iterator:
    """`make()`'s batches again and again (a fresh, reshuffled pass each time); ends at once if a pass is empty."""
    while True:
        empty = True
        for item in make():
            empty = False
            yield item
        if empty:
            return
