"""Verification of an exported file with ONNX Runtime against the PyTorch network it came from.

Checks, on the run's real data: outputs on a batch of test images (maximum absolute and relative difference),
top-1 agreement and accuracy over the whole test split from both runtimes, and latency at batch 1 with pinned
threads for ONNX Runtime and PyTorch eager, plus the latency table's prediction and its error when a table of
the same space is given: an INT8 table's against the INT8 file, an FP32 table's against the FP32 file, any other
pairing named in a note, as is a table measured on another CPU; the table's own fidelity (`LatencyTable.fidelity`)
comes with it, and a note where it is poor. The verdict fails when outputs differ beyond `atol`
or agreement is below 99.9%.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgenas.errors import EdgeNASError
from exporters.onnx_export import INPUT, read_metadata
from exporters.run_network import load_run_network
from exporters.runtime import make_session, median_latency
from exporters.settings import REPEATS, WARMUP, ExportSettings

MIN_AGREEMENT = 0.999


def verify(onnx_path: str | os.PathLike, run: str | os.PathLike, *, threads: int = ExportSettings.threads,
           atol: float = ExportSettings.atol, table: str | None = ExportSettings.table, warmup: int = WARMUP,
           repeats: int = REPEATS, allow_supernet_weights: bool = ExportSettings.allow_supernet_weights, data=None,
           int8: bool = ExportSettings.int8, max_drop: float = ExportSettings.max_drop, log=None,
           progress: bool = False, echo=None) -> dict:
    """Compare the ONNX file with the run's PyTorch network; returns the report (see module docstring).

    With `int8`, also quantise it (see `quantize.py`) and report the INT8 file's accuracy, drop, size and latency.
    `log`, when given, receives one line as each phase starts. Each pass over the test split (the long part on a
    large one) draws a bar with `progress`; without one, `echo` gets a line every 10 s at most (and at its end),
    with the time that pass has left.
    """
    log = log or (lambda line: None)
    import torch

    from edgenas.data.batches import batch_sizes
    from edgenas.progress import Bar
    from edgenas.runs.folder import Run
    from edgenas.runs.settings import SearchSettings, load_data

    onnx_path = Path(onnx_path)
    model, arch, loaded = _network_and_table(onnx_path, run, allow_supernet_weights, table)
    session = make_session(str(onnx_path), threads)
    if data is None:
        settings = SearchSettings.of_run(Run.open(run))
        data = load_data(settings, arch.resolution)
    log(f"verifying {onnx_path} with ONNX Runtime: outputs and top-1 accuracy on {data.size('test')} test images")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode(), Bar(progress, echo, every=10.0, eta=True) as bar:
            compared = _compare_on_test_split(model, session, data, bar)
            log(f"timing batch-1 latency: ONNX Runtime and PyTorch eager, {threads} thread(s)")
            ort_latency, torch_latency = _time_batch_one(model, session, arch.resolution, warmup, repeats)
    finally:
        torch.set_num_threads(previous_threads)
    report, failures = _fp32_report(onnx_path, run, arch, threads, atol, repeats, compared, ort_latency,
                                    torch_latency)
    test_batches = len(batch_sizes(data.size("test"), 64))
    report["int8"] = None
    if int8:
        log("INT8: quantising, then its accuracy and latency")
        report["int8"] = _check_int8(onnx_path, data, threads, warmup, repeats, report, ort_latency, max_drop,
                                     Bar(progress, echo, every=10.0, eta=True), test_batches)
        if not report["int8"]["kept"]:
            failures.append(f"INT8 accuracy drops {report['int8']['drop_points']:.2f} points, more than --max-drop "
                            f"{max_drop:g}; the INT8 file was deleted, the FP32 file is kept")
    int8_ms = report["int8"]["latency"]["median_ms"] if report["int8"] else None
    budget_ms = SearchSettings.of_run(Run.open(run)).latency_ms
    report["table"] = _table_prediction(loaded, arch, ort_latency["median_ms"], int8_ms, threads, budget_ms)
    report["passed"] = not failures
    report["failures"] = failures
    return report


def _network_and_table(onnx_path: Path, run, allow_supernet_weights: bool, table: str | None):
    """The run's network, refused when the file holds another architecture, and the latency table, refused when
    of another space: before anything is measured or written."""
    metadata = read_metadata(onnx_path)
    model, arch, _ = load_run_network(run, allow_supernet_weights, warn=lambda *a: None)
    if metadata["arch"] != arch.to_dict():
        raise EdgeNASError(f"{onnx_path} holds another architecture than run {run}")
    if table is None:
        return model, arch, None
    from edgenas.cost.latency import load_table

    loaded = load_table(table)
    loaded.check(arch)
    return model, arch, loaded


def _fp32_report(onnx_path, run, arch, threads, atol, repeats, compared, ort_latency, torch_latency):
    """The FP32 file's part of the report, and what in it fails the verification."""
    agree, correct_onnx, correct_torch, total, max_abs, max_rel = compared
    report = {
        "onnx": str(onnx_path), "run": str(run), "arch": arch.to_dict(), "threads": threads, "atol": atol,
        "outputs": {"max_abs_diff": max_abs, "max_rel_diff": max_rel, "images": min(64, total),
                    "method": "first batch of test images, ONNX Runtime against PyTorch (eval mode)"},
        "test_images": total, "top1_agreement": agree / max(1, total),
        "accuracy_onnxruntime": correct_onnx / max(1, total), "accuracy_pytorch": correct_torch / max(1, total),
        "latency_onnxruntime": ort_latency, "latency_pytorch_eager": torch_latency,
        "latency_method": f"batch 1, {threads} intra-op thread(s), best of 3 pass medians of {repeats} calls",
    }
    report["onnxruntime_vs_pytorch"] = ort_latency["median_ms"] / torch_latency["median_ms"]
    failures = []
    if max_abs > atol:
        failures.append(f"outputs differ by up to {max_abs:.2e}, beyond --atol {atol:g}")
    if report["top1_agreement"] < MIN_AGREEMENT:
        failures.append(f"top-1 agreement {100 * report['top1_agreement']:.2f}% is below {100 * MIN_AGREEMENT:.1f}%")
    return report, failures


def _compare_on_test_split(model, session, data, bar) -> tuple[int, int, int, int, float, float]:
    """One pass over the test split with both: top-1 agreement, each one's correct answers, the image count, and the
    largest absolute and relative output difference on the first batch of real test images."""
    from edgenas.data.batches import batch_sizes, batches

    agree = correct_onnx = correct_torch = total = 0
    max_abs = max_rel = 0.0
    first = True
    bar.begin(len(batch_sizes(data.size("test"), 64)),
              "verifying: test split, 64 images a batch, ONNX Runtime and PyTorch")
    for x, y in batches(data, "test", 64):
        reference = model(x).numpy()
        got = session.run(None, {INPUT: x.numpy()})[0]
        if first:  # outputs compared on the first batch of real test images
            difference = np.abs(got - reference)
            max_abs = float(difference.max())
            max_rel = float((difference / np.maximum(np.abs(reference), 1e-6)).max())
            first = False
        top_onnx, top_torch = got.argmax(1), reference.argmax(1)
        labels = y.numpy()
        agree += int((top_onnx == top_torch).sum())
        correct_onnx += int((top_onnx == labels).sum())
        correct_torch += int((top_torch == labels).sum())
        total += len(labels)
        bar.step()
    return agree, correct_onnx, correct_torch, total, max_abs, max_rel


def _time_batch_one(model, session, resolution: int, warmup: int, repeats: int) -> tuple[dict, dict]:
    """Batch-1 latency of the ONNX file in ONNX Runtime and of the network in PyTorch eager, on one random image."""
    import torch

    one = np.random.default_rng(0).standard_normal((1, 3, resolution, resolution)).astype(np.float32)
    ort_latency = median_latency(lambda: session.run(None, {INPUT: one}), warmup, repeats)
    tensor = torch.from_numpy(one)
    return ort_latency, median_latency(lambda: model(tensor), warmup, repeats)


def _check_int8(onnx_path, data, threads, warmup, repeats, report, ort_latency, max_drop, bar, test_batches) -> dict:
    """Quantise the file and measure the INT8 file's accuracy, drop, size and latency (see `quantize.py`)."""
    from exporters.quantize import calibration_batches, check_int8, quantize

    quantized = quantize(onnx_path, calibration_batches(data))
    with bar:
        bar.begin(test_batches, "INT8: test split, 64 images a batch, ONNX Runtime")
        return check_int8(onnx_path, quantized, data, threads, warmup, repeats, report["accuracy_onnxruntime"],
                          ort_latency["median_ms"], max_drop, bar.step)


def _table_prediction(loaded, arch, fp32_ms: float, int8_ms: float | None, threads: int,
                      budget_ms: float | None = None) -> dict | None:
    """The table's prediction against the measured file of its precision (the FP32 file when there is no INT8 one),
    with a note for each reason the comparison may not hold: a precision mixed up, another CPU; and, comparing like
    with like, one when it misses by more than the table's validation did (`miss_note`). With the run's latency
    budget (`budget_ms`), whether the measured file keeps to it, and a note when it does not: the search met the
    budget as its table predicted, and only the measurement says what the device does."""
    if loaded is None:
        return None
    from edgenas.cost.notes import host_note, miss_note

    predicted = loaded.predict(arch)
    name = loaded.describe()
    compared, notes = "fp32", []
    if loaded.precision == "int8" and int8_ms is not None:
        compared = "int8"
    elif loaded.precision == "int8":
        notes.append(f"note: {name} predicts the INT8 network, but this export is FP32 only: its prediction is "
                     "compared with the FP32 file (add --int8 to compare it with the INT8 file)")
    elif int8_ms is not None:
        notes.append(f"note: {name} predicts the FP32 network: its prediction is compared with the FP32 file, not "
                     "the INT8 one (edgenas profile --int8 makes a table that predicts the INT8 file)")
    measured_ms = int8_ms if compared == "int8" else fp32_ms
    error_pct = 100.0 * (predicted - measured_ms) / measured_ms
    notes += [note for note in [host_note(loaded)] if note]
    if compared == loaded.precision and loaded.data["runtime"].get("threads") == threads:  # like for like
        notes += [note for note in [miss_note(loaded, error_pct)] if note]
    fidelity = loaded.fidelity()
    notes += [note for note in [fidelity["note"]] if note]
    within = None if budget_ms is None else measured_ms <= budget_ms
    if within is False:
        notes.append(f"note: the {compared.upper()} file measured {measured_ms:.3f} ms here, over the run's latency "
                     f"budget of {budget_ms:g} ms, which the search met as its table predicted; search again with "
                     "a lower --latency, or with a table of higher fidelity (edgenas profile --fresh --max-passes 15)")
    return {"table": loaded.source, "table_precision": loaded.precision, "compared_with": compared,
            "run_latency_budget_ms": budget_ms, "measured_within_budget": within,
            "predicted_ms": predicted, "measured_ms": measured_ms, "error_pct": error_pct,
            "table_threads": loaded.data["runtime"].get("threads"), "measured_threads": threads,
            "table_fidelity": fidelity, "notes": notes}
