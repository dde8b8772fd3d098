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
                    "flops"):
        assert command in result.output


def test_space_json(runner):
    result = runner.invoke(app, ["space", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["space"] == "tiny" and data["resolution"] == 16 and len(data["layers"]) == 4
    assert 0 < data["smallest"]["flops"] < data["largest"]["flops"] < 1_000_000


def test_space_table(runner):
    result = runner.invoke(app, ["space", "mobile-small", "--width-mult", "0.5"])
    assert result.exit_code == 0, result.output
    assert "stages.5.0" in result.output and "FLOPs" in result.output and "fvcore" in result.output


def test_arch_then_flops_with_verification(runner, tmp_path):
    path = tmp_path / "mbv2.json"
    result = runner.invoke(app, ["arch", "mobilenetv2", "--space", "mobile", "-o", str(path)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["flops", str(path), "--verify", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["flops"] == data["verify"]["flops"] == 300_836_992
    assert data["params"] == 3_504_872 and data["verify"]["agrees"]
    result = runner.invoke(app, ["flops", str(path)])
    assert "300.8M" in result.output and "batch norm folded" in result.output


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
