"""`RunSummary`: a finished run's results as summary.json holds them, read into one typed object.

The search writes summary.json as a plain JSON object (units in the key names); the readers (the command line, the
report, its plots and the comparison of runs) read it through `RunSummary.from_dict`, which accepts the summaries of
every earlier version: a key that a run from before it existed lacks takes the value the readers have always assumed
for it (None, or 0 image-steps), and a key this version does not know is kept in `extra`. `to_dict` gives the object
back as the search wrote it, key for key and in the same order, for a summary of this version.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from edgenas.errors import EdgeNASError


@dataclass(frozen=True)
class RunSummary:
    """The fields of summary.json, in the order the search writes them."""

    arch: dict  # the derived architecture as JSON (space, space_hash, resolution, width_mult, num_classes, layers)
    flops: int | None = None  # fvcore on the built network, 1 multiply-add = 1 FLOP
    flops_method: str | None = None
    flops_budget: float | None = None
    within_flops_budget: bool | None = None
    predicted_latency_ms: float | None = None  # by the run's latency table, batch 1; None without a table
    latency_budget_ms: float | None = None
    latency_table: str | None = None  # the table's path
    latency_precision: str | None = None  # fp32 or int8; None before INT8 tables existed (then FP32)
    within_latency_budget: bool | None = None
    latency_budget_verdict: str | None = None  # "met", "met only as predicted ...", ...
    latency_fidelity: dict | None = None  # the table's fidelity (count, within_10pct, ..., note)
    deploy_precision: str | None = None  # of model size and peak memory: fp32 or int8; None before they were counted
    model_size_bytes: int | None = None  # the weights' bytes, counted on the built network (docs/COSTS.md)
    model_size_method: str | None = None
    model_size_budget_bytes: float | None = None
    within_model_size_budget: bool | None = None
    peak_memory_bytes: int | None = None  # the most activation bytes live at once at batch 1
    peak_memory_method: str | None = None
    peak_memory_budget_bytes: float | None = None
    within_peak_memory_budget: bool | None = None
    params: int | None = None
    inherited_val_acc: float | None = None  # supernet weights, search-validation split (fraction, not %)
    val_acc: float | None = None
    test_acc: float | None = None  # retrained, top-1 on the test split; None when not retrained
    search_seconds: float | None = None
    retrain_seconds: float | None = None  # None when not retrained
    search_images: int = 0  # image-steps of search (wall-clock work)
    schedule_scale: float | None = None
    full_data_epochs: float | None = None
    strategy: str | None = None
    choice: str | None = None  # the final choice's method; None for a single draw
    classes: list | None = None
    dataset: str | None = None
    resolution: int | None = None
    accuracy_method: str = ""
    flops_budget_default: str | None = None  # why the default FLOPs budget is what it is, when it was not given
    extra: dict = field(default_factory=dict)  # keys of a newer version, kept as they are

    @classmethod
    def from_dict(cls, data: dict, source: str = "summary.json") -> RunSummary:
        if not isinstance(data, dict) or not isinstance(data.get("arch"), dict):
            raise EdgeNASError(f"{source}: expected a JSON object with the run's 'arch'")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        """The summary as summary.json holds it (a key missing from an older run's file comes back with its default)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**data, **self.extra}

    @property
    def precision(self) -> str:
        """The latency table's precision: fp32 or int8 (runs from before INT8 tables: fp32)."""
        return self.latency_precision or "fp32"

    @property
    def budget_verdict(self) -> str:
        """Whether the latency budget was met, in words (runs from before the verdict was recorded: met or not)."""
        return self.latency_budget_verdict or ("met" if self.within_latency_budget else "NOT met")

    @property
    def layers(self) -> list[str]:
        return self.arch["layers"]
