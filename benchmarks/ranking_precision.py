"""Benchmark: does an INT8 table rank networks as well as the FP32 table of the same space, resolution and threads,
beyond the noise of a few validation networks and of the measurement itself?

Reads tables kept by `latency_fidelity.py --keep-tables DIR` (the same validation networks in both precisions, since
both are drawn with one seed) and reports, for each FP32 / INT8 pair, each table's Kendall tau against its measured
networks, the tau of two measurements of the same networks (best of the even passes against best of the odd ones),
and the INT8 minus FP32 difference with a paired bootstrap interval over the networks (the same resampled networks
for both precisions).

With `--remeasure PASSES` it also times the same networks again here, in both precisions, PASSES interleaved passes
(FP32 and INT8 alternating, each network in a new session per pass, best pass median): an independent measurement,
taken outside the profile. Against it, each table's tau is compared with the tau of the profile's own measurement:
how well a table ranks set against how well a second measurement of the same networks agrees with the first. From
that agreement it also estimates the most any table could reach: the noise per measurement that makes two noisy copies
of the re-measured latencies agree as closely (independent log-normal noise per network and measurement), and the
expected tau of the noise-free latencies against one such copy (`perfect_table_tau`).

  .venv/bin/python benchmarks/ranking_precision.py /tmp/lat/keep/*.json --out benchmarks/results/ranking.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path


def tau(a: list[float], b: list[float], picks: list[int] | None = None) -> float:
    """Kendall tau of `a` against `b` over the pairs of networks `picks` (default: all; a resample may pick one
    network twice: such a pair says nothing of the order, and is left out)."""
    import numpy as np

    picks = np.arange(len(a)) if picks is None else np.asarray(picks)
    x, y = np.asarray(a, dtype=float)[picks], np.asarray(b, dtype=float)[picks]
    signs = np.sign(x[:, None] - x[None, :]) * np.sign(y[:, None] - y[None, :])
    counted = np.triu(picks[:, None] != picks[None, :], 1)
    return float(signs[counted].mean())


def taus(nets: list[dict], picks: list[int] | None = None) -> tuple[float, float]:
    """On networks `picks` (default: all): the Kendall tau of the table's prediction against the measurement, and of
    a retest (the best of the even passes against the best of the odd ones)."""
    measured = [n["measured_ms"] for n in nets]
    even = [min(n["measured_pass_medians_ms"][0::2]) for n in nets]
    odd = [min(n["measured_pass_medians_ms"][1::2]) for n in nets]
    return tau([n["predicted_ms"] for n in nets], measured, picks), tau(even, odd, picks)


def interval(values: list[float]) -> list[float]:
    values = sorted(values)
    return [values[int(0.025 * len(values))], values[int(0.975 * len(values)) - 1]]


def remeasure(fp32: dict, int8: dict, passes: int) -> dict[str, list[float]]:
    """The tables' validation networks timed here again in both precisions: precision -> best pass median (ms) per
    network, in the tables' order."""
    from edgenas.profiling.measure import make_backend
    from edgenas.profiling.validation import network_piece
    from edgenas.space.arch import make_arch
    from edgenas.space.spec import get_space

    space = get_space(fp32["space"], fp32["resolution"])
    nets = fp32["validation"]["networks"]
    pieces = [network_piece(n["name"], make_arch(space, n["layers"], n["num_classes"])) for n in nets]
    threads = fp32["runtime"]["threads"]
    backends = {p: make_backend("ort", threads, "cpu", int8=p == "int8") for p in ("fp32", "int8")}
    for backend in backends.values():
        for piece in pieces:
            backend.prepare(piece)
    medians = {p: [[] for _ in pieces] for p in backends}
    start = time.perf_counter()
    for k in range(passes):
        # Alternate the order of networks and of precisions, so that drift does not always hit the same ones.
        for i in range(len(pieces)) if k % 2 == 0 else reversed(range(len(pieces))):
            for p in ("fp32", "int8") if k % 2 == 0 else ("int8", "fp32"):
                medians[p][i].append(statistics.median(backends[p].time(pieces[i], 10, 50)))
        print(f"  re-measured pass {k + 1}/{passes} ({time.perf_counter() - start:.0f} s)", flush=True)
    return {p: [min(m) for m in medians[p]] for p in medians}


def perfect_table_tau(latencies: list[float], agreement: float, draws: int = 300) -> dict:
    """The expected Kendall tau of a perfect table (one that predicts `latencies` exactly) against one measurement,
    when two measurements of the same networks agree to tau `agreement`: the noise is the log-normal spread per
    measurement whose two noisy copies of `latencies` agree that closely on average (a grid of 0.1% steps)."""
    import numpy as np

    true = np.array(latencies)
    rng = np.random.default_rng(0)

    def noisy():
        return true * np.exp(sigma * rng.standard_normal(len(true)))

    fits = []
    for sigma in np.arange(0.001, 0.05, 0.001):
        fits.append((abs(np.mean([tau(noisy(), noisy()) for _ in range(draws)]) - agreement), float(sigma)))
    sigma = min(fits)[1]
    return {"noise_per_measurement_pct": 100 * sigma, "tau": float(np.mean([tau(true, noisy()) for _ in range(draws)]))}


def compare(fp32: dict, int8: dict, resamples: int, passes: int) -> dict:
    a, b = fp32["validation"]["networks"], int8["validation"]["networks"]
    rng = random.Random(0)
    samples = [[rng.randrange(len(a)) for _ in a] for _ in range(resamples)]
    differences = [taus(b, picks)[0] - taus(a, picks)[0] for picks in samples]
    row = {"space": fp32["space"], "resolution": fp32["resolution"], "threads": fp32["runtime"]["threads"],
           "networks": len(a), "passes": [fp32["passes"], int8["passes"]],
           "fp32": dict(zip(("tau_table", "tau_retest"), taus(a), strict=True)),
           "int8": dict(zip(("tau_table", "tau_retest"), taus(b), strict=True))}
    row["int8_minus_fp32"] = row["int8"]["tau_table"] - row["fp32"]["tau_table"]
    row["int8_minus_fp32_95pct"] = interval(differences)
    row["int8_at_least_fp32_share_of_resamples"] = sum(d >= 0 for d in differences) / len(differences)
    if not passes:
        return row
    again = remeasure(fp32, int8, passes)
    row["remeasured_passes"] = passes
    predicted = {}
    for precision, nets in (("fp32", a), ("int8", b)):
        r = row[precision]
        predicted[precision], first = [n["predicted_ms"] for n in nets], [n["measured_ms"] for n in nets]
        r["remeasured_ms"], r["predicted_ms"], r["measured_ms"] = again[precision], predicted[precision], first
        r["tau_table_vs_remeasured"] = tau(predicted[precision], again[precision])
        r["tau_measured_vs_remeasured"] = tau(first, again[precision])
        # the table's tau minus the profile's measurement's, both against the second: above zero, the table ranks
        # as closely as measuring again does
        r["table_minus_measurement_95pct"] = interval(
            [tau(predicted[precision], again[precision], picks) - tau(first, again[precision], picks)
             for picks in samples])
        r["perfect_table"] = perfect_table_tau(again[precision], r["tau_measured_vs_remeasured"])
    row["int8_minus_fp32_vs_remeasured"] = (row["int8"]["tau_table_vs_remeasured"]
                                            - row["fp32"]["tau_table_vs_remeasured"])
    row["int8_minus_fp32_vs_remeasured_95pct"] = interval(
        [tau(predicted["int8"], again["int8"], picks) - tau(predicted["fp32"], again["fp32"], picks)
         for picks in samples])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", type=Path, nargs="+")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--remeasure", type=int, default=0, metavar="PASSES",
                        help="also time the networks again here in this many passes (0: no)")
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
        layers = [[n["layers"] for n in t["validation"]["networks"]] for t in (fp32, int8)]
        if layers[0] != layers[1]:
            raise SystemExit(f"{space} {resolution} t{threads}: the FP32 and INT8 tables hold other networks")
        row = compare(fp32, int8, args.resamples, args.remeasure)
        rows.append(row)
        low, high = row["int8_minus_fp32_95pct"]
        print(f"{space} {resolution} t{threads} ({row['networks']} networks): tau FP32 {row['fp32']['tau_table']:.3f} "
              f"(retest {row['fp32']['tau_retest']:.3f}), INT8 {row['int8']['tau_table']:.3f} (retest "
              f"{row['int8']['tau_retest']:.3f}); INT8 - FP32 {row['int8_minus_fp32']:+.3f}, 95% [{low:+.3f}, "
              f"{high:+.3f}], INT8 >= FP32 in {100 * row['int8_at_least_fp32_share_of_resamples']:.0f}% of "
              "resamples", flush=True)
        if args.remeasure:
            for p in ("fp32", "int8"):
                r = row[p]
                low, high = r["table_minus_measurement_95pct"]
                print(f"  against {args.remeasure} passes measured again, {p.upper()}: table tau "
                      f"{r['tau_table_vs_remeasured']:.3f}, the profile's measurement "
                      f"{r['tau_measured_vs_remeasured']:.3f}"
                      f" (table minus measurement 95% [{low:+.3f}, {high:+.3f}]); a perfect table "
                      f"{r['perfect_table']['tau']:.3f} ({r['perfect_table']['noise_per_measurement_pct']:.1f}% noise "
                      "per measurement)", flush=True)
            low, high = row["int8_minus_fp32_vs_remeasured_95pct"]
            print(f"  INT8 - FP32 against it: {row['int8_minus_fp32_vs_remeasured']:+.3f}, 95% [{low:+.3f}, "
                  f"{high:+.3f}]", flush=True)
        if args.out is not None:  # after every pair: a long re-measurement keeps its rows
            args.out.write_text(json.dumps({"resamples": args.resamples, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
