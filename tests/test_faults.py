"""Faults: SIGKILL during retraining and profiling then resume, damaged checkpoints, writes that fail.

Every kill is a real SIGKILL of a real `python -m edgenas` subprocess; nothing is mocked.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import CHEAP_ARGS, SMALL_DATA_ARGS
from typer.testing import CliRunner

from edgenas.cli.app import app

# A random architecture within the budget: the search phase is instant, so the retraining is what gets killed.
RANDOM = ["--space", "tiny", "--strategy", "random", "--flops", "250K", "--batch-size", "16", *SMALL_DATA_ARGS,
          "--no-report"]


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread here and in the subprocesses: the same arithmetic in both (so weights can be compared
    bit for bit), and no spinning OpenMP threads on a loaded 2-core machine (epochs went from 0.3 s to 50 s)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _kill_when(process: subprocess.Popen, ready, what: str, timeout: float = 90.0) -> None:
    """SIGKILL `process` as soon as `ready()` holds; fail if it ended first (the test would prove nothing)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"the process ended (exit {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


def _retrain_rows(run) -> list[dict]:
    path = run / "history.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line being written
            rows.append(json.loads(line))
    return [row for row in rows if row.get("phase") == "retrain"]


def _weights(run) -> dict:
    return torch.load(run / "model.pt", weights_only=True)


def _same_weights(a, b) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def _edgenas(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgenas", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_a_search_killed_while_retraining_resumes_to_the_same_network(tmp_path):
    args = [*RANDOM, "--retrain-epochs", "5", "--json"]
    reference = CliRunner().invoke(app, ["search", *args, "--out", str(tmp_path / "ref")])
    assert reference.exit_code == 0, reference.output
    out = tmp_path / "killed"
    process = _edgenas("search", *args, "--out", out)
    _kill_when(process, lambda: len(_retrain_rows(out)) >= 1, "the first retraining epoch was saved")
    assert not (out / "summary.json").exists() and not (out / "model.pt").exists()
    assert len(_retrain_rows(out)) < 5  # killed with the retraining under way (its checkpoint may lag one epoch)
    resumed = CliRunner().invoke(app, ["search", "--resume", str(out), "--json"])
    assert resumed.exit_code == 0, resumed.output
    ref, res = json.loads(reference.stdout), json.loads(resumed.stdout)
    assert res["arch"] == ref["arch"] and res["test_acc"] == ref["test_acc"] and res["val_acc"] == ref["val_acc"]
    assert [r["epoch"] for r in _retrain_rows(out)] == [0, 1, 2, 3, 4]
    _same_weights(out, tmp_path / "ref")


def _rows_without_seconds(run) -> list[dict]:
    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_a_search_killed_within_a_stage_resumes_epoch_for_epoch(tmp_path):
    # Every epoch's losses and accuracies must match, not only the final architecture: a resumed stage once ran
    # its first epoch at the learning rate of step 0 (creating the scheduler reset it), and the architecture
    # often came out the same anyway.
    args = ["--space", "tiny", "--schedule", "0.2:3,0.5:3,1.0:3", "--retrain-epochs", "0", "--flops", "250K",
            "--batch-size", "64", *CHEAP_ARGS, "--json"]
    reference = CliRunner().invoke(app, ["search", *args, "--out", str(tmp_path / "ref")])
    assert reference.exit_code == 0, reference.output
    out = tmp_path / "killed"
    process = _edgenas("search", *args, "--out", out)
    stage_rows = lambda: [r for r in _rows_or_none(out) if r.get("phase") == "stage 0" and "epoch" in r]  # noqa: E731
    _kill_when(process, lambda: len(stage_rows()) >= 2, "two epochs of stage 0 were saved")
    resumed = CliRunner().invoke(app, ["search", "--resume", str(out), "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert _rows_without_seconds(out) == _rows_without_seconds(tmp_path / "ref")
    assert json.loads(resumed.stdout)["arch"] == json.loads(reference.stdout)["arch"]


@pytest.mark.slow
def test_a_search_killed_during_the_choice_by_training_resumes_with_the_scores_it_had(tmp_path):
    # `--choice train` trains each candidate for a few epochs: a long job of its own on a user's data. A resumed
    # run must score the same candidates and train only those it had not scored: history (one `choice` row a
    # candidate), candidates.json and the architecture all as if never interrupted.
    args = ["--space", "tiny", "--schedule", "0.5:1,1.0:1", "--retrain-epochs", "0", "--flops", "250K",
            "--batch-size", "32", *CHEAP_ARGS, *SMALL_DATA_ARGS, "--choice", "train", "--choice-candidates", "3",
            "--choice-epochs", "2", "--json"]
    reference = CliRunner().invoke(app, ["search", *args, "--out", str(tmp_path / "ref")])
    assert reference.exit_code == 0, reference.output
    out = tmp_path / "killed"
    process = _edgenas("search", *args, "--out", out)
    scored = lambda: [r for r in _rows_or_none(out) if r.get("phase") == "choice"]  # noqa: E731
    _kill_when(process, lambda: len(scored()) >= 1, "the first candidate's score was saved")
    assert len(scored()) < 3, "killed after the choice: the test proves nothing"
    resumed = CliRunner().invoke(app, ["search", "--resume", str(out), "--json"])
    assert resumed.exit_code == 0, resumed.output
    rows = _rows_without_seconds(out)
    assert [r["candidate"] for r in rows if r["phase"] == "choice"] == [1, 2, 3]
    assert rows == _rows_without_seconds(tmp_path / "ref")
    assert (out / "candidates.json").read_text() == (tmp_path / "ref" / "candidates.json").read_text()
    res, ref = json.loads(resumed.stdout), json.loads(reference.stdout)
    assert res["arch"] == ref["arch"] and res["search_images"] == ref["search_images"]


def _rows_or_none(run) -> list[dict]:
    path = run / "history.jsonl"
    rows = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        with contextlib.suppress(json.JSONDecodeError):
            rows.append(json.loads(line))
    return rows


def test_edgenas_train_killed_then_resumed_matches_an_uninterrupted_retraining(tmp_path):
    base = tmp_path / "base"
    result = CliRunner().invoke(app, ["search", *RANDOM, "--retrain-epochs", "0", "--out", str(base), "--json"])
    assert result.exit_code == 0, result.output
    shutil.copytree(base, tmp_path / "ref")
    shutil.copytree(base, tmp_path / "killed")
    reference = CliRunner().invoke(app, ["train", str(tmp_path / "ref"), "--epochs", "5", "--json"])
    assert reference.exit_code == 0, reference.output
    out = tmp_path / "killed"
    process = _edgenas("train", out, "--epochs", "5", "--json")
    work = out / "retraining.partial"  # where a retraining is kept until it is complete
    _kill_when(process, lambda: len(_retrain_rows(work)) >= 1, "the first retraining epoch was saved")
    assert len(_retrain_rows(work)) < 5
    resumed = CliRunner().invoke(app, ["train", str(out), "--resume", "--json"])
    assert resumed.exit_code == 0, resumed.output
    ref, res = json.loads(reference.stdout), json.loads(resumed.stdout)
    assert res["arch"] == ref["arch"] and res["test_acc"] == ref["test_acc"]
    assert [r["epoch"] for r in _retrain_rows(out)] == [0, 1, 2, 3, 4]
    _same_weights(out, tmp_path / "ref")


PROFILE = ["--space", "tiny", "--validate", "2", "--warmup", "1", "--repeats", "20", "--passes", "4", "--json"]


def _journal(path) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines()[1:]:
        with contextlib.suppress(json.JSONDecodeError):
            rows.append(json.loads(line))
    return rows


def _killed_profile(tmp_path, device: str, timings: int):
    """A real profile SIGKILLed once `timings` timings are journaled (the journal's first line is its header)."""
    table, partial = tmp_path / "t.json", tmp_path / "t.json.partial"
    process = _edgenas("profile", device, *PROFILE, "--out", table)
    _kill_when(process, lambda: partial.is_file() and len(partial.read_text().splitlines()) > timings + 1,
               f"{timings} timings were journaled")
    return table, partial


def test_a_killed_profile_resumes_from_its_journal_and_only_with_the_same_settings(tmp_path):
    import statistics

    table, partial = _killed_profile(tmp_path, "tiny-kill", timings=5)
    assert not table.exists()
    kept = _journal(partial)
    assert len(kept) >= 5
    saved = partial.read_bytes()

    # Other settings (here the repeats) never reuse the journal: everything is measured again.
    other = CliRunner().invoke(app, ["profile", "tiny-kill", *PROFILE, "--repeats", "7", "--out", str(table)])
    assert other.exit_code == 0, other.output
    assert "not resuming" in other.output and "repeats" in other.output
    assert json.loads(table.read_text())["resumed_timings"] == 0 and not partial.exists()

    # The same settings continue: the kept timings are used as they are and only the rest is measured.
    table.unlink()
    partial.write_bytes(saved)
    resumed = CliRunner().invoke(app, ["profile", "tiny-kill", *PROFILE, "--out", str(table)])
    assert resumed.exit_code == 0, resumed.output
    assert f"{len(kept)} of" in resumed.output and "resuming the profile" in resumed.output
    data = json.loads(table.read_text())
    assert data["resumed_timings"] == len(kept) and not partial.exists()
    assert len(kept) < 4 * (len(data["entries"]) + data["validation"]["count"])  # killed part way
    for row in kept:
        if row["key"] in data["entries"]:
            assert data["entries"][row["key"]]["pass_medians_ms"][row["pass"]] == statistics.median(row["times"])
    for entry in data["entries"].values():
        assert entry["n"] == 20 * 4 and len(entry["pass_medians_ms"]) == 4

    # More passes asked for (--max-passes) continue too: pass p is timed alike whatever the count.
    table.unlink()
    partial.write_bytes(saved)
    more = CliRunner().invoke(app, ["profile", "tiny-kill", *PROFILE, "--max-passes", "8", "--out", str(table)])
    assert more.exit_code == 0, more.output
    assert "resuming the profile" in more.output and "not resuming" not in more.output
    assert json.loads(table.read_text())["resumed_timings"] == len(kept)


def test_a_profile_times_its_validation_networks_in_the_same_passes_as_the_pieces(tmp_path):
    """Timed after every piece's passes, whole networks saw another state of a shared machine than the pieces
    (small networks drifted by 10-18% within the hour): each pass times the networks too."""
    from edgenas.profiling.validation import validation_archs
    from edgenas.space.pieces import space_pieces
    from edgenas.space.spec import get_space

    space = get_space("tiny")
    pieces = {p.key for p in space_pieces(space)}
    networks = {f"net:{name}" for name, _ in validation_archs(space, 2, seed=0)}  # --validate 2, and the extremes
    _, partial = _killed_profile(tmp_path, "tiny-order", timings=len(pieces) + len(networks) + 1)
    rows = _journal(partial)
    passes = [row["pass"] for row in rows]
    assert passes == sorted(passes) and passes[-1] >= 1  # all of pass 0 and some of pass 1
    assert {row["key"] for row in rows if row["pass"] == 0} == pieces | networks


def test_a_torn_journal_line_is_dropped_and_the_rest_reused(tmp_path):
    table, partial = _killed_profile(tmp_path, "tiny-torn", timings=3)
    lines = partial.read_text().splitlines()  # as a crash of the machine may leave it: the last line cut short
    partial.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    resumed = CliRunner().invoke(app, ["profile", "tiny-torn", *PROFILE, "--out", str(table)])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(table.read_text())["resumed_timings"] == len(lines) - 2


# ------------------------------------------------------------------ damaged checkpoints

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # as the tests that use it (see _one_thread); restored for the modules after this one
    out = tmp_path_factory.mktemp("faults") / "run"
    result = CliRunner().invoke(app, ["search", *RANDOM, "--retrain-epochs", "2", "--out", str(out), "--json"])
    torch.set_num_threads(previous)
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def _copy(finished_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished_run[0], copy)
    return copy


def test_a_truncated_checkpoint_is_named_and_the_previous_one_used(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 3])
    result = CliRunner().invoke(app, ["train", str(run), "--resume", "--json"])
    assert result.exit_code == 0, result.output
    warning = [line for line in result.output.splitlines() if line.startswith("warning: checkpoint")]
    assert len(warning) == 1 and "checkpoint.pt is damaged (truncated or altered" in warning[0]
    assert "checkpoint.prev.pt" in warning[0]
    summary = json.loads(result.stdout)
    assert summary["arch"] == finished_run[1]["arch"] and summary["test_acc"] == finished_run[1]["test_acc"]


def test_a_checkpoint_with_a_valid_checksum_that_would_run_code_is_refused(finished_run, tmp_path):
    import hashlib
    import pickle

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    run = _copy(finished_run, tmp_path)
    crafted = pickle.dumps({"arch": Exploit()}, protocol=2)
    (run / "checkpoint.pt").write_bytes(crafted)
    (run / "checkpoint.pt.sha256").write_text(hashlib.sha256(crafted).hexdigest() + "\n")
    result = CliRunner().invoke(app, ["train", str(run), "--resume", "--json"])
    assert result.exit_code == 0, result.output  # the previous checkpoint is used
    assert "not a weights file edgenas can load safely" in result.output and not (tmp_path / "pwned").exists()


def test_two_damaged_checkpoints_stop_the_run_with_one_line(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    (run / "summary.json").unlink()  # unfinished, so that resuming needs a checkpoint (a finished run needs none)
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (run / name).write_bytes((run / name).read_bytes()[:100])
    result = CliRunner().invoke(app, ["search", "--resume", str(run)])
    assert result.exit_code == 1 and result.output.strip().count("\n") == 0, result.output
    assert "no usable checkpoint" in result.output and "checkpoint.prev.pt is damaged" in result.output


# ------------------------------------------------------------------ writes that fail

@contextlib.contextmanager
def _read_only(folder):
    """Make `folder` refuse new files for real: chmod for a normal user; as root (whom chmod does not stop), the
    immutable attribute (chattr +i, ext4/xfs/btrfs), or a skip where neither is possible."""
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        undo = lambda: folder.chmod(mode)  # noqa: E731
    else:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)],
                                                            capture_output=True).returncode != 0:
            pytest.skip("running as root, where chmod does not stop writes, and chattr +i is not possible here")
        undo = lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)  # noqa: E731
    try:
        with pytest.raises(OSError):  # the failure is real
            (folder / "probe").write_text("x")
        yield
    finally:
        undo()


def _snapshot(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line_failure(result, *needles):
    assert result.exit_code == 1, result.output
    assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in result.output, result.output


def test_a_failed_table_write_keeps_the_old_table(tmp_path):
    folder = tmp_path / "tables"
    folder.mkdir()
    (folder / "t.json").write_text('{"old": true}\n')
    with _read_only(folder):
        result = CliRunner().invoke(app, ["profile", "tiny-ro", *PROFILE, "--out", str(folder / "t.json")])
    _one_line_failure(result, "cannot write", "nothing was measured", "t.json is unchanged")
    assert _snapshot(folder) == {"t.json": b'{"old": true}\n'}


def test_a_table_that_cannot_replace_the_old_one_keeps_the_timings(tmp_path):
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        pytest.skip("needs root and chattr to make one file immutable in a writable folder")
    table = tmp_path / "t.json"
    table.write_text('{"old": true}\n')
    if subprocess.run(["chattr", "+i", str(table)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not possible on this file system")
    try:
        result = CliRunner().invoke(app, ["profile", "tiny-ro", *PROFILE, "--quiet", "--out", str(table)])
    finally:
        subprocess.run(["chattr", "-i", str(table)], check=True)
    _one_line_failure(result, "cannot write", "the timings are kept in", "t.json.partial")
    assert table.read_text() == '{"old": true}\n'
    again = CliRunner().invoke(app, ["profile", "tiny-ro", *PROFILE, "--out", str(table)])
    assert again.exit_code == 0, again.output
    data = json.loads(table.read_text())
    assert data["resumed_timings"] == 4 * (len(data["entries"]) + data["validation"]["count"])  # none measured again


def test_a_failed_run_write_keeps_the_run(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    before = _snapshot(run)
    with _read_only(run):
        result = CliRunner().invoke(app, ["train", str(run), "--epochs", "1"])
    _one_line_failure(result, "cannot create folder", "retraining.partial", f"run {run} is unchanged")
    assert _snapshot(run) == before


def test_a_failed_onnx_write_keeps_the_old_file(finished_run, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "m.onnx").write_bytes(b"old model")
    with _read_only(folder):
        result = CliRunner().invoke(app, ["export", str(folder / "m.onnx"), "--run", str(finished_run[0])])
    _one_line_failure(result, "cannot write", "m.onnx", "the previous file, if any, is unchanged")
    assert _snapshot(folder) == {"m.onnx": b"old model"}
