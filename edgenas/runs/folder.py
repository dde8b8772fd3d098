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

from edgenas.errors import EdgeNASError
from edgenas.files import atomic_write_bytes, atomic_write_text, make_folder, read_json, write_json

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
        make_folder(path)  # with its missing parents, as mkdir -p does
        run = cls(path)
        write_json(run.file("config.json"), {"format": RUN_FORMAT, **config})
        return run

    @classmethod
    def open(cls, path: str | os.PathLike, writer: bool = True) -> Run:
        run = cls(path, writer)
        if not run.path.is_dir():
            raise EdgeNASError(f"run folder {run.path} does not exist")
        source = run.file("config.json")
        config = read_json(source, "run config")
        if not isinstance(config, dict):
            raise EdgeNASError(f"run config {source}: expected a JSON object with 'format' and 'settings'")
        if config.get("format") != RUN_FORMAT:
            raise EdgeNASError(f"run config {source}: 'format' is {config.get('format')!r}; expected {RUN_FORMAT} "
                               "(this run was written by another version of edgenas)")
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

    def need_retrained(self, alternative: str = "") -> None:
        """Refuse a run without retrained weights (`model.pt`: its search or retraining has not finished) in one line
        that says how to finish it, as `edgenas eval` and `edgenas export` do; `alternative` ends that line."""
        if not self.has("model.pt"):
            raise EdgeNASError(f"run {self.path} has no retrained weights (model.pt); finish it with "
                               f"`edgenas search --resume {self.path}` (or, if it ran with --retrain-epochs 0, "
                               f"`edgenas train {self.path}`){alternative}")

    # history: rewritten whole (atomically) so that a resumed run never holds lines of a lost epoch
    def history(self) -> list[dict]:
        if not self.has("history.jsonl"):
            return []
        path = self.file("history.jsonl")
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise EdgeNASError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        rows = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EdgeNASError(f"{path} line {number} is not valid JSON ({exc.msg}); expected one JSON object "
                                   "per epoch") from None
            if not isinstance(row, dict):
                raise EdgeNASError(f"{path} line {number} is {type(row).__name__}; expected a JSON object")
            rows.append(row)
        return rows

    def set_history(self, rows: list[dict]) -> None:
        if not self.writer:
            return
        atomic_write_text(self.file("history.jsonl"), "".join(json.dumps(row) + "\n" for row in rows))

    # checkpoints
    def save_checkpoint(self, state: dict, name: str = "checkpoint.pt") -> None:
        """Write `state` so that a kill at any instant leaves a checkpoint that loads (the new or the previous one).

        Order: the previous copy's checksum first, then the rename of the current file to the previous copy, then
        the new checksum, then the new file; each step is atomic, and every state in between has one pair of file
        and checksum that match.
        """
        if not self.writer:
            return
        data = _serialise(state)
        target = self.file(name)
        previous = target.with_suffix(".prev.pt")
        digest = _digest_of(target)
        if digest is not None:
            atomic_write_text(_checksum_path(previous), digest + "\n")
            _replace(target, previous)
        atomic_write_text(_checksum_path(target), hashlib.sha256(data).hexdigest() + "\n")
        atomic_write_bytes(target, data)

    def load_checkpoint(self, name: str = "checkpoint.pt", warn=None) -> dict | None:
        """The newest intact checkpoint, the previous one if the newest is damaged, or None if there is none.

        `warn` (a callable taking one line) is told when the newest checkpoint is damaged and the previous is used.
        """
        target = self.file(name)
        previous = target.with_suffix(".prev.pt")
        if not target.exists() and not previous.exists():
            return None
        problem = f"{target} is missing"
        if target.is_file():
            state, problem = _verified(target)
            if state is not None:
                return state
        if previous.is_file():
            state, problem_prev = _verified(previous)
            if state is not None:
                # A missing newest checkpoint is the designed outcome of a stop while saving: no warning then.
                if warn is not None and target.is_file():
                    warn(f"warning: checkpoint {problem}; resuming from the previous checkpoint {previous.name}")
                return state
            problem = f"{problem}, and {problem_prev}"
        raise EdgeNASError(f"no usable checkpoint in {self.path}: {problem}; the run cannot resume")

    def damaged_checkpoint(self, name: str = "checkpoint.pt") -> bool:
        target = self.file(name)
        return target.is_file() and _verified(target)[0] is None


def _checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _serialise(state: dict) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _digest_of(path: Path) -> str | None:
    """The checksum of a checkpoint whose file and checksum agree (without loading it); None otherwise."""
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        expected = _checksum_path(path).read_text().strip()
    except OSError:
        return None
    return digest if digest == expected else None


def _verified(path: Path) -> tuple[dict | None, str]:
    """Load a checkpoint whose checksum matches: (state, "") or (None, what is wrong with it)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"{path} cannot be read ({exc.strerror or exc})"
    try:
        expected = _checksum_path(path).read_text().strip()
    except OSError:
        return None, f"{path} has no checksum file {_checksum_path(path).name}"
    if hashlib.sha256(data).hexdigest() != expected:
        return None, f"{path} is damaged (truncated or altered: its SHA-256 does not match {_checksum_path(path).name})"
    try:
        state = load_weights(io.BytesIO(data), str(path))
    except EdgeNASError as exc:
        return None, str(exc)
    if not isinstance(state, dict):
        return None, f"{path} holds {type(state).__name__}; expected a checkpoint dictionary"
    return state, ""


def _replace(source: Path, target: Path) -> None:
    try:
        os.replace(source, target)
    except OSError as exc:
        raise EdgeNASError(f"cannot rename {source} to {target.name}: {exc.strerror or exc}; the checkpoint is "
                           "unchanged") from None


def load_weights(source, what: str) -> Any:
    """`torch.load` restricted to tensors and plain containers: a pickle that would run code is refused."""
    import pickle

    import torch

    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, AttributeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgeNASError(f"cannot load {what}: not a weights file edgenas can load safely ({first[:160]})") from None
