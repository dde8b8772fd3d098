"""A dataset: its images decoded as uint8 tensors on the training device, its labels, splits and statistics; and
`load_dataset`, which reads a dataset of any supported format (`readers`), splits it (`splits`) and measures it.

Splits: `train` (weights), `val` (the search-validation split carved from train, class-balanced: architecture
parameters and the difficulty probe), `test` (never seen by any search decision). Every image is resized to the
space's resolution once, at load time. An ImageFolder tree whose decoded images would exceed `memory_gb` is not
decoded up front: its files stream through DataLoader workers (`batches`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from edgenas.data.cache import decode
from edgenas.data.readers import read_cifar, read_digits, read_image_folder, read_npz
from edgenas.data.splits import balanced_split, check_labels, few_images, subset
from edgenas.errors import EdgeNASError


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



def count_images(data: Dataset, split: str, classes: list[int] | None = None) -> int:
    if classes is None:
        return data.size(split)
    return int(sum((data.y[split] == c).sum().item() for c in classes))



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
        name, classes, splits = read_digits(resolution, test_fraction)
        default_flip = False  # a mirrored digit is another symbol
    else:
        root = Path(path)
        if not root.exists():
            raise EdgeNASError(f"dataset path {root} does not exist")
        name = root.name
        if root.is_file() and root.suffix == ".npz":
            classes, splits = read_npz(root, resolution)
        elif root.is_dir() and ((root / "data_batch_1").is_file() or (root / "train").is_file()):
            classes, splits = read_cifar(root, resolution)
        elif root.is_dir():
            limit = int(memory_gb * 2**30) // (3 * resolution * resolution)
            classes, splits = read_image_folder(root, resolution, test_fraction, limit,
                                                {"train": train_per_class, "test": test_per_class})
        else:
            raise EdgeNASError(f"dataset path {root}: expected an ImageFolder root, a CIFAR python folder or an .npz "
                               "file")
        default_flip = True
    x_train, y_train = subset(*splits["train"], train_per_class, len(classes))
    x_test, y_test = subset(*splits["test"], test_per_class, len(classes))
    check_labels(y_train, y_test, classes, name)
    train_idx, val_idx = balanced_split(y_train, val_fraction, len(classes))
    y = {"train": y_train[train_idx], "val": y_train[val_idx], "test": y_test}
    flip = default_flip if flip is None else flip
    notes = few_images(y, classes)
    if isinstance(x_train, list):  # streamed: statistics from up to 2,000 decoded training images
        files = {"train": [x_train[i] for i in train_idx], "val": [x_train[i] for i in val_idx], "test": x_test}
        sample = torch.stack([decode(f, resolution) for f in files["train"][:: max(1, len(files["train"]) // 2000)]])
        mean, std = _statistics(sample)
        return Dataset(name, classes, {}, y, mean, std, flip, resolution, files, workers, notes)
    x = {"train": x_train[train_idx], "val": x_train[val_idx], "test": x_test}
    mean, std = _statistics(x["train"])
    return Dataset(name, classes, x, y, mean, std, flip, resolution, notes=notes)


def _statistics(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    as_float = images.float() / 255.0
    return (tuple(float(v) for v in as_float.mean((0, 2, 3))),
            tuple(max(1e-3, float(v)) for v in as_float.std((0, 2, 3))))
