"""Benchmark (re-analysis, nothing is timed): does an INT8 table rank networks as well as the FP32 table of the same
space, resolution and threads, beyond the noise of a few validation networks?

Reads tables kept by `latency_fidelity.py --keep-tables DIR` (the same validation networks in both precisions, since
both are drawn with one seed) and reports, for each FP32 / INT8 pair, each table's Kendall tau against its measured
networks, the tau of two measurements of the same networks (best of the even passes against best of the odd ones),
and the INT8 minus FP32 difference with a paired bootstrap interval over the networks (the same resampled networks
for both precisions).

  .venv/bin/python benchmarks/ranking_precision.py /tmp/lat/keep/*.json --out benchmarks/results/ranking.json
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def tau(a: list[float], b: list[float], picks: list[int]) -> float:
    """Kendall tau of `a` against `b` over the pairs of networks `picks` (a resample may pick one network twice: such
    a pair says nothing of the order, and is left out)."""
    pairs = [(i, j) for x, i in enumerate(picks) for j in picks[x + 1:] if i != j]
    score = sum(((a[i] - a[j]) * (b[i] - b[j]) > 0) - ((a[i] - a[j]) * (b[i] - b[j]) < 0) for i, j in pairs)
    return score / len(pairs)


def taus(nets: list[dict], picks: list[int]) -> tuple[float, float]:
    """On networks `picks`: the Kendall tau of the table's prediction against the measurement, and of a retest (the
    best of the even passes against the best of the odd ones)."""
    measured = [n["measured_ms"] for n in nets]
    even = [min(n["measured_pass_medians_ms"][0::2]) for n in nets]
    odd = [min(n["measured_pass_medians_ms"][1::2]) for n in nets]
    return tau([n["predicted_ms"] for n in nets], measured, picks), tau(even, odd, picks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", type=Path, nargs="+")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    kept = {}
    for path in args.tables:
        t = json.loads(path.read_text())
        kept[(t["space"], t["resolution"], t["runtime"]["threads"], t["precision"])] = t
    rows = []
    for (space, resolution, threads, precision), fp32 in sorted(kept.items()):
        int8 = kept.get((space, resolution, threads, "int8"))
        if precision != "fp32" or int8 is None:
            continue
        a, b = fp32["validation"]["networks"], int8["validation"]["networks"]
        if [n["layers"] for n in a] != [n["layers"] for n in b]:
            raise SystemExit(f"{space} {resolution} t{threads}: the FP32 and INT8 tables hold other networks")
        everything = list(range(len(a)))
        rng = random.Random(0)
        differences = []
        for _ in range(args.resamples):
            picks = [rng.randrange(len(a)) for _ in everything]
            differences.append(taus(b, picks)[0] - taus(a, picks)[0])
        differences.sort()
        low, high = differences[int(0.025 * len(differences))], differences[int(0.975 * len(differences)) - 1]
        row = {"space": space, "resolution": resolution, "threads": threads, "networks": len(a),
               "passes": [fp32["passes"], int8["passes"]],
               "fp32": dict(zip(("tau_table", "tau_retest"), taus(a, everything), strict=True)),
               "int8": dict(zip(("tau_table", "tau_retest"), taus(b, everything), strict=True)),
               "int8_minus_fp32": taus(b, everything)[0] - taus(a, everything)[0],
               "int8_minus_fp32_95pct": [low, high],
               "int8_at_least_fp32_share_of_resamples": sum(d >= 0 for d in differences) / len(differences)}
        rows.append(row)
        print(f"{space} {resolution} t{threads} ({len(a)} networks): tau FP32 {row['fp32']['tau_table']:.3f} "
              f"(retest {row['fp32']['tau_retest']:.3f}), INT8 {row['int8']['tau_table']:.3f} (retest "
              f"{row['int8']['tau_retest']:.3f}); INT8 - FP32 {row['int8_minus_fp32']:+.3f}, 95% [{low:+.3f}, "
              f"{high:+.3f}], INT8 >= FP32 in {100 * row['int8_at_least_fp32_share_of_resamples']:.0f}% of "
              "resamples", flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps({"resamples": args.resamples, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
