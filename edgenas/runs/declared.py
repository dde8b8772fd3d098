"""A setting declared once: its default, its command-line help and the range it must lie in, as one dataclass field.

`SearchSettings`, `ProfileSettings` and `ExportSettings` declare their fields with `option(...)`; the command line
generates each command's options from the fields that have a help (`edgenas.cli.options`), and `check_ranges`
generates the range checks from `at_least`, so a value outside its range is one line naming the option, the value
and the range: `bad --threads 0: expected 1 or more`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from edgenas.errors import EdgeNASError


def option(default, help: str, *, flag: str | None = None, at_least: float | None = None, unit: str | None = None):
    """A setting with its command-line option: `help` (required: a field without one gets no option), `flag` (the
    option's spelling where it is not `--the-name`: `--int8`, `--no-verify` for a setting that is True unless
    given), `at_least` (its least value; None, where allowed, is not checked) and `unit` (said after the range)."""
    metadata = {"help": help, "flag": flag, "at_least": at_least, "unit": unit}
    return dataclasses.field(default=default, metadata={k: v for k, v in metadata.items() if v is not None})


def flag_of(field: dataclasses.Field) -> str:
    """A declared setting's option as spelled on the command line: `--max-drop`, or its own `flag`."""
    return field.metadata.get("flag", "--" + field.name.replace("_", "-"))


def check_ranges(settings_class, values: Mapping[str, Any]) -> None:
    """Refuse the first of `values` (setting name -> value) outside its declared range, in field order."""
    for field in dataclasses.fields(settings_class):
        least, value = field.metadata.get("at_least"), values.get(field.name)
        if least is None or value is None or value >= least:
            continue
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        unit = f" {field.metadata['unit']}" if "unit" in field.metadata else ""
        raise EdgeNASError(f"bad {flag_of(field)} {shown}: expected {least:g} or more{unit}")
