"""Ctrl-C while the ``arrayloss`` command is still starting up.

The command's own handler (`arrayloss.cli._LazyGroup.invoke`) turns Ctrl-C into
one line and exit 130, but ``import arrayloss`` (NumPy, SciPy, the losses) runs
before it, and an interrupt there printed a traceback.  `guard`, the first thing
``import arrayloss`` does (on importing this module), installs a SIGINT handler
that prints the same line and exits 130, only when this process is the command
(the ``arrayloss`` script, or ``python -m arrayloss``) and SIGINT is at Python's
default (a Ctrl-C that is ignored, or handled by someone else, is left so);
`release`, called where the command's handler takes over, puts Python's
``KeyboardInterrupt`` back.  A program that imports arrayloss is never touched.

It imports only what the interpreter has loaded at start (``os``, ``sys``,
``_signal``; no ``from __future__ import annotations`` either, which imports
``__future__``: a quarter of the time before `guard` that is arrayloss's own),
so the window before it is as short as can be: Python's start-up (``site``,
and ``runpy`` for ``python -m``; about 10 ms) and the finding and loading of
``arrayloss`` and of this module (about 0.5 ms) stay before it.
"""

import _signal  # type: ignore[import-not-found]  # signal's C half (`signal`: ~4 ms)
import os
import sys

__all__ = ["guard", "release"]

MESSAGE = "Error: interrupted\n"
"""What an interrupt prints, as the command's handler does later on."""

EXIT_CODE = 130
"""The exit status of an interrupted command (128 + SIGINT)."""

_SCRIPT_SUFFIXES = ("-script.pyw", "-script.py", ".exe")
_OPTIONS_WITH_VALUE = ("-X", "-W", "-Q")


def _is_command() -> bool:
    """Whether this process is the ``arrayloss`` command starting: its script
    (``argv[0]`` named ``arrayloss``, as pip's wrapper runs it) or
    ``python -m arrayloss``."""
    orig = list(getattr(sys, "orig_argv", ()))[1:]  # -m: argv[0] is '-m' for now
    if "--multiprocessing-fork" in orig:  # a worker process it spawned: its
        return False  # sys.argv is the command's, its SIGINT its own business
    argv = getattr(sys, "argv", None) or [""]
    name = os.path.basename(str(argv[0]))
    for suffix in _SCRIPT_SUFFIXES:
        name = name.removesuffix(suffix)
    if name == "arrayloss":
        return True
    skip = False
    for i, arg in enumerate(orig):
        if skip:
            skip = False
            continue
        if arg == "-m":
            return orig[i + 1 : i + 2] == ["arrayloss"]
        if arg.startswith("-m"):
            return bool(arg[2:] == "arrayloss")
        if arg in _OPTIONS_WITH_VALUE:
            skip = True
            continue
        if arg == "-c" or not arg.startswith("-"):
            return False
    return False


def _interrupted(signum: int, frame: object) -> None:
    """SIGINT during start-up: one line on standard error, exit 130."""
    err = sys.stderr
    if err is not None:
        try:
            err.write(MESSAGE)
            err.flush()
        except (OSError, ValueError):
            pass
    raise SystemExit(EXIT_CODE)


def guard() -> None:
    """Install the start-up SIGINT handler when this process is the command."""
    if not _is_command():
        return
    try:
        if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
            _signal.signal(_signal.SIGINT, _interrupted)
    except (ValueError, OSError):  # not the main thread, or no signals here
        pass


def release() -> None:
    """Give SIGINT back to ``KeyboardInterrupt`` (a no-op unless `guard` took it)."""
    try:
        if _signal.getsignal(_signal.SIGINT) is _interrupted:
            _signal.signal(_signal.SIGINT, _signal.default_int_handler)
    except (ValueError, OSError):
        pass


guard()
