"""Benchmark (re-analysis, nothing is timed): which statistic of a profile's passes predicts whole networks best.

Reads tables kept by `latency_fidelity.py --keep-tables DIR` (every piece's and validation network's median of each
interleaved pass) and rebuilds each table's calibration and leave-one-out fidelity from the same timings, each piece
and network summarised by:
  best      the smallest pass median (what `edgenas profile` uses);
  median    the median of the pass medians;
  best3     the mean of the three smallest pass medians;
  quietest  every piece and network from the one pass whose timings were lowest overall (each timing over its own
            best, geometric mean): pieces and networks from the same minutes of the machine.

  .venv/bin/python benchmarks/latency_statistics.py bench-runs/tables-int8/*.json bench-runs/tables-t2/*.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path


def quietest_pass(series: list[list[float]]) -> int:
    """The pass whose timings, each over its own series' best, have the lowest geometric mean."""
    bests = [min(s) for s in series]
    return min(range(min(len(s) for s in series)),
               key=lambda p: sum(math.log(s[p] / best) for s, best in zip(series, bests, strict=True)))


def statistics_of(table: dict) -> dict[str, Callable[[list[float]], float]]:
    """Each way of summarising one piece's or network's pass medians, by name."""
    quiet = quietest_pass([e["pass_medians_ms"] for e in table["entries"].values()]
                          + [n["measured_pass_medians_ms"] for n in table["validation"]["networks"]])
    return {"best": min, "median": statistics.median, "best3": lambda p: statistics.fmean(sorted(p)[:3]),
            "quietest": lambda p: p[quiet]}


def refit(table: dict, name: str, summarise: Callable[[list[float]], float]) -> dict:
    from edgenas.profiling import profiler
    from edgenas.space.arch import make_arch
    from edgenas.space.spec import get_space

    space = get_space(table["space"], table["resolution"])
    nets = table["validation"]["networks"]
    entries = {k: {**e, "median_ms": summarise(e["pass_medians_ms"])} for k, e in table["entries"].items()}
    networks = {f"net:{n['name']}": summarise(n["measured_pass_medians_ms"]) for n in nets}
    archs = [(n["name"], make_arch(space, n["layers"], n["num_classes"])) for n in nets]
    data = profiler.build_table(name, space, table["runtime"], entries, networks, archs, table["warmup"],
                                table["repeats"], table["passes"], table["host"], table["precision"])
    v = data["validation"]
    return {key: v[key] for key in ("median_abs_error_pct", "p95_abs_error_pct", "within_10pct", "kendall_tau_table")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    rows = []
    for path in args.tables:
        table = json.loads(path.read_text())
        row = {"table": path.name, "space": table["space"], "resolution": table["resolution"],
               "precision": table["precision"], "threads": table["runtime"]["threads"],
               "passes": table["passes"], "host": table["host"]}
        for name, summarise in statistics_of(table).items():
            row[name] = f = refit(table, name, summarise)
            print(f"{path.name:45s} {name:9s} median {f['median_abs_error_pct']:5.1f}%  p95 "
                  f"{f['p95_abs_error_pct']:5.1f}%  within 10% {100 * f['within_10pct']:4.0f}%  "
                  f"tau {f['kendall_tau_table']:.2f}", flush=True)
        rows.append(row)
    if args.out is not None:
        args.out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
