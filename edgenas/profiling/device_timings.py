"""Profiling a device that cannot run Python: export every piece in the format of the runtime it runs (ONNX,
LiteRT's .tflite, OpenVINO IR: `block_formats`), FP32 or INT8, with a manifest; time the files on the device with
the runtime's own tool; and import the timings back into a latency table of that runtime and precision.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgenas.cost.latency import SCHEMA, LatencyTable, validate_table
from edgenas.errors import EdgeNASError
from edgenas.files import make_folder, read_json, write_json
from edgenas.profiling.block_formats import block_format, describe, runtime_of, write_piece
from edgenas.profiling.profiler import build_table, check_device_name, count_bar, default_table_path
from edgenas.profiling.settings import ProfileSettings
from edgenas.profiling.validation import network_piece, validation_archs
from edgenas.space.pieces import space_pieces
from edgenas.space.spec import Space, get_space
from exporters.settings import ExportSettings

MANIFEST = "manifest.json"
TIMINGS_HELP = ("Timings file: CSV with a header row holding 'key' and 'median_ms' (optional: p90_ms, mean_ms, "
                "std_ms, n), one row per piece and per network; or JSON mapping each key to milliseconds or to "
                "an object with 'median_ms'. Keys are the 'key' fields of this manifest. Time each file at batch 1 "
                "after warm-up, {tool}.")


def export_blocks(device: str, space: Space, folder: str | os.PathLike, *, backend: str = ProfileSettings.backend,
                  int8: bool = ProfileSettings.int8, validate: int = ProfileSettings.validate,
                  seed: int = ProfileSettings.seed, opset: int = ExportSettings.opset, progress: bool = True,
                  echo=None) -> Path:
    """Write every piece and validation network in the format of `backend`'s runtime (ONNX, .tflite, OpenVINO IR;
    with `int8` quantised as that backend's INT8 tables are) plus a manifest, to be timed on the device itself."""
    check_device_name(device)
    fmt = block_format(backend)
    rt = runtime_of(fmt)
    folder = Path(folder)
    make_folder(folder)
    pieces = space_pieces(space)
    archs = validation_archs(space, validate, seed) if validate else []
    networks = [network_piece(name, arch) for name, arch in archs]
    records: list[dict] = []
    with count_bar(progress, f"exporting {len(pieces) + len(networks)} {fmt.format} models",
                   len(pieces) + len(networks), echo) as bar:
        for i, piece in enumerate(pieces + networks):
            records.append(write_piece(fmt, rt, piece, folder, f"{i:04d}", int8, opset))
            bar.step(piece.key)
    for record, (_, arch) in zip(records[len(pieces):], archs, strict=True):
        record["arch"] = arch.to_dict()
    manifest = {"schema": SCHEMA, "device": device, "space": space.name, "space_hash": space.hash,
                "resolution": space.resolution, "width_mult": space.width_mult, **describe(fmt, rt, int8, opset),
                "timings_format": TIMINGS_HELP.format(tool=fmt.tool), "pieces": records[:len(pieces)],
                "networks": records[len(pieces):]}
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


def read_manifest(timings_file: str | os.PathLike, manifest_file: str | os.PathLike | None = None) -> tuple[Path, dict]:
    """The manifest of a timings file (`manifest_file`, else manifest.json beside it): its path and contents."""
    path = Path(manifest_file) if manifest_file else Path(timings_file).parent / MANIFEST
    return path, read_json(path, "manifest")


def table_path(device: str, manifest: dict, out: str | os.PathLike | None = None) -> Path:
    """Where an import writes: `out`, else the profile's default path of the manifest's precision (DEVICE-int8.json
    for INT8 files)."""
    return Path(out) if out is not None else default_table_path(device, manifest.get("precision") == "int8")


def import_timings(device: str, timings_file: str | os.PathLike, manifest_file: str | os.PathLike | None = None,
                   out: str | os.PathLike | None = None, runtime: dict | None = None,
                   int8: bool = ProfileSettings.int8) -> tuple[Path, LatencyTable]:
    """Build a table from timings measured on the device for the files `export_blocks` wrote; the manifest's
    precision is the table's (`int8` only checks that it is INT8), and its runtime the table's backend (ONNX files:
    "imported", since any ONNX runner may have timed them)."""
    from edgenas.space.arch import from_dict

    check_device_name(device)
    timings_path = Path(timings_file)
    manifest_path, manifest = read_manifest(timings_path, manifest_file)
    precision = manifest.get("precision", "fp32")  # manifests written before INT8 exports: FP32 ONNX
    if int8 and precision != "int8":
        raise EdgeNASError(f"--int8 with --import-timings: manifest {manifest_path} is of {precision.upper()} files; "
                           "drop --int8, or export the blocks again with --int8")
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
    path = table_path(device, manifest, out)
    make_folder(path.parent)
    data = build_table(device, space, runtime or imported_runtime(manifest, timings_path), entries, networks, archs,
                       0, 0, 0, {"note": "measured on the device by the user; see runtime.source"}, precision)
    data["warmup"] = data["repeats"] = None
    write_json(path, data)
    return path, validate_table(data, str(path))


def imported_runtime(manifest: dict, timings_path: Path) -> dict:
    """The `runtime` of a table imported for the manifest's files: their runtime as `backend` (a .tflite file runs in
    LiteRT, an IR in OpenVINO; ONNX files are "imported": any ONNX runner may have timed them), and the timings file
    as `source`, which marks every imported table (`edgenas.cost.latency.imported`)."""
    fmt = manifest.get("format", "onnx")  # manifests written before other formats: ONNX
    backend = "imported" if fmt == "onnx" else manifest.get("runtime", "imported")
    runtime = {"backend": backend, "source": str(timings_path), "format": fmt, "opset": manifest.get("opset")}
    return {**runtime, **{key: manifest[key] for key in ("runtime_version", "quantization") if key in manifest}}
