"""Comparing finished runs: one row of numbers per run, the Pareto front of accuracy against cost, and its plot.

A run is Pareto-optimal when no other run has at least its test accuracy at no more cost with one of the two
strictly better. Cost is FLOPs (fvcore, comparable across runs) or predicted latency; latencies are compared only
between runs predicted by the same table, since two tables describe two devices. Runs without a test accuracy
(not retrained) are listed but stay out of the fronts. Runs of different datasets are refused: their accuracies
come from different test sets. A run that was checked (`edgenas check`) brings its arms.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgenas.errors import EdgeNASError
from edgenas.files import atomic_write_bytes
from edgenas.report.check_plot import read_check
from edgenas.report.plots import new_figure, png, table_name
from edgenas.runs.record import load_run


@dataclass
class Comparison:
    rows: list[dict]
    plot: Path
    notes: list[str]  # what makes the comparison weaker: different spaces, runs without accuracy


def pareto(points: list[tuple[float, float]]) -> list[bool]:
    """For (cost, accuracy) points: whether each is on the front (lower cost and higher accuracy are better)."""
    return [not any(c <= cost and a >= acc and (c < cost or a > acc) for c, a in points) for cost, acc in points]


def compare_runs(paths: list[str | Path], out: str | Path = "compare.png") -> Comparison:
    """Read each finished run, mark the Pareto-optimal ones and write the scatter plot to `out` (PNG)."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise EdgeNASError(f"bad --out {out}: expected a .png file")
    if not paths:
        raise EdgeNASError("no runs to compare: give one or more run folders")
    records = [load_run(p) for p in with_check_arms(paths)]  # every run is checked before anything is written
    names = [r.name for r in records]
    datasets: dict[str, list[str]] = {}
    for record in records:
        datasets.setdefault(str(record.summary.dataset), []).append(str(record.path))
    if len(datasets) > 1:
        raise EdgeNASError("the runs are of different datasets (" + "; ".join(
            f"{name}: {', '.join(runs)}" for name, runs in datasets.items()) + "): test accuracies on different "
            "test sets share no Pareto front; compare the runs of one dataset at a time")
    rows = []
    for record, name in zip(records, names, strict=True):
        s = record.summary
        rows.append({"run": str(record.path), "name": name if names.count(name) == 1 else str(record.path),
                     "space": s.arch["space"], "dataset": s.dataset, "strategy": s.strategy,
                     "flops": s.flops, "params": s.params,
                     "predicted_latency_ms": s.predicted_latency_ms,
                     "latency_table": table_name(s.latency_table), "test_acc": s.test_acc,
                     "pareto_flops": None, "pareto_latency": None})
    scored = [r for r in rows if r["test_acc"] is not None]
    for row, optimal in zip(scored, pareto([(r["flops"], r["test_acc"]) for r in scored]), strict=True):
        row["pareto_flops"] = optimal
    for table in {r["latency_table"] for r in scored if r["predicted_latency_ms"] is not None}:
        group = [r for r in scored if r["latency_table"] == table and r["predicted_latency_ms"] is not None]
        for row, optimal in zip(group, pareto([(r["predicted_latency_ms"], r["test_acc"]) for r in group]),
                                strict=True):
            row["pareto_latency"] = optimal
    plot = atomic_write_bytes(out, png(_scatter(rows)))
    return Comparison(rows, plot, _notes(rows))


def with_check_arms(paths: list[str | Path]) -> list[Path]:
    """The runs given, each followed by the arms of its check (`edgenas check`), once each."""
    found: dict[Path, Path] = {}  # resolved -> as given
    for path in map(Path, paths):
        found.setdefault(path.resolve(), path)
        check = read_check(path)
        for arm in check["arms"][1:] if check is not None else []:
            found.setdefault(Path(arm["run"]).resolve(), Path(arm["run"]))
    return list(found.values())


def _notes(rows: list[dict]) -> list[str]:
    notes = []
    spaces = sorted({str(r["space"]) for r in rows})
    if len(spaces) > 1:
        notes.append(f"the runs use different search spaces ({', '.join(spaces)})")
    missing = [r["name"] for r in rows if r["test_acc"] is None]
    if missing:
        notes.append(f"no test accuracy (not retrained), left out of the Pareto fronts: {', '.join(missing)}")
    return notes


def _scatter(rows: list[dict]):
    with_latency = [r for r in rows if r["predicted_latency_ms"] is not None and r["test_acc"] is not None]
    figure, axes = new_figure(8, 5.2 if not with_latency else 9.6, rows=2 if with_latency else 1)
    _panel(axes[0], rows, "flops", "pareto_flops", "FLOPs (millions; fvcore, 1 multiply-add = 1 FLOP)", 1e-6)
    axes[0].set_title("Test accuracy against FLOPs (Pareto front: no other run is both cheaper and more accurate)",
                      fontsize=10)
    if with_latency:
        tables = sorted({r["latency_table"] for r in with_latency})
        for table, marker in zip(tables, "osD^v<>ph", strict=False):
            group = [r for r in with_latency if r["latency_table"] == table]
            _panel(axes[1], group, "predicted_latency_ms", "pareto_latency", "predicted latency (ms, batch 1)", 1.0,
                   marker=marker, suffix=f" (table {table})" if len(tables) > 1 else "")
        axes[1].set_title("Test accuracy against predicted latency (table " + ", ".join(tables) + ")", fontsize=10)
    return figure


def _panel(axes, rows: list[dict], key: str, front_key: str, label: str, scale: float, marker: str = "o",
           suffix: str = "") -> None:
    scored = [r for r in rows if r["test_acc"] is not None]
    front = sorted((r for r in scored if r[front_key]), key=lambda r: r[key])
    others = [r for r in scored if not r[front_key]]
    if front:
        # The front as a staircase: each optimal run is the best accuracy available up to the next one's cost.
        axes.step([r[key] * scale for r in front], [100 * r["test_acc"] for r in front], where="post",
                  color="tab:red", alpha=0.6, linewidth=1.2)
        axes.scatter([r[key] * scale for r in front], [100 * r["test_acc"] for r in front], color="tab:red",
                     marker=marker, s=55, zorder=3, label="Pareto-optimal" + suffix)
    if others:
        axes.scatter([r[key] * scale for r in others], [100 * r["test_acc"] for r in others], facecolor="white",
                     edgecolor="tab:gray", marker=marker, s=55, zorder=3, label="dominated" + suffix)
    for r in scored:
        axes.annotate(r["name"], (r[key] * scale, 100 * r["test_acc"]), textcoords="offset points", xytext=(6, 5),
                      fontsize=8)
    if not scored:
        axes.text(0.5, 0.5, "no run has a test accuracy (none was retrained)", ha="center", va="center",
                  transform=axes.transAxes)
    axes.set_xlabel(label)
    axes.set_ylabel("test accuracy (%, top-1)")
    axes.margins(x=0.15, y=0.15)
    axes.grid(alpha=0.3)
    if scored:
        axes.legend(fontsize=8, loc="best")
