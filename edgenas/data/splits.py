"""Splits: the deterministic, class-balanced cuts of a dataset (test, and search-validation carved from train),
class-balanced subsets, and the checks that every class can be split, reported all at once.

Splits do not depend on the run's seed (`SPLIT_SEED`): every run on a dataset sees the same test split. A class with
fewer than `FEW_IMAGES` images loads, with a note (`Dataset.notes`) that the search prints as a warning and records
in config.json.
"""

from __future__ import annotations

import torch

from edgenas.errors import EdgeNASError, listing

SPLIT_SEED = 20200327  # splits do not depend on the run's seed: every run on a dataset sees the same test split
# A class with fewer than 20 images is too small for its splits to mean much: at the default fractions (a fifth for
# test, a tenth of the rest for search-validation) 20 images give it 14 training, 2 search-validation and 4 test
# images, where one image already moves its test accuracy by 25 points and its search-validation accuracy by 50;
# with fewer, a single image decides them (and the difficulty probe's class order rests on the latter).
FEW_IMAGES = 20


def balanced_split(y: torch.Tensor, fraction: float, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
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


def subset(x, y: torch.Tensor, per_class: int | None, num_classes: int):
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


def check_labels(y_train: torch.Tensor, y_test: torch.Tensor, classes: list[str], name: str) -> None:
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
    refuse(name, problems)


def few_images(y: dict[str, torch.Tensor], classes: list[str]) -> list[str]:
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


def refuse(name: str, problems: list[str]) -> None:
    """Raise one error naming every problem found in dataset `name` (nothing when there is none)."""
    if len(problems) == 1:
        raise EdgeNASError(problems[0])
    if problems:
        raise EdgeNASError(listing(f"dataset {name} has {len(problems)} problems (each on a line below); fix them "
                                   "all, then run again:", problems))
