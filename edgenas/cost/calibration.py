"""Calibration of a latency table against whole networks, and the fidelity it gives.

A table predicts a network's latency from the sum of its pieces timed alone; whole networks measured end to end
show how that sum is off. Two effects were measured (docs/BENCHMARKS.md, "Latency table fidelity"):
- per-call overhead: every piece timed alone pays one `session.run` (about 7 us at 32x32 here) that a whole
  network pays once, so small networks of many cheap pieces ran at 0.8x their sum of pieces;
- cache: a piece timed alone keeps its weights in cache; a whole network whose weights exceed the cache reloads
  them at every call, so networks above about 3.5M FP32 parameters (14 MB) ran up to 1.4x their sum.
`calibrate` fits the simplest correction the measurements support, judged out of sample (leave-one-out), and
reports the fidelity it gives. The fitted terms (`latency.CALIBRATION_TERMS`) stay additive over pieces apart from
the cache term, which is a maximum of two additive costs (`cost.py` budgets both).
"""

from __future__ import annotations

import statistics

from edgenas.cost.latency import apply_calibration

# Calibrations, simplest first: the linear terms fitted for each kind. `cache` also fits the threshold
# `cache_mparams` above which each further million parameters costs `ms_per_mparam_over_cache`.
CALIBRATIONS = {"none": (), "scale": ("scale",), "linear": ("scale", "offset_ms"),
                "memory": ("scale", "ms_per_mparam", "offset_ms"), "calls": ("scale", "ms_per_call"),
                "cache": ("scale", "ms_per_call", "ms_per_mparam_over_cache")}
_MIN_NETWORKS = {"none": 0, "scale": 1, "linear": 4, "memory": 6, "calls": 4, "cache": 10}
# A kind must beat a simpler one by this much mean absolute leave-one-out error (percentage points) to be chosen.
_MARGIN = 0.25


def _features(network: dict, threshold: float = 0.0, piece_ms: float | None = None) -> dict[str, float]:
    mparams = network["params"] / 1e6
    raw = network["predicted_raw_ms"]
    if piece_ms is not None:  # the per-call term bound to -scale x piece_ms: the scale then multiplies this
        raw -= piece_ms * network.get("calls", 0)
    return {"scale": raw, "offset_ms": 1.0, "ms_per_mparam": mparams, "ms_per_call": float(network.get("calls", 0)),
            "ms_per_mparam_over_cache": max(0.0, mparams - threshold)}


# Coefficients that physics bounds below by 0: a costlier piece (`scale`), a network with more parameters, or one
# further past the cache, is never predicted faster. `scale` must moreover stay above 0.
_AT_LEAST_ZERO = ("scale", "ms_per_mparam", "ms_per_mparam_over_cache")


def _solve(names: tuple[str, ...], networks: list[dict], threshold: float = 0.0,
           piece_ms: float | None = None) -> tuple[dict, float] | None:
    """Least squares on relative errors, so that each network counts the same whatever its latency, under the bounds
    physics sets; returns the coefficients and the sum of squared relative residuals, or None where no fit keeps
    them (`scale` would be 0 or less).

    The bounds: `scale`, `ms_per_mparam` and `ms_per_mparam_over_cache` at least 0 (a free fit once gave a scale of
    -0.11: every costlier block predicted a faster network), and a cost per call that does not make the space's
    cheapest piece (`piece_ms`, its median) cost less than nothing (a network cannot get faster by gaining a block):
    at least -scale x piece_ms. Where the free fit breaks a bound, each set of coefficients held at their bounds is
    fitted (the rest free) and the best fit that keeps every bound is taken: with these few coefficients, the exact
    bounded least-squares solution.
    """
    import itertools

    import numpy as np

    weights = np.array([1.0 / n["measured_ms"] for n in networks])

    def solve(free: tuple[str, ...], bound: float | None):  # coefficients not in `free`: 0, or the per-call bound
        features = np.array([[_features(n, threshold, bound)[name] for name in free] for n in networks])
        features = features * weights[:, None]
        coefficients = np.linalg.lstsq(features, np.ones(len(networks)), rcond=None)[0]
        residual = float(((features @ coefficients - 1.0) ** 2).sum())
        fitted = dict.fromkeys(names, 0.0) | {name: float(v) for name, v in zip(free, coefficients, strict=True)}
        if bound is not None:
            fitted["ms_per_call"] = -fitted["scale"] * bound
        return fitted, residual

    def keeps_bounds(fitted: dict) -> bool:
        if fitted["scale"] <= 0 or any(fitted[name] < 0 for name in _AT_LEAST_ZERO if name in fitted):
            return False
        call = fitted.get("ms_per_call")
        return piece_ms is None or call is None or fitted["scale"] * piece_ms + call >= 0

    free_fit = solve(names, None)
    if keeps_bounds(free_fit[0]):
        return free_fit
    held = [name for name in names if name in _AT_LEAST_ZERO and name != "scale"]
    bounds = [None] if piece_ms is None or "ms_per_call" not in names else [None, piece_ms]
    fits = [solve(tuple(n for n in names if n not in zeros and not (bound is not None and n == "ms_per_call")), bound)
            for k in range(len(held) + 1) for zeros in itertools.combinations(held, k) for bound in bounds]
    kept = [f for f in fits if keeps_bounds(f[0])]
    return min(kept, key=lambda f: f[1]) if kept else None


def fit(kind: str, networks: list[dict], piece_ms: float | None = None) -> dict:
    """The calibration of `kind` fitted to `networks` (each: `predicted_raw_ms`, `measured_ms`, `params`, `calls`);
    `piece_ms`, the space's cheapest piece, bounds a per-call cost (see `_solve`).

    `cache` tries each network's own parameter count as the threshold and keeps the one with the smallest residual
    among those whose cost above it is positive (a network past the cache is slower, never faster).
    """
    names = CALIBRATIONS[kind]
    calibration = {"kind": kind, "scale": 1.0, "offset_ms": 0.0, "ms_per_mparam": 0.0}
    if not names or not networks:
        return calibration
    if kind != "cache":
        solved = _solve(names, networks, piece_ms=piece_ms)
        if solved is None:  # no fit of this kind keeps the bounds: the plain scale, which always does
            return fit("scale", networks) if kind != "scale" else calibration
        calibration.update(solved[0])
        return calibration
    best = None
    for threshold in sorted({n["params"] / 1e6 for n in networks})[:-2]:  # at least two networks above it
        solved = _solve(names, networks, threshold, piece_ms)
        if solved and solved[0]["ms_per_mparam_over_cache"] > 0 and (best is None or solved[1] < best[0]):
            best = solved[1], threshold, solved[0]
    if best is None:  # no network pays for the cache: the per-call fit alone
        calibration = {**fit("calls", networks, piece_ms), "kind": "cache"}
        calibration.update({"ms_per_mparam_over_cache": 0.0, "cache_mparams": 0.0})
        return calibration
    calibration.update(best[2])
    calibration["cache_mparams"] = best[1]
    return calibration


def describe(calibration: dict) -> str:
    """`cache (scale 1.229, -13.2 us per piece, 0.159 ms per million parameters beyond 3.61M)`: its nonzero terms."""
    c = calibration.get
    terms = [f"scale {c('scale', 1.0):.3f}"]
    if c("ms_per_call"):
        terms.append(f"{1000 * c('ms_per_call'):+.1f} us per piece")
    if c("ms_per_mparam"):
        terms.append(f"{c('ms_per_mparam'):+.3f} ms per million parameters")
    if c("ms_per_mparam_over_cache"):
        terms.append(f"{c('ms_per_mparam_over_cache'):+.3f} ms per million parameters beyond "
                     f"{c('cache_mparams', 0.0):.2f}M")
    if c("offset_ms"):
        terms.append(f"offset {c('offset_ms'):+.3f} ms")
    return f"{c('kind', '?')} ({', '.join(terms)})"


def predict(network: dict, calibration: dict) -> float:
    return apply_calibration(network["predicted_raw_ms"], network["params"], network.get("calls", 0), calibration)


def _leave_one_out(kind: str, networks: list[dict], piece_ms: float | None = None) -> list[float]:
    """Each network predicted with a calibration fitted to the others: an honest, out-of-sample error."""
    return [predict(n, fit(kind, networks[:i] + networks[i + 1:], piece_ms)) for i, n in enumerate(networks)]


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
    """Kendall's tau-a of two rankings: (concordant - discordant pairs) / all pairs; None for fewer than two items.

    Tables have always written tau-a. scipy.stats.kendalltau computes tau-b, which differs where either side ties
    (two validation networks of equal FLOPs) and, even without ties, by a rounding (it divides by the square roots
    of the pair counts): on the shipped tables it changes 17 of their 24 written values in the last digit.
    """
    pairs = [(i, j) for i in range(len(a)) for j in range(i + 1, len(a))]
    if not pairs:
        return None
    score = sum((a[i] - a[j]) * (b[i] - b[j]) > 0 for i, j in pairs) - sum(
        (a[i] - a[j]) * (b[i] - b[j]) < 0 for i, j in pairs)
    return score / len(pairs)


def _positive(calibration: dict, floor: dict | None) -> bool:
    """Whether the calibration predicts a positive latency for the space's cheapest network and a non-negative cost
    for its cheapest piece (`floor`: `predicted_raw_ms`, `params`, `calls`, `piece_ms`, `piece_params`)."""
    if floor is None:
        return True
    if predict(floor, calibration) <= 0:
        return False
    piece = {"predicted_raw_ms": floor.get("piece_ms", 0.0), "params": floor.get("piece_params", 0), "calls": 1}
    share = {**calibration, "offset_ms": 0.0, "ms_per_mparam_over_cache": 0.0}  # a piece's additive share alone
    return "piece_ms" not in floor or predict(piece, share) >= -1e-12


def calibrate(networks: list[dict], floor: dict | None = None) -> tuple[dict, dict]:
    """Choose the simplest calibration the data supports and report the fidelity it gives.

    Each kind of `CALIBRATIONS` is judged by its mean absolute leave-one-out error (the mean, not the median, so
    that a fit that fails the smallest or the largest networks loses); a more complex one must win by more than
    `_MARGIN` percentage points to be chosen over a simpler one. A kind whose fit predicts a non-positive latency
    for the space's cheapest network, or a negative cost for its cheapest piece (`floor`), is not used: a negative
    offset fitted on mid-sized networks once predicted negative milliseconds for the smallest ones.
    """
    measured = [n["measured_ms"] for n in networks]
    piece_ms = None if floor is None else floor.get("piece_ms")
    best_kind, best_error, tried, too_few = "none", None, {}, {}
    for kind in CALIBRATIONS:
        if len(networks) < _MIN_NETWORKS[kind] or (kind != "none" and len(networks) < 2):
            too_few[kind] = max(2, _MIN_NETWORKS[kind])
            continue
        fitted = fit(kind, networks, piece_ms)
        if fitted["kind"] != kind or not _positive(fitted, floor):  # no fit of the kind within the bounds
            continue
        errors = _errors(_leave_one_out(kind, networks, piece_ms), measured)
        tried[kind] = {"mean_abs_error_pct": statistics.fmean(abs(e) for e in errors), **error_stats(errors)}
        if best_error is None or tried[kind]["mean_abs_error_pct"] < best_error - _MARGIN:
            best_kind, best_error = kind, tried[kind]["mean_abs_error_pct"]
    loo = _leave_one_out(best_kind, networks, piece_ms)
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
        "kinds_tried": tried,
        "kinds_not_tried": too_few,  # kind -> the networks it needs: too few were measured to fit it
    }
    return fit(best_kind, networks, piece_ms), validation
