"""Progress of long work (profiling, searching, retraining): a rich bar on a terminal, plain lines or silence elsewhere.

A bar is drawn only when asked for, when stderr is a terminal and when `CI` is not set: piped output and CI logs
get no control characters. Without a bar, `echo` receives plain lines instead (the CLI's default off a terminal,
and its `--verbose`): one per step, or with `every` at most one per that many seconds (and the last step's).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable


def silent(*args, **kwargs) -> None:
    """A printer that prints nothing: the `log` of a quiet caller or of a rank other than 0."""


def wanted(requested: bool = True) -> bool:
    """Whether to draw a bar: requested, on a terminal, and not under CI (CI=true or 1)."""
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        return False
    return requested and sys.stderr.isatty()


class Bar:
    """Steps done out of a total, with a label and the latest metrics."""

    def __init__(self, enabled: bool, echo: Callable[[str], None] | None = None, every: float = 0.0,
                 on_step: Callable[[], None] | None = None):
        self.enabled = enabled
        self.echo = echo
        self.every = every  # seconds between plain lines at least (0: a line per step)
        self.on_step = on_step  # called after each step, bar or not (the search's time estimate)
        self.echoed: float | None = None  # when the last plain line was printed
        self.bar = None
        self.task = None
        self.label = ""
        self.done = 0
        self.total = 0

    def __enter__(self) -> Bar:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), TextColumn("{task.fields[metrics]}"))
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def begin(self, total: int, label: str = "", again: bool = False) -> None:
        """Start counting to `total` (once; `again` starts a second count, such as retraining after a search)."""
        if self.task is not None and not again:
            return
        self.total, self.done, self.label = total, 0, label or self.label
        self.task = self.bar.add_task(self.label, total=total, metrics="") if self.bar is not None else 0

    def skip(self, done: int) -> None:
        """Steps already done by an earlier, resumed, process."""
        self.done += done
        if self.bar is not None and done:
            self.bar.advance(self.task, done)

    def describe(self, label: str) -> None:
        self.label = label
        if self.bar is not None:
            self.bar.update(self.task, description=label)

    def step(self, metrics: str = "", advance: int = 1) -> None:
        self.done += advance
        if self.bar is not None:
            self.bar.update(self.task, advance=advance, metrics=metrics)
        elif self.echo is not None:
            now = time.monotonic()
            if self.echoed is None or now - self.echoed >= self.every or self.done >= self.total:
                self.echoed = now
                self.echo(f"{self.label} [{self.done}/{self.total}]" + (f" {metrics}" if metrics else ""))
        if self.on_step is not None:
            self.on_step()
