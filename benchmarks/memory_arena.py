"""Benchmark: edgenas's INT8 peak memory against the arena TensorFlow Lite for Microcontrollers plans for the same
network (issue 37; the definition: docs/COSTS.md).

For each network of the set (random draws of `tiny`, `mcu`, `mobile-small`, `mobile` and `macro` over resolutions and
widths, spread from a few KB to about 1 MB), the built network is converted to an INT8 .tflite file by edgenas's
LiteRT route (`exporters.runtimes.litert`, litert-torch's PT2E quantiser, calibrated on 4 random inputs: calibration
sets scales, not shapes) and loaded by the `tflite-micro` package's interpreter, whose recording allocator reports the
arena's `head` (the planned, non-persistent activation memory) and `tail` (persistent: tensor structs, quantisation
parameters, kernel data). Recorded per network: edgenas's figure, the head, their error, the tail, and the peak of
live tensors of the .tflite graph itself in its operator order (what a perfect planner needs).

Needs the litert extra and tflite-micro (`pip install 'edgenas[litert]' tflite-micro`).
Run by hand:  .venv/bin/python benchmarks/memory_arena.py [--networks 24] [--out benchmarks/results/memory_arena.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONFIGS = [("tiny", 16, 1.0), ("mcu", 32, 0.5), ("mcu", 64, 0.5), ("mcu", 96, 1.0), ("mobile-small", 32, 0.35),
           ("mobile-small", 48, 0.35), ("mobile-small", 64, 0.5), ("mobile-small", 96, 0.35), ("mobile", 96, 0.35),
           ("mobile", 128, 0.35), ("macro", 32, 1.0), ("mobile-small", 32, 1.0)]
ELEMENT_BYTES = {0: 4, 9: 1, 2: 4, 3: 1, 7: 2, 4: 8, 10: 2}  # TFLite TensorType -> bytes an element


def arena(flat: bytes) -> dict[str, int]:
    """The `Arena allocation` lines tflite-micro's recording allocator writes (to file descriptor 2), as bytes."""
    import ctypes

    from tflite_micro.python.tflite_micro import runtime

    read, write = os.pipe()
    saved = os.dup(2)
    sys.stderr.flush()
    os.dup2(write, 2)
    try:
        interpreter = runtime.Interpreter.from_bytes(flat, arena_size=16 * 1024 * 1024)
        interpreter.print_allocations()
    finally:
        ctypes.CDLL(None).fflush(None)
        os.dup2(saved, 2)
        os.close(write)
    text = os.read(read, 1 << 20).decode()
    os.close(read)
    return {k: int(v) for k, v in re.findall(r"Arena allocation (\w+) (\d+) bytes", text)}


def graph_peak(flat: bytes) -> int:
    """The peak of live activation bytes of the file's main graph, tensors live from writer to last reader."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(flat, 0)
    graph = model.Subgraphs(0)

    def activation(t: int) -> bool:
        buffer = model.Buffers(graph.Tensors(t).Buffer())
        return not (buffer.DataLength() or buffer.Size())

    def size(t: int) -> int:
        tensor = graph.Tensors(t)
        return int(np.prod(tensor.ShapeAsNumpy())) * ELEMENT_BYTES.get(tensor.Type(), 4)

    ops = [graph.Operators(i) for i in range(graph.OperatorsLength())]
    first = {graph.Inputs(j): -1 for j in range(graph.InputsLength())}
    last: dict[int, int] = {}
    for i, op in enumerate(ops):
        for j in range(op.InputsLength()):
            if op.Inputs(j) >= 0 and activation(op.Inputs(j)):
                last[op.Inputs(j)] = i
        for j in range(op.OutputsLength()):
            first.setdefault(op.Outputs(j), i)
    for j in range(graph.OutputsLength()):
        last[graph.Outputs(j)] = len(ops)
    return max(sum(size(t) for t, s in first.items() if s <= i <= last.get(t, s) and activation(t))
               for i in range(len(ops)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "memory_arena.json")
    args = parser.parse_args()

    from importlib.metadata import version

    from edgenas.cost.arch_cost import peak_memory_bytes
    from edgenas.files import write_json
    from edgenas.space.arch import make_arch
    from edgenas.space.network import build_model
    from edgenas.space.spec import get_space
    from exporters.runtimes.litert import int8_flatbuffer

    rng = random.Random(args.seed)
    rows = []
    for i in range(args.networks):
        name, resolution, width = CONFIGS[i % len(CONFIGS)]
        space = get_space(name, resolution, width)
        arch = make_arch(space, [rng.choice(layer.choices) for layer in space.layers], 10)
        model = build_model(arch).eval()
        calibration = [np.random.default_rng(0).standard_normal((4, 3, resolution, resolution)).astype(np.float32)]
        flat = int8_flatbuffer(model, (3, resolution, resolution), calibration)
        predicted = peak_memory_bytes(arch, "int8")
        planned = arena(flat)
        row = {"space": name, "resolution": resolution, "width_mult": width, "layers": list(arch.layers),
               "edgenas_bytes": predicted, "tflm_head_bytes": planned["head"], "tflm_tail_bytes": planned["tail"],
               "graph_peak_bytes": graph_peak(flat), "error": predicted / planned["head"] - 1}
        rows.append(row)
        print(f"{i + 1:2d}/{args.networks} {name} {resolution}px x{width}: edgenas {predicted:,} B, TFLM head "
              f"{planned['head']:,} B ({row['error']:+.1%}), graph peak {row['graph_peak_bytes']:,} B", flush=True)
    errors = [abs(r["error"]) for r in rows]
    summary = {"networks": len(rows), "within_10pct": sum(e <= 0.10 for e in errors), "max_abs_error": max(errors),
               "exact": sum(r["edgenas_bytes"] == r["tflm_head_bytes"] for r in rows),
               "equal_to_graph_peak": sum(r["edgenas_bytes"] == r["graph_peak_bytes"] for r in rows)}
    print(json.dumps(summary))
    write_json(args.out, {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
                          "tflite_micro": version("tflite-micro"), "litert_torch": version("litert-torch"),
                          "torch": version("torch"), "summary": summary, "rows": rows})


if __name__ == "__main__":
    main()
