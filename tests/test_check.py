"""`edgenas check`: a finished run against random architectures of its budget, each retrained with the run's own
recipe; its ranking, its files, its refusals, and a check killed mid-way that resumes to the same outcome."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

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


def test_a_check_with_seeds_retrains_every_network_again_and_another_k_reuses_the_retrainings_it_has(
        searched, tmp_path, capsys, monkeypatch):
    import edgenas
    from edgenas.cli.search_commands import print_check

    run = _copy(searched, tmp_path)
    once = CliRunner().invoke(app, ["check", str(run), "--random", "1", "--json"])
    assert once.exit_code == 0, once.output
    assert "test_accs" not in once.stdout and "seeds" not in json.loads(once.stdout)  # today's file
    stamp = (run / "check" / "random-1" / "summary.json").stat().st_mtime_ns
    result = edgenas.check(run, random=1, seeds=2)  # adds the second retrainings, reuses random-1
    assert (run / "check" / "random-1" / "summary.json").stat().st_mtime_ns == stamp
    written = json.loads((run / "check.json").read_text())
    assert written == result.to_dict() and written["seeds"] == 2
    for arm in written["arms"]:
        seeded = run / "check" / f"{arm['name']}-seed2"
        assert arm["runs"] == [arm["run"], str(seeded)] and arm["retrain_seeds"] == [None, 2]
        assert len(arm["test_accs"]) == 2 and arm["test_acc"] == pytest.approx(sum(arm["test_accs"]) / 2)
        # a different seed really changes the retraining: the seed recorded, nothing else, and the weights
        parent = json.loads((Path(arm["run"]) / "config.json").read_text())["settings"]
        config = json.loads((seeded / "config.json").read_text())["settings"]
        assert parent["retrain_seed"] is None and config == {**parent, "retrain_seed": 2}
        weights = [edgenas.load_model(r).state_dict() for r in arm["runs"]]
        assert any(not torch.equal(a, weights[1][k]) for k, a in weights[0].items() if a.is_floating_point())
        assert [r["epoch"] for r in _rows(seeded) if r["phase"] == "retrain"] == [0, 1, 2]
        assert _losses(seeded) != _losses(Path(arm["run"]))
    searched_arm, random_arm = written["arms"]
    # This tiny recipe leaves every network at chance (10% of 100 test digits): the accuracies cannot differ here.
    assert searched_arm["test_accs"][0] == json.loads((run / "summary.json").read_text())["test_acc"]
    assert written["margin_se_points"] == pytest.approx(  # one random arm: its own retrainings' spread stands in
        100 * (searched_arm["test_acc_std"] ** 2 / 2 + random_arm["test_acc_std"] ** 2 / 2) ** 0.5)
    monkeypatch.setenv("COLUMNS", "400")  # the header whole: under pytest-xdist the console is 80 columns
    print_check(result)
    out = capsys.readouterr().out
    assert "test acc. (%, mean +/- sd of 2)" in out, out
    # back to one retraining: today's file again, from the retrainings there
    again = CliRunner().invoke(app, ["check", str(run), "--random", "1", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == json.loads(once.stdout)


def _losses(run) -> list[float]:
    return [r["train_loss"] for r in _rows(run) if r["phase"] == "retrain"]


@pytest.mark.parametrize("args, message", [
    (["--random", "0"], "bad --random 0: expected 1 to 50"),
    (["--random", "x"], "bad --random 'x'"),
    (["--seeds", "0"], "bad --seeds 0: expected 1 to 20 retrainings"),
    (["--seeds", "21"], "bad --seeds 21: expected 1 to 20 retrainings"),
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
