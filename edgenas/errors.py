"""The one error type of edgenas: bad input or a failed operation, with a message meant for the user.

The CLI turns an `EdgeNASError` into one red line and exit code 1; library code raises it with a message that
names the bad value and says what was expected, and never for programming errors (those stay tracebacks). Where
one input holds several problems (a dataset's unreadable files and empty classes), they are reported at once:
a summary line, then one line per problem (`listing`).
"""

LISTED = 20  # problems shown in one message; the rest are counted


class EdgeNASError(Exception):
    """A user-facing error: the message is one line, names the bad value, and says what was expected (or, from
    `listing`, a summary line and one line per problem)."""


def listing(summary: str, problems: list[str]) -> str:
    """`summary`, then each problem on its own indented line: the first `LISTED`, then how many more."""
    shown = [f"  {problem}" for problem in problems[:LISTED]]
    if len(problems) > LISTED:
        shown.append(f"  and {len(problems) - LISTED} more")
    return "\n".join([summary, *shown])
