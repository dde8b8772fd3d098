"""The search end to end on the tiny space and the embedded digits: real training, pruning, derivation, resume."""

import itertools
import json
import subprocess
import sys

import pytest
from conftest import CHEAP, CHEAP_ARGS, SMALL_DATA_ARGS
from typer.testing import CliRunner

from edgenas.cli.app import app
from edgenas.cost.flops import cost_table, count_flops
from edgenas.cost.presets import preset
from edgenas.errors import EdgeNASError
from edgenas.runs.settings import SearchSettings
from edgenas.searching.run import search
from edgenas.space.network import build_model
from edgenas.space.spec import get_space

QUICK = {"space": "tiny", "schedule": "0.2:1,0.5:1,1.0:1", "retrain_epochs": 1, "batch_size": 128, **CHEAP}


def _rows(run, phase_prefix="stage"):
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()
            if json.loads(line).get("phase", "").startswith(phase_prefix)]


@pytest.fixture(scope="module")
def danas_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "danas"
    result = search(SearchSettings(**QUICK, flops=250_000), out=out, progress=False, log=lambda *a: None)
    return result


def test_run_folder_holds_every_file(danas_run):
    for name in ("config.json", "class_order.json", "history.jsonl", "checkpoint.pt", "arch.json", "model.pt",
                 "summary.json"):
        assert (danas_run.run / name).is_file(), name
    config = json.loads((danas_run.run / "config.json").read_text())
    assert config["settings"]["prune_ratio"] == 0.4 and config["settings"]["schedule"] == QUICK["schedule"]
    assert config["versions"]["torch"] and config["resolved"]["budgets"]["flops"] == 250_000


def test_classes_are_admitted_in_the_saved_order_stage_by_stage(danas_run):
    order = json.loads((danas_run.run / "class_order.json").read_text())["order"]
    assert sorted(order) == list(range(10))
    epochs = [row for row in _rows(danas_run.run) if "epoch" in row]
    assert [row["classes"] for row in epochs] == [2, 5, 10]
    for row in epochs:
        assert row["admitted"] == sorted(order[: row["classes"]])


def test_each_stage_prunes_every_layer_by_the_ratio(danas_run):
    # Each layer drops the worst-scored 40% of its active candidates, except those its scores cannot tell from the
    # layer's best (`undecided`, --prune-confidence), and those given back to keep the budget reachable.
    counts = [[3, 4, 3, 4]] + [row["active"] for row in _rows(danas_run.run) if "pruned" in row]
    rows = [row for row in _rows(danas_run.run) if "pruned" in row]
    layers = list(get_space("tiny"))
    for (before, after), row in zip(itertools.pairwise(counts), rows, strict=True):
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            losses = row["scores"]["val_loss"][i]
            ranked = sorted((j for j, v in enumerate(losses) if v is not None), key=lambda j: (losses[j], j))
            assert len(ranked) == b
            worst = {layers[i].choices[j] for j in ranked[max(1, b - int(0.4 * b)):]}
            back = set(row["given_back_for_floor"][i])
            assert set(row["pruned"][i]) <= worst
            if not row["restored_cheapest"]:
                assert worst - set(row["pruned"][i]) <= set(row["scores"]["undecided"][i]) | back
            assert a == b - len(row["pruned"][i]) >= 1


def test_derived_architecture_is_within_budget_by_fvcore(danas_run):
    summary = danas_run.summary
    arch = preset("smallest", get_space("tiny"), 10)  # any tiny arch: only the space matters here
    model = build_model(type(arch)(**{**arch.__dict__, "layers": tuple(summary["arch"]["layers"])}))
    assert count_flops(model, (3, 16, 16)) == summary["flops"] <= 250_000
    assert summary["within_flops_budget"] and 0 <= summary["test_acc"] <= 1


def test_infeasible_budget_is_refused_before_training(tmp_path):
    smallest = cost_table(get_space("tiny")).flops(preset("smallest", get_space("tiny"), 10))
    with pytest.raises(EdgeNASError, match=r"smallest network .* has"):
        search(SearchSettings(**QUICK, flops=smallest - 1), out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_same_seed_gives_the_same_architecture(danas_run, tmp_path):
    again = search(SearchSettings(**QUICK, flops=250_000), out=tmp_path / "again", progress=False, log=lambda *a: None)
    assert again.summary["arch"] == danas_run.summary["arch"]


@pytest.mark.parametrize("strategy", ["full", "random"])
def test_baselines_run_in_the_same_code(tmp_path, strategy):
    result = search(SearchSettings(**QUICK, flops=250_000, strategy=strategy), out=tmp_path / strategy,
                    progress=False, log=lambda *a: None)
    assert result.summary["flops"] <= 250_000 and result.summary["test_acc"] is not None
    if strategy == "full":
        rows = [r for r in _rows(tmp_path / strategy, "full") if "epoch" in r]
        assert len(rows) == 3 and all(r["classes"] == 10 and r["active"] == [3, 4, 3, 4] for r in rows)


def test_mobilenetv2_baseline_is_width_scaled_to_the_budget(tmp_path):
    space = get_space("mobile-small", 16)
    full = cost_table(space).flops(preset("mobilenetv2", space, 10))
    result = search(SearchSettings(space="mobile-small", strategy="mobilenetv2", flops=full // 2, retrain_epochs=0),
                    out=tmp_path / "mbv2", progress=False, log=lambda *a: None)
    assert result.summary["arch"]["width_mult"] < 1.0 and result.summary["flops"] <= full // 2


@pytest.mark.parametrize(("args", "message"), [
    (["--space", "tiny", "--flops", "1K"], "is infeasible"),
    (["--space", "tiny", "--flops", "300X"], "bad FLOPs value '300X'"),
    (["--space", "tiny", "--latency", "5ms"], "--latency needs --table"),
    (["--space", "tiny", "--strategy", "evolution"], "unknown strategy 'evolution'"),
    (["--space", "tiny", "--schedule", "0.5:2,0.3:1"], "bad schedule"),
    (["--space", "tiny", "--retrain-epochs", "-1"], "bad --retrain-epochs -1"),
    (["--data", "/nonexistent/data"], "dataset path /nonexistent/data does not exist"),
    (["--space", "tiny", "--table", "epyc-zen5-2core-ort-t1-mobile224", "--latency", "5ms"], "latency table"),
])
def test_bad_search_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["search", *args, "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_cli_search_json(tmp_path, monkeypatch):
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["search", "--space", "tiny", "--schedule", "0.5:1,1.0:1", "--retrain-epochs",
                                      "1", "--flops", "300K", *CHEAP_ARGS, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["run"] == str(out) and summary["flops"] <= 300_000
    # The table `search` prints without --json shows the same numbers (it is drawn from the same summary).
    from rich.console import Console

    from edgenas.cli import render
    from edgenas.runs.summary import RunSummary
    from edgenas.units import format_flops

    console = Console(record=True, width=250)
    monkeypatch.setattr(render, "Console", lambda *a, **k: console)
    render.print_summary(out, RunSummary.from_dict(summary))
    shown = console.export_text()
    assert f"{100 * summary['test_acc']:.2f}%" in shown and format_flops(summary["flops"]) in shown
    assert f"{summary['search_seconds']:.0f} s" in shown and " ".join(summary["arch"]["layers"]) in shown
    result = CliRunner().invoke(app, ["eval", str(out), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["test_acc"] == pytest.approx(summary["test_acc"])


def test_a_search_stopped_between_phases_resumes_from_the_checkpoint_as_earlier_versions_wrote_it(danas_run,
                                                                                                    tmp_path):
    import torch

    lines = []

    def stop_in_stage_1(line):  # the 4th epoch (probe, warm-up, stage 0, stage 1): Ctrl-C before its checkpoint
        lines.append(line)
        if len(lines) == 4:
            raise KeyboardInterrupt

    out = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt, match="3 epochs kept"):
        search(SearchSettings(**QUICK, flops=250_000), out=out, progress=False, log=lambda *a: None,
               echo=stop_in_stage_1)
    # checkpoint.pt is the plain dictionary of before, key for key (runs/checkpoint.py reads it typed)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert set(state) == {"class_order", "phase", "epoch", "arch_steps", "supernet", "weight_opt", "arch_opt",
                          "scheduler", "torch_rng", "generator", "history_rows", "images", "search_seconds"}
    assert (state["phase"], state["epoch"], state["history_rows"]) == (3, 0, 4)  # after stage 0 and its pruning
    resumed = search(resume=out, progress=False, log=lambda *a: None)
    assert resumed.summary["arch"] == danas_run.summary["arch"]


def test_a_given_class_order_is_searched_from_the_start(tmp_path):
    order = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    (tmp_path / "order.json").write_text(json.dumps({"order": order}))
    settings = SearchSettings(space="tiny", schedule="0.2:1,1.0:1", warmup_epochs=0, score_paths=4, retrain_epochs=0,
                              batch_size=128, flops=250_000, class_order=str(tmp_path / "order.json"))
    result = search(settings, out=tmp_path / "run", progress=False, log=lambda *a: None)
    saved = json.loads((result.run / "class_order.json").read_text())
    assert saved["order"] == order and saved["method"].startswith("given by")
    rows = [row for row in _rows(result.run, "") if "epoch" in row]
    assert [(row["phase"], row["classes"]) for row in rows] == [("stage 0", 2), ("stage 1", 10)]  # no probe
    assert all(row["admitted"] == sorted(order[: row["classes"]]) for row in rows)


def test_train_redoes_the_retraining_of_a_run(danas_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(danas_run.run, copy)
    result = CliRunner().invoke(app, ["train", str(copy), "--epochs", "2", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["arch"] == danas_run.summary["arch"] and summary["test_acc"] is not None
    retrain_rows = [r for r in _rows(copy, "retrain")]
    assert [r["epoch"] for r in retrain_rows] == [0, 1]


def test_a_streamed_image_tree_is_searched_end_to_end(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("test", 4)):
        for label in range(3):
            folder = tmp_path / "tree" / split / f"class{label}"
            folder.mkdir(parents=True)
            for i in range(count):
                image = np.full((16, 16, 3), 60 * label, np.uint8) + rng.integers(0, 40, (16, 16, 3), dtype=np.uint8)
                Image.fromarray(image).save(folder / f"{i}.png")
    result = search(SearchSettings(data=str(tmp_path / "tree"), space="tiny", schedule="0.5:1,1.0:1",
                                   retrain_epochs=1, batch_size=8, memory_gb=0.0, **CHEAP),
                    out=tmp_path / "run", progress=False, log=lambda *a: None)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["resolved"]["data"]["streamed"] and result.summary["test_acc"] is not None


@pytest.mark.parametrize(("flag", "lines"), [("--verbose", True), ("--quiet", False)])
def test_piped_output_has_no_bar_and_verbose_prints_one_line_per_epoch(tmp_path, flag, lines):
    # stderr is a pipe here, as in a log file or CI: no bar (no control characters), plain lines with --verbose.
    command = [sys.executable, "-m", "edgenas", "search", "--space", "tiny", "--schedule", "0.5:1,1.0:1",
               "--retrain-epochs", "1", "--flops", "300K", *CHEAP_ARGS, *SMALL_DATA_ARGS, "--out",
               str(tmp_path / "run"), flag]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stderr and "━" not in result.stderr
    epochs = [line for line in result.stderr.splitlines() if "/" in line and "[" in line and "loss" in line]
    assert len(epochs) == (5 if lines else 0), result.stderr  # probe + warm-up + 2 stages + 1 retraining epoch
    assert "test accuracy" in result.stdout  # the summary is the result: printed either way


def test_no_bar_under_ci_even_on_a_terminal(monkeypatch):
    from edgenas import progress

    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert progress.wanted(True) and not progress.wanted(False)
    monkeypatch.setenv("CI", "true")
    assert not progress.wanted(True)


def test_a_search_without_retraining_reports_no_accuracy_and_ships_no_untrained_network(tmp_path):
    """`--retrain-epochs 0` searches only: a network of initial weights must not pass for a retrained one (it
    measured 10% "test accuracy, retrained from scratch" and was exportable as model.pt)."""
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["search", "--space", "tiny", "--schedule", "1.0:1", "--probe-epochs", "0",
                                      *CHEAP_ARGS, "--retrain-epochs", "0", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert "not measured" in result.output and "edgenas train" in result.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_acc"] is None and summary["val_acc"] is None and not (run / "model.pt").exists()
    exported = CliRunner().invoke(app, ["export", str(tmp_path / "m.onnx"), "--run", str(run)])
    assert exported.exit_code != 0 and "edgenas train" in exported.output
    assert not (tmp_path / "m.onnx").exists()
    trained = CliRunner().invoke(app, ["train", str(run), "--epochs", "1", "--json"])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["test_acc"] > 0 and (run / "model.pt").is_file()


@pytest.mark.parametrize(("accuracy", "classes", "images", "warned"), [
    (0.471, 3, 300, False),  # issue 33: "47.1% is at chance level (33.3% for 3 classes)"
    (0.36, 3, 300, True),  # chance + 2 standard errors on 300 images: 38.8%
    (0.471, 3, 30, True),  # on 30 test images 47.1% is within 2 standard errors (17.2 points) of chance
    (0.13, 10, 360, True), (0.14, 10, 360, False),  # 10 classes: chance + 2 standard errors on 360 images: 13.2%
    (0.05, 10, 360, True)])  # below chance warns too
def test_the_chance_warning_is_given_only_where_accuracy_cannot_be_told_from_guessing(accuracy, classes, images,
                                                                                     warned):
    from edgenas.training.train import chance_warning

    warning = chance_warning(accuracy, classes, images, "runs/x", 40)
    assert (warning is not None) == warned
    if warned:
        margin = 200 * (1 / classes * (1 - 1 / classes) / images) ** 0.5
        assert warning.startswith(f"warning: test accuracy {100 * accuracy:.1f}% cannot be told from chance "
                                  f"({100 / classes:.1f}% for {classes} classes, +/-{margin:.1f} points on {images} "
                                  "test images"), warning
        assert "try more (edgenas train runs/x --epochs 80)" in warning  # what to try
