"""The phase loop of a supernet strategy (DA-NAS, full): the supernet and its optimisers built or taken back from the
checkpoint, then phase by phase its epochs, the class order after the probe, the pruning after a stage, and a
checkpoint after each phase (and after an epoch that ends a minute or more after the last checkpoint)."""

from __future__ import annotations

import math
import time

import torch

from edgenas.cost.cost_model import CostObjective
from edgenas.data.dataset import count_images
from edgenas.runs.checkpoint import Checkpoint, PhaseLoop
from edgenas.runs.weights import save_weights
from edgenas.searching import final_choice
from edgenas.searching.job import Job
from edgenas.searching.plan import phases, plan, stages
from edgenas.searching.pruning import layer_probs, prune
from edgenas.space.supernet import Supernet
from edgenas.strategies import danas, fairness
from edgenas.strategies.schedule import parse_schedule
from edgenas.training import distributed
from edgenas.training.train import SupernetSettings, per_class_accuracy, supernet_epoch
from edgenas.units import format_bytes, format_flops


def search_supernet(job: Job, checkpoint: Checkpoint, history: list[dict], bar, start: float) -> None:
    """The phases left, then the final choice; the derived architecture, its inherited weights (inherited.pt) and
    the whole supernet (supernet.pt, to rank others) saved, its weights and optimisers dropped from the checkpoint."""
    context, strategy = job.context, job.strategy
    _, factor = stages(job)
    if context.class_order is not None and strategy.class_order is None:
        strategy.class_order = context.class_order
        job.run.write("class_order.json", {"order": context.class_order,
                                           "names": [context.data.classes[i] for i in context.class_order],
                                           "method": f"given by {job.settings.class_order}"})
    runner = PhaseRunner(job, checkpoint, history, bar, start)
    runner.run()
    net, ranks = runner.net, runner.ranks
    model, arch, val_acc, choice_images = final_choice.choose(job, net, bar, checkpoint, history, start)
    checkpoint.images = (checkpoint.images or 0) + choice_images  # the choice's trainings are search work too
    if ranks.many:  # the evidence that the ranks ran one search: what each of them ended with
        job.run.write("distributed.json", {"world_size": ranks.world, "ranks": distributed.gather(
            {"alpha_and_masks": distributed.fingerprint(net.alpha, net.active),
             "active_choices": net.active_choices(), "layers": list(arch.layers)}, ranks)})
    if job.run.writer:  # the supernet's weights for the derived network; the whole supernet, to rank others
        save_weights(job.run.file("inherited.pt"), model)
        save_weights(job.run.file("supernet.pt"), net)
    checkpoint.arch, checkpoint.search_seconds = arch.to_dict(), time.perf_counter() - start
    checkpoint.inherited_val_acc, checkpoint.schedule_scale = val_acc, factor
    checkpoint.full_data_epochs = sum(p.fraction * p.epochs for p in runner.phases if p.scheduled)
    checkpoint.loop.drop_weights()
    checkpoint.choice = None
    checkpoint.final_probs = layer_probs(net, context.space)
    checkpoint.loop.phase, checkpoint.loop.epoch = len(runner.phases), 0
    job.save(checkpoint, history)


class PhaseRunner:
    """One process's share of the phase loop: the supernet, its optimisers and schedule, and the checkpoint they
    are saved into."""

    def __init__(self, job: Job, checkpoint: Checkpoint, history: list[dict], bar, start: float):
        self.job, self.checkpoint, self.history, self.bar, self.start = job, checkpoint, history, bar, start
        context, s = job.context, job.settings
        self.phases = phases(job)
        with torch.random.fork_rng(devices=[]):  # initial weights depend on the seed alone
            torch.manual_seed(s.seed)
            self.net = context.device.prepare(Supernet(context.space, context.num_classes))
        self.weight_opt = torch.optim.SGD(self.net.weight_parameters(), lr=s.lr, momentum=0.9, nesterov=True,
                                          weight_decay=s.weight_decay)
        self.arch_opt = torch.optim.Adam([self.net.alpha], lr=s.arch_lr, betas=(0.0, 0.999))
        self.scheduler = self.objective = None  # made at the first scheduled phase (the class order known)
        self.scaler = context.device.scaler()
        self.loop = checkpoint.loop or PhaseLoop()
        if checkpoint.loop is not None:
            self.net.load_state_dict(self.loop.supernet)
            self.weight_opt.load_state_dict(self.loop.weight_opt)
            self.arch_opt.load_state_dict(self.loop.arch_opt)
        self.ranks = context.device.ranks
        self.replica = distributed.wrap(self.net, self.ranks, context.device.device)
        self.settings = SupernetSettings(s.batch_size, s.label_smoothing, s.arch_every, s.cost_strength,
                                         *context.binding_budgets(), size_budget=context.binding_size())
        if checkpoint.loop is None and context.allowed() is not None:
            _cap_peak(job, self.net)

    def run(self) -> None:
        """Every phase left, from where the checkpoint stopped."""
        first = self.loop.phase
        self.bar.begin(sum(p.epochs for p in self.phases))
        self.bar.skip(sum(p.epochs for p in self.phases[:first]) + self.loop.epoch)
        for index in range(first, len(self.phases)):
            phase = self.phases[index]
            classes = self._classes(phase)
            steps_per_epoch = self._steps_per_epoch(classes)
            if phase.scheduled and self.scheduler is None:
                self._schedule()
            for epoch in range(self.loop.epoch if index == first else 0, phase.epochs):
                self._epoch(index, phase, epoch, classes, steps_per_epoch)
            if phase.name == "probe":
                self._order_classes()
            if phase.prune_after and self.job.settings.prune_ratio > 0:
                self.history.append(prune(self.job, self.net, phase, classes, self.settings))
            distributed.check_same(f"alphas and candidate masks after {phase.name}",
                                   distributed.fingerprint(self.net.alpha, self.net.active), self.ranks)
            self.loop.phase, self.loop.epoch = index + 1, 0
            self.save()

    def _classes(self, phase: danas.Phase) -> list[int]:
        return self.job.strategy.classes(phase, self.job.context.num_classes, self.job.unordered_classes)

    def _steps_per_epoch(self, classes: list[int]) -> int:
        return max(1, count_images(self.job.context.data, "train", classes)
                   // (self.job.settings.batch_size * self.ranks.world))

    def _schedule(self) -> None:
        """One cosine over the warm-up and the stages (the probe runs at the initial learning rate), and the budget
        penalty with its ramp."""
        per_epoch = [self._steps_per_epoch(self._classes(p)) for p in self.phases]
        total_steps = sum(p.epochs * n for p, n in zip(self.phases, per_epoch, strict=True) if p.scheduled)
        self.objective = _objective(self.job, self.phases, per_epoch, self.settings)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.weight_opt, lambda step, n=total_steps: 0.5 * (1 + math.cos(math.pi * min(step, n) / max(1, n))))
        if self.loop.scheduler is not None:
            self.scheduler.load_state_dict(self.loop.scheduler)
            # Creating the scheduler set the learning rate to step 0's; a resumed run goes on at its own.
            for group, lr in zip(self.weight_opt.param_groups, self.scheduler.get_last_lr(), strict=True):
                group["lr"] = lr

    def _epoch(self, index: int, phase: danas.Phase, epoch: int, classes: list[int], steps_per_epoch: int) -> None:
        job, context, s, net = self.job, self.job.context, self.job.settings, self.net
        self.bar.describe(f"{phase.name}: {len(classes)}/{context.num_classes} classes, "
                          f"{sum(net.active_counts())} candidates")
        t0 = time.perf_counter()
        sampler = None if phase.name == "probe" else fairness.sampler(
            net, context.cost, s.weight_sampling, s.filter_warmup if phase.name == "warmup" else 0.0,
            phase.epochs * steps_per_epoch, epoch * steps_per_epoch)
        metrics = supernet_epoch(net, context.data, classes, self.weight_opt, self.arch_opt,
                                 self.scheduler if phase.scheduled else None, context.cost, self.settings,
                                 job.generator, context.device, self.scaler, train_arch=phase.train_arch,
                                 uniform=phase.uniform, replica=self.replica, sampler=sampler,
                                 objective=self.objective, arch_step=self.loop.arch_steps, on_step=job.clock.tick,
                                 sandwich=fairness.sandwich_paths(net, context.cost)
                                 if s.sandwich and phase.name != "probe" else None)
        probs = net.probs().detach().double().cpu()
        flops, ms = context.cost.expected(probs)
        size = {} if self.settings.size_budget is None else {
            "expected_model_size_bytes": float(context.cost.expected_size(probs))}
        self.history.append({"phase": phase.name, "epoch": epoch, "classes": len(classes), "admitted": classes,
                             "active": net.active_counts(), **metrics, "expected_flops": float(flops),
                             "expected_ms": None if ms is None else float(ms), **size,
                             "probs": layer_probs(net, context.space), "seconds": time.perf_counter() - t0})
        self.loop.phase, self.loop.epoch = index, epoch + 1
        self.checkpoint.images = ((self.checkpoint.images or 0) + metrics["images"] + metrics["arch_images"]
                                  + metrics.get("extra_images", 0))
        self.loop.arch_steps += metrics["arch_steps"]
        latency = "" if ms is None else f", E[latency] {float(ms):.2f} ms"
        if size:
            latency += f", E[model size] {format_bytes(size['expected_model_size_bytes'])}"
        self.bar.step(f"loss {metrics['train_loss']:.3f}, acc {100 * metrics['train_acc']:.1f}%, "
                      f"E[FLOPs] {format_flops(float(flops))}{latency}")
        self.save(every_epoch=True)

    def _order_classes(self) -> None:
        """After the probe: the classes from easiest to hardest by their probe accuracy (class_order.json)."""
        job, context = self.job, self.job.context
        accuracy = per_class_accuracy(self.net, context.data, job.generator, context.device, job.settings.batch_size)
        order = distributed.broadcast(danas.class_order(accuracy), self.ranks)
        job.run.write("class_order.json", {
            "order": order, "names": [context.data.classes[i] for i in order],
            "probe_accuracy": {context.data.classes[i]: accuracy[i] for i in range(context.num_classes)},
            "method": "per-class accuracy on the search-validation split after the probe (uniform paths), "
                      "easiest first, ties by class index"})
        job.strategy.class_order = order
        job.clock.replan(plan(job, self.checkpoint))  # the stages' classes known

    def save(self, every_epoch: bool = False) -> None:
        """The checkpoint with the supernet, its optimisers and schedule, and the strategy's state."""
        self.loop.supernet, self.loop.weight_opt = self.net.state_dict(), self.weight_opt.state_dict()
        self.loop.arch_opt = self.arch_opt.state_dict()
        if self.scheduler is not None:
            self.loop.scheduler = self.scheduler.state_dict()
        self.checkpoint.loop = self.loop
        self.checkpoint.strategy = self.job.strategy.state_dict()
        self.checkpoint.search_seconds = time.perf_counter() - self.start
        self.job.save(self.checkpoint, self.history, every_epoch)


def _objective(job: Job, phases: list[danas.Phase], per_epoch: list[int], settings: SupernetSettings) -> CostObjective:
    """The budget penalty with its ramp: over `--cost-ramp` of the architecture steps, by default over the first
    stage's (`full`: the first stage's share of the schedule's epochs)."""
    s = job.settings
    arch_steps = [p.epochs * math.ceil(n / s.arch_every) if p.train_arch else 0
                  for p, n in zip(phases, per_epoch, strict=True)]
    share = s.cost_ramp
    if share is None:
        stages = parse_schedule(s.schedule)
        first = next((k for k, p in enumerate(phases) if p.prune_after), None)
        share = (arch_steps[first] / max(1, sum(arch_steps)) if first is not None
                 else stages[0].epochs / sum(st.epochs for st in stages))
    return CostObjective(s.cost_form, s.cost_strength, round(share * sum(arch_steps)), settings.flops_budget,
                         settings.ms_budget, settings.size_budget)


def _cap_peak(job: Job, net: Supernet) -> None:
    """A binding peak memory budget is a cap per candidate (the network's peak is its pieces' largest): the
    candidates over it leave the supernet before any training, so that no path, pruning or choice can take them."""
    context = job.context
    allowed = torch.as_tensor(context.allowed(), device=net.active.device)
    removed = [[c for j, c in enumerate(layer.choices) if net.active[i, j] and not allowed[i, j]]
               for i, layer in enumerate(context.space)]
    net.active &= allowed
    net.changed()
    context.log(f"peak memory budget {format_bytes(context.budgets.peak)} ({context.budgets.precision.upper()}): "
                f"{sum(map(len, removed))} candidates over it removed before training")
    job.run.write("peak_cap.json", {"peak_memory_budget_bytes": context.budgets.peak,
                                    "precision": context.budgets.precision, "removed": removed,
                                    "method": "candidates whose own peak of live activation bytes exceeds the budget"})
