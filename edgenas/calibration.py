"""Calibration of a latency table against whole networks, and the fidelity it gives.

A table predicts a network's latency as the sum of its pieces timed alone; whole networks measured end to end
show how that sum is off (per-call overhead, caches). `calibrate` fits the simplest correction the measurements
support and reports its out-of-sample (leave-one-out) error and rank correlation.
"""

from __future__ import annotations

import statistics

from .latency import apply_calibration

# Calibrations, simplest first. A feature list per kind; the prediction is a weighted sum of the features.
# `memory` adds a term per million parameters: blocks timed alone keep their weights in cache, a whole network
# of small feature maps does not (seen at 32x32, where large networks ran up to 1.5x their sum of pieces).
CALIBRATIONS = {"none": (), "scale": ("scale",), "linear": ("scale", "offset_ms"),
                "memory": ("scale", "ms_per_mparam", "offset_ms")}
_MIN_NETWORKS = {"none": 0, "scale": 1, "linear": 4, "memory": 6}


def _features(network: dict) -> dict[str, float]:
    return {"scale": network["predicted_raw_ms"], "offset_ms": 1.0, "ms_per_mparam": network["params"] / 1e6}


def fit(kind: str, networks: list[dict]) -> dict:
    """Least squares on relative errors, so that each network counts the same whatever its latency."""
    import numpy as np

    names = CALIBRATIONS[kind]
    calibration = {"kind": kind, "scale": 1.0, "offset_ms": 0.0, "ms_per_mparam": 0.0}
    if not names or not networks:
        return calibration
    weights = np.array([1.0 / n["measured_ms"] for n in networks])
    features = np.array([[_features(n)[name] for name in names] for n in networks]) * weights[:, None]
    coefficients = np.linalg.lstsq(features, np.ones(len(networks)), rcond=None)[0]
    calibration.update({name: float(value) for name, value in zip(names, coefficients, strict=True)})
    return calibration


def _leave_one_out(kind: str, networks: list[dict]) -> list[float]:
    """Each network predicted with a calibration fitted to the others: an honest, out-of-sample error."""
    return [apply_calibration(n["predicted_raw_ms"], n["params"], fit(kind, networks[:i] + networks[i + 1:]))
            for i, n in enumerate(networks)]


def _errors(predicted: list[float], measured: list[float]) -> list[float]:
    return [100.0 * (p - m) / m for p, m in zip(predicted, measured, strict=True)]


def error_stats(errors: list[float]) -> dict:
    absolute = sorted(abs(e) for e in errors)
    if not absolute:
        return dict.fromkeys(("median_abs_error_pct", "p95_abs_error_pct", "within_10pct", "max_abs_error_pct"))
    return {"median_abs_error_pct": statistics.median(absolute),
            "p95_abs_error_pct": absolute[min(len(absolute) - 1, round(0.95 * (len(absolute) - 1)))],
            "within_10pct": sum(a <= 10.0 for a in absolute) / len(absolute),
            "max_abs_error_pct": absolute[-1]}


def kendall_tau(a: list[float], b: list[float]) -> float | None:
    pairs = [(i, j) for i in range(len(a)) for j in range(i + 1, len(a))]
    if not pairs:
        return None
    score = sum((a[i] - a[j]) * (b[i] - b[j]) > 0 for i, j in pairs) - sum(
        (a[i] - a[j]) * (b[i] - b[j]) < 0 for i, j in pairs)
    return score / len(pairs)


def calibrate(networks: list[dict], floor: dict | None = None) -> tuple[dict, dict]:
    """Choose the simplest calibration the data supports and report the fidelity it gives.

    Each kind of `CALIBRATIONS` is judged by its leave-one-out median absolute error; a more complex one must win
    by more than 0.25 percentage points to be chosen over a simpler one. A kind whose fit predicts a non-positive
    latency for `floor` (the space's cheapest network: `predicted_raw_ms`, `params`) is not used: a negative
    offset fitted on mid-sized networks once predicted negative milliseconds for the smallest ones.
    """
    measured = [n["measured_ms"] for n in networks]
    best_kind, best_error = "none", None
    for kind in CALIBRATIONS:
        if len(networks) < _MIN_NETWORKS[kind] or (kind != "none" and len(networks) < 2):
            continue
        if floor is not None and apply_calibration(floor["predicted_raw_ms"], floor["params"],
                                                   fit(kind, networks)) <= 0:
            continue
        error = error_stats(_errors(_leave_one_out(kind, networks), measured))["median_abs_error_pct"]
        if best_error is None or error < best_error - 0.25:
            best_kind, best_error = kind, error
    loo = _leave_one_out(best_kind, networks)
    for network, value in zip(networks, loo, strict=True):
        network["predicted_ms"] = value
        network["error_pct"] = 100.0 * (value - network["measured_ms"]) / network["measured_ms"]
    validation = {
        "networks": networks,
        "count": len(networks),
        "method": "each network predicted with a calibration fitted to the other networks (leave-one-out)",
        **error_stats([n["error_pct"] for n in networks]),
        "before_calibration": error_stats(_errors([n["predicted_raw_ms"] for n in networks], measured)),
        "kendall_tau_table": kendall_tau(loo, measured),
        "kendall_tau_flops": kendall_tau([n["flops"] for n in networks], measured),
    }
    return fit(best_kind, networks), validation
