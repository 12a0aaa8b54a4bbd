"""The ``arrayloss`` command line.

Subcommands live in their own modules and are imported only when used, so
``arrayloss --help`` does not import NumPy or SciPy.

Exit codes: 0 success; 1 bad data or a failed check; 2 bad usage; 130 interrupted.

Every command runs under one handler (`_failure`, applied by `_LazyGroup.invoke`,
and by `_LazyGroup.make_context` to the group's own ``--help`` and ``--version``),
so that no command prints a traceback for an expected error:

- `arrayloss._errors.DataError` and `OSError` (a file that cannot be read or
  written, a full disk): one line on standard error, exit 1, naming the file,
  or standard output where printing to it failed;
- ``MemoryError``: one line suggesting a smaller model or data set, exit 1;
- `arrayloss._errors.UsageError` (options that cannot be carried out together):
  one line, exit 2;
- ``KeyboardInterrupt`` (Ctrl-C): one line, exit 130 (and so while ``import
  arrayloss`` is still running: `arrayloss._startup`); SIGTERM and SIGHUP become
  `SystemExit` (`arrayloss.cli._output.install_signal_handlers`), so the output
  files' clean-up runs and nothing half-written is left behind;
- an exception from the code of a user's loss (``--loss module:function``,
  `arrayloss._errors.user_loss_of`): one line naming that loss, exit 1;
- anything else is a bug: one line ``internal error (...); please report it``,
  exit 1, and the traceback only with ``ARRAYLOSS_DEBUG=1`` in the environment.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import sys
from typing import Any

import click

from .. import __version__

__all__ = ["main"]

DEBUG_ENV = "ARRAYLOSS_DEBUG"

# name -> (module, attribute); imported on first use.
_COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("arrayloss.cli._check", "check"),
    "eval": ("arrayloss.cli._eval", "eval_command"),
    "list": ("arrayloss.cli._list", "list_command"),
    "study": ("arrayloss.cli._study", "study"),
    "train": ("arrayloss.cli._train", "train"),
}


class _DataFailure(click.ClickException):
    """Bad data (exit 1), as one line on standard error."""

    exit_code = 1


class _UsageFailure(click.ClickException):
    """Bad usage found after parsing (exit 2), as one line on standard error."""

    exit_code = 2


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module = importlib.import_module(target[0])
        command: click.Command = getattr(module, target[1])
        return command

    def main(self, *args: Any, **kwargs: Any) -> Any:
        from ._output import install_signal_handlers

        install_signal_handlers()
        _stderr_when_closed()
        return super().main(*args, **kwargs)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # The group's own --help and --version print while its options are parsed,
        # before `invoke`: a full disk there is one line too, not a traceback.
        try:
            return super().make_context(info_name, args, parent, **extra)
        except OSError as exc:
            raise _failure(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        from .._startup import release

        try:
            release()  # Ctrl-C from here on: KeyboardInterrupt, handled below
            return super().invoke(ctx)
        except Exception as exc:
            raise _failure(exc) from None
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            raise click.exceptions.Exit(130) from None


def _stderr_when_closed() -> None:
    """With standard error closed (``2>&-``: ``sys.stderr`` is ``None``) click
    printed its errors on standard output, into the JSON or table a script reads
    there; they go to ``os.devnull`` instead, which also takes descriptor 2, so
    that no file opened later gets it (a child process writes its errors there)."""
    if sys.stderr is None:
        with contextlib.suppress(OSError):  # no descriptor left: as it was
            sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the process


def _standard_stream(exc: OSError) -> str | None:
    """``"standard output"`` (or error) when ``exc`` was raised inside
    `click.echo` writing to descriptor 1 (or 2), else None: the results, a
    --help or --version on a full disk said only "cannot use: No space left on
    device"."""
    tb = exc.__traceback__
    stream: str | None = None
    while tb is not None:
        if tb.tb_frame.f_code is click.utils.echo.__code__:
            file = tb.tb_frame.f_locals.get("file")
            try:
                fd = file.fileno() if file is not None else None
            except (OSError, ValueError, AttributeError):
                fd = None
            stream = {1: "standard output", 2: "standard error"}.get(fd or -1)
        tb = tb.tb_next
    return stream


def _failure(exc: Exception) -> Exception:
    """The exception the command line raises for ``exc``: click's own unchanged, an
    expected error as one line and its exit status (see the module doc)."""
    from .._errors import DataError, UsageError, blamed_line, one_line, user_loss_of

    if isinstance(exc, (click.ClickException, click.exceptions.Exit, click.Abort)):
        return exc
    if isinstance(exc, UsageError):
        return _UsageFailure(one_line(exc))
    if isinstance(exc, DataError):
        return _DataFailure(one_line(exc))
    if isinstance(exc, OSError):
        if exc.errno == errno.EPIPE:
            return exc  # click's own handling: the reader went away, exit quietly
        stream = _standard_stream(exc)
        if stream is not None:  # `click.echo` to a full disk: name the stream
            msg = f"cannot write to {stream}: {exc.strerror or one_line(exc)}"
            return _DataFailure(one_line(msg))
        where = f" '{exc.filename}'" if exc.filename else ""
        msg = f"cannot use{where}: {exc.strerror or one_line(exc)}"
        return _DataFailure(one_line(msg))
    if isinstance(exc, MemoryError):
        msg = f"out of memory ({one_line(exc)}); try a smaller model or data set"
        return _DataFailure(msg)
    if _debug():
        return exc
    if user_loss_of(exc) is not None:  # the user's code: no "please report it"
        msg = f"{blamed_line(exc)} ({DEBUG_ENV}=1 shows the traceback)"
        return _DataFailure(msg)
    msg = f"internal error ({type(exc).__name__}: {one_line(exc)}); please report it"
    return _DataFailure(msg)


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit codes: 0 success; 1 bad data or a failed check; 2 bad usage; "
    "130 interrupted. An error is one line on standard error (below the usage "
    f"lines for a bad option or value; set {DEBUG_ENV}=1 for a traceback of an "
    "internal error).",
)
# The version of the code that runs (a checkout on PYTHONPATH, or no installed
# distribution at all: click's lookup of the metadata raised RuntimeError there)
@click.version_option(__version__, prog_name="arrayloss")
def main(**_: Any) -> None:
    """Classification losses with exact gradients, without a deep-learning framework."""
