"""What a latency table's numbers are worth here: the fidelity goal of a profile, the host a table was measured
on, and the notes printed when a table comes from another CPU or misses a measurement by more than it ever did."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgenas.cost.latency import LatencyTable

# The fidelity a profile with `max_passes` measures more passes for (leave-one-out, over its validation networks):
# the targets of the shipped tables. Below the share within +/-10%, `edgenas profile` also warns.
FIDELITY_GOAL = {"within_10pct": 0.9, "median_abs_error_pct": 2.0}


def fidelity_shortfall(validation: dict) -> str | None:
    """What a table's validation misses of FIDELITY_GOAL, in words; None when it meets it or has no networks."""
    within, median = validation.get("within_10pct"), validation.get("median_abs_error_pct")
    if within is None or median is None:
        return None
    if within < FIDELITY_GOAL["within_10pct"]:
        return (f"{100 * within:.0f}% of the validation networks predicted within +/-10% "
                f"(goal {100 * FIDELITY_GOAL['within_10pct']:.0f}%)")
    if median > FIDELITY_GOAL["median_abs_error_pct"]:
        return f"median |error| {median:.1f}% (goal {FIDELITY_GOAL['median_abs_error_pct']:g}%)"
    return None


# SIMD extensions that decide which kernels ONNX Runtime runs (two CPUs sold under one model name can differ).
_SIMD = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "asimd",
         "asimddp", "sve")


def host_info() -> dict:
    """The CPU (model name; on Linux also `cpu_id`, its family, model and stepping, and `simd`), core count, OS."""
    cpu, cpu_id, simd = platform.processor() or platform.machine(), None, None
    try:
        fields = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if not key and fields:
                break  # the first processor is enough
            fields.setdefault(key, value.strip())
        cpu = fields.get("model name", cpu)
        if "cpu family" in fields:
            cpu_id = (f"family {fields['cpu family']} model {fields.get('model', '?')} "
                      f"stepping {fields.get('stepping', '?')}")
        flags = set((fields.get("flags") or fields.get("Features") or "").split())
        simd = [flag for flag in _SIMD if flag in flags] or None
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "os": platform.platform(), "python": platform.python_version(),
            "machine": platform.machine()}
    if cpu_id:
        info["cpu_id"] = cpu_id
    if simd:
        info["simd"] = simd
    return info


def _describe_cpu(host: dict) -> str:
    cpu = host.get("cpu", "an unrecorded CPU")
    return f"{cpu} ({host['cpu_id']})" if host.get("cpu_id") else cpu


def host_note(table: LatencyTable, here: dict | None = None) -> str | None:
    """One line when `table` was measured on another CPU (model name, or family/model/stepping where both record
    it) or core count than this machine's (None when the same): its predictions may not hold where a measurement is
    compared with them. One model name can hide CPUs of different generations (an `AMD EPYC` of this project ran
    MobileNetV2 2.4x as fast as another)."""
    here = here or host_info()
    theirs = table.data["host"]
    same = (theirs.get("cpu"), theirs.get("cores")) == (here["cpu"], here["cores"])
    if theirs.get("cpu_id") and here.get("cpu_id"):
        same = same and theirs["cpu_id"] == here["cpu_id"]
    if same:
        return None
    d, runtime = table.data, table.data["runtime"]
    command = f"edgenas profile NAME --space {d['space']} --resolution {d['resolution']}"
    if d["width_mult"] != 1:
        command += f" --width-mult {d['width_mult']:g}"
    if runtime.get("threads", 1) != 1:
        command += f" --threads {runtime['threads']}"
    if table.precision == "int8":
        command += " --int8"
    return (f"note: table {Path(table.source).stem} was measured on {_describe_cpu(theirs)}, "
            f"{theirs.get('cores', '?')} cores; this machine is {_describe_cpu(here)}, {here['cores']} cores: its "
            f"predictions may not hold here; profile this machine with {command}")


def miss_note(table: LatencyTable, error_pct: float, here: dict | None = None) -> str | None:
    """One line when a network measured here misses `table`'s prediction by more than 10% and by more than any of
    the table's validation networks did (None otherwise, and for a table from another CPU, which `host_note` names).

    A table's fidelity is that of the minutes it was profiled in; a check minutes or hours later on the same machine
    adds that minute's level: a few percent when the machine is quiet, 20-40% while a neighbour is busy
    (docs/BENCHMARKS.md, "Run to run"). Measuring again tells the two apart."""
    v = table.data["validation"]
    if not v.get("count") or host_note(table, here) is not None:
        return None
    worst = v.get("max_abs_error_pct") or 0.0
    if abs(error_pct) <= max(10.0, worst):
        return None
    return (f"note: the prediction misses this measurement by {error_pct:+.1f}%, more than it missed any of the "
            f"table's {v['count']} validation networks ({worst:.1f}% at most): a busy minute on this machine can move "
            "whole-network timings that much; measure again, and if it stays, profile this machine again (--fresh)")
