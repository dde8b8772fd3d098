"""`SearchSettings`: everything a run is asked to do, defaults included, checked before any work; and the data
those settings name.

A run writes its settings to config.json; `SearchSettings.of_run` reads them back with every field's name and type
checked, so `train`, `export` and `--resume` use exactly what the search used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgenas.errors import EdgeNASError
from edgenas.runs.declared import check_ranges
from edgenas.runs.declared import option as _option  # `edgenas search` generates its options from these
from edgenas.runs.folder import Run
from edgenas.space.spec import SPACES
from edgenas.strategies.schedule import DEFAULT_SCHEDULE, parse_schedule
from edgenas.units import parse_bytes

if TYPE_CHECKING:  # data.py imports torch; the command line reads these settings before it needs torch
    from edgenas.data.dataset import Dataset

STRATEGIES = ("danas", "full", "random", "mobilenetv2")
SAMPLINGS = ("uniform", "alpha")
SCORES = ("eval", "alpha")
COST_FORMS = ("two-sided", "over")
CHOICES = ("auto", "eval", "alpha", "train")
CHOICE_POOLS = ("auto", "alpha", "uniform")
CHOICE_SCORES = ("accuracy", "loss")
DEPLOY_PRECISIONS = ("auto", "fp32", "int8")
CHOICE_CANDIDATES = {"eval": 24, "train": 6, "alpha": 1}  # --choice-candidates' default by --choice

# The values that give the search as it was before issue 14's mechanisms (each switchable on its own). A config.json
# written before a setting existed takes its value from here, so that `--resume` of an old run keeps its meaning.
OLD_BEHAVIOUR = {"warmup_epochs": 0, "weight_sampling": "alpha", "filter_warmup": 0.0, "prune_score": "alpha",
                 "cost_form": "over", "cost_ramp": 0.0, "choice": "alpha", "choice_pool": "alpha", "budget_floor": 0.0}


@dataclass
class SearchSettings:
    """Every setting of a run, defaults included; written to the run's config.json."""

    data: str | None = None  # None: scikit-learn's handwritten digits
    space: str = _option("mobile-small", "Search space.")
    resolution: int | None = _option(None, "Input resolution (default: the space's; 16 for the 8x8 digits).")
    width_mult: float = _option(1.0, "Width multiplier.")
    flops: int | None = None  # None: MobileNetV2's FLOPs in the space (the midpoint of its range without one)
    latency_ms: float | None = None
    table: str | None = _option(None, "Latency table: device name or path.")
    # Memory budgets (docs/COSTS.md): bytes at the deployment precision, given with a unit on the command line.
    model_size: int | None = _option(None, "Model size budget: the weights' bytes at --deploy-precision, such as "
                                           "512KB, 1.5MB or 1MiB (KB = 1000 bytes, KiB = 1024).", at_least=1,
                                     parse=parse_bytes)
    peak_memory: int | None = _option(None, "Peak memory budget: the most activation bytes live at once at batch 1 "
                                            "and --deploy-precision, such as 256KB.", at_least=1, parse=parse_bytes)
    deploy_precision: str = _option("auto", "Precision of --model-size and --peak-memory: fp32 (4 bytes a "
                                            "parameter and an activation), int8 (1 byte, and per channel a scale, "
                                            "a zero point and an int32 bias) or auto: the --table's precision, "
                                            "else fp32.", one_of=DEPLOY_PRECISIONS)
    strategy: str = _option("danas", f"{', '.join(STRATEGIES[:-1])} or {STRATEGIES[-1]}.")
    schedule: str = _option(DEFAULT_SCHEDULE, "Stages as class-fraction:epochs.")
    epochs_scale: float | None = _option(None, "Multiply the schedule's epochs (default: 1.0, down to 0.5 below "
                                               "20,000 training images).", above=0)
    epochs: int | None = _option(None, "--strategy full: its epochs (default: the schedule's total).", at_least=1)
    prune_ratio: float = _option(0.4, "Share of each layer's candidates dropped after a stage.", at_least=0, below=1)
    probe_epochs: int = _option(1, "Epochs of the difficulty probe.", at_least=0)
    class_order: str | None = None  # a JSON file: {"order": [class names or indices, easiest first]}; skips the probe
    batch_size: int = _option(64, "Batch size.", at_least=1)
    lr: float = _option(0.02, above=0)  # supernet weights: SGD, Nesterov momentum 0.9, cosine over the stages
    arch_lr: float = 0.03  # architecture parameters: Adam (beta1 = 0, as ProxylessNAS)
    arch_every: int = _option(4, at_least=1)  # one architecture step per this many weight steps
    cost_strength: float = _option(2.0, "Strength of the budget penalty on alpha.", at_least=0)
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    retrain_epochs: int = _option(30, "Epochs of retraining the derived network.", at_least=0)
    retrain_lr: float = 0.02
    retrain_weight_decay: float = 4e-5
    val_fraction: float = 0.1
    memory_gb: float = _option(8.0, "Keep decoded images in memory up to this size; a larger image tree streams "
                                    "through DataLoader workers.", at_least=0)
    train_per_class: int | None = _option(None, "Use at most this many training images per class (a fixed "
                                                "class-balanced subset).")
    test_per_class: int | None = _option(None, "Use at most this many test images per class.")
    flip: bool | None = None  # None: on, except for the digits (a mirrored digit is another symbol)
    seed: int = _option(0, "Seed of every random choice.")
    # None: the retraining draws as the run's seed scheme does (weights from seed + 1, batch order continuing the
    # search's generator); a number: a retraining of its own seed (searching/retraining.py's `retrain_streams`), as
    # `edgenas check --seeds` retrains each network again. Python API and config.json only.
    retrain_seed: int | None = _option(None, at_least=0)
    device: str = _option("auto", "auto, cpu or cuda.")
    # Speed (docs/BENCHMARKS.md, "CPU training speed"): what `auto` picks was measured to pay on each device.
    precision: str = _option("auto", "auto (bf16 on a GPU, fp32 on the CPU), fp32, bf16, or fp16 (GPU only, with loss "
                                     "scaling). bf16 and fp16 change results beyond the last bits.")
    memory_format: str = _option("auto", "auto (channels-last), channels-last or contiguous (NCHW).")
    compile: bool = _option(False, "torch.compile the network for retraining (costs minutes of compilation; pays "
                                   "only on long retrainings).", flag="--compile")
    report: bool = _option(True, "Draw report.html and its plots when the run ends (a few seconds of plotting; "
                                 "`edgenas report RUN` draws them at any time).", flag="--no-report")
    # Issue 14's mechanisms (docs/SEARCH.md); OLD_BEHAVIOUR above lists the values that switch each one off.
    warmup_epochs: int = _option(10, "Epochs of weight-only warm-up before the first stage (on its classes; `full`: "
                                     "all classes), at the schedule's scale (scaled like the stages); 0: none.",
                                     at_least=0)
    weight_sampling: str = _option("uniform", "Weight steps' paths: uniform over each layer's active candidates "
                                              "(SPOS) or alpha (drawn from the architecture probabilities).",
                                              one_of=SAMPLINGS)
    filter_warmup: float = _option(0.25, "Share of the warm-up during which each layer runs its largest active "
                                         "candidate with a probability falling from 1 to 0 (TuNAS); 0: off.",
                                         at_least=0, at_most=1)
    sandwich: bool = _option(False, "Each supernet weight step after the probe also trains each layer's largest and "
                                    "smallest active candidates (the sandwich rule); the smallest and the sampled "
                                    "paths learn from the largest's outputs (in-place distillation, BigNAS). Three "
                                    "passes a step.", flag="--sandwich")
    prune_score: str = _option("eval", "Pruning ranks candidates by eval (search-validation loss of random paths "
                                       "through them, inherited weights) or alpha (their probability).", one_of=SCORES)
    score_paths: int = _option(48, "--prune-score eval: random paths scored (one search-validation batch each).",
                                   at_least=1)
    prune_confidence: float = _option(3.0, "--prune-score eval: keep a candidate whose mean loss is within this many "
                                           "standard errors of its layer's best (the paths cannot tell them apart); "
                                           "0: prune by the ratio alone.", at_least=0)
    cost_form: str = _option("two-sided", "Cost penalty: two-sided (strength x |expected cost / budget - 1|, TuNAS) or "
                                          "over (only above the budget).", one_of=COST_FORMS)
    cost_ramp: float | None = _option(None, "Share of the architecture steps over which the cost strength rises "
                                            "from 0 (default: the first stage's share); 0: full strength at once.",
                                            at_least=0, at_most=1)
    choice: str = _option("auto", "Final choice: alpha (the knapsack's most probable architecture that fills the "
                                  "budget), eval (best search-validation accuracy among such candidates, supernet "
                                  "weights), train (the same, each trained from scratch for --choice-epochs) or auto: "
                                  "train when the search retrains the winner for more than --choice-epochs, else "
                                  "alpha (docs/SEARCH.md).", one_of=CHOICES)
    choice_candidates: int | None = _option(None, "--choice eval or train: architectures scored (the knapsack's best "
                                                  "and samples from --choice-pool, all from floor x budget to budget; "
                                                  "default: 24 for eval, 6 for train).", at_least=1)
    choice_pool: str = _option("auto", "--choice eval or train: where the candidates after the knapsack's come "
                                       "from: alpha (drawn from the architecture probabilities), uniform (drawn "
                                       "uniformly from each layer's surviving candidates: the pruned space, SPOS) or "
                                       "auto: uniform for train, alpha for eval.", one_of=CHOICE_POOLS)
    choice_score: str = _option("accuracy", "--choice eval: rank the candidates by search-validation accuracy or by "
                                            "loss (the lowest mean cross-entropy: less sampling noise on a few "
                                            "hundred images).", one_of=CHOICE_SCORES)
    choice_epochs: int = _option(3, "--choice train: epochs each candidate trains from its initial weights, with the "
                                    "retraining's settings.", at_least=1)
    budget_floor: float = _option(0.95, "Least share of a binding FLOPs, latency or model size budget the derived "
                                        "network uses (where reachable), the random baseline's too; pruning keeps it "
                                        "reachable; 0: no floor. (Peak memory is a cap: no floor.)", at_least=0,
                                  at_most=1)

    @property
    def final_choice(self) -> str:
        """`choice` with `auto` resolved. A short training ranks architectures by what a retraining of the same
        recipe and data rewards (CIFAR-10 `mobile-small`, 3 of 30 epochs: 53.6% against alpha's 49.6%), but not by
        what a long training on more data rewards (NAS-Bench-Macro: 89.4% against alpha's 91.8%); so `auto` trains
        the candidates when this run retrains the winner itself for longer than their training, and otherwise, when
        the network is trained elsewhere (`--retrain-epochs 0`), takes the supernet's pick. Random search and
        MobileNetV2 keep their single draw."""
        if self.choice != "auto":
            return self.choice
        shortened = self.strategy in ("danas", "full") and self.retrain_epochs > self.choice_epochs
        return "train" if shortened else "alpha"

    @property
    def uniform_pool(self) -> bool:
        """Whether the choice's candidates after the knapsack's are drawn uniformly (`choice_pool`, `auto` resolved:
        uniform for a training choice, where it was measured better, 53.6% against 50.8% on CIFAR-10)."""
        return self.choice_pool == "uniform" or (self.choice_pool == "auto" and self.final_choice == "train")

    @property
    def candidates_scored(self) -> int:
        """How many architectures the final choice scores (1: the knapsack's, unmeasured)."""
        if self.final_choice == "alpha":
            return 1
        return self.choice_candidates or CHOICE_CANDIDATES[self.final_choice]

    def validate(self) -> None:
        if self.strategy not in STRATEGIES:
            raise EdgeNASError(f"unknown strategy {self.strategy!r}: expected one of {', '.join(STRATEGIES)}")
        SPACES.get(self.space)
        parse_schedule(self.schedule)
        check_ranges(SearchSettings, vars(self))
        from edgenas.training.device import MEMORY_FORMATS, PRECISIONS

        for name, value, allowed in (("--precision", self.precision, PRECISIONS),
                                     ("--memory-format", self.memory_format, MEMORY_FORMATS)):
            if value not in allowed:
                raise EdgeNASError(f"bad {name} {value!r}: expected one of {', '.join(allowed)}")
        if self.latency_ms is not None and self.table is None:
            raise EdgeNASError("--latency needs --table DEVICE (a latency table of the target device)")
        if self.epochs is not None and self.strategy != "full":
            raise EdgeNASError("--epochs applies to --strategy full only (DA-NAS follows --schedule)")
        if self.choice_score != "accuracy" and self.final_choice != "eval":
            raise EdgeNASError(f"--choice-score {self.choice_score} applies to --choice eval only (this run's "
                               f"choice: {self.final_choice})")

    @classmethod
    def of_run(cls, run: Run) -> SearchSettings:
        """The settings stored in a run's config.json, checked field by field before use."""
        import typing

        source = run.file("config.json")
        stored = run.config().get("settings")
        if not isinstance(stored, dict):
            raise EdgeNASError(f"run config {source}: missing object 'settings'")
        hints = typing.get_type_hints(cls)
        unknown = sorted(set(stored) - set(hints))
        if unknown:
            raise EdgeNASError(f"run config {source}: unknown setting {unknown[0]!r}; expected only "
                               f"{', '.join(hints)}")
        for name, value in stored.items():
            kind = hints[name]
            options = typing.get_args(kind) or (kind,)
            if isinstance(value, bool):
                fits = bool in options
            else:
                fits = isinstance(value, kind) or (isinstance(value, int) and float in options)
            if not fits:
                expected = " or ".join("null" if k is type(None) else k.__name__ for k in options)
                raise EdgeNASError(f"run config {source}: setting {name!r} is {value!r}; expected {expected}")
        settings = cls(**{**{k: v for k, v in OLD_BEHAVIOUR.items() if k not in stored}, **stored})
        try:
            settings.validate()
        except EdgeNASError as exc:
            raise EdgeNASError(f"run config {source}: {exc}") from None
        return settings


def load_data(settings: SearchSettings, resolution: int) -> Dataset:
    """The run's dataset, split and subset as its settings say (the same images on every call)."""
    from edgenas.data.dataset import load_dataset

    return load_dataset(settings.data, resolution, flip=settings.flip, val_fraction=settings.val_fraction,
                        memory_gb=settings.memory_gb, train_per_class=settings.train_per_class,
                        test_per_class=settings.test_per_class)


def default_resolution(settings: SearchSettings) -> int:
    spec = SPACES.get(settings.space)
    if settings.resolution is not None:
        return settings.resolution
    if settings.data is None:
        return max(16, spec.total_stride)  # the digits are 8x8: 16x16 keeps them whole at a quarter of 32x32's cost
    return spec.default_resolution
