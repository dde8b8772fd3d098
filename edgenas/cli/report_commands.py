"""Commands that present finished runs: `report` (a run's plots and HTML page) and `compare` (runs side by side,
with their Pareto fronts)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edgenas.cli.options import json_flag
from edgenas.cli.render import print_json, table_console, yes_no


def report(run: Annotated[Path, typer.Argument(help="A finished run folder.")],
           as_json: json_flag("Print the written paths as JSON.") = False):
    """Write a run's plots (RUN/plots/*.png) and RUN/report.html, which shows them with the run's summary."""
    from edgenas.report.html import write_report

    result = write_report(run)
    if as_json:
        print_json({"html": str(result.html), "plots": {k: str(v) for k, v in result.plots.items()}})
        return
    Console(soft_wrap=True, highlight=False).print(
        f"wrote {result.html} and {len(result.plots)} plots in {result.html.parent / 'plots'}: "
        f"{', '.join(p.name for p in result.plots.values())}")


def compare(
    runs: Annotated[list[Path], typer.Argument(help="Finished run folders.")],
    out: Annotated[Path, typer.Option(help="The accuracy-against-cost scatter plot to write (PNG).")] = Path(
        "compare.png"),
    as_json: json_flag("Print the numbers as JSON.") = False,
):
    """Compare runs: FLOPs, predicted latency, test accuracy and the Pareto front, as a table and a plot."""
    from edgenas.report.compare import compare_runs

    result = compare_runs(runs, out)
    if as_json:
        print_json({"runs": result.rows, "plot": str(result.plot), "notes": result.notes})
        Console(stderr=True, highlight=False).print(f"wrote {result.plot}")
        return
    latency = any(r["pareto_latency"] is not None for r in result.rows)
    grid = Table("run", "space", "FLOPs (M, fvcore)", "latency (ms, table)", "test acc. (%)", "Pareto (FLOPs)",
                 *(["Pareto (latency)"] if latency else []), title="runs compared",
                 caption="FLOPs: fvcore, 1 multiply-add = 1 FLOP, batch 1; latency: predicted by the run's table, "
                         "batch 1; test accuracy: top-1 on the test split; Pareto: no other run is at least as "
                         "accurate at no more cost (latency compared within one table)")
    for r in result.rows:
        ms = "-" if r["predicted_latency_ms"] is None else f"{r['predicted_latency_ms']:.3f} ({r['latency_table']})"
        cells = [r["name"], r["space"], f"{r['flops'] / 1e6:.3f}", ms,
                 "-" if r["test_acc"] is None else f"{100 * r['test_acc']:.2f}", yes_no(r["pareto_flops"])]
        grid.add_row(*cells, *([yes_no(r["pareto_latency"])] if latency else []))
    console = table_console()
    console.print(grid)
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(f"wrote {result.plot}")


COMMANDS = {"report": report, "compare": compare}
