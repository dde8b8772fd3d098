"""`search(settings)`: one run from data to a retrained network, resumable from its last checkpoint.

Order of work: load and split the data; resolve the space, FLOPs and latency tables and the budgets (an infeasible
budget is refused before any training); run the strategy (DA-NAS or a baseline) with a checkpoint after every phase
and after any epoch that ends a minute or more after the last checkpoint; derive the architecture under the budgets
and check it with fvcore and the table; evaluate it with the supernet's weights (batch norm recalibrated); retrain
it from scratch (on Ctrl-C, its last epoch is kept) and evaluate it on the test split.

`retrain(run)` (`edgenas train`) retrains a run again in RUN/retraining.partial/, whose results replace the run's
only once complete.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import math
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from edgenas.cost.cost_model import CostModel, CostObjective, check_keys
from edgenas.cost.flops import cost_table, count_flops
from edgenas.cost.latency import LatencyTable, load_table
from edgenas.data.batches import batch_sizes
from edgenas.data.dataset import Dataset, count_images
from edgenas.errors import EdgeNASError
from edgenas.files import claim_folder
from edgenas.progress import Bar, Clock, Work, silent
from edgenas.runs.folder import Run
from edgenas.runs.settings import SearchSettings, default_resolution, load_data
from edgenas.runs.weights import load_model, save_weights
from edgenas.space.arch import Arch, from_dict, make_arch
from edgenas.space.network import build_model
from edgenas.space.spec import Space, get_space
from edgenas.space.supernet import Supernet
from edgenas.strategies import choice, danas, fairness, scoring
from edgenas.strategies.baselines import mobilenetv2_within_budget, random_within_budget
from edgenas.strategies.schedule import auto_scale, classes_admitted, parse_schedule, scale
from edgenas.training import distributed
from edgenas.training.train import (
    Device,
    SupernetSettings,
    TrainSettings,
    chance_warning,
    evaluate,
    make_optimizer,
    per_class_accuracy,
    supernet_epoch,
    train_epoch,
)
from edgenas.units import format_flops

CHECKPOINT_SECONDS = 60.0  # the most training a kill between phases loses


@dataclass
class SearchResult:
    """A finished run: its folder and the summary `edgenas search` prints (units in the key names)."""

    run: Path
    summary: dict = field(default_factory=dict)
    report: Path | None = None  # RUN/report.html; None when drawing it failed (the run itself is complete)

    @property
    def arch(self) -> Arch:
        return from_dict(self.summary["arch"])

    @property
    def flops(self) -> int:
        return self.summary["flops"]

    @property
    def predicted_latency_ms(self) -> float | None:
        return self.summary["predicted_latency_ms"]

    @property
    def test_acc(self) -> float | None:
        return self.summary["test_acc"]


def _versions() -> dict:
    import fvcore  # noqa: F401  (present: FLOPs are counted with it)
    import onnxruntime
    import torchvision

    from edgenas.version import __version__

    return {"edgenas": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "onnxruntime": onnxruntime.__version__, "python": platform.python_version()}


class _Context:
    """What a run needs at hand: settings, data, space, costs, budgets, device, generator."""

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
        self.cost = CostModel.build(self.space, self.num_classes, self.flops_table, self.table)
        self.flops_budget, self.ms_budget = self._budgets()
        self.class_order = read_class_order(settings.class_order, self.data.classes) if settings.class_order else None

    def _budgets(self) -> tuple[float | None, float | None]:
        s, space = self.settings, self.space
        lowest = make_arch(space, [min(layer.choices, key=lambda c, la=layer.label: self.flops_table.layers[la][c])
                                   for layer in space], self.num_classes)
        highest = make_arch(space, [max(layer.choices, key=lambda c, la=layer.label: self.flops_table.layers[la][c])
                                    for layer in space], self.num_classes)
        low, high = self.flops_table.flops(lowest), self.flops_table.flops(highest)
        flops = s.flops
        if flops is None:
            if space.spec.mobilenetv2_depths is not None:
                from edgenas.cost.presets import mobilenetv2

                flops = self.flops_table.flops(mobilenetv2(space, self.num_classes))
            else:
                flops = (low + high) // 2
        if flops < low:
            unit = f" (a number without a unit counts FLOPs: did you mean {flops}M?)" if flops < 1000 else ""
            raise EdgeNASError(f"FLOPs budget {format_flops(flops)} is infeasible: the smallest network of space "
                               f"{space.name} at {space.resolution}x{space.resolution}, width {space.width_mult}, "
                               f"{self.num_classes} classes has {format_flops(low)} FLOPs{unit}")
        self.flops_binds = flops < high
        if not self.flops_binds:
            self.log(f"FLOPs budget {format_flops(flops)} does not bind: the largest network has "
                     f"{format_flops(high)} FLOPs")
        ms = s.latency_ms
        self.latency_binds = False
        if ms is not None:
            fastest_ms, slowest_ms = self.cost.ms_range()
            if ms < fastest_ms:
                raise EdgeNASError(f"latency budget {ms:g} ms is infeasible: the fastest network of space "
                                   f"{space.name} ({self.num_classes} classes) is predicted at {fastest_ms:.3f} ms by "
                                   f"table {self.table.name}{self._not_smallest(fastest_ms)}")
            self.latency_binds = ms < slowest_ms
            if not self.latency_binds:
                self.log(f"latency budget {ms:g} ms does not bind: the slowest network is predicted at "
                         f"{slowest_ms:.3f} ms")
            # Both budgets together can be infeasible even when each alone is not.
            fastest = self.cost.fastest(flops)
            if fastest[1] > ms:
                fewest = self.cost.fewest_flops(ms)[1]
                raise EdgeNASError(
                    f"the budgets {format_flops(flops)} FLOPs and {ms:g} ms cannot be met together by any network of "
                    f"space {space.name}: within {format_flops(flops)} FLOPs the fastest is predicted at "
                    f"{fastest[1]:.3f} ms, and within {ms:g} ms the fewest FLOPs are {format_flops(fewest)} (table "
                    f"{self.table.name})")
        return float(flops), ms

    def _not_smallest(self, fastest_ms: float) -> str:
        """Where the fewest FLOPs are not the fastest, a clause that says so (`edgenas latency` shows both)."""
        from edgenas.cost.presets import preset

        smallest = self.cost.of(preset("smallest", self.space, self.num_classes))[1]
        return (f" (the `smallest` preset, of fewest FLOPs, at {smallest:.3f} ms: fewest FLOPs is not fastest)"
                if smallest > fastest_ms + 5e-4 else "")

    def describe_budgets(self) -> dict:
        return {"flops": self.flops_budget, "flops_binds": self.flops_binds, "latency_ms": self.ms_budget,
                "latency_binds": self.latency_binds, "table": self.table.source if self.table else None}


def pick_device(settings: SearchSettings) -> Device:
    return Device.pick(settings.device, settings.precision, settings.memory_format, settings.compile)


def read_class_order(path: str, names: list[str]) -> list[int]:
    """A class order file: {"order": [...]} (or a bare list) of class names or indices, easiest first."""
    from edgenas.files import read_json

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


def _default_run_name(settings: SearchSettings) -> Path:
    budget = format_flops(settings.flops) if settings.flops else "default"
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{settings.strategy}-{budget}-seed{settings.seed}"


def search(settings: SearchSettings | None = None, *, out: str | Path | None = None, resume: str | Path | None = None,
           progress: bool = True, log=print, echo=None) -> SearchResult:
    """Run a search and the retraining of its result; `resume` continues a stopped run where it stopped.

    `progress` draws a rich bar; `log` receives notices (a budget that does not bind...); `echo`, when given,
    receives one plain line per epoch (for logs, where no bar is drawn).

    Under torchrun (several ranks) every rank calls this with the same arguments; rank 0 alone writes and prints.
    """
    ranks = distributed.Ranks.from_env()
    if not ranks.main:
        progress, log, echo = False, silent, None
    if resume is not None:
        run = Run.open(resume, writer=ranks.main)
        settings = SearchSettings.of_run(run)
        if run.has("summary.json"):
            report = run.file("report.html")
            log(f"run {run.path} is finished: nothing to resume (its summary follows; `edgenas train {run.path}` "
                "retrains it again)")
            return SearchResult(run.path, run.read("summary.json", "run summary"),
                                report if report.is_file() else None)
    else:
        settings = settings or SearchSettings()
        settings.validate()
        # Paths are stored absolute, so that the run can be resumed, evaluated and exported from anywhere.
        for name in ("data", "class_order"):
            if getattr(settings, name) is not None:
                settings = dataclasses.replace(settings, **{name: str(Path(getattr(settings, name)).resolve())})
        if settings.table is not None and (settings.table.endswith(".json") or "/" in settings.table):
            settings = dataclasses.replace(settings, table=str(Path(settings.table).resolve()))
        path = Path(out) if out is not None else _default_run_name(settings)
        if out is not None and path.exists() and any(path.iterdir()):
            raise EdgeNASError(f"run folder {path} already exists and is not empty; use --resume {path} to continue "
                               "it, or choose another --out")
    torch.manual_seed(settings.seed)
    if resume is None:
        # Everything that can refuse the run (data, space, tables, budgets) is checked before the folder exists.
        context = _Context(settings, Run(path), log)
        # Rank 0 names and creates the folder (a default name holds the time and the seed, and gets a numeric
        # suffix when another run took it first); the others read its name.
        if out is None and ranks.main:
            path = claim_folder(path)
        path = distributed.broadcast(path, context.device.ranks)
        if not ranks.main:
            distributed.barrier(ranks)
            context.run = Run.open(path, writer=False)
            return _Search(context).go(progress, echo)
        run = Run.create(path, {"settings": dataclasses.asdict(settings), "versions": _versions(),
                                "resolved": {"resolution": context.resolution, "space_hash": context.space.hash,
                                             "budgets": context.describe_budgets(),
                                             "data": context.data.describe(), **context.device.describe(),
                                             "world_size": ranks.world}})
        distributed.barrier(ranks)
        context.run = run
    else:
        context = _Context(settings, run, log)
    return _Search(context).go(progress, echo)


class _Search:
    def __init__(self, context: _Context, work: Run | None = None):
        self.c = context
        self.s = context.settings
        # Where checkpoints, history and model.pt are written: the run, or for `edgenas train` the folder of a new
        # retraining (RETRAINING), moved into the run once complete.
        self.run = work or context.run
        self.generator = torch.Generator().manual_seed(self.s.seed)
        self.saved_at = time.perf_counter()  # when the checkpoint was last written (or the run started)
        self.clock = Clock([], 0, silent)  # the time estimate, made by go() from the run's plan

    # -------------------------------------------------------------- the whole run
    def go(self, progress: bool, echo=None) -> SearchResult:
        state = self.run.load_checkpoint(warn=self.c.log) or {}
        if state:
            torch.set_rng_state(state["torch_rng"])
            self.generator.set_state(state["generator"])
        history = self.run.history()[: state.get("history_rows", 0)]
        self.run.set_history(history)
        self.c.log(f"resuming run {self.run.path} after {_epochs(history)} epochs" if state
                   else f"run {self.run.path}")
        plan = self._plan(state)
        self.c.log(_describe_plan(plan, self.c.data.size("train"), self.s.batch_size))
        if self._default_budget():
            self.c.log(f"FLOPs budget {format_flops(self.c.flops_budget)}: the default, {self._default_budget()} "
                       "(--flops sets one)")
        if self.c.ms_budget is not None:  # the table decides what is budgeted: FP32 or INT8 milliseconds
            self.c.log(f"latency budget {self.c.ms_budget:g} ms ({self.c.table.describe()})")
        self.clock = Clock(plan, _epochs(history), self.c.log, prior=self._standalone_prior(plan, _epochs(history)),
                           prior_how="timed before the search on a network drawn within the budgets")
        try:
            with Bar(progress, echo, on_step=self.clock.step) as bar:
                if "arch" not in state:
                    state = self._search(state, history, bar)
                arch = from_dict(state["arch"], str(self.run.file("checkpoint.pt")))
                if not self.run.has("arch.json") and self.run.writer:
                    arch.save(self.run.file("arch.json"))
                state = self._retrain(arch, state, history, bar)
        except KeyboardInterrupt:
            command = f"edgenas search --resume {self.run.path}"
            kept = self.run.load_checkpoint() or {}  # what a resumed run starts from (history.jsonl may be ahead)
            raise KeyboardInterrupt(f"{_epochs(self.run.history()[: kept.get('history_rows', 0)])} epochs kept in "
                                    f"{self.run.path}; continue with {command}") from None
        return self._finish(arch, state)

    def _finish(self, arch: Arch, state: dict) -> SearchResult:
        """summary.json (for `edgenas train`, written with the new retraining, then moved into the run with it),
        the chance-level warning and the report."""
        summary = self._summary(arch, state)
        summary["flops_budget_default"] = self._default_budget()
        self.run.write("summary.json", summary)
        if self.run is not self.c.run:
            _move_retraining(self.run, self.c.run)
        warning = None if summary["test_acc"] is None else chance_warning(
            summary["test_acc"], self.c.num_classes, self.c.data.size("test"), str(self.c.run.path),
            state["retrain"].get("epochs", self.s.retrain_epochs))
        if warning:
            self.c.log(warning)
        return SearchResult(self.c.run.path, summary, self._report() if self.c.run.writer else None)

    def _default_budget(self) -> str | None:
        """How the FLOPs budget was chosen when none was given (None when one was)."""
        if self.s.flops is not None:
            return None
        if self.c.space.spec.mobilenetv2_depths is not None:
            return "MobileNetV2's FLOPs in this space"
        return "the middle of the space's FLOPs range"

    def _phases(self) -> list[danas.Phase]:
        """The search's phases: probe, warm-up (scaled like the stages) and stages, or `full`'s."""
        s = self.s
        stages, factor = self._stages()
        warmup = max(1, round(s.warmup_epochs * factor)) if s.warmup_epochs > 0 else 0
        return danas.plan(s.strategy, stages, 0 if s.class_order else s.probe_epochs, s.epochs, warmup)

    def _plan(self, state: dict) -> list[Work]:
        """Every epoch of the run in order, with the image-steps the run will count for it (the weight steps' images,
        the search-validation images of the architecture steps, the choice's and the retraining's images: batches
        as data.batches cuts them) and the FLOPs per image of the networks it trains (progress.Clock). Exact once
        the class order is known; before the probe, the stages' classes are counted at the mean class size."""
        s, c = self.s, self.c
        world, train = c.device.ranks.world, c.data.size("train")
        sizes = [len(layer.choices) for layer in c.space]
        uniform = c.cost.fixed_flops + sum(float(c.cost.flops[i, :n].mean()) for i, n in enumerate(sizes))
        largest = c.cost.fixed_flops + sum(float(c.cost.flops[i, :n].max()) for i, n in enumerate(sizes))
        # The filter warm-up runs the largest candidates with a chance falling from 1 to 0 over its first share.
        warmup = uniform + s.filter_warmup / 2 * (largest - uniform)
        trained = c.flops_budget if c.flops_binds else uniform  # the choice's candidates and the derived network
        epochs = []
        if s.strategy not in ("random", "mobilenetv2"):
            order = state.get("class_order", c.class_order)
            if order is None and s.strategy == "danas" and not any(p.name == "probe" for p in self._phases()):
                order = self._class_order_override()
            for phase in self._phases():
                admitted = classes_admitted(phase.fraction, c.num_classes)
                if order is None or admitted == c.num_classes:
                    n_train, n_val = (round(c.data.size(split) * admitted / c.num_classes)
                                      for split in ("train", "val"))
                else:
                    classes = danas.admitted(order, phase.fraction)
                    n_train, n_val = (count_images(c.data, split, classes) for split in ("train", "val"))
                weight = batch_sizes(n_train, s.batch_size, world, drop_last=True)
                images, cost = sum(weight), warmup if phase.name == "warmup" else uniform
                if phase.train_arch:  # one per `arch_every` weight steps, on the next search-validation batch
                    val = batch_sizes(n_val, s.batch_size, world, drop_last=world > 1) or [0]
                    arch = sum(val[k % len(val)] for k in range(math.ceil(len(weight) / s.arch_every)))
                    # An architecture step runs two paths forward and back to alpha: 4 forward passes' cost where
                    # a weight step costs 3 (forward, backward to the input and to the weights).
                    cost = (images * uniform + arch * uniform * 4 / 3) / max(1, images + arch)
                    images += arch
                kind = "probe" if phase.name == "probe" else "supernet"
                epochs += [Work(phase.name, kind, images, len(weight), cost)] * phase.epochs
        whole = batch_sizes(train, s.batch_size, world, drop_last=True)
        if s.final_choice == "train" and s.strategy != "mobilenetv2":
            candidates = len(state["choice"]["found"]) if "choice" in state else s.candidates_scored
            epochs += [Work("choice", "choice", sum(whole), len(whole), trained)] * (candidates * s.choice_epochs)
        retrain = state.get("retrain", {})
        total = 0 if retrain.get("done") else retrain.get("total", s.retrain_epochs)
        return epochs + [Work("retraining", "retraining", sum(whole), len(whole), trained)] * total

    def _standalone_prior(self, plan: list[Work], done: int) -> dict[str, tuple[float, float]]:
        """Seconds and units of cost (progress.Clock) of training a network drawn within the budgets (the choice's
        candidates and the derived network are such networks), timed on its steps after the first in an epoch of
        up to 3 batches with the choice's code: the rate of the choice and the retraining until they are measured
        themselves, when supernet epochs come first (a standalone network's step took 0.25x, MobileNetV2, to 1.35x,
        the largest network, a supernet weight step on one CPU: docs/BENCHMARKS.md, "CPU training speed"; their
        FLOPs do not say which). Nothing of the run changes: its own generators, seeds and data order are untouched.
        """
        c, s = self.c, self.s
        kinds = [work.kind for work in plan[done:]]
        later = [kind for kind in ("choice", "retraining") if kind in kinds]
        if not later or kinds[0] in later:
            return {}
        images = 3 * s.batch_size * c.device.ranks.world
        sizes = batch_sizes(min(images, c.data.size("train")), s.batch_size, c.device.ranks.world, drop_last=True)
        if len(sizes) < 2:  # no step after the first to time
            return {}
        view = dataclasses.replace(c.data, x={"train": c.data.x["train"][:images]} if c.data.files is None else {},
                                   y={"train": c.data.y["train"][:images]},
                                   files=None if c.data.files is None else {"train": c.data.files["train"][:images]})
        arch = random_within_budget(self._band(), c.space, c.num_classes, torch.Generator().manual_seed(s.seed))
        ends: list[float] = []
        choice.train_from_scratch(arch, view, self._train_settings(1), c.device, s.seed,
                                  on_epoch=lambda metrics: ends.append(time.perf_counter()),
                                  on_step=lambda: ends.append(time.perf_counter()))
        measured = (ends[-1] - ends[0], sum(sizes[1:]) * c.cost.of(arch)[0])
        return {kind: measured for kind in later}

    def _report(self) -> Path | None:
        """Plots and report.html. The run is complete once summary.json is written, so a failure here is reported
        and costs only the report, which `edgenas report RUN` can write again."""
        from edgenas.report.html import write_report

        try:
            return write_report(self.c.run.path).html
        except Exception as exc:  # any failure: a plotting bug must not turn a finished search into an error
            self.c.log(f"warning: the report was not written ({type(exc).__name__}: {exc}); the run is complete; "
                       f"retry with `edgenas report {self.c.run.path}`")
            return None

    def _save(self, state: dict, history: list[dict], every_epoch: bool = False) -> None:
        """history.jsonl at once; the checkpoint too, except after an epoch within CHECKPOINT_SECONDS of the last
        checkpoint (a supernet's checkpoint costs about a second to write, as much as a short epoch's training).
        A resumed run starts from the checkpoint and drops the history rows after it."""
        state["torch_rng"] = torch.get_rng_state()
        state["generator"] = self.generator.get_state()
        state["history_rows"] = len(history)
        self.run.set_history(history)
        now = time.perf_counter()
        if every_epoch and now - self.saved_at < CHECKPOINT_SECONDS:
            return
        self.run.save_checkpoint(state)
        self.saved_at = now

    # -------------------------------------------------------------- search
    def _stages(self):
        stages = parse_schedule(self.s.schedule)
        factor = self.s.epochs_scale or auto_scale(self.c.data.size("train"))
        return scale(stages, factor), factor

    def _search(self, state: dict, history: list[dict], bar) -> dict:
        c, s = self.c, self.s
        start = time.perf_counter() - state.get("search_seconds", 0.0)
        if s.strategy in ("random", "mobilenetv2"):
            if s.strategy == "random" and s.final_choice == "train":
                arch, state["choice_images"] = self._best_trained_random(state, history, bar, start)
            elif s.strategy == "random":
                arch = random_within_budget(self._band(), c.space, c.num_classes, self.generator)
            else:
                arch = mobilenetv2_within_budget(s.space, c.resolution, c.num_classes, c.flops_budget, c.ms_budget,
                                                 c.table)
            state.update({"arch": arch.to_dict(), "search_seconds": time.perf_counter() - start,
                          "images": state.pop("choice_images", 0),
                          "inherited_val_acc": None})
            state.pop("choice", None)
            self._save(state, history)
            return state
        _, factor = self._stages()
        if c.class_order is not None and "class_order" not in state:
            state["class_order"] = c.class_order
            self.run.write("class_order.json", {"order": c.class_order,
                                                "names": [c.data.classes[i] for i in c.class_order],
                                                "method": f"given by {s.class_order}"})
        phases = self._phases()
        with torch.random.fork_rng(devices=[]):  # initial weights depend on the seed alone
            torch.manual_seed(s.seed)
            net = c.device.prepare(Supernet(c.space, c.num_classes))
        weight_opt = torch.optim.SGD(net.weight_parameters(), lr=s.lr, momentum=0.9, nesterov=True,
                                     weight_decay=s.weight_decay)
        arch_opt = torch.optim.Adam([net.alpha], lr=s.arch_lr, betas=(0.0, 0.999))
        total_steps = None  # counted once the class order is known (after the probe)
        scheduler = objective = None
        scaler = c.device.scaler()
        if state:
            net.load_state_dict(state["supernet"])
            weight_opt.load_state_dict(state["weight_opt"])
            arch_opt.load_state_dict(state["arch_opt"])
        ranks = c.device.ranks
        replica = distributed.wrap(net, ranks, c.device.device)
        settings = SupernetSettings(s.batch_size, s.label_smoothing, s.arch_every, s.cost_strength,
                                    c.flops_budget if c.flops_binds else None,
                                    c.ms_budget if c.latency_binds else None)
        bar.begin(sum(p.epochs for p in phases))
        bar.skip(sum(p.epochs for p in phases[: state.get("phase", 0)]) + state.get("epoch", 0))
        for index in range(state.get("phase", 0), len(phases)):
            phase = phases[index]
            classes = self._classes(phase, state)
            steps_per_epoch = max(1, count_images(c.data, "train", classes) // (s.batch_size * ranks.world))
            if phase.scheduled and scheduler is None:
                # One cosine over the warm-up and the stages (the probe runs at the initial learning rate).
                per_epoch = [max(1, count_images(c.data, "train", self._classes(p, state))
                                 // (s.batch_size * ranks.world)) for p in phases]
                total_steps = sum(p.epochs * n for p, n in zip(phases, per_epoch, strict=True) if p.scheduled)
                objective = self._objective(phases, per_epoch, settings)
                scheduler = torch.optim.lr_scheduler.LambdaLR(
                    weight_opt, lambda step, n=total_steps: 0.5 * (1 + math.cos(math.pi * min(step, n) / max(1, n))))
                if "scheduler" in state:
                    scheduler.load_state_dict(state["scheduler"])
                    # Creating the scheduler set the learning rate to step 0's; a resumed run goes on at its own.
                    for group, lr in zip(weight_opt.param_groups, scheduler.get_last_lr(), strict=True):
                        group["lr"] = lr
            for epoch in range(state.get("epoch", 0) if index == state.get("phase", 0) else 0, phase.epochs):
                bar.describe(f"{phase.name}: {len(classes)}/{c.num_classes} classes, "
                             f"{sum(net.active_counts())} candidates")
                t0 = time.perf_counter()
                sampler = None if phase.name == "probe" else fairness.sampler(
                    net, c.cost, s.weight_sampling, s.filter_warmup if phase.name == "warmup" else 0.0,
                    phase.epochs * steps_per_epoch, epoch * steps_per_epoch)
                metrics = supernet_epoch(net, c.data, classes, weight_opt, arch_opt,
                                         scheduler if phase.scheduled else None, c.cost, settings, self.generator,
                                         c.device, scaler, train_arch=phase.train_arch, uniform=phase.uniform,
                                         replica=replica, sampler=sampler, objective=objective,
                                         arch_step=state.get("arch_steps", 0), on_step=self.clock.tick)
                flops, ms = c.cost.expected(net.probs().detach().double().cpu())
                row = {"phase": phase.name, "epoch": epoch, "classes": len(classes), "admitted": classes,
                       "active": net.active_counts(), **metrics, "expected_flops": float(flops),
                       "expected_ms": None if ms is None else float(ms), "probs": _layer_probs(net, c.space),
                       "seconds": time.perf_counter() - t0}
                history.append(row)
                state.update({"phase": index, "epoch": epoch + 1,
                              "images": state.get("images", 0) + metrics["images"] + metrics["arch_images"],
                              "arch_steps": state.get("arch_steps", 0) + metrics["arch_steps"]})
                latency = "" if ms is None else f", E[latency] {float(ms):.2f} ms"
                bar.step(f"loss {metrics['train_loss']:.3f}, acc {100 * metrics['train_acc']:.1f}%, "
                         f"E[FLOPs] {format_flops(float(flops))}{latency}")
                self._checkpoint(state, history, net, weight_opt, arch_opt, scheduler, start, every_epoch=True)
            if phase.name == "probe":
                accuracy = per_class_accuracy(net, c.data, self.generator, c.device, s.batch_size)
                order = distributed.broadcast(danas.class_order(accuracy), ranks)
                self.run.write("class_order.json", {
                    "order": order, "names": [c.data.classes[i] for i in order],
                    "probe_accuracy": {c.data.classes[i]: accuracy[i] for i in range(c.num_classes)},
                    "method": "per-class accuracy on the search-validation split after the probe (uniform paths), "
                              "easiest first, ties by class index"})
                state["class_order"] = order
                self.clock.replan(self._plan(state))  # the stages' classes known
            if phase.prune_after and s.prune_ratio > 0:
                t0 = time.perf_counter()
                row = {"phase": phase.name, "prune_score": s.prune_score}
                scores = undecided = None
                if s.prune_score == "eval":
                    measured = scoring.candidate_scores(net, c.data, classes, self.generator, c.device, s.batch_size,
                                                        s.score_paths)
                    scores = -measured["loss"]
                    undecided = scoring.undecided(measured, s.prune_confidence)
                    row["scores"] = {"val_loss": _layer_rows(measured["loss"], c.space),
                                     "val_acc": _layer_rows(measured["accuracy"], c.space),
                                     "stderr": _layer_rows(measured["stderr"], c.space),
                                     "paths": _layer_rows(measured["paths"], c.space), "method": scoring.METHOD,
                                     "undecided": [[layer.choices[j] for j in range(len(layer.choices))
                                                    if undecided[i, j]] for i, layer in enumerate(c.space)]}
                pruned = danas.prune(net, s.prune_ratio, c.cost, settings.flops_budget, settings.ms_budget, scores,
                                     s.budget_floor, undecided)
                history.append({**row, "pruned": pruned.dropped, "restored_cheapest": pruned.restored,
                                "given_back_for_floor": pruned.given_back,
                                "active": net.active_counts(), "active_choices": net.active_choices(),
                                "probs": _layer_probs(net, c.space), "seconds": time.perf_counter() - t0})
            distributed.check_same(f"alphas and candidate masks after {phase.name}",
                                   distributed.fingerprint(net.alpha, net.active), ranks)
            state.update({"phase": index + 1, "epoch": 0})
            self._checkpoint(state, history, net, weight_opt, arch_opt, scheduler, start)
        model, arch, val_acc, choice_images = self._choose(net, bar, state, history, start)
        state["images"] = state.get("images", 0) + choice_images  # the choice's trainings are search work too
        if ranks.many:  # the evidence that the ranks ran one search: what each of them ended with
            self.run.write("distributed.json", {"world_size": ranks.world, "ranks": distributed.gather(
                {"alpha_and_masks": distributed.fingerprint(net.alpha, net.active),
                 "active_choices": net.active_choices(), "layers": list(arch.layers)}, ranks)})
        if self.run.writer:  # the supernet's weights for the derived network; the whole supernet, to rank others
            save_weights(self.run.file("inherited.pt"), model)
            save_weights(self.run.file("supernet.pt"), net)
        state.update({"arch": arch.to_dict(), "search_seconds": time.perf_counter() - start,
                      "inherited_val_acc": val_acc, "schedule_scale": factor,
                      "full_data_epochs": sum(p.fraction * p.epochs for p in phases if p.scheduled)})
        for key in ("supernet", "weight_opt", "arch_opt", "scheduler", "choice"):
            state.pop(key, None)
        state["final_probs"] = _layer_probs(net, c.space)
        state["phase"], state["epoch"] = len(phases), 0
        self._save(state, history)
        return state

    def _objective(self, phases: list[danas.Phase], per_epoch: list[int], settings: SupernetSettings) -> CostObjective:
        """The budget penalty with its ramp: over `--cost-ramp` of the architecture steps, by default over the first
        stage's (`full`: the first stage's share of the schedule's epochs)."""
        s = self.s
        arch_steps = [p.epochs * math.ceil(n / s.arch_every) if p.train_arch else 0
                      for p, n in zip(phases, per_epoch, strict=True)]
        share = s.cost_ramp
        if share is None:
            stages = parse_schedule(s.schedule)
            first = next((k for k, p in enumerate(phases) if p.prune_after), None)
            share = (arch_steps[first] / max(1, sum(arch_steps)) if first is not None
                     else stages[0].epochs / sum(st.epochs for st in stages))
        return CostObjective(s.cost_form, s.cost_strength, round(share * sum(arch_steps)), settings.flops_budget,
                             settings.ms_budget)

    def _band(self) -> choice.Band:
        """Where a derived (or random) network must lie: within the budgets, above the floor of a binding one."""
        c = self.c
        return choice.band(c.cost, c.flops_budget, c.ms_budget, self.s.budget_floor, c.flops_binds, c.latency_binds)

    def _choose(self, net: Supernet, bar, state: dict, history: list[dict], start: float):
        """The derived architecture (strategies/choice.py), its inherited network and search-validation accuracy
        with inherited weights, and the images the choice trained on; writes candidates.json. The candidates are
        kept in the checkpoint, so that a resumed choice scores the same ones."""
        c, s = self.c, self.s
        limits = self._band()
        if "choice" in state:
            found, floors, notices = _saved_candidates(state["choice"])
        else:
            notices: list[str] = []
            found, floors = choice.candidates(net, c.cost, limits, s.candidates_scored, self.generator, notices,
                                              uniform=s.uniform_pool)
            if not found:
                raise EdgeNASError("no architecture of the remaining candidates meets the budgets")
            for notice in notices:
                c.log(f"notice: {notice}")
            state["choice"] = _saving_candidates(found, floors, notices)
        seed = s.seed + 2  # the recalibration batches, the same for every candidate

        def inherited_accuracy(candidate: choice.Candidate) -> float:
            model = choice.inherited(net, candidate.layers, c.data, s.batch_size, seed)
            return evaluate(model, c.data, "val", c.device)

        scorer = (None if s.final_choice == "alpha" else inherited_accuracy if s.final_choice == "eval"
                  else self._trained_scorer(found, bar, state, history, start))
        best = found[choice.choose(found, scorer)]
        model = choice.inherited(net, best.layers, c.data, s.batch_size, seed)
        val_acc = best.val_acc if s.final_choice == "eval" else evaluate(model, c.data, "val", c.device)
        self.run.write("candidates.json", choice.describe(found, limits, floors, notices, s.final_choice))
        return model, make_arch(c.space, best.layers, c.num_classes), val_acc, _choice_images(history)

    def _trained_scorer(self, found: list[choice.Candidate], bar, state: dict, history: list[dict], start: float):
        """--choice train: scores each of `found` by a short training from scratch, the progress bar told. Each
        score is saved as it comes (a `choice` row of history.jsonl, then the checkpoint): a resumed run reads the
        scores it has and trains only the candidates left."""
        c, s = self.c, self.s
        done = {tuple(row["layers"]): row["val_acc"] for row in history if row.get("phase") == "choice"}
        self.clock.replan(self._plan(state))  # the candidates known
        bar.begin(len(found) * s.choice_epochs, again=True)
        bar.skip(len(done) * s.choice_epochs)

        def trained_accuracy(candidate: choice.Candidate) -> float:
            if tuple(candidate.layers) in done:
                return done[tuple(candidate.layers)]
            number = found.index(candidate) + 1
            bar.describe(f"choice: training candidate {number}/{len(found)} ({format_flops(candidate.flops)} FLOPs)")
            t0, images = time.perf_counter(), []
            accuracy = choice.trained_accuracy(make_arch(c.space, candidate.layers, c.num_classes), c.data,
                                               self._train_settings(s.choice_epochs), c.device, s.seed,
                                               lambda m: (images.append(m["images"]),
                                                          bar.step(f"loss {m['train_loss']:.3f}")),
                                               on_step=self.clock.tick)
            history.append({"phase": "choice", "candidate": number, "layers": list(candidate.layers),
                            "flops": candidate.flops, "val_acc": accuracy, "choice_epochs": s.choice_epochs,
                            "images": sum(images), "seconds": time.perf_counter() - t0})
            state["search_seconds"] = time.perf_counter() - start
            self._save(state, history)
            return accuracy

        return trained_accuracy

    def _best_trained_random(self, state: dict, history: list[dict], bar, start: float) -> tuple[Arch, int]:
        """--strategy random --choice train: the best of --choice-candidates distinct random architectures of the
        band, each scored by the same short training as danas's candidates, and the images that training took;
        writes candidates.json. Resumable like danas's choice."""
        c, s = self.c, self.s
        limits = self._band()
        if "choice" in state:
            found = _saved_candidates(state["choice"])[0]
        else:
            drawn: dict[tuple[str, ...], Arch] = {}
            for _ in range(20 * s.candidates_scored):
                arch = random_within_budget(limits, c.space, c.num_classes, self.generator)
                drawn.setdefault(tuple(arch.layers), arch)
                if len(drawn) == s.candidates_scored:
                    break
            found = []
            for arch in drawn.values():
                flops, ms = c.cost.of(arch)
                found.append(choice.Candidate([layer.choices.index(x) for layer, x in zip(c.space, arch.layers,
                                                                                          strict=True)],
                                              list(arch.layers), "random", round(flops), ms, 0.0))
            state["choice"] = _saving_candidates(found, limits.floors, [])
        best = found[choice.choose(found, self._trained_scorer(found, bar, state, history, start))]
        self.run.write("candidates.json", choice.describe(found, limits, limits.floors, [], "train"))
        return make_arch(c.space, best.layers, c.num_classes), _choice_images(history)

    def _train_settings(self, epochs: int) -> TrainSettings:
        """Standalone training of `epochs` epochs with the retraining's settings."""
        s = self.s
        return TrainSettings(epochs, s.batch_size, s.retrain_lr, 0.9, s.retrain_weight_decay, s.label_smoothing)

    def _classes(self, phase: danas.Phase, state: dict) -> list[int]:
        order = state.get("class_order")
        if order is None and self.s.strategy == "danas" and phase.name != "probe":
            order = self._class_order_override()
            state["class_order"] = order
        if phase.fraction >= 1.0 or order is None:
            return list(range(self.c.num_classes))
        return danas.admitted(order, phase.fraction)

    def _class_order_override(self) -> list[int]:
        # Without a probe (--probe-epochs 0) the class order comes from class_order.json if given, else by index.
        if self.run.has("class_order.json"):
            return list(self.run.read("class_order.json")["order"])
        return list(range(self.c.num_classes))

    def _checkpoint(self, state, history, net, weight_opt, arch_opt, scheduler, start, every_epoch=False) -> None:
        state.update({"supernet": net.state_dict(), "weight_opt": weight_opt.state_dict(),
                      "arch_opt": arch_opt.state_dict(), "search_seconds": time.perf_counter() - start})
        if scheduler is not None:
            state["scheduler"] = scheduler.state_dict()
        self._save(state, history, every_epoch)

    # -------------------------------------------------------------- retraining
    def _retrain(self, arch: Arch, state: dict, history: list[dict], bar) -> dict:
        c, s = self.c, self.s
        retrain = state.get("retrain", {})
        if retrain.get("done"):
            return state
        # `edgenas train --epochs N` stores its N here, so that a resumed retraining keeps its length and schedule.
        s = dataclasses.replace(s, retrain_epochs=retrain.get("total", s.retrain_epochs))
        if s.retrain_epochs == 0:  # search only: no network of initial weights posing as retrained (model.pt)
            state["retrain"] = {"done": True, "epochs": 0, "seconds": None}
            self._save(state, history)
            return state
        with torch.random.fork_rng(devices=[]):  # initial weights depend on the seed alone
            torch.manual_seed(s.seed + 1)
            model = c.device.prepare(build_model(arch))
        settings = self._train_settings(s.retrain_epochs)
        steps = s.retrain_epochs * max(1, c.data.size("train") // (s.batch_size * c.device.ranks.world))
        optimizer, scheduler = make_optimizer(model, settings, steps)
        if retrain.get("model"):
            model.load_state_dict(retrain["model"])
            optimizer.load_state_dict(retrain["optimizer"])
            scheduler.load_state_dict(retrain["scheduler"])
        scaler = c.device.scaler()
        replica = c.device.compiled(distributed.wrap(model, c.device.ranks, c.device.device))
        start = time.perf_counter() - retrain.get("seconds", 0.0)
        bar.begin(s.retrain_epochs, again=True)
        bar.skip(retrain.get("epoch", 0))
        last = None  # the state after the last epoch (copies, not the live weights): written on Ctrl-C
        try:
            for epoch in range(retrain.get("epoch", 0), s.retrain_epochs):
                bar.describe(f"retraining {arch.space} ({format_flops(c.cost.of(arch)[0])} FLOPs)")
                t0 = time.perf_counter()
                metrics = train_epoch(replica, c.data, optimizer, scheduler, settings, self.generator, c.device,
                                      scaler, on_step=self.clock.tick)
                history.append({"phase": "retrain", "epoch": epoch, **metrics, "seconds": time.perf_counter() - t0})
                bar.step(f"loss {metrics['train_loss']:.3f}, acc {100 * metrics['train_acc']:.1f}%")
                state["retrain"] = {"total": s.retrain_epochs, "epoch": epoch + 1,
                                    **copy.deepcopy({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                                     "scheduler": scheduler.state_dict()}),
                                    "seconds": time.perf_counter() - start}
                self._save(state, history, every_epoch=True)
                last = dict(state)
        except KeyboardInterrupt:
            # The checkpoint may lag up to CHECKPOINT_SECONDS behind: Ctrl-C loses only the epoch under way.
            if last is not None:
                self.run.save_checkpoint(last)
            raise
        model.eval()
        if self.run.writer:
            save_weights(self.run.file("model.pt"), model)
        state["retrain"] = {"done": True, "epochs": s.retrain_epochs, "seconds": time.perf_counter() - start,
                            "val_acc": evaluate(model, c.data, "val", c.device),
                            "test_acc": evaluate(model, c.data, "test", c.device)}
        self._save(state, history)
        return state

    def retrain_alone(self, base: dict, state: dict, progress: bool, echo=None) -> tuple[Arch, dict]:
        """`edgenas train`: the retraining alone, from `state` (its checkpoint: in a folder RETRAINING of its own,
        or the run's when a search's own retraining resumes); `base` is the run's checkpoint (the search's)."""
        log = self.c.log
        torch.set_rng_state(state["torch_rng"])
        self.generator.set_state(state["generator"])
        history = self.run.history()[: state["history_rows"]]
        self.run.set_history(history)
        retrain = state.get("retrain", {})
        total = retrain.get("total", self.s.retrain_epochs)
        left = 0 if retrain.get("done") else total - retrain.get("epoch", 0)
        images, first = self.c.data.size("train"), total - left + 1
        epochs = f"{total} epoch{'s' if total > 1 else ''}" if first == 1 else \
            f"epoch {total} of {total}" if left == 1 else f"epochs {first} to {total} of {total}"
        log(f"plan: retraining {epochs}; about {left * images:,} image-steps ({images:,} training images per epoch, "
            f"batch {self.s.batch_size})" if left else "plan: no epoch left to train; its results are written")
        self.clock = Clock(self._plan({**base, **state}), _epochs(history), log)
        arch = from_dict(state["arch"], str(self.c.run.file("checkpoint.pt")))
        with Bar(progress, echo, on_step=self.clock.step) as bar:
            return arch, self._retrain(arch, state, history, bar)

    # -------------------------------------------------------------- results
    def _choice_made(self) -> str | None:
        """How the derived network was chosen among candidates (strategies/choice.py's METHODS); None where there
        were none (MobileNetV2, a single random draw)."""
        s = self.s
        if s.strategy == "mobilenetv2" or (s.strategy == "random" and s.final_choice != "train"):
            return None
        return s.final_choice

    def _summary(self, arch: Arch, state: dict) -> dict:
        from edgenas.cost.latency import budget_verdict

        c = self.c
        flops, ms = c.cost.of(arch)
        if arch.width_mult != c.space.width_mult:  # the mobilenetv2 baseline scales its width
            arch_space = arch.resolve_space()
            flops = cost_table(arch_space).flops(arch)
            ms = c.table.predict(arch) if c.table is not None and c.table.data["space_hash"] == arch.space_hash \
                else None
        elif c.table is not None:
            check_keys(c.cost, c.table, arch)
            ms = c.table.predict(arch)
        model = build_model(arch)
        fvcore_flops = count_flops(model, (3, arch.resolution, arch.resolution))
        if fvcore_flops != flops:
            raise EdgeNASError(f"internal check failed: table FLOPs {flops} != fvcore {fvcore_flops}")
        retrain = state.get("retrain", {})
        fidelity = c.table.fidelity() if c.table is not None else None
        return {
            "arch": arch.to_dict(),
            "flops": flops, "flops_method": "fvcore on the built network (1 multiply-add = 1 FLOP, batch norm folded)",
            "flops_budget": c.flops_budget, "within_flops_budget": flops <= c.flops_budget,
            "predicted_latency_ms": ms, "latency_budget_ms": c.ms_budget,
            "latency_table": c.table.source if c.table else None,
            "latency_precision": c.table.precision if c.table else None,
            "within_latency_budget": None if c.ms_budget is None or ms is None else ms <= c.ms_budget,
            "latency_budget_verdict": None if c.ms_budget is None or ms is None else budget_verdict(ms, c.ms_budget,
                                                                                                 fidelity),
            "latency_fidelity": fidelity,
            "params": sum(p.numel() for p in model.parameters()),
            "inherited_val_acc": state.get("inherited_val_acc"),
            "val_acc": retrain.get("val_acc"), "test_acc": retrain.get("test_acc"),
            "search_seconds": state.get("search_seconds"), "retrain_seconds": retrain.get("seconds"),
            "search_images": state.get("images", 0), "schedule_scale": state.get("schedule_scale"),
            "full_data_epochs": state.get("full_data_epochs"), "strategy": self.s.strategy,
            "choice": self._choice_made(),
            "classes": c.data.classes, "dataset": c.data.name, "resolution": c.resolution,
            "accuracy_method": "top-1 on the test split (never seen by the search), retrained from scratch",
        }


def _describe_plan(plan: list[Work], train_images: int, batch_size: int) -> str:
    """`plan: probe 1 epoch, stage 0 5 epochs, ...; about 33,600 image-steps of search and ...` for the log."""
    groups: list[list] = []
    for work in plan:
        if groups and groups[-1][0] == work.phase:
            groups[-1][1] += 1
        else:
            groups.append([work.phase, 1])
    phases = ", ".join(f"{name} {count} epoch{'s' if count > 1 else ''}" for name, count in groups) or "nothing left"
    retrain = sum(work.images for work in plan if work.kind == "retraining")
    return (f"plan: {phases}; about {sum(work.images for work in plan) - retrain:,} image-steps of search and "
            f"{retrain:,} of retraining ({train_images:,} training images, batch {batch_size})")


def _epochs(history: list[dict]) -> int:
    """Epochs (of search, choice and retraining) that a run's history holds: what a resumed run does not do again."""
    return sum(1 if "epoch" in row else row.get("choice_epochs", 0) for row in history)


def _choice_images(history: list[dict]) -> int:
    """Images the choice's short trainings (`--choice train`) took, over every candidate scored so far."""
    return sum(row["images"] for row in history if row.get("phase") == "choice")


def _saving_candidates(found: list[choice.Candidate], floors: list[float], notices: list[str]) -> dict:
    return {"found": [dataclasses.asdict(candidate) for candidate in found], "floors": list(floors),
            "notices": list(notices)}


def _saved_candidates(saved: dict) -> tuple[list[choice.Candidate], list[float], list[str]]:
    return [choice.Candidate(**candidate) for candidate in saved["found"]], saved["floors"], saved["notices"]


def _layer_probs(net: Supernet, space: Space) -> list[list[float]]:
    """Per layer, the probability of each of its choices (softmax of alpha over the unpruned ones; 0 if pruned)."""
    return [[round(p, 6) for p in row[: len(layer.choices)]]
            for row, layer in zip(net.probs().detach().cpu().tolist(), space, strict=True)]


def _layer_rows(table: torch.Tensor, space: Space) -> list[list[float | None]]:
    """Per layer, a value per choice (None where not measured: pruned, or NaN)."""
    return [[None if math.isnan(v) else round(v, 6) for v in row[: len(layer.choices)]]
            for row, layer in zip(table.tolist(), space, strict=True)]


MAX_RETRAIN_EPOCHS = 10_000  # `edgenas train --epochs`: more is a typo (ImageNet recipes retrain for 300-600)
RETRAINING = "retraining.partial"  # RUN/RETRAINING: `edgenas train`'s retraining until it is complete


def retrain(run_path: str | Path, epochs: int | None = None, progress: bool = True, log=print,
            resume: bool = False, echo=None) -> SearchResult:
    """Retrain a searched run's architecture from scratch and evaluate it again; with `resume`, continue a stopped
    retraining (from its last kept epoch) instead of starting over.

    The new retraining is kept in RUN/retraining.partial/ (its checkpoint, history and model.pt); the run's own
    results (summary.json, model.pt, history.jsonl, checkpoint.pt) stay as they are until it is complete, and are
    then replaced by its results. A search's own stopped retraining resumes in the run itself."""
    if epochs is not None and not 1 <= epochs <= MAX_RETRAIN_EPOCHS:
        raise EdgeNASError(f"bad --epochs {epochs}: expected 1 to {MAX_RETRAIN_EPOCHS:,} retraining epochs")
    ranks = distributed.Ranks.from_env()
    if not ranks.main:
        progress, log, echo = False, silent, None
    run = Run.open(run_path, writer=ranks.main)
    settings = SearchSettings.of_run(run)
    base = run.load_checkpoint(warn=log)
    if base is None or "arch" not in base:
        raise EdgeNASError(f"run {run.path} has no derived architecture yet; finish it with --resume {run.path}")
    work = Run(run.file(RETRAINING), writer=ranks.main)
    if work.has("summary.json"):  # complete, but stopped while its files were moved into the run
        _move_retraining(work, run)
        log(f"note: the retraining in {work.path} was complete but stopped while its results were moved into "
            f"{run.path}; they are there now")
        base = run.load_checkpoint()
    if resume:
        state = work.load_checkpoint(warn=log)
        if state is None:  # no retraining of `edgenas train` stopped: the search's own, if any
            finished = _finished(run, base, log)
            if finished is not None:
                return finished
        staged = state is not None
        state = state if staged else base
        said = _resuming(run, work if staged else run, state, settings, epochs)
    else:
        (state, said), staged = _fresh(run, work, base, settings, epochs), True
    where, total = work if staged else run, state.get("retrain", {}).get("total", settings.retrain_epochs)
    try:
        for line in said:  # said here, so that a Ctrl-C from then on is told what was kept
            log(line)
        context = _Context(settings, run, log)
        state, staged = distributed.broadcast((state, staged), context.device.ranks)  # rank 0's reading of the files
        job = _Search(context, work if staged else None)
        arch, state = job.retrain_alone(base, state, progress, echo)
    except KeyboardInterrupt:
        kept = (where.load_checkpoint() or {}).get("retrain", {}).get("epoch", 0)  # where a resume starts
        unchanged = "" if where is run else f" (the results of run {run.path} are unchanged)"
        raise KeyboardInterrupt(f"{kept} of {total} retraining epochs kept in {where.path}{unchanged}; continue "
                                f"with edgenas train {run.path} --resume") from None
    return job._finish(arch, {**base, **state})


def _finished(run: Run, base: dict, log) -> SearchResult | None:
    """`edgenas train RUN --resume` on a run whose retraining is over: nothing is done, and the user is told so."""
    retrain = base.get("retrain", {})
    if not retrain.get("done") or not run.has("summary.json"):
        return None
    summary = run.read("summary.json", "run summary")
    if retrain.get("epochs"):
        accuracy = "" if summary.get("test_acc") is None else f", test accuracy {100 * summary['test_acc']:.2f}%"
        log(f"run {run.path} is retrained already ({retrain['epochs']} epochs{accuracy}): nothing to resume, "
            f"nothing done (its summary follows); `edgenas train {run.path}` retrains it again from scratch, and "
            "keeps these results until the new ones are complete")
    else:
        log(f"run {run.path} was never retrained (searched with --retrain-epochs 0): nothing to resume, nothing "
            f"done (its summary follows); `edgenas train {run.path} --epochs N` retrains it")
    report = run.file("report.html")
    return SearchResult(run.path, summary, report if report.is_file() else None)


def _resuming(run: Run, where: Run, state: dict, settings: SearchSettings, epochs: int | None) -> list[str]:
    """Check `edgenas train RUN --resume` against the stopped retraining; the line that says where it resumes."""
    retrain = state.get("retrain", {})
    total = retrain.get("total", settings.retrain_epochs)
    if epochs is not None and epochs != total:
        raise EdgeNASError(f"bad --epochs {epochs} with --resume: the stopped retraining of {run.path} runs "
                           f"{total} epochs; drop --epochs, or retrain from scratch without --resume")
    if total == 0:  # a search with --retrain-epochs 0, stopped before it finished
        raise EdgeNASError(f"run {run.path} has no retraining to resume (searched with --retrain-epochs 0): "
                           f"`edgenas search --resume {run.path}` finishes it, `edgenas train {run.path} --epochs N` "
                           "retrains it")
    kept = retrain.get("epoch", 0)
    if retrain.get("done"):  # stopped after its last epoch, before its summary was written
        return [f"retraining run {run.path}: all {retrain['epochs']} epochs kept in {where.path}"]
    if kept:
        return [f"retraining run {run.path}: resuming at epoch {kept + 1} of {total} ({kept} kept in {where.path})"]
    return [f"retraining run {run.path}: starting again at epoch 1 of {total}: no epoch of the stopped retraining was "
            "kept (it stopped during its first epoch, or was killed otherwise than by Ctrl-C within a minute of its "
            "start)"]


def _fresh(run: Run, work: Run, base: dict, settings: SearchSettings, epochs: int | None) -> tuple[dict, list[str]]:
    """A new retraining's folder `work` with the run's history of search and a checkpoint of no epoch yet: its state
    and the lines that say so."""
    total = settings.retrain_epochs if epochs is None else epochs
    if total == 0:
        raise EdgeNASError(f"run {run.path} was searched with --retrain-epochs 0: say how many epochs to retrain "
                           f"with --epochs N (1 to {MAX_RETRAIN_EPOCHS:,})")
    discarded = None
    if work.writer and work.path.exists():
        with contextlib.suppress(EdgeNASError):  # a damaged one is discarded all the same
            discarded = (work.load_checkpoint() or {}).get("retrain", {})
    history = [row for row in run.history()[: base.get("history_rows", 0)] if row.get("phase") != "retrain"]
    state = {"arch": base["arch"], "retrain": {"total": total}, "torch_rng": base["torch_rng"],
             "generator": base["generator"], "history_rows": len(history)}
    if work.writer:
        _remove(work.path)
        try:
            work.path.mkdir()
        except OSError as exc:
            raise EdgeNASError(f"cannot create folder {work.path}: {exc.strerror or exc}; run {run.path} is "
                               "unchanged") from None
        work.set_history(history)  # before the checkpoint that counts its rows
        work.save_checkpoint(state)
    how = f"--epochs {total}" if epochs is not None else "the run's --retrain-epochs"
    kept = ""
    if run.has("summary.json"):
        accuracy = run.read("summary.json", "run summary").get("test_acc")
        kept = "; its current results" + ("" if accuracy is None else f" (test accuracy {100 * accuracy:.2f}%)") + \
            " stay until the new ones are complete"
    said = [f"retraining run {run.path} from scratch: {total} epochs ({how}), kept in {work.path}{kept}"]
    if discarded is not None and not discarded.get("done"):
        said.append(f"note: the stopped retraining that was there ({discarded.get('epoch', 0)} of "
                    f"{discarded.get('total', '?')} epochs kept) is discarded; `edgenas train {run.path} --resume` "
                    "would have continued it")
    return state, said


def _move_retraining(work: Run, run: Run) -> None:
    """Replace a run's retraining results with the complete ones in `work`: checkpoint, history and model.pt, then
    summary.json, then `work` goes. A stop in between leaves summary.json in `work`: the next `edgenas train`
    finishes the move."""
    if not run.writer:
        return
    run.save_checkpoint({**run.load_checkpoint(), **work.load_checkpoint()})
    run.set_history(work.history())
    for name in ("model.pt", "summary.json"):
        if work.has(name):
            try:
                os.replace(work.file(name), run.file(name))
            except OSError as exc:
                raise EdgeNASError(f"cannot move {work.file(name)} into {run.path}: {exc.strerror or exc}; "
                                   f"`edgenas train {run.path} --resume` moves it") from None
    _remove(work.path)


def _remove(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise EdgeNASError(f"cannot remove {path}: {exc.strerror or exc}") from None


def evaluate_run(run_path: str | Path) -> dict:
    """Test accuracy of a run's retrained weights, recomputed from `model.pt` (loaded safely)."""
    run = Run.open(run_path)
    settings = SearchSettings.of_run(run)
    run.need_retrained()
    model, arch = load_model(run.path)
    device = pick_device(settings)
    data = load_data(settings, arch.resolution).to(device.device)
    accuracy = evaluate(device.prepare(model), data, "test", device)
    return {"test_acc": accuracy, "test_images": data.size("test"), "dataset": data.name, "arch": arch.to_dict()}
