"""Data: load a dataset (embedded digits, ImageFolder tree, CIFAR python folder, .npz), split it deterministically,
keep it decoded as uint8 tensors on the training device, and serve augmented batches of chosen classes.

Splits: `train` (weights), `val` (the search-validation split carved from train, class-balanced: architecture
parameters and the difficulty probe), `test` (never seen by any search decision). Every image is resized to the
space's resolution once, at load time. An ImageFolder tree whose decoded images would exceed `memory_gb` is not
decoded up front: its files stream through DataLoader workers that decode and resize them, batch by batch, and the
batches are augmented on the training device like cached ones.

Bad data is reported all at once: every empty class, non-image file and unreadable image of an ImageFolder tree
in one error, so that one run names everything to fix. A class with fewer than `FEW_IMAGES` images loads, with a
note (`Dataset.notes`) that the search prints as a warning and records in config.json.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from edgenas.errors import EdgeNASError, listing

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
SPLIT_SEED = 20200327  # splits do not depend on the run's seed: every run on a dataset sees the same test split
# A class with fewer than 20 images is too small for its splits to mean much: at the default fractions (a fifth for
# test, a tenth of the rest for search-validation) 20 images give it 14 training, 2 search-validation and 4 test
# images, where one image already moves its test accuracy by 25 points and its search-validation accuracy by 50;
# with fewer, a single image decides them (and the difficulty probe's class order rests on the latter).
FEW_IMAGES = 20


@dataclass
class Dataset:
    """Decoded images (uint8, N x 3 x R x R) and labels (int64) per split, on one device."""

    name: str
    classes: list[str]
    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    flip: bool
    resolution: int
    files: dict[str, list[Path]] | None = None  # streamed datasets: image files per split (x is then empty)
    workers: int = 2
    notes: list[str] = field(default_factory=list)  # what weakens results on this data (too few images of a class)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def size(self, split: str) -> int:
        return len(self.y[split])

    def to(self, device: torch.device | str) -> Dataset:
        return replace(self, x={k: v.to(device) for k, v in self.x.items()},
                       y={k: v.to(device) for k, v in self.y.items()})

    def describe(self) -> dict:
        return {"name": self.name, "classes": self.classes, "resolution": self.resolution, "flip": self.flip,
                "mean": list(self.mean), "std": list(self.std), "streamed": self.files is not None,
                **{f"{k}_images": self.size(k) for k in self.y}, "notes": list(self.notes)}


class _ImageFiles(torch.utils.data.Dataset):
    """Image files decoded and resized on demand (in DataLoader workers)."""

    def __init__(self, files: list[Path], resolution: int):
        self.files, self.resolution = files, resolution

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        return _decode(self.files[index], self.resolution)


# ---------------------------------------------------------------- batches


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
    loader = torch.utils.data.DataLoader(_ImageFiles(data.files[split], data.resolution),
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


def count_images(data: Dataset, split: str, classes: list[int] | None = None) -> int:
    if classes is None:
        return data.size(split)
    return int(sum((data.y[split] == c).sum().item() for c in classes))


# ---------------------------------------------------------------- loading


def load_dataset(path: str | os.PathLike | None, resolution: int, *, flip: bool | None = None,
                 val_fraction: float = 0.1, test_fraction: float = 0.2, memory_gb: float = 8.0,
                 workers: int = 2, train_per_class: int | None = None, test_per_class: int | None = None) -> Dataset:
    """Load the embedded digits (path None) or the dataset at `path`, resized to `resolution`, split.

    An ImageFolder tree whose decoded images exceed `memory_gb` streams from its files instead. `train_per_class`
    and `test_per_class` keep a deterministic class-balanced subset (for quick experiments on large datasets)."""
    for name, value in (("train images per class", train_per_class), ("test images per class", test_per_class)):
        if value is not None and value < (2 if name.startswith("train") else 1):
            raise EdgeNASError(f"bad {name} {value}: expected at least {2 if name.startswith('train') else 1}")
    if not 0 < val_fraction < 0.5:
        raise EdgeNASError(f"bad search-validation fraction {val_fraction}: expected a number between 0 and 0.5")
    if path is None:
        name, classes, splits = _digits(resolution, test_fraction)
        default_flip = False  # a mirrored digit is another symbol
    else:
        root = Path(path)
        if not root.exists():
            raise EdgeNASError(f"dataset path {root} does not exist")
        name = root.name
        if root.is_file() and root.suffix == ".npz":
            classes, splits = _npz(root, resolution)
        elif root.is_dir() and ((root / "data_batch_1").is_file() or (root / "train").is_file()):
            classes, splits = _cifar(root, resolution)
        elif root.is_dir():
            limit = int(memory_gb * 2**30) // (3 * resolution * resolution)
            classes, splits = _image_folder(root, resolution, test_fraction, limit)
        else:
            raise EdgeNASError(f"dataset path {root}: expected an ImageFolder root, a CIFAR python folder or an .npz "
                               "file")
        default_flip = True
    x_train, y_train = _subset(*splits["train"], train_per_class, len(classes))
    x_test, y_test = _subset(*splits["test"], test_per_class, len(classes))
    _check_labels(y_train, y_test, classes, name)
    train_idx, val_idx = _balanced_split(y_train, val_fraction, len(classes))
    y = {"train": y_train[train_idx], "val": y_train[val_idx], "test": y_test}
    flip = default_flip if flip is None else flip
    notes = _few_images(y, classes)
    if isinstance(x_train, list):  # streamed: statistics from up to 2,000 decoded training images
        files = {"train": [x_train[i] for i in train_idx], "val": [x_train[i] for i in val_idx], "test": x_test}
        sample = torch.stack([_decode(f, resolution) for f in files["train"][:: max(1, len(files["train"]) // 2000)]])
        mean, std = _statistics(sample)
        return Dataset(name, classes, {}, y, mean, std, flip, resolution, files, workers, notes)
    x = {"train": x_train[train_idx], "val": x_train[val_idx], "test": x_test}
    mean, std = _statistics(x["train"])
    return Dataset(name, classes, x, y, mean, std, flip, resolution, notes=notes)


def _few_images(y: dict[str, torch.Tensor], classes: list[str]) -> list[str]:
    """A note naming the classes with fewer than `FEW_IMAGES` images in all splits together (none if no class)."""
    counts = {split: torch.bincount(labels, minlength=len(classes)).tolist() for split, labels in y.items()}
    few = [(name, [counts[split][c] for split in ("train", "val", "test")]) for c, name in enumerate(classes)
           if sum(counts[split][c] for split in counts) < FEW_IMAGES]
    if not few:
        return []
    named = [f"{name!r} ({sum(n)} images: {n[0]} training, {n[1]} search-validation, {n[2]} test)"
             for name, n in few[:10]] + ([f"{len(few) - 10} more"] if len(few) > 10 else [])
    which = f"class {named[0]} has" if len(few) == 1 else f"{len(few)} classes have"
    listed = "" if len(few) == 1 else f": {', '.join(named)}"
    its, them = ("its", "it") if len(few) == 1 else ("their", "them")
    return [f"{which} fewer than {FEW_IMAGES} images{listed}; {its} search-validation and test accuracies rest on "
            f"one or a few images, so the search's choices and the test accuracy say little about {them}: add images "
            f"({FEW_IMAGES} or more per class), or merge such a class with a similar one or leave it out"]


def _subset(x, y: torch.Tensor, per_class: int | None, num_classes: int):
    """At most `per_class` images of each class, drawn with the split seed (the same subset on every run)."""
    if per_class is None:
        return x, y
    generator = torch.Generator().manual_seed(SPLIT_SEED + 1)
    keep = []
    for c in range(num_classes):
        members = torch.nonzero(y == c).flatten()
        keep.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    index = torch.cat(keep).sort().values
    return ([x[i] for i in index.tolist()] if isinstance(x, list) else x[index]), y[index]


def _statistics(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    as_float = images.float() / 255.0
    return (tuple(float(v) for v in as_float.mean((0, 2, 3))),
            tuple(max(1e-3, float(v)) for v in as_float.std((0, 2, 3))))


def _refuse(name: str, problems: list[str]) -> None:
    """Raise one error naming every problem found in dataset `name` (nothing when there is none)."""
    if len(problems) == 1:
        raise EdgeNASError(problems[0])
    if problems:
        raise EdgeNASError(listing(f"dataset {name} has {len(problems)} problems (each on a line below); fix them "
                                   "all, then run again:", problems))


def _check_labels(y_train: torch.Tensor, y_test: torch.Tensor, classes: list[str], name: str) -> None:
    if len(classes) < 2:
        raise EdgeNASError(f"dataset {name} has {len(classes)} class; expected at least 2")
    problems = []
    for split, y in (("train", y_train), ("test", y_test)):
        counts = torch.bincount(y, minlength=len(classes))
        if len(counts) > len(classes):
            problems.append(f"dataset {name}: {split} labels go up to {int(y.max())}, but there are only "
                            f"{len(classes)} classes")
            continue
        problems += [f"dataset {name}: class {classes[i]!r} has no {split} images"
                     for i in range(len(classes)) if counts[i] == 0]
        if split == "train":
            problems += [f"dataset {name}: class {classes[i]!r} has fewer than 2 training images (one is needed "
                         "for search-validation)" for i in range(len(classes)) if counts[i] == 1]
    _refuse(name, problems)


def _balanced_split(y: torch.Tensor, fraction: float, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, a deterministic `fraction` (at least one image) goes to the second part."""
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    first, second = [], []
    for c in range(num_classes):
        members = torch.nonzero(y == c).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        cut = max(1, round(fraction * len(members)))
        second.append(members[:cut])
        first.append(members[cut:])
    return torch.cat(first).sort().values, torch.cat(second).sort().values


def _resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
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


def _digits(resolution: int, test_fraction: float):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy((digits.images * (255.0 / 16.0)).round().astype(np.uint8)).unsqueeze(1)
    y = torch.from_numpy(digits.target.astype(np.int64))
    train_idx, test_idx = _balanced_split(y, test_fraction, 10)
    x = _resize(x, resolution)
    return "digits", [str(i) for i in range(10)], {"train": (x[train_idx], y[train_idx]),
                                                  "test": (x[test_idx], y[test_idx])}


def _npz(path: Path, resolution: int):
    if not zipfile.is_zipfile(path):  # numpy would otherwise suggest loading it as a pickle
        raise EdgeNASError(f"{path} is not an .npz archive (not a zip file); expected numpy.savez output with "
                           "arrays x_train, y_train, x_test and y_test")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in ("x_train", "y_train", "x_test", "y_test") if k in archive.files}
            names = archive["classes"].tolist() if "classes" in archive.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise EdgeNASError(f"cannot read {path} as an .npz archive: {exc}") from None
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise EdgeNASError(f"{path}: missing array {missing[0]!r}; expected x_train, y_train, x_test and y_test")
    splits = {}
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"].reshape(-1)
        splits[split] = (_as_images(images, path, f"x_{split}", resolution), _as_labels(labels, path, f"y_{split}"))
        if len(splits[split][0]) != len(splits[split][1]):
            raise EdgeNASError(f"{path}: x_{split} has {len(images)} images but y_{split} has {len(labels)} labels")
    count = int(max(splits["train"][1].max(), splits["test"][1].max())) + 1
    return [str(n) for n in names] if names else [str(i) for i in range(count)], splits


def _as_images(images: np.ndarray, path: Path, key: str, resolution: int) -> torch.Tensor:
    """N x H x W, N x H x W x C (Keras) or N x C x H x W, integers 0-255 or floats 0-1 -> uint8 N x 3 x R x R."""
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    if images.ndim != 4 or images.shape[1] not in (1, 3) or len(images) == 0:
        raise EdgeNASError(f"{path}: {key} has shape {images.shape}; expected N x H x W x C with C = 1 or 3")
    if images.dtype.kind == "f":
        images = images * 255.0 if images.max() <= 1.0 else images
        images = np.clip(np.round(images), 0, 255)
    return _resize(torch.from_numpy(np.ascontiguousarray(images.astype(np.uint8))), resolution)


def _as_labels(labels: np.ndarray, path: Path, key: str) -> torch.Tensor:
    if labels.dtype.kind not in "iu" or len(labels) == 0 or labels.min() < 0:
        raise EdgeNASError(f"{path}: {key} must hold non-negative integer class labels")
    return torch.from_numpy(labels.astype(np.int64))


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches (dicts of bytes, lists and numpy arrays) and refuses everything else."""

    ALLOWED = frozenset({("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"),
               # pickle protocol 5 (pickle.HIGHEST_PROTOCOL; the default from Python 3.14) stores arrays this way
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")})

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")


def _load_batch(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            batch = _ArrayUnpickler(handle, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise EdgeNASError(f"cannot read CIFAR batch {path}: {exc}") from None
    if not isinstance(batch, dict):
        raise EdgeNASError(f"CIFAR batch {path}: expected a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}


def _cifar(root: Path, resolution: int):
    if (root / "data_batch_1").is_file():  # CIFAR-10
        train_files, test_files, label_key, meta_file, names_key = (
            sorted(root.glob("data_batch_*")), [root / "test_batch"], "labels", "batches.meta", "label_names")
    else:  # CIFAR-100
        train_files, test_files, label_key, meta_file, names_key = (
            [root / "train"], [root / "test"], "fine_labels", "meta", "fine_label_names")
    splits = {}
    for split, files in (("train", train_files), ("test", test_files)):
        if not all(f.is_file() for f in files):
            missing = next(f.name for f in files if not f.is_file())
            raise EdgeNASError(f"CIFAR folder {root}: missing {missing}")
        parts = [_load_batch(f) for f in files]
        try:
            data = np.concatenate([np.asarray(p["data"], dtype=np.uint8).reshape(-1, 3, 32, 32) for p in parts])
            labels = np.concatenate([np.asarray(p[label_key], dtype=np.int64) for p in parts])
        except (KeyError, ValueError) as exc:
            raise EdgeNASError(f"CIFAR folder {root}: unexpected batch contents ({exc})") from None
        splits[split] = (_resize(torch.from_numpy(data), resolution), torch.from_numpy(labels))
    names = None
    if (root / meta_file).is_file():
        meta = _load_batch(root / meta_file)
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(names_key, [])]
    count = int(splits["train"][1].max()) + 1
    return names if names and len(names) >= count else [str(i) for i in range(count)], splits


def _class_folders(root: Path) -> list[Path]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise EdgeNASError(f"dataset folder {root} has no class folders; expected ROOT/CLASS/IMAGE files or "
                           "ROOT/train/CLASS and ROOT/test/CLASS")
    return folders


def _list_folder(folder: Path, problems: list[str]) -> list[Path]:
    """The image files of a class folder; an empty folder and each file that is not an image go to `problems`."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        problems.append(f"class folder {folder} is empty")
    for file in files:
        if file.suffix.lower() not in IMAGE_SUFFIXES:
            problems.append(f"{file} is not an image file (expected one of {', '.join(sorted(IMAGE_SUFFIXES))})")
    return [file for file in files if file.suffix.lower() in IMAGE_SUFFIXES]


def _unreadable() -> tuple[type[Exception], ...]:
    """What Pillow raises for a file it cannot read: not an image, truncated or corrupt data (OSError, and
    SyntaxError from some format plugins), a mode with no conversion to RGB (ValueError), a decompression bomb."""
    from PIL import Image

    return OSError, SyntaxError, ValueError, Image.DecompressionBombError


def _decode(file: Path, resolution: int) -> torch.Tensor:
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


def _check_headers(files: list[Path], problems: list[str]) -> None:
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


def _image_folder(root: Path, resolution: int, test_fraction: float, limit: int):
    """Classes and splits of an ImageFolder tree: decoded uint8 tensors, or file lists beyond `limit` images.

    Every problem of the tree (a class missing from a split, an empty class folder, a non-image file, a class too
    small to split, an unreadable image) is collected, and all of them are reported in one error."""
    problems: list[str] = []
    test_dir = next((root / name for name in ("test", "val") if (root / name).is_dir()), None)
    if (root / "train").is_dir() and test_dir is not None:
        classes = [p.name for p in _class_folders(root / "train")]
        test_classes = [p.name for p in _class_folders(test_dir)]
        problems += [f"{test_dir / extra} is a class with no training folder in {root / 'train'}"
                     for extra in sorted(set(test_classes) - set(classes))]
        problems += [f"class {missing!r} has no test images: {test_dir / missing} is missing"
                     for missing in sorted(set(classes) - set(test_classes))]
        listed = {split: [_list_folder(folder / name, problems) if (folder / name).is_dir() else []
                          for name in classes]
                  for split, folder in (("train", root / "train"), ("test", test_dir))}
    elif (root / "train").is_dir():
        raise EdgeNASError(f"dataset folder {root} has train/ but no test/ or val/ folder")
    else:
        classes = [p.name for p in _class_folders(root)]
        per_class = [_list_folder(root / name, problems) for name in classes]
        problems += [f"class folder {root / name} has fewer than 3 images (train, search-validation and test need "
                     "one each)" for name, files in zip(classes, per_class, strict=True) if 0 < len(files) < 3]
        if problems:  # no split: its files are still read below, so that one run names every problem
            listed = {"all": per_class}
        else:
            labels = torch.cat([torch.full((len(f),), c, dtype=torch.int64) for c, f in enumerate(per_class)])
            flat = [f for files in per_class for f in files]
            train_idx, test_idx = _balanced_split(labels, test_fraction, len(classes))
            listed = {"train": _regroup([flat[i] for i in train_idx], labels[train_idx], len(classes)),
                      "test": _regroup([flat[i] for i in test_idx], labels[test_idx], len(classes))}
    total = sum(len(files) for split in listed.values() for files in split)
    splits = {}
    for split, per_class in listed.items():
        files = [f for group in per_class for f in group]
        labels = torch.cat([torch.full((len(g),), c, dtype=torch.int64) for c, g in enumerate(per_class)])
        if total > limit:
            _check_headers(files, problems)
            splits[split] = (files, labels)
        else:
            splits[split] = (_decode_cached(files, resolution, problems), labels)
    _refuse(root.name, problems)
    return classes, splits


def _decode_cached(files: list[Path], resolution: int, problems: list[str]) -> torch.Tensor | None:
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
            decoded.append(_decode(file, resolution))
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


def _regroup(files: list[Path], labels: torch.Tensor, num_classes: int) -> list[list[Path]]:
    groups: list[list[Path]] = [[] for _ in range(num_classes)]
    for file, label in zip(files, labels.tolist(), strict=True):
        groups[label].append(file)
    return groups
