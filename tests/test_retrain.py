"""`edgenas train RUN`: a finished run's results are never lost (a bad --epochs is refused with the run untouched; a
new retraining replaces them only once it is complete), and train speaks of its own work: its plan, Ctrl-C, --resume
and a run retrained already are told in retraining epochs.

Ctrl-C is a real SIGINT to a real `python -m edgenas train`; nothing is mocked.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from conftest import default_sigint
from typer.testing import CliRunner

from edgenas.cli.app import app

# A DA-NAS search of one epoch (so that the history holds search rows besides the retraining's), retrained 2 epochs.
SEARCH = ["--space", "tiny", "--schedule", "1.0:1", "--probe-epochs", "0", "--warmup-epochs", "0", "--score-paths", "8",
          "--flops", "250K", "--batch-size", "16", "--train-per-class", "20", "--test-per-class", "5",
          "--retrain-epochs", "2"]
IMAGES = "180 training images per epoch, batch 16"  # 20 per class, 10 classes, less 10% for search-validation


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("retrain") / "run"
    result = CliRunner().invoke(app, ["search", *SEARCH, "--out", str(out), "--json"])
    torch.set_num_threads(previous)
    assert result.exit_code == 0, result.output
    return out


def _copy(searched, tmp_path):
    return shutil.copytree(searched, tmp_path / "run")


def _files(run) -> dict:
    """The run's own files, byte for byte (a new retraining's folder, retraining.partial, aside)."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and "retraining.partial" not in p.parts}


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _interrupt(run, *args, ready) -> list[str]:
    """Start `edgenas train RUN ARGS` and send it SIGINT (Ctrl-C) once `ready(line)` holds for a line it printed on
    stderr (a plain line per epoch, off a terminal); all its lines."""
    process = subprocess.Popen([sys.executable, "-m", "edgenas", "train", str(run), *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                               preexec_fn=default_sigint)
    lines = []
    for line in process.stderr:
        lines.append(line.rstrip("\n"))
        if ready(lines[-1]):
            break
    else:
        pytest.fail(f"train ended (exit {process.wait()}) before the moment to interrupt it: {lines}")
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 130, lines + rest.splitlines()
    return lines + rest.splitlines()


def test_bad_epochs_are_refused_and_the_run_is_untouched(searched, tmp_path):
    run = _copy(searched, tmp_path)
    before = _files(run)
    for args in (["--epochs", "0"], ["--epochs", "0", "--resume"], ["--epochs", "-3"], ["--epochs", "20000"]):
        result = CliRunner().invoke(app, ["train", str(run), *args])
        assert result.exit_code == 1 and result.output.strip().count("\n") == 0, result.output
        assert f"bad --epochs {args[1]}: expected 1 to 10,000 retraining epochs" in result.output
    assert _files(run) == before
    assert not (run / "retraining.partial").exists()


def test_resuming_a_retrained_run_says_nothing_was_done(searched, tmp_path):
    run = _copy(searched, tmp_path)
    before = _files(run)
    summary = json.loads((run / "summary.json").read_text())
    result = CliRunner().invoke(app, ["train", str(run), "--resume", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"run {run} is retrained already (2 epochs, test accuracy {100 * summary['test_acc']:.2f}%): nothing to "
        f"resume, nothing done (its summary follows); `edgenas train {run}` retrains it again from scratch, and keeps "
        "these results until the new ones are complete"]
    printed = json.loads(result.stdout)
    assert {key: printed[key] for key in summary} == summary
    assert _files(run) == before  # not even the report drawn again


def test_an_interrupted_train_keeps_the_run_counts_retraining_epochs_and_resumes_where_it_stopped(searched,
                                                                                                  tmp_path):
    run = _copy(searched, tmp_path)
    work = run / "retraining.partial"
    before = _files(run)
    search_rows = [row for row in _rows(run / "history.jsonl") if row["phase"] != "retrain"]
    accuracy = json.loads((run / "summary.json").read_text())["test_acc"]
    # Ctrl-C once two retraining epochs are in the history: Ctrl-C keeps the last epoch that ended.
    lines = _interrupt(run, "--epochs", "10", ready=lambda line: sum(
        row["phase"] == "retrain" for row in _rows(work / "history.jsonl")) >= 2)
    assert lines[0] == (f"retraining run {run} from scratch: 10 epochs (--epochs 10), kept in {work}; its current "
                        f"results (test accuracy {100 * accuracy:.2f}%) stay until the new ones are complete")
    assert f"plan: retraining 10 epochs; about 1,800 image-steps ({IMAGES})" in lines
    expected = (f"interrupted: KEPT of 10 retraining epochs kept in {work} (the results of run {run} are unchanged); "
                f"continue with edgenas train {run} --resume")
    said = re.fullmatch(re.escape(expected).replace("KEPT", r"(\d+)"), lines[-1])
    assert said, lines
    kept = int(said[1])
    assert 1 <= kept <= 8
    assert _files(run) == before  # the run's summary, model.pt, history and checkpoint, byte for byte

    resumed = CliRunner().invoke(app, ["train", str(run), "--resume", "--json"])
    assert resumed.exit_code == 0, resumed.output
    notes = resumed.stderr.splitlines()
    assert notes[0] == f"retraining run {run}: resuming at epoch {kept + 1} of 10 ({kept} kept in {work})"
    assert f"plan: retraining epochs {kept + 1} to 10 of 10; about {(10 - kept) * 180:,} image-steps ({IMAGES})" \
        in notes
    # Complete: the new results replace the old ones, the search's rows stay, and the retraining's folder is gone.
    assert not work.exists()
    rows = _rows(run / "history.jsonl")
    assert [row for row in rows if row["phase"] != "retrain"] == search_rows
    assert [row["epoch"] for row in rows if row["phase"] == "retrain"] == list(range(10))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_acc"] == json.loads(resumed.stdout)["test_acc"] is not None
    assert summary["retrain_seconds"] is not None and (run / "model.pt").read_bytes() != before["model.pt"]


def test_a_train_interrupted_before_its_first_epoch_starts_again_and_says_why(searched, tmp_path):
    run = _copy(searched, tmp_path)
    work = run / "retraining.partial"
    before = _files(run)
    # Ctrl-C once train has said what it does (its folder is made), while it loads the data.
    lines = _interrupt(run, "--epochs", "2", ready=lambda line: line.startswith("retraining run"))
    assert lines[-1] == (f"interrupted: 0 of 2 retraining epochs kept in {work} (the results of run {run} are "
                         f"unchanged); continue with edgenas train {run} --resume")
    assert _files(run) == before
    resumed = CliRunner().invoke(app, ["train", str(run), "--resume", "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert resumed.stderr.splitlines()[0] == (
        f"retraining run {run}: starting again at epoch 1 of 2: no epoch of the stopped retraining was kept (it "
        "stopped during its first epoch, or was killed otherwise than by Ctrl-C within a minute of its start)")
    assert f"plan: retraining 2 epochs; about 360 image-steps ({IMAGES})" in resumed.stderr
    assert not work.exists()
