"""Training and evaluation: supernet epochs (weights and architecture parameters), standalone training, accuracy.

On a GPU: automatic mixed precision (bfloat16 where supported, else float16 with loss scaling), channels-last
tensors, data resident on the device, and no host synchronisation inside the step loop (metrics are accumulated
on the device and read once per epoch). On the CPU the same code runs in float32 and channels-last by default;
each choice is a setting (`edgenas.training.device.Device.pick`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from edgenas.cost.cost_model import CostModel, CostObjective, budget_penalty
from edgenas.data.batches import batches, cycle
from edgenas.data.dataset import Dataset
from edgenas.space.supernet import Supernet
from edgenas.training import distributed
from edgenas.training.device import Device


def class_index(classes: list[int], num_classes: int, device) -> tuple[Tensor, Tensor]:
    """Logit columns of the admitted classes, and a map from dataset labels to positions among them."""
    admitted = torch.tensor(sorted(classes), device=device)
    remap = torch.full((num_classes,), -1, dtype=torch.long, device=device)
    remap[admitted] = torch.arange(len(admitted), device=device)
    return admitted, remap


@dataclass
class SupernetSettings:
    batch_size: int
    label_smoothing: float
    arch_every: int  # one architecture step per this many weight steps
    cost_strength: float
    flops_budget: float | None
    ms_budget: float | None
    size_budget: float | None = None  # a binding model size budget, bytes


def supernet_epoch(net: Supernet, data: Dataset, classes: list[int], weight_opt, arch_opt, scheduler,
                   cost: CostModel, settings: SupernetSettings, generator: torch.Generator, device: Device,
                   scaler, *, train_arch: bool = True, uniform: bool = False,
                   on_step: Callable[[], None] = lambda: None, replica: nn.Module | None = None,
                   sampler: Callable[[Supernet, torch.Generator, int], list[tuple[int, ...]]] | None = None,
                   objective: CostObjective | None = None, arch_step: int = 0,
                   sandwich: tuple[list, list] | None = None) -> dict:
    """One epoch over the admitted classes' training images: weight steps on single sampled paths, and every
    `arch_every` steps an architecture step on a search-validation batch (two paths, binary gates, budget penalty).

    With several ranks, `replica` is `net` under DistributedDataParallel: weight steps run through it (gradients
    averaged by DDP), architecture steps through `net` itself with the alpha gradient averaged here; every rank
    samples the same paths from the shared generator. Returned counts are summed over the ranks.

    `sampler(net, generator, step)` gives a weight step's path (strategies/fairness.py; default: one path drawn
    uniformly or from alpha as `uniform` says); `objective` the budget penalty of the search's architecture step
    `arch_step + k` (default: `settings`' penalty above the budget at full strength). `sandwich`, when given, is
    the largest and the smallest path (`fairness.sandwich_paths`): each weight step also trains them, the sampled
    and the smallest path on the largest's outputs (`_weight_step`); their images are counted in `extra_images`.
    """
    replica = replica or net
    net.train()
    admitted, remap = class_index(classes, data.num_classes, device.device)
    val_batches = cycle(lambda: batches(data, "val", settings.batch_size, classes=classes, generator=generator,
                                         train=True, drop_last=device.ranks.many, shard=device.shard))
    # loss sum, correct, images, arch steps, their images, the sandwich's extra images
    totals = torch.zeros(6, device=device.device, dtype=torch.float64)
    arch_loss = torch.zeros((), device=device.device, dtype=torch.float64)
    steps = arch_steps_here = 0  # a host count: the ramp's step needs no device read
    objective = objective or (lambda cost_, probs, _: budget_penalty(
        cost_, probs, settings.flops_budget, settings.ms_budget, settings.cost_strength,
        size_budget=settings.size_budget))
    for x, y in batches(data, "train", settings.batch_size, classes=classes, generator=generator, train=True,
                        drop_last=True, shard=device.shard):
        path = sampler(net, generator, steps) if sampler is not None else net.sample(generator, 1, uniform=uniform)
        target = remap[y]
        loss, logits = _weight_step(replica, device, scaler, weight_opt, device.input(x), target, admitted, path,
                                    sandwich, settings.label_smoothing)
        if sandwich is not None:
            totals[5] += 2 * len(y)
        if scheduler is not None:
            scheduler.step()
        totals[0] += loss.detach() * len(y)
        totals[1] += (logits.detach().argmax(1) == target).sum()
        totals[2] += len(y)
        if train_arch and steps % settings.arch_every == 0:
            xv, yv = next(val_batches)
            arch_loss += _arch_step(net, arch_opt, device.input(xv), remap[yv], admitted, objective, cost,
                                    arch_step + arch_steps_here, settings, generator, device)
            totals[3] += 1
            totals[4] += len(yv)
            arch_steps_here += 1
        steps += 1
        on_step()
    distributed.sum_(totals, device.ranks)
    distributed.average_(arch_loss, device.ranks)
    loss_sum, correct, images, arch_steps, arch_images, extra_images = totals.tolist()
    arch_steps //= device.ranks.world  # steps, not rank-steps
    extra = {} if sandwich is None else {"extra_images": int(extra_images)}
    return {"train_loss": loss_sum / max(1, images), "train_acc": correct / max(1, images), "images": int(images),
            "arch_steps": int(arch_steps), "arch_images": int(arch_images),
            "arch_loss": float(arch_loss) / max(1, arch_steps), "steps": steps, **extra}


def _weight_step(replica: nn.Module, device: Device, scaler, weight_opt, x: Tensor, target: Tensor,
                 admitted: Tensor, path: list, sandwich: tuple[list, list] | None,
                 label_smoothing: float) -> tuple[Tensor, Tensor]:
    """One weight step on `path`; with `sandwich` (largest, smallest), the sandwich rule: the largest path learns
    from the labels, the smallest and `path` from its outputs (soft targets, detached), gradients summed over the
    three before the step. Returns `path`'s loss and logits (detached)."""
    weight_opt.zero_grad(set_to_none=True)
    targets: Tensor = target
    if sandwich is not None:
        largest, smallest = sandwich
        with device.autocast():
            teacher = replica(x, largest)[:, admitted].float()
        scaler.scale(F.cross_entropy(teacher, target, label_smoothing=label_smoothing)).backward()
        targets = teacher.detach().softmax(1)
        with device.autocast():
            small = replica(x, smallest)[:, admitted].float()
        scaler.scale(F.cross_entropy(small, targets)).backward()
    with device.autocast():
        logits = replica(x, path)[:, admitted].float()
    smoothing = label_smoothing if sandwich is None else 0.0  # soft targets are smooth already
    loss = F.cross_entropy(logits, targets, label_smoothing=smoothing)
    scaler.scale(loss).backward()
    scaler.step(weight_opt)
    scaler.update()
    return loss.detach(), logits.detach()


def _arch_step(net: Supernet, arch_opt, x: Tensor, target: Tensor, admitted: Tensor, objective: CostObjective,
               cost: CostModel, step: int, settings: SupernetSettings, generator: torch.Generator,
               device: Device) -> Tensor:
    """Architecture step `step` on a search-validation batch: two sampled paths with binary gates, the loss plus the
    budget penalty `objective(cost, probs, step)`, the gradient of alpha alone (no weight gradients computed, nor
    seen by DDP's hooks) averaged over the ranks. Returns the loss, detached."""
    paths = net.sample(generator, 2)
    with device.autocast():
        logits = net(x, paths)[:, admitted].float()
    loss = F.cross_entropy(logits, target, label_smoothing=settings.label_smoothing)
    loss = loss + objective(cost, net.probs(), step)
    (grad,) = torch.autograd.grad(loss, [net.alpha])
    net.alpha.grad = distributed.average_(grad, device.ranks)
    arch_opt.step()
    net.changed()
    return loss.detach()


@torch.no_grad()
def per_class_accuracy(net: Supernet, data: Dataset, generator: torch.Generator, device: Device,
                       batch_size: int, paths: int = 4) -> list[float]:
    """Accuracy of each class on the search-validation split, averaged over `paths` uniformly sampled paths.

    Batch norm uses batch statistics (the running ones mix every path) without updating them.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    net.train()
    correct = torch.zeros(data.num_classes, device=device.device)
    seen = torch.zeros(data.num_classes, device=device.device)
    try:
        for _ in range(paths):
            path = net.sample(generator, 1, uniform=True)
            for x, y in batches(data, "val", batch_size):
                with device.autocast():
                    prediction = net(device.input(x), path).argmax(1)
                correct.index_add_(0, y, (prediction == y).float())
                seen.index_add_(0, y, torch.ones_like(y, dtype=torch.float))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
    return (correct / seen.clamp(min=1)).tolist()


def evaluate(model: nn.Module, data: Dataset, split: str, device: Device, batch_size: int = 256,
             classes: list[int] | None = None) -> float:
    """Top-1 accuracy of a standalone network on `split` (restricted to `classes` when given)."""
    return _evaluate(model, data, split, device, batch_size, classes, with_loss=False)[0]


def evaluate_loss(model: nn.Module, data: Dataset, split: str, device: Device, batch_size: int = 256
                  ) -> tuple[float, float]:
    """Top-1 accuracy and mean cross-entropy (nats an image) of a standalone network on `split`, in one pass: the
    loss ranks networks with less sampling noise than accuracy on a few hundred images."""
    return _evaluate(model, data, split, device, batch_size, None, with_loss=True)


@torch.no_grad()
def _evaluate(model: nn.Module, data: Dataset, split: str, device: Device, batch_size: int,
              classes: list[int] | None, with_loss: bool) -> tuple[float, float | None]:
    model.eval()
    correct = torch.zeros((), device=device.device)
    loss = torch.zeros((), device=device.device)
    total = 0
    if classes is not None:  # once, not per batch: each index built is a host-to-device copy
        admitted, remap = class_index(classes, data.num_classes, device.device)
    for x, y in batches(data, split, batch_size, classes=classes):
        with device.autocast():
            logits = model(device.input(x))
        if classes is not None:
            logits, y = logits[:, admitted], remap[y]
        correct += (logits.argmax(1) == y).sum()
        if with_loss:
            loss += F.cross_entropy(logits.float(), y, reduction="sum")
        total += len(y)
    return float(correct) / max(1, total), float(loss) / max(1, total) if with_loss else None


def chance_warning(accuracy: float, num_classes: int, test_images: int, run: str, epochs: int) -> str | None:
    """A warning when a test accuracy cannot be told from guessing: below chance (1 / classes) plus two standard
    errors of an accuracy measured on `test_images` images at chance (sqrt(p (1 - p) / n)); None otherwise. Two
    standard errors: a network that guesses scores below that line 97.7% of the time."""
    chance = 1 / num_classes
    margin = 2 * math.sqrt(chance * (1 - chance) / max(1, test_images))
    if accuracy >= chance + margin:
        return None
    return (f"warning: test accuracy {100 * accuracy:.1f}% cannot be told from chance ({100 * chance:.1f}% for "
            f"{num_classes} classes, +/-{100 * margin:.1f} points on {test_images} test images, 2 standard errors): "
            f"the network has learned little after {epochs} retraining epochs; try more (edgenas train {run} "
            f"--epochs {max(2 * epochs, 10)}), more training images, and check that each class folder holds that "
            "class's images")


@dataclass
class TrainSettings:
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    label_smoothing: float


def make_optimizer(model: nn.Module, settings: TrainSettings, steps: int):
    """SGD with Nesterov momentum (no weight decay on batch norm and biases) and a cosine schedule per step."""
    decay, no_decay = [], []
    for param in model.parameters():
        (no_decay if param.ndim <= 1 else decay).append(param)
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": settings.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr,
                                momentum=settings.momentum, nesterov=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, steps) / max(1, steps))))
    return optimizer, scheduler


def train_epoch(model: nn.Module, data: Dataset, optimizer, scheduler, settings: TrainSettings,
                generator: torch.Generator, device: Device, scaler, on_step: Callable[[], None] = lambda: None) -> dict:
    """One epoch of standalone training; `model` is under DDP with several ranks (counts summed over them)."""
    model.train()
    totals = torch.zeros(3, device=device.device, dtype=torch.float64)
    for x, y in batches(data, "train", settings.batch_size, generator=generator, train=True, drop_last=True,
                        shard=device.shard):
        with device.autocast():
            logits = model(device.input(x)).float()
        loss = F.cross_entropy(logits, y, label_smoothing=settings.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        totals[0] += loss.detach() * len(y)
        totals[1] += (logits.detach().argmax(1) == y).sum()
        totals[2] += len(y)
        on_step()
    distributed.sum_(totals, device.ranks)
    loss_sum, correct, images = totals.tolist()
    return {"train_loss": loss_sum / max(1, images), "train_acc": correct / max(1, images), "images": int(images)}
