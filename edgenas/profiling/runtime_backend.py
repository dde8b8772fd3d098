"""The timing backend of a deployment runtime other than ONNX Runtime (`edgenas profile --backend openvino|litert`):
each piece converted, and with `int8` quantised, by the runtime's own code (`Runtime.piece_model`, the route `edgenas
export --runtime NAME` ships a network by), then timed in a session pinned to the thread count (`open_piece`), one
alive at a time, as `measure` times every backend.

A table of one runtime says nothing about another (OpenVINO took 1.0-2.0x ONNX Runtime's time on one CPU, LiteRT
1.8x: issue 36), so each runtime's table records it by name ("openvino", "litert"), with its version and settings.
OpenVINO is pinned to f32 (on a CPU with AMX it would run an FP32 model in bf16 by default); a session that runs
another precision than the table's (fp32, or int8 kernels for an INT8 table) is refused rather than timed. A call
runs the piece on an input already in place (OpenVINO's infer request, LiteRT's invoke), as inside a network.
"""

from __future__ import annotations

from edgenas.errors import EdgeNASError
from edgenas.profiling.measure import calibration_inputs
from edgenas.space.pieces import Piece
from exporters.timing import time_calls


def runtime_piece(runtime, piece: Piece, int8: bool):
    """The piece converted by `runtime` (an `exporters.runtimes.Runtime`), and with `int8` quantised, calibrated as
    every backend calibrates a piece (`measure.calibration_inputs`): what this backend times, and what
    `--export-blocks` writes for the runtime's own tools."""
    calibration = calibration_inputs(piece.input_shape) if int8 else None
    return runtime.piece_model(piece.build().eval(), piece.input_shape, int8, calibration)


class RuntimeBackend:
    """Times pieces with the runtime `name` of `exporters.runtimes`; one session alive at a time."""

    def __init__(self, name: str, threads: int, int8: bool = False):
        from exporters.runtimes import runtime

        self.runtime = runtime(name)  # FP32 files run in fp32: OpenVINO's precision hint pinned to f32
        self.runtime.require()
        self.threads, self.int8 = threads, int8
        self.precision = "int8" if int8 else "fp32"
        self._models: dict[str, object] = {}

    def describe(self) -> dict:
        return {"backend": self.runtime.name, "version": self.runtime.version(), "threads": self.threads,
                "precision": self.precision, **self.runtime.piece_settings(self.int8)}

    def prepare(self, piece: Piece) -> None:
        if piece.key not in self._models:  # else prepared for earlier passes
            self._models[piece.key] = runtime_piece(self.runtime, piece, self.int8)

    def time(self, piece: Piece, warmup: int, repeats: int) -> list[float]:
        session = self.runtime.open_piece(self._models[piece.key], piece.input_shape, self.threads)
        try:
            if session.precision != self.precision:
                raise EdgeNASError(f"{self.runtime.name} ran piece {piece.key} in {session.precision}, not "
                                   f"{self.precision}: its timing would not describe a {self.precision} network")
            return time_calls(session.call, (), warmup, repeats)
        finally:
            del session
