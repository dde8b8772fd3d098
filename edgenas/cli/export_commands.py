"""Commands that ship a network: `export` (the run's network as a file of a runtime, verified on it) and `predict`
(classify images with that file and its runtime alone)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from edgenas.cli.options import Json, Quiet, json_flag, settings_from, settings_options
from edgenas.cli.render import output, print_json, print_report, speed
from edgenas.errors import EdgeNASError
from exporters.settings import ExportSettings


@settings_options(ExportSettings, before="as_json")
def export(
    out: Annotated[Path, typer.Argument(help="The file to write: .onnx (ONNX Runtime), .xml (OpenVINO), .tflite "
                                             "(LiteRT).")],
    run: Annotated[Path | None, typer.Option(help="Run folder (default: the newest in ./runs).")] = None,
    as_json: json_flag("Print the report as JSON.") = False,
    quiet: Quiet = False,
    **declared,  # the options generated from ExportSettings
):
    """Export the searched network for a runtime (by OUT's suffix, or --runtime) and prove it on that runtime."""
    from exporters.export import export_model, newest_run

    settings = settings_from(ExportSettings, declared)
    console = Console(stderr=True, soft_wrap=True, highlight=False)
    progress, _, echo = output(quiet, False, as_json)
    if run is None:
        run = newest_run()
        if not quiet:
            console.print(f"run {run} (the newest in ./runs; --run chooses another)")
    result = export_model(run, out, **asdict(settings), warn=lambda text: console.print(f"[yellow]{text}[/yellow]"),
                         log=None if quiet else console.print, progress=progress, echo=echo)
    if result.pt2 is not None:
        console.print(f"wrote {result.pt2} (torch.export, same outputs as the network on random inputs; load it "
                      "with torch.export.load(PATH).module(), no edgenas needed)")
    if not settings.verify:
        console.print(f"wrote {result.path} (not verified)")
        return
    if as_json:
        print_json(result.report)
    elif quiet:
        Console(highlight=False, soft_wrap=True).print(f"{result.path}: {'passed' if result.passed else 'failed'} "
                                                       f"(report: {result.report_path})")
    else:
        print_report(result.report, result.path, result.report_path)
    notes = result.report["notes"] + (result.report["table"]["notes"] if result.report["table"] else [])
    for note in [] if quiet else notes:
        console.print(f"[yellow]{escape(note)}[/yellow]")
    q = result.report["int8"]
    if q and q["file"] and q["latency"]["median_ms"] > q["fp32_latency_ms"] and not quiet:
        console.print(f"[yellow]note: the INT8 file is {speed(q['latency']['median_ms'], q['fp32_latency_ms'])} "
                      f"than the FP32 file here ({result.report['runtime']['title']}, batch 1): it saves size, not "
                      "time, on this machine[/yellow]")
    if not result.passed:
        deleted = "; ".join(result.report["failures"])
        if result.report.get("deleted"):
            deleted += f"; {result.path} was deleted (--keep-failed keeps it)"
        raise EdgeNASError(f"verification failed: {deleted} (report: {result.report_path})")


def predict(
    model: Annotated[Path, typer.Argument(help="A file written by edgenas export (.onnx, .xml, .tflite).")],
    images: Annotated[list[Path], typer.Argument(help="Image files, or folders of them.")],
    top: Annotated[int, typer.Option(help="How many classes to show per image.")] = 1,
    as_json: Json = False,
):
    """Classify image files (or every image in a folder) with the model's runtime alone (ONNX Runtime, OpenVINO,
    LiteRT), using the preprocessing stored in the model. Files that cannot be read are named with the reason, after
    the others' classes, and exit code 1."""
    from edgenas.errors import listing
    from exporters.predict import predict as run_predict

    if top < 1:
        raise EdgeNASError(f"bad --top {top}: expected 1 or more (how many classes to show per image)")
    if not model.is_file():
        raise EdgeNASError(f"model file {model} does not exist")
    results = run_predict(model, images, top=top)
    if as_json:
        print_json(results)
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


COMMANDS = {"export": export, "predict": predict}
