"""Run directories: config, history, checkpoints and results of one search, written atomically; safe loading.

A checkpoint is written to `checkpoint.pt` through a temporary file with a SHA-256 checksum beside it; the previous
good checkpoint is kept as `checkpoint.prev.pt`. Loading uses `torch.load(..., weights_only=True)` (no arbitrary
unpickling), checks the checksum, and falls back to the previous checkpoint when the newest is damaged.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

from .errors import EdgeNASError
from .files import atomic_write_bytes, atomic_write_text, read_json, write_json

RUN_FORMAT = 1
FILES = ("config.json", "class_order.json", "history.jsonl", "checkpoint.pt", "arch.json", "model.pt",
         "summary.json")


class Run:
    """The folder of one search: `runs/NAME/`. A run opened with `writer=False` (ranks other than 0 of a
    distributed search) reads it but never writes to it."""

    def __init__(self, path: str | os.PathLike, writer: bool = True):
        self.path = Path(path)
        self.writer = writer

    @classmethod
    def create(cls, path: str | os.PathLike, config: dict) -> Run:
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            raise EdgeNASError(f"run folder {path} already exists and is not empty; use --resume {path} to continue "
                               "it, or choose another --out")
        if not path.parent.is_dir():
            raise EdgeNASError(f"cannot create run folder {path}: folder {path.parent} does not exist")
        path.mkdir(exist_ok=True)
        run = cls(path)
        write_json(run.file("config.json"), {"format": RUN_FORMAT, **config})
        return run

    @classmethod
    def open(cls, path: str | os.PathLike, writer: bool = True) -> Run:
        run = cls(path, writer)
        if not run.path.is_dir():
            raise EdgeNASError(f"run folder {run.path} does not exist")
        config = read_json(run.file("config.json"), "run config")
        if not isinstance(config, dict) or config.get("format") != RUN_FORMAT:
            found = config.get("format") if isinstance(config, dict) else None
            raise EdgeNASError(f"run {run.path} has format {found!r}; this edgenas reads format {RUN_FORMAT}")
        return run

    def file(self, name: str) -> Path:
        return self.path / name

    def config(self) -> dict:
        return read_json(self.file("config.json"), "run config")

    def write(self, name: str, data: Any) -> Path:
        if self.writer:
            write_json(self.file(name), data)
        return self.file(name)

    def read(self, name: str, what: str | None = None) -> Any:
        return read_json(self.file(name), what or name)

    def has(self, name: str) -> bool:
        return self.file(name).is_file()

    # history: rewritten whole (atomically) so that a resumed run never holds lines of a lost epoch
    def history(self) -> list[dict]:
        if not self.has("history.jsonl"):
            return []
        return [json.loads(line) for line in self.file("history.jsonl").read_text().splitlines() if line.strip()]

    def set_history(self, rows: list[dict]) -> None:
        if not self.writer:
            return
        atomic_write_text(self.file("history.jsonl"), "".join(json.dumps(row) + "\n" for row in rows))

    # checkpoints
    def save_checkpoint(self, state: dict, name: str = "checkpoint.pt") -> None:
        if not self.writer:
            return
        data = _serialise(state)
        target = self.file(name)
        previous = target.with_suffix(".prev.pt")
        if target.is_file() and _verified(target) is not None:
            os.replace(target, previous)
            os.replace(_checksum_path(target), _checksum_path(previous))
        atomic_write_text(_checksum_path(target), hashlib.sha256(data).hexdigest() + "\n")
        atomic_write_bytes(target, data)

    def load_checkpoint(self, name: str = "checkpoint.pt") -> dict | None:
        """The newest intact checkpoint, the previous one if the newest is damaged, or None if there is none."""
        target = self.file(name)
        if not target.exists() and not target.with_suffix(".prev.pt").exists():
            return None
        for candidate in (target, target.with_suffix(".prev.pt")):
            if candidate.is_file():
                state = _verified(candidate)
                if state is not None:
                    return state
        raise EdgeNASError(f"checkpoint {target} and its previous copy are damaged (checksum or load failure); "
                           "the run cannot resume")

    def damaged_checkpoint(self, name: str = "checkpoint.pt") -> bool:
        target = self.file(name)
        return target.is_file() and _verified(target) is None


def _checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _serialise(state: dict) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _verified(path: Path) -> dict | None:
    """Load a checkpoint whose checksum matches; None when it is truncated, altered or unloadable."""
    try:
        data = path.read_bytes()
        expected = _checksum_path(path).read_text().strip()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != expected:
        return None
    try:
        return load_weights(io.BytesIO(data), str(path))
    except EdgeNASError:
        return None


def load_weights(source, what: str) -> Any:
    """`torch.load` restricted to tensors and plain containers: a pickle that would run code is refused."""
    import pickle

    import torch

    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, AttributeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgeNASError(f"cannot load {what}: not a weights file edgenas can load safely ({first[:160]})") from None
