"""`edgenas check`: a finished run against random architectures of its budget, each retrained with the run's own
recipe; its ranking, its files, its refusals, and a check killed mid-way that resumes to the same outcome."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch
from conftest import CHEAP_ARGS, SMALL_DATA_ARGS
from typer.testing import CliRunner

from edgenas.cli.app import app

RUN = ["--space", "tiny", "--schedule", "0.5:1,1.0:1", "--flops", "250K", "--batch-size", "32", "--choice", "alpha",
       "--retrain-epochs", "3", *CHEAP_ARGS, *SMALL_DATA_ARGS]
SAME_RECIPE = ("retrain_epochs", "retrain_lr", "retrain_weight_decay", "batch_size", "train_per_class",
               "test_per_class", "data", "flops", "space", "resolution", "width_mult", "budget_floor",
               "label_smoothing")


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A finished run of `tiny`, retrained, kept pristine: each test checks a copy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("check") / "run"
    result = CliRunner().invoke(app, ["search", *RUN, "--out", str(run), "--json", "-q"])
    assert result.exit_code == 0, result.output
    yield run
    torch.set_num_threads(threads)


def _copy(run, tmp_path, name="run"):
    return shutil.copytree(run, tmp_path / name)


def test_a_check_retrains_random_arms_with_the_runs_recipe_and_ranks_the_searched_network(searched, tmp_path):
    run = _copy(searched, tmp_path)
    result = CliRunner().invoke(app, ["check", str(run), "--random", "2", "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed == json.loads((run / "check.json").read_text())
    arms = printed["arms"]
    assert [a["name"] for a in arms] == ["searched", "random-1", "random-2"]  # tiny holds no MobileNetV2
    assert "no MobileNetV2 arm" in result.stderr
    parent = json.loads((run / "config.json").read_text())["settings"]
    for seed, arm in enumerate(arms[1:], parent["seed"] + 1):
        config = json.loads((run / "check" / arm["name"] / "config.json").read_text())["settings"]
        assert config["strategy"] == "random" and config["seed"] == seed
        assert {k: config[k] for k in SAME_RECIPE} == {k: parent[k] for k in SAME_RECIPE}
        summary = json.loads((run / "check" / arm["name"] / "summary.json").read_text())
        assert arm["test_acc"] == summary["test_acc"] and arm["flops"] == summary["flops"]
        assert parent["budget_floor"] * 250_000 <= arm["flops"] <= 250_000
        assert [r["epoch"] for r in _rows(run / "check" / arm["name"]) if r["phase"] == "retrain"] == [0, 1, 2]
    searched_acc = arms[0]["test_acc"]
    assert searched_acc == json.loads((run / "summary.json").read_text())["test_acc"]
    assert printed["rank"] == 1 + sum(a["test_acc"] > searched_acc for a in arms[1:])
    randoms = [a["test_acc"] for a in arms[1:]]
    assert printed["margin_points"] == pytest.approx(100 * (searched_acc - sum(randoms) / 2))
    assert printed["margin_se_points"] == pytest.approx(100 * abs(randoms[0] - randoms[1]) / 2)  # std/sqrt(2)
    assert (run / "plots" / "check.png").stat().st_size > 0 and "plots/check.png" in (run / "report.html").read_text()
    # compare brings the arms along; a second check reuses the finished arms instead of training them again
    compared = CliRunner().invoke(app, ["compare", str(run), "--out", str(tmp_path / "c.png"), "--json"])
    assert compared.exit_code == 0, compared.output
    assert len(json.loads(compared.stdout)["runs"]) == 3
    stamp = (run / "check" / "random-1" / "summary.json").stat().st_mtime_ns
    again = CliRunner().invoke(app, ["check", str(run), "--random", "2"])
    assert again.exit_code == 0, again.output
    assert "rank" in again.stdout and "points of test accuracy over the mean of 2 random" in again.stdout
    assert (run / "check" / "random-1" / "summary.json").stat().st_mtime_ns == stamp


def _rows(run) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("args, message", [
    (["--random", "0"], "bad --random 0: expected 1 to 50"),
    (["--random", "x"], "bad --random 'x'"),
])
def test_bad_check_options_are_one_line_errors(searched, tmp_path, args, message):
    run = _copy(searched, tmp_path)
    result = CliRunner().invoke(app, ["check", str(run), *args])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert not (run / "check").exists()


def test_an_unfinished_or_unretrained_run_is_refused_before_any_training(searched, tmp_path):
    unfinished = _copy(searched, tmp_path, "unfinished")
    (unfinished / "summary.json").unlink()
    result = CliRunner().invoke(app, ["check", str(unfinished)])
    assert result.exit_code == 1 and "is not finished: finish it with `edgenas search --resume" in result.output
    untrained = tmp_path / "untrained"
    made = CliRunner().invoke(app, ["search", *RUN, "--retrain-epochs", "0", "--out", str(untrained), "-q"])
    assert made.exit_code == 0, made.output
    result = CliRunner().invoke(app, ["check", str(untrained)])
    assert result.exit_code == 1 and "was not retrained (--retrain-epochs 0)" in result.output
    assert not (unfinished / "check").exists() and not (untrained / "check").exists()
    missing = CliRunner().invoke(app, ["check", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "Traceback" not in missing.output


def test_a_check_killed_while_an_arm_retrains_resumes_to_the_same_outcome(searched, tmp_path):
    reference = _copy(searched, tmp_path, "reference")
    done = CliRunner().invoke(app, ["check", str(reference), "--random", "2", "--json"])
    assert done.exit_code == 0, done.output
    run = _copy(searched, tmp_path, "killed")
    process = subprocess.Popen([sys.executable, "-m", "edgenas", "check", str(run), "--random", "2", "-q"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    second = run / "check" / "random-2"
    deadline = time.monotonic() + 120
    while not ((second / "history.jsonl").is_file() and any(r.get("phase") == "retrain" for r in _safe_rows(second))):
        assert process.poll() is None, "the check ended before the second arm retrained: the test proves nothing"
        assert time.monotonic() < deadline, "timed out waiting for the second arm's retraining"
        time.sleep(0.02)
    process.kill()
    process.wait()
    assert not (second / "summary.json").exists() and not (run / "check.json").exists()
    resumed = CliRunner().invoke(app, ["check", str(run), "--random", "2", "--json"])
    assert resumed.exit_code == 0, resumed.output
    got, want = json.loads(resumed.stdout), json.loads(done.stdout)
    assert [(a["name"], a["layers"], a["test_acc"]) for a in got["arms"]] == \
        [(a["name"], a["layers"], a["test_acc"]) for a in want["arms"]]
    assert got["rank"] == want["rank"] and got["margin_points"] == want["margin_points"]


def _safe_rows(run) -> list[dict]:
    rows = []
    for line in (run / "history.jsonl").read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line being written
            rows.append(json.loads(line))
    return rows
