"""Progress of long work (profiling, searching, retraining): a rich bar on a terminal, plain lines or silence elsewhere.

A bar is drawn only when asked for, when stderr is a terminal and when `CI` is not set: piped output and CI logs
get no control characters. Without a bar, `echo` (the CLI's `--verbose`) receives one plain line per step.
"""

from __future__ import annotations

import os
import sys
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

    def __init__(self, enabled: bool, echo: Callable[[str], None] | None = None):
        self.enabled = enabled
        self.echo = echo
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
            self.echo(f"{self.label} [{self.done}/{self.total}]" + (f" {metrics}" if metrics else ""))
