"""Commands that describe without training: `space` (a search space's layers and its range of FLOPs, model size and
peak memory), `arch` (a preset architecture as JSON) and `cost` (an architecture's FLOPs, parameters, model size and
peak memory, and with a table its latency; `flops` is its old name). None needs torch for its answer from cached
tables, except `cost --verify`, which builds the network, and `cost --table`."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edgenas.cli.options import Json, setting
from edgenas.cli.render import FLOPS_HOW, MEMORY_HOW, print_json, table_console
from edgenas.errors import EdgeNASError
from edgenas.profiling.settings import ProfileSettings  # declares the space options every command shares
from edgenas.units import format_bytes, format_flops, format_params


def space(
    name: Annotated[str, typer.Argument(help="Search space: mobile, mobile-small, tiny, macro or mcu.")],
    resolution: setting(ProfileSettings, "resolution") = ProfileSettings.resolution,
    width_mult: setting(ProfileSettings, "width_mult") = ProfileSettings.width_mult,
    num_classes: Annotated[int, typer.Option(help="Classes of the ranges (the head's classifier).")] = 1000,
    as_json: Json = False,
):
    """Show a search space: layers, shapes, candidates, and the range of FLOPs, model size and peak memory."""
    from edgenas.cost.flops import cost_table
    from edgenas.cost.memory import PRECISIONS
    from edgenas.cost.memory_table import PEAK_RULE, SIZE_RULE, memory_table
    from edgenas.cost.presets import extreme
    from edgenas.space.spec import get_space

    if num_classes < 2:
        raise EdgeNASError(f"bad --num-classes {num_classes}: expected at least 2")
    resolved = get_space(name, resolution, width_mult)
    table, memory = cost_table(resolved), memory_table(resolved)
    ends = {which: extreme(resolved, num_classes, largest=which == "largest") for which in ("smallest", "largest")}
    flops_range = {which: {"layers": list(arch.layers), "flops": table.flops(arch), "params": table.params(arch)}
                   for which, arch in ends.items()}
    memory_range = {precision: memory.ranges(num_classes, precision) for precision in PRECISIONS}
    if as_json:
        print_json({**resolved.describe(), "space_hash": resolved.hash, "summary": resolved.spec.summary,
                    "flops_rule": FLOPS_HOW, "num_classes_for_flops": num_classes, **flops_range,
                    "memory_range": {**memory_range, "num_classes": num_classes, "model_size_rule": SIZE_RULE,
                                     "peak_memory_rule": PEAK_RULE}})
        return
    console = table_console()
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
                      f" ({num_classes} classes; {FLOPS_HOW})")
    for what, key in (("model size", "model_size_bytes"), ("peak memory", "peak_memory_bytes")):
        spans = ", ".join(f"{precision.upper()} {format_bytes(memory_range[precision][key][0])} to "
                          f"{format_bytes(memory_range[precision][key][1])}" for precision in PRECISIONS)
        console.print(f"{what:11s} {spans} ({num_classes} classes; least and most of any network; {MEMORY_HOW})")


def arch(
    preset: Annotated[str, typer.Argument(help="mobilenetv2, largest, smallest or random.")],
    space: setting(ProfileSettings, "space") = ProfileSettings.space,
    resolution: setting(ProfileSettings, "resolution") = ProfileSettings.resolution,
    width_mult: setting(ProfileSettings, "width_mult") = ProfileSettings.width_mult,
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
        print_json(architecture.to_dict())
    else:
        architecture.save(output)
        Console(stderr=True).print(f"wrote {output}")


def cost(
    arch_file: Annotated[Path, typer.Argument(metavar="ARCH.json", help="An architecture JSON file.")],
    table: Annotated[str | None, typer.Option(help="Latency table (device name or path): adds the predicted "
                                              "latency.")] = None,
    verify: Annotated[bool, typer.Option(help="Also count the built network (fvcore for FLOPs, the memory count for "
                                         "model size and peak memory) and compare.")] = False,
    as_json: Json = False,
):
    """FLOPs, parameters, model size and peak memory (FP32 and INT8) of an architecture from the space's per-block
    tables, and with --table its predicted latency."""
    from edgenas.cost.arch_cost import flops_of, latency_of, memory_of
    from edgenas.space.arch import load_arch

    architecture = load_arch(arch_file)
    result = flops_of(architecture, verify)
    result["memory"] = memory_of(architecture, verify)
    if table is not None:
        from edgenas.cost.latency import load_table

        result["latency"] = latency_of(architecture, load_table(table))
    agrees = not verify or (result["verify"]["agrees"] and result["memory"]["verify"]["agrees"])
    if as_json:
        print_json(result)
    else:
        _print_cost(architecture, result, verify)
    if not agrees:
        raise typer.Exit(1)


def _print_cost(architecture, result: dict, verify: bool) -> None:
    console = Console(highlight=False, soft_wrap=True)
    r = architecture.resolution
    console.print(f"FLOPs        {format_flops(result['flops'])} ({result['flops']:,}; {FLOPS_HOW}, {r}x{r}; sum of "
                  "the per-block table)")
    console.print(f"parameters   {format_params(result['params'])} ({result['params']:,})")
    memory = result["memory"]
    for what, key, how in (("model size", "model_size_bytes", "weights, batch norm folded; sum of the per-block table"),
                           ("peak memory", "peak_memory_bytes", "activations live at once, batch 1; largest of the "
                                                                "per-block peaks")):
        console.print(f"{what:12s} " + ", ".join(f"{p.upper()} {format_bytes(memory[p][key])} ({memory[p][key]:,} "
                                                  "bytes)" for p in ("fp32", "int8")) + f" ({how}; {MEMORY_HOW})")
    if "latency" in result:
        latency = result["latency"]
        console.print(f"latency      {latency['predicted_ms']:.3f} ms (predicted by {latency['precision'].upper()} "
                      f"table {latency['device']}, batch 1; `edgenas latency` says more)")
    else:
        console.print("latency      not predicted: --table DEVICE predicts it from a latency table (`edgenas tables`)")
    if verify:
        check, counted = result["verify"], memory["verify"]
        verdict = "[green]agrees[/green]" if check["agrees"] and counted["agrees"] else "[red]DISAGREES[/red]"
        console.print(f"on the built network: {check['flops']:,} FLOPs (fvcore), {check['params']:,} parameters, "
                      f"model size FP32 {counted['fp32']['model_size_bytes']:,} / INT8 "
                      f"{counted['int8']['model_size_bytes']:,} bytes, peak memory FP32 "
                      f"{counted['fp32']['peak_memory_bytes']:,} / INT8 {counted['int8']['peak_memory_bytes']:,} "
                      f"bytes: {verdict}")


def flops(**given):
    return cost(**given)


flops.__signature__ = inspect.signature(cost, eval_str=True)  # the same arguments and options, for typer
flops.__doc__ = "The old name of `edgenas cost`, kept: the same costs, options and output."

COMMANDS = {"space": space, "arch": arch, "cost": cost, "flops": flops}
OLD_NAMES = ("flops",)  # still answered, not listed in the help
