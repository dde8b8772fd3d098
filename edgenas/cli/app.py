"""The `edgenas` command line: the typer app, its commands (one module per group: profile_commands,
search_commands, report_commands, export_commands, inspect_commands) and the one error policy.

An `EdgeNASError` from any command becomes one red line on stderr and exit code 1; a usage error (an option value
of the wrong type, an unknown option or command, a missing argument) one line naming the bad value and exit code 2.
torch is imported only inside the commands that need it, so `--help`, `space` and a cached `cost` answer fast.
"""

from __future__ import annotations

import functools
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from edgenas.cli import export_commands, inspect_commands, profile_commands, report_commands, search_commands
from edgenas.errors import EdgeNASError

# typer vendors click in recent versions: reach click's UsageError through the public BadParameter.
_UsageError = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "UsageError")


def _given(opts: list[str], args: list[str]) -> str | None:
    """The value last given on the command line to an option spelled any of `opts`, or None."""
    value = None
    for i, arg in enumerate(args):
        name, equals, attached = arg.partition("=")
        if equals and name in opts:
            value = attached
        elif arg in opts and i + 1 < len(args):
            value = args[i + 1]
    return value


def _usage_line(exc, args: list[str]) -> str:
    """A usage error as one line: `bad --epochs 'abc': <what was expected> (see 'edgenas search --help')`."""
    param = getattr(exc, "param", None)
    value = _given(param.opts, args) if param is not None and param.param_type_name == "option" else None
    message = f"bad {param.opts[-1]} {value!r}: {exc.message}" if value is not None else exc.format_message()
    if exc.ctx is not None:
        message += f" (see '{exc.ctx.command_path} --help')"
    return " ".join(message.split())


def _print_error(message: str) -> None:
    """The one red line on stderr that every failing command ends with (the message printed as is, not as markup)."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/red] {escape(message)}")


class _Group(TyperGroup):
    """typer's command group, with usage errors printed as one line instead of a boxed usage block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `edgenas`: the help, as typer shows it
                exc.show()
            else:
                _print_error(_usage_line(exc, args))
            code = exc.exit_code
        except typer.Abort:
            Console(stderr=True).print("[red]aborted[/red]")
            code = 1
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=_Group,
    name="edgenas",
    help="Find, prove and ship small image classifiers for edge devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: a flag shows as a flag, where rich help printed `<bool>` after it
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from edgenas.version import __version__

        sys.stdout.write(f"edgenas {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="Print the version of edgenas and exit.")] = False) -> None:
    """Find, prove and ship small image classifiers for edge devices."""


def _one_line_errors(func):
    """A command whose `EdgeNASError`s end as one red line and exit code 1, and whose Ctrl-C ends as one line (with
    what was kept and how to continue, if the library said) and exit code 130."""

    @functools.wraps(func)
    def wrapper(*args, **kw):
        try:
            return func(*args, **kw)
        except EdgeNASError as exc:
            _print_error(str(exc))
            raise typer.Exit(1) from None
        except KeyboardInterrupt as exc:
            Console(stderr=True, highlight=False, soft_wrap=True).print(
                "[red]interrupted[/red]" + (f": {escape(str(exc))}" if str(exc) else ""))
            raise typer.Exit(130) from None

    return wrapper


# The order of `edgenas --help` (and of the README's command table): the flow profile -> search -> report -> export,
# then the commands that describe without training.
for _group in (profile_commands, search_commands, report_commands, export_commands, inspect_commands):
    for _name, _func in _group.COMMANDS.items():
        app.command(name=_name, hidden=_name in getattr(_group, "OLD_NAMES", ()))(_one_line_errors(_func))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
