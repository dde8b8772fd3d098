"""Progress of long work (profiling, searching, retraining, exporting): a rich bar on a terminal, plain lines or
silence elsewhere, and the time it has left.

A bar is drawn only when asked for, when stderr is a terminal and when `CI` is not set: piped output and CI logs
get no control characters. Without a bar, `echo` receives plain lines instead (the CLI's default off a terminal,
and its `--verbose`): one per step, or with `every` at most one per that many seconds (and the last step's); with
`eta`, each line ends with the time this count has left at the rate of its steps so far (a bar shows its own).

A search's work is of several kinds at several speeds (supernet epochs, short trainings, retraining): `Clock`
estimates its time left from a plan of every epoch, each kind at its own measured rate.
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass


def silent(*args, **kwargs) -> None:
    """A printer that prints nothing: the `log` of a quiet caller or of a rank other than 0."""


def wanted(requested: bool = True) -> bool:
    """Whether to draw a bar: requested, on a terminal, and not under CI (CI=true or 1)."""
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        return False
    return requested and sys.stderr.isatty()


def duration(seconds: float) -> str:
    """A time left as the progress lines say it: `45 s`, `12 min`, `1 h 5 min`."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds // 3600:.0f} h {seconds % 3600 / 60:.0f} min"


class Bar:
    """Steps done out of a total, with a label and the latest metrics."""

    def __init__(self, enabled: bool, echo: Callable[[str], None] | None = None, every: float = 0.0,
                 on_step: Callable[[], None] | None = None, eta: bool = False,
                 now: Callable[[], float] = time.monotonic):
        self.enabled = enabled
        self.echo = echo
        self.every = every  # seconds between plain lines at least (0: a line per step)
        self.on_step = on_step  # called after each step, bar or not (the search's time estimate)
        self.eta = eta  # plain lines say the time this count has left
        self.now = now
        self.echoed: float | None = None  # when the last plain line was printed
        self.first: tuple[float, int] | None = None  # (when, steps measured) at this count's first measured step
        self.measured = 0  # steps of this count that the time left is estimated from
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
        self.total, self.done, self.label, self.first, self.measured = total, 0, label or self.label, None, 0
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

    def step(self, metrics: str = "", advance: int = 1, measured: bool = True) -> None:
        """`advance` steps done; `measured` False for steps of another kind than most of the count (a profile's
        preparation) or that took no time (timings read from a journal), which the time left is not estimated from."""
        self.done += advance
        now = self.now()
        if measured:
            self.measured += advance
            if self.first is None:
                self.first = (now, self.measured)
        if self.bar is not None:
            self.bar.update(self.task, advance=advance, metrics=metrics)
        elif self.echo is not None and (self.echoed is None or now - self.echoed >= self.every
                                        or self.done >= self.total):
            self.echoed = now
            self.echo(f"{self.label} [{self.done}/{self.total}]" + (f" {metrics}" if metrics else "")
                      + self._left(now))
        if self.on_step is not None:
            self.on_step()

    def _left(self, now: float) -> str:
        """`, about 2 min left` at the rate of this count's measured steps after its first (whose time holds one-time
        costs: sessions built, caches filled), or nothing before a second one or after the last step."""
        if not self.eta or self.first is None or self.measured <= self.first[1] or self.done >= self.total:
            return ""
        seconds = (now - self.first[0]) / (self.measured - self.first[1]) * (self.total - self.done)
        return f", about {duration(seconds)} left"


@dataclass(frozen=True)
class Work:
    """One epoch of a plan: its phase, its kind (the epochs that share one measured rate), its image-steps (as the
    run counts them), its training steps, and the cost of one image-step relative to other kinds' (the FLOPs per
    image of the networks it trains), by which a kind not measured yet is estimated from one that was."""

    phase: str
    kind: str
    images: int
    steps: int
    cost: float = 1.0


class Clock:
    """The time a run has left, from `plan` (every epoch of the run in order; `done` of them done before this
    process) and the wall clock of its training steps: `tick()` after each step, `step()` after each epoch.

    Each kind of work is estimated at its own rate, measured on its steps after its first: the first step of a kind
    in a process (and of the process) also holds one-time costs (building networks and optimisers, first calls)
    that its other steps do not. Until a kind is measured, its rate is `prior`'s (kind -> seconds and units of
    cost timed beforehand, `prior_how` says how), or else the rate per unit of cost of the kind measured last. The
    time between steps (checkpoints, pruning, evaluations) counts towards the next step. Said at the end of the
    first epoch after which a rate is known, then again at the end of the first epoch of each kind measured since
    (its own rate replacing an assumed one).
    """

    def __init__(self, plan: list[Work], done: int, log: Callable[[str], None],
                 now: Callable[[], float] = time.perf_counter, prior: dict[str, tuple[float, float]] | None = None,
                 prior_how: str = ""):
        self.plan, self.next, self.log, self.now = plan, done, log, now
        self.prior, self.prior_how = prior or {}, prior_how
        self.last = now()
        self.started: set[str] = set()  # kinds whose first step was seen (and left out)
        self.measured: dict[str, list[float]] = {}  # kind -> [seconds, units of cost] of its later steps
        self.latest: str | None = None  # the kind measured last
        self.told: set[str] | None = None  # the kinds measured when an estimate was last said

    def replan(self, plan: list[Work]) -> None:
        """The plan again, once the run knows more (the class order, the candidates); epochs done stay done."""
        self.plan = plan

    def tick(self) -> None:
        now = self.now()
        seconds, self.last = now - self.last, now
        if self.next >= len(self.plan):
            return
        work = self.plan[self.next]
        if work.kind not in self.started:
            self.started.add(work.kind)
            return
        measured = self.measured.setdefault(work.kind, [0.0, 0.0])
        measured[0] += seconds
        measured[1] += work.images * work.cost / max(1, work.steps)
        self.latest = work.kind

    def step(self) -> None:
        self.next += 1
        if self.next >= len(self.plan) or not self.measured:
            return
        if self.told is None or set(self.measured) - self.told:
            self.log(self.describe("estimate" if self.told is None else "estimate updated"))
            self.told = set(self.measured)

    def rates(self, measured: bool = False) -> dict[str, float]:
        """Seconds per unit of cost, by kind measured (and, unless `measured`, by kind of the prior)."""
        both = self.measured if measured else {**self.prior, **self.measured}
        return {kind: seconds / units for kind, (seconds, units) in both.items() if units > 0}

    def left(self) -> float:
        """Seconds the epochs not done yet should take."""
        rates = self.rates()
        fallback = rates.get(self.latest, 0.0)
        return sum(work.images * work.cost * rates.get(work.kind, fallback) for work in self.plan[self.next:])

    def describe(self, what: str) -> str:
        seconds = self.left()
        finish = datetime.datetime.now() + datetime.timedelta(seconds=seconds)
        costs = {}  # kind -> (image-steps, units of cost) of the whole plan: ms per image-step at its mean cost
        for work in self.plan:
            images, units = costs.get(work.kind, (0, 0.0))
            costs[work.kind] = (images + work.images, units + work.images * work.cost)

        def speeds(rates: dict[str, float]) -> str:
            kinds: dict[str, list[str]] = {}  # kinds of one speed said together
            for kind, rate in rates.items():
                if kind in costs:
                    kinds.setdefault(f"{1000 * rate * costs[kind][1] / max(1, costs[kind][0]):.2f} ms", []).append(kind)
            return ", ".join(f"{' and '.join(names)} {speed}" for speed, names in kinds.items()) + " per image-step"

        measured, left = self.rates(measured=True), [work.kind for work in self.plan[self.next:]]
        prior = {kind: rate for kind, rate in self.rates().items() if kind not in measured and kind in left}
        assumed = sorted(set(left) - set(measured) - set(prior), key=list(costs).index)
        notes = "".join([f"; {speeds(prior)} {self.prior_how}" if prior else "",
                         f"; {', '.join(assumed)} assumed at the {self.latest}'s speed per FLOP" if assumed else ""])
        return (f"{what}: about {duration(seconds)} left (done around {finish:%H:%M}), from the wall clock of the "
                f"steps run so far, each kind's first step left out ({speeds(measured)}{notes})")
