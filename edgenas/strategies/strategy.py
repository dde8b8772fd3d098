"""A strategy as the search runs it: one object per `--strategy`, saying what the strategy does (train a supernet in
phases, or draw a baseline network at once), which classes a phase trains on, whether a final choice is made, and
keeping its own state between a stop and a resume (NNI's `state_dict` / `load_state_dict`), so that the search
never tests a strategy's name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch

from edgenas.cost.latency import LatencyTable
from edgenas.space.arch import Arch
from edgenas.space.spec import Space
from edgenas.strategies import danas
from edgenas.strategies.baselines import MemoryBudgets, mobilenetv2_within_budget, random_within_budget
from edgenas.strategies.choice import Band
from edgenas.strategies.schedule import Stage


class Strategy:
    name: ClassVar[str]
    trains_supernet: ClassVar[bool] = False  # phases of supernet training (`phases`); else a network drawn at once

    def state_dict(self) -> dict:
        """What the strategy keeps in the run's checkpoint (at its top level)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Take back what `state_dict` gave (a checkpoint's other keys may come along: they are ignored)."""

    def trains_candidates(self, final_choice: str) -> bool:
        """Whether the final choice trains candidates from scratch (`--choice train`): epochs of the plan."""
        return final_choice == "train"

    def choice_made(self, final_choice: str) -> str | None:
        """How the derived network is chosen among candidates (strategies/choice.py's METHODS); None where there
        are none."""
        return final_choice


class SupernetStrategy(Strategy):
    """DA-NAS and its `full` ablation: phases of supernet training, then the final choice among candidates."""

    trains_supernet = True

    def __init__(self) -> None:
        self.class_order: list[int] | None = None  # easiest first: from the probe, or given (--class-order)

    def state_dict(self) -> dict:
        return {} if self.class_order is None else {"class_order": self.class_order}

    def load_state_dict(self, state: dict) -> None:
        self.class_order = state.get("class_order")

    def phases(self, stages: list[Stage], probe_epochs: int, epochs: int | None,
               warmup_epochs: int) -> list[danas.Phase]:
        return danas.plan(self.name, stages, probe_epochs, epochs, warmup_epochs)

    def classes(self, phase: danas.Phase, num_classes: int, unordered: Callable[[], list[int]]) -> list[int]:
        """The classes `phase` trains on; `unordered()` gives the order to use where no probe made one."""
        if phase.fraction >= 1.0 or self.class_order is None:
            return list(range(num_classes))
        return danas.admitted(self.class_order, phase.fraction)


class DANAS(SupernetStrategy):
    name = "danas"

    def classes(self, phase: danas.Phase, num_classes: int, unordered: Callable[[], list[int]]) -> list[int]:
        if self.class_order is None and phase.name != "probe":
            self.class_order = unordered()
        return super().classes(phase, num_classes, unordered)


class Full(SupernetStrategy):
    name = "full"


class Baseline(Strategy):
    """A network drawn within the budgets without a supernet."""

    def draw(self, space: Space, num_classes: int, limits: Band, flops_budget: float, ms_budget: float | None,
             table: LatencyTable | None, generator: torch.Generator, memory: MemoryBudgets | None = None) -> Arch:
        """`memory`: the model size and peak memory budgets, where given (`limits` holds them for this space)."""
        raise NotImplementedError


class Random(Baseline):
    """One uniform draw within the band, or with `--choice train` the best trained of several."""

    name = "random"

    def choice_made(self, final_choice: str) -> str | None:
        return final_choice if final_choice == "train" else None

    def draw(self, space, num_classes, limits, flops_budget, ms_budget, table, generator, memory=None) -> Arch:
        return random_within_budget(limits, space, num_classes, generator)


class MobileNetV2(Baseline):
    """MobileNetV2 width-scaled to the budgets: nothing to choose."""

    name = "mobilenetv2"

    def trains_candidates(self, final_choice: str) -> bool:
        return False

    def choice_made(self, final_choice: str) -> str | None:
        return None

    def draw(self, space, num_classes, limits, flops_budget, ms_budget, table, generator, memory=None) -> Arch:
        return mobilenetv2_within_budget(space.name, space.resolution, num_classes, flops_budget, ms_budget, table,
                                         memory)


STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in (DANAS, Full, Random, MobileNetV2)}


def get_strategy(name: str) -> Strategy:
    """A new strategy object of `--strategy name` (checked by SearchSettings.validate)."""
    return STRATEGIES[name]()
