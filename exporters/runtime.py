"""ONNX Runtime sessions with pinned threads, and timing of single calls.

Sessions run sequentially with every graph optimisation on and a fixed intra-op thread count, so a latency is
a property of the model, the runtime and the thread count. Timing helpers keep one session alive at a time:
with two threads, idle sessions' spinning worker threads were seen to slow every measurement by 26-48%.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from edgenas.errors import EdgeNASError

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "coreml": "CoreMLExecutionProvider",
             "openvino": "OpenVINOExecutionProvider", "dml": "DmlExecutionProvider"}


def provider_name(provider: str) -> str:
    """`cpu` -> `CPUExecutionProvider`, checked against what this onnxruntime build offers."""
    import onnxruntime as ort

    name = PROVIDERS.get(provider.lower(), provider)
    available = ort.get_available_providers()
    if name not in available:
        raise EdgeNASError(f"execution provider {provider!r} is not available in this onnxruntime; available: "
                           f"{', '.join(available)}")
    return name


def make_session(model: bytes | str, threads: int = 1, provider: str = "cpu"):
    """An InferenceSession for an ONNX file or bytes, pinned to `threads` intra-op threads."""
    import onnxruntime as ort

    if threads < 1:
        raise EdgeNASError(f"bad thread count {threads}: expected 1 or more")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model, options, providers=[provider_name(provider)])
    except EdgeNASError:
        raise
    except Exception as exc:  # onnxruntime raises its own exception types for files it cannot load
        what = model if isinstance(model, str) else "model"
        raise EdgeNASError(f"onnxruntime cannot load {what}: {str(exc).splitlines()[0]}") from None


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
