"""The `edgenas` command line: thin typer commands that parse, call one library function, and print with rich.

An `EdgeNASError` from any command becomes one red line on stderr and exit code 1; a usage error (an option value
of the wrong type, an unknown option or command, a missing argument) one line naming the bad value and exit code 2.
torch is imported only inside the commands that need it, so `--help`, `space` and a cached `flops` answer fast.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from edgenas.errors import EdgeNASError
from edgenas.units import format_flops, format_params

# typer vendors click in recent versions: reach click's UsageError through the public BadParameter.
_UsageError = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "UsageError")


def _given(opts: list[str], args: list[str]) -> str | None:
    """The value last given on the command line to an option spelled any of `opts`, or None."""
    value = None
    for i, arg in enumerate(args):
        name, equals, attached = arg.partition("=")
        if equals and name in opts:
            value = attached
        elif arg in opts and i + 1 < len(args):
            value = args[i + 1]
    return value


def _usage_line(exc, args: list[str]) -> str:
    """A usage error as one line: `bad --epochs 'abc': <what was expected> (see 'edgenas search --help')`."""
    param = getattr(exc, "param", None)
    value = _given(param.opts, args) if param is not None and param.param_type_name == "option" else None
    message = f"bad {param.opts[-1]} {value!r}: {exc.message}" if value is not None else exc.format_message()
    if exc.ctx is not None:
        message += f" (see '{exc.ctx.command_path} --help')"
    return " ".join(message.split())


def _print_error(message: str) -> None:
    """The one red line on stderr that every failing command ends with (the message printed as is, not as markup)."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/red] {escape(message)}")


class _Group(TyperGroup):
    """typer's command group, with usage errors printed as one line instead of a boxed usage block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `edgenas`: the help, as typer shows it
                exc.show()
            else:
                _print_error(_usage_line(exc, args))
            code = exc.exit_code
        except typer.Abort:
            Console(stderr=True).print("[red]aborted[/red]")
            code = 1
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=_Group,
    name="edgenas",
    help="Find, prove and ship small image classifiers for edge devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: a flag shows as a flag, where rich help printed `<bool>` after it
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from edgenas.version import __version__

        sys.stdout.write(f"edgenas {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="Print the version of edgenas and exit.")] = False) -> None:
    """Find, prove and ship small image classifiers for edge devices."""


def _command(**kwargs):
    """Register a command whose `EdgeNASError`s end as one red line and exit code 1."""

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kw):
            try:
                return func(*args, **kw)
            except EdgeNASError as exc:
                _print_error(str(exc))
                raise typer.Exit(1) from None
            except KeyboardInterrupt as exc:  # its message, if any, says what was kept and how to continue
                Console(stderr=True, highlight=False, soft_wrap=True).print(
                    "[red]interrupted[/red]" + (f": {escape(str(exc))}" if str(exc) else ""))
                raise typer.Exit(130) from None

        return app.command(**kwargs)(wrapper)

    return decorate


def _table_console(*renderables) -> Console:
    """Standard output for rich tables: a terminal's own width; elsewhere (a log, a pipe, `make demo`) $COLUMNS, or
    200 columns or as many as `renderables` need whole, since rich would assume 80 and cut cells short ("x86-2…")."""
    import os

    width = None
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        wide = Console(width=10000)
        width = max([200] + [wide.measure(r).maximum for r in renderables if not isinstance(r, str)])
    return Console(soft_wrap=True, highlight=False, width=width)


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _launch_ranks(nproc: int | None, device: str | None = None) -> None:
    """`--nproc N` (N > 1) outside torchrun: run this same command under `torchrun --standalone --nproc_per_node N`,
    wait for it and exit with its code. Returns (and this process does the work) in every other case."""
    import os
    import subprocess

    if nproc is None or "WORLD_SIZE" in os.environ:
        return
    if nproc < 1:
        raise EdgeNASError(f"bad --nproc {nproc}: expected 1 or more processes")
    if nproc == 1:
        return
    if device not in (None, "cpu"):
        import torch

        if torch.cuda.is_available() and nproc > torch.cuda.device_count():
            raise EdgeNASError(f"bad --nproc {nproc}: only {torch.cuda.device_count()} CUDA GPUs are visible "
                               "(one process per GPU)")
    argv, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            argv.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "edgenas", *argv]
    raise typer.Exit(subprocess.run(command).returncode)


@contextlib.contextmanager
def _rank():
    """Yields whether this process prints its result (rank 0 of a torchrun launch, or a single process), and leaves
    the process group, if one was joined, on the way out."""
    from edgenas.training.distributed import Ranks, finish

    ranks = Ranks.from_env()
    try:
        yield ranks.main
    finally:
        finish(ranks)


def _print_run(result, as_json: bool) -> None:
    """A finished run as `search` and `train` print it: the summary table and the report's path, or JSON."""
    report = None if result.report is None else str(result.report)
    if as_json:
        _print_json({"run": str(result.run), **result.summary, "report": report})
        return
    _print_summary(result.run, result.summary)
    if report is not None:
        Console(soft_wrap=True, highlight=False).print(f"report: {report}")


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no progress lines and no notices: "
                                     "the result only.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="One plain line per epoch instead of the progress bar "
                                       "(the default off a terminal: in logs, pipes and with CI=true).")]


def _output(quiet: bool, verbose: bool, as_json: bool):
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


_FLOPS_HOW = "fvcore, 1 multiply-add = 1 FLOP, batch norm folded, batch 1"

@_command()
def profile(
    device: Annotated[str, typer.Argument(help="Name of the table to write (latency_tables/DEVICE.json; "
                                          "DEVICE-int8.json with --int8).")],
    space: Annotated[str, typer.Option(help="Search space.")] = "mobile",
    resolution: Annotated[int | None, typer.Option(help="Input resolution (default: the space's).")] = None,
    width_mult: Annotated[float, typer.Option(help="Width multiplier.")] = 1.0,
    threads: Annotated[int, typer.Option(help="Intra-op threads, pinned.")] = 1,
    provider: Annotated[str, typer.Option(help="ONNX Runtime execution provider: cpu, cuda, ...")] = "cpu",
    backend: Annotated[str, typer.Option(help="ort (ONNX Runtime) or torch (PyTorch eager; CUDA events on a GPU)."
                                         )] = "ort",
    warmup: Annotated[int, typer.Option(help="Untimed calls before each pass.")] = 10,
    repeats: Annotated[int, typer.Option(help="Timed calls per piece and pass.")] = 50,
    passes: Annotated[int, typer.Option(help="Interleaved passes; a piece's median is its best pass median.")] = 5,
    max_passes: Annotated[int | None, typer.Option(help="While under 90% of the validation networks are predicted "
                                                   "within +/-10% or their median error is over 2%, time --passes "
                                                   "more passes, up to this many in all (a busy machine; default: "
                                                   "--passes).")] = None,
    validate: Annotated[int, typer.Option(help="Random networks measured end to end to calibrate and check the "
                                          "table (MobileNetV2 is added where the space has it).")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the validation networks.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Where to write the table.")] = None,
    export_blocks: Annotated[Path | None, typer.Option(help="Instead of measuring here: write every piece and "
                                                       "validation network as ONNX plus a manifest to this folder."
                                                       )] = None,
    import_timings: Annotated[Path | None, typer.Option(help="Build the table from timings measured on the device "
                                                        "(CSV or JSON, see the manifest).")] = None,
    manifest: Annotated[Path | None, typer.Option(help="Manifest of --import-timings (default: beside it).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Measure everything again instead of continuing an "
                                        "interrupted profile of the same settings (OUT.partial).")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="An INT8 table: time every piece and validation network "
                                       "quantised as `edgenas export --int8` quantises a network.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table's summary as JSON.")] = False,
    quiet: Quiet = False,
):
    """Measure every candidate block's latency with ONNX Runtime and write a latency table.

    An interrupted profile continues where it stopped when the same command is run again."""
    from edgenas.profiling import device_timings, profiler
    from edgenas.space.spec import get_space

    console = Console(stderr=True, soft_wrap=True)
    progress, _, echo = _output(quiet, False, as_json)
    if int8 and (export_blocks is not None or import_timings is not None):
        given = "--export-blocks" if export_blocks is not None else "--import-timings"
        raise EdgeNASError(f"--int8 with {given}: pieces exported for another device are FP32 ONNX files, and INT8 "
                           "tables are measured where edgenas runs; drop --int8")
    if export_blocks is not None:
        path = device_timings.export_blocks(device, get_space(space, resolution, width_mult), export_blocks,
                                           validate=validate, seed=seed, progress=progress, echo=echo)
        console.print(f"wrote {path}: time each file on the device, then run "
                      f"`edgenas profile {device} --import-timings TIMINGS.csv --manifest {path}`")
        return
    target = out if out is not None else profiler.default_table_path(device, int8)
    replaced = target.is_file()
    if import_timings is not None:
        path, table = device_timings.import_timings(device, import_timings, manifest, out)
    else:
        path, table = profiler.profile(device, get_space(space, resolution, width_mult), threads=threads,
                                       provider=provider, backend=backend, warmup=warmup, repeats=repeats,
                                       passes=passes, max_passes=max_passes, validate=validate, seed=seed, out=out,
                                       progress=progress, fresh=fresh, int8=int8, log=console.print, echo=echo)
    summary = table.summary(str(path))
    summary["replaced_existing"] = replaced
    if as_json:
        _print_json(summary)
        if summary["fidelity"]["note"] and not quiet:
            console.print(summary["fidelity"]["note"], markup=False)
    else:
        _print_table_summary(summary)


def _print_table_summary(summary: dict) -> None:
    console = Console(soft_wrap=True, highlight=False)
    runtime = summary["runtime"]
    replaced = " (replacing the table that was there)" if summary.get("replaced_existing") else ""
    console.print(f"wrote {summary['path']}{replaced}: {summary['entries']} {summary['precision'].upper()} entries, "
                  f"{summary['space']} at "
                  f"{summary['resolution']}x{summary['resolution']} (width {summary['width_mult']}), "
                  f"{runtime.get('backend')} {runtime.get('version', '')} {runtime.get('provider', '')} "
                  f"{runtime.get('threads', '?')} thread(s)")
    v, c = summary["validation"], summary["calibration"]
    if v["count"]:
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
        from edgenas.cost.notes import FIDELITY_GOAL

        if v["within_10pct"] < FIDELITY_GOAL["within_10pct"] and runtime.get("backend") != "imported":
            # a busy host needs more passes to find quiet minutes (docs/BENCHMARKS.md)
            console.print(f"note: only {100 * v['within_10pct']:.0f}% of the validation networks are predicted "
                          f"within +/-10% after {summary['passes']} passes: if this machine was busy while "
                          "profiling, the same command with --fresh --max-passes 15 measures again, adding passes "
                          "while the validation asks for them")
        elif summary["fidelity"]["note"]:  # an imported table: timed again on the device, not here
            console.print(summary["fidelity"]["note"], markup=False)
    else:
        console.print("no validation networks: the table is uncalibrated and its fidelity unknown (use --validate)")


@_command()
def latency(
    arch_file: Annotated[Path, typer.Argument(metavar="ARCH.json", help="An architecture JSON file.")],
    table: Annotated[str, typer.Option(help="Device name (latency_tables/DEVICE.json) or a table's path.")],
    measure: Annotated[bool, typer.Option(help="Also measure the whole network here, as the table was.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
):
    """Predicted latency of an architecture from a table; with --measure, measured here too."""
    from edgenas.cost.latency import load_table
    from edgenas.space.arch import load_arch

    architecture = load_arch(arch_file)
    loaded = load_table(table)
    result = {"predicted_ms": loaded.predict(architecture), "predicted_raw_ms": loaded.raw_ms(architecture),
              "table": loaded.source, "device": loaded.name, "precision": loaded.precision,
              "runtime": loaded.data["runtime"],
              "method": "sum of the table's per-piece medians with its calibration, batch 1"}
    from edgenas.cost.cost_model import CostModel
    from edgenas.cost.flops import cost_table

    space = architecture.resolve_space()  # the fastest network a search of this space could derive, same classes
    index, result["fastest_ms"] = CostModel.build(space, architecture.num_classes, cost_table(space), loaded).fastest()
    result["fastest_layers"] = [layer.choices[j] for layer, j in zip(space, index, strict=True)]
    if measure:
        from edgenas.cost.notes import host_note, miss_note
        from edgenas.profiling.profiler import measure_arch

        result["measured_ms"] = measure_arch(architecture, loaded)
        result["error_pct"] = 100.0 * (result["predicted_ms"] - result["measured_ms"]) / result["measured_ms"]
        result["host_note"] = host_note(loaded)
        result["miss_note"] = miss_note(loaded, result["error_pct"])
    notes = [result[key] for key in ("host_note", "miss_note") if measure and result[key]]
    if as_json:
        _print_json(result)
        for note in notes:
            Console(stderr=True, soft_wrap=True, highlight=False).print(note, markup=False)
        return
    console = Console(soft_wrap=True, highlight=False)
    runtime = result["runtime"]
    how = f"{runtime.get('backend')} {runtime.get('provider', '')}, {runtime.get('threads', '?')} thread(s)"
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


@_command()
def tables(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False):
    """List the latency tables found in ./latency_tables and shipped with edgenas."""
    from edgenas.cost.latency import list_tables

    tables_found, refused = list_tables()
    found = [t.summary() for t in tables_found]
    skipped = Console(stderr=True, soft_wrap=True, highlight=False)
    for problem in refused:
        skipped.print(f"note: skipped {problem}", markup=False)
    if as_json:
        _print_json(found)
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
    _table_console(grid).print(grid if found else "no latency tables found (make one with `edgenas profile "
                                  "DEVICE`)")


def _settings_options(func):
    """Add to `func`'s options one per `SearchSettings` field that declares its help in settings.py (flag: the
    field's name with dashes, or its `flag`); their values reach `func` as keyword arguments. The help is written
    once, beside the setting's default and validation."""
    import dataclasses
    import inspect
    import typing

    from edgenas.runs.settings import SearchSettings

    hints = typing.get_type_hints(SearchSettings)
    signature = inspect.signature(func, eval_str=True)
    params = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    generated = [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=f.default,
                                   annotation=Annotated[hints[f.name], typer.Option(
                                       f.metadata.get("flag", "--" + f.name.replace("_", "-")),
                                       help=f.metadata["help"])])
                 for f in dataclasses.fields(SearchSettings) if "help" in f.metadata]
    at = next(i for i, p in enumerate(params) if p.name == "out")
    func.__signature__ = signature.replace(parameters=params[:at] + generated + params[at:])
    return func


@_command()
@_settings_options
def search(
    ctx: typer.Context,
    data: Annotated[Path | None, typer.Option(help="ImageFolder root, CIFAR python folder or .npz (default: the "
                                              "embedded handwritten digits).")] = None,
    flops: Annotated[str | None, typer.Option(help="FLOPs budget, such as 300M (default: MobileNetV2's FLOPs in "
                                              "the space).")] = None,
    latency: Annotated[str | None, typer.Option(help="Latency budget, such as 12ms (needs --table).")] = None,
    class_order: Annotated[Path | None, typer.Option(help="JSON file with the class order, easiest first (skips "
                                                     "the probe).")] = None,
    no_flip: Annotated[bool, typer.Option("--no-flip", help="No horizontal flips in augmentation.")] = False,
    out: Annotated[Path | None, typer.Option(help="Run folder, created with its parents (default: "
                                             "runs/DATE-TIME-STRATEGY-BUDGET-seedSEED, then -2, -3... if taken)."
                                             )] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue a stopped run (its settings are reused).")] = None,
    nproc: Annotated[int | None, typer.Option(help="Processes, one per GPU (or CPU share): runs this command "
                                              "under torchrun with DistributedDataParallel.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
    **declared,  # the options generated from SearchSettings' own declarations (see `_settings_options`)
):
    """Search an architecture on your data with DA-NAS under FLOPs and latency budgets, then retrain it."""
    _launch_ranks(nproc, declared["device"])
    from edgenas.runs.settings import SearchSettings
    from edgenas.searching.searcher import search as run_search
    from edgenas.units import parse_flops, parse_latency_ms

    settings = SearchSettings(
        data=None if data is None else str(data), flops=None if flops is None else parse_flops(flops),
        latency_ms=None if latency is None else parse_latency_ms(latency),
        class_order=None if class_order is None else str(class_order), flip=False if no_flip else None, **declared)
    progress, log, echo = _output(quiet, verbose, as_json)
    if resume is not None:
        ignored = _given_settings(ctx, ("resume", "nproc", "as_json", "quiet", "verbose"))
        if ignored:
            log(f"note: --resume {resume} keeps the settings the run was started with ({resume}/config.json); "
                f"ignoring {', '.join(ignored)}")
    with _rank() as prints:
        result = run_search(settings, out=out, resume=resume, progress=progress, log=log, echo=echo)
    if prints:
        _print_run(result, as_json)


def _given_settings(ctx: typer.Context, skip: tuple[str, ...]) -> list[str]:
    """The options given on the command line (not left at their defaults), as typed: `--flops 300K`, `--no-flip`."""
    given = []
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if param.name in skip or source is None or source.name != "COMMANDLINE":
            continue
        value = ctx.params[param.name]
        given.append(param.opts[0] if param.is_flag else f"{param.opts[0]} {value}")
    return given


def _print_summary(run: Path, summary: dict) -> None:
    console = _table_console()
    grid = Table("", "value", "how it was obtained", title=f"run {run}")
    arch = summary["arch"]
    grid.add_row("architecture", " ".join(arch["layers"]),
                 f"{arch['space']} at {arch['resolution']}x{arch['resolution']}, width {arch['width_mult']}")
    default = summary.get("flops_budget_default")
    budget = f"default budget {format_flops(summary['flops_budget'])}: {default}" if default else \
        f"budget {format_flops(summary['flops_budget'])}"
    grid.add_row("FLOPs", f"{format_flops(summary['flops'])} ({budget})",
                 "fvcore, 1 multiply-add = 1 FLOP, batch norm folded, batch 1")
    fidelity = summary.get("latency_fidelity")  # None in runs from before it was recorded
    if summary["predicted_latency_ms"] is not None:
        from edgenas.cost.latency import describe_fidelity

        precision = (summary.get("latency_precision") or "fp32").upper()  # runs from before INT8 tables: FP32
        grid.add_row("latency", f"{summary['predicted_latency_ms']:.2f} ms",
                     f"predicted by {precision} table {summary['latency_table']}"
                     + (f"; {describe_fidelity(fidelity)}" if fidelity else ""))
        if summary["latency_budget_ms"] is not None:
            grid.add_row("latency budget", f"{summary['latency_budget_ms']:g} ms ({precision} table "
                         f"{Path(summary['latency_table']).stem})", summary.get("latency_budget_verdict") or
                         ("met" if summary.get("within_latency_budget") else "NOT met"))
    grid.add_row("parameters", format_params(summary["params"]), "")
    if summary.get("choice"):  # not for MobileNetV2, a single random draw, or a run from before it was recorded
        from edgenas.strategies.choice import METHODS

        grid.add_row("chosen by", f"--choice {summary['choice']}", METHODS[summary["choice"]])
    if summary["inherited_val_acc"] is not None:
        grid.add_row("validation accuracy", f"{100 * summary['inherited_val_acc']:.2f}%",
                     "supernet weights, batch norm recalibrated, search-validation split")
    if summary["test_acc"] is not None:
        grid.add_row("test accuracy", f"{100 * summary['test_acc']:.2f}%",
                     f"retrained from scratch, top-1 on the test split ({summary['dataset']})")
    elif summary["retrain_seconds"] is None:
        grid.add_row("test accuracy", "not measured", "not retrained (--retrain-epochs 0): edgenas train RUN")
    grid.add_row("search time", f"{summary['search_seconds']:.0f} s",
                 f"{summary['search_images']:,} image-steps (wall clock)")
    if summary["retrain_seconds"] is not None:
        grid.add_row("retraining time", f"{summary['retrain_seconds']:.0f} s", "wall clock")
    console.print(grid)
    if fidelity and fidelity["note"]:
        console.print(f"[yellow]{escape(fidelity['note'])}[/yellow]")


@_command()
def train(run: Annotated[Path, typer.Argument(help="A run folder.")],
          epochs: Annotated[int | None, typer.Option(help="Epochs (default: the run's --retrain-epochs).")] = None,
          resume: Annotated[bool, typer.Option("--resume", help="Continue a stopped retraining from its last "
                                               "kept epoch instead of starting over.")] = False,
          nproc: Annotated[int | None, typer.Option(help="Processes (runs under torchrun with DDP).")] = None,
          as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
          quiet: Quiet = False, verbose: Verbose = False):
    """Retrain a run's architecture from scratch and evaluate it on the test split (its results replace the run's
    once complete)."""
    _launch_ranks(nproc)
    from edgenas.searching.searcher import retrain

    progress, log, echo = _output(quiet, verbose, as_json)
    with _rank() as prints:
        result = retrain(run, epochs=epochs, progress=progress, log=log, echo=echo, resume=resume)
    if prints:
        _print_run(result, as_json)


@_command(name="runs")
def list_runs(root: Annotated[Path, typer.Argument(help="The folder of runs.")] = Path("runs"),
              as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False):
    """List the runs in ./runs: strategy, budget, FLOPs, test accuracy and state (finished, retraining,
    interrupted)."""
    from edgenas.runs.folder import list_runs as find

    found = find(root)
    if as_json:
        _print_json(found)
        return
    grid = Table("run", "strategy", "budget", "FLOPs (fvcore)", "test acc. (%)", "state", title=f"runs in {root}",
                 caption="budget: FLOPs (and latency) the search was held to; test accuracy: top-1 on the test split "
                         "after retraining; state: finished, retraining (searched, retraining not finished) or "
                         "interrupted (search not finished); a run under way shows as not finished")
    for r in found:
        budget = "-" if r["flops_budget"] is None else format_flops(r["flops_budget"])
        if r["latency_budget_ms"] is not None:
            budget += f", {r['latency_budget_ms']:g} ms"
        grid.add_row(Path(r["run"]).name, r["strategy"] or "-", budget,
                     "-" if r["flops"] is None else format_flops(r["flops"]),
                     "-" if r["test_acc"] is None else f"{100 * r['test_acc']:.2f}", r["state"])
    _table_console().print(grid if found else f"no runs in {root}")


@_command(name="eval")
def evaluate_run(run: Annotated[Path, typer.Argument(help="A run folder.")],
                 as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False):
    """Evaluate a run's retrained network on its test split."""
    from edgenas.searching.searcher import evaluate_run as run_eval

    result = run_eval(run)
    if as_json:
        _print_json(result)
    else:
        Console(highlight=False).print(f"test accuracy {100 * result['test_acc']:.2f}% ({result['test_images']} "
                                       f"images of {result['dataset']}, top-1, retrained weights in {run}/model.pt)")


@_command()
def report(run: Annotated[Path, typer.Argument(help="A finished run folder.")],
           as_json: Annotated[bool, typer.Option("--json", help="Print the written paths as JSON.")] = False):
    """Write a run's plots (RUN/plots/*.png) and RUN/report.html, which shows them with the run's summary."""
    from edgenas.report.html import write_report

    result = write_report(run)
    if as_json:
        _print_json({"html": str(result.html), "plots": {k: str(v) for k, v in result.plots.items()}})
        return
    Console(soft_wrap=True, highlight=False).print(
        f"wrote {result.html} and {len(result.plots)} plots in {result.html.parent / 'plots'}: "
        f"{', '.join(p.name for p in result.plots.values())}")


@_command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Finished run folders.")],
    out: Annotated[Path, typer.Option(help="The accuracy-against-cost scatter plot to write (PNG).")] = Path(
        "compare.png"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON.")] = False,
):
    """Compare runs: FLOPs, predicted latency, test accuracy and the Pareto front, as a table and a plot."""
    from edgenas.report.compare import compare_runs

    result = compare_runs(runs, out)
    if as_json:
        _print_json({"runs": result.rows, "plot": str(result.plot), "notes": result.notes})
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
                 "-" if r["test_acc"] is None else f"{100 * r['test_acc']:.2f}", _yes_no(r["pareto_flops"])]
        grid.add_row(*cells, *([_yes_no(r["pareto_latency"])] if latency else []))
    console = _table_console()
    console.print(grid)
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(f"wrote {result.plot}")


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else "yes" if value else "no"


@_command()
def export(
    out: Annotated[Path, typer.Argument(help="The ONNX file to write.")],
    run: Annotated[Path | None, typer.Option(help="Run folder (default: the newest in ./runs).")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 17,
    table: Annotated[str | None, typer.Option(help="Latency table to compare the measured latency with.")] = None,
    threads: Annotated[int, typer.Option(help="Intra-op threads for the latency measurements.")] = 1,
    atol: Annotated[float, typer.Option(help="Largest absolute output difference accepted.")] = 1e-4,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip the ONNX Runtime verification.")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Also write OUT.int8.onnx (static INT8, QDQ, per-channel).")
                    ] = False,
    max_drop: Annotated[float, typer.Option(help="Largest INT8 accuracy drop accepted, in points.")] = 1.0,
    allow_supernet_weights: Annotated[bool, typer.Option("--allow-supernet-weights", help="Export a run that was "
                                                         "not retrained, with the supernet's weights.")] = False,
    keep_failed: Annotated[bool, typer.Option("--keep-failed", help="Keep the ONNX file when its verification "
                                              "fails (default: delete it, keep the report).")] = False,
    pt2: Annotated[bool, typer.Option("--pt2", help="Also write OUT.pt2 (torch.export), which PyTorch loads with "
                                      "torch.export.load(...).module(), without edgenas.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    quiet: Quiet = False,
):
    """Export the searched network to ONNX and prove it with ONNX Runtime."""
    from exporters.export import export_onnx, newest_run

    console = Console(stderr=True, soft_wrap=True, highlight=False)
    progress, _, echo = _output(quiet, False, as_json)
    if run is None:
        run = newest_run()
        if not quiet:
            console.print(f"run {run} (the newest in ./runs; --run chooses another)")
    result = export_onnx(run, out, opset=opset, verify=not no_verify, threads=threads, atol=atol,
                         table=table, int8=int8, max_drop=max_drop, allow_supernet_weights=allow_supernet_weights,
                         warn=lambda text: console.print(f"[yellow]{text}[/yellow]"),
                         log=None if quiet else console.print, pt2=pt2, keep_failed=keep_failed, progress=progress,
                         echo=echo)
    if result.pt2 is not None:
        console.print(f"wrote {result.pt2} (torch.export, same outputs as the network on random inputs; load it "
                      "with torch.export.load(PATH).module(), no edgenas needed)")
    if no_verify:
        console.print(f"wrote {result.path} (not verified)")
        return
    if as_json:
        _print_json(result.report)
    elif quiet:
        Console(highlight=False, soft_wrap=True).print(f"{result.path}: {'passed' if result.passed else 'failed'} "
                                                       f"(report: {result.report_path})")
    else:
        _print_report(result.report, result.path, result.report_path)
    if result.report["table"] and not quiet:
        for note in result.report["table"]["notes"]:
            console.print(f"[yellow]{escape(note)}[/yellow]")
    q = result.report["int8"]
    if q and q["file"] and q["latency"]["median_ms"] > q["fp32_latency_ms"] and not quiet:
        console.print(f"[yellow]note: the INT8 file is {_speed(q['latency']['median_ms'], q['fp32_latency_ms'])} "
                      "than the FP32 file here (ONNX Runtime, batch 1): it saves size, not time, on this "
                      "machine[/yellow]")
    if not result.passed:
        deleted = "; ".join(result.report["failures"])
        if result.report.get("deleted"):
            deleted += f"; {result.path} was deleted (--keep-failed keeps it)"
        raise EdgeNASError(f"verification failed: {deleted} (report: {result.report_path})")


def _print_report(report: dict, path: Path, report_path: Path) -> None:
    grid = Table("check", "value", "how", title=f"{path} (report: {report_path})")
    out = report["outputs"]
    grid.add_row("outputs", f"max |diff| {out['max_abs_diff']:.2e}, max relative {out['max_rel_diff']:.2e}",
                 f"{out['images']} test images, ONNX Runtime vs PyTorch; tolerance {report['atol']:g}")
    grid.add_row("top-1 agreement", f"{100 * report['top1_agreement']:.2f}%", f"{report['test_images']} test images")
    grid.add_row("accuracy", f"ONNX Runtime {100 * report['accuracy_onnxruntime']:.2f}%, PyTorch "
                 f"{100 * report['accuracy_pytorch']:.2f}%", "top-1 on the test split")
    ort, eager = report["latency_onnxruntime"], report["latency_pytorch_eager"]
    grid.add_row("latency", f"ONNX Runtime {ort['median_ms']:.3f} ms (p90 {ort['p90_ms']:.3f}), PyTorch eager "
                 f"{eager['median_ms']:.3f} ms: ONNX Runtime is {_speed(ort['median_ms'], eager['median_ms'])} "
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
                     f"{q['latency']['median_ms']:.3f} ms, {_speed(q['latency']['median_ms'], q['fp32_latency_ms'])} "
                     f"than FP32 ({q['fp32_latency_ms']:.3f} ms)",
                     q["file"] or "deleted: drop above --max-drop")
    grid.add_row("verdict", "[green]passed[/green]" if report["passed"] else "[red]failed[/red]", "")
    _table_console().print(grid)


def _speed(ms: float, other_ms: float) -> str:
    """How `ms` compares with `other_ms`, in words that cannot be misread: `3.20x faster`, `1.42x slower`."""
    if ms <= other_ms:
        return f"{other_ms / ms:.2f}x faster" if ms > 0 else "faster"
    return f"{ms / other_ms:.2f}x slower"


@_command()
def predict(
    model: Annotated[Path, typer.Argument(help="An ONNX file written by edgenas export.")],
    images: Annotated[list[Path], typer.Argument(help="Image files, or folders of them.")],
    top: Annotated[int, typer.Option(help="How many classes to show per image.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
):
    """Classify image files (or every image in a folder) with ONNX Runtime alone, using the preprocessing stored in
    the model. Files that cannot be read are named with the reason, after the others' classes, and exit code 1."""
    from edgenas.errors import listing
    from exporters.predict import predict as run_predict

    if top < 1:
        raise EdgeNASError(f"bad --top {top}: expected 1 or more (how many classes to show per image)")
    if not model.is_file():
        raise EdgeNASError(f"model file {model} does not exist")
    results = run_predict(model, images, top=top)
    if as_json:
        _print_json(results)
    else:
        console = Console(soft_wrap=True, highlight=False)
        for result in results:
            if "top" in result:
                best = ", ".join(f"{t['class']} ({100 * t['probability']:.1f}%)" for t in result["top"])
                console.print(f"{escape(result['image'])}: {best}")
    failed = [result["error"] for result in results if "error" in result]
    if failed:
        rest = len(results) - len(failed)
        classified = f"the other {rest} were classified" if rest else "none was classified"
        summary = f"{len(failed)} of {len(results)} images could not be read ({classified})"
        raise EdgeNASError(f"{summary}: {failed[0]}" if len(failed) == 1 else listing(f"{summary}:", failed))


# ---------------------------------------------------------------- working commands


@_command()
def space(
    name: Annotated[str, typer.Argument(help="Search space: mobile, mobile-small, tiny or macro.")],
    resolution: Annotated[int | None, typer.Option(help="Input resolution (default: the space's).")] = None,
    width_mult: Annotated[float, typer.Option(help="Width multiplier.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
):
    """Show a search space: layers, shapes, candidates and the FLOPs range."""
    from edgenas.cost.flops import cost_table
    from edgenas.cost.presets import extreme
    from edgenas.space.spec import get_space

    resolved = get_space(name, resolution, width_mult)
    table = cost_table(resolved)
    ends = {which: extreme(resolved, 1000, largest=which == "largest") for which in ("smallest", "largest")}
    flops_range = {which: {"layers": list(arch.layers), "flops": table.flops(arch), "params": table.params(arch)}
                   for which, arch in ends.items()}
    if as_json:
        _print_json({**resolved.describe(), "space_hash": resolved.hash, "summary": resolved.spec.summary,
                     "flops_rule": _FLOPS_HOW, "num_classes_for_flops": 1000, **flops_range})
        return
    console = _table_console()
    console.print(f"[bold]{resolved.name}[/bold]: {resolved.spec.summary}")
    console.print(f"resolution {resolved.resolution}x{resolved.resolution}, width x{resolved.width_mult}, "
                  f"hash {resolved.hash}; stem {resolved.stem_channels} channels, stride "
                  f"{resolved.spec.stem_stride}; head {resolved.head_channels} channels")
    grid = Table("layer", "input (CxHxW)", "output (CxHxW)", "stride", "choices", "skip")
    for layer in resolved:
        grid.add_row(layer.label, f"{layer.in_channels}x{layer.in_size}x{layer.in_size}",
                     f"{layer.out_channels}x{layer.out_size}x{layer.out_size}", str(layer.stride),
                     str(len(layer.choices)),
                     "1x1 conv" if layer.skip_is_strided else "yes" if layer.allows_skip else "no")
    console.print(grid)
    skip = ("+ skip on every layer: the identity, or a 1x1 convolution and batch norm where the shape changes"
            if resolved.spec.strided_skip else "+ skip where the shape is kept")
    activation = "" if resolved.spec.activation == "relu6" else f"; activation {resolved.spec.activation}"
    console.print(f"candidates: {', '.join(resolved.spec.candidates)} ({skip}){activation}")
    for which, data in flops_range.items():
        console.print(f"{which:8s} {format_flops(data['flops'])} FLOPs, {format_params(data['params'])} parameters"
                      f" (1000 classes; {_FLOPS_HOW})")


@_command()
def arch(
    preset: Annotated[str, typer.Argument(help="mobilenetv2, largest, smallest or random.")],
    space: Annotated[str, typer.Option(help="Search space.")] = "mobile",
    resolution: Annotated[int | None, typer.Option(help="Input resolution (default: the space's).")] = None,
    width_mult: Annotated[float, typer.Option(help="Width multiplier.")] = 1.0,
    num_classes: Annotated[int, typer.Option(help="Number of classes.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the `random` preset.")] = 0,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
):
    """Write a preset architecture as JSON."""
    from edgenas.cost.presets import preset as make_preset
    from edgenas.space.arch import from_dict
    from edgenas.space.spec import get_space

    if num_classes < 2:
        raise EdgeNASError(f"bad --num-classes {num_classes}: expected at least 2")
    architecture = make_preset(preset, get_space(space, resolution, width_mult), num_classes, seed)
    from_dict(architecture.to_dict())  # what is written must load back
    if output is None:
        _print_json(architecture.to_dict())
    else:
        architecture.save(output)
        Console(stderr=True).print(f"wrote {output}")


@_command()
def flops(
    arch_file: Annotated[Path, typer.Argument(metavar="ARCH.json", help="An architecture JSON file.")],
    verify: Annotated[bool, typer.Option(help="Also count the built network with fvcore and compare.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
):
    """FLOPs and parameters of an architecture, from the space's per-block table."""
    from edgenas.cost.flops import RULE, cost_table
    from edgenas.space.arch import load_arch

    architecture = load_arch(arch_file)
    table = cost_table(architecture.resolve_space())
    result = {"flops": table.flops(architecture), "params": table.params(architecture),
              "method": f"sum of the space's per-block table ({RULE})", "resolution": architecture.resolution}
    if verify:
        from edgenas.cost.flops import count_flops, count_params
        from edgenas.space.network import build_model

        model = build_model(architecture)
        shape = (3, architecture.resolution, architecture.resolution)
        result["verify"] = {"flops": count_flops(model, shape), "params": count_params(model),
                            "method": "fvcore on the whole built network"}
        result["verify"]["agrees"] = (result["verify"]["flops"] == result["flops"]
                                      and result["verify"]["params"] == result["params"])
    if as_json:
        _print_json(result)
    else:
        console = Console(highlight=False, soft_wrap=True)
        console.print(f"FLOPs       {format_flops(result['flops'])} ({result['flops']:,}; {_FLOPS_HOW}, "
                      f"{architecture.resolution}x{architecture.resolution}; sum of the per-block table)")
        console.print(f"parameters  {format_params(result['params'])} ({result['params']:,})")
        if verify:
            check = result["verify"]
            verdict = "[green]agrees[/green]" if check["agrees"] else "[red]DISAGREES[/red]"
            console.print(f"fvcore on the built network: {check['flops']:,} FLOPs, {check['params']:,} "
                          f"parameters: {verdict}")
    if verify and not result["verify"]["agrees"]:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
