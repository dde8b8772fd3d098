"""The runtimes edgenas ships to, by name (`--runtime`) and by file suffix: ONNX Runtime (.onnx), LiteRT (.tflite),
OpenVINO (.xml). Each lives in its own module, imported only when asked for, so that a runtime whose module or
package is missing never stops the others (`Runtime.require` names the extra that installs its package).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from edgenas.errors import EdgeNASError
from exporters.runtimes.base import Converted, Runtime, Session

# name -> (module, class, suffix); the suffix is repeated here so that choosing by suffix imports nothing
RUNTIMES = {"onnxruntime": ("exporters.runtimes.onnxruntime", "OnnxRuntime", ".onnx"),
            "litert": ("exporters.runtimes.litert", "LiteRT", ".tflite"),
            "openvino": ("exporters.runtimes.openvino", "OpenVINO", ".xml")}
NAMES = tuple(RUNTIMES)


def runtime(name: str, precision: str = "fp32") -> Runtime:
    """The runtime called `name`, whose FP32 sessions compute in `precision`."""
    if name not in RUNTIMES:
        raise EdgeNASError(f"unknown runtime {name!r}: expected one of {', '.join(NAMES)}")
    module_name, class_name, _ = RUNTIMES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise EdgeNASError(f"runtime {name} is not part of this edgenas ({module_name} is missing)") from None
    return getattr(module, class_name)(precision)


def runtime_for_path(path: str | os.PathLike, name: str | None = None, precision: str = "fp32") -> Runtime:
    """The runtime of a model file, by its suffix; with `name` (--runtime), the suffix must be that runtime's."""
    suffix = Path(path).suffix
    by_suffix = next((n for n, (_, _, s) in RUNTIMES.items() if s == suffix), None)
    if name is not None and name in RUNTIMES and by_suffix != name:
        raise EdgeNASError(f"bad output file {path}: --runtime {name} writes a name ending in {RUNTIMES[name][2]}")
    if by_suffix is None and name is None:
        suffixes = ", ".join(f"{s} ({n})" for n, (_, _, s) in RUNTIMES.items())
        raise EdgeNASError(f"bad model file {path}: expected a name ending in {suffixes}")
    return runtime(name or by_suffix, precision)


__all__ = ["NAMES", "RUNTIMES", "Converted", "Runtime", "Session", "runtime", "runtime_for_path"]
