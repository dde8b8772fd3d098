"""Measuring: the timing backends (ONNX Runtime, PyTorch eager on CPU or CUDA; OpenVINO and LiteRT in
`runtime_backend`) and the interleaved passes that time a list of pieces, with each piece's statistics.

Every piece is timed in several passes; each pass creates the piece's session, warms it up, times `repeats` calls
(`exporters.timing.time_calls`) and closes it, so only one session is alive at a time. Passes alternate their order
so that drift during a pass does not always hit the same pieces. A piece's `median_ms` is its smallest pass median,
which discards passes disturbed by other processes; `p90_ms` (`exporters.timing.p90`), `mean_ms` and `std_ms` are
over all timed calls, and `pass_medians_ms` shows the spread.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from edgenas.errors import EdgeNASError
from edgenas.profiling.journal import Journal
from edgenas.space.pieces import Piece
from exporters.settings import ExportSettings
from exporters.timing import p90, time_calls


class OrtBackend:
    """ONNX Runtime: each piece exported once to ONNX (and, with `int8`, quantised); one session alive at a time."""

    def __init__(self, threads: int, provider: str = "cpu", opset: int = ExportSettings.opset, int8: bool = False):
        from exporters.runtimes.onnxruntime import provider_name

        self.threads, self.opset, self.int8 = threads, opset, int8
        self.provider = provider_name(provider)
        self._models: dict[str, bytes] = {}

    def describe(self) -> dict:
        import onnxruntime

        info = {"backend": "onnxruntime", "version": onnxruntime.__version__, "provider": self.provider,
                "threads": self.threads, "graph_optimization": "ORT_ENABLE_ALL", "execution": "sequential",
                "opset": self.opset}
        if self.int8:
            from exporters.runtimes.onnxruntime import RECIPE

            info["quantization"] = RECIPE
        return info

    def prepare(self, piece: Piece) -> None:
        if piece.key not in self._models:  # else prepared for earlier passes
            self._models[piece.key] = onnx_piece(piece, self.opset, self.int8)

    def time(self, piece: Piece, warmup: int, repeats: int) -> list[float]:
        import numpy as np

        from exporters.runtimes.onnxruntime import make_session

        session = make_session(self._models[piece.key], self.threads, self.provider)
        x = np.random.default_rng(0).standard_normal((1, *piece.input_shape)).astype(np.float32)
        try:
            return time_calls(session.run, (None, {session.get_inputs()[0].name: x}), warmup, repeats)
        finally:
            del session


def calibration_inputs(input_shape: tuple[int, int, int]) -> list:
    """What a piece is calibrated on when quantised to INT8, by every backend: two fixed random NCHW inputs.
    Calibration only sets the activations' scales, which do not change what the INT8 kernels cost, and a piece alone
    has no real inputs anyway."""
    import numpy as np

    rng = np.random.default_rng(0)
    return [rng.standard_normal((1, *input_shape)).astype(np.float32) for _ in range(2)]


def onnx_piece(piece: Piece, opset: int, int8: bool) -> bytes:
    """The piece's ONNX file (batch 1, input "input") as ONNX Runtime times it; with `int8` quantised by the recipe
    `edgenas export --int8` ships (`exporters.runtimes.onnxruntime.int8_model`)."""
    from exporters.onnx_export import to_onnx

    model = to_onnx(piece.build(), piece.input_shape, opset=opset)
    if int8:
        from exporters.runtimes.onnxruntime import int8_model

        model = int8_model(model, calibration_inputs(piece.input_shape), "input", piece.key)
    return model


class TorchBackend:
    """PyTorch eager (inference mode); on CUDA, timed with CUDA events, so a table can describe a GPU deployment."""

    def __init__(self, threads: int, device: str = "cpu"):
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            raise EdgeNASError("--provider cuda with --backend torch needs a CUDA GPU; none is visible")
        self.threads, self.device = threads, torch.device(device)
        self._modules: dict[str, Any] = {}

    def describe(self) -> dict:
        import torch

        info = {"backend": "torch-eager", "version": torch.__version__, "device": str(self.device),
                "threads": self.threads}
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.device)
        return info

    def prepare(self, piece: Piece) -> None:
        if piece.key not in self._modules:  # else prepared for earlier passes
            self._modules[piece.key] = piece.build().eval().to(self.device)

    def time(self, piece: Piece, warmup: int, repeats: int) -> list[float]:
        import torch

        module = self._modules[piece.key]
        x = torch.randn(1, *piece.input_shape, generator=torch.Generator().manual_seed(0)).to(self.device)
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                if self.device.type != "cuda":
                    return time_calls(module, (x,), warmup, repeats)
                for _ in range(warmup):
                    module(x)
                times = []
                for _ in range(repeats):  # CUDA events time the GPU's work, which the host's clock would not see
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    module(x)
                    end.record()
                    end.synchronize()
                    times.append(start.elapsed_time(end))
            return times
        finally:
            torch.set_num_threads(previous)


# --backend -> the runtime it times (`ort` is ONNX Runtime's old short name; tables record "onnxruntime")
BACKENDS = {"ort": "onnxruntime", "onnxruntime": "onnxruntime", "openvino": "openvino", "litert": "litert",
            "torch": "torch-eager"}


def make_backend(backend: str, threads: int, provider: str, int8: bool = False):
    """The timing backend `backend` (BACKENDS): OrtBackend, TorchBackend, or a RuntimeBackend for OpenVINO and
    LiteRT."""
    if threads < 1:
        raise EdgeNASError(f"bad --threads {threads}: expected 1 or more")
    if backend not in BACKENDS:
        raise EdgeNASError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if BACKENDS[backend] == "onnxruntime":
        return OrtBackend(threads, provider, int8=int8)
    if backend == "torch":
        if int8:
            raise EdgeNASError("--int8 with --backend torch: INT8 tables time a runtime's quantised models, as "
                               "edgenas export --int8 ships them (ort, openvino, litert); drop --backend torch (or "
                               "--int8)")
        return TorchBackend(threads, "cuda" if provider.lower() == "cuda" else "cpu")
    if provider.lower() != "cpu":
        raise EdgeNASError(f"--provider {provider} with --backend {backend}: {backend} tables are timed on the CPU; "
                           "--provider chooses ONNX Runtime's execution provider (drop it)")
    from edgenas.profiling.runtime_backend import RuntimeBackend

    return RuntimeBackend(backend, threads, int8)


def check_timing(warmup: int, repeats: int, passes: int) -> None:
    if warmup < 0 or repeats < 1 or passes < 1:
        raise EdgeNASError(f"bad timing settings: warmup {warmup}, repeats {repeats}, passes {passes}; expected "
                           "warmup >= 0, repeats >= 1, passes >= 1")


def measure(pieces: list[Piece], backend, warmup: int, repeats: int, passes: int,
            advance: Callable[[str, bool], None] = lambda key, timed: None,
            journal: Journal | None = None) -> dict[str, dict]:
    """Time every piece in `passes` interleaved passes; returns key -> timing statistics (milliseconds).

    With a `journal`, each (pass, piece) measured is recorded as soon as it is timed, and those it already holds
    (from an interrupted profile) are taken from it instead of being timed again. `advance(key, timed)` follows
    each piece prepared (timed False), then each piece of each pass (timed False where taken from the journal).
    """
    check_timing(warmup, repeats, passes)
    done = journal.done if journal is not None else {}
    spent = {piece.key: 0.0 for piece in pieces}
    for piece in pieces:
        start = time.perf_counter()
        if any((p, piece.key) not in done for p in range(passes)):  # a piece timed in every pass needs no model
            backend.prepare(piece)
        spent[piece.key] += time.perf_counter() - start
        advance(piece.key, False)
    calls: dict[str, list[float]] = {piece.key: [] for piece in pieces}
    medians: dict[str, list[float]] = {piece.key: [] for piece in pieces}
    for p in range(passes):
        # Alternate the order so that drift during a pass does not always hit the same pieces.
        for piece in pieces if p % 2 == 0 else reversed(pieces):
            times = done.get((p, piece.key))
            timed = times is None
            if timed:
                start = time.perf_counter()
                times = backend.time(piece, warmup, repeats)
                spent[piece.key] += time.perf_counter() - start
                if journal is not None:
                    journal.add(p, piece.key, times)
            calls[piece.key] += times
            medians[piece.key].append(statistics.median(times))
            advance(piece.key, timed)
    return {key: summarize(calls[key], medians[key], spent[key]) for key in calls}


def summarize(times: list[float], pass_medians: list[float], seconds: float) -> dict:
    """A piece's statistics; `seconds` the wall time its preparation and timing took here (0 for timings taken
    from a journal)."""
    return {"median_ms": min(pass_medians), "p90_ms": p90(times),
            "mean_ms": statistics.fmean(times), "std_ms": statistics.pstdev(times), "n": len(times),
            "pass_medians_ms": pass_medians, "seconds": round(seconds, 3)}
