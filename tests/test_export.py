"""Export to ONNX and its proof with ONNX Runtime, on a tiny searched and retrained run; prediction without torch."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from edgenas.cli.app import app
from edgenas.errors import EdgeNASError
from edgenas.runs.weights import load_model
from exporters import export_onnx, predict, read_metadata, verify
from exporters.predict import preprocess

REPORT_FIELDS = ("onnx", "run", "arch", "threads", "atol", "outputs", "test_images", "top1_agreement",
                 "accuracy_onnxruntime", "accuracy_pytorch", "latency_onnxruntime", "latency_pytorch_eager",
                 "latency_method", "onnxruntime_vs_pytorch", "table", "passed", "failures")


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run


def test_export_passes_the_checker_and_matches_pytorch(run, tmp_path):
    result = export_onnx(run, tmp_path / "model.onnx")  # the Python API: export, verify, write the report
    assert result.passed and json.loads(result.report_path.read_text()) == result.report
    report = verify(result.path, run, repeats=5, warmup=2)
    assert set(REPORT_FIELDS) <= set(report)
    assert report["passed"] and report["outputs"]["max_abs_diff"] <= 1e-4
    assert report["top1_agreement"] >= 0.999
    assert report["accuracy_onnxruntime"] == pytest.approx(report["accuracy_pytorch"], abs=0.003)
    assert report["latency_onnxruntime"]["median_ms"] > 0 and report["latency_pytorch_eager"]["median_ms"] > 0


def test_metadata_round_trips(run, tmp_path):
    import onnx
    import torch

    from edgenas.version import __version__

    path = export_onnx(run, tmp_path / "model.onnx", verify=False).path
    proto = onnx.load(str(path), load_external_data=False)
    assert (proto.producer_name, proto.producer_version) == ("edgenas", __version__)  # was torch's version
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["edgenas.exported_with"]) == {"torch": torch.__version__, "opset": 17}
    metadata = read_metadata(path)
    assert metadata["arch"] == json.loads((run / "arch.json").read_text())
    config = json.loads((run / "config.json").read_text())["resolved"]["data"]
    assert metadata["classes"] == config["classes"]
    assert metadata["preprocessing"]["mean"] == config["mean"] and metadata["preprocessing"]["resolution"] == 16


def test_the_batch_axis_is_dynamic(run, tmp_path):
    from exporters.runtimes.onnxruntime import make_session

    session = make_session(str(export_onnx(run, tmp_path / "model.onnx", verify=False).path))
    for batch in (1, 5):
        assert session.run(None, {"input": np.zeros((batch, 3, 16, 16), np.float32)})[0].shape == (batch, 10)


def test_predict_agrees_with_pytorch_on_image_files(run, tmp_path):
    path = export_onnx(run, tmp_path / "model.onnx", verify=False).path
    rng = np.random.default_rng(0)
    files = []
    for i in range(4):
        file = tmp_path / f"image{i}.png"
        Image.fromarray(rng.integers(0, 255, (16 + 4 * i, 16, 3), dtype=np.uint8)).save(file)
        files.append(file)
    results = predict(path, files, top=3)
    model, _ = load_model(run)
    preprocessing = read_metadata(path)["preprocessing"]
    with torch.no_grad():
        logits = model(torch.from_numpy(np.stack([preprocess(f, preprocessing) for f in files])))
    probabilities = torch.softmax(logits, 1)
    for result, row in zip(results, probabilities, strict=True):
        assert result["top"][0]["index"] == int(row.argmax())
        assert result["top"][0]["probability"] == pytest.approx(float(row.max()), abs=1e-4)
    cli = CliRunner().invoke(app, ["predict", str(path), *map(str, files), "--top", "3", "--json"])
    assert cli.exit_code == 0 and json.loads(cli.output) == json.loads(json.dumps(results))


def test_predict_classifies_the_readable_images_and_names_the_corrupt_one(run, tmp_path):
    # Issue 33: one corrupt JPEG in a folder stopped `predict` with no prediction for the readable images.
    path = export_onnx(run, tmp_path / "model.onnx", verify=False).path
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (20, 16, 3), dtype=np.uint8)).save(folder / f"{i}.{('png', 'jpg')[i % 2]}")
    good = sorted(folder.iterdir())
    jpeg = (folder / "1.jpg").read_bytes()
    (folder / "2-broken.jpg").write_bytes(jpeg[: len(jpeg) // 3])  # a truncated JPEG: the header reads, the data not
    expected = {str(f): r["top"] for f, r in zip(good, predict(path, good, top=2), strict=True)}

    as_json = CliRunner().invoke(app, ["predict", str(path), str(folder), "--top", "2", "--json"])
    assert as_json.exit_code == 1 and "Traceback" not in as_json.output
    results = json.loads(as_json.stdout)
    assert [r["image"] for r in results] == sorted(str(f) for f in folder.iterdir())
    assert {r["image"]: r["top"] for r in results if "top" in r} == expected
    broken = next(r for r in results if "top" not in r)
    assert broken["image"].endswith("2-broken.jpg") and "cannot read image" in broken["error"]
    assert as_json.stderr.strip().count("\n") == 0
    assert "1 of 5 images could not be read (the other 4 were classified)" in as_json.stderr
    assert f"cannot read image {folder / '2-broken.jpg'}: " in as_json.stderr

    plain = CliRunner().invoke(app, ["predict", str(path), str(folder)])
    assert plain.exit_code == 1
    assert [line.split(": ")[0] for line in plain.stdout.splitlines()] == [str(f) for f in good]
    assert plain.stderr.startswith("error: 1 of 5 images could not be read") and "2-broken.jpg" in plain.stderr


def test_cli_export_writes_the_report(run, tmp_path):
    out = tmp_path / "cli.onnx"
    result = CliRunner().invoke(app, ["export", str(out), "--run", str(run), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "cli.report.json").read_text())
    assert report["passed"] and json.loads(result.stdout)["onnx"] == str(out)


def test_a_failed_verification_exits_1_with_the_reason(run, tmp_path):
    out = tmp_path / "strict.onnx"
    result = CliRunner().invoke(app, ["export", str(out), "--run", str(run), "--atol", "0"])
    assert result.exit_code == 1 and "verification failed: outputs differ" in result.output
    assert json.loads((tmp_path / "strict.report.json").read_text())["failures"]


def _copy(run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    return copy


def test_a_corrupted_weight_file_is_refused_without_output(run, tmp_path):
    copy = _copy(run, tmp_path)
    data = (copy / "model.pt").read_bytes()
    (copy / "model.pt").write_bytes(data[: len(data) // 2])
    out = tmp_path / "bad.onnx"
    result = CliRunner().invoke(app, ["export", str(out), "--run", str(copy)])
    assert result.exit_code == 1 and "cannot load" in result.output and "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0 and not out.exists()


def test_an_architecture_that_does_not_match_the_weights_is_refused(run, tmp_path):
    copy = _copy(run, tmp_path)
    arch = json.loads((copy / "arch.json").read_text())
    arch["layers"][0] = "k5_e3" if arch["layers"][0] != "k5_e3" else "k3_e6_se"
    (copy / "arch.json").write_text(json.dumps(arch))
    out = tmp_path / "bad.onnx"
    result = CliRunner().invoke(app, ["export", str(out), "--run", str(copy)])
    assert result.exit_code == 1 and "does not match" in result.output
    assert result.output.strip().count("\n") == 0 and not out.exists()


def test_a_crafted_checkpoint_that_would_run_code_is_refused(run, tmp_path):
    import os
    import pickle

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    copy = _copy(run, tmp_path)
    with (copy / "model.pt").open("wb") as handle:
        pickle.dump({"weights": Exploit()}, handle)
    with pytest.raises(EdgeNASError, match="cannot load"):
        load_model(copy)
    assert not (tmp_path / "pwned").exists()


def test_a_file_that_is_not_onnx_is_refused(tmp_path):
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"definitely not a protobuf \x00\xff")
    result = CliRunner().invoke(app, ["predict", str(fake), str(fake)])
    assert result.exit_code == 1 and "not an ONNX file" in result.output


def test_int8_reports_its_drop_and_is_deleted_beyond_the_limit(run, tmp_path):
    path = export_onnx(run, tmp_path / "model.onnx", verify=False).path
    report = verify(path, run, repeats=5, warmup=2, int8=True, max_drop=100.0)
    q = report["int8"]
    assert q["kept"] and (tmp_path / "model.int8.onnx").is_file()
    assert q["drop_points"] == pytest.approx(100 * (report["accuracy_onnxruntime"] - q["accuracy"]))
    assert 0 < q["size_bytes"] < q["fp32_size_bytes"] and q["latency"]["median_ms"] > 0
    assert read_metadata(tmp_path / "model.int8.onnx")["arch"] == read_metadata(path)["arch"]
    # Weights in 7 bits (-64..64, symmetric): x86 CPUs without VNNI add pairs of 8-bit products in 16 bits, which
    # saturate at full range (a make demo network lost 9.75 points so on a Zen 3 EPYC).
    import onnx
    from onnx import numpy_helper

    weights = [numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / "model.int8.onnx")).graph.initializer
               if t.data_type == onnx.TensorProto.INT8]
    assert weights and all(int(w.min()) >= -64 and int(w.max()) <= 64 for w in weights)
    # Any drop exceeds a limit of -100 points: the INT8 file is deleted, the FP32 one kept. (The CLI and
    # export_onnx refuse a negative --max-drop; verify itself takes the limit as given.)
    report = verify(path, run, repeats=5, warmup=2, int8=True, max_drop=-100.0)
    assert not report["passed"] and "INT8 accuracy drops" in report["failures"][0]
    assert path.is_file() and not (tmp_path / "model.int8.onnx").exists() and report["int8"]["file"] is None
    out = tmp_path / "cli.onnx"
    result = CliRunner().invoke(app, ["export", str(out), "--run", str(run), "--int8", "--max-drop", "-100"])
    assert result.exit_code == 1 and "bad --max-drop -100" in result.output and not out.exists()


def test_a_table_is_compared_with_the_file_of_its_precision(run, tmp_path, tiny_int8_table):
    int8_table, _ = tiny_int8_table
    path = export_onnx(run, tmp_path / "model.onnx", verify=False).path
    report = verify(path, run, repeats=5, warmup=2, int8=True, max_drop=100.0, table=str(int8_table))
    t = report["table"]
    assert (t["table_precision"], t["compared_with"]) == ("int8", "int8")
    # No mixing, made here: no note but, on a busy minute, the one that says the measurement missed (`miss_note`),
    # and the table's own where its 5 validation networks were timed in a busy minute (`LatencyTable.fidelity`).
    fidelity = t["table_fidelity"]["note"]
    assert all(n.startswith("note: the prediction misses this measurement") or n == fidelity
               for n in t["notes"]), t["notes"]
    assert t["measured_ms"] == report["int8"]["latency"]["median_ms"]
    assert t["error_pct"] == pytest.approx(100 * (t["predicted_ms"] - t["measured_ms"]) / t["measured_ms"])
    report = verify(path, run, repeats=5, warmup=2, table=str(int8_table))  # an FP32-only export: named
    t = report["table"]
    assert t["compared_with"] == "fp32" and t["measured_ms"] == report["latency_onnxruntime"]["median_ms"]
    others = [n for n in t["notes"] if n != fidelity]
    assert len(others) == 1 and "this export is FP32 only" in others[0]
    # The CLI, with an FP32 table measured on another CPU and --int8: one line for each.
    from edgenas.profiling.profiler import profile
    from edgenas.space.spec import get_space

    fp32 = profile("tiny-f", get_space("tiny"), validate=0, out=tmp_path / "tiny-f.json", warmup=1, repeats=3,
                   passes=1, progress=False)[0]
    data = json.loads(fp32.read_text())
    data["host"]["cpu"] = "Another CPU"
    fp32.write_text(json.dumps(data))
    out = tmp_path / "cli.onnx"
    result = CliRunner().invoke(app, ["export", str(out), "--run", str(run), "--int8", "--max-drop", "100",
                                      "--table", str(fp32)])
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.output.splitlines() if line.startswith("note:")]
    assert any(line.startswith("note: FP32 table tiny-f predicts the FP32 network: its prediction is compared with "
                               "the FP32 file") for line in lines), result.output
    assert any(line.startswith("note: table tiny-f was measured on Another CPU") for line in lines), result.output
    assert json.loads(out.with_suffix(".report.json").read_text())["table"]["compared_with"] == "fp32"


def test_eval_of_an_unfinished_run_says_what_export_says(run, tmp_path):
    """A run stopped before its network was derived or retrained: `eval` says how to finish it, as `export` does
    (it said "arch.json does not exist")."""
    import shutil

    unfinished = tmp_path / "run"
    shutil.copytree(run, unfinished)
    (unfinished / "model.pt").unlink()
    (unfinished / "arch.json").unlink()
    evaluated = CliRunner().invoke(app, ["eval", str(unfinished)])
    exported = CliRunner().invoke(app, ["export", str(tmp_path / "m.onnx"), "--run", str(unfinished)])
    assert evaluated.exit_code == exported.exit_code == 1
    said = " ".join(evaluated.output.split())
    assert said.startswith(f"error: run {unfinished} has no retrained weights (model.pt); finish it with `edgenas "
                           f"search --resume {unfinished}`"), said
    assert " ".join(exported.output.split()) == said + ", or pass --allow-supernet-weights"
    assert len(evaluated.output.strip().splitlines()) == 1 and not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("earlier", [False, True], ids=["new", "over-an-earlier-export"])
def test_ctrl_c_during_export_int8_leaves_no_file_of_the_export(run, tmp_path, earlier):
    """Ctrl-C while `export --int8` quantises: no ONNX file without its report (it left out/x.onnx alone), nor an
    earlier export's report beside nothing; the folder the export made goes too."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import default_sigint

    out = tmp_path / "out" / "x.onnx"
    if earlier:
        assert CliRunner().invoke(app, ["export", str(out), "--run", str(run), "--quiet"]).exit_code == 0
        assert {p.name for p in out.parent.iterdir()} == {"x.onnx", "x.report.json"}
    process = subprocess.Popen([sys.executable, "-m", "edgenas", "export", str(out), "--run", str(run), "--int8"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline, said = time.monotonic() + 120, []
    for line in process.stderr:  # the export says each phase as it starts
        said.append(line)
        if line.startswith("INT8: quantising"):
            process.send_signal(signal.SIGINT)  # Ctrl-C
            break
        assert time.monotonic() < deadline, said
    _, rest = process.communicate(timeout=120)
    stderr = " ".join("".join([*said, rest]).split())
    assert process.returncode == 130, stderr
    assert "interrupted: nothing kept: deleted" in stderr and "run the same command again" in stderr
    assert "Traceback" not in stderr
    assert str(out) in stderr and (str(out.with_suffix(".report.json")) in stderr) == earlier
    if earlier:
        assert list(out.parent.iterdir()) == []  # an earlier report without its file would describe nothing
    else:
        assert not out.parent.exists()
