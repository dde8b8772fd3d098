"""Benchmark: how good are the architectures a search finds, judged on ground truth (NAS-Bench-Macro).

Each arm searches the `macro` space on CIFAR-10 (../shared/data/cifar10) under a FLOPs budget, without retraining;
its derived architecture is scored by the table's mean accuracy of that architecture trained alone (Su et al.,
CVPR 2021). Reported per arm, budget and seed: the table accuracy, the regret to the best architecture within the
budget, its percentile among all architectures within the budget, the share of the budget used, the search time,
and how well the final supernet ranks: Kendall's tau between the search-validation accuracy with inherited weights
(batch norm recalibrated) and the table's accuracy, over 50 architectures drawn within the budget (the same 50 for
every run). Beside them, baselines computed exactly from the table: a random architecture within B, a FLOPs-matched
one (within [0.95B, B]), and a rule that needs no training (the fewest skip layers within [0.95B, B], the mean over
its ties). From the run's candidates.json: the table accuracy of the knapsack's most probable
architecture in the band, which is exactly what `--choice alpha` derives from the same supernet (so one run with
`--choice eval` measures both choices), and the best and mean table accuracy of the candidates scored.

Arms: `danas`; `full` (all classes and candidates for the schedule's total epochs); `full-iso` (all classes and
candidates for as many image-steps as danas's run of the same budget and seed, so it needs danas first).

Profiles: `cpu` (a class-balanced CIFAR-10 subset and a scaled schedule, about 5-10 minutes a search on 2 cores);
`medium` (1,000 images a class, the schedule at full scale: 10x `cpu`'s image-steps, issue 38's closer regime);
`full` (all of CIFAR-10, the default schedule: a GPU job); `gpu` and `toy`, benchmarks/gpu_check.sh's on a GPU and
on the CPU (see PROFILES). `--set NAME=VALUE` changes any search setting (an
ablation) and `--tag` names it; results of separate invocations are merged by (profile, tag, arm, budget, seed) into
benchmarks/results/search_quality.json, and `--plot` draws the derived architectures on the table's
accuracy-FLOPs cloud.

Run by hand:  .venv/bin/python benchmarks/search_quality.py [--profile cpu] [--arms danas full-iso] [--seeds 0 1 2]
              [--budgets 0.4 0.6 0.7] [--set choice=alpha --tag alpha-choice] [--plot docs/search_quality.png]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import parse_set
from benchmarks.nasbench_macro import BUDGET_SHARES, CHOICES, NasBenchMacro, data_dir, to_arch, to_key

RESULTS = Path(__file__).resolve().parent / "results" / "search_quality.json"
PROFILES = {
    # 200 training images a class (160 train + 40 search-validation), the schedule at 0.5 (auto-scale's floor).
    "cpu": {"train_per_class": 200, "val_fraction": 0.2, "test_per_class": 10, "epochs_scale": 0.5},
    # Issue 38's regime closer to a user's: 1,000 training images a class (800 + 200 search-validation), the schedule
    # at full scale: 10x the `cpu` profile's image-steps, about 25 min a search on the Zen 5 EPYC (where `cpu` took
    # 120-160 s), about 2-3 h on the Xeon family 6 model 167 (a weight step of the macro supernet, batch 64, one
    # thread: 1.7 s while two other jobs shared its 2 cores).
    "medium": {"train_per_class": 1000, "val_fraction": 0.2, "test_per_class": 10, "epochs_scale": 1.0},
    "full": {},
    # benchmarks/gpu_check.sh on a lent GPU: the 2,500 training and 500 test images a class it carries (the first
    # of each class folder; from the whole folder, a random 2,500), the schedule at a quarter, to fit its minutes.
    "gpu": {"train_per_class": 2500, "test_per_class": 500, "epochs_scale": 0.25},
    # gpu_check.sh --cpu: the same code on a handful of images a class, in seconds (says nothing of quality).
    "toy": {"train_per_class": 12, "test_per_class": 3, "schedule": "0.5:1,1.0:1", "warmup_epochs": 1,
            "score_paths": 4, "batch_size": 32},
}
TAU_ARCHS = 50


def run_arm(arm: str, share: float, seed: int, table: NasBenchMacro, args, extra: dict, danas_images: int | None):
    from edgenas.runs.settings import SearchSettings
    from edgenas.searching.run import search

    budget = table.budget(share)
    common = {"data": str(data_dir() / "cifar10"), "space": "macro", "resolution": 32, "flops": int(budget),
              "retrain_epochs": 0, "seed": seed, "device": args.device, "report": False,  # `edgenas report RUN`
              **PROFILES[args.profile], **extra}
    settings = {"strategy": arm}
    if arm == "full-iso":
        if danas_images is None:
            raise SystemExit("--arms: full-iso matches danas's image-steps, so danas must run first (or be in the "
                             "results file for the same tag, budget and seed)")
        settings = {"strategy": "full", "epochs": _iso_epochs(danas_images, common, seed)}
    run_dir = args.runs / f"{args.tag}-{arm}-b{share}-s{seed}-{time.strftime('%H%M%S')}"
    start = time.perf_counter()
    result = search(SearchSettings(**common, **settings), out=run_dir, progress=False, log=lambda *a: None)
    wall = time.perf_counter() - start
    s = result.summary
    key = to_key(result.arch)
    return {"profile": args.profile, "tag": args.tag, "arm": arm, "share": share, "seed": seed, "budget_flops": budget,
            "key": key,
            "run": str(run_dir), "flops": s["flops"], "budget_use": s["flops"] / budget,
            "table_acc": table.accuracy(key), "regret": table.regret(key, budget),
            "percentile": table.percentile(table.accuracy(key), budget), "search_seconds": s["search_seconds"],
            "search_wall_seconds": wall, "image_steps": s["search_images"], "inherited_val_acc": s["inherited_val_acc"],
            "settings": {**settings, **extra}, **timed_tau(run_dir, table, budget, args),
            **candidate_figures(run_dir, table)}


def timed_tau(run_dir: Path, table: NasBenchMacro, budget: float, args) -> dict:
    start = time.perf_counter()
    tau = supernet_tau(run_dir, table, budget, args.tau_batches, args.tau_archs)
    return {"tau": tau, "tau_archs": args.tau_archs, "tau_seconds": time.perf_counter() - start}


def candidate_figures(run_dir: Path, table: NasBenchMacro) -> dict:
    """The final choice's candidates (candidates.json) against the table: the knapsack's pick (= `--choice alpha`
    on this supernet), the best and the mean candidate; empty if the run has no candidates.json."""
    path = Path(run_dir) / "candidates.json"
    if not path.is_file():
        return {}
    found = json.loads(path.read_text())["candidates"]
    accs = [table.accuracy("".join(str(CHOICES.index(c)) for c in f["layers"])) for f in found]
    knapsack = next(a for f, a in zip(found, accs, strict=True) if f["source"] == "knapsack")
    return {"alpha_choice_acc": knapsack, "candidates": len(found), "candidates_best": max(accs),
            "candidates_mean": statistics.mean(accs)}


def _iso_epochs(danas_images: int, common: dict, seed: int) -> int:
    """Epochs of all classes (all training images plus the architecture steps' search-validation images) that
    match danas's image-steps."""
    from edgenas.runs.settings import SearchSettings, load_data

    data = load_data(SearchSettings(**common), 32)
    batch = common.get("batch_size", 64)
    steps = data.size("train") // batch
    per_epoch = steps * batch + (steps + 3) // 4 * batch  # one architecture step every 4 weight steps
    return max(1, round(danas_images / per_epoch))


def supernet_tau(run_dir: Path, table: NasBenchMacro, budget: float, bn_batches: int,
                 archs: int = TAU_ARCHS) -> float | None:
    """Kendall's tau between inherited-weight search-validation accuracy and the table over `archs` fixed
    architectures (the same ones in every run)."""
    from edgenas.cost.calibration import kendall_tau

    entries = random.Random(0).sample(table.within(budget), archs)
    predicted = inherited_accuracies(run_dir, [e.key for e in entries], bn_batches)
    return None if predicted is None else kendall_tau(predicted, [e.mean_acc for e in entries])


def inherited_accuracies(run_dir: Path, keys: list[str], bn_batches: int, score: str = "accuracy"
                         ) -> list[float] | None:
    """The search-validation accuracy (`score` "loss": minus the mean cross-entropy) of each architecture
    (NAS-Bench-Macro key) with the weights it inherits from the run's final supernet, batch norm recalibrated on
    `bn_batches` training batches; None without supernet.pt."""
    import torch

    from edgenas.data.batches import batches
    from edgenas.runs.folder import Run, load_weights
    from edgenas.runs.settings import SearchSettings, load_data
    from edgenas.space.spec import get_space
    from edgenas.space.supernet import Supernet, recalibrate_batch_norm
    from edgenas.training.device import Device
    from edgenas.training.train import evaluate, evaluate_loss

    path = run_dir / "supernet.pt"
    if not path.is_file():
        return None
    settings = SearchSettings.of_run(Run.open(run_dir))
    device = Device.pick("cpu" if not torch.cuda.is_available() else "cuda")
    data = load_data(settings, 32).to(device.device)
    net = Supernet(get_space("macro", 32), data.num_classes)
    net.load_state_dict(load_weights(path, str(path)))
    generator = torch.Generator().manual_seed(0)
    accuracies = []
    for key in keys:
        model = device.prepare(net.extract(to_arch(key)))
        recalibrate_batch_norm(model, (
            (device.input(x), y) for i, (x, y) in enumerate(batches(data, "train", 64, generator=generator,
                                                                    train=True)) if i < bn_batches))
        accuracies.append(evaluate(model, data, "val", device) if score == "accuracy" else
                          -evaluate_loss(model, data, "val", device)[1])
    return accuracies


def row_key(row: dict) -> tuple:
    """What identifies a row: its profile (rows from before profiles were recorded: `cpu`), tag, arm, budget, seed."""
    return row.get("profile", "cpu"), row["tag"], row["arm"], row["share"], row["seed"]


def summarize(rows: list[dict], table: NasBenchMacro) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(row_key(r)[:4], []).append(r)
    out = []
    for (profile, tag, arm, share), rs in sorted(groups.items()):
        budget = table.budget(share)
        taus = [r["tau"] for r in rs if r.get("tau") is not None]
        out.append({"profile": profile, "tag": tag, "arm": arm, "share": share, "seeds": sorted(r["seed"] for r in rs),
                    "table_acc": statistics.mean(r["table_acc"] for r in rs),
                    "table_acc_min": min(r["table_acc"] for r in rs),
                    "regret": statistics.mean(r["regret"] for r in rs),
                    "percentile": statistics.mean(r["percentile"] for r in rs),
                    "budget_use_min": min(r["budget_use"] for r in rs),
                    "search_seconds": statistics.mean(r["search_seconds"] for r in rs),
                    "tau": statistics.mean(taus) if taus else None,
                    "alpha_choice_acc": (statistics.mean(r["alpha_choice_acc"] for r in rs)
                                         if all("alpha_choice_acc" in r for r in rs) else None),
                    "best_within": table.best_within(budget).mean_acc,
                    "random_mean": table.random_mean(budget), "matched_random_mean": table.matched_random_mean(budget),
                    "fewest_skips_mean": table.fewest_skips_mean(budget),
                    "fewest_skips_ties": len(table.fewest_skips(budget))})
    return out


def print_summary(summary: list[dict]) -> None:
    print("| profile | tag | arm | budget | seeds | table acc (mean, min) | regret | percentile | min budget use | "
          "search s | tau | knapsack pick | best | random | matched random | fewest-skips rule (ties) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in summary:
        tau = "-" if s["tau"] is None else f"{s['tau']:.2f}"
        pick = "-" if s.get("alpha_choice_acc") is None else f"{s['alpha_choice_acc']:.2f}%"
        print(f"| {s['profile']} | {s['tag']} | {s['arm']} | {s['share']:.0%} | {len(s['seeds'])} | "
              f"{s['table_acc']:.2f}% ({s['table_acc_min']:.2f}) | {s['regret']:.2f} | {s['percentile']:.1f} | "
              f"{s['budget_use_min']:.1%} | "
              f"{s['search_seconds']:.0f} | {tau} | {pick} | {s['best_within']:.2f}% | {s['random_mean']:.2f}% | "
              f"{s['matched_random_mean']:.2f}% | {s['fewest_skips_mean']:.2f}% ({s['fewest_skips_ties']}) |")


def plot(rows: list[dict], table: NasBenchMacro, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    ax.scatter([e.flops / 1e6 for e in table.entries], [e.mean_acc for e in table.entries], s=3, c="0.8",
               label="NAS-Bench-Macro (6,561 architectures, trained alone)")
    for share in sorted({r["share"] for r in rows}):
        ax.axvline(table.budget(share) / 1e6, color="0.5", lw=0.8, ls="--")
    markers = iter("o^sDvP*X")
    for tag, arm in sorted({(r["tag"], r["arm"]) for r in rows}):
        rs = [r for r in rows if (r["tag"], r["arm"]) == (tag, arm)]
        ax.scatter([r["flops"] / 1e6 for r in rs], [r["table_acc"] for r in rs], s=30, marker=next(markers, "o"),
                   label=f"{arm} ({tag})", edgecolors="k", linewidths=0.5)
    ax.set_xlabel("FLOPs (M, fvcore, 1 multiply-add = 1 FLOP)")
    ax.set_ylabel("CIFAR-10 test accuracy, table mean of 3 runs (%)")
    ax.set_ylim(80, 94)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Derived architectures against ground truth (dashed: budgets)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="cpu")
    parser.add_argument("--arms", nargs="+", default=["danas", "full-iso"], choices=["danas", "full", "full-iso"])
    parser.add_argument("--budgets", nargs="+", type=float, default=list(BUDGET_SHARES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="search settings to change")
    parser.add_argument("--tag", default="default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tau-batches", type=int, default=10, help="training batches to recalibrate batch norm")
    parser.add_argument("--tau-archs", type=int, default=TAU_ARCHS, help="architectures Kendall's tau is taken over")
    parser.add_argument("--runs", type=Path, default=Path("bench-runs/search_quality"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--summary-only", action="store_true")
    parser.add_argument("--again", action="store_true", help="measure runs already in the results file again")
    parser.add_argument("--reanalyze", action="store_true",
                        help="no search: recompute the candidates.json figures of every row whose run folder exists")
    args = parser.parse_args()

    if data_dir() is None:
        raise SystemExit("search_quality: ../shared/data (NAS-Bench-Macro and CIFAR-10) is not here")
    table = NasBenchMacro.load()
    extra = parse_set(args.set)
    previous = json.loads(args.results.read_text()) if args.results.is_file() else {"rows": []}
    rows = previous["rows"]
    args.runs.mkdir(parents=True, exist_ok=True)
    if args.reanalyze:
        rows = [{**r, **candidate_figures(Path(r["run"]), table)} for r in rows]
    elif not args.summary_only:
        for share in args.budgets:
            for seed in args.seeds:
                for arm in args.arms:
                    wanted = (args.profile, args.tag, arm, share, seed)
                    if not args.again and any(row_key(r) == wanted for r in rows):
                        continue  # already measured (--again measures it anew)
                    danas = next((r for r in rows if row_key(r) == (*wanted[:2], "danas", share, seed)), None)
                    row = run_arm(arm, share, seed, table, args, extra, danas and danas["image_steps"])
                    rows = [r for r in rows if row_key(r) != row_key(row)] + [row]
                    print(json.dumps({k: row[k] for k in ("tag", "arm", "share", "seed", "key", "table_acc",
                                                          "budget_use", "search_seconds", "tau")}), flush=True)
                    _write(args.results, rows, args, summarize(rows, table))  # a stopped run keeps its summary
    summary = summarize(rows, table)
    _write(args.results, rows, args, summary)
    print_summary(summary)
    if args.plot:
        plot(rows, table, args.plot)


def _write(path: Path, rows: list[dict], args, summary: list[dict]) -> None:
    import platform

    import torch

    data = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.processor() or platform.machine(), "rows": rows,
            "summary": summary}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    main()
