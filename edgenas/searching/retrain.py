"""`retrain(run)` (`edgenas train`): a searched run's architecture retrained again from scratch in
RUN/retraining.partial/ (staging.py), whose results replace the run's only once complete; with `resume`, a stopped
retraining continued where it stopped."""

from __future__ import annotations

from pathlib import Path

from edgenas.errors import EdgeNASError
from edgenas.progress import silent
from edgenas.runs.checkpoint import Checkpoint, load_checkpoint
from edgenas.runs.folder import Run
from edgenas.runs.settings import SearchSettings
from edgenas.searching.context import Context
from edgenas.searching.job import Job
from edgenas.searching.result import SearchResult, finish, finished
from edgenas.searching.retraining import retrain_alone
from edgenas.searching.staging import MAX_RETRAIN_EPOCHS, RETRAINING, move_retraining, stage
from edgenas.training import distributed


def retrain(run_path: str | Path, epochs: int | None = None, progress: bool = True, log=print,
            resume: bool = False, echo=None) -> SearchResult:
    """Retrain a searched run's architecture from scratch and evaluate it again; with `resume`, continue a stopped
    retraining (from its last kept epoch) instead of starting over.

    The new retraining is kept in RUN/retraining.partial/ (its checkpoint, history and model.pt); the run's own
    results (summary.json, model.pt, history.jsonl, checkpoint.pt) stay as they are until it is complete, and are
    then replaced by its results. A search's own stopped retraining resumes in the run itself."""
    if epochs is not None and not 1 <= epochs <= MAX_RETRAIN_EPOCHS:
        raise EdgeNASError(f"bad --epochs {epochs}: expected 1 to {MAX_RETRAIN_EPOCHS:,} retraining epochs")
    ranks = distributed.Ranks.from_env()
    if not ranks.main:
        progress, log, echo = False, silent, None
    run = Run.open(run_path, writer=ranks.main)
    settings = SearchSettings.of_run(run)
    base = load_checkpoint(run, warn=log)
    if base is None or not base.searched:
        raise EdgeNASError(f"run {run.path} has no derived architecture yet; finish it with --resume {run.path}")
    work = Run(run.file(RETRAINING), writer=ranks.main)
    if work.has("summary.json"):  # complete, but stopped while its files were moved into the run
        move_retraining(work, run)
        log(f"note: the retraining in {work.path} was complete but stopped while its results were moved into "
            f"{run.path}; they are there now")
        base = load_checkpoint(run)
    if resume:
        checkpoint = load_checkpoint(work, warn=log)
        if checkpoint is None and _retrained(run, base, log):  # none of `edgenas train` stopped, nor the search's
            return finished(run)
        staged = checkpoint is not None
        checkpoint = checkpoint if staged else base
        said = _resuming(run, work if staged else run, checkpoint, settings, epochs)
    else:
        (checkpoint, said), staged = stage(run, work, base, settings, epochs), True
    where, total = work if staged else run, checkpoint.retraining.planned(settings.retrain_epochs)
    try:
        for line in said:  # said here, so that a Ctrl-C from then on is told what was kept
            log(line)
        context = Context(settings, run, log)
        # rank 0's reading of the files
        checkpoint, staged = distributed.broadcast((checkpoint, staged), context.device.ranks)
        job = Job(context, work if staged else None)
        arch = retrain_alone(job, base, checkpoint, progress, echo)
    except KeyboardInterrupt:
        kept = (load_checkpoint(where) or Checkpoint()).retraining.epoch  # where a resume starts
        unchanged = "" if where is run else f" (the results of run {run.path} are unchanged)"
        raise KeyboardInterrupt(f"{kept} of {total} retraining epochs kept in {where.path}{unchanged}; continue "
                                f"with edgenas train {run.path} --resume") from None
    return finish(job, arch, base.merged(checkpoint))


def _retrained(run: Run, base: Checkpoint, log) -> bool:
    """`edgenas train RUN --resume` on a run whose retraining is over: nothing is done, and the user is told so."""
    retraining = base.retraining
    if not retraining.done or not run.has("summary.json"):
        return False
    summary = run.read("summary.json", "run summary")
    if retraining.epochs:
        accuracy = "" if summary.get("test_acc") is None else f", test accuracy {100 * summary['test_acc']:.2f}%"
        log(f"run {run.path} is retrained already ({retraining.epochs} epochs{accuracy}): nothing to resume, "
            f"nothing done (its summary follows); `edgenas train {run.path}` retrains it again from scratch, and "
            "keeps these results until the new ones are complete")
    else:
        log(f"run {run.path} was never retrained (searched with --retrain-epochs 0): nothing to resume, nothing "
            f"done (its summary follows); `edgenas train {run.path} --epochs N` retrains it")
    return True


def _resuming(run: Run, where: Run, checkpoint: Checkpoint, settings: SearchSettings,
              epochs: int | None) -> list[str]:
    """Check `edgenas train RUN --resume` against the stopped retraining; the line that says where it resumes."""
    retraining = checkpoint.retraining
    total = retraining.planned(settings.retrain_epochs)
    if epochs is not None and epochs != total:
        raise EdgeNASError(f"bad --epochs {epochs} with --resume: the stopped retraining of {run.path} runs "
                           f"{total} epochs; drop --epochs, or retrain from scratch without --resume")
    if total == 0:  # a search with --retrain-epochs 0, stopped before it finished
        raise EdgeNASError(f"run {run.path} has no retraining to resume (searched with --retrain-epochs 0): "
                           f"`edgenas search --resume {run.path}` finishes it, `edgenas train {run.path} --epochs N` "
                           "retrains it")
    kept = retraining.epoch
    if retraining.done:  # stopped after its last epoch, before its summary was written
        return [f"retraining run {run.path}: all {retraining.epochs} epochs kept in {where.path}"]
    if kept:
        return [f"retraining run {run.path}: resuming at epoch {kept + 1} of {total} ({kept} kept in {where.path})"]
    return [f"retraining run {run.path}: starting again at epoch 1 of {total}: no epoch of the stopped retraining was "
            "kept (it stopped during its first epoch, or was killed otherwise than by Ctrl-C within a minute of its "
            "start)"]
