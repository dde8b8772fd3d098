"""Benchmark: training throughput of the supernet against the standalone network of the same sampled path, with the
project's device defaults (`Device.pick()`: bfloat16 autocast and channels-last on a GPU), on data held on the device.

Each case (space, resolution, batch) runs the project's own epoch functions on random uint8 images held on the
device, as the search's tensor cache holds a dataset, so that a timed epoch includes the on-device augmentation as a
search's does. For each of `--paths` paths drawn uniformly (seeded), three kinds:
- `supernet-weight`: `train.supernet_epoch` without architecture steps, every weight step on that path;
- `supernet-weight+arch`: the same with an architecture step after every weight step (two paths drawn from alpha,
  binary gates, the budget penalty); an architecture step's own time is the paired difference of the two kinds;
- `standalone`: `train.train_epoch` of the network `model.build_model` makes of the same path.
The kinds run interleaved round by round after one warm-up epoch each, the device synchronised around every timed
epoch. Reported per path: images per second of each kind (median over rounds), the weight step's throughput over the
standalone network's (median of the per-round ratios), peak GPU memory per kind (`torch.cuda.max_memory_allocated`,
reset before each epoch) and the host synchronisations of each kind's step loop (`torch.cuda.set_sync_debug_mode`
with every warning counted at its source line), over an epoch of the images and one of half of them: the
difference per step is the per-step count, the rest happens once per epoch. Memory and synchronisations are not
measured on the CPU.

Run by hand:  python benchmarks/gpu_throughput.py [--cpu] [--cases mobile:224:128 mobile-small:32:256] [--out FILE]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import platform
import statistics
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GPU_CASES = ["mobile-small:32:256", "mobile:224:128"]  # the quicker first: a time box that runs out keeps it
CPU_CASES = ["mobile:32:4", "mobile-small:32:4"]  # toy sizes: the same code, seconds on 2 cores
KINDS = ("supernet-weight", "supernet-weight+arch", "standalone")
CLASSES = 10
NOT_ON_CPU = "not measured on the CPU"


def synthetic_data(resolution: int, images: int, device):
    """Random uint8 images and labels held on `device`; the search-validation split is the training split."""
    import torch

    from edgenas.data.dataset import Dataset

    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.randint(0, 256, (images, 3, resolution, resolution), dtype=torch.uint8, device=device,
                      generator=generator)
    y = torch.randint(0, CLASSES, (images,), device=device, generator=generator)
    return Dataset("random", [str(c) for c in range(CLASSES)], {"train": x, "val": x}, {"train": y, "val": y},
                   (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), True, resolution)


def halved(data):
    """The first half of the images: an epoch of half the steps, for the per-step synchronisation count."""
    n = data.size("train") // 2
    return replace(data, x={k: v[:n] for k, v in data.x.items()}, y={k: v[:n] for k, v in data.y.items()})


@contextlib.contextmanager
def counting_syncs():
    """Counter of the CUDA synchronisations in the block, by the source line in this repository that caused each
    (with the library line that made it, where that is another)."""
    import torch

    found: collections.Counter = collections.Counter()

    def note(message, category, filename, lineno, file=None, line=None):
        if "synchronizing CUDA operation" in str(message):
            found[_where(filename, lineno)] += 1

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = note
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield found
        finally:
            torch.cuda.set_sync_debug_mode("default")


def _where(filename: str, lineno: int) -> str:
    ours = [f for f in traceback.extract_stack() if f.filename.startswith(str(ROOT))
            and "/benchmarks/gpu_throughput.py" not in f.filename]
    direct = f"{Path(filename).name}:{lineno}"
    if not ours:
        return direct
    frame = ours[-1]
    here = f"{Path(frame.filename).relative_to(ROOT)}:{frame.lineno}"
    return here if Path(frame.filename) == Path(filename) and frame.lineno == lineno else f"{here} via {direct}"


def measure_case(space_name: str, resolution: int, batch: int, args, dev, measured=lambda case: None) -> dict:
    """The case's figures; `measured(figures so far)` after each path, so that a run stopped early keeps them."""
    import torch

    from edgenas.cost.cost_model import CostModel
    from edgenas.cost.flops import cost_table
    from edgenas.runs.settings import SearchSettings
    from edgenas.space.spec import get_space
    from edgenas.space.supernet import Supernet

    space = get_space(space_name, resolution)
    data = synthetic_data(resolution, args.steps * batch, dev.device)
    s = SearchSettings()  # the search's defaults: learning rates, label smoothing, cost strength
    torch.manual_seed(0)
    net = dev.prepare(Supernet(space, CLASSES))
    # The optimisers as searcher._search makes them; a constant learning rate (the search's cosine costs the same
    # one call per step).
    weight_opt = torch.optim.SGD(net.weight_parameters(), lr=s.lr, momentum=0.9, nesterov=True,
                                 weight_decay=s.weight_decay)
    case = Case(space, batch, dev, s, data, CostModel.build(space, CLASSES, cost_table(space)), net, weight_opt,
                torch.optim.Adam([net.alpha], lr=s.arch_lr, betas=(0.0, 0.999)),
                torch.optim.lr_scheduler.LambdaLR(weight_opt, lambda step: 1.0), torch.Generator().manual_seed(0))
    paths = [net.sample(torch.Generator().manual_seed(seed), 1, uniform=True) for seed in range(args.paths)]
    rows = []
    for index, path in enumerate(paths):
        rows.append(measure_path(case, index, path, args.rounds))
        row = rows[-1]
        print(json.dumps({"space": space_name, "resolution": resolution, "batch": batch, "path": index,
                          "img_s": {k: round(v, 1) for k, v in row["img_s"].items() if v is not None},
                          "weight_to_standalone": round(row["weight_to_standalone"], 3)}), flush=True)
        measured(summarize(space_name, resolution, batch, rows, args.rounds, data.size("train")))
    return summarize(space_name, resolution, batch, rows, args.rounds, data.size("train"))


def summarize(space_name: str, resolution: int, batch: int, rows: list[dict], rounds: int, images: int) -> dict:
    ratios = [r["weight_to_standalone"] for r in rows]
    return {"space": space_name, "resolution": resolution, "batch": batch, "classes": CLASSES, "rounds": rounds,
            "images_per_epoch": images, "paths": rows,
            "supernet_weight_img_s": statistics.mean(r["img_s"]["supernet-weight"] for r in rows),
            "supernet_arch_step_img_s": _mean([r["img_s"]["supernet-arch-step"] for r in rows]),
            "standalone_img_s": statistics.mean(r["img_s"]["standalone"] for r in rows),
            "weight_to_standalone_min": min(ratios), "weight_to_standalone_mean": statistics.mean(ratios)}


@dataclass
class Case:
    """What the paths of one case share: the space, the data, the supernet and its optimisers."""

    space: object
    batch: int
    dev: object
    settings: object  # SearchSettings' defaults
    data: object
    cost: object
    net: object
    weight_opt: object
    arch_opt: object
    schedule: object
    generator: object


def measure_path(c: Case, index: int, path: list[tuple[int]], rounds: int) -> dict:
    import torch

    from edgenas.space.arch import make_arch
    from edgenas.space.network import build_model
    from edgenas.training.train import SupernetSettings, TrainSettings, make_optimizer, supernet_epoch, train_epoch

    cuda = c.dev.device.type == "cuda"
    s, batch = c.settings, c.batch
    arch = make_arch(c.space, [layer.choices[j] for layer, (j,) in zip(c.space, path, strict=True)], CLASSES)
    flops = c.cost.of(arch)[0]
    settings = SupernetSettings(batch, s.label_smoothing, 1, s.cost_strength, float(flops), None)
    torch.manual_seed(1)
    model = c.dev.prepare(build_model(arch))
    train = TrainSettings(1, batch, s.retrain_lr, 0.9, s.retrain_weight_decay, s.label_smoothing)
    optimizer, scheduler = make_optimizer(model, train, 10**6)
    scaler = c.dev.scaler()

    def run(kind: str, on=c.data):
        if kind == "standalone":
            return train_epoch(model, on, optimizer, scheduler, train, c.generator, c.dev, scaler)
        return supernet_epoch(c.net, on, list(range(CLASSES)), c.weight_opt, c.arch_opt, c.schedule, c.cost,
                              settings, c.generator, c.dev, scaler, train_arch=kind == "supernet-weight+arch",
                              sampler=lambda net, generator, step: path)

    times = {kind: [] for kind in KINDS}
    peaks = dict.fromkeys(KINDS, 0)
    resident = dict.fromkeys(KINDS, 0)
    images = {}
    for round_ in range(rounds + 1):  # round 0: warm-up, not timed
        for kind in KINDS:
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated()
            start = time.perf_counter()
            metrics = run(kind)
            if cuda:
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            if round_ == 0:
                continue
            times[kind].append(elapsed)
            images[kind] = metrics["images"]
            if cuda:
                peaks[kind] = max(peaks[kind], torch.cuda.max_memory_allocated())
                resident[kind] = max(resident[kind], before)
    steps = c.data.size("train") // batch
    median = {kind: statistics.median(t) for kind, t in times.items()}
    arch_step = statistics.median(wa - w for wa, w in zip(times["supernet-weight+arch"], times["supernet-weight"],
                                                          strict=True)) / steps
    row = {"path": index, "layers": list(arch.layers), "flops": flops, "steps_per_epoch": steps,
           "img_s": {"supernet-weight": images["supernet-weight"] / median["supernet-weight"],
                     "supernet-arch-step": batch / arch_step if arch_step > 0 else None,
                     "standalone": images["standalone"] / median["standalone"]},
           "step_ms": {"supernet-weight": 1000 * median["supernet-weight"] / steps,
                       "supernet-arch-step": 1000 * arch_step, "standalone": 1000 * median["standalone"] / steps},
           "weight_to_standalone": statistics.median(
               st / w for st, w in zip(times["standalone"], times["supernet-weight"], strict=True)),
           "epoch_seconds": times}
    if not cuda:
        row["peak_memory_mib"] = row["syncs"] = NOT_ON_CPU
        return row
    row["peak_memory_mib"] = {k: peaks[k] / 2**20 for k in KINDS}
    row["resident_memory_mib"] = {k: resident[k] / 2**20 for k in KINDS}
    if index == 0:  # the step loop's synchronisations do not depend on the path
        row["syncs"] = {kind: count_syncs(run, kind, c.data, halved(c.data), batch) for kind in KINDS}
    return row


def _mean(values: list) -> float | None:
    """The mean of the measured values (an architecture step lost in the noise of a toy size has none)."""
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def count_syncs(run, kind: str, data, half, batch: int) -> dict:
    """Synchronisations of one epoch of `kind` over all the images and over half of them: per step (the
    difference per step) and per epoch (the rest), with the full epoch's count at each source line."""
    counts = []
    for on in (data, half):
        with counting_syncs() as found:
            run(kind, on)
        counts.append(found)
    full, part = (sum(c.values()) for c in counts)
    steps = (data.size("train") // batch, half.size("train") // batch)
    per_step = (full - part) / (steps[0] - steps[1]) if steps[0] > steps[1] else None
    return {"per_step": per_step, "per_epoch": None if per_step is None else full - per_step * steps[0],
            "epoch_total": full, "steps": steps[0], "where": dict(counts[0].most_common())}


def describe(dev) -> dict:
    import torch

    info = {"torch": torch.__version__, "python": platform.python_version(), **dev.describe()}
    if dev.device.type == "cuda":
        props = torch.cuda.get_device_properties(dev.device)
        info.update({"gpu": props.name, "gpu_memory_mib": props.total_memory / 2**20, "cuda": torch.version.cuda,
                     "cudnn": torch.backends.cudnn.version(), "cudnn_benchmark": torch.backends.cudnn.benchmark})
    else:
        info["threads"] = torch.get_num_threads()
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="the CPU at toy sizes (default: the device's defaults)")
    parser.add_argument("--cases", nargs="+", default=None, metavar="SPACE:RESOLUTION:BATCH",
                        help=f"default: {' '.join(GPU_CASES)} (with --cpu: {' '.join(CPU_CASES)})")
    parser.add_argument("--steps", type=int, default=None, help="steps per epoch (default 10; 2 with --cpu)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 3; 1 with --cpu)")
    parser.add_argument("--paths", type=int, default=None, help="paths drawn per case (default 2; 1 with --cpu)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    args.steps = args.steps or (2 if args.cpu else 10)
    args.rounds = args.rounds or (1 if args.cpu else 3)
    args.paths = args.paths or (1 if args.cpu else 2)
    cases = args.cases or (CPU_CASES if args.cpu else GPU_CASES)

    from edgenas.training.device import Device

    dev = Device.pick("cpu" if args.cpu else "auto")
    if args.cpu:
        import torch

        torch.set_num_threads(1)  # toy sizes: more threads only add overhead, and on a shared machine a lot of it
    result = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), **describe(dev), "steps_per_epoch": args.steps,
              "rounds": args.rounds, "paths_per_case": args.paths, "cases": []}
    def measured(index: int, figures: dict) -> None:
        result["cases"][index:] = [figures]
        if args.out:  # after every path: a run stopped by its time box keeps what it measured
            tmp = args.out.with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=1) + "\n")
            tmp.replace(args.out)

    for index, case in enumerate(cases):
        space, resolution, batch = case.split(":")
        measure_case(space, int(resolution), int(batch), args, dev, lambda figures, i=index: measured(i, figures))
    print(f"{'case':<24} {'weight img/s':>13} {'arch-step img/s':>16} {'standalone img/s':>17} {'ratio (min)':>12}")
    for c in result["cases"]:
        print(f"{c['space'] + ':' + str(c['resolution']) + ' b' + str(c['batch']):<24} "
              f"{c['supernet_weight_img_s']:>13.1f} {c['supernet_arch_step_img_s'] or float('nan'):>16.1f} "
              f"{c['standalone_img_s']:>17.1f} {c['weight_to_standalone_min']:>12.3f}")


if __name__ == "__main__":
    main()
