"""The outcome of a check (`edgenas check`, RUN/check.json): each arm's test accuracy (with `--seeds K`, the mean
of its K retrainings and each of them), the searched network's rank by those accuracies, and its margin over the
random arms' mean with a standard error. With one retraining (`--seeds 1`) the file holds the keys it held before
`--seeds` existed, key for key."""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass

from edgenas.errors import EdgeNASError
from edgenas.searching.result import SearchResult

# Written only with several retrainings of each network (`--seeds` above 1).
ARM_SEED_KEYS = ("test_accs", "test_acc_std", "retrain_seeds", "runs")
SEED_KEYS = ("seeds", "searched_std", "random_se_points")


@dataclass(frozen=True)
class Arm:
    """One network of a check: its name, run folder (its first retraining's) and what its summaries say."""

    name: str  # "searched", "random-1", ..., "mobilenetv2"
    run: str
    layers: list[str]
    width_mult: float
    flops: int
    predicted_latency_ms: float | None
    test_acc: float  # with several retrainings, their mean
    test_accs: list[float] | None = None  # each retraining's, the first the arm's own run's
    test_acc_std: float | None = None  # their standard deviation
    retrain_seeds: list[int | None] | None = None  # each retraining's `retrain_seed` (None: the run's own scheme)
    runs: list[str] | None = None  # each retraining's run folder

    @classmethod
    def of(cls, name: str, results: list[SearchResult], retrain_seeds: list[int | None]) -> Arm:
        """The arm of `results`, the retrainings of one network (the first its own run)."""
        first = results[0]
        arch = first.summary["arch"]
        if any(r.summary["arch"]["layers"] != arch["layers"] for r in results):
            raise EdgeNASError(f"the retrainings of check arm {name} ({', '.join(str(r.run) for r in results)}) "
                               "hold different architectures; remove the later ones and check again")
        arm = cls(name, str(first.run), list(arch["layers"]), float(arch.get("width_mult", 1.0)), first.flops,
                  first.predicted_latency_ms, first.test_acc)
        if len(results) == 1:
            return arm
        accuracies = [r.test_acc for r in results]
        return dataclasses.replace(arm, test_acc=statistics.fmean(accuracies), test_accs=accuracies,
                                   test_acc_std=statistics.stdev(accuracies), retrain_seeds=list(retrain_seeds),
                                   runs=[str(r.run) for r in results])


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a check (written to RUN/check.json)."""

    run: str
    arms: list[Arm]
    rank: int  # the searched network's rank by test accuracy among all arms (1: none is more accurate)
    ties: int  # arms exactly as accurate as the searched one
    random_mean: float
    random_std: float | None  # of the random arms' accuracies (their means with seeds); None with one random arm
    margin_points: float  # searched minus the random arms' mean, in points of test accuracy
    margin_se_points: float | None  # its standard error, in points (None: one random arm, one retraining)
    method: str
    seeds: int = 1  # retrainings of each network
    searched_std: float | None = None  # the searched network's standard deviation over its retrainings
    random_se_points: float | None = None  # the random mean's part of the standard error, in points

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        if self.seeds == 1:  # the file as it was before --seeds
            for arm in data["arms"]:
                for key in ARM_SEED_KEYS:
                    del arm[key]
            for key in SEED_KEYS:
                del data[key]
        return data


def outcome(run: str, arms: list[Arm], seeds: int = 1) -> CheckResult:
    """Rank, margin and its standard error of the searched arm (the first) against the others."""
    searched, randoms = arms[0], [a for a in arms if a.name.startswith("random-")]
    better = sum(a.test_acc > searched.test_acc for a in arms[1:])
    ties = sum(a.test_acc == searched.test_acc for a in arms[1:])
    accuracies = [a.test_acc for a in randoms]
    mean = statistics.fmean(accuracies)
    std = statistics.stdev(accuracies) if len(accuracies) > 1 else None
    margin = 100 * (searched.test_acc - mean)
    if seeds == 1:
        method = ("test accuracy (top-1, the run's test split) of each network retrained from scratch with the run's "
                  "recipe, one retraining each; random arms: uniform draws within the run's budgets and above its "
                  "floor; margin: searched minus the random mean; its standard error: the random arms' standard "
                  "deviation / sqrt(N), which holds their spread of architectures and retraining seeds but not the "
                  "searched network's own retraining noise")
        return CheckResult(run, arms, better + 1, ties, mean, std, margin,
                           None if std is None else 100 * std / math.sqrt(len(accuracies)), method)
    # With one random arm its architecture's luck is unmeasured: its own retrainings' spread alone is a lower bound.
    random_var = std ** 2 / len(randoms) if std is not None else randoms[0].test_acc_std ** 2 / seeds
    searched_var = searched.test_acc_std ** 2 / seeds
    random_part = ("sd_r the standard deviation of the N random arms' means, which holds their spread of "
                   "architectures and retraining seeds" if std is not None else "with one random arm, sd_r^2 / N "
                   "is unmeasurable: its own retrainings' variance / K stands in, a lower bound that leaves out the "
                   "spread of architectures")
    method = (f"test accuracy (top-1, the run's test split) of each network retrained from scratch {seeds} times "
              "with the run's recipe, its accuracy the mean of its retrainings: the first is the network's own run "
              f"(the run's seed scheme), each later one (S = 2 to {seeds}) a copy of that run retrained with "
              "retrain_seed S (initial weights, dropout, batch order and augmentation drawn anew; data, split, "
              "recipe and epochs unchanged); random arms: uniform draws within the run's budgets and above its "
              "floor; rank by the means; margin: the searched mean minus the random arms' mean of means; its "
              "standard error: sqrt(sd_s^2 / K + sd_r^2 / N), sd_s the searched network's standard deviation over "
              f"its K retrainings, {random_part}")
    return CheckResult(run, arms, better + 1, ties, mean, std, margin, 100 * math.sqrt(searched_var + random_var),
                       method, seeds, searched.test_acc_std, 100 * math.sqrt(random_var))
