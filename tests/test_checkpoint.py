"""The typed checkpoint: every shape of the dictionary that checkpoint.pt held before the Checkpoint class (as the
search wrote it in the phase loop, in the choice, retraining and retrained, for a baseline, and for a retraining of
`edgenas train`) reads into a Checkpoint and writes back key for key, and merges as the dictionaries did."""

import pytest
import torch

from edgenas.runs.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edgenas.runs.folder import Run
from edgenas.strategies.choice import Candidate

RNG, GENERATOR = torch.get_rng_state(), torch.Generator().manual_seed(3).get_state()
WEIGHTS = {"stem.weight": torch.arange(6.0).reshape(2, 3)}
OPTIMISER = {"state": {0: {"momentum_buffer": torch.ones(2, 3)}}, "param_groups": [{"lr": 0.05, "params": [0]}]}
CANDIDATE = {"index": [0, 2], "layers": ["k3_e3", "skip"], "source": "knapsack", "flops": 250_000,
             "predicted_ms": None, "log_prob": -1.5, "val_acc": None, "chosen": False}
ARCH = {"space": "tiny", "layers": ["k3_e3", "skip"], "num_classes": 10}
SEARCHED = {"class_order": [3, 1, 0, 2], "phase": 5, "epoch": 0, "arch_steps": 12, "torch_rng": RNG,
            "generator": GENERATOR, "history_rows": 7, "images": 3_456, "search_seconds": 8.5, "arch": ARCH,
            "inherited_val_acc": 0.31, "schedule_scale": 0.5, "full_data_epochs": 1.7, "final_probs": [[0.5, 0.5]]}
SHAPES = {
    "in the phase loop": {"class_order": [3, 1, 0, 2], "phase": 3, "epoch": 0, "arch_steps": 4, "supernet": WEIGHTS,
                          "weight_opt": OPTIMISER, "arch_opt": OPTIMISER, "scheduler": {"last_epoch": 9},
                          "torch_rng": RNG, "generator": GENERATOR, "history_rows": 4, "images": 1_234,
                          "search_seconds": 3.25},
    "in the probe (no class order yet, no schedule)": {
        "phase": 0, "epoch": 1, "arch_steps": 0, "supernet": WEIGHTS, "weight_opt": OPTIMISER, "arch_opt": OPTIMISER,
        "torch_rng": RNG, "generator": GENERATOR, "history_rows": 1, "images": 320, "search_seconds": 0.5},
    "in the choice": {"class_order": [3, 1, 0, 2], "phase": 5, "epoch": 0, "arch_steps": 12, "supernet": WEIGHTS,
                      "weight_opt": OPTIMISER, "arch_opt": OPTIMISER, "scheduler": {"last_epoch": 20},
                      "torch_rng": RNG, "generator": GENERATOR, "history_rows": 6, "images": 3_000,
                      "search_seconds": 7.0, "choice": {"found": [CANDIDATE], "floors": [0.0], "notices": []}},
    "retraining": {**SEARCHED, "retrain": {"total": 3, "epoch": 1, "model": WEIGHTS, "optimizer": OPTIMISER,
                                           "scheduler": {"last_epoch": 4}, "seconds": 1.5}},
    "retrained": {**SEARCHED, "retrain": {"done": True, "epochs": 3, "seconds": 4.0, "val_acc": 0.4,
                                          "test_acc": 0.38}},
    "a random network never retrained": {"arch": ARCH, "search_seconds": 0.1, "images": 0, "inherited_val_acc": None,
                                         "torch_rng": RNG, "generator": GENERATOR, "history_rows": 0,
                                         "retrain": {"done": True, "epochs": 0, "seconds": None}},
    "random's choice by training": {"search_seconds": 2.0, "choice": {"found": [CANDIDATE], "floors": [225_000.0],
                                                                      "notices": []},
                                    "torch_rng": RNG, "generator": GENERATOR, "history_rows": 1},
    "a retraining of edgenas train": {"arch": ARCH, "retrain": {"total": 3}, "torch_rng": RNG, "generator": GENERATOR,
                                      "history_rows": 6},
}


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("shape", SHAPES)
def test_a_checkpoint_written_before_reads_and_writes_back_key_for_key(shape, tmp_path):
    old = SHAPES[shape]
    assert _same(Checkpoint.from_dict(old).to_dict(), old)
    run = Run(tmp_path)
    run.save_checkpoint(old)  # as the code before wrote it
    loaded = load_checkpoint(run)
    save_checkpoint(run, loaded)
    assert _same(run.load_checkpoint(), old)


def test_the_checkpoint_reads_as_typed_fields():
    loop = Checkpoint.from_dict(SHAPES["in the phase loop"])
    assert not loop.searched and loop.loop.phase == 3 and loop.loop.arch_steps == 4
    assert loop.strategy == {"class_order": [3, 1, 0, 2]} and loop.retraining.planned(10) == 10
    choosing = Checkpoint.from_dict(SHAPES["in the choice"])
    assert choosing.choice.found == [Candidate(**CANDIDATE)]
    scored = choosing.choice.candidates()
    scored[0].chosen, scored[0].val_acc = True, 0.5  # as choice.choose marks them: the saved ones stay as found
    assert choosing.choice.to_dict()["found"] == [CANDIDATE]
    retraining = Checkpoint.from_dict(SHAPES["retraining"])
    assert retraining.searched and retraining.retraining.epoch == 1 and retraining.retraining.planned(10) == 3
    never = Checkpoint.from_dict(SHAPES["a random network never retrained"])
    assert never.retraining.done and never.retraining.epochs == 0 and never.loop is None


def test_a_retraining_of_edgenas_train_merges_over_the_search_as_the_dictionaries_did():
    base, work = SHAPES["retrained"], SHAPES["a retraining of edgenas train"]
    merged = Checkpoint.from_dict(base).merged(Checkpoint.from_dict(work))
    assert _same(merged.to_dict(), {**base, **work})
    assert merged.inherited_val_acc == 0.31  # the search's, kept: the retraining's own holds the architecture alone
