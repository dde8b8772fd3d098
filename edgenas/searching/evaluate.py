"""`evaluate_run(run)` (`edgenas eval`): a finished run's test accuracy recomputed from its retrained weights."""

from __future__ import annotations

from pathlib import Path

from edgenas.runs.folder import Run
from edgenas.runs.settings import SearchSettings, load_data
from edgenas.runs.weights import load_model
from edgenas.searching.context import pick_device
from edgenas.training.train import evaluate


def evaluate_run(run_path: str | Path) -> dict:
    """Test accuracy of a run's retrained weights, recomputed from `model.pt` (loaded safely)."""
    run = Run.open(run_path)
    settings = SearchSettings.of_run(run)
    run.need_retrained()
    model, arch = load_model(run.path)
    device = pick_device(settings)
    data = load_data(settings, arch.resolution).to(device.device)
    accuracy = evaluate(device.prepare(model), data, "test", device)
    return {"test_acc": accuracy, "test_images": data.size("test"), "dataset": data.name, "arch": arch.to_dict()}
