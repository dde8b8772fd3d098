"""`check(run)`: the proof, on the user's own data, that a search beat simple picks of the same cost.

A finished, retrained run is checked against arms trained exactly as it was: N random architectures of the same
band (within the run's budgets and above its floor, `--strategy random` with seeds run seed + 1 ... + N) and
MobileNetV2 width-scaled to the budget (`--strategy mobilenetv2`). Each arm is a run of its own in RUN/check/NAME/,
made by the same `search` with the run's settings, so it has the same data, split, retraining recipe and budgets;
a stopped check resumes each arm where it stopped, and finished arms are reused. RUN/check.json holds the outcome:
every arm's test accuracy, the searched network's rank, and its margin over the random arms' mean with the
standard error that the random arms' spread gives it.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from edgenas.errors import EdgeNASError
from edgenas.progress import silent
from edgenas.runs.folder import Run
from edgenas.runs.settings import SearchSettings
from edgenas.searching.result import SearchResult, finished
from edgenas.searching.run import search

FOLDER, RESULT = "check", "check.json"
MAX_RANDOM = 50


@dataclass(frozen=True)
class Arm:
    """One network of a check: its name, run folder and what its summary says."""

    name: str  # "searched", "random-1", ..., "mobilenetv2"
    run: str
    layers: list[str]
    width_mult: float
    flops: int
    predicted_latency_ms: float | None
    test_acc: float

    @classmethod
    def of(cls, name: str, result: SearchResult) -> Arm:
        arch = result.summary["arch"]
        return cls(name, str(result.run), list(arch["layers"]), float(arch.get("width_mult", 1.0)), result.flops,
                   result.predicted_latency_ms, result.test_acc)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a check (written to RUN/check.json)."""

    run: str
    arms: list[Arm]
    rank: int  # the searched network's rank by test accuracy among all arms (1: none is more accurate)
    ties: int  # arms exactly as accurate as the searched one
    random_mean: float
    random_std: float | None  # None with one random arm
    margin_points: float  # searched minus the random arms' mean, in points of test accuracy
    margin_se_points: float | None  # the random mean's standard error (std / sqrt(N)), in points
    method: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check(run_path: str | Path, random: int = 3, mobilenetv2: bool = True, progress: bool = False, log=print,
          echo=None) -> CheckResult:
    """Train the arms of a finished run's check (resuming those stopped, reusing those finished) and write
    RUN/check.json; returns its outcome."""
    if not 1 <= random <= MAX_RANDOM:
        raise EdgeNASError(f"bad --random {random}: expected 1 to {MAX_RANDOM} random architectures")
    run = Run.open(run_path)
    searched = _searched(run)
    settings = SearchSettings.of_run(run)
    arms = [Arm.of("searched", searched)]
    plan = [(f"random-{i}", dataclasses.replace(settings, strategy="random", seed=settings.seed + i, choice="auto"))
            for i in range(1, random + 1)]
    if mobilenetv2 and _expresses_mobilenetv2(settings, log):
        plan.append(("mobilenetv2", dataclasses.replace(settings, strategy="mobilenetv2", choice="auto")))
    for index, (name, arm_settings) in enumerate(plan, 1):
        state = "finished, reused" if (run.file(FOLDER) / name / "summary.json").is_file() else (
            f"trained as {run.path} was, {settings.retrain_epochs} retraining epochs")
        log(f"check {index}/{len(plan)}: {name} ({state})")
        arms.append(Arm.of(name, _train_arm(run.file(FOLDER) / name, arm_settings, progress, echo)))
    result = outcome(str(run.path), arms)
    run.write(RESULT, result.to_dict())
    from edgenas.report.html import write_report

    write_report(run.path)  # with the check's plot
    return result


def _expresses_mobilenetv2(settings: SearchSettings, log) -> bool:
    """Whether the run's space holds MobileNetV2 (`tiny` does not); a note where it does not."""
    from edgenas.cost.presets import mobilenetv2
    from edgenas.space.spec import get_space

    try:
        mobilenetv2(get_space(settings.space, settings.resolution, settings.width_mult), 2)
    except EdgeNASError as exc:
        log(f"note: no MobileNetV2 arm: {exc}")
        return False
    return True


def _searched(run: Run) -> SearchResult:
    """The run's own result, refused when it is not finished or has no retrained accuracy to compare."""
    if not run.has("summary.json"):
        raise EdgeNASError(f"run {run.path} is not finished: finish it with `edgenas search --resume {run.path}`, "
                           "then check it")
    result = finished(run)
    if result.test_acc is None:
        raise EdgeNASError(f"run {run.path} was not retrained (--retrain-epochs 0): a check compares retrained "
                           f"networks; retrain it first with `edgenas train {run.path} --epochs N`")
    return result


def _train_arm(folder: Path, settings: SearchSettings, progress: bool, echo) -> SearchResult:
    """An arm's run: reused when finished, resumed when stopped, else started."""
    if (folder / "summary.json").is_file():
        return finished(Run.open(folder))
    if (folder / "config.json").is_file():
        return search(resume=folder, progress=progress, log=silent, echo=echo)
    return search(settings, out=folder, progress=progress, log=silent, echo=echo)


def outcome(run: str, arms: list[Arm]) -> CheckResult:
    """Rank, margin and its standard error of the searched arm (the first) against the others."""
    searched, randoms = arms[0], [a for a in arms if a.name.startswith("random-")]
    better = sum(a.test_acc > searched.test_acc for a in arms[1:])
    ties = sum(a.test_acc == searched.test_acc for a in arms[1:])
    accuracies = [a.test_acc for a in randoms]
    mean = statistics.fmean(accuracies)
    std = statistics.stdev(accuracies) if len(accuracies) > 1 else None
    method = ("test accuracy (top-1, the run's test split) of each network retrained from scratch with the run's "
              "recipe, one retraining each; random arms: uniform draws within the run's budgets and above its floor; "
              "margin: searched minus the random mean; its standard error: the random arms' standard deviation / "
              "sqrt(N), which holds their spread of architectures and retraining seeds but not the searched "
              "network's own retraining noise")
    return CheckResult(run, arms, better + 1, ties, mean, std, 100 * (searched.test_acc - mean),
                       None if std is None else 100 * std / math.sqrt(len(accuracies)), method)
