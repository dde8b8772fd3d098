"""A search run's checkpoint (RUN/checkpoint.pt): where the run stands, as one typed `Checkpoint`.

On disk it stays the plain dictionary that earlier versions wrote, key for key (`to_dict` / `from_dict`), so that a
run stopped by an earlier edgenas resumes with this one; a key the dictionary lacks is a field left at None (or at
its start), and `to_dict` leaves out what is None, as the dictionary never held it. `Run.save_checkpoint` and
`Run.load_checkpoint` (runs/folder.py) write and read it safely.

It lives with the run, not the search: the report reads a finished run's last architecture probabilities from it,
and the report must not import the search.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from edgenas.runs.folder import Run
from edgenas.strategies.choice import Candidate

# The keys of the supernet's phase loop, of the final choice and of the run's results that the file holds at its
# top level; any other key is the strategy's own state (`Strategy.state_dict()`: DA-NAS's class order).
_LOOP = ("phase", "epoch", "arch_steps", "supernet", "weight_opt", "arch_opt", "scheduler")
_RESULTS = ("arch", "inherited_val_acc", "schedule_scale", "full_data_epochs", "final_probs")
_RUN = ("torch_rng", "generator", "history_rows", "images", "search_seconds", "choice", "retrain")


@dataclass
class PhaseLoop:
    """Where the phase loop of a supernet strategy (DA-NAS, full) stands: written from its first epoch on; the
    supernet's weights and optimisers only until the search ends."""

    phase: int = 0  # the index of the phase under way (the number of phases once the search is over)
    epoch: int = 0  # its epochs done
    arch_steps: int = 0  # architecture steps taken, over every phase
    supernet: dict | None = None
    weight_opt: dict | None = None
    arch_opt: dict | None = None
    scheduler: dict | None = None  # the weights' cosine, from the first scheduled phase on

    def drop_weights(self) -> None:
        self.supernet = self.weight_opt = self.arch_opt = self.scheduler = None


@dataclass
class SavedChoice:
    """The final choice's candidates, kept so that a resumed choice scores the same ones (copies: the choice marks
    its own as it scores them)."""

    found: list[Candidate]
    floors: list[float]
    notices: list[str]

    @classmethod
    def of(cls, found: list[Candidate], floors: list[float], notices: list[str]) -> SavedChoice:
        return cls([dataclasses.replace(c) for c in found], list(floors), list(notices))

    def candidates(self) -> list[Candidate]:
        return [dataclasses.replace(c) for c in self.found]

    def to_dict(self) -> dict:
        return {"found": [c.to_dict() for c in self.found], "floors": list(self.floors),
                "notices": list(self.notices)}

    @classmethod
    def from_dict(cls, data: dict) -> SavedChoice:
        return cls([Candidate(**c) for c in data["found"]], data["floors"], data["notices"])


@dataclass
class Retraining:
    """The retraining of the derived network: planned (`total` only), under way (`epoch` kept, with its weights
    and optimiser), or `done` (its epochs, time and accuracies)."""

    total: int | None = None  # epochs planned; None once done, or in runs that never stored it (the settings say)
    epoch: int = 0  # epochs kept
    model: dict | None = None
    optimizer: dict | None = None
    scheduler: dict | None = None
    seconds: float | None = None
    done: bool = False
    epochs: int | None = None  # epochs trained, once done
    val_acc: float | None = None
    test_acc: float | None = None

    def planned(self, default: int) -> int:
        """The epochs planned, `default` (the run's --retrain-epochs) where none is stored."""
        return default if self.total is None else self.total

    def to_dict(self) -> dict:
        if self.done:  # the seconds too when None: no retraining (--retrain-epochs 0) took none
            return {"done": True, "epochs": self.epochs, "seconds": self.seconds,
                    **_present({"val_acc": self.val_acc, "test_acc": self.test_acc})}
        under_way = {} if self.model is None else {
            "epoch": self.epoch, "model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler,
            "seconds": self.seconds}
        return _present({"total": self.total, **under_way})

    @classmethod
    def from_dict(cls, data: dict) -> Retraining:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Checkpoint:
    """Where a search run stands: its random generators' states and history rows (what a resume starts from), the
    phase loop, the final choice, the derived architecture (the search is over once it is set) and the
    retraining."""

    torch_rng: Any = None  # torch's global generator state (a uint8 tensor)
    generator: Any = None  # the run's own generator's state
    history_rows: int = 0  # rows of history.jsonl that this checkpoint covers: a resume drops the rows after
    images: int | None = None  # image-steps of search so far (None: none counted yet)
    search_seconds: float | None = None
    strategy: dict = field(default_factory=dict)  # the strategy's own state (`Strategy.state_dict()`)
    loop: PhaseLoop | None = None
    choice: SavedChoice | None = None
    arch: dict | None = None  # the derived architecture (`Arch.to_dict()`)
    inherited_val_acc: float | None = None  # written with the search's `arch`, None where no supernet gave weights
    schedule_scale: float | None = None
    full_data_epochs: float | None = None
    final_probs: list | None = None
    retrain: Retraining | None = None

    @property
    def searched(self) -> bool:
        return self.arch is not None

    @property
    def retraining(self) -> Retraining:
        return self.retrain if self.retrain is not None else Retraining()

    def to_dict(self) -> dict:
        """The dictionary of checkpoint.pt, as earlier versions wrote it."""
        run = _present({"torch_rng": self.torch_rng, "generator": self.generator, "history_rows": self.history_rows,
                        "images": self.images, "search_seconds": self.search_seconds,
                        "choice": None if self.choice is None else self.choice.to_dict(),
                        "retrain": None if self.retrain is None else self.retrain.to_dict()})
        loop = {} if self.loop is None else _present({k: getattr(self.loop, k) for k in _LOOP})  # not copied
        results = _present({"arch": self.arch, "schedule_scale": self.schedule_scale,
                            "full_data_epochs": self.full_data_epochs, "final_probs": self.final_probs})
        # Written even when None (a baseline's) as part of the search's result; a retraining's own checkpoint
        # (`edgenas train`), without the search's time, holds the architecture alone.
        if self.arch is not None and self.search_seconds is not None:
            results["inherited_val_acc"] = self.inherited_val_acc
        return {**self.strategy, **loop, **run, **results}

    @classmethod
    def from_dict(cls, data: dict) -> Checkpoint:
        loop = PhaseLoop(**{k: data[k] for k in _LOOP if k in data}) if "phase" in data else None
        known = {k: data[k] for k in (*_RUN, *_RESULTS) if k in data}
        choice, retrain = known.pop("choice", None), known.pop("retrain", None)
        return cls(**known, loop=loop, strategy={k: v for k, v in data.items() if k not in (*_LOOP, *_RUN, *_RESULTS)},
                   choice=None if choice is None else SavedChoice.from_dict(choice),
                   retrain=None if retrain is None else Retraining.from_dict(retrain))

    def merged(self, newer: Checkpoint) -> Checkpoint:
        """This checkpoint with every key that `newer` holds taken from `newer` (a retraining's checkpoint over the
        search's)."""
        return Checkpoint.from_dict({**self.to_dict(), **newer.to_dict()})


def _present(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def load_checkpoint(run: Run, warn=None) -> Checkpoint | None:
    """The run's newest intact checkpoint (`Run.load_checkpoint`), typed; None if it has none."""
    data = run.load_checkpoint(warn=warn)
    return None if data is None else Checkpoint.from_dict(data)


def save_checkpoint(run: Run, checkpoint: Checkpoint) -> None:
    run.save_checkpoint(checkpoint.to_dict())
