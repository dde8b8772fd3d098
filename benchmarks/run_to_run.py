"""Benchmark: how far apart two runs of the same measurement land on this machine, process to process.

A table's fidelity (`edgenas profile`'s validation) compares pieces and whole networks timed in one process, in the
same minutes. A user's check (`edgenas latency --measure`, `edgenas export --table`) times the network in another
process, later. This times the validation networks of each case (`validation_archs(space, N, seed=1)`, as
`latency_fidelity.py` draws them) alone, the way a profile does (new session per pass, 10 warm-up and 50 timed calls,
best pass median), in RUNS fresh processes one after the other, cases alternating, and reports per case:
- each run's level: the median over networks of its latency divided by the networks' median over all runs;
- the Kendall tau between consecutive runs.

  .venv/bin/python benchmarks/run_to_run.py --cases mobile:224:fp32 mobile-small:16:int8 --runs 6 \
      --out benchmarks/results/run_to_run.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from edgenas.cost import notes


def worker(case: str, networks: int, passes: int) -> dict[str, float]:
    """One run: network name -> best pass median (ms)."""
    from edgenas.profiling.measure import make_backend, measure
    from edgenas.profiling.validation import network_piece, validation_archs
    from edgenas.space.spec import get_space

    name, resolution, precision = case.split(":")
    space = get_space(name, int(resolution))
    backend = make_backend("ort", 1, "cpu", int8=precision == "int8")
    pieces = [network_piece(n, a) for n, a in validation_archs(space, networks, seed=1)]
    return {key: row["median_ms"] for key, row in measure(pieces, backend, 10, 50, passes).items()}


def kendall(a: dict[str, float], b: dict[str, float]) -> float:
    from edgenas.cost.calibration import kendall_tau

    keys = sorted(a)
    return kendall_tau([a[k] for k in keys], [b[k] for k in keys])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["mobile:224:fp32"], metavar="SPACE:RESOLUTION:PRECISION")
    parser.add_argument("--runs", type=int, default=6, help="fresh processes per case")
    parser.add_argument("--networks", type=int, default=20, help="random networks (MobileNetV2 and the extremes added)")
    parser.add_argument("--passes", type=int, default=3, help="passes per run")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.networks, args.passes)))
        return

    import onnxruntime


    runs: dict[str, list[dict[str, float]]] = {case: [] for case in args.cases}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for r in range(args.runs):
        for case in args.cases:
            command = [sys.executable, __file__, "--worker", case, "--networks", str(args.networks),
                       "--passes", str(args.passes)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            runs[case].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"run {r + 1}/{args.runs} {case}", flush=True)
    rows = []
    for case, results in runs.items():
        keys = sorted(results[0])
        middle = {k: statistics.median(run[k] for run in results) for k in keys}
        levels = [statistics.median(run[k] / middle[k] for k in keys) for run in results]
        taus = [kendall(results[i], results[i + 1]) for i in range(len(results) - 1)]
        rows.append({"case": case, "networks": len(keys), "runs": len(results), "levels": levels,
                     "level_range_pct": 100 * (max(levels) - min(levels)), "tau_consecutive": taus,
                     "latencies_ms": results})
        print(f"{case} ({len(keys)} networks, {len(results)} runs): levels "
              f"{', '.join(f'{level:.3f}' for level in levels)} (range {100 * (max(levels) - min(levels)):.1f}%); "
              f"tau between consecutive runs {min(taus):.3f}-{max(taus):.3f}", flush=True)
    if args.out is not None:
        document = {"machine": notes.host_info(), "onnxruntime": onnxruntime.__version__,
                    "python": platform.python_version(), "started": started, "passes": args.passes, "rows": rows}
        args.out.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
