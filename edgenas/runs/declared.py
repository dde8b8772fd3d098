"""A setting declared once: its default, its command-line help and the range it must lie in, as one dataclass field.

`SearchSettings`, `ProfileSettings` and `ExportSettings` declare their fields with `option(...)`; the command line
generates each command's options from the fields that have a help (`edgenas.cli.options`), and `check_ranges`
generates the range checks from `at_least`, so a value outside its range is one line naming the option, the value
and the range: `bad --threads 0: expected 1 or more`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from edgenas.errors import EdgeNASError


def option(default, help: str | None = None, *, flag: str | None = None, at_least: float | None = None,
           above: float | None = None, at_most: float | None = None, below: float | None = None,
           one_of: tuple[str, ...] | None = None, unit: str | None = None,
           parse: Callable[[str, str], Any] | None = None):
    """A setting, with its command-line option where it has a `help` (a field without one gets no option: the
    Python API and config.json set it). `flag`: the option's spelling where it is not `--the-name` (`--int8`,
    `--no-verify` for a setting that is True unless given). The range it must lie in: `at_least`/`above` below,
    `at_most`/`below` above (None, where allowed, is not checked), or `one_of` its allowed values; `unit` is said
    after the range. `parse(text, flag)`: the option is text with a unit (`512KB`), turned into the setting's value
    by it (`parse_values`), which names the flag when it refuses the text."""
    metadata = {"help": help, "flag": flag, "at_least": at_least, "above": above, "at_most": at_most, "below": below,
                "one_of": one_of, "unit": unit, "parse": parse}
    return dataclasses.field(default=default, metadata={k: v for k, v in metadata.items() if v is not None})


def flag_of(field: dataclasses.Field) -> str:
    """A declared setting's option as spelled on the command line: `--max-drop`, or its own `flag`."""
    return field.metadata.get("flag", "--" + field.name.replace("_", "-"))


def parse_values(settings_class, values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with each text given to a setting declared with a `parse` turned into its value (`512KB` ->
    512000); other values as they are."""
    parsed = dict(values)
    for field in dataclasses.fields(settings_class):
        parse = field.metadata.get("parse")
        if parse is not None and isinstance(parsed.get(field.name), str):
            parsed[field.name] = parse(parsed[field.name], flag_of(field))
    return parsed


def check_ranges(settings_class, values: Mapping[str, Any]) -> None:
    """Refuse the first of `values` (setting name -> value) outside its declared range, in field order."""
    for field in dataclasses.fields(settings_class):
        value = values.get(field.name)
        if value is not None and (expected := _outside(field.metadata, value)):
            shown = repr(value) if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)
            raise EdgeNASError(f"bad {flag_of(field)} {shown}: expected {expected}")


def _outside(declared: Mapping[str, Any], value) -> str | None:
    """What a value outside the declared range was expected to be (`0 or more networks`, `a number in [0, 1)`,
    `one of a, b`); None when it lies inside."""
    if "one_of" in declared:
        return None if value in declared["one_of"] else f"one of {', '.join(declared['one_of'])}"
    least, above, most, below = (declared.get(k) for k in ("at_least", "above", "at_most", "below"))
    if ((least is None or value >= least) and (above is None or value > above) and (most is None or value <= most)
            and (below is None or value < below)):
        return None
    unit = f" {declared['unit']}" if "unit" in declared else ""
    low, high = (least if least is not None else above), (most if most is not None else below)
    if high is not None and low is not None:
        opening, closing = "[" if least is not None else "(", "]" if most is not None else ")"
        return f"a number in {opening}{low:g}, {high:g}{closing}{unit}"
    if high is not None:
        return f"{high:g} or less{unit}" if most is not None else f"less than {high:g}{unit}"
    if least is not None:
        return f"{least:g} or more{unit}"
    return f"a positive number{unit}" if above == 0 else f"more than {above:g}{unit}"
