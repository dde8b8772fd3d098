"""What a run needs at hand, resolved once from its settings: device, data, space, FLOPs and latency tables, the cost
model, the budgets and a given class order. Everything that can refuse a run is checked here, before its folder
exists."""

from __future__ import annotations

from edgenas.cost.cost_model import CostModel
from edgenas.cost.flops import cost_table
from edgenas.cost.latency import LatencyTable, load_table
from edgenas.cost.memory_table import memory_table
from edgenas.data.dataset import Dataset
from edgenas.errors import EdgeNASError
from edgenas.files import read_json
from edgenas.runs.folder import Run
from edgenas.runs.settings import SearchSettings, default_resolution, load_data
from edgenas.searching.budgets import Budgets, resolve_budgets
from edgenas.space.arch import make_arch
from edgenas.space.spec import Space, get_space
from edgenas.training.device import Device


class Context:
    """A run's settings resolved: what every part of the search reads and none changes."""

    def __init__(self, settings: SearchSettings, run: Run, log):
        self.settings, self.run, self.log = settings, run, log
        self.device = pick_device(settings)
        self.resolution = default_resolution(settings)
        self.space: Space = get_space(settings.space, self.resolution, settings.width_mult)
        self.data: Dataset = load_data(settings, self.resolution).to(self.device.device)
        for note in self.data.notes:  # also in config.json (resolved.data.notes)
            log(f"warning: {note}")
        self.num_classes = self.data.num_classes
        self.flops_table = cost_table(self.space)
        self.table: LatencyTable | None = load_table(settings.table) if settings.table else None
        if self.table is not None:
            probe = make_arch(self.space, [layer.choices[0] for layer in self.space], self.num_classes)
            self.table.check(probe)
        self.precision = deploy_precision(settings, self.table)
        self.cost = CostModel.build(self.space, self.num_classes, self.flops_table, self.table)
        if settings.model_size is not None or settings.peak_memory is not None:
            self.cost.with_memory(memory_table(self.space), self.precision)
        self.budgets: Budgets = resolve_budgets(settings.flops, settings.latency_ms, self.space, self.num_classes,
                                                self.flops_table, self.cost, self.table, log, settings.model_size,
                                                settings.peak_memory)
        self.class_order = read_class_order(settings.class_order, self.data.classes) if settings.class_order else None

    def describe_budgets(self) -> dict:
        """The budgets as config.json's `resolved.budgets` holds them."""
        b = self.budgets
        described = {"flops": b.flops, "flops_binds": b.flops_binds, "latency_ms": b.ms,
                     "latency_binds": b.latency_binds, "table": self.table.source if self.table else None}
        if b.size is None and b.peak is None:
            return described
        return {**described, "precision": b.precision, "model_size_bytes": b.size, "model_size_binds": b.size_binds,
                "peak_memory_bytes": b.peak, "peak_memory_binds": b.peak_binds}

    def binding_budgets(self) -> tuple[float | None, float | None]:
        """The FLOPs and latency budgets that bind (None where one does not): the ones the search works against."""
        b = self.budgets
        return (b.flops if b.flops_binds else None), (b.ms if b.latency_binds else None)

    def binding_size(self) -> float | None:
        """The model size budget in bytes where it binds (an additive cost, like FLOPs), else None."""
        return self.budgets.size if self.budgets.size_binds else None

    def allowed(self):
        """Per layer and candidate, whether it is within the peak memory budget where one binds (else None)."""
        return self.cost.allowed(self.budgets.peak) if self.budgets.peak_binds else None


def deploy_precision(settings: SearchSettings, table: LatencyTable | None) -> str:
    """The precision the memory budgets count at: as given, or (`auto`) the latency table's, else fp32."""
    if settings.deploy_precision != "auto":
        return settings.deploy_precision
    return table.precision if table is not None else "fp32"


def pick_device(settings: SearchSettings) -> Device:
    return Device.pick(settings.device, settings.precision, settings.memory_format, settings.compile)


def read_class_order(path: str, names: list[str]) -> list[int]:
    """A class order file: {"order": [...]} (or a bare list) of class names or indices, easiest first."""
    data = read_json(path, "class order file")
    order = data.get("order") if isinstance(data, dict) else data
    try:
        indices = [names.index(x) if isinstance(x, str) else int(x) for x in order]
    except (ValueError, TypeError):
        indices = None
    if indices is None or sorted(indices) != list(range(len(names))):
        raise EdgeNASError(f"class order file {path}: expected 'order' to list each of the {len(names)} classes once "
                           f"(names such as {names[0]!r} or indices 0 to {len(names) - 1})")
    return indices
