"""The runtime interface: what every deployment runtime (ONNX Runtime, LiteRT, OpenVINO) offers the exporter, the
verifier and the profiler, so that each of them is written once for all runtimes.

A runtime converts a run's PyTorch network (and the ONNX file edgenas exports first) into its own file, quantises
that file to INT8 by its own route, opens a session pinned to a thread count, and runs batches of NCHW float32
images to logits. Everything that measures (outputs against PyTorch, accuracy, batch-1 latency, the table's
prediction) lives in the verifier and the profiler and only calls these methods.

A runtime whose package is missing says which extra installs it (`require`), in one line, before anything is written.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edgenas.errors import EdgeNASError


class Session(Protocol):
    """An opened model file: `run` takes N x 3 x R x R float32 images (NCHW, normalised as the run's data is) and
    returns N x classes float32 logits, whatever layout or batch handling the file itself uses. `precision` is what
    it computes in, as the runtime reports it once loaded ("fp32", "bf16", "int8"): OpenVINO decides at load time,
    and on a CPU without bf16 a bf16 request runs in fp32. `layout` is the file's own input layout ("NCHW", or
    "NHWC" for LiteRT), which the session converts to; `how` says how it runs (threads, the runtime's settings)."""

    precision: str
    layout: str
    how: str

    def run(self, images: np.ndarray) -> np.ndarray: ...


class PieceSession(Protocol):
    """An opened piece (`Runtime.open_piece`): `call()` runs it once on a fixed input already in place, as a deployed
    network runs it between two others; `precision` is what it computes in, as the runtime reports it once loaded."""

    precision: str

    def call(self) -> object: ...


@dataclass(frozen=True)
class Converted:
    """A file a runtime wrote, and what a report says of it: the runtime, its version, the precision it runs at,
    how it was made, and the sidecar JSON holding edgenas's metadata when the format cannot carry it."""

    path: Path
    runtime: str
    version: str
    precision: str  # what the session computes in: "fp32", "int8", "bf16", ...
    method: str  # e.g. "openvino.convert_model from the ONNX file, saved without FP16 compression"
    sidecar: Path | None = None


class Runtime(ABC):
    """One deployment runtime. Subclasses set the class attributes and implement the abstract methods."""

    name: str  # "onnxruntime", "litert", "openvino": the value of --runtime
    suffix: str  # the file extension that selects it: ".onnx", ".tflite", ".xml"
    modules: tuple[str, ...]  # the Python modules it needs
    extra: str | None  # the pip extra that installs them (None: a core dependency)
    method: str = "not described"  # how `convert` makes the file, for the report
    from_onnx: bool = True  # whether `convert` reads the ONNX file (False: from the PyTorch network alone)
    precisions: tuple[str, ...] = ("fp32",)  # what an FP32 file's session can be asked to compute in (--precision)

    def __init__(self, precision: str = "fp32"):
        if precision not in self.precisions:
            raise EdgeNASError(f"bad --precision {precision}: runtime {self.name} runs its FP32 file in "
                               f"{' or '.join(self.precisions)}")
        self.precision = precision

    def require(self) -> None:
        """Refuse, in one line naming the extra, when this runtime's packages are not installed."""
        missing = [m for m in self.modules if importlib.util.find_spec(m.split(".")[0]) is None]
        if missing:
            how = f"pip install 'edgenas[{self.extra}]'" if self.extra else "reinstall edgenas"
            verb = "is" if len(missing) == 1 else "are"
            raise EdgeNASError(f"runtime {self.name} needs {', '.join(missing)}, which {verb} not installed: {how}")

    @abstractmethod
    def version(self) -> str:
        """The installed runtime's version."""

    @abstractmethod
    def convert(self, model, onnx_path: Path | None, out: Path, metadata: dict[str, str]) -> Converted:
        """Write the FP32 file `out` (atomically) from the run's network `model` (eval mode, PyTorch) or the ONNX file
        edgenas exported from it (`onnx_path`, with its metadata; None for a runtime that is not `from_onnx`),
        carrying `metadata` (edgenas's keys: arch, classes, preprocessing, ...) in the file or in a sidecar JSON
        beside it."""

    @abstractmethod
    def quantize(self, model, fp32: Converted, calibration: list[np.ndarray], out: Path) -> Converted:
        """Write the INT8 file `out` (atomically) by this runtime's own route, calibrated on `calibration` batches of
        training images (NCHW float32); raise EdgeNASError with the reason where this runtime cannot make one."""

    @abstractmethod
    def open(self, path: Path, threads: int, batch: int | None = None) -> Session:
        """A session of the file pinned to `threads` threads; `batch`, when given, fixes the batch size (batch-1
        latency is timed on a session opened with batch=1)."""

    @abstractmethod
    def int8_weights(self, path: Path) -> int:
        """How many weight tensors of the file are stored as int8: proof that an INT8 file runs int8 kernels."""

    def piece_model(self, module, input_shape: tuple[int, int, int], int8: bool = False,
                    calibration: list[np.ndarray] | None = None):
        """A bare module (a piece of a space: eval mode, any C x H x W `input_shape`, batch 1) converted as `convert`
        converts a network, and with `int8` quantised by `quantize`'s route, calibrated on `calibration` (NCHW
        float32 batches): what the profiler times (`edgenas profile --backend NAME`). Held in memory; only
        `open_piece` reads it."""
        raise EdgeNASError(f"runtime {self.name} cannot time a piece alone: profile with another --backend")

    def open_piece(self, model, input_shape: tuple[int, int, int], threads: int) -> PieceSession:
        """A session of `piece_model`'s result pinned to `threads` threads, with a fixed random input in place."""
        raise EdgeNASError(f"runtime {self.name} cannot time a piece alone: profile with another --backend")

    def save_piece(self, model, out: Path) -> list[Path]:
        """Write `piece_model`'s result as this runtime's own file `out` (each file atomically), for a device to time
        with the runtime's own tool (`edgenas profile --export-blocks`); returns every file written, `out` first."""
        raise EdgeNASError(f"runtime {self.name} cannot write a piece alone: export blocks with another --backend")

    def piece_settings(self, int8: bool) -> dict:
        """How `open_piece` runs, for a latency table's `runtime` record (beside backend, version and threads)."""
        return {}

    def files(self, path: Path) -> list[Path]:
        """Every file that makes up the model `path`, the model file first: what a failed or interrupted export
        deletes. A format spread over several files (OpenVINO's .xml and .bin) or with a sidecar overrides it."""
        return [path]

    def metadata(self, path: Path) -> dict[str, str]:
        """edgenas's metadata of the file (`edgenas.arch`, `edgenas.classes`, `edgenas.preprocessing`, ...: JSON
        strings, as the ONNX file holds them), from the file or its sidecar; `exporters.read_metadata` parses it."""
        raise EdgeNASError(f"cannot read edgenas metadata from {path}: runtime {self.name} does not say how")

    def report_path(self, path: Path) -> Path:
        """Where the verification report of the file `path` goes: NAME.RUNTIME.report.json (ONNX Runtime keeps the
        NAME.report.json it had before other runtimes), so that one name exported to several runtimes in one folder
        (model.onnx, model.xml) keeps a report for each file."""
        return path.with_name(f"{path.name[: -len(self.suffix)]}.{self.name}.report.json")

    def int8_path(self, fp32: Path) -> Path:
        """Where the INT8 file of `fp32` goes: NAME.int8 + the runtime's suffix."""
        return fp32.with_name(fp32.name[: -len(self.suffix)] + ".int8" + self.suffix)
