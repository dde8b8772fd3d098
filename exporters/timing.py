"""Timing on the host: the loop of every latency edgenas measures (profiler pieces, export verification, whatever
the runtime), its percentile, the best-of-passes median an export reports, and a file's batch-1 latency on its
runtime.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_calls(call: Callable[..., object], args: tuple, warmup: int, repeats: int) -> list[float]:
    """Milliseconds of `repeats` calls of `call(*args)` after `warmup` untimed calls, by `time.perf_counter`: the
    timing loop of every measurement edgenas makes on the host (CUDA timings use CUDA events instead)."""
    for _ in range(warmup):
        call(*args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(*args)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def p90(times: list[float]) -> float:
    """The 90th percentile of `times`: the sorted times' element at index int(0.9 n) (the largest for fewer than
    ten), so that at least 90% of the calls are at most as slow and the p90 is one of the times measured.

    This is the linear-interpolation percentile's upper neighbour (numpy's method "higher"; statistics.quantiles
    interpolates between it and the element below). Latency tables have always written it; export reports used the
    lower neighbour (index int(0.9 (n - 1))) before, and their p90 can be one rank higher now.
    """
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def median_latency(call: Callable[[], object], warmup: int, repeats: int, passes: int = 3) -> dict:
    """Milliseconds per call of `call()`: the best of `passes` pass medians (each after `warmup` untimed calls), and
    the p90 over every timed call."""
    best, calls = None, []
    for _ in range(passes):
        times = time_calls(call, (), warmup, repeats)
        calls += times
        median = statistics.median(times)
        best = median if best is None else min(best, median)
    return {"median_ms": best, "p90_ms": p90(calls), "calls": len(calls)}


def time_file(rt, path, threads: int, one, warmup: int, repeats: int) -> tuple[dict, str]:
    """Batch-1 latency of the file on `one` image, in a session opened for batch 1 and closed after; and how the
    session ran (threads, and the runtime's own settings)."""
    session = rt.open(path, threads, batch=1)
    return median_latency(lambda: session.run(one), warmup, repeats), session.how
