"""The command line through typer's CliRunner: output, exit codes, one-line errors."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from edgenas.cli.app import app


@pytest.fixture
def runner():
    return CliRunner()


def test_help_lists_the_commands(runner):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("profile", "search", "export", "predict", "latency", "tables", "train", "eval", "space", "arch",
                    "cost"):
        assert command in result.output
    assert " flops " not in result.output  # the old name still answers (below), without a line of its own


def test_space_json(runner):
    result = runner.invoke(app, ["space", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["space"] == "tiny" and data["resolution"] == 16 and len(data["layers"]) == 4
    assert 0 < data["smallest"]["flops"] < data["largest"]["flops"] < 1_000_000
    # tiny's 10-class ranges (docs/COSTS.md): INT8 weights 8.2-56.1 KB, INT8 activations 2.0-5.1 KB at 16x16
    ranges = runner.invoke(app, ["space", "tiny", "--json", "--num-classes", "10"])
    memory = json.loads(ranges.output)["memory_range"]
    assert memory["int8"]["model_size_bytes"] == [8210, 56138] and memory["fp32"]["model_size_bytes"] == [23816, 178664]
    assert memory["int8"]["peak_memory_bytes"][0] < memory["int8"]["peak_memory_bytes"][1]
    assert memory["fp32"]["peak_memory_bytes"] == [4 * b for b in memory["int8"]["peak_memory_bytes"]]


def test_space_table(runner):
    result = runner.invoke(app, ["space", "mobile-small", "--width-mult", "0.5"])
    assert result.exit_code == 0, result.output
    assert "stages.5.0" in result.output and "FLOPs" in result.output and "fvcore" in result.output
    for line in ("model size  FP32 ", "peak memory FP32 "):
        assert line in result.output and "INT8" in result.output and "docs/COSTS.md" in result.output


def test_arch_then_cost_with_verification(runner, tmp_path):
    path = tmp_path / "mbv2.json"
    result = runner.invoke(app, ["arch", "mobilenetv2", "--space", "mobile", "-o", str(path)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["cost", str(path), "--verify", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["flops"] == data["verify"]["flops"] == 300_836_992
    assert data["params"] == 3_504_872 and data["verify"]["agrees"]
    memory = data["memory"]
    # FP32: 4 bytes a parameter once batch norm is folded (its 34,112 parameters become 17,056 biases)
    assert memory["fp32"]["model_size_bytes"] == 4 * (3_504_872 - 17_056) and memory["verify"]["agrees"]
    # the largest live set: the first searchable block's expansion (96x112x112) while LiteRT's PAD writes the copy
    # (96x114x114) its stride-2 depthwise convolution reads (its input is not held: no residual around stride 2)
    assert memory["fp32"]["peak_memory_bytes"] == 4 * memory["int8"]["peak_memory_bytes"] == 4 * 96 * (112**2 + 114**2)
    result = runner.invoke(app, ["cost", str(path)])
    for said in ("300.8M", "batch norm folded", "(13,951,264 bytes), INT8 ",
                 "peak memory  FP32 9.8MB (9,807,360 bytes), INT8 2.5MB (2,451,840 bytes)", "docs/COSTS.md"):
        assert said in result.output
    assert runner.invoke(app, ["flops", str(path)]).output == result.output  # the old name, the same answer


def test_arch_to_stdout_is_valid_json(runner):
    result = runner.invoke(app, ["arch", "random", "--space", "tiny", "--seed", "4", "--num-classes", "3"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["num_classes"] == 3 and len(data["layers"]) == 4


@pytest.mark.parametrize(("args", "message"), [
    (["space", "huge"], "unknown search space 'huge'"),
    (["space", "mobile", "--resolution", "100"], "bad resolution 100"),
    (["arch", "huge", "--space", "tiny"], "unknown preset 'huge'"),
    (["arch", "random", "--space", "tiny", "--num-classes", "1"], "bad --num-classes 1"),
    (["flops", "does-not-exist.json"], "does-not-exist.json does not exist"),
])
def test_bad_input_is_one_red_line_and_exit_1(runner, args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert message in result.output
    assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output


def test_output_in_a_missing_folder_writes_nothing(runner, tmp_path):
    target = tmp_path / "nope" / "arch.json"
    result = runner.invoke(app, ["arch", "smallest", "--space", "tiny", "-o", str(target)])
    assert result.exit_code == 1 and "does not exist" in result.output
    assert not target.parent.exists()


@pytest.mark.parametrize(("args", "needle"), [
    (["space", "mobile", "--resolution", "big"], "bad --resolution 'big': "),
    (["space", "mobile", "--resolution=big"], "bad --resolution 'big': "),
    (["search", "--epochs", "1", "--epochs", "x1"], "bad --epochs 'x1': "),
    (["flops"], "Missing argument 'ARCH.json'"),
    (["flops", "--bogus", "x"], "No such option: --bogus"),
    (["serch"], "No such command 'serch'"),
])
def test_usage_errors_are_one_line_naming_the_bad_value(runner, args, needle):
    result = runner.invoke(app, args)
    output = result.output.strip()
    assert result.exit_code == 2, output
    assert output.startswith("error: ") and "\n" not in output and needle in output, output
    assert f"(see 'edgenas {args[0] + ' ' if args[0] != 'serch' else ''}--help')" in output


def test_bare_command_shows_the_help(runner):
    result = runner.invoke(app, [])
    assert result.exit_code == 2 and "Usage: edgenas" in result.output and "error" not in result.output


def test_cached_flops_does_not_import_torch(tmp_path):
    """`edgenas flops` from a cached table must answer without torch (import alone takes 3-5 s)."""
    path = tmp_path / "arch.json"
    subprocess.run([sys.executable, "-m", "edgenas", "arch", "mobilenetv2", "--space", "mobile", "-o", str(path)],
                   check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "edgenas", "flops", str(path)], check=True, capture_output=True)
    probe = ("import sys; from edgenas.cli.app import app; "
             f"app(['flops', {str(path)!r}], standalone_mode=False); "
             "sys.exit(3 if 'torch' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "300.8M" in result.stdout


def test_tables_off_a_terminal_keep_every_cell_whole(runner, monkeypatch):
    # In a log or a pipe rich assumed 80 columns and cut the shipped tables' names to "x86-2core-ort-t1-mobilesm…".
    monkeypatch.delenv("COLUMNS", raising=False)
    result = runner.invoke(app, ["tables"])
    assert result.exit_code == 0, result.output
    assert "epyc-zen5-2core-ort-t1-mobilesmall32.json" in result.output and "…" not in result.output


@pytest.mark.parametrize("args", [["--help"], ["space", "tiny"], ["tables"]])
def test_help_space_and_tables_do_not_import_torch(args):
    subprocess.run([sys.executable, "-m", "edgenas", *args], check=True, capture_output=True)  # fills the caches
    probe = ("import sys; from edgenas.cli.app import app; "
             f"app({args!r}, standalone_mode=False); sys.exit(3 if 'torch' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("command", "settings_class"), [("profile", "ProfileSettings"), ("export", "ExportSettings")])
def test_profile_and_export_take_their_options_from_their_settings(command, settings_class):
    """Each declared setting is an option of its command with the declared flag, default and help (a setting that
    is True unless `--no-...` is given shows as that flag, off)."""
    import dataclasses

    import typer.main

    from edgenas.profiling.settings import ProfileSettings
    from edgenas.runs.declared import flag_of
    from exporters.settings import ExportSettings

    declared = {"ProfileSettings": ProfileSettings, "ExportSettings": ExportSettings}[settings_class]
    group = typer.main.get_command(app)
    options = {param.opts[0]: param for param in group.get_command(None, command).params}
    for field in dataclasses.fields(declared):
        option = options[flag_of(field)]
        negated = flag_of(field).startswith("--no-")
        assert option.help == field.metadata["help"]
        assert option.default == (False if negated else field.default), field.name
    assert len(options) == len(dataclasses.fields(declared)) + (3 if command == "profile" else 4)  # own + --json, -q


@pytest.mark.parametrize(("args", "message"), [
    (["profile", "d", "--warmup", "-1"], "bad --warmup -1: expected 0 or more"),
    (["profile", "d", "--repeats", "0"], "bad --repeats 0: expected 1 or more"),
    (["profile", "d", "--passes", "0"], "bad --passes 0: expected 1 or more"),
    (["profile", "d", "--validate", "-2"], "bad --validate -2: expected 0 or more networks"),
    (["export", "x.onnx", "--run", "nowhere", "--max-drop", "-0.5"],
     "bad --max-drop -0.5: expected 0 or more points of accuracy"),
])
def test_a_value_outside_its_declared_range_is_one_line_naming_it(runner, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and result.output.strip() == f"error: {message}", result.output
    assert not any(tmp_path.iterdir())  # refused before anything is written


def test_the_api_checks_the_declared_ranges_too(tmp_path):
    import edgenas
    from edgenas.errors import EdgeNASError

    with pytest.raises(EdgeNASError, match=r"^bad --warmup -1: expected 0 or more$"):
        edgenas.profile("d", "tiny", warmup=-1, out=tmp_path / "t.json")


def test_the_library_defaults_are_the_declared_settings():
    """Each default is written once, in the settings; the library functions' keyword defaults are those."""
    import dataclasses
    import inspect

    from edgenas import api
    from edgenas.profiling import device_timings, profiler
    from edgenas.profiling.measure import OrtBackend
    from edgenas.profiling.settings import ProfileSettings
    from exporters.export import export_onnx
    from exporters.onnx_export import to_onnx
    from exporters.settings import REPEATS, WARMUP, ExportSettings
    from exporters.verify import verify

    def agree(func, settings: dict) -> set[str]:
        given = {name: p.default for name, p in inspect.signature(func).parameters.items()
                 if p.default is not inspect.Parameter.empty}
        shared = settings.keys() & given.keys()
        assert {k: given[k] for k in shared} == {k: settings[k] for k in shared}, func.__name__
        return shared

    exported = {f.name: f.default for f in dataclasses.fields(ExportSettings)}
    profiled = {f.name: f.default for f in dataclasses.fields(ProfileSettings)}
    assert agree(export_onnx, exported) == exported.keys()
    timing = {"warmup": WARMUP, "repeats": REPEATS}
    assert agree(verify, {**exported, **timing}) >= {"threads", "atol", "max_drop", *timing}
    assert "opset" in agree(to_onnx, exported) & agree(OrtBackend, exported)
    assert agree(profiler.profile, profiled) >= {"threads", "warmup", "repeats", "passes", "validate", "seed"}
    assert agree(device_timings.export_blocks, {**profiled, **exported}) == {"backend", "int8", "validate", "seed",
                                                                              "opset"}
    assert agree(api.profile, profiled) == {"space", "resolution", "width_mult"}
    assert (ProfileSettings.warmup, ProfileSettings.repeats) == (WARMUP, REPEATS)
