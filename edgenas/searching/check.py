"""`check(run)`: the proof, on the user's own data, that a search beat simple picks of the same cost.

A finished, retrained run is checked against arms trained exactly as it was: N random architectures of the same
band (within the run's budgets and above its floor, `--strategy random` with seeds run seed + 1 ... + N) and
MobileNetV2 width-scaled to the budget (`--strategy mobilenetv2`). Each arm is a run of its own in RUN/check/NAME/,
made by the same `search` with the run's settings, so it has the same data, split, retraining recipe and budgets.
With `--seeds K`, every network (the searched one too) is retrained K times: its own run, then RUN/check/NAME-seedS/
for S = 2..K, a copy of that run retrained with `retrain_seed` S (reseeded.py). A stopped check resumes each
retraining where it stopped, finished ones are reused, and one run again with another K reuses those it has and
adds those missing. RUN/check.json holds the outcome (check_outcome.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgenas.errors import EdgeNASError
from edgenas.progress import silent
from edgenas.runs.folder import Run
from edgenas.runs.settings import SearchSettings
from edgenas.searching.check_outcome import Arm, CheckResult, outcome
from edgenas.searching.reseeded import retrain_reseeded
from edgenas.searching.result import SearchResult, finished
from edgenas.searching.run import search

FOLDER, RESULT = "check", "check.json"
MAX_RANDOM = 50
MAX_SEEDS = 20  # retrainings of each network: more is a typo (each costs a retraining of every arm)


def check(run_path: str | Path, random: int = 3, mobilenetv2: bool = True, seeds: int = 1, progress: bool = False,
          log=print, echo=None) -> CheckResult:
    """Train the arms of a finished run's check, each `seeds` times (resuming those stopped, reusing those
    finished) and write RUN/check.json; returns its outcome."""
    if not 1 <= random <= MAX_RANDOM:
        raise EdgeNASError(f"bad --random {random}: expected 1 to {MAX_RANDOM} random architectures")
    if not 1 <= seeds <= MAX_SEEDS:
        raise EdgeNASError(f"bad --seeds {seeds}: expected 1 to {MAX_SEEDS} retrainings of each network")
    run = Run.open(run_path)
    results = {"searched": [_searched(run)]}
    settings = SearchSettings.of_run(run)
    plan = {f"random-{i}": dataclasses.replace(settings, strategy="random", seed=settings.seed + i, choice="auto")
            for i in range(1, random + 1)}
    if mobilenetv2 and _expresses_mobilenetv2(settings, log):
        plan["mobilenetv2"] = dataclasses.replace(settings, strategy="mobilenetv2", choice="auto")
    folder = run.file(FOLDER)
    steps = [(name, retraining) for name in ("searched", *plan) for retraining in range(1, seeds + 1)
             if (name, retraining) != ("searched", 1)]  # the searched network's first retraining is the run's own
    for index, (name, retraining) in enumerate(steps, 1):
        first = run.path if name == "searched" else folder / name
        out = first if retraining == 1 else folder / f"{name}-seed{retraining}"
        state = "finished, reused" if (out / "summary.json").is_file() else (
            f"trained as {run.path} was, {settings.retrain_epochs} retraining epochs" if retraining == 1 else
            f"{first} retrained again with retrain_seed {retraining}")
        log(f"check {index}/{len(steps)}: {out.name} ({state})")
        results.setdefault(name, []).append(
            _train_arm(out, plan[name], progress, echo) if retraining == 1 else
            retrain_reseeded(first, out, retraining, progress, echo))
    arms = [Arm.of(name, found, [_retrain_seed(r) for r in found]) for name, found in results.items()]
    result = outcome(str(run.path), arms, seeds)
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


def _retrain_seed(result: SearchResult) -> int | None:
    """The `retrain_seed` a retraining's run was made with (None: the run's own seed scheme)."""
    return Run(result.run).config()["settings"].get("retrain_seed")
