"""The command line's shared options, declared once: `--json`, `--quiet`, `--verbose`, and the options generated from a
settings dataclass (`SearchSettings`, `ProfileSettings`, `ExportSettings`), whose fields hold each setting's default,
help and range (`edgenas.runs.declared`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from typing import Annotated

import typer

from edgenas.runs.declared import flag_of, parse_values


def json_flag(help: str = "Print JSON."):
    """`--json`: the command's result as JSON on standard output."""
    return Annotated[bool, typer.Option("--json", help=help)]


Json = json_flag()
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no progress lines and no notices: "
                                     "the result only.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="One plain line per epoch instead of the progress bar "
                                       "(the default off a terminal: in logs, pipes and with CI=true).")]


def _negated(field: dataclasses.Field) -> bool:
    """A setting that is True unless its `--no-...` flag is given (ExportSettings.verify: `--no-verify`)."""
    return field.default is True and flag_of(field).startswith("--no-")


def _parameter(field: dataclasses.Field, kind) -> inspect.Parameter:
    """The typer option of one declared setting (a negated one as `no_NAME`, False unless given; one with a unit as
    text, parsed before the command runs)."""
    name, default = ("no_" + field.name, False) if _negated(field) else (field.name, field.default)
    kind = str | None if "parse" in field.metadata else kind
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                             annotation=Annotated[bool if _negated(field) else kind,
                                                  typer.Option(flag_of(field), help=field.metadata["help"])])


def setting(settings_class, name: str):
    """One declared setting as an option of a command that takes it alone (`arch --space`)."""
    field = next(f for f in dataclasses.fields(settings_class) if f.name == name)
    return _parameter(field, typing.get_type_hints(settings_class)[name]).annotation


def settings_options(settings_class, before: str):
    """Add to a command one option per field of `settings_class` that declares a help, before its parameter
    `before`; their values reach the command as keyword arguments (`**declared`), from which `settings_from` makes
    the settings; a value with a unit (`--model-size 512KB`) reaches it parsed, or is refused in one line."""

    def decorate(func):
        @functools.wraps(func)
        def parsed(*args, **kwargs):
            return func(*args, **parse_values(settings_class, kwargs))

        hints = typing.get_type_hints(settings_class)
        signature = inspect.signature(func, eval_str=True)
        params = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        generated = [_parameter(f, hints[f.name]) for f in dataclasses.fields(settings_class) if "help" in f.metadata]
        at = next(i for i, p in enumerate(params) if p.name == before)
        parsed.__signature__ = signature.replace(parameters=params[:at] + generated + params[at:])
        return parsed

    return decorate


def declared_values(settings_class, declared: dict) -> dict:
    """The values of the options `settings_options` generated, by setting name (a negated flag turned back:
    `verify=not no_verify`)."""
    values = {}
    for field in dataclasses.fields(settings_class):
        if _negated(field):
            values[field.name] = not declared["no_" + field.name]
        elif field.name in declared:
            values[field.name] = declared[field.name]
    return values


def settings_from(settings_class, declared: dict):
    """The settings of the options `settings_options` generated."""
    return settings_class(**declared_values(settings_class, declared))
