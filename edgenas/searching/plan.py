"""A run's plan: its phases, every epoch of work in order with the image-steps it counts (progress.Clock's plan), the
rate of standalone training timed before the search, and the one line that says the plan."""

from __future__ import annotations

import dataclasses
import math
import time

import torch

from edgenas.data.batches import batch_sizes
from edgenas.data.dataset import count_images
from edgenas.progress import Work
from edgenas.runs.checkpoint import Checkpoint
from edgenas.searching.job import Job
from edgenas.strategies import choice, danas
from edgenas.strategies.baselines import random_within_budget
from edgenas.strategies.schedule import Stage, auto_scale, classes_admitted, parse_schedule, scale


def stages(job: Job) -> tuple[list[Stage], float]:
    """The schedule's stages at the run's scale, and that scale."""
    factor = job.settings.epochs_scale or auto_scale(job.context.data.size("train"))
    return scale(parse_schedule(job.settings.schedule), factor), factor


def phases(job: Job) -> list[danas.Phase]:
    """The search's phases: probe, warm-up (scaled like the stages) and stages, or `full`'s."""
    s = job.settings
    scaled, factor = stages(job)
    warmup = max(1, round(s.warmup_epochs * factor)) if s.warmup_epochs > 0 else 0
    return job.strategy.phases(scaled, 0 if s.class_order else s.probe_epochs, s.epochs, warmup)


def plan(job: Job, checkpoint: Checkpoint) -> list[Work]:
    """Every epoch of the run in order, with the image-steps the run will count for it (the weight steps' images,
    the search-validation images of the architecture steps, the choice's and the retraining's images: batches
    as data.batches cuts them) and the FLOPs per image of the networks it trains (progress.Clock). Exact once
    the class order is known; before the probe, the stages' classes are counted at the mean class size."""
    s, context, cost = job.settings, job.context, job.context.cost
    world = context.device.ranks.world
    sizes = [len(layer.choices) for layer in context.space]
    uniform = cost.fixed_flops + sum(float(cost.flops[i, :n].mean()) for i, n in enumerate(sizes))
    largest = cost.fixed_flops + sum(float(cost.flops[i, :n].max()) for i, n in enumerate(sizes))
    smallest = cost.fixed_flops + sum(float(cost.flops[i, :n].min()) for i, n in enumerate(sizes))
    trained = context.budgets.flops if context.budgets.flops_binds else uniform  # the choice's and derived network
    epochs = _supernet_work(job, uniform, largest, smallest) if job.strategy.trains_supernet else []
    whole = batch_sizes(context.data.size("train"), s.batch_size, world, drop_last=True)
    if job.strategy.trains_candidates(s.final_choice):
        candidates = len(checkpoint.choice.found) if checkpoint.choice is not None else s.candidates_scored
        epochs += [Work("choice", "choice", sum(whole), len(whole), trained)] * (candidates * s.choice_epochs)
    retraining = checkpoint.retraining
    total = 0 if retraining.done else retraining.planned(s.retrain_epochs)
    return epochs + [Work("retraining", "retraining", sum(whole), len(whole), trained)] * total


def _supernet_work(job: Job, uniform: float, largest: float, smallest: float) -> list[Work]:
    """The supernet's epochs, phase by phase, at the cost of a uniform path (the warm-up's larger); with the
    sandwich rule, each weight step's images three times, at the mean cost of its three paths."""
    s, context = job.settings, job.context
    world, num_classes, data = context.device.ranks.world, context.num_classes, context.data
    # The filter warm-up runs the largest candidates with a chance falling from 1 to 0 over its first share.
    warmup = uniform + s.filter_warmup / 2 * (largest - uniform)
    order = job.strategy.class_order if job.strategy.class_order is not None else context.class_order
    all_phases = phases(job)
    if order is None and not any(p.name == "probe" for p in all_phases):
        order = job.unordered_classes()
    epochs = []
    for phase in all_phases:
        admitted = classes_admitted(phase.fraction, num_classes)
        if order is None or admitted == num_classes:
            n_train, n_val = (round(data.size(split) * admitted / num_classes) for split in ("train", "val"))
        else:
            classes = danas.admitted(order, phase.fraction)
            n_train, n_val = (count_images(data, split, classes) for split in ("train", "val"))
        weight = batch_sizes(n_train, s.batch_size, world, drop_last=True)
        images, cost = sum(weight), warmup if phase.name == "warmup" else uniform
        if s.sandwich and phase.name != "probe":
            images, cost = 3 * images, (cost + largest + smallest) / 3
        if phase.train_arch:  # one per `arch_every` weight steps, on the next search-validation batch
            val = batch_sizes(n_val, s.batch_size, world, drop_last=world > 1) or [0]
            arch = sum(val[k % len(val)] for k in range(math.ceil(len(weight) / s.arch_every)))
            # An architecture step runs two paths forward and back to alpha: 4 forward passes' cost where
            # a weight step costs 3 (forward, backward to the input and to the weights).
            cost = (images * cost + arch * uniform * 4 / 3) / max(1, images + arch)
            images += arch
        kind = "probe" if phase.name == "probe" else "supernet"
        epochs += [Work(phase.name, kind, images, len(weight), cost)] * phase.epochs
    return epochs


def standalone_prior(job: Job, plan: list[Work], done: int) -> dict[str, tuple[float, float]]:
    """Seconds and units of cost (progress.Clock) of training a network drawn within the budgets (the choice's
    candidates and the derived network are such networks), timed on its steps after the first in an epoch of
    up to 3 batches with the choice's code: the rate of the choice and the retraining until they are measured
    themselves, when supernet epochs come first (a standalone network's step took 0.25x, MobileNetV2, to 1.35x,
    the largest network, a supernet weight step on one CPU: docs/BENCHMARKS.md, "CPU training speed"; their
    FLOPs do not say which). Nothing of the run changes: its own generators, seeds and data order are untouched.
    """
    context, s = job.context, job.settings
    data, world = context.data, context.device.ranks.world
    kinds = [work.kind for work in plan[done:]]
    later = [kind for kind in ("choice", "retraining") if kind in kinds]
    if not later or kinds[0] in later:
        return {}
    images = 3 * s.batch_size * world
    sizes = batch_sizes(min(images, data.size("train")), s.batch_size, world, drop_last=True)
    if len(sizes) < 2:  # no step after the first to time
        return {}
    view = dataclasses.replace(data, x={"train": data.x["train"][:images]} if data.files is None else {},
                               y={"train": data.y["train"][:images]},
                               files=None if data.files is None else {"train": data.files["train"][:images]})
    arch = random_within_budget(job.band(), context.space, context.num_classes, torch.Generator().manual_seed(s.seed))
    ends: list[float] = []
    choice.train_from_scratch(arch, view, job.train_settings(1), context.device, s.seed,
                              on_epoch=lambda metrics: ends.append(time.perf_counter()),
                              on_step=lambda: ends.append(time.perf_counter()))
    measured = (ends[-1] - ends[0], sum(sizes[1:]) * context.cost.of(arch)[0])
    return {kind: measured for kind in later}


def describe_plan(plan: list[Work], train_images: int, batch_size: int, retrained: int | None = None) -> str:
    """The plan in one line for the log: `plan: probe 1 epoch, stage 0 5 epochs, ...; about 33,600 image-steps of
    search and ...`; for a retraining alone (`edgenas train`: `retrained` epochs of it kept), the epochs of it left
    (`plan: retraining epochs 3 to 10 of 10; about ...`)."""
    if retrained is not None:
        return _describe_retraining(sum(1 for work in plan if work.kind == "retraining"), retrained, train_images,
                                    batch_size)
    groups: list[list] = []
    for work in plan:
        if groups and groups[-1][0] == work.phase:
            groups[-1][1] += 1
        else:
            groups.append([work.phase, 1])
    phases = ", ".join(f"{name} {count} epoch{'s' if count > 1 else ''}" for name, count in groups) or "nothing left"
    retrain = sum(work.images for work in plan if work.kind == "retraining")
    return (f"plan: {phases}; about {sum(work.images for work in plan) - retrain:,} image-steps of search and "
            f"{retrain:,} of retraining ({train_images:,} training images, batch {batch_size})")


def _describe_retraining(total: int, kept: int, train_images: int, batch_size: int) -> str:
    left = total - kept
    if not left:
        return "plan: no epoch left to train; its results are written"
    first = kept + 1
    epochs = f"{total} epoch{'s' if total > 1 else ''}" if first == 1 else \
        f"epoch {total} of {total}" if left == 1 else f"epochs {first} to {total} of {total}"
    return (f"plan: retraining {epochs}; about {left * train_images:,} image-steps ({train_images:,} training images "
            f"per epoch, batch {batch_size})")
