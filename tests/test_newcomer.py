"""A newcomer's first day, through the real command line on `tiny`: folders that do not exist yet, run names that
never collide, interrupted runs that say where they are, progress in logs, honest ratios, a model used without
edgenas, and help that matches the commands."""

import datetime
import json
from pathlib import Path

import pytest
import torch
from conftest import default_sigint
from typer.testing import CliRunner

from edgenas.cli.app import app

# A search whose strategy draws one random architecture within the budget, retrained for one epoch (so that it can
# be exported): seconds, not minutes.
FAST = ["--space", "tiny", "--strategy", "random", "--flops", "250K", "--batch-size", "16", "--train-per-class", "20",
        "--test-per-class", "5", "--no-report", "--retrain-epochs", "1"]
QUICK_PROFILE = ["--space", "tiny", "--validate", "0", "--warmup", "1", "--repeats", "3", "--passes", "1"]


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


def test_out_folders_are_created_and_default_run_names_never_collide(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    _ok(runner.invoke(app, ["search", *FAST, "--out", "runs/mine", "--quiet"]))
    assert (tmp_path / "runs" / "mine" / "summary.json").is_file()
    _ok(runner.invoke(app, ["profile", "x", *QUICK_PROFILE, "--quiet", "--out", "demo-output/x.json"]))
    assert (tmp_path / "demo-output" / "x.json").is_file()
    _ok(runner.invoke(app, ["export", "out/model.onnx", "--run", "runs/mine", "--no-verify"]))
    assert (tmp_path / "out" / "model.onnx").is_file()

    # Two searches with default names in the same second: the names of every second to come are taken here (by
    # folders holding a file), so the next default search must find a free name of its own, at once.
    first = json.loads(_ok(runner.invoke(app, ["search", *FAST, "--json"])).stdout)["run"]
    stamp = datetime.datetime.strptime(first.split("/")[-1][:15], "%Y%m%d-%H%M%S")
    taken = []
    for second in range(60):
        folder = tmp_path / "runs" / ((stamp + datetime.timedelta(seconds=second)).strftime("%Y%m%d-%H%M%S")
                                      + first.split("/")[-1][15:])
        folder.mkdir(exist_ok=True)
        (folder / "other.txt").write_text("another run's file")
        taken.append(folder)
    second = json.loads(_ok(runner.invoke(app, ["search", *FAST, "--json"])).stdout)["run"]
    assert second.endswith("-2") and (tmp_path / second / "summary.json").is_file()
    assert all((folder / "other.txt").read_text() == "another run's file" for folder in taken)
    # An explicit --out that holds files stays refused.
    result = runner.invoke(app, ["search", *FAST, "--out", "runs/mine"])
    assert result.exit_code == 1 and "already exists" in result.output


def test_an_interrupted_search_says_where_it_is_and_how_to_continue(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    # 30 retraining epochs: Ctrl-C comes after the first is kept, and the rest cannot finish before it lands.
    process = subprocess.Popen([sys.executable, "-m", "edgenas", "search", *FAST[:-1], "30", "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=default_sigint)
    history = out / "history.jsonl"
    deadline = time.monotonic() + 90
    while not (history.is_file() and '"retrain"' in history.read_text()):  # an epoch is kept
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)  # Ctrl-C
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert lines[0] == f"run {out}"  # said first, before any work
    assert lines[-1].startswith("interrupted: ") and lines[-1].endswith(
        f" epochs kept in {out}; continue with edgenas search --resume {out}"), lines
    kept = int(lines[-1].split()[1])

    runner = CliRunner()
    resumed = _ok(runner.invoke(app, ["search", "--resume", str(out), "--flops", "300K", "--seed", "3", "--json"]))
    notes = resumed.stderr.splitlines()
    assert notes[0].startswith(f"note: --resume {out} keeps the settings the run was started with")
    assert notes[0].endswith("ignoring --flops 300K, --seed 3"), notes
    assert f"resuming run {out} after {kept} epochs" in notes
    assert json.loads(resumed.stdout)["flops_budget"] == 250_000  # the stored budget, as the note says
    again = _ok(runner.invoke(app, ["search", "--resume", str(out), "--json"]))
    assert again.stderr.startswith(f"run {out} is finished: nothing to resume")
    assert json.loads(again.stdout) == json.loads(resumed.stdout)


def test_long_work_shows_signs_of_life_off_a_terminal_and_quiet_silences_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI", raising=False)
    runner = CliRunner()  # not a terminal: no bar is drawn, so plain lines are the default
    args = ["search", "--space", "tiny", "--schedule", "0.5:2,1.0:2", "--probe-epochs", "0", "--warmup-epochs", "0",
            "--batch-size", "16", "--train-per-class", "20", "--test-per-class", "5", "--flops", "250K",
            "--retrain-epochs", "2"]
    lines = _ok(runner.invoke(app, [*args, "--out", "a"])).stderr.splitlines()
    assert lines[0] == "run a"
    assert lines[1].startswith("plan: stage 0 1 epoch, stage 1 1 epoch, retraining 2 epochs; about ")
    assert "image-steps of search and 352 of retraining (180 training images, batch 16)" in lines[1]
    epochs = [line for line in lines if "] loss " in line]
    assert [line.split(" [")[1].split("]")[0] for line in epochs] == ["1/2", "2/2", "1/2", "2/2"]
    estimates = [line for line in lines if line.startswith("estimate")]
    assert estimates[0].startswith("estimate: about ") and "ms per image-step" in estimates[0]
    assert len(estimates) == 2 and estimates[1].startswith("estimate updated: about ")  # after retraining's first
    assert _ok(runner.invoke(app, ["search", *FAST, "--out", "b", "--quiet"])).stderr == ""
    trained = _ok(runner.invoke(app, ["train", "a", "--epochs", "1"])).stderr
    assert "retraining run a" in trained and "[1/1] loss " in trained
    profiled = _ok(runner.invoke(app, ["profile", "here", *QUICK_PROFILE])).stderr
    assert "profiling tiny at 16 on here [" in profiled
    exported = _ok(runner.invoke(app, ["export", "m.onnx", "--run", "a"])).stderr
    assert "exported the tiny network of run a to m.onnx" in exported and "verifying m.onnx" in exported
    assert "verifying: test split, 64 images a batch, ONNX Runtime and PyTorch [1/1]" in exported
    assert "timing batch-1 latency" in exported


def test_ratios_say_faster_or_slower_and_defaults_and_chance_level_are_named(tmp_path, monkeypatch):
    import re

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "300")  # every cell on one line
    runner = CliRunner()
    # No --flops: the default budget is named; no retraining: the untrained network's accuracy is at chance level.
    searched = _ok(runner.invoke(app, ["search", *FAST[:4], *FAST[6:], "--out", "runs/default"]))
    assert "FLOPs budget 249.4K: the default, the middle of the space's FLOPs range (--flops sets one)" in \
        searched.stderr
    assert "default budget 249.4K: the middle of the space's FLOPs range" in searched.stdout
    summary = json.loads((tmp_path / "runs" / "default" / "summary.json").read_text())
    assert summary["test_acc"] < 0.15
    assert f"warning: test accuracy {100 * summary['test_acc']:.1f}% cannot be told from chance (10.0% for 10 " \
        "classes" in searched.stderr

    exported = _ok(runner.invoke(app, ["export", "m.onnx", "--int8", "--max-drop", "100"]))
    assert "run runs/default (the newest in ./runs; --run chooses another)" in exported.stderr
    report = json.loads((tmp_path / "m.report.json").read_text())
    ort, eager = report["latency_onnxruntime"]["median_ms"], report["latency_pytorch_eager"]["median_ms"]
    word = "faster" if ort <= eager else "slower"
    assert re.search(rf"ONNX Runtime is \d+\.\d\dx {word} than PyTorch eager", exported.stdout), exported.stdout
    int8 = report["int8"]["latency"]["median_ms"]
    word = "faster" if int8 <= ort else "slower"
    assert re.search(rf"\d+\.\d\dx {word} than FP32 \({ort:.3f} ms\)", exported.stdout), exported.stdout
    assert ("note: the INT8 file is" in exported.stderr) == (int8 > ort)
    assert "x FP32)" not in exported.stdout and "(0." not in exported.stdout.split("latency")[1].split("\n")[0]

    first = _ok(runner.invoke(app, ["profile", "here", *QUICK_PROFILE]))
    assert "wrote latency_tables/here.json:" in first.stdout
    again = _ok(runner.invoke(app, ["profile", "here", *QUICK_PROFILE]))
    assert "wrote latency_tables/here.json (replacing the table that was there):" in again.stdout


def test_a_searched_model_is_usable_outside_edgenas_and_runs_are_listed(tmp_path, monkeypatch):
    import shutil

    import numpy as np
    from PIL import Image

    import edgenas

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "300")
    runner = CliRunner()
    _ok(runner.invoke(app, ["search", *FAST, "--out", "runs/done", "--quiet"]))
    _ok(runner.invoke(app, ["export", "m.onnx", "--run", "runs/done", "--no-verify", "--pt2"]))
    model = edgenas.load_model("runs/done")  # a plain torch.nn.Module, retrained weights
    assert isinstance(model, torch.nn.Module) and not model.training and model.arch.space == "tiny"
    scripted = torch.export.load(str(tmp_path / "m.pt2")).module()  # PyTorch alone reads it
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(scripted(x), model(x), atol=1e-5)

    folder = tmp_path / "photos" / "more"
    folder.mkdir(parents=True)
    for i, where in enumerate([folder.parent, folder]):
        Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(where / f"{i}.png")
    (folder.parent / "notes.txt").write_text("not an image")
    predicted = json.loads(_ok(runner.invoke(app, ["predict", "m.onnx", "photos", "--json"])).stdout)
    assert [row["image"] for row in predicted] == ["photos/0.png", "photos/more/1.png"]

    shutil.copytree(tmp_path / "runs" / "done", tmp_path / "runs" / "retraining")
    (tmp_path / "runs" / "retraining" / "summary.json").unlink()
    shutil.copytree(tmp_path / "runs" / "retraining", tmp_path / "runs" / "stopped")
    (tmp_path / "runs" / "stopped" / "arch.json").unlink()
    shutil.copytree(tmp_path / "runs" / "done", tmp_path / "runs" / "damaged")
    (tmp_path / "runs" / "damaged" / "summary.json").write_text('{"flops": 1}')  # no architecture: not a summary
    listed = _ok(runner.invoke(app, ["runs", "--json"])).stdout
    states = {Path(row["run"]).name: row["state"] for row in json.loads(listed)}
    assert states["damaged"].startswith("unreadable: ") and "'arch'" in states["damaged"], states
    listed = _ok(runner.invoke(app, ["runs"])).stdout
    summary = json.loads((tmp_path / "runs" / "done" / "summary.json").read_text())
    done = next(line for line in listed.splitlines() if "│ done " in line)
    for cell in ("random", "250.0K", f"{summary['flops'] / 1e3:.1f}K", f"{100 * summary['test_acc']:.2f}",
                 "finished"):
        assert cell in done, done
    assert "retraining" in next(line for line in listed.splitlines() if "│ retraining " in line)
    assert "interrupted" in next(line for line in listed.splitlines() if "│ stopped " in line)


def test_help_and_readme_agree_with_the_cli(tmp_path, monkeypatch):
    from pathlib import Path

    from edgenas.version import __version__

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert _ok(runner.invoke(app, ["--version"])).stdout == f"edgenas {__version__}\n"
    shown = _ok(runner.invoke(app, ["search", "-h"])).stdout
    assert "<bool>" not in shown and "--no-flip " in shown and "--quiet" in shown
    assert "One plain line per epoch" in shown
    space = _ok(runner.invoke(app, ["space", "tiny"])).stdout
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    ends = [line.split()[1] for line in space.splitlines() if line.startswith(("smallest", "largest"))]
    assert f"`edgenas space tiny`: {ends[0]} to {ends[1]} FLOPs with 1000 classes" in readme

    refused = runner.invoke(app, ["search", *FAST[:4], "--flops", "20"])
    assert refused.exit_code == 1 and "did you mean 20M?" in refused.output
    refused = runner.invoke(app, ["export", "m.onnx", "--run", "nowhere", "--max-drop", "-1"])
    assert refused.exit_code == 1 and "bad --max-drop -1: expected 0 or more" in refused.output

    _ok(runner.invoke(app, ["search", *FAST, "--out", "run", "--quiet"]))
    failed = runner.invoke(app, ["export", "m.onnx", "--run", "run", "--atol", "1e-12", "--quiet"])
    report = json.loads((tmp_path / "m.report.json").read_text())
    assert failed.exit_code == 1 and not report["passed"], failed.output  # ONNX Runtime and PyTorch differ a bit
    assert "m.onnx was deleted (--keep-failed keeps it)" in failed.output and not (tmp_path / "m.onnx").exists()
    kept = runner.invoke(app, ["export", "m.onnx", "--run", "run", "--atol", "1e-12", "--quiet", "--keep-failed"])
    assert kept.exit_code == 1 and (tmp_path / "m.onnx").is_file()


def test_the_readme_python_snippets_run_as_written_in_an_empty_folder(tmp_path, monkeypatch):
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    snippets = [block.split("```")[0] for block in readme.split("```python\n")[1:]]
    assert len(snippets) == 3
    monkeypatch.chdir(tmp_path)
    for snippet in snippets:
        exec(compile(snippet, "README.md", "exec"), {"__name__": "__readme__"})
    assert (tmp_path / "runs" / "mine" / "summary.json").is_file() and (tmp_path / "out" / "model.pt2").is_file()


def test_progress_lines_are_printed_as_they_are_not_as_markup(capsys, monkeypatch):
    from edgenas.cli.render import output

    monkeypatch.setenv("CI", "true")  # no bar: plain lines
    _, _, lines = output(quiet=False, verbose=True, as_json=False)
    lines("stage 0 [3/9] loss 0.5, E[FLOPs] 7.8M, E[latency] 0.39 ms")
    assert "E[latency] 0.39 ms" in capsys.readouterr().err
