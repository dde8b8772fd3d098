"""NAS-Bench-Macro as ground truth for search quality: the table, its keys as `macro` architectures, and the exact
scores a search is judged by (regret, percentile, random baselines) under a FLOPs budget.

The table (../shared/data/nas-bench-macro/, see its README; Su et al., CVPR 2021) holds the CIFAR-10 test accuracy,
mean of three runs, of each of the 6,561 architectures of edgenas's `macro` space at 32x32 with 10 classes, each
trained alone. A key is 8 digits, one per layer: 0 identity (`skip`), 1 `k3_e3`, 2 `k5_e6`. FLOPs here follow
edgenas's rule (fvcore, batch norm folded): the table's `flops` count convolutions and the classifier only, fvcore
also counts the global average pool of 1280 x 4 x 4, so edgenas FLOPs = table `flops` + 20,480 (a test checks this
against `edgenas flops` for every architecture). Reading the table does not import torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from edgenas.errors import EdgeNASError
from edgenas.space.arch import Arch, make_arch
from edgenas.space.choices import SKIP
from edgenas.space.spec import get_space

SPACE, RESOLUTION, NUM_CLASSES = "macro", 32, 10
CHOICES = (SKIP, "k3_e3", "k5_e6")  # digit d of a key is CHOICES[d]
POOL_FLOPS = 1280 * 4 * 4  # fvcore counts the global average pool; the table does not
BUDGET_SHARES = (0.4, 0.6, 0.7)  # budgets as shares of the largest architecture's FLOPs (issues 13 and 38)
FILE = "nas-bench-macro_cifar10.json"


def data_dir() -> Path | None:
    """The shared data folder: $EDGENAS_SHARED_DATA (benchmarks/gpu_check.sh's carried copy), else /work/shared/data,
    else ../shared/data beside the checkout; None when none of them holds the table."""
    given = [Path(os.environ["EDGENAS_SHARED_DATA"])] if os.environ.get("EDGENAS_SHARED_DATA") else []
    for folder in (*given, Path("/work/shared/data"), Path(__file__).resolve().parents[2] / "shared" / "data"):
        if (folder / "nas-bench-macro" / FILE).is_file():
            return folder
    return None


def to_arch(key: str) -> Arch:
    """`01202110` -> the `macro` architecture at 32x32 with 10 classes."""
    if not (isinstance(key, str) and len(key) == 8 and set(key) <= set("012")):
        raise EdgeNASError(f"bad NAS-Bench-Macro key {key!r}: expected 8 digits 0, 1 or 2, such as 01202110")
    return make_arch(get_space(SPACE, RESOLUTION), [CHOICES[int(d)] for d in key], NUM_CLASSES)


def to_key(arch: Arch) -> str:
    """The table's key of a `macro` architecture at 32x32 with 10 classes (anything else has no entry)."""
    space = get_space(SPACE, RESOLUTION)
    if (arch.space_hash, arch.num_classes) != (space.hash, NUM_CLASSES):
        raise EdgeNASError(f"architecture of space {arch.space} at {arch.resolution}x{arch.resolution}, width "
                           f"{arch.width_mult}, {arch.num_classes} classes has no NAS-Bench-Macro entry; expected "
                           f"space {SPACE} at {RESOLUTION}x{RESOLUTION}, width 1.0, {NUM_CLASSES} classes")
    return "".join(str(CHOICES.index(choice)) for choice in arch.layers)


@dataclass(frozen=True)
class Entry:
    key: str
    flops: int  # edgenas's rule: table flops + POOL_FLOPS
    params: int
    mean_acc: float  # %, mean of three runs


class NasBenchMacro:
    """The loaded table, with the scores of the issue's benchmark; every figure is exact (from the whole table)."""

    def __init__(self, entries: list[Entry]):
        self.entries = sorted(entries, key=lambda e: e.key)
        self._by_key = {e.key: e for e in self.entries}

    @classmethod
    def load(cls, path: str | Path | None = None) -> NasBenchMacro:
        if path is None:
            folder = data_dir()
            if folder is None:
                raise EdgeNASError(f"no NAS-Bench-Macro table: expected {FILE} in /work/shared/data/nas-bench-macro "
                                   "or ../shared/data/nas-bench-macro beside the checkout")
            path = folder / "nas-bench-macro" / FILE
        data = json.loads(Path(path).read_text())
        entries = [Entry(key, int(v["flops"]) + POOL_FLOPS, int(v["params"]), float(v["mean_acc"]))
                   for key, v in data.items()]
        if len(entries) != 3 ** 8:
            raise EdgeNASError(f"NAS-Bench-Macro table {path}: {len(entries)} entries; expected 6,561")
        return cls(entries)

    def entry(self, arch: Arch | str) -> Entry:
        return self._by_key[arch if isinstance(arch, str) else to_key(arch)]

    def accuracy(self, arch: Arch | str) -> float:
        return self.entry(arch).mean_acc

    @property
    def largest_flops(self) -> int:
        return self._by_key["22222222"].flops

    def budget(self, share: float) -> float:
        """A FLOPs budget as a share of the largest architecture's FLOPs (edgenas's rule)."""
        return share * self.largest_flops

    def within(self, budget_flops: float) -> list[Entry]:
        return [e for e in self.entries if e.flops <= budget_flops]

    def best_within(self, budget_flops: float) -> Entry:
        """The most accurate architecture within the budget (ties: the smaller key)."""
        fits = self.within(budget_flops)
        if not fits:
            raise EdgeNASError(f"no NAS-Bench-Macro architecture within {budget_flops:,.0f} FLOPs; the smallest has "
                               f"{min(e.flops for e in self.entries):,}")
        return max(fits, key=lambda e: (e.mean_acc, [-int(d) for d in e.key]))

    def percentile(self, acc: float, budget_flops: float) -> float:
        """Share of the architectures within the budget with accuracy <= `acc`, in %."""
        fits = self.within(budget_flops)
        return 100.0 * sum(e.mean_acc <= acc for e in fits) / len(fits)

    def regret(self, arch: Arch | str, budget_flops: float) -> float:
        """Accuracy points between the best architecture within the budget and `arch`."""
        return self.best_within(budget_flops).mean_acc - self.accuracy(arch)

    def random_mean(self, budget_flops: float) -> float:
        """Mean accuracy of an architecture drawn uniformly among those within the budget (exact)."""
        fits = self.within(budget_flops)
        return sum(e.mean_acc for e in fits) / len(fits)

    def fewest_skips(self, budget_flops: float, floor: float = 0.95) -> list[Entry]:
        """A rule that needs no training (issue 38): among the architectures in [floor x budget, budget], those with
        the fewest skip layers (all of them: the rule cannot choose between its ties)."""
        band = [e for e in self.within(budget_flops) if e.flops >= floor * budget_flops]
        if not band:
            raise EdgeNASError(f"no NAS-Bench-Macro architecture in [{floor} x {budget_flops:,.0f}, "
                               f"{budget_flops:,.0f}] FLOPs")
        fewest = min(e.key.count("0") for e in band)
        return [e for e in band if e.key.count("0") == fewest]

    def fewest_skips_mean(self, budget_flops: float, floor: float = 0.95) -> float:
        """The fewest-skips rule's expected accuracy: the mean over its ties (exact)."""
        ties = self.fewest_skips(budget_flops, floor)
        return sum(e.mean_acc for e in ties) / len(ties)

    def matched_random_mean(self, budget_flops: float, floor: float = 0.95) -> float:
        """Mean accuracy of an architecture drawn uniformly among those in [floor x budget, budget] (exact)."""
        fits = [e for e in self.within(budget_flops) if e.flops >= floor * budget_flops]
        if not fits:
            raise EdgeNASError(f"no NAS-Bench-Macro architecture in [{floor} x {budget_flops:,.0f}, "
                               f"{budget_flops:,.0f}] FLOPs")
        return sum(e.mean_acc for e in fits) / len(fits)
