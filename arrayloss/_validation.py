"""Checks of hyperparameters, with messages in SciPy's voice.

Each function returns the validated value (converted to a Python number) or raises
`TypeError` (wrong kind of value) or `ValueError` (right kind, wrong value), naming
the parameter and the value it got; `env_count` reads an environment variable and
raises `arrayloss._errors.UsageError` (a `ValueError`) for a bad value.
"""

from __future__ import annotations

import math
import numbers
import os

from ._errors import UsageError

__all__ = ["check_choice", "check_int", "check_real", "env_count"]


def check_real(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number in the interval given by ``low``/``high``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"`{name}` must be a real number (got {name}={value!r})"
        raise TypeError(msg)
    v = float(value)
    bad = not math.isfinite(v)
    if low is not None:
        bad = bad or (v <= low if low_open else v < low)
    if high is not None:
        bad = bad or (v >= high if high_open else v > high)
    if bad:
        msg = f"`{name}` must be {_interval(name, low, high, low_open, high_open)} (got {name}={value!r})"
        raise ValueError(msg)
    return v


def check_int(
    name: str, value: object, *, low: int | None = None, high: int | None = None
) -> int:
    """An integer (not a bool) with ``low <= value <= high``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        msg = f"`{name}` must be an integer (got {name}={value!r})"
        raise TypeError(msg)
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        msg = f"`{name}` must be an integer {_interval(name, low, high, False, False)} (got {name}={value!r})"
        raise ValueError(msg)
    return v


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """One of a fixed set of strings."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        msg = f"`{name}` must be one of {options} (got {name}={value!r})"
        raise ValueError(msg)
    return str(value)


def env_count(name: str, default: int, *, high: int | None = None) -> int:
    """The non-negative integer in the environment variable ``name`` (white space
    around it ignored), at most ``high`` when given, or ``default`` when it is
    unset or blank.

    Parameters
    ----------
    name : str
        The environment variable.
    default : int
        The value when ``name`` is unset or blank.
    high : int, optional
        The largest value taken.

    Returns
    -------
    int
        The count, ``>= 0`` (or ``default``).

    Raises
    ------
    arrayloss._errors.UsageError
        The value is not a non-negative integer, or is above ``high``; the
        message names the variable and the value (``NAME must be a non-negative
        integer (got '...')``, ``NAME must be at most HIGH (got '...')``).
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        n = int(raw)
    except ValueError:
        n = -1
    if n < 0:
        msg = f"{name} must be a non-negative integer (got {raw!r})"
        raise UsageError(msg)
    if high is not None and n > high:
        msg = f"{name} must be at most {high} (got {raw!r})"
        raise UsageError(msg)
    return n


def _interval(
    name: str, low: float | None, high: float | None, low_open: bool, high_open: bool
) -> str:
    if low is not None and high is not None:
        lo = "<" if low_open else "<="
        hi = "<" if high_open else "<="
        return f"with {low:g} {lo} {name} {hi} {high:g}"
    if low is not None:
        if low == 0:
            return "positive" if low_open else "non-negative"
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return "finite"
