"""Benchmark: how much does one architecture's retrained accuracy move with the order of its training batches alone?

The CIFAR-10 quick profile (benchmarks/search_efficiency.py) judges arms by one 30-epoch retraining per seed. This
retrains given architectures of its results file several times with the same initial weights and recipe, each
with another data order and augmentation (the batch generator's seed), and prints each test accuracy and their
spread: the noise floor of a one-retraining comparison.

Each retraining's row is written to `--out` as it comes (a stopped run keeps its rows; a row of the same network
and order is replaced). `--summary` judges the arms on those rows: per seed the mean over every retraining of its
network (the recorded one and the reruns), then the mean over seeds: the arm's figure with most of one
retraining's noise averaged away.

Run by hand (about 3-5 minutes a retraining on 2 cores):
  .venv/bin/python benchmarks/retrain_noise.py --rows "random-matched:0" "danas:0" --orders 0 1 2
  .venv/bin/python benchmarks/retrain_noise.py --summary
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", metavar="ARM:SEED", help="rows of the results file")
    parser.add_argument("--orders", type=int, nargs="+", default=[0, 1, 2], help="batch generator seeds")
    parser.add_argument("--truth", type=Path, default=Path("benchmarks/results/search_efficiency.json"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/retrain_noise.json"))
    parser.add_argument("--summary", action="store_true", help="print the arms' figures from --out and --truth")
    parser.add_argument("--data", default="../shared/data/cifar10")
    args = parser.parse_args()
    if args.summary:
        print(summary(json.loads(args.truth.read_text()), json.loads(args.out.read_text())["rows"]))
        return
    if not args.rows:
        parser.error("--rows is needed (or --summary)")

    from edgenas.runs.settings import SearchSettings, load_data
    from edgenas.space.arch import make_arch
    from edgenas.space.spec import get_space
    from edgenas.strategies.choice import train_from_scratch
    from edgenas.training.device import Device
    from edgenas.training.train import TrainSettings, evaluate

    results = json.loads(args.truth.read_text())
    profile = results["settings"]
    settings = SearchSettings(data=args.data, space="mobile-small", resolution=32,
                              train_per_class=profile["train_per_class"], test_per_class=profile["test_per_class"])
    data = load_data(settings, 32)
    device = Device.pick("cpu")
    epochs = profile["retrain_epochs"]
    recipe = TrainSettings(epochs, settings.batch_size, settings.retrain_lr, 0.9, settings.retrain_weight_decay,
                           settings.label_smoothing)
    out = []
    for wanted in args.rows:
        arm, _, seed = wanted.rpartition(":")
        row = next(r for r in results["rows"] if r["arm"] == arm and r["seed"] == int(seed))
        space = get_space("mobile-small", 32, row["width_mult"])
        accuracies = []
        for order in args.orders:
            t0 = time.perf_counter()
            # The initial weights the search's retraining drew (seed + 1), the batches from `order`.
            model = train_from_scratch(make_arch(space, row["layers"], data.num_classes), data, recipe, device,
                                       row["seed"], batch_seed=order)
            accuracies.append(evaluate(model, data, "test", device))
            out.append({"arm": arm, "seed": row["seed"], "recorded_test_acc": row["test_acc"], "order": order,
                        "test_acc": accuracies[-1], "seconds": time.perf_counter() - t0})
            print(json.dumps(out[-1]), flush=True)
            record(args.out, out[-1])
        print(f"{wanted}: recorded {100 * row['test_acc']:.2f}%, with other batch orders "
              f"{', '.join(f'{100 * a:.2f}' for a in accuracies)} (mean {100 * statistics.mean(accuracies):.2f}, "
              f"sd {100 * statistics.stdev(accuracies) if len(accuracies) > 1 else 0:.2f} points)", flush=True)


def record(path: Path, row: dict) -> None:
    """Add `row` to the results file `path` (replacing one of the same arm, seed and order), atomically."""
    results = json.loads(path.read_text()) if path.is_file() else {"rows": []}
    same = lambda r: (r["arm"], r["seed"], r["order"]) == (row["arm"], row["seed"], row["order"])  # noqa: E731
    results["rows"] = [r for r in results["rows"] if not same(r)] + [row]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(path)


def summary(truth: dict, reruns: list[dict]) -> str:
    """Markdown: per arm with reruns, each seed's retrainings (recorded first), their mean, and the arm's mean over
    seeds with its standard error (sd over seeds / sqrt(seeds)); and MobileNetV2, whose seeds retrain one network."""
    lines = ["| arm | seed: retrainings (recorded first) -> mean | arm: mean of seed means +/- s.e. | single "
             "retrainings: mean |", "|---|---|---|---|"]
    arms = list(dict.fromkeys([r["arm"] for r in reruns] + ["mobilenetv2"]))
    for arm in arms:
        cells, means, singles = [], [], []
        for row in sorted((r for r in truth["rows"] if r["arm"] == arm), key=lambda r: r["seed"]):
            accs = [row["test_acc"]] + [r["test_acc"] for r in reruns if r["arm"] == arm and r["seed"] == row["seed"]]
            means.append(statistics.mean(accs))
            singles.append(row["test_acc"])
            cells.append(f"{row['seed']}: {' '.join(f'{100 * a:.2f}' for a in accs)} -> {100 * means[-1]:.2f}")
        se = statistics.stdev(means) / len(means) ** 0.5 if len(means) > 1 else float("nan")
        lines.append(f"| {arm} | {'; '.join(cells)} | {100 * statistics.mean(means):.2f} +/- {100 * se:.2f} | "
                     f"{100 * statistics.mean(singles):.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
