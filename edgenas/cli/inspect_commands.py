"""Commands that describe without training: `space` (a search space's layers and FLOPs range), `arch` (a preset
architecture as JSON) and `flops` (an architecture's FLOPs and parameters). None needs torch for its answer, except
`flops --verify`, which builds the network."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edgenas.cli.options import Json, setting
from edgenas.cli.render import FLOPS_HOW, print_json, table_console
from edgenas.errors import EdgeNASError
from edgenas.profiling.settings import ProfileSettings  # declares the space options every command shares
from edgenas.units import format_flops, format_params


def space(
    name: Annotated[str, typer.Argument(help="Search space: mobile, mobile-small, tiny or macro.")],
    resolution: setting(ProfileSettings, "resolution") = ProfileSettings.resolution,
    width_mult: setting(ProfileSettings, "width_mult") = ProfileSettings.width_mult,
    as_json: Json = False,
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
        print_json({**resolved.describe(), "space_hash": resolved.hash, "summary": resolved.spec.summary,
                    "flops_rule": FLOPS_HOW, "num_classes_for_flops": 1000, **flops_range})
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
                      f" (1000 classes; {FLOPS_HOW})")


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


def flops(
    arch_file: Annotated[Path, typer.Argument(metavar="ARCH.json", help="An architecture JSON file.")],
    verify: Annotated[bool, typer.Option(help="Also count the built network with fvcore and compare.")] = False,
    as_json: Json = False,
):
    """FLOPs and parameters of an architecture, from the space's per-block table."""
    from edgenas.cost.arch_cost import flops_of
    from edgenas.space.arch import load_arch

    architecture = load_arch(arch_file)
    result = flops_of(architecture, verify)
    if as_json:
        print_json(result)
    else:
        console = Console(highlight=False, soft_wrap=True)
        console.print(f"FLOPs       {format_flops(result['flops'])} ({result['flops']:,}; {FLOPS_HOW}, "
                      f"{architecture.resolution}x{architecture.resolution}; sum of the per-block table)")
        console.print(f"parameters  {format_params(result['params'])} ({result['params']:,})")
        if verify:
            check = result["verify"]
            verdict = "[green]agrees[/green]" if check["agrees"] else "[red]DISAGREES[/red]"
            console.print(f"fvcore on the built network: {check['flops']:,} FLOPs, {check['params']:,} "
                          f"parameters: {verdict}")
    if verify and not result["verify"]["agrees"]:
        raise typer.Exit(1)


COMMANDS = {"space": space, "arch": arch, "flops": flops}
