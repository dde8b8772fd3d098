"""The final choice as the search runs it: the candidates within the band (strategies/choice.py), kept in the
checkpoint so that a resumed choice scores the same ones, scored by alpha, by their inherited weights (`eval`) or by
short trainings from scratch (`train`), and written to candidates.json; and a baseline's network (random, or the
best trained of several random draws, or MobileNetV2)."""

from __future__ import annotations

import time

from edgenas.errors import EdgeNASError
from edgenas.runs.checkpoint import Checkpoint, SavedChoice
from edgenas.searching.job import Job, choice_images
from edgenas.searching.plan import plan
from edgenas.space.arch import Arch, make_arch
from edgenas.space.supernet import Supernet
from edgenas.strategies import choice
from edgenas.strategies.baselines import MemoryBudgets, random_within_budget
from edgenas.training.train import evaluate, evaluate_loss
from edgenas.units import format_flops

RANDOM_DRAWS = 20  # --strategy random --choice train: draws per candidate wanted, at most (duplicates dropped)


def choose(job: Job, net: Supernet, bar, checkpoint: Checkpoint, history: list[dict], start: float):
    """The derived architecture, its inherited network and search-validation accuracy with inherited weights, and
    the images the choice trained on; writes candidates.json."""
    context, s = job.context, job.settings
    limits = job.band()
    if checkpoint.choice is not None:
        found, floors, notices = checkpoint.choice.candidates(), checkpoint.choice.floors, checkpoint.choice.notices
    else:
        notices: list[str] = []
        found, floors = choice.candidates(net, context.cost, limits, s.candidates_scored, job.generator, notices,
                                          uniform=s.uniform_pool)
        if not found:
            raise EdgeNASError("no architecture of the remaining candidates meets the budgets")
        for notice in notices:
            context.log(f"notice: {notice}")
        checkpoint.choice = SavedChoice.of(found, floors, notices)
    seed = s.seed + 2  # the recalibration batches, the same for every candidate

    def inherited_accuracy(candidate: choice.Candidate) -> float:
        model = choice.inherited(net, candidate.layers, context.data, s.batch_size, seed)
        if s.choice_score == "loss":
            accuracy, candidate.val_loss = evaluate_loss(model, context.data, "val", context.device)
            return accuracy
        return evaluate(model, context.data, "val", context.device)

    scorer = (None if s.final_choice == "alpha" else inherited_accuracy if s.final_choice == "eval"
              else trained_scorer(job, found, bar, checkpoint, history, start))
    best = found[choice.choose(found, scorer, by_loss=s.choice_score == "loss")]
    model = choice.inherited(net, best.layers, context.data, s.batch_size, seed)
    val_acc = best.val_acc if s.final_choice == "eval" else evaluate(model, context.data, "val", context.device)
    how = "eval-loss" if s.choice_score == "loss" else s.final_choice  # loss: --choice eval only
    job.run.write("candidates.json", choice.describe(found, limits, floors, notices, how))
    return model, make_arch(context.space, best.layers, context.num_classes), val_acc, choice_images(history)


def trained_scorer(job: Job, found: list[choice.Candidate], bar, checkpoint: Checkpoint, history: list[dict],
                   start: float):
    """--choice train: scores each of `found` by a short training from scratch, the progress bar told. Each
    score is saved as it comes (a `choice` row of history.jsonl, then the checkpoint): a resumed run reads the
    scores it has and trains only the candidates left."""
    context, s = job.context, job.settings
    done = {tuple(row["layers"]): row["val_acc"] for row in history if row.get("phase") == "choice"}
    job.clock.replan(plan(job, checkpoint))  # the candidates known
    bar.begin(len(found) * s.choice_epochs, again=True)
    bar.skip(len(done) * s.choice_epochs)

    def trained_accuracy(candidate: choice.Candidate) -> float:
        if tuple(candidate.layers) in done:
            return done[tuple(candidate.layers)]
        number = found.index(candidate) + 1
        bar.describe(f"choice: training candidate {number}/{len(found)} ({format_flops(candidate.flops)} FLOPs)")
        t0, images = time.perf_counter(), []
        arch = make_arch(context.space, candidate.layers, context.num_classes)
        accuracy = choice.trained_accuracy(arch, context.data, job.train_settings(s.choice_epochs), context.device,
                                           s.seed, lambda m: (images.append(m["images"]),
                                                              bar.step(f"loss {m['train_loss']:.3f}")),
                                           on_step=job.clock.tick)
        history.append({"phase": "choice", "candidate": number, "layers": list(candidate.layers),
                        "flops": candidate.flops, "val_acc": accuracy, "choice_epochs": s.choice_epochs,
                        "images": sum(images), "seconds": time.perf_counter() - t0})
        checkpoint.search_seconds = time.perf_counter() - start
        job.save(checkpoint, history)
        return accuracy

    return trained_accuracy


def baseline(job: Job, checkpoint: Checkpoint, history: list[dict], bar, start: float) -> None:
    """A strategy without a supernet: its network drawn (or, `--choice train`, the best trained of several random
    draws) and saved as the search's result."""
    context = job.context
    if job.strategy.trains_candidates(job.settings.final_choice):
        arch, images = _best_trained_random(job, checkpoint, history, bar, start)
    else:
        budgets = context.budgets
        memory = None if budgets.size is None and budgets.peak is None else MemoryBudgets(
            budgets.precision, budgets.size, budgets.peak)
        arch, images = job.strategy.draw(context.space, context.num_classes, job.band(), budgets.flops, budgets.ms,
                                         context.table, job.generator, memory), 0
    checkpoint.arch, checkpoint.search_seconds = arch.to_dict(), time.perf_counter() - start
    checkpoint.images, checkpoint.inherited_val_acc, checkpoint.choice = images, None, None
    job.save(checkpoint, history)


def _best_trained_random(job: Job, checkpoint: Checkpoint, history: list[dict], bar, start: float) -> tuple[Arch, int]:
    """--strategy random --choice train: the best of --choice-candidates distinct random architectures of the
    band, each scored by the same short training as danas's candidates, and the images that training took;
    writes candidates.json. Resumable like danas's choice."""
    context, s = job.context, job.settings
    limits = job.band()
    if checkpoint.choice is not None:
        found = checkpoint.choice.candidates()
    else:
        drawn: dict[tuple[str, ...], Arch] = {}
        for _ in range(RANDOM_DRAWS * s.candidates_scored):
            arch = random_within_budget(limits, context.space, context.num_classes, job.generator)
            drawn.setdefault(tuple(arch.layers), arch)
            if len(drawn) == s.candidates_scored:
                break
        found = []
        for arch in drawn.values():
            flops, ms = context.cost.of(arch)
            index = [layer.choices.index(x) for layer, x in zip(context.space, arch.layers, strict=True)]
            found.append(choice.Candidate(index, list(arch.layers), "random", round(flops), ms, 0.0))
        checkpoint.choice = SavedChoice.of(found, limits.floors, [])
    best = found[choice.choose(found, trained_scorer(job, found, bar, checkpoint, history, start))]
    job.run.write("candidates.json", choice.describe(found, limits, limits.floors, [], "train"))
    return make_arch(context.space, best.layers, context.num_classes), choice_images(history)
