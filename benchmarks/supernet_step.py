"""Benchmark: what a supernet training step costs against the space's largest standalone network.

Single-path sampling must keep a step at one network's cost whatever the number of candidates. For `mobile-small`
(32x32, batch 64 by default) this times, interleaved in one process, a weight step of the supernet on a sampled
path, an architecture step (two paths and binary gates), and a step of the largest standalone network (k7_e6_se on
every layer); then measures each one's peak process RSS in a fresh subprocess.

Run by hand:  .venv/bin/python benchmarks/supernet_step.py [--space mobile-small] [--batch 64] [--rounds 30]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time


def build(kind: str, space_name: str, resolution: int | None, batch: int):
    import torch
    from torch.nn import functional as F

    from edgenas.cost.presets import preset
    from edgenas.space.network import build_model
    from edgenas.space.spec import get_space
    from edgenas.space.supernet import Supernet

    torch.manual_seed(0)
    space = get_space(space_name, resolution)
    x = torch.randn(batch, 3, space.resolution, space.resolution)
    y = torch.randint(0, 10, (batch,))
    generator = torch.Generator().manual_seed(0)
    if kind == "largest":
        model = build_model(preset("largest", space, 10)).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        return step
    net = Supernet(space, 10).train()
    weights = torch.optim.SGD(net.weight_parameters(), lr=0.01, momentum=0.9)
    alphas = torch.optim.Adam([net.alpha], lr=0.01)
    paths = 1 if kind == "supernet-weight" else 2
    optimizer = weights if paths == 1 else alphas

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(x, net.sample(generator, paths)), y).backward()
        optimizer.step()
    return step


def peak_rss_mb(kind: str, args) -> float:
    code = (f"import sys; sys.path.insert(0, '.'); from benchmarks.supernet_step import build; "
            f"step = build({kind!r}, {args.space!r}, {args.resolution!r}, {args.batch}); "
            "[step() for _ in range(8)]; from benchmarks.supernet_step import vm_hwm_mb; print(vm_hwm_mb())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def vm_hwm_mb() -> float:
    """This process's peak RSS. (ru_maxrss would not do: Linux keeps the parent's peak across fork and exec.)"""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mobile-small")
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    import torch

    kinds = ["largest", "supernet-weight", "supernet-arch"]
    steps = {kind: build(kind, args.space, args.resolution, args.batch) for kind in kinds}
    for step in steps.values():  # warm-up
        for _ in range(3):
            step()
    times = {kind: [] for kind in kinds}
    for _ in range(args.rounds):
        for kind in kinds:  # interleaved, so that machine noise hits every kind alike
            start = time.perf_counter()
            steps[kind]()
            times[kind].append(time.perf_counter() - start)
    median = {kind: statistics.median(t) for kind, t in times.items()}
    rss = {kind: peak_rss_mb(kind, args) for kind in kinds}
    baseline = float(subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, '.'); import torch; "
                                     "from benchmarks.supernet_step import vm_hwm_mb; print(vm_hwm_mb())"],
                                    capture_output=True, text=True, check=True).stdout)
    result = {
        "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "python": platform.python_version(),
        "threads": torch.get_num_threads(), "space": args.space, "batch": args.batch, "rounds": args.rounds,
        "median_step_s": median, "time_ratio_to_largest": {k: median[k] / median["largest"] for k in kinds},
        "peak_rss_mb": rss, "rss_after_import_torch_mb": baseline,
        "rss_ratio_to_largest": {k: rss[k] / rss["largest"] for k in kinds},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
