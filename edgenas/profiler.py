"""The profiler: measures a space's pieces and whole validation networks on this machine and builds a table.

Protocol (what gave 1-2% error on this project's 2-core machine, see METHOD.md section 4): every piece (stem,
each distinct block at each layer shape, head) is exported alone to ONNX and timed in ONNX Runtime in several
interleaved passes; each pass creates the piece's session, warms it up, times `repeats` calls and closes it, so
only one session is alive at a time. A piece's `median_ms` is its smallest pass median, which discards passes
disturbed by other processes; `p90_ms`, `mean_ms` and `std_ms` are over all timed calls, and `pass_medians_ms`
shows the spread. Validation networks are measured end to end the same way, and a calibration is fitted to them.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .arch import Arch
from .errors import EdgeNASError
from .files import atomic_write_bytes, read_json, write_json
from .latency import (
    HEAD_CLASSES,
    SCHEMA,
    LatencyTable,
    apply_calibration,
    block_key,
    head_key,
    stem_key,
    validate_table,
)
from .space import Space, get_space


@dataclass(frozen=True)
class Piece:
    """Something to time: a table entry (a block, the stem, a head) or a whole validation network."""

    key: str
    build: Callable[[], Any]  # -> torch.nn.Module
    input_shape: tuple[int, int, int]


def space_pieces(space: Space) -> list[Piece]:
    """Every entry a table of `space` needs, each distinct key once."""
    from .blocks import make_block
    from .model import Head, Stem

    pieces = {stem_key(space): Piece(stem_key(space), lambda: Stem(space), (3, space.resolution, space.resolution))}
    last = (space.last_channels, space.last_size, space.last_size)
    for classes in HEAD_CLASSES:
        key = head_key(space, classes)
        pieces[key] = Piece(key, lambda c=classes: Head(space, c), last)
    for layer in space:
        for choice in layer.blocks:
            key = block_key(layer, choice)
            if key not in pieces:
                pieces[key] = Piece(key, lambda c=choice, la=layer: make_block(c, la.in_channels, la.out_channels,
                                                                                la.stride),
                                    (layer.in_channels, layer.in_size, layer.in_size))
    return list(pieces.values())


def validation_archs(space: Space, count: int, seed: int, num_classes: int = 1000) -> list[tuple[str, Arch]]:
    """`count` random architectures spread evenly over the space's FLOPs range, plus MobileNetV2 where it exists and
    the smallest and largest networks.

    Uniform random choices all land near the middle of the range; here network i aims at the (i + 0.5) / count
    quantile of each layer's choices sorted by FLOPs, with noise, so the networks span cheap to expensive.
    """
    from .arch import make_arch
    from .flops import cost_table
    from .presets import mobilenetv2

    table = cost_table(space)
    rng = random.Random(seed)
    archs = []
    for i in range(count):
        target = (i + 0.5) / count
        layers = []
        for layer in space:
            ranked = sorted(layer.choices, key=lambda c, la=layer.label: table.layers[la][c][0])
            position = target * (len(ranked) - 1) + rng.gauss(0, max(0.5, len(ranked) / 8))
            layers.append(ranked[min(len(ranked) - 1, max(0, round(position)))])
        archs.append((f"random{i:02d}", make_arch(space, layers, num_classes)))
    if space.spec.mobilenetv2_depths is not None:
        archs.append(("mobilenetv2", mobilenetv2(space, num_classes)))
    if count:  # the ends of the range too, so that no calibration is fitted only on mid-sized networks
        from .presets import extreme

        archs += [(name, extreme(space, num_classes, largest=name == "largest")) for name in ("smallest", "largest")]
    return archs


def network_piece(name: str, arch: Arch) -> Piece:
    from .model import build_model

    return Piece(f"net:{name}", lambda: build_model(arch), (3, arch.resolution, arch.resolution))


# ---------------------------------------------------------------- timing backends


class OrtBackend:
    """ONNX Runtime: each piece exported once to ONNX; one session alive at a time."""

    def __init__(self, threads: int, provider: str = "cpu", opset: int = 17):
        from exporters.runtime import provider_name

        self.threads, self.opset = threads, opset
        self.provider = provider_name(provider)
        self._models: dict[str, bytes] = {}

    def describe(self) -> dict:
        import onnxruntime

        return {"backend": "onnxruntime", "version": onnxruntime.__version__, "provider": self.provider,
                "threads": self.threads, "graph_optimization": "ORT_ENABLE_ALL", "execution": "sequential",
                "opset": self.opset}

    def prepare(self, piece: Piece) -> None:
        from exporters.onnx_export import to_onnx

        self._models[piece.key] = to_onnx(piece.build(), piece.input_shape, opset=self.opset)

    def time(self, piece: Piece, warmup: int, repeats: int) -> list[float]:
        import numpy as np

        from exporters.runtime import make_session, time_calls

        session = make_session(self._models[piece.key], self.threads, self.provider)
        x = np.random.default_rng(0).standard_normal((1, *piece.input_shape)).astype(np.float32)
        try:
            return time_calls(session, {session.get_inputs()[0].name: x}, warmup, repeats)
        finally:
            del session


class TorchBackend:
    """PyTorch eager (inference mode); on CUDA, timed with CUDA events, so a table can describe a GPU deployment."""

    def __init__(self, threads: int, device: str = "cpu"):
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            raise EdgeNASError("--provider cuda with --backend torch needs a CUDA GPU; none is visible")
        self.threads, self.device = threads, torch.device(device)
        self._modules: dict[str, Any] = {}

    def describe(self) -> dict:
        import torch

        info = {"backend": "torch-eager", "version": torch.__version__, "device": str(self.device),
                "threads": self.threads}
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.device)
        return info

    def prepare(self, piece: Piece) -> None:
        self._modules[piece.key] = piece.build().eval().to(self.device)

    def time(self, piece: Piece, warmup: int, repeats: int) -> list[float]:
        import torch

        module = self._modules[piece.key]
        x = torch.randn(1, *piece.input_shape, generator=torch.Generator().manual_seed(0)).to(self.device)
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                for _ in range(warmup):
                    module(x)
                times = []
                for _ in range(repeats):
                    if self.device.type == "cuda":
                        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        start.record()
                        module(x)
                        end.record()
                        end.synchronize()
                        times.append(start.elapsed_time(end))
                    else:
                        t0 = time.perf_counter()
                        module(x)
                        times.append((time.perf_counter() - t0) * 1000.0)
            return times
        finally:
            torch.set_num_threads(previous)


def make_backend(backend: str, threads: int, provider: str) -> OrtBackend | TorchBackend:
    if threads < 1:
        raise EdgeNASError(f"bad --threads {threads}: expected 1 or more")
    if backend == "ort":
        return OrtBackend(threads, provider)
    if backend == "torch":
        return TorchBackend(threads, "cuda" if provider.lower() == "cuda" else "cpu")
    raise EdgeNASError(f"unknown backend {backend!r}: expected ort or torch")


# ---------------------------------------------------------------- measuring


def _check_timing(warmup: int, repeats: int, passes: int) -> None:
    if warmup < 0 or repeats < 1 or passes < 1:
        raise EdgeNASError(f"bad timing settings: warmup {warmup}, repeats {repeats}, passes {passes}; expected "
                           "warmup >= 0, repeats >= 1, passes >= 1")


def measure(pieces: list[Piece], backend, warmup: int, repeats: int, passes: int,
            advance: Callable[[str], None] = lambda key: None, journal: _Journal | None = None) -> dict[str, dict]:
    """Time every piece in `passes` interleaved passes; returns key -> timing statistics (milliseconds).

    With a `journal`, each (pass, piece) measured is recorded as soon as it is timed, and those it already holds
    (from an interrupted profile) are taken from it instead of being timed again.
    """
    _check_timing(warmup, repeats, passes)
    done = journal.done if journal is not None else {}
    for piece in pieces:
        if any((p, piece.key) not in done for p in range(passes)):  # a piece timed in every pass needs no model
            backend.prepare(piece)
        advance(piece.key)
    calls: dict[str, list[float]] = {piece.key: [] for piece in pieces}
    medians: dict[str, list[float]] = {piece.key: [] for piece in pieces}
    for p in range(passes):
        # Alternate the order so that drift during a pass does not always hit the same pieces.
        for piece in pieces if p % 2 == 0 else reversed(pieces):
            times = done.get((p, piece.key))
            if times is None:
                times = backend.time(piece, warmup, repeats)
                if journal is not None:
                    journal.add(p, piece.key, times)
            calls[piece.key] += times
            medians[piece.key].append(statistics.median(times))
            advance(piece.key)
    return {key: summarize(calls[key], medians[key]) for key in calls}


def summarize(times: list[float], pass_medians: list[float]) -> dict:
    ordered = sorted(times)
    return {"median_ms": min(pass_medians), "p90_ms": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
            "mean_ms": statistics.fmean(times), "std_ms": statistics.pstdev(times), "n": len(times),
            "pass_medians_ms": pass_medians}


# ---------------------------------------------------------------- calibration and fidelity


# Calibrations, simplest first. A feature list per kind; the prediction is a weighted sum of the features.
# `memory` adds a term per million parameters: blocks timed alone keep their weights in cache, a whole network
# of small feature maps does not (seen at 32x32, where large networks ran up to 1.5x their sum of pieces).
CALIBRATIONS = {"none": (), "scale": ("scale",), "linear": ("scale", "offset_ms"),
                "memory": ("scale", "ms_per_mparam", "offset_ms")}
_MIN_NETWORKS = {"none": 0, "scale": 1, "linear": 4, "memory": 6}


def _features(network: dict) -> dict[str, float]:
    return {"scale": network["predicted_raw_ms"], "offset_ms": 1.0, "ms_per_mparam": network["params"] / 1e6}


def _fit(kind: str, networks: list[dict]) -> dict:
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
    return [apply_calibration(n["predicted_raw_ms"], n["params"], _fit(kind, networks[:i] + networks[i + 1:]))
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
                                                   _fit(kind, networks)) <= 0:
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
    return _fit(best_kind, networks), validation


# ---------------------------------------------------------------- the table


def host_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "os": platform.platform(), "python": platform.python_version(),
            "machine": platform.machine()}


def build_table(device: str, space: Space, runtime: dict, entries: dict, networks: dict[str, float],
                archs: list[tuple[str, Arch]], warmup: int, repeats: int, passes: int, host: dict) -> dict:
    """Assemble the table document; validation networks (if any) fit its calibration."""
    from .flops import cost_table

    flops_table = cost_table(space)
    data = {
        "schema": SCHEMA, "device": device, "host": host, "runtime": runtime,
        "space": space.name, "space_hash": space.hash, "resolution": space.resolution,
        "width_mult": space.width_mult, "batch": 1, "warmup": warmup, "repeats": repeats, "passes": passes,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "statistic": "median_ms is the smallest of the passes' medians; p90, mean and std are over all calls",
        "entries": entries,
        "fixed": {"stem": stem_key(space), "head": {str(c): head_key(space, c) for c in HEAD_CLASSES}},
        "calibration": _fit("none", []),
        "validation": {"count": 0, "networks": []},
    }
    table = validate_table(data, device)
    measured = [
        {"name": name, "layers": list(arch.layers), "num_classes": arch.num_classes, "flops": flops_table.flops(arch),
         "params": flops_table.params(arch), "predicted_raw_ms": table.raw_ms(arch),
         "measured_ms": networks[f"net:{name}"]}
        for name, arch in archs if f"net:{name}" in networks
    ]
    if measured:
        from .presets import extreme

        cheapest = extreme(space, 10, largest=False)
        floor = {"predicted_raw_ms": table.raw_ms(cheapest), "params": flops_table.params(cheapest)}
        data["calibration"], data["validation"] = calibrate(measured, floor)
    return data


def profile(device: str, space: Space, *, threads: int = 1, provider: str = "cpu", backend: str = "ort",
            warmup: int = 10, repeats: int = 50, passes: int = 5, validate: int = 20, seed: int = 0,
            out: str | os.PathLike | None = None, progress: bool = True, fresh: bool = False,
            log: Callable[[str], None] = print) -> tuple[Path, LatencyTable]:
    """Measure `space` on this machine and write its latency table atomically.

    Each timing is journaled in `OUT.partial` as soon as it is measured; a profile that was killed or interrupted
    continues from there when run again with the same settings (`fresh` discards the journal). The journal is keyed
    by everything that shapes a timing, so another space, resolution, width, runtime, thread count, host or timing
    protocol never reuses it; it is removed once the table is written.
    """
    _check_device_name(device)
    if validate < 0:
        raise EdgeNASError(f"bad --validate {validate}: expected 0 or more networks")
    _check_timing(warmup, repeats, passes)
    path = Path(out) if out is not None else Path("latency_tables") / f"{device}.json"
    if out is not None and not path.parent.is_dir():
        raise EdgeNASError(f"cannot write {path}: folder {path.parent} does not exist")
    timer = make_backend(backend, threads, provider)
    if out is None:
        path.parent.mkdir(exist_ok=True)
    pieces = space_pieces(space)
    archs = validation_archs(space, validate, seed) if validate else []
    nets = [network_piece(name, arch) for name, arch in archs]
    from . import __version__

    identity = {"device": device, "space": space.name, "space_hash": space.hash, "resolution": space.resolution,
                "width_mult": space.width_mult, "runtime": timer.describe(), "warmup": warmup, "repeats": repeats,
                "passes": passes, "validate": validate, "seed": seed, "host": host_info(), "edgenas": __version__}
    journal = _Journal.open(path.with_name(path.name + ".partial"), identity, [p.key for p in pieces + nets],
                            passes, repeats, fresh, log)
    try:
        with _progress(progress, f"profiling {space.name} at {space.resolution} on {device}",
                       (len(pieces) + len(nets)) * (passes + 1)) as advance:
            start = time.perf_counter()
            entries = measure(pieces, timer, warmup, repeats, passes, advance, journal)
            middle = time.perf_counter()
            timings = measure(nets, timer, warmup, repeats, passes, advance, journal) if nets else {}
            seconds = {"pieces": middle - start, "validation": time.perf_counter() - middle}
    except KeyboardInterrupt:
        log(f"{len(journal.done)} timings kept in {journal.path}: run the same command again to continue")
        raise
    finally:
        journal.close()
    networks = {key: value["median_ms"] for key, value in timings.items()}
    data = build_table(device, space, timer.describe(), entries, networks, archs, warmup, repeats, passes,
                       host_info())
    data["profiling_seconds"] = seconds
    data["resumed_timings"] = journal.resumed
    try:
        write_json(path, data)
    except EdgeNASError as exc:
        raise EdgeNASError(f"{exc}; the timings are kept in {journal.path}: run the same command again to write "
                           "the table without measuring") from None
    journal.path.unlink(missing_ok=True)
    return path, validate_table(data, str(path))


class _Journal:
    """The timings of a profile in progress: a header line (what they were measured with), then one JSON line per
    (pass, piece) appended as soon as it is timed.

    An appended line reaches the file at once (a SIGKILL loses at most the piece being timed); a line cut short
    (a crash of the machine) and anything after it is dropped on reading. A journal whose header differs from this
    profile's settings is not reused.
    """

    def __init__(self, path: Path, done: dict[tuple[int, str], list[float]], resumed: int):
        self.path, self.done, self.resumed = path, done, resumed
        self._handle = None

    @classmethod
    def open(cls, path: Path, identity: dict, keys: list[str], passes: int, repeats: int, fresh: bool,
             log: Callable[[str], None]) -> _Journal:
        import json

        header = {"partial_table": path.name.removesuffix(".partial"), "identity": identity}
        done: dict[tuple[int, str], list[float]] = {}
        if path.exists() and not fresh:
            done, reason = cls._read(path, header, set(keys), passes, repeats)
            if reason:
                log(f"not resuming from {path}: {reason}; measuring from the start")
            elif done:
                log(f"resuming the profile from {path}: {len(done)} of {len(keys) * passes} timings already "
                    "measured (--fresh measures everything again)")
        lines = [json.dumps(header)] + [json.dumps({"pass": p, "key": k, "times": t}) for (p, k), t in done.items()]
        try:
            atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())  # a clean file to append to
        except EdgeNASError as exc:
            table = path.with_name(header["partial_table"])
            raise EdgeNASError(f"{exc}: nothing was measured, and {table} is unchanged") from None
        journal = cls(path, done, len(done))
        try:
            journal._handle = path.open("a")
        except OSError as exc:
            raise EdgeNASError(f"cannot write {path}: {exc.strerror or exc}") from None
        return journal

    @staticmethod
    def _read(path: Path, header: dict, keys: set[str], passes: int, repeats: int):
        """(timings, "") from a journal of the same profile, or ({}, why it cannot be used)."""
        import json
        import math

        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            return {}, f"it cannot be read ({getattr(exc, 'strerror', None) or exc})"
        try:
            found = json.loads(lines[0]) if lines else None
        except json.JSONDecodeError:
            found = None
        if not isinstance(found, dict) or "identity" not in found:
            return {}, "it is not a profile journal"
        if found != header:
            ours, theirs = header["identity"], found.get("identity") or {}
            differ = [k for k in ours if ours[k] != (theirs.get(k) if isinstance(theirs, dict) else None)]
            return {}, f"it was measured with other settings ({', '.join(differ) or 'header'} differ)"
        done = {}
        for line in lines[1:]:
            try:
                record = json.loads(line)
                p, key, times = record["pass"], record["key"], record["times"]
                valid = (isinstance(p, int) and 0 <= p < passes and key in keys and isinstance(times, list)
                         and len(times) == repeats
                         and all(isinstance(t, float | int) and math.isfinite(t) and t >= 0 for t in times))
            except (json.JSONDecodeError, TypeError, KeyError):
                valid = False
            if not valid:
                break  # a torn last line, or damage: keep what came before
            done[(p, key)] = [float(t) for t in times]
        return done, ""

    def add(self, p: int, key: str, times: list[float]) -> None:
        import json

        self.done[(p, key)] = times
        try:
            self._handle.write(json.dumps({"pass": p, "key": key, "times": times}) + "\n")
            self._handle.flush()
        except OSError as exc:
            raise EdgeNASError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _check_device_name(device: str) -> None:
    if not device or not all(c.isalnum() or c in "-_." for c in device) or device.startswith("."):
        raise EdgeNASError(f"bad device name {device!r}: expected letters, digits, '-', '_' or '.', such as "
                           "x86-2core-ort-t1")


@contextlib.contextmanager
def _progress(enabled: bool, description: str, total: int) -> Iterator[Callable[[str], None]]:
    """A progress bar over `total` timings (or nothing); yields the callback that marks one done, by its key."""
    from .progress import Bar

    with Bar(enabled) as bar:
        bar.begin(total, description)
        yield lambda key: bar.step(key)


# ---------------------------------------------------------------- devices that cannot run Python

MANIFEST = "manifest.json"
TIMINGS_HELP = ("Timings file: CSV with a header row holding 'key' and 'median_ms' (optional: p90_ms, mean_ms, "
                "std_ms, n), one row per piece and per network; or JSON mapping each key to milliseconds or to "
                "an object with 'median_ms'. Keys are the 'key' fields of this manifest. Time each file at batch 1 "
                "after warm-up, for example with onnxruntime_perf_test -I -r 200 FILE.")


def export_blocks(device: str, space: Space, folder: str | os.PathLike, *, validate: int = 20, seed: int = 0,
                  opset: int = 17, progress: bool = True) -> Path:
    """Write every piece and validation network as ONNX plus a manifest, to be timed on the device itself."""
    from exporters.onnx_export import to_onnx

    _check_device_name(device)
    folder = Path(folder)
    if not folder.parent.is_dir():
        raise EdgeNASError(f"cannot write {folder}: folder {folder.parent} does not exist")
    folder.mkdir(exist_ok=True)
    pieces = space_pieces(space)
    archs = validation_archs(space, validate, seed) if validate else []
    networks = [network_piece(name, arch) for name, arch in archs]
    records: list[dict] = []
    with _progress(progress, f"exporting {len(pieces) + len(networks)} models", len(pieces) + len(networks)) as advance:
        for i, piece in enumerate(pieces + networks):
            file = f"{i:04d}.onnx"
            atomic_write_bytes(folder / file, to_onnx(piece.build(), piece.input_shape, opset=opset))
            records.append({"key": piece.key, "file": file, "input_name": "input",
                            "input_shape": [1, *piece.input_shape]})
            advance(piece.key)
    for record, (_, arch) in zip(records[len(pieces):], archs, strict=True):
        record["arch"] = arch.to_dict()
    manifest = {"schema": SCHEMA, "device": device, "space": space.name, "space_hash": space.hash,
                "resolution": space.resolution, "width_mult": space.width_mult, "opset": opset, "batch": 1,
                "timings_format": TIMINGS_HELP, "pieces": records[:len(pieces)], "networks": records[len(pieces):]}
    return write_json(folder / MANIFEST, manifest)


def read_timings(path: Path) -> dict[str, dict]:
    """Parse a CSV or JSON timings file into key -> entry with at least `median_ms`."""
    import csv
    import json

    def entry(source: dict, key: str) -> dict:
        try:
            value = {"median_ms": float(source["median_ms"])}
            for field in ("p90_ms", "mean_ms", "std_ms"):
                if source.get(field) not in (None, ""):
                    value[field] = float(source[field])
            if source.get("n") not in (None, ""):
                value["n"] = int(source["n"])
        except (KeyError, TypeError, ValueError):
            raise EdgeNASError(f"timings file {path}: key {key!r} has no valid median_ms") from None
        if not value["median_ms"] >= 0:
            raise EdgeNASError(f"timings file {path}: key {key!r} has a negative median_ms")
        return value

    try:
        text = path.read_text()
    except OSError as exc:
        raise EdgeNASError(f"cannot read timings file {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EdgeNASError(f"timings file {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        if not isinstance(data, dict):
            raise EdgeNASError(f"timings file {path}: expected an object mapping keys to milliseconds")
        return {k: entry(v if isinstance(v, dict) else {"median_ms": v}, k) for k, v in data.items()}
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or "key" not in rows[0] or "median_ms" not in rows[0]:
        raise EdgeNASError(f"timings file {path}: expected a CSV header with columns key and median_ms")
    return {row["key"]: entry(row, row["key"]) for row in rows}


def import_timings(device: str, timings_file: str | os.PathLike, manifest_file: str | os.PathLike | None = None,
                   out: str | os.PathLike | None = None, runtime: dict | None = None) -> tuple[Path, LatencyTable]:
    """Build a table from timings measured on the device for the files `export_blocks` wrote."""
    from .arch import from_dict

    _check_device_name(device)
    timings_path = Path(timings_file)
    manifest_path = Path(manifest_file) if manifest_file else timings_path.parent / MANIFEST
    manifest = read_json(manifest_path, "manifest")
    try:
        space = get_space(manifest["space"], manifest["resolution"], manifest["width_mult"])
        if space.hash != manifest["space_hash"]:
            raise EdgeNASError(f"manifest {manifest_path} was written for another version of space {space.name}")
        archs = [(n["key"].removeprefix("net:"), from_dict(n["arch"], str(manifest_path)))
                 for n in manifest["networks"]]
        piece_keys = [p["key"] for p in manifest["pieces"]]
    except (KeyError, TypeError) as exc:
        raise EdgeNASError(f"manifest {manifest_path} is missing {exc}") from None
    timings = read_timings(timings_path)
    missing = [key for key in piece_keys if key not in timings]
    if missing:
        raise EdgeNASError(f"timings file {timings_path} has no timing for {missing[0]!r} ({len(missing)} of "
                           f"{len(piece_keys)} pieces missing)")
    entries = {key: timings[key] for key in piece_keys}
    networks = {key: value["median_ms"] for key, value in timings.items() if key.startswith("net:")}
    path = Path(out) if out is not None else Path("latency_tables") / f"{device}.json"
    if out is None:
        path.parent.mkdir(exist_ok=True)
    runtime = runtime or {"backend": "imported", "source": str(timings_path), "opset": manifest.get("opset")}
    data = build_table(device, space, runtime, entries, networks, archs, 0, 0, 0,
                       {"note": "measured on the device by the user; see runtime.source"})
    data["warmup"] = data["repeats"] = None
    write_json(path, data)
    return path, validate_table(data, str(path))


def measure_arch(arch: Arch, table: LatencyTable, passes: int = 5) -> float:
    """Measure one whole network on this machine with the runtime and thread count the table was made with."""
    runtime = table.data["runtime"]
    name = runtime.get("backend")
    if name == "onnxruntime":
        timer = make_backend("ort", runtime.get("threads", 1), runtime.get("provider", "cpu"))
    elif name == "torch-eager":
        device = "cuda" if "cuda" in runtime.get("device", "") else "cpu"
        timer = make_backend("torch", runtime.get("threads", 1), device)
    else:
        raise EdgeNASError(f"table {table.source} was measured on another device ({name}); it cannot be measured here")
    warmup, repeats = table.data.get("warmup") or 10, table.data.get("repeats") or 50
    return measure([network_piece("arch", arch)], timer, warmup, repeats, passes)["net:arch"]["median_ms"]
