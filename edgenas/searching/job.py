"""A run's work under way: its context, the folder it writes, its strategy, its own random generator, its clock,
and the saving of its checkpoint and history."""

from __future__ import annotations

import time

import torch

from edgenas.progress import Clock, silent
from edgenas.runs.checkpoint import Checkpoint, save_checkpoint
from edgenas.runs.folder import Run
from edgenas.searching.context import Context
from edgenas.strategies import choice
from edgenas.strategies.strategy import Strategy, get_strategy
from edgenas.training.train import TrainSettings

CHECKPOINT_SECONDS = 60.0  # the most training a kill between phases loses


class Job:
    def __init__(self, context: Context, work: Run | None = None):
        self.context = context
        self.settings = context.settings
        # Where checkpoints, history and model.pt are written: the run, or for `edgenas train` the folder of a new
        # retraining (retrain.RETRAINING), moved into the run once complete.
        self.run = work or context.run
        self.strategy: Strategy = get_strategy(self.settings.strategy)
        self.generator = torch.Generator().manual_seed(self.settings.seed)
        self.saved_at = time.perf_counter()  # when the checkpoint was last written (or the run started)
        self.clock = Clock([], 0, silent)  # the time estimate, made from the run's plan once it is known

    @property
    def staged(self) -> bool:
        """Whether the work is a retraining of `edgenas train` in a folder of its own (not yet the run's)."""
        return self.run is not self.context.run

    def restore(self, checkpoint: Checkpoint) -> list[dict]:
        """Take up where `checkpoint` left (a fresh run's is empty): the random generators' states, and the run's
        history cut to the rows the checkpoint covers (rewritten so)."""
        if checkpoint.torch_rng is not None:
            torch.set_rng_state(checkpoint.torch_rng)
            self.generator.set_state(checkpoint.generator)
        history = self.run.history()[: checkpoint.history_rows]
        self.run.set_history(history)
        return history

    def save(self, checkpoint: Checkpoint, history: list[dict], every_epoch: bool = False) -> None:
        """history.jsonl at once; the checkpoint too, except after an epoch within CHECKPOINT_SECONDS of the last
        checkpoint (a supernet's checkpoint costs about a second to write, as much as a short epoch's training).
        A resumed run starts from the checkpoint and drops the history rows after it."""
        checkpoint.torch_rng = torch.get_rng_state()
        checkpoint.generator = self.generator.get_state()
        checkpoint.history_rows = len(history)
        self.run.set_history(history)
        now = time.perf_counter()
        if every_epoch and now - self.saved_at < CHECKPOINT_SECONDS:
            return
        save_checkpoint(self.run, checkpoint)
        self.saved_at = now

    def band(self) -> choice.Band:
        """Where a derived (or random) network must lie: within the budgets, above the floor of a binding one."""
        context, budgets = self.context, self.context.budgets
        return choice.band(context.cost, budgets.flops, budgets.ms, self.settings.budget_floor, budgets.flops_binds,
                           budgets.latency_binds, context.binding_size(), context.allowed())

    def train_settings(self, epochs: int) -> TrainSettings:
        """Standalone training of `epochs` epochs with the retraining's settings."""
        s = self.settings
        return TrainSettings(epochs, s.batch_size, s.retrain_lr, 0.9, s.retrain_weight_decay, s.label_smoothing)

    def unordered_classes(self) -> list[int]:
        """The class order without a probe (--probe-epochs 0): class_order.json's if the run has one, else by index."""
        if self.run.has("class_order.json"):
            return list(self.run.read("class_order.json")["order"])
        return list(range(self.context.num_classes))


def epochs_done(history: list[dict]) -> int:
    """Epochs (of search, choice and retraining) that a run's history holds: what a resumed run does not do again."""
    return sum(1 if "epoch" in row else row.get("choice_epochs", 0) for row in history)


def choice_images(history: list[dict]) -> int:
    """Images the choice's short trainings (`--choice train`) took, over every candidate scored so far."""
    return sum(row["images"] for row in history if row.get("phase") == "choice")
