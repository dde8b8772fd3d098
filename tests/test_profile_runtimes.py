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
from edgenas.profiling.measure import make_backend
from edgenas.profiling.profiler import measure_arch, profile
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
