"""Decoding: image files and arrays to uint8 tensors (3 x R x R) at the space's resolution, and the cache of decoded
ImageFolder trees.

Files are decoded with Pillow (shorter side resized, centre cropped); arrays (digits, .npz, CIFAR) are resized with
antialiased bilinear resampling. A decoded tree is cached as one tensor keyed by every file's path, size and
modification time, so a changed file is decoded again. A tree too large to decode up front streams through
`ImageFiles` in DataLoader workers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from edgenas.errors import EdgeNASError


class ImageFiles(torch.utils.data.Dataset):
    """Image files decoded and resized on demand (in DataLoader workers)."""

    def __init__(self, files: list[Path], resolution: int):
        self.files, self.resolution = files, resolution

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        return decode(self.files[index], self.resolution)



def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 N x C x H x W -> uint8 N x 3 x R x R (grey images get three channels; antialiased resampling)."""
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] == (resolution, resolution):
        return x.contiguous()
    out = []
    for chunk in x.split(1024):
        scaled = F.interpolate(chunk.float(), size=(resolution, resolution), mode="bilinear", antialias=True,
                               align_corners=False)
        out.append(scaled.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)



def _unreadable() -> tuple[type[Exception], ...]:
    """What Pillow raises for a file it cannot read: not an image, truncated or corrupt data (OSError, and
    SyntaxError from some format plugins), a mode with no conversion to RGB (ValueError), a decompression bomb."""
    from PIL import Image

    return OSError, SyntaxError, ValueError, Image.DecompressionBombError


def decode(file: Path, resolution: int) -> torch.Tensor:
    """One image file -> uint8 3 x R x R (shorter side resized, centre cropped)."""
    from PIL import Image

    try:
        with Image.open(file) as image:
            image = image.convert("RGB")
            if image.size != (resolution, resolution):
                image = _center_resize(image, resolution)
            return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()
    except _unreadable() as exc:
        raise EdgeNASError(f"cannot read image {file}: {exc}") from None


def check_headers(files: list[Path], problems: list[str]) -> None:
    """Streamed trees are not decoded up front; reading each header still finds files that are not images."""
    from PIL import Image

    for file in files:
        try:
            with Image.open(file):
                pass
        except _unreadable() as exc:
            problems.append(f"cannot read image {file}: {exc}")


def _center_resize(image, resolution: int):
    """Shorter side to the resolution, then the central square (what eval-time ImageNet pipelines do)."""
    from PIL import Image

    w, h = image.size
    scale = resolution / min(w, h)
    image = image.resize((max(resolution, round(w * scale)), max(resolution, round(h * scale))), Image.BILINEAR)
    w, h = image.size
    left, top = (w - resolution) // 2, (h - resolution) // 2
    return image.crop((left, top, left + resolution, top + resolution))


def decode_cached(files: list[Path], resolution: int, problems: list[str]) -> torch.Tensor | None:
    """Decode files to one uint8 tensor, reusing a cache keyed by every file's path, size and modification time
    (decoding CIFAR-10's 60,000 JPEGs takes about 20 s here; loading the cache, under a second). Each file that
    cannot be read goes to `problems` (and then None is returned)."""
    import hashlib

    from edgenas.files import cache_dir

    digest = hashlib.sha256(str(resolution).encode())
    for file in files:
        stat = file.stat()
        digest.update(f"{file.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    path = cache_dir() / "images" / f"{digest.hexdigest()[:24]}.pt"
    if path.is_file():
        try:
            cached = torch.load(path, weights_only=True)
            if isinstance(cached, torch.Tensor) and cached.shape == (len(files), 3, resolution, resolution):
                return cached
        except Exception:  # a damaged cache entry is decoded again and replaced
            pass
    decoded = []
    for file in files:
        try:
            decoded.append(decode(file, resolution))
        except EdgeNASError as exc:
            problems.append(str(exc))
    if len(decoded) < len(files):
        return None
    images = torch.stack(decoded) if decoded else torch.empty((0, 3, resolution, resolution), dtype=torch.uint8)
    try:
        import io

        from edgenas.files import atomic_write_bytes

        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(images, buffer)
        atomic_write_bytes(path, buffer.getvalue())
    except (OSError, EdgeNASError):
        pass  # no writable cache: decode again next time
    return images
