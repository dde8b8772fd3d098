"""Rendering for the command line: results as rich tables, plain lines or JSON on standard output, and progress and
notices on standard error as --quiet, --verbose and --json ask. Printing never recomputes: each printer takes a
result the library returned.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgenas.errors import EdgeNASError
from edgenas.runs.summary import RunSummary
from edgenas.units import format_bytes, format_flops, format_params

FLOPS_HOW = "fvcore, 1 multiply-add = 1 FLOP, batch norm folded, batch 1"
MEMORY_HOW = "docs/COSTS.md"


def table_console(*renderables) -> Console:
    """Standard output for rich tables: a terminal's own width; elsewhere (a log, a pipe, `make demo`) $COLUMNS, or
    200 columns or as many as `renderables` need whole, since rich would assume 80 and cut cells short ("x86-2…")."""
    import os

    width = None
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        wide = Console(width=10000)
        width = max([200] + [wide.measure(r).maximum for r in renderables if not isinstance(r, str)])
    return Console(soft_wrap=True, highlight=False, width=width)


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def output(quiet: bool, verbose: bool, as_json: bool):
    """(progress bar wanted, notice printer, progress line printer) for --quiet, --verbose and --json.

    A bar is drawn on a terminal only; elsewhere (a log, a pipe, CI) progress comes as plain lines on stderr, so
    that long work shows signs of life. --quiet silences both; --verbose asks for lines on a terminal too."""
    from edgenas.progress import silent, wanted

    console = Console(stderr=True, soft_wrap=True, highlight=False)
    if quiet and verbose:
        raise EdgeNASError("--quiet and --verbose together: choose one")
    bar = wanted(not (quiet or as_json or verbose))
    # Progress lines carry metrics such as `E[FLOPs]`: printed as they are, not read as rich markup.
    lines = None if quiet or bar else (lambda line: console.print(line, markup=False))
    return bar, silent if quiet else console.print, lines


def print_run(result, as_json: bool) -> None:
    """A finished run as `search` and `train` print it: the summary table and the report's path, or JSON."""
    report = None if result.report is None else str(result.report)
    if as_json:
        print_json({"run": str(result.run), **result.summary, "report": report})
        return
    print_summary(result.run, RunSummary.from_dict(result.summary))
    if report is not None:
        Console(soft_wrap=True, highlight=False).print(f"report: {report}")


def print_summary(run: Path, summary: RunSummary) -> None:
    console = table_console()
    grid = Table("", "value", "how it was obtained", title=f"run {run}")
    arch = summary.arch
    grid.add_row("architecture", " ".join(arch["layers"]),
                 f"{arch['space']} at {arch['resolution']}x{arch['resolution']}, width {arch['width_mult']}")
    default = summary.flops_budget_default
    budget = f"default budget {format_flops(summary.flops_budget)}: {default}" if default else \
        f"budget {format_flops(summary.flops_budget)}"
    grid.add_row("FLOPs", f"{format_flops(summary.flops)} ({budget})", FLOPS_HOW)
    fidelity = summary.latency_fidelity  # None in runs from before it was recorded
    if summary.predicted_latency_ms is not None:
        from edgenas.cost.latency import describe_fidelity

        precision = summary.precision.upper()
        grid.add_row("latency", f"{summary.predicted_latency_ms:.2f} ms",
                     f"predicted by {precision} table {summary.latency_table}"
                     + (f"; {describe_fidelity(fidelity)}" if fidelity else ""))
        if summary.latency_budget_ms is not None:
            grid.add_row("latency budget", f"{summary.latency_budget_ms:g} ms ({precision} table "
                         f"{Path(summary.latency_table).stem})", summary.budget_verdict)
    _memory_rows(grid, summary)
    grid.add_row("parameters", format_params(summary.params), "")
    if summary.choice:  # not for MobileNetV2, a single random draw, or a run from before it was recorded
        from edgenas.strategies.choice import METHODS

        grid.add_row("chosen by", f"--choice {summary.choice}", METHODS[summary.choice])
    if summary.inherited_val_acc is not None:
        grid.add_row("validation accuracy", f"{100 * summary.inherited_val_acc:.2f}%",
                     "supernet weights, batch norm recalibrated, search-validation split")
    if summary.test_acc is not None:
        grid.add_row("test accuracy", f"{100 * summary.test_acc:.2f}%",
                     f"retrained from scratch, top-1 on the test split ({summary.dataset})")
    elif summary.retrain_seconds is None:
        grid.add_row("test accuracy", "not measured", "not retrained (--retrain-epochs 0): edgenas train RUN")
    grid.add_row("search time", f"{summary.search_seconds:.0f} s",
                 f"{summary.search_images:,} image-steps (wall clock)")
    if summary.retrain_seconds is not None:
        grid.add_row("retraining time", f"{summary.retrain_seconds:.0f} s", "wall clock")
    console.print(grid)
    if fidelity and fidelity["note"]:
        console.print(f"[yellow]{escape(fidelity['note'])}[/yellow]")


def _memory_rows(grid: Table, summary: RunSummary) -> None:
    """Model size and peak memory with their budgets (runs from before they were counted have none)."""
    if summary.model_size_bytes is None:
        return
    precision = summary.deploy_precision.upper()
    for name, value, budget, within, how in (
            ("model size", summary.model_size_bytes, summary.model_size_budget_bytes, summary.within_model_size_budget,
             f"{precision} weights after batch norm folding, counted on the built network ({MEMORY_HOW})"),
            ("peak memory", summary.peak_memory_bytes, summary.peak_memory_budget_bytes,
             summary.within_peak_memory_budget,
             f"{precision} activations live at once, batch 1, counted on the built network ({MEMORY_HOW})")):
        verdict = "" if budget is None else f" (budget {format_bytes(budget)}: {'met' if within else 'NOT met'})"
        grid.add_row(name, f"{format_bytes(value)} = {value:,} bytes{verdict}", how)


def runtime_how(runtime: dict, version: bool = False) -> str:
    """A table's runtime in a few words: backend (version), provider or device, a precision pinned, threads."""
    parts = [runtime.get("backend"), runtime.get("version") if version else None,
             runtime.get("provider") or runtime.get("device"),
             runtime.get("inference_precision_hint") and f"{runtime['inference_precision_hint']} pinned",
             f"{runtime.get('threads', '?')} thread(s)"]
    return " ".join(str(part) for part in parts if part)


def print_table_summary(summary: dict) -> None:
    """A latency table as `profile` prints it: what was written, its calibration and fidelity, and what to do about
    a poor one."""
    console = Console(soft_wrap=True, highlight=False)
    runtime = summary["runtime"]
    replaced = " (replacing the table that was there)" if summary.get("replaced_existing") else ""
    console.print(f"wrote {summary['path']}{replaced}: {summary['entries']} {summary['precision'].upper()} entries, "
                  f"{summary['space']} at "
                  f"{summary['resolution']}x{summary['resolution']} (width {summary['width_mult']}), "
                  f"{runtime_how(runtime, version=True)}")
    v, c = summary["validation"], summary["calibration"]
    if not v["count"]:
        console.print("no validation networks: the table is uncalibrated and its fidelity unknown (use --validate)")
        return
    from edgenas.cost.calibration import describe

    console.print(f"calibration: {describe(c)}, fitted on {v['count']} networks measured end to end")
    console.print(f"fidelity (leave-one-out): median |error| {v['median_abs_error_pct']:.1f}%, p95 "
                  f"{v['p95_abs_error_pct']:.1f}%, {100 * v['within_10pct']:.0f}% of networks within +/-10% "
                  f"(before calibration: median {v['before_calibration']['median_abs_error_pct']:.1f}%); "
                  f"ranking Kendall tau {v['kendall_tau_table']:.2f} (FLOPs: {v['kendall_tau_flops']:.2f})")
    skipped = v.get("kinds_not_tried") or {}
    if skipped:
        # make demo's quick profile once had 9 networks: `cache`, the best fit at 16 px, was never tried
        needed, kinds = max(skipped.values()), " and ".join(skipped)
        console.print(f"note: {v['count']} validation networks are too few to fit the {kinds} calibration"
                      f"{'s' if len(skipped) > 1 else ''} ({needed} needed): raise --validate by "
                      f"{needed - v['count']} to try every kind")
    from edgenas.cost.latency import imported
    from edgenas.cost.notes import FIDELITY_GOAL

    if v["within_10pct"] < FIDELITY_GOAL["within_10pct"] and not imported(runtime):
        # a busy host needs more passes to find quiet minutes (docs/BENCHMARKS.md)
        console.print(f"note: only {100 * v['within_10pct']:.0f}% of the validation networks are predicted "
                      f"within +/-10% after {summary['passes']} passes: if this machine was busy while "
                      "profiling, the same command with --fresh --max-passes 15 measures again, adding passes "
                      "while the validation asks for them")
    elif summary["fidelity"]["note"]:  # an imported table: timed again on the device, not here
        console.print(summary["fidelity"]["note"], markup=False)


def print_report(report: dict, path: Path, report_path: Path) -> None:
    """An export's verification report as `export` prints it: one row per check, with how it was made."""
    grid = Table("check", "value", "how", title=f"{path} (report: {report_path})")
    out, ran = report["outputs"], report["runtime"]
    title = ran.get("title", ran["name"])
    grid.add_row("runtime", f"{title} {ran['version']}, {ran['precision'].upper()}, {ran['input_layout']} input",
                 ran["method"])
    grid.add_row("outputs", f"max |diff| {out['max_abs_diff']:.2e}, max relative {out['max_rel_diff']:.2e}",
                 f"{out['images']} test images, {title} vs PyTorch; tolerance {report['atol']:g}")
    grid.add_row("top-1 agreement", f"{100 * report['top1_agreement']:.2f}%", f"{report['test_images']} test images")
    grid.add_row("accuracy", f"{title} {100 * report['accuracy_runtime']:.2f}%, PyTorch "
                 f"{100 * report['accuracy_pytorch']:.2f}%", "top-1 on the test split")
    measured, eager = report["latency_runtime"], report["latency_pytorch_eager"]
    grid.add_row("latency", f"{title} {measured['median_ms']:.3f} ms (p90 {measured['p90_ms']:.3f}), PyTorch eager "
                 f"{eager['median_ms']:.3f} ms: {title} is {speed(measured['median_ms'], eager['median_ms'])} "
                 "than PyTorch eager", report["latency_method"])
    if report["table"]:
        from edgenas.cost.latency import describe_fidelity

        t = report["table"]
        grid.add_row("table prediction", f"{t['predicted_ms']:.3f} ms ({t['error_pct']:+.1f}% vs the measured "
                     f"{t['compared_with'].upper()} file, {t['measured_ms']:.3f} ms)",
                     f"{t['table']} ({t['table_precision'].upper()}, {t['table_threads']} thread(s)); "
                     f"{describe_fidelity(t['table_fidelity'])}")
    if report["int8"]:
        q = report["int8"]
        grid.add_row("INT8", f"accuracy {100 * q['accuracy']:.2f}% (drop {q['drop_points']:.2f} points), "
                     f"{q['size_bytes'] / 1e6:.2f} MB vs {q['fp32_size_bytes'] / 1e6:.2f} MB, "
                     f"{q['latency']['median_ms']:.3f} ms, {speed(q['latency']['median_ms'], q['fp32_latency_ms'])} "
                     f"than FP32 ({q['fp32_latency_ms']:.3f} ms), {q['int8_weights']} int8 weight tensors",
                     q["file"] or ("deleted: no int8 weights" if not q["int8_weights"] else
                                   "deleted: drop above --max-drop"))
    if report.get("memory"):  # reports from before memory was counted have none
        _memory_check_rows(grid, report["memory"])
    grid.add_row("verdict", "[green]passed[/green]" if report["passed"] else "[red]failed[/red]", "")
    table_console().print(grid)


def _memory_check_rows(grid: Table, memory: dict) -> None:
    """Each file's bytes beside the model size edgenas counts, and the peak memory it counts, with the run's budgets."""
    files, budgets, within = memory["files"], memory["budgets"], memory["within_budgets"]

    def verdict(name: str, precision: str) -> str:
        budget = budgets[f"{name}_bytes"]
        if budget is None or precision != budgets["precision"]:
            return ""
        return f"; {precision.upper()} budget {format_bytes(budget)}: {'met' if within[name] else 'NOT met'}"

    for precision, row in files.items():
        weights = row["file_weight_bytes"]
        inside = "" if weights is None else f", {format_bytes(weights)} of it weights"
        counted, on_disk = format_bytes(row["predicted_model_size_bytes"]), format_bytes(row["file_bytes"])
        grid.add_row(f"{precision.upper()} model size",
                     f"{counted} counted; the file {on_disk}{inside}{verdict('model_size', precision)}",
                     f"weights after batch norm folding, counted on the network ({MEMORY_HOW}); the file's bytes "
                     "on disk")
    peaks = ", ".join(f"{p.upper()} {format_bytes(row['predicted_peak_memory_bytes'])}" for p, row in files.items())
    grid.add_row("peak memory", f"{peaks} counted{verdict('peak_memory', budgets['precision'])}",
                 f"activations live at once, batch 1, counted on the network; {memory['peak_memory_note']} "
                 f"({MEMORY_HOW})")
    if budgets["precision"] not in files and any(within[name] is not None for name in within):
        grid.add_row("memory budgets", f"{budgets['precision'].upper()} (counted; no such file exported): " + ", ".join(
            f"{name.replace('_', ' ')} {'met' if ok else 'NOT met'}" for name, ok in within.items() if ok is not None),
            f"the run's --model-size and --peak-memory ({MEMORY_HOW})")


def speed(ms: float, other_ms: float) -> str:
    """How `ms` compares with `other_ms`, in words that cannot be misread: `3.20x faster`, `1.42x slower`."""
    if ms <= other_ms:
        return f"{other_ms / ms:.2f}x faster" if ms > 0 else "faster"
    return f"{ms / other_ms:.2f}x slower"


def yes_no(value: bool | None) -> str:
    return "-" if value is None else "yes" if value else "no"
