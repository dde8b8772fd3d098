"""The retraining of the derived network from scratch, epoch by epoch with a checkpoint after each (on Ctrl-C its
last epoch is kept), then its evaluation on the validation and test splits; alone, for `edgenas train`. Its random
draws follow the run's seed scheme, or under the setting `retrain_seed` streams of their own (`retrain_streams`)."""

from __future__ import annotations

import copy
import dataclasses
import time

import numpy as np
import torch

from edgenas.progress import Bar, Clock
from edgenas.runs.checkpoint import Checkpoint, Retraining, save_checkpoint
from edgenas.runs.weights import save_weights
from edgenas.searching.job import Job, epochs_done
from edgenas.searching.plan import describe_plan, plan
from edgenas.space.arch import Arch, from_dict
from edgenas.space.network import build_model
from edgenas.training import distributed
from edgenas.training.train import evaluate, make_optimizer, train_epoch
from edgenas.units import format_flops


def retrain(job: Job, arch: Arch, checkpoint: Checkpoint, history: list[dict], bar) -> None:
    """Retrain `arch` for the epochs left, then evaluate it (model.pt, the checkpoint's `retrain` done)."""
    context, retraining = job.context, checkpoint.retraining
    if retraining.done:
        return
    # `edgenas train --epochs N` stores its N, so that a resumed retraining keeps its length and schedule.
    s = dataclasses.replace(job.settings, retrain_epochs=retraining.planned(job.settings.retrain_epochs))
    if s.retrain_epochs == 0:  # search only: no network of initial weights posing as retrained (model.pt)
        checkpoint.retrain = Retraining(done=True, epochs=0, seconds=None)
        job.save(checkpoint, history)
        return
    init_seed = _initial_weights_seed(job, s.retrain_seed, retraining)
    with torch.random.fork_rng(devices=[]):  # initial weights depend on the seed alone
        torch.manual_seed(init_seed)
        model = context.device.prepare(build_model(arch))
    settings = job.train_settings(s.retrain_epochs)
    steps = s.retrain_epochs * max(1, context.data.size("train") // (s.batch_size * context.device.ranks.world))
    optimizer, scheduler = make_optimizer(model, settings, steps)
    if retraining.model:
        model.load_state_dict(retraining.model)
        optimizer.load_state_dict(retraining.optimizer)
        scheduler.load_state_dict(retraining.scheduler)
    scaler = context.device.scaler()
    replica = context.device.compiled(distributed.wrap(model, context.device.ranks, context.device.device))
    start = time.perf_counter() - (retraining.seconds or 0.0)
    bar.begin(s.retrain_epochs, again=True)
    bar.skip(retraining.epoch)
    last = None  # the checkpoint after the last epoch (copies, not the live weights): written on Ctrl-C
    try:
        for epoch in range(retraining.epoch, s.retrain_epochs):
            bar.describe(f"retraining {arch.space} ({format_flops(context.cost.of(arch)[0])} FLOPs)")
            t0 = time.perf_counter()
            metrics = train_epoch(replica, context.data, optimizer, scheduler, settings, job.generator,
                                  context.device, scaler, on_step=job.clock.tick)
            history.append({"phase": "retrain", "epoch": epoch, **metrics, "seconds": time.perf_counter() - t0})
            bar.step(f"loss {metrics['train_loss']:.3f}, acc {100 * metrics['train_acc']:.1f}%")
            kept = copy.deepcopy({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                  "scheduler": scheduler.state_dict()})
            checkpoint.retrain = Retraining(total=s.retrain_epochs, epoch=epoch + 1, **kept,
                                            seconds=time.perf_counter() - start)
            job.save(checkpoint, history, every_epoch=True)
            last = copy.copy(checkpoint)
    except KeyboardInterrupt:
        # The checkpoint may lag up to CHECKPOINT_SECONDS behind: Ctrl-C loses only the epoch under way.
        if last is not None:
            save_checkpoint(job.run, last)
        raise
    model.eval()
    if job.run.writer:
        save_weights(job.run.file("model.pt"), model)
    checkpoint.retrain = Retraining(done=True, epochs=s.retrain_epochs, seconds=time.perf_counter() - start,
                                    val_acc=evaluate(model, context.data, "val", context.device),
                                    test_acc=evaluate(model, context.data, "test", context.device))
    job.save(checkpoint, history)


def retrain_streams(retrain_seed: int) -> tuple[int, int, int]:
    """The seeds of a retraining's initial weights, its dropout (torch's global generator) and its batch order and
    augmentation (the run's generator) under `retrain_seed`: three streams that numpy's SeedSequence spawns from it,
    apart from one another and from the `seed + k` of every run's own scheme, so that no `retrain_seed` starts from
    the initial weights of a run's own retraining (plain `seed + 1` of a run of seed 0 would be those of seed 1)."""
    init, dropout, order = (int(x) for x in np.random.SeedSequence(retrain_seed).generate_state(3))
    return init, dropout, order


def _initial_weights_seed(job: Job, retrain_seed: int | None, retraining: Retraining) -> int:
    """The seed of the initial weights. Under `retrain_seed` (a retraining of its own seed), a retraining that
    starts from its first epoch also draws its dropout, batch order and augmentation anew; one resumed continues
    from its checkpoint's generators. Otherwise the run's own scheme: weights from seed + 1, the rest continuing
    the search's generators, so that a run's retraining is the same whether it was stopped or not."""
    if retrain_seed is None:
        return job.settings.seed + 1
    init, dropout, order = retrain_streams(retrain_seed)
    if retraining.model is None:
        torch.manual_seed(dropout)
        job.generator.manual_seed(order)
    return init


def retrain_alone(job: Job, base: Checkpoint, checkpoint: Checkpoint, progress: bool, echo=None) -> Arch:
    """`edgenas train`: the retraining alone, from `checkpoint` (in a folder of its own, or the run's when a
    search's own retraining resumes); `base` is the run's checkpoint (the search's)."""
    history = job.restore(checkpoint)
    whole = base.merged(checkpoint)
    job.strategy.load_state_dict(whole.strategy)
    work = plan(job, whole)
    job.context.log(describe_plan(work, job.context.data.size("train"), job.settings.batch_size,
                                  retrained=checkpoint.retraining.epoch))
    job.clock = Clock(work, epochs_done(history), job.context.log)
    arch = from_dict(checkpoint.arch, str(job.context.run.file("checkpoint.pt")))
    with Bar(progress, echo, on_step=job.clock.step) as bar:
        retrain(job, arch, checkpoint, history, bar)
    return arch
