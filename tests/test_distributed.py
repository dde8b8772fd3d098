"""Several processes, one search: a real 2-process Gloo `torchrun` launch on the CPU, and the sharded sampler."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import CHEAP_ARGS

from edgenas.data.batches import batches
from edgenas.data.dataset import load_dataset


def test_shards_of_every_global_batch_are_what_one_process_would_see():
    # Two ranks with the shared seed each take half of every global batch; together they must see the images
    # (augmented alike) and labels of one process running the global batch size with the same seed.
    data = load_dataset(None, 16)
    whole = list(batches(data, "train", 64, generator=torch.Generator().manual_seed(3), train=True, drop_last=True))
    parts = [list(batches(data, "train", 32, generator=torch.Generator().manual_seed(3), train=True,
                          drop_last=True, shard=(rank, 2))) for rank in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == len(whole) > 3
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *parts, strict=True):
        assert torch.equal(torch.cat([y0, y1]), y)
        assert torch.equal(torch.cat([x0, x1]), x)


def test_fewer_images_than_a_global_batch_give_one_smaller_step_on_every_rank():
    data = load_dataset(None, 16)
    sizes = [[len(y) for _, y in batches(data, "val", 512, generator=torch.Generator().manual_seed(0), train=True,
                                         drop_last=True, shard=(rank, 2))] for rank in (0, 1)]
    assert sizes[0] == sizes[1] == [data.size("val") // 2]


def test_a_sharded_split_without_drop_last_is_refused():
    data = load_dataset(None, 16)
    with pytest.raises(ValueError, match="drop_last"):
        next(batches(data, "train", 32, shard=(0, 2)))


def _profile_here(folder, device: str) -> None:
    """A real (quick) tiny table written where `edgenas profile DEVICE` writes it: FOLDER/latency_tables/."""
    from typer.testing import CliRunner

    from edgenas.cli.app import app

    previous = os.getcwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(app, ["profile", device, "--space", "tiny", "--validate", "0", "--warmup", "1",
                                          "--repeats", "3", "--passes", "1", "--quiet"])
    finally:
        os.chdir(previous)
    assert result.exit_code == 0, result.output
    assert (folder / "latency_tables" / f"{device}.json").is_file()


@pytest.mark.slow
def test_two_gloo_ranks_run_one_search(tmp_path):
    # `edgenas search --nproc 2` relaunches itself under torchrun; each rank reports what it ended with. It runs
    # from a folder holding the ./latency_tables/ that `edgenas profile` writes, with a table from there: that
    # folder once shadowed the shipped tables' package (`python -m` and torchrun put the working folder first on
    # sys.path) and the search ended in "module 'latency_tables' has no attribute 'FOLDER'".
    _profile_here(tmp_path, "here")
    listed = subprocess.run([sys.executable, "-m", "edgenas", "tables", "--json"], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr[-3000:]
    devices = {t["device"] for t in json.loads(listed.stdout)}
    assert {"here", "epyc-zen5-2core-ort-t1-mobile224", "epyc-zen5-2core-ort-t1-mobilesmall32"} <= devices
    probe = ("import sys; from edgenas.cost.latency import load_table; load_table('here'); "
             "load_table('epyc-zen5-2core-ort-t1-mobile224'); sys.exit(3 if 'latency_tables' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", probe], cwd=tmp_path).returncode == 0  # no top-level name used
    out = tmp_path / "run"
    command = [sys.executable, "-m", "edgenas", "search", "--space", "tiny", "--schedule", "0.2:1,0.5:1,1.0:1",
               "--retrain-epochs", "1", "--batch-size", "64", "--flops", "250K", "--device", "cpu", "--nproc", "2",
               "--table", "here", *CHEAP_ARGS, "--out", str(out), "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=280, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout[result.stdout.index("{"):])  # printed once, by rank 0
    assert summary["latency_table"].endswith("latency_tables/here.json") and summary["predicted_latency_ms"] > 0
    assert result.stdout.count('"accuracy_method"') == 1
    ranks = json.loads((out / "distributed.json").read_text())
    assert ranks["world_size"] == 2 and len(ranks["ranks"]) == 2
    first, second = ranks["ranks"]
    assert first["alpha_and_masks"] == second["alpha_and_masks"]
    assert first["active_choices"] == second["active_choices"]
    assert first["layers"] == second["layers"] == summary["arch"]["layers"]
    assert json.loads((out / "arch.json").read_text())["layers"] == first["layers"]
    assert json.loads((out / "config.json").read_text())["resolved"]["world_size"] == 2
    assert summary["within_flops_budget"] and summary["test_acc"] is not None
    # Both ranks' images are counted: the first stage's steps see 2 x 64 images each.
    stages = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    first_stage = next(row for row in stages if row.get("phase", "").startswith("stage") and "epoch" in row)
    assert first_stage["images"] == 2 * 64 * first_stage["steps"]
    # Retraining alone, on two ranks: one more model.pt, written once.
    again = subprocess.run([sys.executable, "-m", "edgenas", "train", str(out), "--epochs", "1", "--nproc", "2",
                            "--json"], capture_output=True, text=True, timeout=280, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    retrained = json.loads(again.stdout[again.stdout.index("{"):])
    assert retrained["arch"] == summary["arch"] and retrained["test_acc"] is not None
