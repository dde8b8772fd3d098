"""A finished run's summary (summary.json, what `edgenas search` prints): the derived network's FLOPs, checked by
fvcore on the built network against the table, its predicted latency, its model size and peak memory counted on the
built network (against the memory table where the search used one), budget verdicts, accuracies and the cost of the
search; units in the key names."""

from __future__ import annotations

from edgenas.cost.cost_model import check_keys
from edgenas.cost.flops import cost_table, count_flops
from edgenas.cost.latency import budget_verdict
from edgenas.cost.memory_table import PEAK_RULE, SIZE_RULE, memory_of_network
from edgenas.errors import EdgeNASError
from edgenas.runs.checkpoint import Checkpoint
from edgenas.searching.job import Job
from edgenas.space.arch import Arch
from edgenas.space.network import build_model

ACCURACY_METHOD = "top-1 on the test split (never seen by the search), retrained from scratch"
FLOPS_METHOD = "fvcore on the built network (1 multiply-add = 1 FLOP, batch norm folded)"


def costs(job: Job, arch: Arch) -> tuple[int, float | None]:
    """The table's FLOPs and predicted milliseconds of `arch` (None where the table cannot predict it)."""
    context = job.context
    flops, ms = context.cost.of(arch)
    if arch.width_mult != context.space.width_mult:  # the mobilenetv2 baseline scales its width
        flops = cost_table(arch.resolve_space()).flops(arch)
        ms = context.table.predict(arch) if context.table is not None and \
            context.table.data["space_hash"] == arch.space_hash else None
    elif context.table is not None:
        check_keys(context.cost, context.table, arch)
        ms = context.table.predict(arch)
    return flops, ms


def memory(job: Job, arch: Arch, model) -> dict:
    """summary.json's model size and peak memory of `arch` at the run's deployment precision, counted on the built
    network `model`, checked against the memory table the search used (where it used one), and their budgets."""
    context, budgets = job.context, job.context.budgets
    counted = memory_of_network(model, arch, context.precision)
    size, peak = counted["model_size_bytes"], counted["peak_memory_bytes"]
    checked = context.cost.size is not None and arch.width_mult == context.space.width_mult
    if checked and (size, peak) != context.cost.memory_of(arch):
        raise EdgeNASError(f"internal check failed: memory table {context.cost.memory_of(arch)} != counted on the "
                               f"built network {(size, peak)} (model size, peak memory in bytes)")
    return {"deploy_precision": context.precision,
            "model_size_bytes": size, "model_size_method": f"counted on the built network: {SIZE_RULE}",
            "model_size_budget_bytes": budgets.size,
            "within_model_size_budget": None if budgets.size is None else size <= budgets.size,
            "peak_memory_bytes": peak, "peak_memory_method": f"counted on the built network: {PEAK_RULE}",
            "peak_memory_budget_bytes": budgets.peak,
            "within_peak_memory_budget": None if budgets.peak is None else peak <= budgets.peak}


def summary(job: Job, arch: Arch, checkpoint: Checkpoint) -> dict:
    """summary.json's keys and values, in their order (`flops_budget_default` is added last by the caller)."""
    context, budgets, table = job.context, job.context.budgets, job.context.table
    flops, ms = costs(job, arch)
    model = build_model(arch)
    fvcore_flops = count_flops(model, (3, arch.resolution, arch.resolution))
    if fvcore_flops != flops:
        raise EdgeNASError(f"internal check failed: table FLOPs {flops} != fvcore {fvcore_flops}")
    retraining = checkpoint.retraining
    fidelity = table.fidelity() if table is not None else None
    judged = budgets.ms is not None and ms is not None
    return {
        "arch": arch.to_dict(),
        "flops": flops, "flops_method": FLOPS_METHOD,
        "flops_budget": budgets.flops, "within_flops_budget": flops <= budgets.flops,
        "predicted_latency_ms": ms, "latency_budget_ms": budgets.ms,
        "latency_table": table.source if table else None,
        "latency_precision": table.precision if table else None,
        "within_latency_budget": ms <= budgets.ms if judged else None,
        "latency_budget_verdict": budget_verdict(ms, budgets.ms, fidelity) if judged else None,
        "latency_fidelity": fidelity,
        **memory(job, arch, model),
        "params": sum(p.numel() for p in model.parameters()),
        "inherited_val_acc": checkpoint.inherited_val_acc,
        "val_acc": retraining.val_acc, "test_acc": retraining.test_acc,
        "search_seconds": checkpoint.search_seconds, "retrain_seconds": retraining.seconds,
        "search_images": checkpoint.images or 0, "schedule_scale": checkpoint.schedule_scale,
        "full_data_epochs": checkpoint.full_data_epochs, "strategy": job.settings.strategy,
        "choice": job.strategy.choice_made(job.settings.final_choice),
        "classes": context.data.classes, "dataset": context.data.name, "resolution": context.resolution,
        "accuracy_method": ACCURACY_METHOD,
    }
