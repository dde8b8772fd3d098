"""A finished run: `SearchResult` (its folder, summary and report), and the finishing of a run or of a retraining of
`edgenas train` (summary.json, the staged retraining moved into the run, the chance-level warning, the report)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgenas.runs.checkpoint import Checkpoint
from edgenas.runs.folder import Run
from edgenas.searching.job import Job
from edgenas.searching.staging import move_retraining
from edgenas.searching.summary import summary
from edgenas.space.arch import Arch, from_dict
from edgenas.training.train import chance_warning


@dataclass
class SearchResult:
    """A finished run: its folder and the summary `edgenas search` prints (units in the key names)."""

    run: Path
    summary: dict = field(default_factory=dict)
    report: Path | None = None  # RUN/report.html; None with --no-report or when drawing it failed (the run is complete)

    @property
    def arch(self) -> Arch:
        return from_dict(self.summary["arch"])

    @property
    def flops(self) -> int:
        return self.summary["flops"]

    @property
    def predicted_latency_ms(self) -> float | None:
        return self.summary["predicted_latency_ms"]

    @property
    def test_acc(self) -> float | None:
        return self.summary["test_acc"]


def finished(run: Run) -> SearchResult:
    """A run whose summary is written, as it is."""
    report = run.file("report.html")
    return SearchResult(run.path, run.read("summary.json", "run summary"), report if report.is_file() else None)


def finish(job: Job, arch: Arch, checkpoint: Checkpoint) -> SearchResult:
    """summary.json (for `edgenas train`, written with the new retraining, then moved into the run with it),
    the chance-level warning and the report."""
    context = job.context
    written = summary(job, arch, checkpoint)
    written["flops_budget_default"] = context.budgets.flops_default
    job.run.write("summary.json", written)
    if job.staged:
        move_retraining(job.run, context.run)
    epochs = checkpoint.retraining.epochs
    warning = None if written["test_acc"] is None else chance_warning(
        written["test_acc"], context.num_classes, context.data.size("test"), str(context.run.path),
        job.settings.retrain_epochs if epochs is None else epochs)
    if warning:
        context.log(warning)
    drawn = context.run.writer and job.settings.report
    return SearchResult(context.run.path, written, _report(job) if drawn else None)


def _report(job: Job) -> Path | None:
    """Plots and report.html. The run is complete once summary.json is written, so a failure here is reported
    and costs only the report, which `edgenas report RUN` can write again."""
    from edgenas.report.html import write_report

    run = job.context.run
    try:
        return write_report(run.path).html
    except Exception as exc:  # any failure: a plotting bug must not turn a finished search into an error
        job.context.log(f"warning: the report was not written ({type(exc).__name__}: {exc}); the run is complete; "
                        f"retry with `edgenas report {run.path}`")
        return None
