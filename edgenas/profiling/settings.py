"""`ProfileSettings`: what a profile is asked to do, each setting's default, help and range declared once.

`edgenas profile` generates its options from these fields (`edgenas.cli.options`) and checks them with
`ProfileSettings.check`; `edgenas.profile(...)` and `profiler.profile(...)` read their defaults from here. The
space a table measures (`space`, `resolution`, `width_mult`) is declared here for every command that names one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from edgenas.errors import EdgeNASError
from edgenas.runs.declared import check_ranges, flag_of, option
from exporters.settings import REPEATS, WARMUP

# The settings that say where timings come from instead of measuring here (`edgenas profile` only).
ELSEWHERE = ("export_blocks", "import_timings", "manifest")
# How this machine times (`--export-blocks` leaves the timing to the device's own tool, as its manifest says).
TIMED_HERE = ("threads", "provider", "warmup", "repeats", "passes", "max_passes", "fresh")


@dataclass(frozen=True)
class ProfileSettings:
    """Every setting of `edgenas profile`, defaults included, in the order its options are listed."""

    space: str = option("mobile", "Search space.")
    resolution: int | None = option(None, "Input resolution (default: the space's).")
    width_mult: float = option(1.0, "Width multiplier.")
    threads: int = option(1, "Intra-op threads, pinned.", at_least=1)
    provider: str = option("cpu", "ONNX Runtime execution provider: cpu, cuda, ...")
    backend: str = option("ort", "ort (ONNX Runtime; onnxruntime is the same), openvino, litert (each converted "
                                 "and quantised as edgenas export ships it), or torch (PyTorch eager; CUDA events on "
                                 "a GPU).")
    warmup: int = option(WARMUP, "Untimed calls before each pass.", at_least=0)
    repeats: int = option(REPEATS, "Timed calls per piece and pass.", at_least=1)
    passes: int = option(5, "Interleaved passes; a piece's median is its best pass median.", at_least=1)
    max_passes: int | None = option(None, "While under 90% of the validation networks are predicted within +/-10% "
                                          "or their median error is over 2%, time --passes more passes, up to this "
                                          "many in all (a busy machine; default: --passes).")
    validate: int = option(20, "Random networks measured end to end to calibrate and check the table (MobileNetV2 "
                               "is added where the space has it).", at_least=0, unit="networks")
    seed: int = option(0, "Seed of the validation networks.")
    out: Path | None = option(None, "Where to write the table.")
    export_blocks: Path | None = option(None, "Instead of measuring here: write every piece and validation network "
                                              "in the --backend's own format (ort: ONNX; litert: .tflite for "
                                              "benchmark_model; openvino: IR for benchmark_app), INT8 with --int8, "
                                              "plus a manifest to this folder.")
    import_timings: Path | None = option(None, "Build the table from timings measured on the device (CSV or JSON, "
                                               "see the manifest); the manifest's runtime and precision are the "
                                               "table's.")
    manifest: Path | None = option(None, "Manifest of --import-timings (default: beside it).")
    fresh: bool = option(False, "Measure everything again instead of continuing an interrupted profile of the same "
                                "settings (OUT.partial).", flag="--fresh")
    int8: bool = option(False, "An INT8 table: time every piece and validation network quantised as `edgenas export "
                               "--int8` quantises a network (with --export-blocks: write them quantised so).",
                        flag="--int8")

    def check(self) -> None:
        """Refuse a value outside its declared range, or settings that contradict each other."""
        check_ranges(ProfileSettings, vars(self))
        if self.max_passes is not None and self.max_passes < self.passes:
            raise EdgeNASError(f"bad --max-passes {self.max_passes}: expected at least --passes ({self.passes})")
        if self.export_blocks is not None:
            for field in dataclasses.fields(self):
                if field.name in TIMED_HERE and getattr(self, field.name) != field.default:
                    given = flag_of(field) + ("" if isinstance(field.default, bool) else
                                              f" {getattr(self, field.name)}")
                    raise EdgeNASError(f"{given} with --export-blocks: nothing is timed here; the device's own tool "
                                       f"times the files as the manifest's timings_format says")

    def measuring(self) -> dict:
        """The keyword arguments of `profiler.profile` (all but the space and the settings of another device)."""
        skip = ("space", "resolution", "width_mult", *ELSEWHERE)
        return {name: value for name, value in vars(self).items() if name not in skip}
