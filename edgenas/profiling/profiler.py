"""The profiler's run: measures a space's pieces and whole validation networks on this machine, builds the table with
its calibration, and writes it; also measures one whole network as a table's were measured.

Protocol (what gave 1-2% error on this project's 2-core machine, see METHOD.md section 4): every piece (stem, each
distinct block at each layer shape, head: `space.pieces`) is exported alone to ONNX and timed in ONNX Runtime in
several interleaved passes (`measure`: one session alive at a time, a piece's median its smallest pass median).
Validation networks are measured end to end the same way, in the same passes as the pieces (timed after all pieces,
whole small networks drifted by 10-18% against them on a shared machine), and a calibration is fitted to them. With
`max_passes`, a profile whose validation networks are not predicted well enough (FIDELITY_GOAL: the share within
+/-10% and the median error, leave-one-out) times everything in more passes, up to `max_passes`: on a busy host a
best pass median needs more passes to find a quiet minute (docs/BENCHMARKS.md). With `int8`, every piece and
validation network is quantised before it is timed, by the recipe `edgenas export --int8` ships for ONNX Runtime
(`exporters.runtimes.onnxruntime.int8_model`), so that the table and its calibration describe INT8 networks. Each
timing is journaled as it is measured (`journal`), so that an interrupted profile resumes.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from edgenas.cost.calibration import calibrate, fit
from edgenas.cost.latency import SCHEMA, LatencyTable, calls, imported, validate_table
from edgenas.cost.notes import fidelity_shortfall, host_info
from edgenas.errors import EdgeNASError
from edgenas.files import make_folder, write_json
from edgenas.profiling.journal import Journal
from edgenas.profiling.measure import make_backend, measure
from edgenas.profiling.settings import ProfileSettings
from edgenas.profiling.validation import network_piece, validation_archs
from edgenas.space.arch import Arch
from edgenas.space.pieces import HEAD_CLASSES, Piece, block_key, head_key, space_pieces, stem_key
from edgenas.space.spec import Space


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
    ProfileSettings(threads=threads, provider=provider, backend=backend, warmup=warmup, repeats=repeats,
                    passes=passes, max_passes=max_passes, validate=validate, seed=seed, out=out, fresh=fresh,
                    int8=int8).check()
    check_device_name(device)
    max_passes = passes if max_passes is None else max_passes
    path = Path(out) if out is not None else default_table_path(device, int8)
    timer = make_backend(backend, threads, provider, int8)
    make_folder(path.parent)  # once the settings are checked: a refused profile creates nothing
    pieces = space_pieces(space)
    archs = validation_archs(space, validate, seed) if validate else []
    nets = [network_piece(name, arch) for name, arch in archs]
    journal = Journal.open(path.with_name(path.name + ".partial"),
                           _identity(device, space, timer, warmup, repeats, validate, seed, archs),
                           [p.key for p in pieces + nets], max_passes, repeats, fresh, log)
    label = f"profiling {space.name} at {space.resolution}{' INT8' if int8 else ''} on {device}"
    try:
        with count_bar(progress, label, (len(pieces) + len(nets)) * (passes + 1), echo) as bar:
            data = _measure_until_faithful(device, space, timer, pieces, nets, archs, warmup, repeats,
                                           (passes, max_passes), journal, bar, label, log, int8)
    except KeyboardInterrupt:
        log(f"{len(journal.done)} timings kept in {journal.path}: run the same command again to continue")
        raise
    finally:
        journal.close()
    data["resumed_timings"] = journal.resumed
    try:
        write_json(path, data)
    except EdgeNASError as exc:
        raise EdgeNASError(f"{exc}; the timings are kept in {journal.path}: run the same command again to write "
                           "the table without measuring") from None
    journal.path.unlink(missing_ok=True)
    return path, validate_table(data, str(path))


def _identity(device: str, space: Space, timer, warmup: int, repeats: int, validate: int, seed: int,
              archs: list[tuple[str, Arch]]) -> dict:
    """Everything that shapes a timing, which a journal must match to be resumed (not the number of passes)."""
    from edgenas.version import __version__

    return {"device": device, "space": space.name, "space_hash": space.hash, "resolution": space.resolution,
            "width_mult": space.width_mult, "runtime": timer.describe(), "warmup": warmup, "repeats": repeats,
            "validate": validate, "seed": seed, "host": host_info(),
            "edgenas": __version__, "networks": {name: arch.to_dict() for name, arch in archs}}


def _measure_until_faithful(device: str, space: Space, timer, pieces: list[Piece], nets: list[Piece],
                            archs: list[tuple[str, Arch]], warmup: int, repeats: int, passes: tuple[int, int],
                            journal: Journal, bar, label: str, log: Callable[[str], None], int8: bool) -> dict:
    """The table of `pieces` and validation networks `nets` (of `archs`) timed in `passes[0]` passes, or in
    `passes[0]` more at a time while the networks miss FIDELITY_GOAL, up to `passes[1]` passes in all."""
    names = {net.key for net in nets}
    seconds = {"pieces": 0.0, "validation": 0.0}
    (step, max_passes), done = passes, passes[0]
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
        more = min(step, max_passes - done)
        log(f"{shortfall} after {done} passes: timing {more} more passes, up to --max-passes {max_passes}")
        done += more
        # measure() goes over the earlier passes again (taken from the journal, not timed) and counts them
        bar.begin((len(pieces) + len(nets)) * (done + 1), f"{label}: passes {done - more + 1}-{done}", again=True)
    data["profiling_seconds"] = {key: round(value, 3) for key, value in seconds.items()}
    return data


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
    if imported(runtime):  # its backend names the files timed on the device, not a session of this machine
        raise EdgeNASError(f"table {table.source} was measured on another device (timings imported from "
                           f"{runtime.get('source')}); it cannot be measured here")
    if name in ("onnxruntime", "openvino", "litert"):  # the names the backends record (measure.BACKENDS)
        timer = make_backend(name, runtime.get("threads", 1), runtime.get("provider", "cpu"), table.precision == "int8")
    elif name == "torch-eager":
        device = "cuda" if "cuda" in runtime.get("device", "") else "cpu"
        timer = make_backend("torch", runtime.get("threads", 1), device)
    else:
        raise EdgeNASError(f"table {table.source} was measured on another device ({name}); it cannot be measured here")
    # an imported table records none: timed here with the profile's defaults
    warmup = table.data.get("warmup") or ProfileSettings.warmup
    repeats = table.data.get("repeats") or ProfileSettings.repeats
    return measure([network_piece("arch", arch)], timer, warmup, repeats, passes)["net:arch"]["median_ms"]
