"""`search(settings)`: one run from data to a retrained network, resumable from its last checkpoint.

Order of work: load and split the data; resolve the space, FLOPs and latency tables and the budgets (an infeasible
budget is refused before any training); run the strategy (DA-NAS or a baseline) with a checkpoint after every phase
and after any epoch that ends a minute or more after the last checkpoint; derive the architecture under the budgets
and check it with fvcore and the table; evaluate it with the supernet's weights (batch norm recalibrated); retrain
it from scratch (on Ctrl-C, its last epoch is kept) and evaluate it on the test split.
"""

from __future__ import annotations

import dataclasses
import datetime
import platform
import time
from pathlib import Path

import torch

from edgenas.errors import EdgeNASError
from edgenas.files import claim_folder
from edgenas.progress import Bar, Clock, silent
from edgenas.runs.checkpoint import Checkpoint, load_checkpoint
from edgenas.runs.folder import Run
from edgenas.runs.settings import SearchSettings
from edgenas.searching import final_choice, phases, retraining
from edgenas.searching.context import Context
from edgenas.searching.job import Job, epochs_done
from edgenas.searching.plan import describe_plan, plan, standalone_prior
from edgenas.searching.result import SearchResult, finish, finished
from edgenas.space.arch import from_dict
from edgenas.training import distributed
from edgenas.units import format_flops


def search(settings: SearchSettings | None = None, *, out: str | Path | None = None, resume: str | Path | None = None,
           progress: bool = True, log=print, echo=None) -> SearchResult:
    """Run a search and the retraining of its result; `resume` continues a stopped run where it stopped.

    `progress` draws a rich bar; `log` receives notices (a budget that does not bind...); `echo`, when given,
    receives one plain line per epoch (for logs, where no bar is drawn).

    Under torchrun (several ranks) every rank calls this with the same arguments; rank 0 alone writes and prints.
    """
    ranks = distributed.Ranks.from_env()
    if not ranks.main:
        progress, log, echo = False, silent, None
    if resume is not None:
        run = Run.open(resume, writer=ranks.main)
        settings = SearchSettings.of_run(run)
        if run.has("summary.json"):
            log(f"run {run.path} is finished: nothing to resume (its summary follows; `edgenas train {run.path}` "
                "retrains it again)")
            return finished(run)
        torch.manual_seed(settings.seed)
        return go(Job(Context(settings, run, log)), progress, echo)
    settings = _absolute(settings or SearchSettings())
    path = Path(out) if out is not None else _default_run_name(settings)
    if out is not None and path.exists() and any(path.iterdir()):
        raise EdgeNASError(f"run folder {path} already exists and is not empty; use --resume {path} to continue "
                           "it, or choose another --out")
    torch.manual_seed(settings.seed)
    # Everything that can refuse the run (data, space, tables, budgets) is checked before the folder exists.
    context = Context(settings, Run(path), log)
    context.run = _create(context, path, claim=out is None)
    return go(Job(context), progress, echo)


def _absolute(settings: SearchSettings) -> SearchSettings:
    """The settings checked, with their paths made absolute, so that the run can be resumed, evaluated and exported
    from anywhere."""
    settings.validate()
    for name in ("data", "class_order"):
        if getattr(settings, name) is not None:
            settings = dataclasses.replace(settings, **{name: str(Path(getattr(settings, name)).resolve())})
    if settings.table is not None and (settings.table.endswith(".json") or "/" in settings.table):
        settings = dataclasses.replace(settings, table=str(Path(settings.table).resolve()))
    return settings


def _default_run_name(settings: SearchSettings) -> Path:
    budget = format_flops(settings.flops) if settings.flops else "default"
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{settings.strategy}-{budget}-seed{settings.seed}"


def _create(context: Context, path: Path, claim: bool) -> Run:
    """The run's folder with its config.json. Rank 0 names and creates it (a default name, `claim`, holds the time
    and the seed, and gets a numeric suffix when another run took it first); the others read its name."""
    ranks = context.device.ranks
    if claim and ranks.main:
        path = claim_folder(path)
    path = distributed.broadcast(path, ranks)
    if not ranks.main:
        distributed.barrier(ranks)
        return Run.open(path, writer=False)
    run = Run.create(path, {"settings": dataclasses.asdict(context.settings), "versions": _versions(),
                            "resolved": {"resolution": context.resolution, "space_hash": context.space.hash,
                                         "budgets": context.describe_budgets(), "data": context.data.describe(),
                                         **context.device.describe(), "world_size": ranks.world}})
    distributed.barrier(ranks)
    return run


def _versions() -> dict:
    """What the run was made with. Installed versions are read from the packages' metadata: importing
    torchvision and onnxruntime for their `__version__` took 3 s of every search."""
    from importlib.metadata import version

    from edgenas.version import __version__

    return {"edgenas": __version__, "torch": torch.__version__, "torchvision": version("torchvision"),
            "onnxruntime": version("onnxruntime"), "python": platform.python_version()}


def go(job: Job, progress: bool, echo=None) -> SearchResult:
    """The whole run from its checkpoint (none: from the start): the search, then the retraining, then finishing."""
    context = job.context
    loaded = load_checkpoint(job.run, warn=context.log)
    checkpoint = loaded or Checkpoint()
    history = job.restore(checkpoint)
    job.strategy.load_state_dict(checkpoint.strategy)
    context.log(f"resuming run {job.run.path} after {epochs_done(history)} epochs" if loaded
                else f"run {job.run.path}")
    _start_clock(job, checkpoint, history)
    try:
        with Bar(progress, echo, on_step=job.clock.step) as bar:
            if not checkpoint.searched:
                start = time.perf_counter() - (checkpoint.search_seconds or 0.0)
                search_arch = phases.search_supernet if job.strategy.trains_supernet else final_choice.baseline
                search_arch(job, checkpoint, history, bar, start)
            arch = from_dict(checkpoint.arch, str(job.run.file("checkpoint.pt")))
            if not job.run.has("arch.json") and job.run.writer:
                arch.save(job.run.file("arch.json"))
            retraining.retrain(job, arch, checkpoint, history, bar)
    except KeyboardInterrupt:
        kept = load_checkpoint(job.run) or Checkpoint()  # what a resumed run starts from (history may be ahead)
        raise KeyboardInterrupt(f"{epochs_done(job.run.history()[: kept.history_rows])} epochs kept in "
                                f"{job.run.path}; continue with edgenas search --resume {job.run.path}") from None
    return finish(job, arch, checkpoint)


def _start_clock(job: Job, checkpoint: Checkpoint, history: list[dict]) -> None:
    """The plan said, the budgets said, and the time estimate made from them."""
    context, budgets = job.context, job.context.budgets
    work = plan(job, checkpoint)
    context.log(describe_plan(work, context.data.size("train"), job.settings.batch_size))
    if budgets.flops_default:
        context.log(f"FLOPs budget {format_flops(budgets.flops)}: the default, {budgets.flops_default} "
                    "(--flops sets one)")
    if budgets.ms is not None:  # the table decides what is budgeted: FP32 or INT8 milliseconds
        context.log(f"latency budget {budgets.ms:g} ms ({context.table.describe()})")
    done = epochs_done(history)
    job.clock = Clock(work, done, context.log, prior=standalone_prior(job, work, done),
                      prior_how="timed before the search on a network drawn within the budgets")
