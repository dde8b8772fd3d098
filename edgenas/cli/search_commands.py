"""Commands about runs: `search` (a run: search, then retrain), `train` (retrain a run's architecture), `check` (a run
against random and MobileNetV2 arms trained alike), `runs` (the runs in a folder) and `eval` (a run's network on its
test split)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edgenas.cli.launch import launch_ranks, rank
from edgenas.cli.options import Json, Quiet, Verbose, declared_values, json_flag, settings_options
from edgenas.cli.render import output, print_json, print_run, table_console
from edgenas.runs.settings import SearchSettings
from edgenas.units import format_flops


@settings_options(SearchSettings, before="out")
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
    as_json: json_flag("Print the summary as JSON.") = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
    **declared,  # the options generated from SearchSettings' own declarations
):
    """Search an architecture on your data with DA-NAS under FLOPs, latency, model size and peak memory budgets, then
    retrain it."""
    launch_ranks(nproc, declared["device"])
    from edgenas.searching.run import search as run_search
    from edgenas.units import parse_flops, parse_latency_ms

    settings = SearchSettings(
        data=None if data is None else str(data), flops=None if flops is None else parse_flops(flops),
        latency_ms=None if latency is None else parse_latency_ms(latency),
        class_order=None if class_order is None else str(class_order), flip=False if no_flip else None,
        **declared_values(SearchSettings, declared))
    progress, log, echo = output(quiet, verbose, as_json)
    if resume is not None:
        ignored = _given_settings(ctx, ("resume", "nproc", "as_json", "quiet", "verbose"))
        if ignored:
            log(f"note: --resume {resume} keeps the settings the run was started with ({resume}/config.json); "
                f"ignoring {', '.join(ignored)}")
    with rank() as prints:
        result = run_search(settings, out=out, resume=resume, progress=progress, log=log, echo=echo)
    if prints:
        print_run(result, as_json)


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


def train(run: Annotated[Path, typer.Argument(help="A run folder.")],
          epochs: Annotated[int | None, typer.Option(help="Epochs (default: the run's --retrain-epochs).")] = None,
          resume: Annotated[bool, typer.Option("--resume", help="Continue a stopped retraining from its last "
                                               "kept epoch instead of starting over.")] = False,
          nproc: Annotated[int | None, typer.Option(help="Processes (runs under torchrun with DDP).")] = None,
          as_json: json_flag("Print the summary as JSON.") = False,
          quiet: Quiet = False, verbose: Verbose = False):
    """Retrain a run's architecture from scratch and evaluate it on the test split (its results replace the run's
    once complete)."""
    launch_ranks(nproc)
    from edgenas.searching.retrain import retrain

    progress, log, echo = output(quiet, verbose, as_json)
    with rank() as prints:
        result = retrain(run, epochs=epochs, progress=progress, log=log, echo=echo, resume=resume)
    if prints:
        print_run(result, as_json)


def check(run: Annotated[Path, typer.Argument(help="A finished, retrained run folder.")],
          random: Annotated[int, typer.Option(help="Random architectures of the run's budget band to train.")] = 3,
          mobilenetv2: Annotated[bool, typer.Option(help="Also train MobileNetV2 width-scaled to the budget.")] = True,
          seeds: Annotated[int, typer.Option(help="Retrain every network (the searched one too: its first retraining "
                                             "is the run's own) this many times, each with its own retraining "
                                             "seed; accuracies are then means, and the margin's standard error "
                                             "holds the searched network's retraining noise.")] = 1,
          as_json: json_flag("Print the outcome as JSON.") = False,
          quiet: Quiet = False, verbose: Verbose = False):
    """Prove a search on your data: train random architectures of the same budget (and MobileNetV2) with exactly the
    run's recipe, and rank the searched network among them (resumable: run it again to continue)."""
    from edgenas.searching.check import check as run_check

    progress, log, echo = output(quiet, verbose, as_json)
    result = run_check(run, random=random, mobilenetv2=mobilenetv2, seeds=seeds, progress=progress, log=log,
                       echo=echo)
    if as_json:
        print_json(result.to_dict())
        return
    print_check(result)


def print_check(result) -> None:
    seeds = result.seeds
    accuracy = "test acc. (%)" if seeds == 1 else f"test acc. (%, mean +/- sd of {seeds})"
    retrained = "" if seeds == 1 else (f", {seeds} times with retraining seeds 1 (its own run) to {seeds} "
                                       "(RUN/check/NAME-seedS)")
    grid = Table("network", "FLOPs (fvcore)", "latency (ms, table)", accuracy, "run", title=f"check of {result.run}",
                 caption=f"each network retrained from scratch with the run's recipe (data, epochs, seed scheme)"
                         f"{retrained}; test accuracy: top-1 on the run's test split; FLOPs: fvcore, 1 multiply-add = "
                         "1 FLOP; latency: predicted by the run's table")
    for arm in result.arms:
        ms = "-" if arm.predicted_latency_ms is None else f"{arm.predicted_latency_ms:.3f}"
        acc = f"{100 * arm.test_acc:.2f}" + ("" if arm.test_acc_std is None else f" +/- {100 * arm.test_acc_std:.2f}")
        grid.add_row(arm.name, format_flops(arm.flops), ms, acc, arm.run)
    console = table_console(grid)  # wide enough for every cell whole: run folders are long paths
    console.print(grid)
    tied = f", tied with {result.ties}" if result.ties else ""
    sources = "" if seeds == 1 else (f": the searched network's {seeds} retrainings and the random arms' spread"
                                     if result.random_std is not None else
                                     f": the searched and the random arm's {seeds} retrainings each; one random "
                                     "arm leaves the spread of architectures out")
    spread = "" if result.margin_se_points is None else \
        f" +/- {result.margin_se_points:.2f} (standard error{sources})"
    randoms = sum(a.name.startswith("random-") for a in result.arms)
    console.print(f"searched network: rank {result.rank} of {len(result.arms)}{tied}; "
                  f"{result.margin_points:+.2f} points of test accuracy over the mean of {randoms} random "
                  f"architecture(s){spread}; written to {result.run}/check.json")


def list_runs(root: Annotated[Path, typer.Argument(help="The folder of runs.")] = Path("runs"),
              as_json: Json = False):
    """List the runs in ./runs: strategy, budget, FLOPs, test accuracy and state (finished, retraining,
    interrupted)."""
    from edgenas.runs.record import list_runs as find

    found = find(root)
    if as_json:
        print_json(found)
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
    table_console().print(grid if found else f"no runs in {root}")


def evaluate_run(run: Annotated[Path, typer.Argument(help="A run folder.")], as_json: Json = False):
    """Evaluate a run's retrained network on its test split."""
    from edgenas.searching.evaluate import evaluate_run as run_eval

    result = run_eval(run)
    if as_json:
        print_json(result)
    else:
        Console(highlight=False).print(f"test accuracy {100 * result['test_acc']:.2f}% ({result['test_images']} "
                                       f"images of {result['dataset']}, top-1, retrained weights in {run}/model.pt)")


COMMANDS = {"search": search, "train": train, "check": check, "runs": list_runs, "eval": evaluate_run}
