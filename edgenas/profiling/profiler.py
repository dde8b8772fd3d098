"""The profiler: measures a space's pieces and whole validation networks on this machine and builds a table.

Protocol (what gave 1-2% error on this project's 2-core machine, see METHOD.md section 4): every piece (stem,
each distinct block at each layer shape, head) is exported alone to ONNX and timed in ONNX Runtime in several
interleaved passes; each pass creates the piece's session, warms it up, times `repeats` calls and closes it, so
only one session is alive at a time. A piece's `median_ms` is its smallest pass median, which discards passes
disturbed by other processes; `p90_ms`, `mean_ms` and `std_ms` are over all timed calls, and `pass_medians_ms`
shows the spread. Validation networks are measured end to end the same way, in the same passes as the pieces
(timed after all pieces, whole small networks drifted by 10-18% against them on a shared machine), and a
calibration is fitted to them. With `max_passes`, a profile whose validation networks are not predicted well enough
(FIDELITY_GOAL: the share within +/-10% and the median error, leave-one-out) times everything in more passes, up to
`max_passes`: on a busy host a best pass median needs more passes to find a quiet minute (docs/BENCHMARKS.md).
With `int8`, every piece and validation network is quantised before it is timed, by the recipe `edgenas export
--int8` ships (`exporters.quantize.int8_model`), so that the table and its calibration describe INT8 networks.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgenas.cost.calibration import calibrate, fit
from edgenas.cost.latency import (
    HEAD_CLASSES,
    SCHEMA,
    LatencyTable,
    block_key,
    calls,
    head_key,
    stem_key,
    validate_table,
)
from edgenas.cost.notes import fidelity_shortfall, host_info
from edgenas.errors import EdgeNASError
from edgenas.files import atomic_write_bytes, make_folder, write_json
from edgenas.profiling.settings import ProfileSettings
from edgenas.space.arch import Arch
from edgenas.space.spec import Space
from exporters.settings import ExportSettings


@dataclass(frozen=True)
class Piece:
    """Something to time: a table entry (a block, the stem, a head) or a whole validation network."""

    key: str
    build: Callable[[], Any]  # -> torch.nn.Module
    input_shape: tuple[int, int, int]


def space_pieces(space: Space) -> list[Piece]:
    """Every entry a table of `space` needs, each distinct key once."""
    from edgenas.space.blocks import make_block
    from edgenas.space.network import Head, Stem

    pieces = {stem_key(space): Piece(stem_key(space), lambda: Stem(space), (3, space.resolution, space.resolution))}
    last = (space.last_channels, space.last_size, space.last_size)
    for classes in HEAD_CLASSES:
        key = head_key(space, classes)
        pieces[key] = Piece(key, lambda c=classes: Head(space, c), last)
    for layer in space:
        for choice in layer.costly_choices:
            key = block_key(layer, choice)
            if key not in pieces:
                pieces[key] = Piece(key, lambda c=choice, la=layer: make_block(c, la.in_channels, la.out_channels,
                                                                                la.stride, space.spec.activation),
                                    (layer.in_channels, layer.in_size, layer.in_size))
    return list(pieces.values())


def validation_archs(space: Space, count: int, seed: int) -> list[tuple[str, Arch]]:
    """`count` random architectures spread evenly over the space's FLOPs range, plus MobileNetV2 where it exists and
    the smallest and largest networks.

    Uniform random choices all land near the middle of the range; here network i aims at the (i + 0.5) / count
    quantile of each layer's choices sorted by FLOPs, with noise, so the networks span cheap to expensive. Their
    classifiers alternate between the table's head sizes (10 and 1000 classes), and the smallest network has the
    smallest head, the largest the largest: a calibration is then fitted over the networks searches really
    produce (a 10-class head has 1.3M fewer parameters than a 1000-class one), not extrapolated to them.
    """
    from edgenas.cost.flops import cost_table
    from edgenas.cost.presets import mobilenetv2
    from edgenas.space.arch import make_arch

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
        archs.append((f"random{i:02d}", make_arch(space, layers, HEAD_CLASSES[i % len(HEAD_CLASSES)])))
    if space.spec.mobilenetv2_depths is not None:
        archs.append(("mobilenetv2", mobilenetv2(space, max(HEAD_CLASSES))))
    if count:  # the ends of the range too, so that no calibration is fitted only on mid-sized networks
        from edgenas.cost.presets import extreme

        archs += [("smallest", extreme(space, min(HEAD_CLASSES), largest=False)),
                  ("largest", extreme(space, max(HEAD_CLASSES), largest=True))]
    return archs


def network_piece(name: str, arch: Arch) -> Piece:
    from edgenas.space.network import build_model

    return Piece(f"net:{name}", lambda: build_model(arch), (3, arch.resolution, arch.resolution))


# ---------------------------------------------------------------- timing backends


class OrtBackend:
    """ONNX Runtime: each piece exported once to ONNX (and, with `int8`, quantised); one session alive at a time."""

    def __init__(self, threads: int, provider: str = "cpu", opset: int = ExportSettings.opset, int8: bool = False):
        from exporters.runtime import provider_name

        self.threads, self.opset, self.int8 = threads, opset, int8
        self.provider = provider_name(provider)
        self._models: dict[str, bytes] = {}

    def describe(self) -> dict:
        import onnxruntime

        info = {"backend": "onnxruntime", "version": onnxruntime.__version__, "provider": self.provider,
                "threads": self.threads, "graph_optimization": "ORT_ENABLE_ALL", "execution": "sequential",
                "opset": self.opset}
        if self.int8:
            from exporters.quantize import RECIPE

            info["quantization"] = RECIPE
        return info

    def prepare(self, piece: Piece) -> None:
        from exporters.onnx_export import to_onnx

        if piece.key in self._models:  # prepared for earlier passes
            return
        model = to_onnx(piece.build(), piece.input_shape, opset=self.opset)
        if self.int8:
            import numpy as np

            from exporters.quantize import int8_model

            # Calibration only sets the activations' scales, which do not change what the INT8 kernels cost: two
            # fixed random inputs stand in for real data (a piece alone has no real inputs anyway).
            rng = np.random.default_rng(0)
            batches = [rng.standard_normal((1, *piece.input_shape)).astype(np.float32) for _ in range(2)]
            model = int8_model(model, batches, "input", piece.key)
        self._models[piece.key] = model

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
        if piece.key not in self._modules:  # else prepared for earlier passes
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


def make_backend(backend: str, threads: int, provider: str, int8: bool = False) -> OrtBackend | TorchBackend:
    if threads < 1:
        raise EdgeNASError(f"bad --threads {threads}: expected 1 or more")
    if backend == "ort":
        return OrtBackend(threads, provider, int8=int8)
    if backend == "torch":
        if int8:
            raise EdgeNASError("--int8 with --backend torch: INT8 tables time ONNX Runtime's quantised models, as "
                               "edgenas export --int8 ships them; drop --backend torch (or --int8)")
        return TorchBackend(threads, "cuda" if provider.lower() == "cuda" else "cpu")
    raise EdgeNASError(f"unknown backend {backend!r}: expected ort or torch")


# ---------------------------------------------------------------- measuring


def _check_timing(warmup: int, repeats: int, passes: int) -> None:
    if warmup < 0 or repeats < 1 or passes < 1:
        raise EdgeNASError(f"bad timing settings: warmup {warmup}, repeats {repeats}, passes {passes}; expected "
                           "warmup >= 0, repeats >= 1, passes >= 1")


def measure(pieces: list[Piece], backend, warmup: int, repeats: int, passes: int,
            advance: Callable[[str, bool], None] = lambda key, timed: None,
            journal: _Journal | None = None) -> dict[str, dict]:
    """Time every piece in `passes` interleaved passes; returns key -> timing statistics (milliseconds).

    With a `journal`, each (pass, piece) measured is recorded as soon as it is timed, and those it already holds
    (from an interrupted profile) are taken from it instead of being timed again. `advance(key, timed)` follows
    each piece prepared (timed False), then each piece of each pass (timed False where taken from the journal).
    """
    _check_timing(warmup, repeats, passes)
    done = journal.done if journal is not None else {}
    spent = {piece.key: 0.0 for piece in pieces}
    for piece in pieces:
        start = time.perf_counter()
        if any((p, piece.key) not in done for p in range(passes)):  # a piece timed in every pass needs no model
            backend.prepare(piece)
        spent[piece.key] += time.perf_counter() - start
        advance(piece.key, False)
    calls: dict[str, list[float]] = {piece.key: [] for piece in pieces}
    medians: dict[str, list[float]] = {piece.key: [] for piece in pieces}
    for p in range(passes):
        # Alternate the order so that drift during a pass does not always hit the same pieces.
        for piece in pieces if p % 2 == 0 else reversed(pieces):
            times = done.get((p, piece.key))
            timed = times is None
            if timed:
                start = time.perf_counter()
                times = backend.time(piece, warmup, repeats)
                spent[piece.key] += time.perf_counter() - start
                if journal is not None:
                    journal.add(p, piece.key, times)
            calls[piece.key] += times
            medians[piece.key].append(statistics.median(times))
            advance(piece.key, timed)
    return {key: summarize(calls[key], medians[key], spent[key]) for key in calls}


def summarize(times: list[float], pass_medians: list[float], seconds: float) -> dict:
    """A piece's statistics; `seconds` the wall time its preparation and timing took here (0 for timings taken
    from a journal)."""
    ordered = sorted(times)
    return {"median_ms": min(pass_medians), "p90_ms": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
            "mean_ms": statistics.fmean(times), "std_ms": statistics.pstdev(times), "n": len(times),
            "pass_medians_ms": pass_medians, "seconds": round(seconds, 3)}


# ---------------------------------------------------------------- the table


def build_table(device: str, space: Space, runtime: dict, entries: dict, networks: dict[str, float],
                archs: list[tuple[str, Arch]], warmup: int, repeats: int, passes: int, host: dict,
                precision: str = "fp32") -> dict:
    """Assemble the table document; validation networks (if any), measured in the same `precision` as the pieces,
    fit its calibration."""
    from edgenas.cost.flops import cost_table

    flops_table = cost_table(space)
    data = {
        "schema": SCHEMA, "device": device, "precision": precision, "host": host, "runtime": runtime,
        "space": space.name, "space_hash": space.hash, "resolution": space.resolution,
        "width_mult": space.width_mult, "batch": 1, "warmup": warmup, "repeats": repeats, "passes": passes,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "statistic": "median_ms is the smallest of the passes' medians; p90, mean and std are over all calls",
        "entries": entries,
        "fixed": {"stem": stem_key(space), "head": {str(c): head_key(space, c) for c in HEAD_CLASSES}},
        "calibration": fit("none", []),
        "validation": {"count": 0, "networks": []},
    }
    table = validate_table(data, device)
    measured = [
        {"name": name, "layers": list(arch.layers), "num_classes": arch.num_classes, "flops": flops_table.flops(arch),
         "params": flops_table.params(arch), "calls": calls(arch, space), "predicted_raw_ms": table.raw_ms(arch),
         "measured_ms": networks[f"net:{name}"]}
        for name, arch in archs if f"net:{name}" in networks
    ]
    if measured:
        from edgenas.cost.presets import extreme

        cheapest = extreme(space, min(HEAD_CLASSES), largest=False)
        piece_ms, piece_params = min((table.median(block_key(la, c)), flops_table.layers[la.label][c][1])
                                     for la in space for c in la.costly_choices)
        floor = {"predicted_raw_ms": table.raw_ms(cheapest), "params": flops_table.params(cheapest),
                 "calls": calls(cheapest, space), "piece_ms": piece_ms, "piece_params": piece_params}
        data["calibration"], data["validation"] = calibrate(measured, floor)
    return data


def default_table_path(device: str, int8: bool = False) -> Path:
    """Where `edgenas profile DEVICE` writes: latency_tables/DEVICE.json, or DEVICE-int8.json, so that a device's
    FP32 and INT8 tables live side by side."""
    return Path("latency_tables") / f"{device}{'-int8' if int8 else ''}.json"


def profile(device: str, space: Space, *, threads: int = ProfileSettings.threads,
            provider: str = ProfileSettings.provider, backend: str = ProfileSettings.backend,
            warmup: int = ProfileSettings.warmup, repeats: int = ProfileSettings.repeats,
            passes: int = ProfileSettings.passes, max_passes: int | None = ProfileSettings.max_passes,
            validate: int = ProfileSettings.validate, seed: int = ProfileSettings.seed,
            out: str | os.PathLike | None = ProfileSettings.out, progress: bool = True,
            fresh: bool = ProfileSettings.fresh, int8: bool = ProfileSettings.int8, log: Callable[[str], None] = print,
            echo: Callable[[str], None] | None = None) -> tuple[Path, LatencyTable]:
    """Measure `space` on this machine and write its latency table atomically (with `int8`, of INT8 pieces and
    networks, quantised as `edgenas export --int8` quantises a network).

    With `max_passes` above `passes`, while the validation networks miss FIDELITY_GOAL (under 90% predicted within
    +/-10%, or a median error over 2%, leave-one-out), every piece and network is timed in `passes` more passes (at
    most `max_passes` in all), each piece keeping its best pass median of all of them.

    Each timing is journaled in `OUT.partial` as soon as it is measured; a profile that was killed or interrupted
    continues from there when run again with the same settings (`fresh` discards the journal). The journal is keyed
    by everything that shapes a timing, so another space, resolution, width, runtime, thread count, host or timing
    protocol never reuses it; the number of passes does not (pass p is timed alike whatever the count), so a profile
    run again with another `passes` or `max_passes` reuses the passes it needs. It is removed once the table is
    written. Without a bar, `echo` gets a plain line every 30 s at most (and at the end), with the time left.
    """
    check_device_name(device)
    if validate < 0:
        raise EdgeNASError(f"bad --validate {validate}: expected 0 or more networks")
    _check_timing(warmup, repeats, passes)
    max_passes = passes if max_passes is None else max_passes
    if max_passes < passes:
        raise EdgeNASError(f"bad --max-passes {max_passes}: expected at least --passes ({passes})")
    path = Path(out) if out is not None else default_table_path(device, int8)
    timer = make_backend(backend, threads, provider, int8)
    make_folder(path.parent)  # once the settings are checked: a refused profile creates nothing
    pieces = space_pieces(space)
    archs = validation_archs(space, validate, seed) if validate else []
    nets = [network_piece(name, arch) for name, arch in archs]
    from edgenas.version import __version__

    identity = {"device": device, "space": space.name, "space_hash": space.hash, "resolution": space.resolution,
                "width_mult": space.width_mult, "runtime": timer.describe(), "warmup": warmup, "repeats": repeats,
                "validate": validate, "seed": seed, "host": host_info(),
                "edgenas": __version__, "networks": {name: arch.to_dict() for name, arch in archs}}
    journal = _Journal.open(path.with_name(path.name + ".partial"), identity, [p.key for p in pieces + nets],
                            max_passes, repeats, fresh, log)
    names = {net.key for net in nets}
    seconds = {"pieces": 0.0, "validation": 0.0}
    label = f"profiling {space.name} at {space.resolution}{' INT8' if int8 else ''} on {device}"
    done = passes
    try:
        with count_bar(progress, label, (len(pieces) + len(nets)) * (passes + 1), echo) as bar:
            while True:
                # The validation networks are timed in the same passes as the pieces, so that both see the machine
                # in the same state (on a shared machine the cache left to a process drifts within minutes).
                timed = measure(pieces + nets, timer, warmup, repeats, done,
                                lambda key, measured: bar.step(key, measured=measured), journal)
                entries = {key: value for key, value in timed.items() if key not in names}
                seconds["pieces"] += sum(v.pop("seconds") for v in entries.values())
                seconds["validation"] += sum(timed[key]["seconds"] for key in names)
                networks = {key: value["median_ms"] for key, value in timed.items() if key in names}
                data = build_table(device, space, timer.describe(), entries, networks, archs, warmup, repeats, done,
                                   host_info(), "int8" if int8 else "fp32")
                shortfall = fidelity_shortfall(data["validation"])
                if done >= max_passes or shortfall is None:
                    break
                more = min(passes, max_passes - done)
                log(f"{shortfall} after {done} passes: timing {more} more passes, up to --max-passes {max_passes}")
                done += more
                # measure() goes over the earlier passes again (taken from the journal, not timed) and counts them
                bar.begin((len(pieces) + len(nets)) * (done + 1), f"{label}: passes {done - more + 1}-{done}",
                          again=True)
    except KeyboardInterrupt:
        log(f"{len(journal.done)} timings kept in {journal.path}: run the same command again to continue")
        raise
    finally:
        journal.close()
    data["profiling_seconds"] = {key: round(value, 3) for key, value in seconds.items()}
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


def check_device_name(device: str) -> None:
    if not device or not all(c.isalnum() or c in "-_." for c in device) or device.startswith("."):
        raise EdgeNASError(f"bad device name {device!r}: expected letters, digits, '-', '_' or '.', such as "
                           "x86-2core-ort-t1")


@contextlib.contextmanager
def count_bar(enabled: bool, description: str, total: int, echo: Callable[[str], None] | None = None) -> Iterator:
    """A progress bar over `total` timings (or, without one, a plain line to `echo` every 30 s at most, with the
    time left at the rate of the timings so far); yields it:
    `step(key)` marks one timing done (`measured=False`: not timed now), `begin(total, label, again=True)` starts
    another count."""
    from edgenas.progress import Bar

    with Bar(enabled, echo, every=30.0, eta=True) as bar:
        bar.begin(total, description)
        yield bar


def measure_arch(arch: Arch, table: LatencyTable, passes: int = ProfileSettings.passes) -> float:
    """Measure one whole network on this machine with the runtime, thread count and precision the table was made
    with (an INT8 table's network quantised as its pieces were)."""
    runtime = table.data["runtime"]
    name = runtime.get("backend")
    if name == "onnxruntime":
        timer = make_backend("ort", runtime.get("threads", 1), runtime.get("provider", "cpu"),
                             table.precision == "int8")
    elif name == "torch-eager":
        device = "cuda" if "cuda" in runtime.get("device", "") else "cpu"
        timer = make_backend("torch", runtime.get("threads", 1), device)
    else:
        raise EdgeNASError(f"table {table.source} was measured on another device ({name}); it cannot be measured here")
    # an imported table records none: timed here with the profile's defaults
    warmup = table.data.get("warmup") or ProfileSettings.warmup
    repeats = table.data.get("repeats") or ProfileSettings.repeats
    return measure([network_piece("arch", arch)], timer, warmup, repeats, passes)["net:arch"]["median_ms"]
