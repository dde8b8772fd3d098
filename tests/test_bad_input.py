"""Bad input across every command, through the real command line: one line naming the value, exit 1, nothing written.

Each case runs in a fresh working folder holding good and bad inputs; the folder's files (names, bytes and times)
must be the same afterwards. Usage errors that typer reports itself (a value of the wrong type) exit 2 with typer's
own message (a box of several lines), which names the option and the type expected but, in this typer version,
not the value.
"""

import json
import os
import shutil

import pytest
from typer.testing import CliRunner

from edgenas.cli.app import app

# Cheap settings in every search case: were a bad input ever accepted, the test fails in seconds, not minutes.
SEARCH = ["search", "--space", "tiny", "--schedule", "1.0:1", "--probe-epochs", "0", "--retrain-epochs", "0"]
SHIPPED_224 = "epyc-zen5-2core-ort-t1-mobile224"
SHIPPED_32 = "epyc-zen5-2core-ort-t1-mobilesmall32"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder of inputs, good and bad, made once and copied into each case's working folder."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("inputs")
    runner = CliRunner()
    for name, args in (("arch.json", ["smallest", "--space", "tiny", "--num-classes", "10"]),
                       ("arch64.json", ["smallest", "--space", "mobile-small", "--resolution", "64"])):
        result = runner.invoke(app, ["arch", *args, "-o", str(root / name)])
        assert result.exit_code == 0, result.output
    arch = json.loads((root / "arch.json").read_text())
    bad_arches = {"arch_count.json": {**arch, "layers": arch["layers"][:-1]},
                  "arch_choice.json": {**arch, "layers": ["k9_e9", *arch["layers"][1:]]},
                  "arch_hash.json": {**arch, "space_hash": "0123456789abcdef"},
                  "arch_res.json": {**arch, "resolution": "16"},
                  "arch_typo.json": {**arch, "num_class": 10}}
    for name, data in bad_arches.items():
        (root / name).write_text(json.dumps(data))
    from edgenas.cost.latency import load_table

    shipped = load_table(SHIPPED_32).data
    (root / "table_res_str.json").write_text(json.dumps({**shipped, "resolution": "32"}))
    (root / "table_runtime.json").write_text(json.dumps({**shipped, "runtime": "fast"}))
    (root / "table_no_precision.json").write_text(json.dumps({k: v for k, v in shipped.items() if k != "precision"}))
    (root / "table_fp16.json").write_text(json.dumps({**shipped, "precision": "fp16"}))
    (root / "empty").mkdir()
    (root / "corrupt.npz").write_bytes(b"this is not a zip archive")
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            folder = root / "notes" / split / label
            folder.mkdir(parents=True)
            rng = np.random.default_rng(0)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (root / "notes" / "train" / "dog" / "readme.txt").write_text("not an image")
    (root / "fake.onnx").write_bytes(b"not a protobuf \x00\xff")
    (root / "photo.png").write_bytes(b"\x89PNG but not really")
    for name, config in (("run_v0", {"format": 0, "settings": {}}),
                         ("run_badseed", {"format": 1, "settings": {"space": "tiny", "seed": "zero"}}),
                         ("run_unknown", {"format": 1, "settings": {"space": "tiny", "learning_rate": 0.1}})):
        (root / name).mkdir()
        (root / name / "config.json").write_text(json.dumps(config))
    return root


# (arguments, exit code, what the message must hold: the bad value and what was expected)
CASES = {
    "flops-suffix": ([*SEARCH, "--flops", "3X"], 1, ["'3X'", "expected a positive number", "300M"]),
    "latency-negative": ([*SEARCH, "--latency", "-2ms", "--table", SHIPPED_224], 1, ["'-2ms'", "expected a positive"]),
    "latency-no-unit": ([*SEARCH, "--latency", "12", "--table", SHIPPED_224], 1, ["'12'", "unit ms, s or us"]),
    "space-unknown": (["space", "huge"], 1, ["'huge'", "expected one of mobile, mobile-small, tiny"]),
    "search-space-unknown": ([*SEARCH, "--space", "huge"], 1, ["'huge'", "expected one of"]),
    "profile-space-unknown": (["profile", "d", "--space", "huge"], 1, ["'huge'", "expected one of"]),
    "arch-layer-count": (["flops", "arch_count.json"], 1, ["arch_count.json", "3 entries", "4 searchable layers"]),
    "arch-unknown-choice": (["flops", "arch_choice.json"], 1, ["'k9_e9'", "expected one of"]),
    "arch-foreign-hash": (["latency", "arch_hash.json", "--table", SHIPPED_224], 1,
                          ["'0123456789abcdef'", "does not match space tiny"]),
    "arch-unknown-key": (["flops", "arch_typo.json"], 1, ["unknown key 'num_class'", "expected only format"]),
    "arch-resolution-type": (["flops", "arch_res.json"], 1, ["'resolution' is '16'", "expected int"]),
    "table-other-space": (["latency", "arch.json", "--table", SHIPPED_224], 1,
                          ["space mobile at 224x224", "space tiny at 16x16"]),
    "table-other-resolution": (["latency", "arch64.json", "--table", SHIPPED_32], 1,
                               ["mobile-small at 32x32", "mobile-small at 64x64"]),
    "search-table-other-space": ([*SEARCH, "--table", SHIPPED_224, "--latency", "5ms"], 1,
                                 ["space mobile at 224x224", "space tiny at 16x16"]),
    "table-field-type": (["latency", "arch.json", "--table", "table_res_str.json"], 1,
                         ["table_res_str.json", "'resolution' is '32'", "expected an integer"]),
    "table-runtime-type": (["latency", "arch.json", "--table", "table_runtime.json"], 1,
                           ["table_runtime.json", "'runtime' is 'fast'", "expected an object"]),
    "table-precision-missing": (["latency", "arch.json", "--table", "table_no_precision.json"], 1,
                                ["table_no_precision.json", "no 'precision' field", "expected 'fp32' or 'int8'",
                                 "profile the device again", 'add "precision": "fp32"']),
    "table-precision-unknown": (["latency", "arch.json", "--table", "table_fp16.json"], 1,
                                ["table_fp16.json", "precision 'fp16' is unknown", "expected 'fp32' or 'int8'"]),
    "search-table-precision-missing": ([*SEARCH, "--table", "table_no_precision.json", "--latency", "5ms"], 1,
                                       ["table_no_precision.json", "no 'precision' field"]),
    "profile-int8-torch": (["profile", "d", "--space", "tiny", "--int8", "--backend", "torch"], 1,
                           ["--int8 with --backend torch", "drop --backend torch"]),
    # INT8 blocks are the files a phone runs (ort, openvino, litert); PyTorch eager has no file a device times
    "profile-int8-export-blocks": (["profile", "d", "--space", "tiny", "--int8", "--export-blocks", "blocks",
                                    "--backend", "torch"], 1,
                                   ["bad --backend torch with --export-blocks",
                                    "expected one of ort, onnxruntime, openvino, litert"]),
    "profile-export-blocks-provider": (["profile", "d", "--space", "tiny", "--export-blocks", "blocks", "--provider",
                                        "cuda"], 1, ["--provider cuda with --export-blocks: nothing is timed here"]),
    "profile-export-blocks-threads": (["profile", "d", "--space", "tiny", "--export-blocks", "blocks", "--threads",
                                       "4"], 1, ["--threads 4 with --export-blocks", "timings_format"]),
    "data-missing": ([*SEARCH, "--data", "no_such_data"], 1, ["no_such_data does not exist"]),
    "data-empty": ([*SEARCH, "--data", "empty"], 1, ["empty has no class folders", "expected ROOT/CLASS/IMAGE"]),
    "data-corrupt-npz": ([*SEARCH, "--data", "corrupt.npz"], 1, ["corrupt.npz", "not an .npz archive", "x_train"]),
    "data-not-an-image": ([*SEARCH, "--data", "notes"], 1, ["readme.txt is not an image file", "expected one of"]),
    "run-format": (["eval", "run_v0"], 1, ["run_v0/config.json", "'format' is 0", "expected 1"]),
    "run-format-train": (["train", "run_v0"], 1, ["'format' is 0", "expected 1"]),
    "run-format-export": (["export", "m.onnx", "--run", "run_v0"], 1, ["'format' is 0", "expected 1"]),
    "run-setting-type": (["search", "--resume", "run_badseed"], 1, ["'seed' is 'zero'", "expected int"]),
    "run-setting-unknown": (["eval", "run_unknown"], 1, ["unknown setting 'learning_rate'", "expected only"]),
    "run-missing": (["train", "no_such_run"], 1, ["no_such_run does not exist"]),
    "onnx-not-onnx": (["predict", "fake.onnx", "photo.png"], 1, ["fake.onnx is not an ONNX file"]),
    "onnx-missing": (["predict", "missing.onnx", "photo.png"], 1, ["missing.onnx does not exist"]),
    "predict-top-zero": (["predict", "fake.onnx", "photo.png", "--top", "0"], 1, ["--top 0", "expected 1 or more"]),
    "profile-threads-zero": (["profile", "d", "--space", "tiny", "--threads", "0"], 1, ["--threads 0", "1 or more"]),
    "profile-threads-negative": (["profile", "d", "--space", "tiny", "--threads", "-2"], 1,
                                 ["--threads -2", "1 or more"]),
    "profile-repeats-zero": (["profile", "d", "--space", "tiny", "--repeats", "0"], 1,
                             ["bad --repeats 0", "expected 1 or more"]),
    "export-threads-zero": (["export", "m.onnx", "--run", "run_v0", "--threads", "0"], 1, ["--threads 0", "1 or more"]),
    "search-retrain-epochs-negative": ([*SEARCH, "--retrain-epochs", "-1"], 1, ["--retrain-epochs -1", "0 or more"]),
    "search-epochs-zero": ([*SEARCH, "--strategy", "full", "--epochs", "0"], 1, ["--epochs 0", "1 or more"]),
    "train-epochs-negative": (["train", "run_v0", "--epochs", "-1"], 1, ["--epochs -1", "expected 1 to 10,000"]),
    "train-epochs-huge": (["train", "run_v0", "--epochs", str(10**20)], 1, [f"--epochs {10**20}", "1 to 10,000"]),
    "search-batch-zero": ([*SEARCH, "--batch-size", "0"], 1, ["--batch-size 0", "1 or more"]),
    "search-memory-negative": ([*SEARCH, "--memory-gb", "-1"], 1, ["--memory-gb -1", "0 or more"]),
    "search-precision-unknown": ([*SEARCH, "--precision", "fp8"], 1, ["--precision 'fp8'", "expected one of auto"]),
    "search-precision-fp16-cpu": ([*SEARCH, "--precision", "fp16", "--device", "cpu"], 1,
                                  ["precision fp16 needs a CUDA GPU", "fp32 or bf16"]),
    # Memory budgets (tiny, 10 classes: INT8 weights 8.2 to 56.1 KB, INT8 activations 3.9 to 7.9 KB at once)
    "search-peak-memory-zero": ([*SEARCH, "--peak-memory", "0"], 1, ["--peak-memory '0'", "expected a positive"]),
    "search-model-size-unit": ([*SEARCH, "--model-size", "5XB"], 1, ["--model-size '5XB'", "KB, MB", "512KB"]),
    "search-model-size-negative": ([*SEARCH, "--model-size", "-1KB"], 1, ["--model-size '-1KB'", "positive"]),
    "search-model-size-below-smallest": ([*SEARCH, "--model-size", "5KB", "--deploy-precision", "int8"], 1,
                                         ["model size budget 5.0KB", "infeasible", "smallest network of space tiny",
                                          "8.2KB (8,210 bytes) of INT8 weights"]),
    "search-peak-memory-below-smallest": ([*SEARCH, "--peak-memory", "1KB"], 1,
                                          ["peak memory budget 1.0KB", "infeasible", "least peak memory",
                                           "15.7KB (15,744 bytes) of FP32 activations live at once"]),
    "search-deploy-precision-unknown": ([*SEARCH, "--deploy-precision", "fp16"], 1,
                                        ["--deploy-precision 'fp16'", "expected one of auto, fp32, int8"]),
    "search-memory-format-unknown": ([*SEARCH, "--memory-format", "nhwc"], 1,
                                     ["--memory-format 'nhwc'", "channels-last"]),
    "out-missing-folder-arch": (["arch", "smallest", "--space", "tiny", "-o", "nodir/a.json"], 1,
                                ["nodir/a.json", "folder nodir does not exist"]),
    # A missing --out folder is created (mkdir -p), but only once the command is accepted: none is made here.
    "out-missing-folder-profile": (["profile", "d", "--space", "tiny", "--threads", "0", "--out", "nodir/t.json"], 1,
                                   ["--threads 0"]),
    "out-missing-folder-search": ([*SEARCH, "--flops", "1K", "--out", "nodir/run"], 1, ["1.0K", "infeasible"]),
    "out-missing-folder-export": (["export", "nodir/m.onnx", "--run", "run_v0"], 1, ["'format' is 0"]),
    "out-not-onnx-name": (["export", "m.txt", "--run", "run_v0"], 1, ["m.txt", "ending in .onnx"]),
    "export-runtime-suffix": (["export", "m.xml", "--run", "run_v0", "--runtime", "onnxruntime"], 1,
                              ["bad output file m.xml", "--runtime onnxruntime writes a name ending in .onnx"]),
    "export-runtime-unknown": (["export", "m.onnx", "--run", "run_v0", "--runtime", "tvm"], 1,
                               ["bad --runtime 'tvm'", "expected one of onnxruntime, openvino, litert"]),
    "export-precision-onnxruntime": (["export", "m.onnx", "--run", "run_v0", "--precision", "bf16"], 1,
                                     ["bad --precision bf16", "runtime onnxruntime runs its FP32 file in fp32"]),
    "usage-threads-not-a-number": (["profile", "d", "--threads", "many"], 2, ["bad --threads 'many'", "integer"]),
    "usage-missing-argument": (["flops"], 2, ["Missing argument"]),
}


def _tree(folder) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, inputs, tmp_path, monkeypatch):
    args, code, needles = CASES[name]
    work = tmp_path / "work"
    shutil.copytree(inputs, work)
    monkeypatch.chdir(work)
    before = _tree(work)
    result = CliRunner().invoke(app, args)
    output = result.output.strip()
    assert result.exit_code == code, output
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert output.count("\n") == 0 and output.startswith("error: "), output
    for needle in needles:
        assert needle in " ".join(output.split()), output
    assert _tree(work) == before, "a file was written or changed"
    assert not os.path.exists(work / "runs") and not os.path.exists(work / "latency_tables")
