"""The DA-NAS schedule: stages of (class fraction, epochs), their scaling, and the classes each stage admits."""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgenas.errors import EdgeNASError

DEFAULT_SCHEDULE = "0.1:10,0.3:20,0.6:20,1.0:20"
# Below this many training images the epochs shrink in proportion (down to half): small datasets give few steps
# per epoch but also converge in fewer images, and the schedule's epochs were set for ImageNet's 1.28M images.
SMALL_DATASET = 20000


@dataclass(frozen=True)
class Stage:
    fraction: float
    epochs: int


def parse_schedule(text: str) -> list[Stage]:
    """`0.1:10,0.3:20` -> stages; fractions increase and end at 1.0, epochs are positive."""
    stages = []
    try:
        for part in text.split(","):
            fraction, epochs = part.split(":")
            stages.append(Stage(float(fraction), int(epochs)))
    except ValueError:
        raise EdgeNASError(f"bad schedule {text!r}: expected fraction:epochs pairs such as "
                           f"{DEFAULT_SCHEDULE}") from None
    fractions = [s.fraction for s in stages]
    if any(not 0 < f <= 1 for f in fractions) or fractions != sorted(fractions) or fractions[-1] != 1.0:
        raise EdgeNASError(f"bad schedule {text!r}: class fractions must increase within (0, 1] and end at 1.0")
    if any(s.epochs < 1 for s in stages):
        raise EdgeNASError(f"bad schedule {text!r}: every stage needs at least 1 epoch")
    return stages


def auto_scale(train_images: int) -> float:
    return min(1.0, max(0.5, train_images / SMALL_DATASET))


def scale(stages: list[Stage], factor: float) -> list[Stage]:
    if not factor > 0:
        raise EdgeNASError(f"bad epochs scale {factor}: expected a positive number such as 0.5")
    return [Stage(s.fraction, max(1, round(s.epochs * factor))) for s in stages]


def classes_admitted(fraction: float, num_classes: int) -> int:
    """ceil(fraction x classes), at least 2 (a stage of one class teaches nothing)."""
    return min(num_classes, max(2, math.ceil(fraction * num_classes - 1e-9)))


def full_data_epochs(stages: list[Stage]) -> float:
    """The schedule's cost in full-data epochs: sum(fraction x epochs) (39 for the default against 70)."""
    return sum(s.fraction * s.epochs for s in stages)
