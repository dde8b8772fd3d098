"""The pruning after a stage, as the search runs and records it: candidates scored (`--prune-score eval`) or ranked
by alpha, the weakest dropped (strategies/danas.py's `prune`), and the history row that says what was measured,
dropped and given back."""

from __future__ import annotations

import math
import time

import torch

from edgenas.searching.job import Job
from edgenas.space.spec import Space
from edgenas.space.supernet import Supernet
from edgenas.strategies import danas, scoring
from edgenas.training.train import SupernetSettings


def prune(job: Job, net: Supernet, phase: danas.Phase, classes: list[int], settings: SupernetSettings) -> dict:
    """Prune `net` after `phase` (trained on `classes`); its history row."""
    context, s = job.context, job.settings
    t0 = time.perf_counter()
    row = {"phase": phase.name, "prune_score": s.prune_score}
    scores = undecided = None
    if s.prune_score == "eval":
        measured = scoring.candidate_scores(net, context.data, classes, job.generator, context.device, s.batch_size,
                                            s.score_paths)
        scores = -measured["loss"]
        undecided = scoring.undecided(measured, s.prune_confidence)
        row["scores"] = {"val_loss": layer_rows(measured["loss"], context.space),
                         "val_acc": layer_rows(measured["accuracy"], context.space),
                         "stderr": layer_rows(measured["stderr"], context.space),
                         "paths": layer_rows(measured["paths"], context.space), "method": scoring.METHOD,
                         "undecided": [[layer.choices[j] for j in range(len(layer.choices)) if undecided[i, j]]
                                       for i, layer in enumerate(context.space)]}
    pruned = danas.prune(net, s.prune_ratio, context.cost, settings.flops_budget, settings.ms_budget, scores,
                         s.budget_floor, undecided, settings.size_budget)
    return {**row, "pruned": pruned.dropped, "restored_cheapest": pruned.restored,
            "given_back_for_floor": pruned.given_back, "active": net.active_counts(),
            "active_choices": net.active_choices(), "probs": layer_probs(net, context.space),
            "seconds": time.perf_counter() - t0}


def layer_probs(net: Supernet, space: Space) -> list[list[float]]:
    """Per layer, the probability of each of its choices (softmax of alpha over the unpruned ones; 0 if pruned)."""
    return [[round(p, 6) for p in row[: len(layer.choices)]]
            for row, layer in zip(net.probs().detach().cpu().tolist(), space, strict=True)]


def layer_rows(table: torch.Tensor, space: Space) -> list[list[float | None]]:
    """Per layer, a value per choice (None where not measured: pruned, or NaN)."""
    return [[None if math.isnan(v) else round(v, 6) for v in row[: len(layer.choices)]]
            for row, layer in zip(table.tolist(), space, strict=True)]
