"""The files `edgenas profile --export-blocks` writes, one format per `--backend`, and the tool that times each on
the device: ONNX (`ort`, the default: onnxruntime_perf_test or any ONNX runner), LiteRT's .tflite (`litert`:
benchmark_model, on Android too), OpenVINO IR, NNNN.xml and NNNN.bin (`openvino`: benchmark_app).

Each piece is converted, and with `int8` quantised, by the very code that profiles that backend here
(`measure.onnx_piece`, `runtime_backend.runtime_piece`), so that a table built from the device's timings describes
the files `edgenas export --runtime NAME [--int8]` ships. The tools' flags are those of their own documentation
(docs/LATENCY.md says where they were checked).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgenas.errors import EdgeNASError
from edgenas.files import atomic_write_bytes
from edgenas.space.pieces import Piece


@dataclass(frozen=True)
class BlockFormat:
    """One runtime's files: what the manifest records of them, and how to time one on the device."""

    runtime: str  # the runtime of `exporters.runtimes` whose file it is
    format: str  # the manifest's "format"
    suffix: str  # each file is NNNN + suffix
    layout: str  # every file's input layout: "input_shape" is in it
    tool: str  # how to time one file, ending the manifest's "timings_format"


FORMATS = {
    "onnxruntime": BlockFormat("onnxruntime", "onnx", ".onnx", "NCHW",
                               "for example with onnxruntime_perf_test -I -r 200 FILE"),
    # LiteRT runs NHWC natively; its pieces are converted NHWC in, as the profiler converts them (litert_convert)
    "litert": BlockFormat("litert", "tflite", ".tflite", "NHWC",
                          "with LiteRT's benchmark_model --graph=FILE --num_threads=1 --warmup_runs=20 --num_runs=200; "
                          "it reports no median but a mean in microseconds ('Inference (avg)'): write it divided by "
                          "1000 as median_ms"),
    # f32 pinned and one stream, as the profiler's OpenVINO sessions (an AMX CPU would pick bf16 by default)
    "openvino": BlockFormat("openvino", "openvino-ir", ".xml", "NCHW",
                            "with benchmark_app -m FILE -d CPU -hint none -nstreams 1 -nthreads 1 -api sync -niter 200 "
                            "-infer_precision f32 (FILE.bin beside it); its 'Median' latency, in ms (it may print "
                            "us), is median_ms"),
}


def block_format(backend: str) -> BlockFormat:
    """The format `--export-blocks` writes for `--backend` (its names as `measure.BACKENDS` maps them)."""
    from edgenas.profiling.measure import BACKENDS

    if BACKENDS.get(backend) not in FORMATS:
        accepted = ", ".join(name for name, runtime in BACKENDS.items() if runtime in FORMATS)
        raise EdgeNASError(f"bad --backend {backend} with --export-blocks: expected one of {accepted}, a runtime "
                           "whose files a device times with its own tool")
    return FORMATS[BACKENDS[backend]]


def runtime_of(fmt: BlockFormat):
    """The format's runtime (`exporters.runtimes`), refused in one line naming its extra where it is not installed:
    before anything is written."""
    from exporters.runtimes import runtime

    rt = runtime(fmt.runtime)
    rt.require()
    return rt


def describe(fmt: BlockFormat, rt, int8: bool, opset: int) -> dict:
    """The manifest's fields on the files: the ONNX opset they went through (none for .tflite, which litert-torch
    converts from PyTorch), runtime, format, precision, and what wrote and quantised them."""
    from exporters.settings import ExportSettings

    # OpenVINO's piece_model exports the piece to ONNX at the export's opset before converting it
    fields = {"opset": {"onnx": opset, "openvino-ir": ExportSettings.opset}.get(fmt.format), "batch": 1,
              "runtime": fmt.runtime, "format": fmt.format, "precision": "int8" if int8 else "fp32"}
    if fmt.runtime != "onnxruntime":  # the ONNX files are torch.onnx's, whatever runtime reads them
        fields["runtime_version"] = rt.version()
    if int8:
        from exporters.runtimes.onnxruntime import RECIPE

        fields["quantization"] = RECIPE if fmt.runtime == "onnxruntime" else rt.piece_settings(True)["quantization"]
    return fields


def write_piece(fmt: BlockFormat, rt, piece: Piece, folder: Path, stem: str, int8: bool, opset: int) -> dict:
    """Write `piece` as `folder/stem` + the format's suffix (each file atomically) with the format's runtime `rt`;
    returns its manifest record."""
    out = folder / f"{stem}{fmt.suffix}"
    record: dict = {"key": piece.key, "file": out.name}
    if fmt.runtime == "onnxruntime":
        from edgenas.profiling.measure import onnx_piece

        atomic_write_bytes(out, onnx_piece(piece, opset, int8))
        record["input_name"] = "input"
    else:
        from edgenas.profiling.runtime_backend import runtime_piece

        written = rt.save_piece(runtime_piece(rt, piece, int8), out)
        if len(written) > 1:
            record["weights"] = [path.name for path in written[1:]]
    c, h, w = piece.input_shape
    record["input_shape"] = [1, h, w, c] if fmt.layout == "NHWC" else [1, c, h, w]
    record["input_layout"] = fmt.layout
    return record
