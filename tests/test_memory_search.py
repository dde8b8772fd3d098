"""A search under model size and peak memory budgets, through the command line, on the tiny space and the embedded
digits: both bind, the derived network is within both (counted on the built network) and fills the additive one;
and budgets that each network meets alone but none together, refused."""

import json

import pytest
import torch
from conftest import CHEAP_ARGS
from rich.console import Console
from typer.testing import CliRunner

from edgenas.cli import render
from edgenas.cli.app import app
from edgenas.cost.cost_model import CostModel
from edgenas.cost.flops import cost_table
from edgenas.cost.memory_table import memory_of_network, memory_table
from edgenas.cost.presets import preset
from edgenas.errors import EdgeNASError
from edgenas.runs.summary import RunSummary
from edgenas.searching.budgets import resolve_budgets
from edgenas.space.arch import from_dict
from edgenas.space.network import build_model
from edgenas.space.spec import get_space

# tiny, 10 classes, INT8: weights 8.2 to 56.1 KB, activations 3.9 to 7.9 KB at once. 5KB caps two candidates
# (k3_e6_se in the first and the last layer); 30KB of weights is below the 35.8KB the cap leaves.
BUDGETS = ["--model-size", "30KB", "--peak-memory", "5KB", "--deploy-precision", "int8"]


@pytest.fixture(scope="module")
def memory_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "memory"
    result = CliRunner().invoke(app, ["search", "--space", "tiny", "--schedule", "0.2:1,0.5:1,1.0:1",
                                      "--retrain-epochs", "1", "--batch-size", "128", *CHEAP_ARGS, *BUDGETS,
                                      "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_both_budgets_bind_and_are_recorded(memory_run):
    out, _ = memory_run
    config = json.loads((out / "config.json").read_text())
    assert {k: config["settings"][k] for k in ("model_size", "peak_memory", "deploy_precision")} == {
        "model_size": 30_000, "peak_memory": 5_000, "deploy_precision": "int8"}
    budgets = config["resolved"]["budgets"]
    assert budgets["model_size_binds"] and budgets["peak_memory_binds"] and not budgets["flops_binds"]
    cap = json.loads((out / "peak_cap.json").read_text())
    assert cap["removed"] == [["k3_e6_se"], [], [], ["k3_e6_se"]]


def test_the_derived_network_is_within_both_and_fills_the_model_size_budget(memory_run):
    out, summary = memory_run
    arch = from_dict(summary["arch"])
    counted = memory_of_network(build_model(arch), arch, "int8")
    assert counted["model_size_bytes"] == summary["model_size_bytes"]
    assert counted["peak_memory_bytes"] == summary["peak_memory_bytes"]
    assert 0.95 * 30_000 <= summary["model_size_bytes"] <= 30_000 and summary["within_model_size_budget"]
    assert summary["peak_memory_bytes"] <= 5_000 and summary["within_peak_memory_budget"]
    table = memory_table(get_space("tiny"))
    assert (table.model_size(arch, "int8"), table.peak_memory(arch, "int8")) == (
        summary["model_size_bytes"], summary["peak_memory_bytes"])
    for row in (json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()):
        if "epoch" in row and row.get("phase", "").startswith("stage"):
            assert row["expected_model_size_bytes"] > 0  # the cost term saw the model size


def test_the_summary_shows_them_with_units_and_how_obtained(memory_run, monkeypatch):
    out, summary = memory_run
    console = Console(record=True, width=250)
    monkeypatch.setattr(render, "Console", lambda *a, **k: console)
    render.print_summary(out, RunSummary.from_dict(summary))
    shown = console.export_text()
    assert f"{summary['model_size_bytes']:,} bytes (budget 30.0KB: met)" in shown
    assert f"{summary['peak_memory_bytes']:,} bytes (budget 5.0KB: met)" in shown
    assert "INT8 weights after batch norm folding, counted on the built network" in shown


def test_budgets_each_met_alone_but_not_together_are_refused_naming_what_the_others_leave():
    # A cost model whose model sizes run against the FLOPs (the shipped spaces' move together, so none conflicts):
    # the fewest FLOPs come with the most bytes, and a budget on each cannot be met at once.
    space = get_space("tiny")
    flops = cost_table(space)
    cost = CostModel.build(space, 10, flops).with_memory(memory_table(space), "int8")
    cost.size = torch.where(cost.flops > 0, cost.flops.amax(1, keepdim=True) - cost.flops + 1000, 0.0)
    cost.size[[0, 2], :] = cost.flops.amax(1, keepdim=True)[[0, 2]] - cost.flops[[0, 2]] + 1000  # no skip there
    low_size, _ = cost.size_range()
    low_flops = flops.flops(preset("smallest", space, 10))
    resolve_budgets(low_flops * 1.01, None, space, 10, flops, cost, None, print, size=None)  # each alone is met
    resolve_budgets(None, None, space, 10, flops, cost, None, print, size=low_size * 1.01)
    with pytest.raises(EdgeNASError, match=r"cannot be met together .* within the other budgets the least model size "
                                           r"is \d+\.\dKB"):
        resolve_budgets(low_flops * 1.01, None, space, 10, flops, cost, None, print, size=low_size * 1.01)


def test_export_int8_reports_file_sizes_and_peak_memory_beside_the_count_and_budgets(memory_run, tmp_path):
    out, summary = memory_run
    model = tmp_path / "model.onnx"
    result = CliRunner().invoke(app, ["export", str(model), "--run", str(out), "--int8", "--max-drop", "100"],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    memory = json.loads((tmp_path / "model.report.json").read_text())["memory"]
    assert memory["budgets"] == {"precision": "int8", "model_size_bytes": 30_000, "peak_memory_bytes": 5_000}
    assert memory["within_budgets"] == {"model_size": True, "peak_memory": True}
    fp32, int8 = memory["files"]["fp32"], memory["files"]["int8"]
    assert int8["predicted_model_size_bytes"] == summary["model_size_bytes"]
    assert int8["predicted_peak_memory_bytes"] == summary["peak_memory_bytes"]
    assert fp32["predicted_peak_memory_bytes"] == 4 * int8["predicted_peak_memory_bytes"]
    for row, path in ((fp32, model), (int8, tmp_path / "model.int8.onnx")):
        # the weights in the ONNX file are exactly what edgenas counts; the rest of the file is its structure
        assert row["file_weight_bytes"] == row["predicted_model_size_bytes"] < row["file_bytes"]
        assert row["file_bytes"] == path.stat().st_size
    shown = f"{int8['predicted_model_size_bytes'] / 1000:.1f}KB counted; the file {int8['file_bytes'] / 1000:.1f}KB"
    assert f"INT8 model size │ {shown}" in result.output and "; INT8 budget 30.0KB: met" in result.output
    assert "INT8 5.0KB counted; INT8 budget 5.0KB: met" in result.output
