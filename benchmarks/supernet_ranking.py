"""Benchmark: does a finished search's supernet rank architectures as retraining does?

Ground truth: the architectures `benchmarks/search_efficiency.py` retrained (its results file, rows at the run's
width). Each is extracted from the run's final supernet (`supernet.pt`) with inherited weights, batch norm
recalibrated as `--choice eval` does it, and evaluated on the search-validation split and on the test split.
Prints each architecture's figures and Kendall's tau of each against the retrained test accuracy.

Two cheaper proxies of retraining can be measured beside it, each scored on the search-validation split:
`--finetune-epochs N` trains the inherited network on its own for N epochs (SGD, cosine from the search's weight
learning rate) and `--scratch-epochs N` trains the architecture from its initial weights for N epochs with the
retraining's settings: does a short standalone training rank architectures better than inherited weights do?

Run by hand, on a search of the CIFAR-10 quick profile (no retraining needed), for example:
  .venv/bin/edgenas search --data ../shared/data/cifar10 --space mobile-small --resolution 32 --width-mult 0.5 \\
      --flops 7074713 --train-per-class 500 --epochs-scale 0.25 --retrain-epochs 0 --out runs/rank-s0
  .venv/bin/python benchmarks/supernet_ranking.py runs/rank-s0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished search run (with supernet.pt)")
    parser.add_argument("--truth", type=Path, default=Path("benchmarks/results/search_efficiency.json"))
    parser.add_argument("--finetune-epochs", type=int, default=0, help="also: inherited weights fine-tuned N epochs")
    parser.add_argument("--scratch-epochs", type=int, default=0, help="also: trained from scratch N epochs")
    args = parser.parse_args()

    from edgenas.cost.calibration import kendall_tau
    from edgenas.runs.folder import Run, load_weights
    from edgenas.runs.settings import SearchSettings, load_data
    from edgenas.space.arch import make_arch
    from edgenas.space.spec import get_space
    from edgenas.space.supernet import Supernet
    from edgenas.strategies.choice import inherited, train_from_scratch
    from edgenas.training.device import Device
    from edgenas.training.train import TrainSettings, evaluate, make_optimizer, train_epoch

    settings = SearchSettings.of_run(Run.open(args.run))

    def recipe(epochs: int, lr: float) -> TrainSettings:
        return TrainSettings(epochs, settings.batch_size, lr, 0.9, settings.retrain_weight_decay,
                             settings.label_smoothing)
    space = get_space(settings.space, settings.resolution, settings.width_mult)
    device = Device.pick("cpu")
    data = load_data(settings, settings.resolution)
    net = Supernet(space, data.num_classes)
    net.load_state_dict(load_weights(args.run / "supernet.pt", str(args.run / "supernet.pt")))
    seen, rows = set(), []
    for row in json.loads(args.truth.read_text())["rows"]:
        if row["width_mult"] != settings.width_mult or tuple(row["layers"]) in seen or row["test_acc"] is None:
            continue
        seen.add(tuple(row["layers"]))
        model = inherited(net, row["layers"], data, settings.batch_size, 0)
        rows.append({"arm": row["arm"], "seed": row["seed"], "retrained_test_acc": row["test_acc"],
                     "inherited_val_acc": evaluate(model, data, "val", device),
                     "inherited_test_acc": evaluate(model, data, "test", device)})
        trained = {}
        if args.finetune_epochs:
            model = device.prepare(model)
            train = recipe(args.finetune_epochs, settings.lr)
            optimizer, scheduler = make_optimizer(model, train, args.finetune_epochs * max(
                1, data.size("train") // settings.batch_size))
            generator = torch.Generator().manual_seed(settings.seed + 3)
            with torch.random.fork_rng(devices=[]):  # dropout draws from the global RNG: seed it, as retraining does
                torch.manual_seed(settings.seed + 1)
                for _ in range(args.finetune_epochs):
                    train_epoch(model, data, optimizer, scheduler, train, generator, device, device.scaler())
            trained["finetuned"] = model
        if args.scratch_epochs:  # exactly what --choice train measures
            trained["scratch"] = train_from_scratch(make_arch(space, row["layers"], data.num_classes), data,
                                                    recipe(args.scratch_epochs, settings.retrain_lr), device,
                                                    settings.seed)
        for key, model in trained.items():
            rows[-1][f"{key}_val_acc"] = evaluate(model, data, "val", device)
            rows[-1][f"{key}_test_acc"] = evaluate(model, data, "test", device)
        print(json.dumps(rows[-1]), flush=True)
    truth = [r["retrained_test_acc"] for r in rows]
    for key in [k for k in rows[0] if k.endswith("_acc") and k != "retrained_test_acc"]:
        print(f"Kendall tau, {key} against retrained test accuracy, {len(rows)} architectures: "
              f"{kendall_tau([r[key] for r in rows], truth):.2f}")


if __name__ == "__main__":
    main()
