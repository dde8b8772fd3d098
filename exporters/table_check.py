"""A latency table's prediction beside what the export measured: the file of the table's precision, on the table's
runtime, with a note for each reason the comparison may not hold (another precision, another CPU, another runtime,
a miss beyond the table's own validation, the run's budget exceeded).
"""

from __future__ import annotations


def runtime_note(loaded, runtime: str) -> str | None:
    """One line when the table was timed with another runtime than the file's: a latency table of one runtime says
    nothing about another (issue 36: OpenVINO took 1.0-2.0x ONNX Runtime's time, LiteRT 1.8x, on one CPU). A table
    imported from a device's timings of .tflite or IR files records litert or openvino and counts as that runtime;
    one of ONNX files ("imported") counts as any, since any ONNX runner may have timed them."""
    backend = loaded.data["runtime"].get("backend")
    if backend in (runtime, "imported"):
        return None
    return (f"note: {loaded.describe()} was measured with {backend}, this file runs in {runtime}: its prediction "
            f"is shown, not a measurement of {runtime} (profile a table with the runtime you ship to)")


def table_prediction(loaded, arch, fp32_ms: float, int8_ms: float | None, threads: int,
                     budget_ms: float | None = None, runtime: str = "onnxruntime") -> dict | None:
    """The table's prediction against the measured file of its precision (the FP32 file when there is no INT8 one),
    with a note for each reason the comparison may not hold: a precision mixed up, another CPU, another runtime than
    the file's (`runtime`); and, comparing like with like, one when it misses by more than the table's validation
    did (`miss_note`). With the run's latency budget (`budget_ms`), whether the measured file keeps to it, and a
    note when it does not: the search met the budget as its table predicted, and only the measurement says what the
    device does."""
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
    notes += [note for note in [host_note(loaded), runtime_note(loaded, runtime)] if note]
    same_runtime = loaded.data["runtime"].get("backend") in (runtime, "imported")
    if compared == loaded.precision and loaded.data["runtime"].get("threads") == threads and same_runtime:
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
            "table_runtime": loaded.data["runtime"].get("backend"), "measured_runtime": runtime,
            "table_fidelity": fidelity, "notes": notes}
