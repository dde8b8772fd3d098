"""Export of a run's network: `export_model` writes the self-describing ONNX file (`onnx_export.py`), converts it
to the runtime's format (`runtimes/`) and proves it on that runtime (`verify.py`); the run it exports is the one
given, or the newest in ./runs.

Modules below this one never import it: onnx_export (the ONNX file), run_network (the run's network), runtimes
(each runtime's files and sessions), timing, quantize and verify.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from edgenas.errors import EdgeNASError
from edgenas.files import make_folder
from exporters.run_network import load_run_network
from exporters.runtimes import runtime_for_path
from exporters.settings import ExportSettings


def newest_run(root: str | os.PathLike = "runs") -> Path:
    runs = [p for p in Path(root).glob("*") if (p / "config.json").is_file()] if Path(root).is_dir() else []
    if not runs:
        raise EdgeNASError(f"no run found in {root}/; pass --run RUN (a folder written by edgenas search)")
    return max(runs, key=lambda p: (p / "config.json").stat().st_mtime)


@dataclass(frozen=True)
class ExportResult:
    """An exported file and, when verified, the verification report (the numbers `edgenas export` prints)."""

    path: Path
    report: dict | None = None
    report_path: Path | None = None
    pt2: Path | None = None  # OUT.pt2 (torch.export), when asked for

    @property
    def passed(self) -> bool | None:
        return None if self.report is None else self.report["passed"]


def export_model(run: str | os.PathLike, out: str | os.PathLike, *, runtime: str | None = ExportSettings.runtime,
                 precision: str = ExportSettings.precision, opset: int = ExportSettings.opset,
                 verify: bool = ExportSettings.verify, threads: int = ExportSettings.threads,
                 atol: float = ExportSettings.atol, table: str | None = ExportSettings.table,
                 int8: bool = ExportSettings.int8, max_drop: float = ExportSettings.max_drop,
                 allow_supernet_weights: bool = ExportSettings.allow_supernet_weights, warn=print, log=None,
                 pt2: bool = ExportSettings.pt2, keep_failed: bool = ExportSettings.keep_failed,
                 progress: bool = False, echo=None) -> ExportResult:
    """Export a run's retrained network to `out` in its runtime's format (by `out`'s suffix, or `runtime`; written
    atomically, from an ONNX file the ONNX checker accepts); with `verify` (the default), prove it on that runtime
    (`verify.verify`) and write the report beside it (`Runtime.report_path`: OUT.report.json for ONNX Runtime,
    NAME.openvino.report.json, NAME.litert.report.json).

    A failed verification is not an exception: the result's `passed` is False and the report says why; when the
    FP32 file fails (outputs or agreement), it and its INT8 file are deleted, unless `keep_failed`. `log`, when
    given, receives one line as each phase starts (export, verification, latency, INT8); the passes over the test
    split draw a bar with `progress`, or give `echo` plain lines with the time left (`verify.verify`). With `pt2`,
    also write OUT.pt2 (`torch_export.py`), which PyTorch loads without edgenas. Interrupted (Ctrl-C), it leaves no
    file of this export: a file is kept only with its report.
    """
    out = Path(out)
    ExportSettings(runtime=runtime, precision=precision, opset=opset, table=table, threads=threads, atol=atol,
                   verify=verify, int8=int8, max_drop=max_drop, allow_supernet_weights=allow_supernet_weights,
                   keep_failed=keep_failed, pt2=pt2).check()
    rt = runtime_for_path(out, runtime, precision)  # a suffix of another runtime, or a precision it cannot run
    rt.require()
    model, arch, describe = load_run_network(run, allow_supernet_weights, warn)
    if table is not None and verify:  # refuse a table of another space before writing anything
        from edgenas.cost.latency import load_table

        load_table(table).check(arch)
    from exporters.torch_export import pt2_path

    folder_made = not out.parent.exists()
    make_folder(out.parent)  # once the run and the table are checked: a refused export creates nothing
    try:
        path = _write(rt, model, arch, describe, out, opset).path
    except KeyboardInterrupt:  # written atomically: the previous file, if any, is as it was
        _remove_folder_made(out.parent, folder_made)
        raise KeyboardInterrupt(f"nothing was written; {out} is as it was") from None
    report_path = rt.report_path(out)
    try:
        if log is not None:
            how = f"ONNX opset {opset}, onnx.checker passed"
            how = how if rt.name == "onnxruntime" else f"{rt.method}, from {how}" if rt.from_onnx else rt.method
            log(f"exported the {arch.space} network of run {run} to {path} ({how})")
        scripted = None
        if pt2:
            from exporters.torch_export import write_pt2

            scripted = write_pt2(model, arch, describe, pt2_path(path))
        if not verify:
            return ExportResult(path, pt2=scripted)
        report = _verify_and_report(rt, path, run, report_path, keep_failed, threads=threads, atol=atol, table=table,
                                    allow_supernet_weights=allow_supernet_weights, int8=int8, max_drop=max_drop,
                                    runtime=rt.name, precision=precision, log=log, progress=progress, echo=echo)
    except KeyboardInterrupt:
        _discard([*rt.files(path), *(rt.files(rt.int8_path(path)) if int8 else []), pt2_path(path) if pt2 else None,
                  report_path], out.parent, folder_made)
    return ExportResult(path, report, report_path, scripted)


export_onnx = export_model  # its name before other runtimes, kept for the Python API's users


def _write(rt, model, arch, describe: dict, out: Path, opset: int):
    """The runtime's FP32 file at `out`, from the ONNX file: `out` itself for ONNX Runtime; for another runtime, a
    temporary ONNX file that goes once converted (the user asked for the runtime's format, and the ONNX file was
    not verified); none for a runtime that converts the PyTorch network itself (LiteRT)."""
    import tempfile

    from exporters.metadata import file_metadata
    from exporters.onnx_export import write_model

    metadata = file_metadata(arch, describe, opset)
    if rt.suffix == ".onnx":
        return rt.convert(model, write_model(model, arch, describe, out, opset), out, metadata)
    if not rt.from_onnx:
        return rt.convert(model, None, out, metadata)
    with tempfile.TemporaryDirectory() as folder:
        onnx = write_model(model, arch, describe, Path(folder) / "model.onnx", opset)
        return rt.convert(model, onnx, out, metadata)


def _discard(paths: list[Path | None], folder: Path, folder_made: bool) -> NoReturn:
    """After Ctrl-C: an export is kept only with its report (and a report only beside its file), so every file
    this export writes goes, an earlier export's report included, since the file it described was replaced."""
    gone = [p for p in paths if p is not None and p.is_file()]
    for stale in gone:
        stale.unlink()
    _remove_folder_made(folder, folder_made)
    raise KeyboardInterrupt(f"nothing kept: deleted {', '.join(str(p) for p in gone)} (an export is kept only "
                            "with its verification report); run the same command again") from None


def _verify_and_report(rt, path: Path, run, report_path: Path, keep_failed: bool, **options) -> dict:
    """Prove the written file (`verify.verify`) and write its report beside it; a file whose FP32 outputs or
    agreement fail is deleted with its INT8 file unless `keep_failed` (an INT8 file that fails its own check is
    deleted alone, in `verify`)."""
    from edgenas.files import write_json
    from exporters.verify import verify as check

    report = check(path, run, **options)
    fp32_failed = (report["outputs"]["max_abs_diff"] > report["atol"]
                   or report["top1_agreement"] < report["min_agreement"])
    if fp32_failed and not keep_failed:
        files = [*rt.files(path), *rt.files(rt.int8_path(path))]
        for file in files:
            file.unlink(missing_ok=True)
        report["deleted"] = [str(file) for file in files]
    write_json(report_path, report)
    return report


def _remove_folder_made(folder: Path, made: bool) -> None:
    """Remove the output folder an interrupted export created, if nothing else is in it."""
    if made and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
