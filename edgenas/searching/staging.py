"""The staging folder of `edgenas train`, RUN/retraining.partial/: a new retraining starts there with the run's
search history and a checkpoint of no epoch yet, and its results replace the run's only once it is complete."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from edgenas.errors import EdgeNASError
from edgenas.runs.checkpoint import Checkpoint, Retraining, load_checkpoint, save_checkpoint
from edgenas.runs.folder import Run
from edgenas.runs.settings import SearchSettings

MAX_RETRAIN_EPOCHS = 10_000  # `edgenas train --epochs`: more is a typo (ImageNet recipes retrain for 300-600)
RETRAINING = "retraining.partial"  # RUN/RETRAINING: `edgenas train`'s retraining until it is complete


def stage(run: Run, work: Run, base: Checkpoint, settings: SearchSettings,
          epochs: int | None) -> tuple[Checkpoint, list[str]]:
    """A new retraining's folder `work` with the run's history of search and a checkpoint of no epoch yet: its
    checkpoint and the lines that say so."""
    total = settings.retrain_epochs if epochs is None else epochs
    if total == 0:
        raise EdgeNASError(f"run {run.path} was searched with --retrain-epochs 0: say how many epochs to retrain "
                           f"with --epochs N (1 to {MAX_RETRAIN_EPOCHS:,})")
    discarded = None
    if work.writer and work.path.exists():
        with contextlib.suppress(EdgeNASError):  # a damaged one is discarded all the same
            discarded = (load_checkpoint(work) or Checkpoint()).retraining
    history = [row for row in run.history()[: base.history_rows] if row.get("phase") != "retrain"]
    checkpoint = Checkpoint(arch=base.arch, retrain=Retraining(total=total), torch_rng=base.torch_rng,
                            generator=base.generator, history_rows=len(history))
    if work.writer:
        remove(work.path)
        try:
            work.path.mkdir()
        except OSError as exc:
            raise EdgeNASError(f"cannot create folder {work.path}: {exc.strerror or exc}; run {run.path} is "
                               "unchanged") from None
        work.set_history(history)  # before the checkpoint that counts its rows
        save_checkpoint(work, checkpoint)
    return checkpoint, _said(run, work, total, epochs, discarded)


def _said(run: Run, work: Run, total: int, epochs: int | None, discarded: Retraining | None) -> list[str]:
    how = f"--epochs {total}" if epochs is not None else "the run's --retrain-epochs"
    kept = ""
    if run.has("summary.json"):
        accuracy = run.read("summary.json", "run summary").get("test_acc")
        kept = "; its current results" + ("" if accuracy is None else f" (test accuracy {100 * accuracy:.2f}%)") + \
            " stay until the new ones are complete"
    said = [f"retraining run {run.path} from scratch: {total} epochs ({how}), kept in {work.path}{kept}"]
    if discarded is not None and not discarded.done:
        planned = "?" if discarded.total is None else discarded.total
        said.append(f"note: the stopped retraining that was there ({discarded.epoch} of {planned} epochs kept) is "
                    f"discarded; `edgenas train {run.path} --resume` would have continued it")
    return said


def move_retraining(work: Run, run: Run) -> None:
    """Replace a run's retraining results with the complete ones in `work`: checkpoint, history and model.pt, then
    summary.json, then `work` goes. A stop in between leaves summary.json in `work`: the next `edgenas train`
    finishes the move."""
    if not run.writer:
        return
    save_checkpoint(run, load_checkpoint(run).merged(load_checkpoint(work)))
    run.set_history(work.history())
    for name in ("model.pt", "summary.json"):
        if work.has(name):
            try:
                os.replace(work.file(name), run.file(name))
            except OSError as exc:
                raise EdgeNASError(f"cannot move {work.file(name)} into {run.path}: {exc.strerror or exc}; "
                                   f"`edgenas train {run.path} --resume` moves it") from None
    remove(work.path)


def remove(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise EdgeNASError(f"cannot remove {path}: {exc.strerror or exc}") from None
