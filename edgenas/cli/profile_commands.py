"""Commands about latency tables: `profile` (measure a space's pieces and write a table), `latency` (what a table
predicts for an architecture, and what it measures here) and `tables` (the tables found)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgenas.cli.options import Json, Quiet, json_flag, settings_from, settings_options
from edgenas.cli.render import output, print_json, print_table_summary, runtime_how, table_console
from edgenas.profiling.settings import ProfileSettings


@settings_options(ProfileSettings, before="as_json")
def profile(
    device: Annotated[str, typer.Argument(help="Name of the table to write (latency_tables/DEVICE.json; "
                                          "DEVICE-int8.json with --int8).")],
    as_json: json_flag("Print the table's summary as JSON.") = False,
    quiet: Quiet = False,
    **declared,  # the options generated from ProfileSettings
):
    """Measure every candidate block's latency with a runtime (ONNX Runtime, OpenVINO, LiteRT); write a latency table.

    An interrupted profile continues where it stopped when the same command is run again."""
    from edgenas.profiling import device_timings, profiler

    settings = settings_from(ProfileSettings, declared)
    settings.check()
    console = Console(stderr=True, soft_wrap=True)
    progress, _, echo = output(quiet, False, as_json)
    if settings.export_blocks is not None:
        path = device_timings.export_blocks(device, _space(settings), settings.export_blocks,
                                           backend=settings.backend, int8=settings.int8, validate=settings.validate,
                                           seed=settings.seed, progress=progress, echo=echo)
        console.print(f"wrote {path}: time each file on the device as its timings_format says, then run "
                      f"`edgenas profile {device} --import-timings TIMINGS.csv --manifest {path}`")
        return
    if settings.import_timings is not None:  # the manifest's precision decides where the table goes
        _, manifest = device_timings.read_manifest(settings.import_timings, settings.manifest)
        replaced = device_timings.table_path(device, manifest, settings.out).is_file()
        path, table = device_timings.import_timings(device, settings.import_timings, settings.manifest, settings.out,
                                                    int8=settings.int8)
    else:
        target = settings.out if settings.out is not None else profiler.default_table_path(device, settings.int8)
        replaced = target.is_file()
        path, table = profiler.profile(device, _space(settings), **settings.measuring(), progress=progress,
                                       log=console.print, echo=echo)
    summary = table.summary(str(path))
    summary["replaced_existing"] = replaced
    if as_json:
        print_json(summary)
        if summary["fidelity"]["note"] and not quiet:
            console.print(summary["fidelity"]["note"], markup=False)
    else:
        print_table_summary(summary)


def _space(settings: ProfileSettings):
    from edgenas.space.spec import get_space

    return get_space(settings.space, settings.resolution, settings.width_mult)


def latency(
    arch_file: Annotated[Path, typer.Argument(metavar="ARCH.json", help="An architecture JSON file.")],
    table: Annotated[str, typer.Option(help="Device name (latency_tables/DEVICE.json) or a table's path.")],
    measure: Annotated[bool, typer.Option(help="Also measure the whole network here, as the table was.")] = False,
    as_json: Json = False,
):
    """Predicted latency of an architecture from a table; with --measure, measured here too."""
    from edgenas.cost.arch_cost import against_measured, latency_of
    from edgenas.cost.latency import load_table
    from edgenas.space.arch import load_arch

    architecture = load_arch(arch_file)
    loaded = load_table(table)
    result = latency_of(architecture, loaded)
    space = architecture.resolve_space()
    if measure:
        from edgenas.profiling.profiler import measure_arch

        result.update(against_measured(loaded, result["predicted_ms"], measure_arch(architecture, loaded)))
    notes = [result[key] for key in ("host_note", "miss_note") if measure and result[key]]
    if as_json:
        print_json(result)
        for note in notes:
            Console(stderr=True, soft_wrap=True, highlight=False).print(note, markup=False)
        return
    console = Console(soft_wrap=True, highlight=False)
    runtime = result["runtime"]
    how = runtime_how(runtime)
    console.print(f"predicted  {result['predicted_ms']:.3f} ms ({loaded.describe()}: sum of per-piece medians "
                  f"{result['predicted_raw_ms']:.3f} ms, calibrated; {how}; batch 1)")
    slower = result["predicted_ms"] / result["fastest_ms"] - 1
    this = "this network is the fastest" if slower <= 1e-9 else f"this network is predicted {slower:.1%} slower"
    console.print(f"fastest    {result['fastest_ms']:.3f} ms (the fastest network of space {space.name} with "
                  f"{architecture.num_classes} classes by this table, the least latency budget a search takes; {this})")
    if measure:
        network = "quantised as the table's pieces were, " if loaded.precision == "int8" else ""
        console.print(f"measured   {result['measured_ms']:.3f} ms (whole {loaded.precision.upper()} network on this "
                      f"machine, {network}same runtime and threads, best of the passes' medians); prediction error "
                      f"{result['error_pct']:+.1f}%")
        for note in notes:
            console.print(f"[yellow]{escape(note)}[/yellow]")


def _short_path(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return f"(shipped) {Path(path).name}" if "latency_tables" in path else path


def tables(as_json: Json = False):
    """List the latency tables found in ./latency_tables and shipped with edgenas."""
    from edgenas.cost.latency import list_tables

    tables_found, refused = list_tables()
    found = [t.summary() for t in tables_found]
    skipped = Console(stderr=True, soft_wrap=True, highlight=False)
    for problem in refused:
        skipped.print(f"note: skipped {problem}", markup=False)
    if as_json:
        print_json(found)
        return
    grid = Table("device", "precision", "runtime", "threads", "space", "resolution", "entries", "median |error|",
                 "within 10%", "path")
    for s in found:
        v = s["validation"]
        provider = str(s["runtime"].get("provider", s["runtime"].get("device", ""))).replace("ExecutionProvider", "")
        grid.add_row(s["device"], s["precision"].upper(), f"{s['runtime'].get('backend')} {provider}",
                     str(s["runtime"].get("threads", "?")), f"{s['space']} x{s['width_mult']}", str(s["resolution"]),
                     str(s["entries"]),
                     f"{v['median_abs_error_pct']:.1f}%" if v["count"] else "not validated",
                     f"{100 * v['within_10pct']:.0f}%" if v["count"] else "-", _short_path(s["path"]))
    table_console(grid).print(grid if found else "no latency tables found (make one with `edgenas profile "
                                 "DEVICE`)")


COMMANDS = {"profile": profile, "latency": latency, "tables": tables}
