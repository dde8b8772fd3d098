"""Readers: each dataset format to class names and train/test splits of uint8 images and int64 labels: the embedded
digits, an .npz archive, a CIFAR-10/100 python folder, an ImageFolder tree (ROOT/CLASS/IMAGE, or ROOT/train and
ROOT/test or ROOT/val).

Bad data is reported all at once: every empty class, non-image file and unreadable image of an ImageFolder tree in
one error, so that one run names everything to fix. A tree whose decoded images would exceed the memory limit is
not decoded: its splits hold file lists, to be streamed.
"""

from __future__ import annotations

import gzip
import importlib.util
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from edgenas.data.cache import check_headers, decode_cached, resize
from edgenas.data.splits import balanced_split, refuse, subset
from edgenas.errors import EdgeNASError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten digits (8x8, levels 0-16) and their labels, read from the CSV that
    scikit-learn ships, as its `load_digits` reads it, without importing scikit-learn (2 s of every command)."""
    spec = importlib.util.find_spec("sklearn")
    csv = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz" if spec else None
    if csv is None or not csv.is_file():  # another layout: ask scikit-learn itself
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target
    with gzip.open(csv, "rt") as rows:
        data = np.loadtxt(rows, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


def read_digits(resolution: int, test_fraction: float):
    images, labels = _digits()
    x = torch.from_numpy((images * (255.0 / 16.0)).round().astype(np.uint8)).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    train_idx, test_idx = balanced_split(y, test_fraction, 10)
    x = resize(x, resolution)
    return "digits", [str(i) for i in range(10)], {"train": (x[train_idx], y[train_idx]),
                                                  "test": (x[test_idx], y[test_idx])}


def read_npz(path: Path, resolution: int):
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
    return resize(torch.from_numpy(np.ascontiguousarray(images.astype(np.uint8))), resolution)


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


def read_cifar(root: Path, resolution: int):
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
        splits[split] = (resize(torch.from_numpy(data), resolution), torch.from_numpy(labels))
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


def read_image_folder(root: Path, resolution: int, test_fraction: float, limit: int,
                      keep: dict[str, int | None] | None = None):
    """Classes and splits of an ImageFolder tree: decoded uint8 tensors, or file lists beyond `limit` images.
    `keep` ({"train": n, "test": m} images a class) applies `subset`'s class-balanced choice to a split before it
    is decoded, and the others are not read at all (12 a class of CIFAR-10 decoded all 60,000; reading only their
    headers still cost as much as decoding CIFAR's small JPEGs, at every run): a subset reports the problems of
    the images it uses.

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
            train_idx, test_idx = balanced_split(labels, test_fraction, len(classes))
            listed = {"train": _regroup([flat[i] for i in train_idx], labels[train_idx], len(classes)),
                      "test": _regroup([flat[i] for i in test_idx], labels[test_idx], len(classes))}
    total = sum(len(files) for split in listed.values() for files in split)
    splits = {}
    for split, per_class in listed.items():
        files = [f for group in per_class for f in group]
        labels = torch.cat([torch.full((len(g),), c, dtype=torch.int64) for c, g in enumerate(per_class)])
        if total > limit:
            check_headers(files, problems)
            splits[split] = (files, labels)
            continue
        kept, kept_labels = subset(files, labels, (keep or {}).get(split), len(classes))
        splits[split] = (decode_cached(kept, resolution, problems), kept_labels)
    refuse(root.name, problems)
    return classes, splits


def _regroup(files: list[Path], labels: torch.Tensor, num_classes: int) -> list[list[Path]]:
    groups: list[list[Path]] = [[] for _ in range(num_classes)]
    for file, label in zip(files, labels.tolist(), strict=True):
        groups[label].append(file)
    return groups
