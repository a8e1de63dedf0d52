"""Errors raised for bad user input; each message names the culprit."""


class InputError(ValueError):
    """A user-supplied value (date, symbol, exchange, setting...) is invalid.

    Raised before any request is made or anything is written; the CLI prints the message
    without a traceback and exits non-zero.
    """
