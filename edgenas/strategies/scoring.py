"""A measured score for pruning: each active candidate's search-validation loss under random other paths.

After a short stage alpha barely tells candidates apart (a layer's probabilities spread by about 0.01 around a
uniform 0.08 on the digits), so a pruning on alpha is close to a coin toss. Here `paths` random paths run with the
supernet's inherited weights, each on one search-validation batch of the admitted classes; a candidate's score is
the mean cross-entropy (no label smoothing) of the paths through it, lower is better. The loss, not the accuracy,
because a few batches give it finer steps than a count of correct images. Each layer's candidates appear equally
often (a shuffled round robin), so every candidate gets `paths / active` paths, never none. Batch norm runs on
batch statistics without touching the running ones (they mix every path).

A score tells two candidates apart only when their mean losses differ by more than the noise of the paths through
them: with `confidence` z > 0, a candidate whose mean loss is within z standard errors of the difference from its
layer's best is `undecided`, and a pruning keeps it (the next stage, on more classes, decides).
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from edgenas.data.batches import batches, cycle
from edgenas.data.dataset import Dataset
from edgenas.errors import EdgeNASError
from edgenas.space.supernet import Supernet
from edgenas.training.train import class_index

METHOD = ("mean search-validation cross-entropy (no label smoothing) of uniformly random paths through each "
          "candidate, one batch each, supernet weights, batch statistics; pruning keeps the lowest")


@contextlib.contextmanager
def frozen_batch_norm(net: nn.Module):
    """Batch statistics in the forward pass, running statistics (and their counters) left as they were, and no
    dropout."""
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    was_training = net.training
    for m in norms:
        m.momentum = 0.0
    net.train()
    for m in net.modules():  # no dropout: a score must not depend on the global random state
        if isinstance(m, nn.Dropout):
            m.eval()
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)
        net.train(was_training)


def balanced_paths(net: Supernet, count: int, generator: torch.Generator) -> list[list[tuple[int]]]:
    """`count` paths (at least as many as the largest layer has active candidates), each layer's active candidates
    used equally often (within one) in a random order."""
    active = [[j for j in range(net.active.shape[1]) if net.active[i, j]] for i in range(net.active.shape[0])]
    count = max(count, max(len(a) for a in active))
    columns = []
    for options in active:
        repeated = (options * (count // len(options) + 1))[:count]
        order = torch.randperm(count, generator=generator).tolist()
        columns.append([repeated[k] for k in order])
    return [[(column[p],) for column in columns] for p in range(count)]


@torch.no_grad()
def candidate_scores(net: Supernet, data: Dataset, classes: list[int], generator: torch.Generator, device,
                     batch_size: int, paths: int) -> dict[str, Tensor]:
    """Per layer and candidate: mean search-validation loss and accuracy of the paths through it (NaN where the
    candidate is not active), and how many paths those are."""
    admitted, remap = class_index(classes, data.num_classes, device.device)
    shape = net.active.shape
    loss_sum = torch.zeros(shape, dtype=torch.float64)
    square_sum = torch.zeros(shape, dtype=torch.float64)
    correct_sum = torch.zeros(shape, dtype=torch.float64)
    count = torch.zeros(shape, dtype=torch.float64)
    drawn = balanced_paths(net, paths, generator)
    stream = cycle(lambda: batches(data, "val", batch_size, classes=classes, generator=generator))
    rows = torch.arange(shape[0])
    with frozen_batch_norm(net):
        for path in drawn:
            x, y = next(stream, (None, None))
            if x is None:
                raise EdgeNASError("the search-validation split has no image of the admitted classes: raise "
                                   "--val-fraction or use --prune-score alpha")
            with device.autocast():
                logits = net(device.input(x), path)[:, admitted].float()
            target = remap[y]
            loss = float(F.cross_entropy(logits, target))
            accuracy = float((logits.argmax(1) == target).float().mean())
            columns = torch.tensor([p[0] for p in path])
            loss_sum[rows, columns] += loss
            square_sum[rows, columns] += loss * loss
            correct_sum[rows, columns] += accuracy
            count[rows, columns] += 1
    seen = count.clamp(min=1)
    missing = ~net.active.cpu() | (count == 0)
    mean = loss_sum / seen
    variance = ((square_sum - seen * mean * mean) / (seen - 1).clamp(min=1)).clamp(min=0)
    return {"loss": mean.masked_fill(missing, float("nan")),
            "stderr": (variance / seen).sqrt().masked_fill(missing | (count < 2), float("nan")),
            "accuracy": (correct_sum / seen).masked_fill(missing, float("nan")), "paths": count}



def undecided(measured: dict[str, Tensor], confidence: float) -> Tensor:
    """Candidates whose mean loss is within `confidence` standard errors of the difference from their layer's best
    (lowest-loss) candidate: the paths cannot tell them apart from it. The best itself counts as undecided; nothing
    does when `confidence` is 0."""
    loss, stderr = measured["loss"], measured["stderr"]
    if confidence <= 0:
        return torch.zeros(loss.shape, dtype=torch.bool)
    best = torch.nan_to_num(loss, nan=float("inf")).argmin(1)
    rows = torch.arange(loss.shape[0])
    gap = loss - loss[rows, best][:, None]
    noise = (stderr ** 2 + stderr[rows, best][:, None] ** 2).sqrt()
    return ~torch.isnan(loss) & (gap <= confidence * torch.nan_to_num(noise, nan=float("inf")))
