"""The one error type of edgenas: bad input or a failed operation, with a message meant for the user.

The CLI turns an `EdgeNASError` into one red line and exit code 1; library code raises it with a message that
names the bad value and says what was expected, and never for programming errors (those stay tracebacks).
"""


class EdgeNASError(Exception):
    """A user-facing error: the message is one line, names the bad value, and says what was expected."""
