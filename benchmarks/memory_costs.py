"""Benchmark: edgenas's model size against the weight bytes of real exported files, and what each space reaches in
model size and peak memory (issue 37; the definitions: docs/COSTS.md).

Files: for each architecture of the set (smallest, largest, MobileNetV2 where the space has it, and random draws, of
`tiny`, `mcu`, `mobile-small` and `mobile`), the built network with its weights moved off their initial values (as
after training: fresh folded biases are all 0, and the exporter stores identical tensors once) is exported by
`exporters.onnx_export.to_onnx` (FP32) and quantised by `exporters.quantize.int8_model` (the exporter's own INT8 QDQ
recipe, calibrated on 8 random inputs); `exporters.weight_bytes` reads each file's initializers by role. Recorded:
predicted bytes, the file's weight bytes, the error, the file's size and its overhead (everything but the weights).

Ranges: per space, resolution and width, the least and most INT8 model size and peak memory of any network (exact,
from the memory table), 10 classes; and MobileNetV2 in the space.

Run by hand:  .venv/bin/python benchmarks/memory_costs.py [--random 4] [--out benchmarks/results/memory_costs.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

FILE_SET = [("tiny", 16, 1.0), ("mcu", 32, 1.0), ("mcu", 64, 0.5), ("mobile-small", 32, 0.5), ("mobile", 224, 1.0)]
RANGES = [("mobile-small", r, w) for r in (32, 64, 96) for w in (0.35, 0.5, 1.0)] + [
    ("mcu", r, w) for r in (32, 64, 96) for w in (0.5, 0.75, 1.0)] + [("mobile", 224, 0.35), ("mobile", 224, 1.0)]
CLASSES = 10


def trained_like(arch, seed: int):
    import torch
    from torch import nn

    from edgenas.space.network import build_model

    generator = torch.Generator().manual_seed(seed)
    model = build_model(arch).eval()
    with torch.no_grad():
        means = [m.running_mean for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        for tensor in [*model.parameters(), *means]:
            tensor.add_(0.05 * torch.randn(tensor.shape, generator=generator))
    return model


def file_rows(random_count: int) -> list[dict]:
    from edgenas.cost.arch_cost import model_size_bytes
    from edgenas.cost.presets import preset
    from edgenas.errors import EdgeNASError
    from edgenas.space.spec import get_space
    from exporters.onnx_export import to_onnx
    from exporters.runtimes.onnxruntime import int8_model
    from exporters.weight_bytes import weight_bytes

    rows = []
    for name, resolution, width in FILE_SET:
        space = get_space(name, resolution, width)
        picks = [("smallest", None), ("largest", None), ("mobilenetv2", None)]
        picks += [("random", seed) for seed in range(random_count)]
        for which, seed in picks:
            try:
                arch = preset(which, space, CLASSES, seed)
            except EdgeNASError:
                continue  # tiny has no MobileNetV2
            fp32 = to_onnx(trained_like(arch, 0), (3, resolution, resolution), dynamic_batch=True)
            rng = np.random.default_rng(0)
            int8 = int8_model(fp32, [rng.standard_normal((8, 3, resolution, resolution)).astype(np.float32)])
            for precision, data in (("fp32", fp32), ("int8", int8)):
                found, predicted = weight_bytes(data), model_size_bytes(arch, precision)
                rows.append({"space": name, "resolution": resolution, "width_mult": width,
                             "arch": which if seed is None else f"random {seed}", "precision": precision,
                             "predicted_bytes": predicted, "file_weight_bytes": found["weight_bytes"],
                             "error_pct": 100 * (predicted - found["weight_bytes"]) / found["weight_bytes"],
                             "file_bytes": found["file_bytes"], "overhead_bytes": found["overhead_bytes"],
                             "roles": {k: found[k] for k in ("weights", "weight_scales", "biases", "bias_scales",
                                                             "activation_scales", "other")}})
            print(f"{name} {resolution} {width} {which} {seed}: " + ", ".join(
                f"{r['precision']} {r['error_pct']:+.3f}% ({r['predicted_bytes']:,} / {r['file_weight_bytes']:,}; "
                f"file {r['file_bytes']:,})" for r in rows[-2:]), flush=True)
    return rows


def range_rows() -> list[dict]:
    from edgenas.cost.memory_table import memory_table
    from edgenas.cost.presets import mobilenetv2
    from edgenas.space.spec import get_space

    rows = []
    for name, resolution, width in RANGES:
        space = get_space(name, resolution, width)
        table = memory_table(space)
        ends = table.ranges(CLASSES, "int8")
        mbv2 = mobilenetv2(space, CLASSES)
        rows.append({"space": name, "resolution": resolution, "width_mult": width,
                     "int8_model_size_bytes": ends["model_size_bytes"],
                     "int8_peak_memory_bytes": ends["peak_memory_bytes"],
                     "mobilenetv2_int8_model_size_bytes": table.model_size(mbv2, "int8"),
                     "mobilenetv2_int8_peak_memory_bytes": table.peak_memory(mbv2, "int8")})
        print(f"{name} {resolution} {width}: model size {ends['model_size_bytes']}, peak {ends['peak_memory_bytes']}",
              flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=4, help="random architectures per space")
    parser.add_argument("--out", default="benchmarks/results/memory_costs.json")
    args = parser.parse_args()
    import onnxruntime
    import torch

    from edgenas.version import __version__

    start = time.time()
    files = file_rows(args.random)
    ranges = range_rows()
    errors = [abs(r["error_pct"]) for r in files]
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.processor() or platform.machine(),
              "cpu_count": __import__("os").cpu_count(), "python": platform.python_version(),
              "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "edgenas": __version__,
              "seconds": time.time() - start, "files": files, "ranges": ranges,
              "max_abs_error_pct": max(errors), "architectures": len(files) // 2}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"{len(files) // 2} architectures, {len(files)} files: largest |error| {max(errors):.3f}%; wrote {args.out}")


if __name__ == "__main__":
    main()
