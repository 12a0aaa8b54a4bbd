"""The error classes every part of arrayloss raises, and their one-line text.

- `DataError` (a `ValueError`): a file, data set or array that cannot be used. The
  command line maps it to exit status 1 with its message on one line.
- `UsageError` (a `ValueError`): options that contradict each other or cannot be
  carried out (two outputs naming one file, an output that is an input). The
  command line maps it to exit status 2.

`blame_user_loss` marks an exception raised by the code of a user's loss
(`arrayloss.register_loss`), `user_loss_of` reads the mark and `blamed_line`
words it, so that the command line names that loss instead of calling it an
internal error of its own.
`one_line` is the single place that turns an exception into the one line the
command line prints; `utf8_text` the one that makes a file's name text that every
output can hold; `stderr_is_a_terminal` whether the stream they go to is a
terminal (for progress bars).
"""

from __future__ import annotations

import contextlib
import re
import sys

__all__ = [
    "DataError",
    "UsageError",
    "blame_user_loss",
    "blamed_line",
    "one_line",
    "stderr_is_a_terminal",
    "user_loss_of",
    "utf8_text",
]


class DataError(ValueError):
    """A data file, data set or array that cannot be used; the message says why."""


class UsageError(ValueError):
    """Options that cannot be carried out together; the message names them."""


# The attribute `blame_user_loss` sets: kept when the exception is pickled (a
# study's worker process), as every attribute of an exception is.
_USER_LOSS = "arrayloss_user_loss"


def blame_user_loss(exc: BaseException, name: str) -> None:
    """Mark ``exc`` as raised by the code of the user loss ``name`` (the first
    mark stays: a user loss that calls another names the innermost)."""
    if getattr(exc, _USER_LOSS, None) is None:
        with contextlib.suppress(AttributeError, TypeError):  # no attributes
            setattr(exc, _USER_LOSS, name)


def user_loss_of(exc: BaseException) -> str | None:
    """The user loss whose code raised ``exc`` (`blame_user_loss`), or ``None``."""
    name = getattr(exc, _USER_LOSS, None)
    return name if isinstance(name, str) else None


def blamed_line(exc: BaseException) -> str:
    """`one_line` of ``exc``, naming the user loss whose code raised it, if one
    did: ``"the loss 'mod.fn' raised ValueError: ..."``."""
    name = user_loss_of(exc)
    if name is None:
        return one_line(exc)
    return one_line(f"the loss {name!r} raised {type(exc).__name__}: {one_line(exc)}")


# Control characters (a terminal's escape sequences) and the bidirectional
# overrides that reorder what a terminal shows: escaped, as repr() writes them.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with its control characters and bidirectional overrides escaped
    as `repr` writes them (``\\x1b``), so that printed it cannot drive the
    terminal."""
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


def one_line(exc: BaseException | str) -> str:
    """The exception's message (or a message) with its white space folded onto one
    line, and the control characters it may carry from a file's name or header
    escaped (``\\x1b``, `printable`), so that printed it cannot drive the
    terminal."""
    message = exc if isinstance(exc, str) else str(exc) or type(exc).__name__
    return printable(" ".join(message.split()))


def utf8_text(text: str) -> str:
    """``text`` with the bytes of a file name that are no UTF-8 (Python's surrogate
    escapes, ``"\\udcff"`` for the byte 0xFF) shown as U+FFFD, so that it encodes
    as UTF-8 in every output: a CSV or JSON file, a plot's title."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no file name decodes to
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")


def stderr_is_a_terminal() -> bool:
    """Whether standard error is a terminal (where a progress bar goes); false
    when it is closed (``2>&-``: ``sys.stderr`` is ``None``)."""
    err = sys.stderr
    try:
        return err is not None and err.isatty()
    except (OSError, ValueError):  # a stream closed meanwhile
        return False
