"""Latency tables of the deployment runtimes, for real on the tiny space: `edgenas profile --backend openvino` (FP32
pinned to f32, and INT8) writes a table that loads, predicts, records the runtime, and re-measures a network with the
same runtime; export's comparison knows the runtime of such a table; `--backend litert` converts every piece NHWC in
and out with no TRANSPOSE left inside (skipped, with the reason, where the `litert` extra is not installed: run it
with a Python that has it). Few repeats and passes: these tests check what is recorded, not how well it predicts.
"""

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from edgenas.cli.app import app
from edgenas.cost.latency import load_table, space_keys
from edgenas.cost.presets import random_arch
from edgenas.errors import EdgeNASError
from edgenas.profiling.device_timings import export_blocks, import_timings
from edgenas.profiling.measure import make_backend
from edgenas.profiling.profiler import measure_arch, profile
from edgenas.space.pieces import space_pieces
from edgenas.space.spec import get_space
from exporters.table_check import table_prediction

FAST = {"warmup": 1, "repeats": 3, "passes": 1, "progress": False}
LITERT = ("ai_edge_litert", "litert_torch", "torchao")
needs_litert = pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in LITERT),
                                  reason="LiteRT needs the litert extra: pip install 'edgenas[litert]'")


@pytest.fixture(scope="module")
def openvino_table(tmp_path_factory, one_thread):
    pytest.importorskip("openvino", reason="OpenVINO needs the openvino extra: pip install 'edgenas[openvino]'")
    out = tmp_path_factory.mktemp("ov") / "tiny-ov.json"
    return profile("tiny-ov", get_space("tiny"), backend="openvino", validate=3, out=out, **FAST)


def test_an_openvino_table_records_its_runtime_pinned_to_f32_and_predicts(openvino_table):
    from importlib.metadata import version

    path, table = openvino_table
    loaded = load_table(str(path))
    runtime = loaded.data["runtime"]
    assert runtime["backend"] == "openvino" and runtime["version"] == version("openvino")
    assert runtime["threads"] == 1 and runtime["precision"] == "fp32" and loaded.precision == "fp32"
    assert runtime["inference_precision_hint"] == "f32"  # not bf16, which an AMX CPU would pick by default
    assert set(loaded.data["entries"]) == set(space_keys(get_space("tiny")))
    assert loaded.data["validation"]["count"] == 5 and all(e["median_ms"] > 0 for e in loaded.data["entries"].values())
    arch = random_arch(get_space("tiny"), 10, 3)
    assert loaded.predict(arch) == pytest.approx(table.predict(arch)) and loaded.predict(arch) > 0
    # Re-measured with the table's runtime (what `edgenas latency --measure` prints), and export's comparison
    # notes another runtime's file only.
    assert measure_arch(arch, loaded, passes=1) > 0
    same = table_prediction(loaded, arch, 1.0, None, threads=1, runtime="openvino")
    other = table_prediction(loaded, arch, 1.0, None, threads=1, runtime="onnxruntime")
    assert not any("measured with" in note for note in same["notes"])
    assert any("was measured with openvino, this file runs in onnxruntime" in note for note in other["notes"])


def test_an_openvino_int8_table_times_int8_pieces(tmp_path, one_thread):
    pytest.importorskip("openvino", reason="OpenVINO needs the openvino extra: pip install 'edgenas[openvino]'")
    from exporters.runtimes.onnxruntime import RECIPE

    path, _ = profile("tiny-ov", get_space("tiny"), backend="openvino", int8=True, validate=0,
                          out=tmp_path / "tiny-ov-int8.json", **FAST)
    loaded = load_table(str(path))
    runtime = loaded.data["runtime"]
    assert loaded.precision == "int8" and runtime["precision"] == "int8" and runtime["backend"] == "openvino"
    assert runtime["quantization"].startswith(RECIPE) and runtime["inference_precision_hint"] == "f32"
    assert loaded.predict(random_arch(get_space("tiny"), 1000, 1)) > 0


def test_the_onnxruntime_backend_is_ort_under_the_name_tables_record():
    assert make_backend("onnxruntime", 1, "cpu").describe() == make_backend("ort", 1, "cpu").describe()
    assert make_backend("ort", 1, "cpu").describe()["backend"] == "onnxruntime"


@pytest.mark.parametrize(("args", "message"), [
    (["--backend", "tvm"], "unknown backend 'tvm': expected one of ort, onnxruntime, openvino, litert, torch"),
    (["--backend", "openvino", "--provider", "cuda"], "--provider cuda with --backend openvino"),
])
def test_a_bad_backend_is_one_line(args, message):
    result = CliRunner().invoke(app, ["profile", "d", "--space", "tiny", *args])
    assert result.exit_code == 1 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_backend_whose_extra_is_missing_names_the_extra():
    missing = [m for m in LITERT if importlib.util.find_spec(m) is None]
    if not missing:
        pytest.skip("the litert extra is installed here: nothing is missing")
    with pytest.raises(EdgeNASError, match=r"runtime litert needs .*pip install 'edgenas\[litert\]'") as raised:
        make_backend("litert", 1, "cpu")
    assert "\n" not in str(raised.value)


@needs_litert
def test_litert_pieces_run_nhwc_with_no_transpose_inside(tiny):
    import numpy as np
    import torch

    from edgenas.space.pieces import space_pieces
    from exporters.runtimes.litert import LiteRT
    from exporters.runtimes.litert_convert import operators

    pieces = {p.key: p for p in space_pieces(tiny)}
    rt = LiteRT()
    for key in ("stem:3x16x16:8:s2:8", "ir:k3_e6_se:8x8x8:16:s2", "head:24x4x4:64:c10"):
        piece = pieces[key]
        flat = rt.piece_model(piece.build().eval(), piece.input_shape)
        assert "TRANSPOSE" not in operators(flat), (key, operators(flat))
        session = rt.open_piece(flat, piece.input_shape, threads=1)
        shape = tuple(session._interpreter.get_input_details()[0]["shape"])
        c, h, w = piece.input_shape
        assert shape == (1, h, w, c) and session.precision == "fp32"
        session.call()
        with torch.no_grad():
            nchw = tuple(piece.build().eval()(torch.zeros(1, c, h, w)).shape)
        out = tuple(session._interpreter.get_output_details()[0]["shape"])
        assert out == (nchw if len(nchw) == 2 else (nchw[0], nchw[2], nchw[3], nchw[1]))  # feature maps NHWC
    calibration = [np.random.default_rng(0).standard_normal((1, 8, 8, 8)).astype(np.float32)]
    piece = pieces["ir:k3_e6_se:8x8x8:16:s2"]
    int8 = rt.piece_model(piece.build().eval(), piece.input_shape, int8=True, calibration=calibration)
    assert "TRANSPOSE" not in operators(int8) and rt.open_piece(int8, piece.input_shape, 1).precision == "int8"


@needs_litert
def test_a_litert_table_records_its_runtime_and_is_measured_with_it(tmp_path, one_thread):
    from importlib.metadata import version

    path, table = profile("tiny-lt", get_space("tiny"), backend="litert", validate=0, out=tmp_path / "lt.json",
                          **FAST)
    runtime = json.loads(path.read_text())["runtime"]
    assert runtime["backend"] == "litert" and runtime["version"] == version("ai-edge-litert")
    assert runtime["threads"] == 1 and runtime["precision"] == "fp32" and "NHWC" in runtime["layout"]
    arch = random_arch(get_space("tiny"), 10, 3)
    assert table.predict(arch) > 0 and measure_arch(arch, table, passes=1) > 0


def _import_back(manifest_path, timings_ms: dict[str, float], out):
    """The table `--import-timings` builds from `timings_ms` (key -> milliseconds, as the device's tool gave them),
    written as the CSV a user writes."""
    timings = out.with_suffix(".csv")
    timings.write_text("key,median_ms\n" + "".join(f"{key},{ms}\n" for key, ms in timings_ms.items()))
    return import_timings("d", timings, manifest_path, out)


def test_openvino_blocks_are_ir_that_openvino_runs_and_import_as_an_openvino_table(tmp_path, tiny, one_thread):
    ov = pytest.importorskip("openvino", reason="OpenVINO needs the openvino extra: pip install 'edgenas[openvino]'")
    import numpy as np

    from exporters.timing import time_calls

    folder = tmp_path / "blocks"
    manifest_path = export_blocks("d", tiny, folder, backend="openvino", validate=2, progress=False)
    manifest = json.loads(manifest_path.read_text())
    assert (manifest["runtime"], manifest["format"], manifest["precision"]) == ("openvino", "openvino-ir", "fp32")
    assert "benchmark_app -m FILE -d CPU -hint none -nstreams 1 -nthreads 1" in manifest["timings_format"]
    core, timings_ms = ov.Core(), {}
    for record in manifest["pieces"] + manifest["networks"]:  # timed as benchmark_app would: compiled IR, 1 thread
        assert record["file"].endswith(".xml") and (folder / record["weights"][0]).stat().st_size > 0
        model = core.read_model(str(folder / record["file"]))
        assert record["input_layout"] == "NCHW" and list(model.inputs[0].get_shape()) == record["input_shape"]
        compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1})
        request = compiled.create_infer_request()
        x = np.zeros(record["input_shape"], np.float32)
        timings_ms[record["key"]] = sorted(time_calls(request.infer, ({0: x},), 2, 5))[2]
    path, table = _import_back(manifest_path, timings_ms, tmp_path / "tiny-ov-device.json")
    runtime = load_table(str(path)).data["runtime"]
    assert (runtime["backend"], runtime["format"], runtime["source"]) == ("openvino", "openvino-ir",
                                                                          str(tmp_path / "tiny-ov-device.csv"))
    assert table.precision == "fp32" and table.data["validation"]["count"] == len(manifest["networks"])
    # An imported OpenVINO table counts as OpenVINO in export's comparison, and is not re-measured here.
    arch = random_arch(tiny, 10, 3)
    same = table_prediction(table, arch, 1.0, None, 1, runtime="openvino")["notes"]
    assert not any("measured with" in n for n in same), same
    other = table_prediction(table, arch, 1.0, None, 1, runtime="onnxruntime")["notes"]
    assert any("was measured with openvino, this file runs in onnxruntime" in n for n in other), other
    with pytest.raises(EdgeNASError, match=r"was measured on another device .*it cannot be measured here"):
        measure_arch(arch, table, passes=1)


@needs_litert
@pytest.mark.slow  # litert-torch converts and quantises each of the 15 pieces in 2-4 s
def test_litert_int8_blocks_are_tflite_that_litert_runs_and_import_as_a_litert_table(tmp_path, tiny, one_thread):
    import statistics
    import time

    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from exporters.runtimes.litert import INT8_RECIPE

    folder = tmp_path / "blocks"
    manifest_path = export_blocks("d", tiny, folder, backend="litert", int8=True, validate=0, progress=False)
    manifest = json.loads(manifest_path.read_text())
    assert (manifest["runtime"], manifest["format"], manifest["precision"]) == ("litert", "tflite", "int8")
    assert manifest["quantization"] == INT8_RECIPE and manifest["opset"] is None
    assert "benchmark_model --graph=FILE --num_threads=1" in manifest["timings_format"]
    shapes, timings_ms = {p.key: p.input_shape for p in space_pieces(tiny)}, {}
    for record in manifest["pieces"]:  # timed as benchmark_model would: the file itself, 1 thread, a few invokes
        interpreter = Interpreter(model_path=str(folder / record["file"]), num_threads=1)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        c, h, w = shapes[record["key"]]
        assert record["input_layout"] == "NHWC" and record["input_shape"] == [1, h, w, c] == list(detail["shape"])
        assert detail["dtype"] == np.int8 and sum(t["dtype"] == np.int8 for t in interpreter.get_tensor_details()) > 2
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], np.int8))
        interpreter.invoke()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            interpreter.invoke()
            times.append(1000 * (time.perf_counter() - start))
        timings_ms[record["key"]] = statistics.median(times)
    path, table = _import_back(manifest_path, timings_ms, tmp_path / "tiny-lt-device.json")
    runtime = load_table(str(path)).data["runtime"]
    assert (runtime["backend"], runtime["format"], runtime["quantization"]) == ("litert", "tflite", INT8_RECIPE)
    assert table.precision == "int8" and table.predict(random_arch(tiny, 10, 3)) > 0
    notes = table_prediction(table, random_arch(tiny, 10, 3), 1.0, 1.0, 1, runtime="litert")["notes"]
    assert not any("measured with" in note for note in notes), notes
