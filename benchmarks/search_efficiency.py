"""Benchmark: DA-NAS against its baselines on real data (CIFAR-10), side by side, same budget, recipe and seeds.

Arms: `danas` (the default schedule, scaled); `full` (all classes and candidates for as many epochs as the DA-NAS
schedule in total: the ProxylessNAS-like ablation); `full-iso` (all classes and candidates for as many image-steps
as `danas` processed with the same seed: the same compute); `random` (a random architecture within the budget);
`random-matched` (a random architecture within [0.95 B, B]: as much of the budget as the search arms use);
`mobilenetv2` (width-scaled to the budget). For each arm and seed: search wall time, image-steps, the derived
architecture, FLOPs, predicted latency and retrained test accuracy. Writes benchmarks/results/search_efficiency.json,
two PNG plots under --plots (docs/), and prints the markdown table for docs/BENCHMARKS.md.

Profiles: `quick` (for this 2-core CPU, a seed in about 12 minutes for danas, whose default choice trains 6
candidates for 3 epochs each, and 4-5 for each baseline, about 45 with every arm: a class-balanced subset of 500
training images per class, the whole 10,000-image test split, width 0.5, schedule epochs x0.25, 30 retraining
epochs), `full` (for a GPU: all images, width 1.0, the schedule at scale 1,
50 retraining epochs), `smoke` (minutes: checks the pipeline, numbers mean nothing).

`--set NAME=VALUE` changes a search setting of the search arms and of random-matched (an ablation: for instance
`--arms danas random-matched --set choice=train`, the short-training choice on the supernet's candidates and on
random ones) and `--tag` names it: their rows are `ARM (TAG)`, merged beside the others.

Run by hand:  make bench   or   .venv/bin/python benchmarks/search_efficiency.py --profile quick [--seeds 0 1 2]
              [--arms danas --set cost_strength=0 --tag cost-0]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import parse_set

PROFILES = {
    "quick": {"width_mult": 0.5, "train_per_class": 500, "test_per_class": None, "epochs_scale": 0.25,
              "retrain_epochs": 30},
    "full": {"width_mult": 1.0, "train_per_class": None, "test_per_class": None, "epochs_scale": 1.0,
             "retrain_epochs": 50},
    "smoke": {"width_mult": 0.35, "train_per_class": 30, "test_per_class": 10, "epochs_scale": 0.05,
              "retrain_epochs": 1},
}
ARMS = ("danas", "full", "full-iso", "random", "random-matched", "mobilenetv2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=PROFILES, default="quick")
    parser.add_argument("--data", default="../shared/data/cifar10")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget-share", type=float, default=0.4, help="FLOPs budget as a share of the largest")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/search_efficiency"))
    parser.add_argument("--plots", type=Path, default=Path("docs"), help="folder of the two PNG plots")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS),
                        help="arms to run (full-iso needs danas in the same invocation)")
    parser.add_argument("--retrain-epochs", type=int, help="override the profile's retraining epochs")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="search settings to change for danas, full, full-iso and random-matched (an "
                             "ablation; needs --tag)")
    parser.add_argument("--tag", default=None, help="names the --set ablation: its rows are `ARM (TAG)`")
    parser.add_argument("--retrain-existing", type=int, metavar="EPOCHS",
                        help="no search: retrain the architectures of the recorded rows (--arms, --seeds) for EPOCHS "
                             "epochs on copies of their runs, and record their accuracy beside the original")
    args = parser.parse_args()
    if args.retrain_existing is not None:
        retrain_existing(args)
        results = json.loads((args.out.parent / "search_efficiency.json").read_text())
        fill_latency(results, args.out)
        (args.out.parent / "search_efficiency.json").write_text(json.dumps(results, indent=2) + "\n")
        plots(results, args.plots)
        print(markdown(results))
        return
    changes = parse_set(args.set)
    if bool(changes) != bool(args.tag):
        raise SystemExit("--set and --tag go together: an ablation's rows must not pass for the defaults")
    if "full-iso" in args.arms and "danas" not in args.arms:
        raise SystemExit("--arms: full-iso matches danas's image-steps, so it needs danas in the same run")
    if not Path(args.data).is_dir():
        raise SystemExit(f"no dataset at {args.data} (the CIFAR-10 ImageFolder tree of ../shared/data)")

    from edgenas.cost.flops import cost_table
    from edgenas.cost.presets import preset
    from edgenas.profiling.profiler import profile
    from edgenas.runs.settings import SearchSettings
    from edgenas.searching.run import search
    from edgenas.space.spec import get_space

    settings = dict(PROFILES[args.profile])
    if args.retrain_epochs is not None:
        settings["retrain_epochs"] = args.retrain_epochs
    space = get_space("mobile-small", 32, settings["width_mult"])
    budget = int(args.budget_share * cost_table(space).flops(preset("largest", space, 10)))
    args.out.mkdir(parents=True, exist_ok=True)
    table_path = args.out / f"table-mobile-small-32-w{settings['width_mult']}.json"
    if not table_path.is_file():  # latency predicted from a table measured here at the benchmark's width
        profile(f"bench-w{settings['width_mult']}", space, validate=10, out=table_path, progress=False)
    common = {"data": args.data, "space": "mobile-small", "resolution": 32, "flops": budget, "table": str(table_path),
              "device": args.device, **{k: v for k, v in settings.items()}}
    rows = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for seed in args.seeds:
        danas_images = None
        for arm in [a for a in ARMS if a in args.arms]:
            extra = {"strategy": arm}
            if arm == "random":  # anywhere within the budget; the search arms keep the default floor (0.95)
                extra["budget_floor"] = 0.0
            if arm == "random-matched":
                extra = {"strategy": "random", "budget_floor": 0.95}
            if arm == "full-iso":
                # As many image-steps as danas: epochs of all classes = danas image-steps / images per epoch.
                per_epoch = next(r for r in reversed(rows) if r["arm"].split(" (")[0] == "full")[
                    "images_per_full_epoch"] if "full" in args.arms else None
                if per_epoch is None:
                    raise SystemExit("--arms: full-iso needs full in the same run (images per epoch)")
                extra = {"strategy": "full", "epochs": max(1, round(danas_images / per_epoch))}
            label = arm
            if changes and arm in ("danas", "full", "full-iso", "random-matched"):
                extra.update(changes)
                label = f"{arm} ({args.tag})"
            run_dir = args.out / f"{stamp}-{label.replace(' (', '-').rstrip(')')}-seed{seed}"
            result = search(SearchSettings(**{**common, **extra}, seed=seed), out=run_dir, progress=False,
                            log=lambda *a: None)
            s = result.summary
            history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
            full_rows = [h for h in history if h.get("phase") == "full" and "epoch" in h]
            first = full_rows[0] if full_rows else None  # (a row before arch_images: 64 per architecture step)
            images_per_full_epoch = (first["images"] + first.get("arch_images", first["arch_steps"] * 64)
                                     if first else None)
            if arm == "danas":
                danas_images = s["search_images"]
            rows.append({"arm": label, "seed": seed, "settings_changed": changes if label != arm else {},
                         "run": str(run_dir), "search_seconds": s["search_seconds"],
                         "image_steps": s["search_images"], "layers": s["arch"]["layers"],
                         "width_mult": s["arch"]["width_mult"], "flops": s["flops"],
                         "predicted_latency_ms": s["predicted_latency_ms"], "test_acc": s["test_acc"],
                         "retrain_seconds": s["retrain_seconds"], "images_per_full_epoch": images_per_full_epoch})
            print(json.dumps(rows[-1]), flush=True)
            results = save(args, common, budget, rows)  # after every row: a stopped benchmark keeps what it measured
    results = save(args, common, budget, rows)
    fill_latency(results, args.out)
    (args.out.parent / "search_efficiency.json").write_text(json.dumps(results, indent=2) + "\n")
    plots(results, args.plots)
    print(markdown(results))


def save(args, common: dict, budget: int, rows: list[dict]) -> dict:
    """Merge this run's rows into the results file (replacing earlier rows of the same arm and seed) and write it."""
    import torch

    path = args.out.parent / "search_efficiency.json"
    results = {"profile": args.profile, "settings": common, "budget_flops": budget, "seeds": args.seeds,
               "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "python": platform.python_version(),
               "rows": merge_rows(path, common, rows)}
    results["seeds"] = sorted({r["seed"] for r in results["rows"]})
    path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def fill_latency(results: dict, folder: Path) -> None:
    """Rows at another width (the width-scaled MobileNetV2) get their latency from a table profiled at that width."""
    from edgenas.cost.latency import load_table
    from edgenas.profiling.profiler import profile
    from edgenas.space.arch import make_arch
    from edgenas.space.spec import get_space

    for row in results["rows"]:
        if row["predicted_latency_ms"] is not None:
            continue
        space = get_space("mobile-small", 32, row["width_mult"])
        path = folder / f"table-mobile-small-32-w{row['width_mult']}.json"
        if not path.is_file():
            profile(f"bench-w{row['width_mult']}", space, validate=10, out=path, progress=False)
        row["predicted_latency_ms"] = load_table(str(path)).predict(make_arch(space, row["layers"], 10))
        row["latency_table"] = str(path)


def retrain_existing(args) -> None:
    """Does the arms' ranking survive a longer retraining? The same architectures, same recipe, more epochs."""
    import shutil

    from edgenas.searching.retrain import retrain

    path = args.out.parent / "search_efficiency.json"
    results = json.loads(path.read_text())
    epochs = args.retrain_existing
    key = f"test_acc_retrain{epochs}"
    for row in results["rows"]:
        if row["arm"] not in args.arms or row["seed"] not in args.seeds or key in row:
            continue
        copy = args.out / f"retrain{epochs}" / Path(row["run"]).name
        if copy.exists():
            shutil.rmtree(copy)
        shutil.copytree(row["run"], copy)
        start = time.perf_counter()
        summary = retrain(copy, epochs=epochs, progress=False, log=lambda *a: None).summary
        row[key], row[f"retrain{epochs}_seconds"] = summary["test_acc"], time.perf_counter() - start
        print(json.dumps({"arm": row["arm"], "seed": row["seed"], "epochs": epochs, "test_acc": row[key],
                          "test_acc_short": row["test_acc"]}), flush=True)
        path.write_text(json.dumps(results, indent=2) + "\n")  # after every arm: a stopped run keeps its rows


def merge_rows(path: Path, settings: dict, rows: list[dict]) -> list[dict]:
    """Earlier rows of the same settings (other arms or seeds run separately), replaced by this run's (arm, seed)."""
    if not path.is_file():
        return rows
    earlier = json.loads(path.read_text())
    same = {k: v for k, v in earlier["settings"].items() if k != "table"} == \
        {k: v for k, v in settings.items() if k != "table"}
    if not same:
        return rows
    mine = {(r["arm"], r["seed"]) for r in rows}
    return [r for r in earlier["rows"] if (r["arm"], r["seed"]) not in mine] + rows


def _labels(results: dict) -> list[str]:
    """The arms in the results, in ARMS order, each followed by its ablations (`ARM (TAG)`)."""
    labels = {r["arm"] for r in results["rows"]}
    return sorted(labels, key=lambda a: (ARMS.index(a.split(" (")[0]), a))


def _mean_std(values: list[float]) -> tuple[float, float]:
    import statistics

    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def markdown(results: dict) -> str:
    longer = sorted({k for r in results["rows"] for k in r if k.startswith("test_acc_retrain")},
                    key=lambda k: int(k.removeprefix("test_acc_retrain")))
    epochs = results["settings"]["retrain_epochs"]
    lines = ["| arm | seeds | search time (s) | image-steps | FLOPs | predicted latency | test accuracy, "
             f"{epochs} retraining epochs (mean +/- sd) |" + "".join(
                 f" same architectures, {k.removeprefix('test_acc_retrain')} epochs |" for k in longer),
             "|---|---|---|---|---|---|---|" + "---|" * len(longer)]
    for arm in _labels(results):
        rows = [r for r in results["rows"] if r["arm"] == arm]
        t, _ = _mean_std([r["search_seconds"] for r in rows])
        acc, sd = _mean_std([100 * r["test_acc"] for r in rows])
        ms = [r["predicted_latency_ms"] for r in rows if r["predicted_latency_ms"] is not None]
        latency = f"{_mean_std(ms)[0]:.2f} ms" if ms else "n/a (width without a table)"
        extra = ""
        for k in longer:
            values = [100 * r[k] for r in rows if k in r]
            extra += f" {_mean_std(values)[0]:.2f} +/- {_mean_std(values)[1]:.2f} ({len(values)}) |" if values else \
                " - |"
        lines.append(f"| {arm} | {len(rows)} | {t:.0f} | {_mean_std([r['image_steps'] for r in rows])[0]:,.0f} | "
                     f"{_mean_std([r['flops'] for r in rows])[0] / 1e6:.2f}M | {latency} | {acc:.2f} +/- {sd:.2f} |"
                     + extra)
    return "\n".join(lines)


def plots(results: dict, docs: Path) -> None:
    """Accuracy against search time per arm; candidate survival per layer across stages for danas: both into
    folder `docs`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(7, 4.5))
    longer = sorted({k for r in results["rows"] for k in r if k.startswith("test_acc_retrain")})
    for index, arm in enumerate(_labels(results)):
        rows = [r for r in results["rows"] if r["arm"] == arm]
        colour = f"C{index}"
        axes.scatter([r["search_seconds"] for r in rows], [100 * r["test_acc"] for r in rows], color=colour,
                     label=f"{arm}, {results['settings']['retrain_epochs']} retraining epochs")
        for key in longer:
            done = [r for r in rows if key in r]
            axes.scatter([r["search_seconds"] for r in done], [100 * r[key] for r in done], color=colour,
                         marker="^", label=f"{arm}, {key.removeprefix('test_acc_retrain')} epochs" if done else None)
    axes.set_xlabel("search wall time (s)")
    axes.set_ylabel("retrained test accuracy (%)")
    axes.set_title(f"CIFAR-10, {results['profile']} profile, budget {results['budget_flops'] / 1e6:.1f}M FLOPs")
    axes.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(docs / "search_efficiency_accuracy.png", dpi=120)
    plt.close(figure)
    danas = next((r for r in results["rows"] if r["arm"] == "danas"), None)
    if danas is None:
        return
    if not (Path(danas["run"]) / "history.jsonl").is_file():  # the recorded run's folder is gone (another machine)
        print(f"survival plot not redrawn: no {Path(danas['run']) / 'history.jsonl'}")
        return
    history = [json.loads(line) for line in (Path(danas["run"]) / "history.jsonl").read_text().splitlines()]
    counts = [h["active"] for h in history if "pruned" in h]
    if not counts:
        return
    figure, axes = plt.subplots(figsize=(7, 3.5))
    image = axes.imshow(list(zip(*counts, strict=True)), aspect="auto", cmap="viridis")
    axes.set_xlabel("after stage")
    axes.set_ylabel("searchable layer")
    axes.set_title("DA-NAS: active candidates per layer after each stage")
    figure.colorbar(image, ax=axes, label="candidates")
    figure.tight_layout()
    figure.savefig(docs / "search_efficiency_survival.png", dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
