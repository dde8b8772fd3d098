"""Verification of an exported file on its own runtime (ONNX Runtime, OpenVINO, LiteRT: `runtimes/`) against the
PyTorch network it came from.

Checks, on the run's real data: outputs on a batch of test images (maximum absolute and relative difference),
top-1 agreement and accuracy over the whole test split from both, and latency at batch 1 with pinned threads for
the runtime and PyTorch eager, plus the latency table's prediction and its error when a table of the same space is
given (`table_check.py`), and the files' bytes and the peak memory beside edgenas's count and the run's memory
budgets (`memory_check.py`). The verdict fails when outputs differ beyond `atol` or agreement is below 99.9% (a
file that runs in bfloat16: beyond 0.5 unless `atol` is given, below 99%: `gates`); with `int8`, also when the INT8
file drops more than `max_drop` points or holds no int8 weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgenas.errors import EdgeNASError
from exporters.metadata import read_metadata
from exporters.run_network import load_run_network
from exporters.runtimes import runtime_for_path
from exporters.settings import REPEATS, WARMUP, ExportSettings
from exporters.table_check import table_prediction
from exporters.timing import median_latency, time_file

MIN_AGREEMENT = 0.999
# A session that computes in bfloat16 (OpenVINO, --precision bf16) keeps 8 bits of mantissa: its logits differ from
# FP32's by about 0.1 and a few answers in a thousand turn (the digits network: max |diff| 0.089, 99.72% agreement).
# Its gate: the default --atol widened to 0.5, and 99% agreement; the accuracy's change is reported beside it.
REDUCED = {"bf16": (0.5, 0.99)}  # precision -> (atol when --atol is left at its default, least top-1 agreement)


def gates(ran: str, atol: float) -> tuple[float, float]:
    """The output tolerance and the least top-1 agreement a file that runs in `ran` must meet."""
    if ran not in REDUCED:
        return atol, MIN_AGREEMENT
    reduced_atol, agreement = REDUCED[ran]
    return (reduced_atol if atol == ExportSettings.atol else atol), agreement
TITLES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO", "litert": "LiteRT"}


def verify(path: str | os.PathLike, run: str | os.PathLike, *, threads: int = ExportSettings.threads,
           atol: float = ExportSettings.atol, table: str | None = ExportSettings.table, warmup: int = WARMUP,
           repeats: int = REPEATS, allow_supernet_weights: bool = ExportSettings.allow_supernet_weights, data=None,
           int8: bool = ExportSettings.int8, max_drop: float = ExportSettings.max_drop,
           runtime: str | None = ExportSettings.runtime, precision: str = ExportSettings.precision, log=None,
           progress: bool = False, echo=None) -> dict:
    """Compare the file (its runtime by its suffix, or `runtime`) with the run's PyTorch network; returns the report
    (see module docstring).

    With `int8`, also quantise it by the runtime's route and report the INT8 file's accuracy, drop, int8 weights,
    size and latency. `log`, when given, receives one line as each phase starts. Each pass over the test split (the
    long part on a large one) draws a bar with `progress`; without one, `echo` gets a line every 10 s at most (and
    at its end), with the time that pass has left.
    """
    log = log or (lambda line: None)
    import torch

    from edgenas.progress import Bar
    from edgenas.runs.folder import Run
    from edgenas.runs.settings import SearchSettings, load_data

    path = Path(path)
    rt = runtime_for_path(path, runtime, precision)
    rt.require()
    model, arch, loaded = _network_and_table(path, run, allow_supernet_weights, table)
    if data is None:
        data = load_data(SearchSettings.of_run(Run.open(run)), arch.resolution)
    title = TITLES.get(rt.name, rt.name)
    log(f"verifying {path} with {title}: outputs and top-1 accuracy on {data.size('test')} test images")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode(), Bar(progress, echo, every=10.0, eta=True) as bar:
            session = rt.open(path, threads)
            compared = _compare_on_test_split(model, session, data, bar, title)
            ran, layout = session.precision, session.layout
            del session  # one session alive at a time
            log(f"timing batch-1 latency: {title} and PyTorch eager, {threads} thread(s)")
            latency, torch_latency, how = _time_batch_one(rt, path, model, arch.resolution, threads, warmup, repeats)
    finally:
        torch.set_num_threads(previous_threads)
    report, failures = _fp32_report(rt, path, run, arch, threads, gates(ran, atol), compared, latency,
                                    torch_latency)
    report["runtime"]["precision"], report["runtime"]["input_layout"] = ran, layout
    report["latency_method"] = f"batch 1, {how}, best of 3 pass medians of {repeats} calls"
    report["notes"] = _precision_notes(rt, ran)
    report["int8"] = None
    if int8:
        log("INT8: quantising, then its accuracy and latency")
        report["int8"] = _check_int8(rt, path, model, data, threads, warmup, repeats, report,
                                     Bar(progress, echo, every=10.0, eta=True), max_drop)
        failures += _int8_failures(report["int8"], max_drop)
    from exporters.memory_check import memory_check

    kept = report["int8"]["file"] if report["int8"] else None
    report["memory"] = memory_check(rt, model, arch, path, Path(kept) if kept else None, run)
    int8_ms = report["int8"]["latency"]["median_ms"] if report["int8"] else None
    budget_ms = SearchSettings.of_run(Run.open(run)).latency_ms
    report["table"] = table_prediction(loaded, arch, latency["median_ms"], int8_ms, threads, budget_ms, rt.name)
    report["passed"] = not failures
    report["failures"] = failures
    return report


def _network_and_table(path: Path, run, allow_supernet_weights: bool, table: str | None):
    """The run's network, refused when the file holds another architecture, and the latency table, refused when
    of another space: before anything is measured or written."""
    metadata = read_metadata(path)
    model, arch, _ = load_run_network(run, allow_supernet_weights, warn=lambda *a: None)
    if metadata["arch"] != arch.to_dict():
        raise EdgeNASError(f"{path} holds another architecture than run {run}")
    if table is None:
        return model, arch, None
    from edgenas.cost.latency import load_table

    loaded = load_table(table)
    loaded.check(arch)
    return model, arch, loaded


def _fp32_report(rt, path, run, arch, threads, gate, compared, latency, torch_latency):
    """The FP32 file's part of the report, and what in it fails the verification (`gate`: the output tolerance and
    least agreement, `gates`). ONNX Runtime's reports also keep the keys they had before other runtimes (`onnx`,
    `accuracy_onnxruntime`, ...), for their readers."""
    agree, correct_runtime, correct_torch, total, max_abs, max_rel = compared
    atol, min_agreement = gate
    title = TITLES.get(rt.name, rt.name)
    report = {
        "file": str(path), "run": str(run), "arch": arch.to_dict(), "threads": threads, "atol": atol,
        "min_agreement": min_agreement,
        "runtime": {"name": rt.name, "title": title, "version": rt.version(), "precision": None, "input_layout": None,
                    "precision_asked": rt.precision, "method": rt.method},
        "outputs": {"max_abs_diff": max_abs, "max_rel_diff": max_rel, "images": min(64, total),
                    "method": f"first batch of test images, {title} against PyTorch (eval mode)"},
        "test_images": total, "top1_agreement": agree / max(1, total),
        "accuracy_runtime": correct_runtime / max(1, total), "accuracy_pytorch": correct_torch / max(1, total),
        "latency_runtime": latency, "latency_pytorch_eager": torch_latency,
        "runtime_vs_pytorch": latency["median_ms"] / torch_latency["median_ms"],
    }
    if rt.name == "onnxruntime":
        report.update({"onnx": str(path), "accuracy_onnxruntime": report["accuracy_runtime"],
                       "latency_onnxruntime": latency, "onnxruntime_vs_pytorch": report["runtime_vs_pytorch"]})
    failures = []
    if max_abs > atol:
        failures.append(f"outputs differ by up to {max_abs:.2e}, beyond --atol {atol:g}")
    if report["top1_agreement"] < min_agreement:
        failures.append(f"top-1 agreement {100 * report['top1_agreement']:.2f}% is below {100 * min_agreement:.1f}%")
    return report, failures


def _precision_notes(rt, ran: str) -> list[str]:
    """A note when the runtime ran another precision than asked (bf16 asked of a CPU without bf16)."""
    if ran in (rt.precision, "int8"):
        return []
    return [f"note: --precision {rt.precision} was asked, but {TITLES.get(rt.name, rt.name)} runs the file in {ran} "
            f"on this CPU: what this report verified is what runs here"]


def _compare_on_test_split(model, session, data, bar, title) -> tuple[int, int, int, int, float, float]:
    """One pass over the test split with both: top-1 agreement, each one's correct answers, the image count, and the
    largest absolute and relative output difference on the first batch of real test images."""
    from edgenas.data.batches import batch_sizes, batches

    agree = correct_runtime = correct_torch = total = 0
    max_abs = max_rel = 0.0
    first = True
    bar.begin(len(batch_sizes(data.size("test"), 64)), f"verifying: test split, 64 images a batch, {title} and PyTorch")
    for x, y in batches(data, "test", 64):
        reference = model(x).numpy()
        got = session.run(x.numpy())
        if first:  # outputs compared on the first batch of real test images
            difference = np.abs(got - reference)
            max_abs = float(difference.max())
            max_rel = float((difference / np.maximum(np.abs(reference), 1e-6)).max())
            first = False
        top_runtime, top_torch = got.argmax(1), reference.argmax(1)
        labels = y.numpy()
        agree += int((top_runtime == top_torch).sum())
        correct_runtime += int((top_runtime == labels).sum())
        correct_torch += int((top_torch == labels).sum())
        total += len(labels)
        bar.step()
    return agree, correct_runtime, correct_torch, total, max_abs, max_rel


def _time_batch_one(rt, path, model, resolution: int, threads: int, warmup: int, repeats: int):
    """Batch-1 latency of the file in a session opened for batch 1 and of the network in PyTorch eager, on one
    random image; and how the session ran (threads, and the runtime's own settings)."""
    import torch

    one = np.random.default_rng(0).standard_normal((1, 3, resolution, resolution)).astype(np.float32)
    latency, how = time_file(rt, path, threads, one, warmup, repeats)
    tensor = torch.from_numpy(one)
    return latency, median_latency(lambda: model(tensor), warmup, repeats), how


def _check_int8(rt, path, model, data, threads, warmup, repeats, report, bar, max_drop) -> dict:
    """Quantise the file by the runtime's route and measure the INT8 file (`quantize.check_int8`)."""
    from edgenas.data.batches import batch_sizes
    from exporters.quantize import calibration_batches, check_int8
    from exporters.runtimes import Converted

    fp32 = Converted(path, rt.name, report["runtime"]["version"], report["runtime"]["precision"], rt.method)
    quantized = rt.quantize(model, fp32, calibration_batches(data), rt.int8_path(path))
    with bar:
        bar.begin(len(batch_sizes(data.size("test"), 64)), "INT8: test split, 64 images a batch, "
                  f"{TITLES.get(rt.name, rt.name)}")
        return check_int8(rt, path, quantized, data, threads, warmup, repeats, report["accuracy_runtime"],
                          report["latency_runtime"]["median_ms"], max_drop, bar.step)


def _int8_failures(q: dict, max_drop: float) -> list[str]:
    if q["int8_weights"] == 0:
        return ["the INT8 file holds no int8 weights, so it would not run int8 kernels; it was deleted, the FP32 "
                "file is kept"]
    if not q["kept"]:
        return [f"INT8 accuracy drops {q['drop_points']:.2f} points, more than --max-drop {max_drop:g}; the INT8 "
                "file was deleted, the FP32 file is kept"]
    return []
