"""The memory of an exported network beside edgenas's prediction: each file's bytes (and, for an ONNX file, the
weight bytes in it) against the model size edgenas counts, and the peak memory it counts, at the file's precision,
with the run's `--model-size` and `--peak-memory` budgets and whether the exported network keeps to them.

The peak of live activations is a figure of the network and its execution order, not of a file: it is counted on
the run's network (docs/COSTS.md). It equals TFLite Micro's planned arena for a LiteRT INT8 file (24 of 24 networks,
docs/BENCHMARKS.md); ONNX Runtime and OpenVINO pad inside the convolution, so there it is an upper bound.
"""

from __future__ import annotations

from pathlib import Path

PEAK_NOTES = {
    "litert": "equals TFLite Micro's planned arena (its head) for LiteRT files: 24 of 24 networks, docs/BENCHMARKS.md",
    "onnxruntime": "an upper bound for ONNX Runtime, which pads inside the convolution (no padded copies)",
    "openvino": "an upper bound for OpenVINO, which pads inside the convolution (no padded copies)",
}


def memory_check(rt, model, arch, fp32: Path, int8: Path | None, run) -> dict:
    """Per precision exported (`int8`: the kept INT8 file, or None), the predicted model size and peak memory, the
    file's bytes and, for ONNX, its weight bytes; and the run's memory budgets with whether they hold."""
    from edgenas.cost.memory import ELEMENT_BYTES, count_memory
    from edgenas.cost.memory_table import PEAK_RULE, SIZE_RULE
    from exporters.quantize import size_bytes

    budgets = _budgets(run)
    counts = count_memory(model, (3, arch.resolution, arch.resolution))  # once: each precision is a factor of it
    size = {p: counts.size(p) for p in ELEMENT_BYTES}
    peak = {p: ELEMENT_BYTES[p] * counts.peak for p in ELEMENT_BYTES}
    files = {"fp32": fp32, **({"int8": int8} if int8 is not None else {})}
    rows = {precision: {"file": str(path), "file_bytes": size_bytes(rt, path),
                        "file_weight_bytes": _onnx_weight_bytes(path) if rt.name == "onnxruntime" else None,
                        "predicted_model_size_bytes": size[precision],
                        "predicted_peak_memory_bytes": peak[precision]}
            for precision, path in files.items()}
    at_budget = {"model_size": size[budgets["precision"]], "peak_memory": peak[budgets["precision"]]}
    within = {name: None if budgets[f"{name}_bytes"] is None else at_budget[name] <= budgets[f"{name}_bytes"]
              for name in at_budget}
    return {"files": rows, "budgets": budgets, "within_budgets": within,
            "model_size_method": f"counted on the run's network: {SIZE_RULE}",
            "peak_memory_method": f"counted on the run's network: {PEAK_RULE}",
            "peak_memory_note": PEAK_NOTES.get(rt.name, "")}


def _budgets(run) -> dict:
    """The run's memory budgets (bytes, None where not given) and the precision they count at."""
    from edgenas.runs.folder import Run
    from edgenas.runs.settings import SearchSettings

    folder = Run.open(run, writer=False)
    settings = SearchSettings.of_run(folder)
    precision = settings.deploy_precision
    if precision == "auto":  # what the search resolved it to (the table's precision, else fp32)
        summary = folder.read("summary.json") if folder.has("summary.json") else {}
        precision = summary.get("deploy_precision") or "fp32"
    return {"precision": precision, "model_size_bytes": settings.model_size, "peak_memory_bytes": settings.peak_memory}


def _onnx_weight_bytes(path: Path) -> int:
    from exporters.weight_bytes import weight_bytes

    return weight_bytes(path)["weight_bytes"]
