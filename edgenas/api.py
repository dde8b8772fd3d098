"""The Python API behind `edgenas.search(...)` and `edgenas.profile(...)`: the CLI's options as keyword arguments
(budgets as numbers or as the CLI's strings, "300M", "12ms", "512KB"), each call returning a result object that holds
the numbers the CLI prints. The CLI and this module call the same library functions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from edgenas.errors import EdgeNASError
from edgenas.profiling.settings import ProfileSettings


def search(data: str | os.PathLike | None = None, *, flops: int | str | None = None,
           latency: float | str | None = None, table: str | None = None, out: str | os.PathLike | None = None,
           resume: str | os.PathLike | None = None, progress: bool = False, log=None, **settings: Any):
    """Search on `data` (None: the embedded digits) under the budgets, retrain, evaluate; returns a `SearchResult`
    (`.run`, `.summary` and shortcuts `.arch`, `.flops`, `.predicted_latency_ms`, `.test_acc`).

    Other keyword arguments are `SearchSettings` fields (space, width_mult, schedule, retrain_epochs, seed, ...).
    """
    from edgenas.progress import silent
    from edgenas.runs.declared import parse_values
    from edgenas.runs.settings import SearchSettings
    from edgenas.searching.run import search as run_search
    from edgenas.units import parse_flops, parse_latency_ms

    known = {f.name for f in fields(SearchSettings)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise EdgeNASError(f"unknown search setting(s) {', '.join(unknown)}: expected some of "
                           f"{', '.join(sorted(known))}")
    if resume is not None:
        ignored = [name for name, value in (("data", data), ("flops", flops), ("latency", latency), ("table", table),
                                            ("out", out)) if value is not None] + sorted(settings)
        if ignored:
            (log or silent)(f"note: resume={str(resume)!r} keeps the settings the run was started with; ignoring "
                            f"{', '.join(ignored)}")
        return run_search(resume=resume, progress=progress, log=log or silent)
    chosen = SearchSettings(
        data=None if data is None else str(data),
        flops=parse_flops(flops) if isinstance(flops, str) else flops,
        latency_ms=parse_latency_ms(latency) if isinstance(latency, str) else latency, table=table,
        **parse_values(SearchSettings, settings))
    return run_search(chosen, out=out, progress=progress, log=log or silent)


@dataclass(frozen=True)
class ProfileResult:
    """A written latency table: where, the loaded table, and the summary `edgenas profile` prints."""

    path: Path
    table: Any  # LatencyTable
    summary: dict

    @property
    def median_error_pct(self) -> float | None:
        return self.summary["validation"]["median_abs_error_pct"]


def profile(device: str, space: str = ProfileSettings.space, *, resolution: int | None = ProfileSettings.resolution,
            width_mult: float = ProfileSettings.width_mult, progress: bool = False, **options: Any) -> ProfileResult:
    """Measure `space`'s blocks on this machine and write `latency_tables/DEVICE.json` (`DEVICE-int8.json` with
    `int8=True`; or `out=`).

    Options as `edgenas profile`: threads, provider, backend, warmup, repeats, passes, max_passes, validate, seed, out,
    int8.
    """
    from edgenas.profiling import profiler
    from edgenas.space.spec import get_space

    path, table = profiler.profile(device, get_space(space, resolution, width_mult), progress=progress, **options)
    return ProfileResult(path, table, table.summary(str(path)))
