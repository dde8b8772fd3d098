"""Export of a run's network to one self-describing ONNX file, checked with the ONNX checker.

The file holds a named input (`input`, N x 3 x R x R float, dynamic batch) and output (`logits`), and metadata:
the architecture JSON, the space hash, the class names and the preprocessing (resolution, mean, std), so that
`edgenas predict` (ONNX Runtime alone) can use it without edgenas's PyTorch code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from edgenas.errors import EdgeNASError
from edgenas.files import atomic_write_bytes

from .onnx_export import to_onnx

INPUT, OUTPUT = "input", "logits"


def newest_run(root: str | os.PathLike = "runs") -> Path:
    runs = [p for p in Path(root).glob("*") if (p / "config.json").is_file()] if Path(root).is_dir() else []
    if not runs:
        raise EdgeNASError(f"no run found in {root}/; pass --run RUN (a folder written by edgenas search)")
    return max(runs, key=lambda p: (p / "config.json").stat().st_mtime)


def load_run_network(run: str | os.PathLike, allow_supernet_weights: bool = False, warn=print):
    """The run's retrained network (eval mode), its architecture and what describes its inputs."""
    from edgenas.runs import Run
    from edgenas.searcher import load_model

    opened = Run.open(run)
    weights = "model.pt"
    if not opened.has("model.pt"):
        if not allow_supernet_weights:
            raise EdgeNASError(f"run {opened.path} has no retrained weights (model.pt); finish it with "
                               f"`edgenas search --resume {opened.path}`, or pass --allow-supernet-weights")
        if not opened.has("inherited.pt"):
            raise EdgeNASError(f"run {opened.path} has no derived network yet; finish it with "
                               f"`edgenas search --resume {opened.path}`")
        warn(f"warning: exporting {opened.path}'s supernet weights (inherited.pt), not a retrained network: "
             "accuracy will be lower than after retraining")
        weights = "inherited.pt"
    model, arch = load_model(opened.path, weights)
    data = opened.config().get("resolved", {}).get("data", {})
    try:
        describe = {"classes": list(data["classes"]), "mean": list(data["mean"]), "std": list(data["std"])}
    except KeyError as exc:
        raise EdgeNASError(f"run {opened.path}: config.json lacks the data description ({exc})") from None
    return model, arch, describe


@dataclass(frozen=True)
class ExportResult:
    """An exported file and, when verified, the verification report (the numbers `edgenas export` prints)."""

    path: Path
    report: dict | None = None
    report_path: Path | None = None

    @property
    def passed(self) -> bool | None:
        return None if self.report is None else self.report["passed"]


def export_onnx(run: str | os.PathLike, out: str | os.PathLike, *, opset: int = 17, verify: bool = True,
                threads: int = 1, atol: float = 1e-4, table: str | None = None, int8: bool = False,
                max_drop: float = 1.0, allow_supernet_weights: bool = False, warn=print) -> ExportResult:
    """Export a run's retrained network to `out` (written atomically, after the ONNX checker accepts it); with
    `verify` (the default), prove it with ONNX Runtime (`verify.verify`) and write the report to OUT.report.json.

    A failed verification is not an exception: the result's `passed` is False and the report says why.
    """
    out = Path(out)
    if not out.parent.is_dir():
        raise EdgeNASError(f"cannot write {out}: folder {out.parent} does not exist")
    if out.suffix != ".onnx":
        raise EdgeNASError(f"bad output file {out}: expected a name ending in .onnx")
    if threads < 1:
        raise EdgeNASError(f"bad --threads {threads}: expected 1 or more")
    if int8 and not verify:
        raise EdgeNASError("--int8 needs the verification (its accuracy is checked against FP32): drop --no-verify")
    model, arch, describe = load_run_network(run, allow_supernet_weights, warn)
    if table is not None and verify:  # refuse a table of another space before writing anything
        from edgenas.latency import load_table

        load_table(table).check(arch)
    path = _write(model, arch, describe, out, opset)
    if not verify:
        return ExportResult(path)
    from edgenas.files import write_json

    from .verify import verify as check

    report = check(path, run, threads=threads, atol=atol, table=table, allow_supernet_weights=allow_supernet_weights,
                   int8=int8, max_drop=max_drop)
    report_path = write_json(path.with_suffix(".report.json"), report)
    return ExportResult(path, report, report_path)


def _write(model, arch, describe: dict, out: Path, opset: int) -> Path:
    import onnx

    shape = (3, arch.resolution, arch.resolution)
    proto = onnx.load_from_string(to_onnx(model, shape, opset=opset, dynamic_batch=True, input_name=INPUT,
                                          output_name=OUTPUT))
    metadata = {"edgenas.arch": json.dumps(arch.to_dict()), "edgenas.space_hash": arch.space_hash,
                "edgenas.classes": json.dumps(describe["classes"]),
                "edgenas.preprocessing": json.dumps({"resolution": arch.resolution, "mean": describe["mean"],
                                                     "std": describe["std"], "channels": "RGB", "layout": "NCHW",
                                                     "scale": "pixel / 255, then (x - mean) / std",
                                                     "resize": "shorter side to resolution, centre crop"})}
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "edgenas"
    onnx.checker.check_model(proto, full_check=True)
    return atomic_write_bytes(out, proto.SerializeToString())


def read_metadata(path: str | os.PathLike) -> dict:
    """The edgenas metadata of an exported file, parsed (without loading the weights into Python objects)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others for files that are not ONNX
        raise EdgeNASError(f"{path} is not an ONNX file: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if "edgenas.preprocessing" not in props:
        raise EdgeNASError(f"{path} was not exported by edgenas (no edgenas.preprocessing metadata)")
    return {"arch": json.loads(props["edgenas.arch"]), "space_hash": props["edgenas.space_hash"],
            "classes": json.loads(props["edgenas.classes"]),
            "preprocessing": json.loads(props["edgenas.preprocessing"])}
