"""Latency lookup tables: keys, loading and validation, finding tables by device name, and prediction.

A table maps a key naming a piece by its spec and input shape (`ir:k5_e6:16x112x112:24:s2`; the pieces and their
keys are listed once, in `edgenas.space.pieces`) to timings measured
on one device with one runtime, thread count and precision (`fp32`, or `int8`: pieces quantised as
`edgenas export --int8` quantises a network). The prediction of an architecture is the sum of its pieces'
medians with the table's calibration applied (`apply_calibration`: a scale, an offset, a cost per call and per
million parameters, each summing over pieces, and a cost per million parameters beyond what the cache holds;
`calibration.py` fits them). Measuring lives in `edgenas.profiling`; this module does not import torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgenas.errors import EdgeNASError
from edgenas.files import read_json
from edgenas.space.arch import Arch
from edgenas.space.pieces import HEAD_CLASSES, block_key, head_key, space_pieces, stem_key
from edgenas.space.spec import Space

SCHEMA = 1
PRECISIONS = ("fp32", "int8")
# The calibration's numbers (all optional, 0 when absent, scale 1): see `apply_calibration`.
CALIBRATION_TERMS = ("scale", "offset_ms", "ms_per_mparam", "ms_per_call", "cache_mparams", "ms_per_mparam_over_cache")
REQUIRED = ("schema", "device", "host", "runtime", "space", "space_hash", "resolution", "width_mult", "batch",
            "warmup", "repeats", "created", "entries", "fixed", "calibration", "validation")


def imported(runtime: dict) -> bool:
    """Whether a table's `runtime` was timed on a device without Python and imported (`edgenas profile
    --import-timings`): such a runtime names its timings file (`source`); its `backend` is the runtime of the files
    timed there (`litert`, `openvino`), or "imported" for ONNX files, which any runner may have timed."""
    return "source" in runtime or runtime.get("backend") == "imported"


def arch_keys(arch: Arch, space: Space) -> list[str]:
    """The block keys an architecture needs (identity layers need none; a strided skip does)."""
    return [block_key(layer, choice) for layer, choice in zip(space, arch.layers, strict=True)
            if choice in layer.costly_choices]


def calls(arch: Arch, space: Space) -> int:
    """How many pieces the table sums for an architecture (stem, costly blocks, head): each was timed as one call."""
    return len(arch_keys(arch, space)) + 2


def space_keys(space: Space) -> list[str]:
    """Every key a table of this space must hold: stem, heads and each distinct block at each layer shape."""
    return [piece.key for piece in space_pieces(space)]


@dataclass(frozen=True)
class LatencyTable:
    """A loaded, validated table. `data` is the JSON document as written by the profiler."""

    data: dict[str, Any]
    source: str

    @property
    def name(self) -> str:
        return self.data["device"]

    @property
    def precision(self) -> str:
        return self.data["precision"]

    def describe(self) -> str:
        """`INT8 table x86-int8`: the table's precision and file name, as budgets and comparisons name it."""
        return f"{self.precision.upper()} table {Path(self.source).stem}"

    def summary(self, path: str | None = None) -> dict:
        """What `edgenas profile` and `edgenas tables` print: identity, runtime, calibration and fidelity."""
        d, v = self.data, self.data["validation"]
        return {"path": path or self.source, "device": d["device"], "precision": d["precision"], "space": d["space"],
                "resolution": d["resolution"], "width_mult": d["width_mult"], "space_hash": d["space_hash"],
                "runtime": d["runtime"], "passes": d.get("passes"), "entries": len(d["entries"]),
                "calibration": d["calibration"],
                "validation": {k: v.get(k) for k in ("count", "median_abs_error_pct", "p95_abs_error_pct",
                                                     "within_10pct", "kendall_tau_table", "kendall_tau_flops",
                                                     "before_calibration", "kinds_not_tried")},
                "fidelity": self.fidelity()}

    def fidelity(self) -> dict:
        """The table's fidelity as the commands that use it carry it (`describe_fidelity` words it): the share of
        its validation networks predicted within +/-10% and their median and p95 |error| (leave-one-out), with a
        note when the share is under the profiler's goal or the table has no validation networks."""
        from edgenas.cost.notes import FIDELITY_GOAL

        v, name = self.data["validation"], Path(self.source).stem
        fidelity = {"table": name, "count": v.get("count") or 0, "within_10pct": v.get("within_10pct"),
                    "median_abs_error_pct": v.get("median_abs_error_pct"),
                    "p95_abs_error_pct": v.get("p95_abs_error_pct"), "goal_within_10pct": FIDELITY_GOAL["within_10pct"],
                    "method": "leave-one-out over the table's validation networks, each measured end to end",
                    "note": None}
        if not fidelity["count"] or fidelity["within_10pct"] is None:
            fidelity["note"] = (f"note: table {name} has no validation networks: its predictions are uncalibrated "
                                "and their error unknown (profile with --validate 20)")
        elif fidelity["within_10pct"] < FIDELITY_GOAL["within_10pct"]:
            again = ("time the pieces on the device again and import them" if imported(self.data["runtime"])
                     else "profile again on a quiet machine (--fresh --max-passes 15)")
            fidelity["note"] = (f"note: table {name} is of poor fidelity: {describe_fidelity(fidelity)}, under the "
                                f"goal of {100 * FIDELITY_GOAL['within_10pct']:.0f}%; one prediction in twenty may "
                                f"miss by more than {fidelity['p95_abs_error_pct']:.0f}%; {again}")
        return fidelity

    def median(self, key: str) -> float:
        try:
            return float(self.data["entries"][key]["median_ms"])
        except KeyError:
            raise EdgeNASError(f"latency table {self.source} has no entry {key!r}; profile the space again") from None

    def check(self, arch: Arch) -> None:
        """Refuse an architecture of another space, resolution or width, naming both."""
        d = self.data
        if (d["space_hash"], d["resolution"]) != (arch.space_hash, arch.resolution):
            raise EdgeNASError(
                f"latency table {self.source} is for space {d['space']} at {d['resolution']}x{d['resolution']}, "
                f"width {d['width_mult']} (hash {d['space_hash']}); the architecture is space {arch.space} at "
                f"{arch.resolution}x{arch.resolution}, width {arch.width_mult} (hash {arch.space_hash})")

    def head_ms(self, space: Space, num_classes: int) -> float:
        low, high = (self.median(head_key(space, c)) for c in HEAD_CLASSES)
        c0, c1 = HEAD_CLASSES
        return low + (high - low) * (num_classes - c0) / (c1 - c0)

    def raw_ms(self, arch: Arch) -> float:
        """Sum of the pieces' medians, before calibration."""
        self.check(arch)
        space = arch.resolve_space()
        blocks = sum(self.median(key) for key in arch_keys(arch, space))
        return self.median(stem_key(space)) + blocks + self.head_ms(space, arch.num_classes)

    def predict(self, arch: Arch) -> float:
        """Predicted latency in milliseconds: the sum of the pieces with the table's calibration."""
        calibration = self.data["calibration"]
        params = 0
        if calibration.get("ms_per_mparam") or calibration.get("ms_per_mparam_over_cache"):
            from edgenas.cost.flops import cost_table

            params = cost_table(arch.resolve_space()).params(arch)
        return apply_calibration(self.raw_ms(arch), params, calls(arch, arch.resolve_space()), calibration)


def describe_fidelity(fidelity: dict) -> str:
    """`57% of its 20 validation networks within +/-10% (median |error| 8.2%, p95 24.0%)`: a `fidelity()` in words."""
    if not fidelity.get("count") or fidelity.get("within_10pct") is None:
        return "no validation networks: fidelity unknown"
    return (f"{100 * fidelity['within_10pct']:.0f}% of its {fidelity['count']} validation networks within +/-10% "
            f"(median |error| {fidelity['median_abs_error_pct']:.1f}%, p95 {fidelity['p95_abs_error_pct']:.1f}%)")


def budget_verdict(predicted_ms: float, budget_ms: float, fidelity: dict | None) -> str:
    """Whether a predicted latency meets a budget, as far as the table can tell: `NOT met` above it; `met only as
    predicted` when a miss as large as the table's p95 |error| (or any miss, for a table of unknown fidelity) would
    put the network over it; `met` otherwise. The p95, not the median: a table whose median error is 8% misses
    one network in four by more than that, and the budget is a promise about the network shipped."""
    if predicted_ms > budget_ms:
        return "NOT met"
    p95 = None if fidelity is None or not fidelity.get("count") else fidelity.get("p95_abs_error_pct")
    if p95 is None:
        return "met only as predicted (the table's error is unknown)"
    if predicted_ms * (1 + p95 / 100) > budget_ms:
        return (f"met only as predicted: {100 * (budget_ms / predicted_ms - 1):.1f}% of headroom, within the "
                f"table's p95 |error| of {p95:.1f}%")
    return f"met, with {100 * (budget_ms / predicted_ms - 1):.1f}% of headroom (the table's p95 |error|: {p95:.1f}%)"


def apply_calibration(raw_ms: float, params: int, pieces: int, calibration: dict) -> float:
    """scale x (sum of the pieces' medians) + ms_per_call x pieces + ms_per_mparam x (millions of parameters) +
    offset_ms + ms_per_mparam_over_cache x (millions of parameters beyond cache_mparams)."""
    c, mparams = calibration.get, params / 1e6
    return (c("scale", 1.0) * raw_ms + c("ms_per_call", 0.0) * pieces + c("ms_per_mparam", 0.0) * mparams
            + c("offset_ms", 0.0) + c("ms_per_mparam_over_cache", 0.0) * max(0.0, mparams - c("cache_mparams", 0.0)))


# Fields read by lookups and checks, with the JSON type each must have (the rest is description).
_FIELD_TYPES = (("device", str, "a string"), ("space", str, "a string"), ("space_hash", str, "a string"),
                ("resolution", int, "an integer"), ("width_mult", int | float, "a number"),
                ("runtime", dict, "an object"), ("host", dict, "an object"), ("fixed", dict, "an object"),
                ("validation", dict, "an object"))


def validate_table(data: Any, source: str) -> LatencyTable:
    if not isinstance(data, dict):
        raise EdgeNASError(f"latency table {source}: expected a JSON object")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise EdgeNASError(f"latency table {source}: missing key {missing[0]!r}")
    if data["schema"] != SCHEMA:
        raise EdgeNASError(f"latency table {source}: schema {data['schema']!r} is not supported; expected {SCHEMA}")
    known = " or ".join(repr(p) for p in PRECISIONS)
    if "precision" not in data:
        raise EdgeNASError(f"latency table {source}: no 'precision' field; expected {known}: profile the device "
                           "again, or add \"precision\": \"fp32\" to the file if it was measured in FP32")
    if data["precision"] not in PRECISIONS:
        raise EdgeNASError(f"latency table {source}: precision {data['precision']!r:.60} is unknown; expected {known}")
    for key, kinds, expected in _FIELD_TYPES:
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise EdgeNASError(f"latency table {source}: {key!r} is {value!r:.60}; expected {expected}")
    entries = data["entries"]
    if not isinstance(entries, dict) or not entries:
        raise EdgeNASError(f"latency table {source}: 'entries' must be a non-empty object")
    for key, entry in entries.items():
        median = entry.get("median_ms") if isinstance(entry, dict) else None
        if isinstance(median, bool) or not isinstance(median, int | float) or not median >= 0:
            raise EdgeNASError(f"latency table {source}: entry {key!r} has no valid 'median_ms' (expected a "
                               "non-negative number of milliseconds)")
    calibration = data["calibration"]
    if not isinstance(calibration, dict) or not all(
            isinstance(calibration.get(k, 0.0), int | float) and not isinstance(calibration.get(k), bool)
            for k in CALIBRATION_TERMS):
        raise EdgeNASError(f"latency table {source}: 'calibration' must hold numbers ({', '.join(CALIBRATION_TERMS)}"
                           "; each optional)")
    return LatencyTable(data, source)


def shipped_folder() -> Path:
    """The tables shipped with edgenas: those of the source checkout this edgenas was loaded from, else package data
    of `edgenas.latency_tables`, found with importlib.resources.

    pyproject.toml maps the repository's top-level latency_tables/ folder to that name, which no folder in the
    working directory can shadow (`edgenas profile` writes ./latency_tables/, and `python -m edgenas`, torchrun
    and `--nproc` put the working directory first on sys.path). A checkout's own folder beside edgenas/ comes first:
    one used through PYTHONPATH while another copy is installed (a git worktree beside an editable install) would
    otherwise get the installed copy's tables with its own code.
    """
    from importlib import resources

    beside = Path(__file__).resolve().parents[1] / "latency_tables"
    if (beside / "__init__.py").is_file():
        return beside
    try:
        return Path(str(resources.files("edgenas.latency_tables")))
    except ModuleNotFoundError:
        return beside


def table_dirs() -> list[Path]:
    """Where tables are looked for by device name: ./latency_tables, then the tables shipped with edgenas."""
    return [Path.cwd() / "latency_tables", shipped_folder()]


def find_table_path(name: str) -> Path:
    """A table by file path, or by device name in `table_dirs()`."""
    path = Path(name)
    if path.suffix == ".json" or os.sep in name:
        if not path.is_file():
            raise EdgeNASError(f"latency table {name} does not exist")
        return path
    for folder in table_dirs():
        candidate = folder / f"{name}.json"
        if candidate.is_file():
            return candidate
    known = sorted({p.stem for folder in table_dirs() if folder.is_dir() for p in folder.glob("*.json")})
    raise EdgeNASError(f"no latency table named {name!r} in ./latency_tables or the shipped tables; known: "
                       f"{', '.join(known) or 'none'} (make one with `edgenas profile {name}`)")


def load_table(name: str) -> LatencyTable:
    path = find_table_path(name)
    return validate_table(read_json(path, "latency table"), str(path))


def list_tables() -> tuple[list[LatencyTable], list[str]]:
    """Every readable table in `table_dirs()` (a table in ./latency_tables hides a shipped one of the same name), and
    why each JSON file there that is not a valid table was passed over."""
    found: dict[str, LatencyTable] = {}
    refused: list[str] = []
    for folder in table_dirs():
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            if path.stem not in found:
                try:
                    found[path.stem] = validate_table(read_json(path, "latency table"), str(path))
                except EdgeNASError as exc:
                    refused.append(str(exc))  # a table from before `precision`, a damaged file, not a table
    return list(found.values()), refused
