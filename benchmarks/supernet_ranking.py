"""Benchmark: does a finished search's supernet rank architectures as retraining does?

Ground truth: the architectures `benchmarks/search_efficiency.py` retrained (its results file, rows at the run's
width). Each is extracted from the run's final supernet (`supernet.pt`) with inherited weights, batch norm
recalibrated as `--choice eval` does it, and evaluated on the search-validation split and on the test split.
Prints each architecture's figures and Kendall's tau of each against the retrained test accuracy.

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished search run (with supernet.pt)")
    parser.add_argument("--truth", type=Path, default=Path("benchmarks/results/search_efficiency.json"))
    args = parser.parse_args()

    from edgenas.calibration import kendall_tau
    from edgenas.runs import Run, load_weights
    from edgenas.settings import SearchSettings, load_data
    from edgenas.space import get_space
    from edgenas.strategies.choice import inherited
    from edgenas.supernet import Supernet
    from edgenas.train import Device, evaluate

    settings = SearchSettings.of_run(Run.open(args.run))
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
        print(json.dumps(rows[-1]), flush=True)
    truth = [r["retrained_test_acc"] for r in rows]
    for key in ("inherited_val_acc", "inherited_test_acc"):
        print(f"Kendall tau, {key} against retrained test accuracy, {len(rows)} architectures: "
              f"{kendall_tau([r[key] for r in rows], truth):.2f}")


if __name__ == "__main__":
    main()
