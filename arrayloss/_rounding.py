"""How far rounding a row of probabilities to the digits it is written with can
take its sum from 1: the tolerance of ``arrayloss eval --renormalize``.

A probability written with ``d`` significant digits (``%.3g``: numpy.savetxt's
``fmt``, pandas' ``float_format``) is off by at most half a unit in its last
digit, ``0.5 * 10**(e - d + 1)`` for a value of exponent ``e``: at most
``0.5 * 10**(1 - d)`` of itself, so a row's sum is within ``0.5 * 10**(1 - d)``
of 1 whatever the class count (0.005 for ``%.3g``; 1 to 3 % of the rows of a
softmax written so are beyond 1e-3).  Written with ``k`` decimals (``%.3f``,
``round(3)``), each of the ``C`` values is off by at most ``0.5 * 10**-k``, so
the sum by ``C * 0.5 * 10**-k`` (0.005 for 10 classes, 0.05 for 100).

`rounding_tolerance` reads the digits off the values themselves (the fewest
significant digits that give each value back in its dtype; the most of a row's
values is the row's, and likewise its decimals), and gives each row the larger
of the two bounds, at least `RENORMALIZE_TOLERANCE` and at most `MAX_ROUNDING`.
A row off by more than its digits explain, or by more than `MAX_ROUNDING` however
coarse its digits (``0.5,0.6``; ``1,1,0``), is not rounded probabilities, and a
row at full precision (a value that needs more than `_MAX_DIGITS` digits) gets
`RENORMALIZE_TOLERANCE` only.  Log-probabilities are read alike: a
log-probability ``l`` off by ``h`` moves its probability by ``exp(l) * expm1(h)``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MAX_ROUNDING",
    "RENORMALIZE_TOLERANCE",
    "beyond_rounding",
    "renormalized",
    "rounding_tolerance",
]

RENORMALIZE_TOLERANCE = 1e-3
"""How far from 1 a row of probabilities may sum under ``--renormalize``, at
least (more where its digits explain more: `rounding_tolerance`)."""

MAX_ROUNDING = 0.05
"""The most ``--renormalize`` accepts, whatever the digits (2 decimals of 10
classes; 3 decimals of 100): further from 1, a row is no probabilities."""

_MAX_DIGITS = 9
"""Significant digits looked for; more is full precision (float32 needs up to 9)."""

_SMALLEST = 1e-12
"""Values below this are not looked at (they move no sum that matters, and
``10**q`` stays exact for the digits of the others)."""

_FULL = 99  # the digit count of a value written at full precision


def _digits(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per value of ``values`` (non-negative, finite, >= `_SMALLEST`): its
    decimal exponent and the fewest significant digits (1 to `_MAX_DIGITS`,
    else `_FULL`) that give it back in its dtype."""
    with np.errstate(all="ignore"):
        wide = values.astype(np.float64)
        e = np.floor(np.log10(wide)).astype(np.int64)
        e += wide >= 10.0 ** (e + 1)  # log10 of a power of ten may miss by one
        e -= wide < 10.0**e
        digits = np.full(values.shape, _FULL, dtype=np.int64)
        flat_digits = digits.reshape(-1)
        flat_e, flat_wide = e.reshape(-1), wide.reshape(-1)
        flat_values = values.reshape(-1)
        todo = np.arange(flat_values.size)  # the values whose digits are not found
        for d in range(1, _MAX_DIGITS + 1):
            if not todo.size:
                break
            scale = 10.0 ** (d - 1 - flat_e[todo])
            back = (np.round(flat_wide[todo] * scale) / scale).astype(values.dtype)
            hit = back == flat_values[todo]
            flat_digits[todo[hit]] = d
            todo = todo[~hit]
    return e, digits


def rounding_tolerance(rows: np.ndarray, input_kind: str) -> np.ndarray:
    """Per row of ``rows`` (``(n, C)`` probabilities, or log-probabilities with
    ``input_kind="logprobs"``): how far from 1 its sum may be, for rounding to
    the digits its values are written with (see the module doc)."""
    n, c = rows.shape
    out = np.full(n, RENORMALIZE_TOLERANCE)
    if not n or not c:
        return out
    with np.errstate(all="ignore"):
        v = np.abs(rows) if input_kind == "logprobs" else rows
        looked = np.isfinite(v) & (v >= _SMALLEST)
        safe = np.where(looked, v, np.ones((), dtype=v.dtype))
        e, digits = _digits(safe)
        digits = np.where(looked, digits, 0)
        row_digits = digits.max(axis=1)
        decimals = np.where(looked, np.maximum(digits - 1 - e, 0), 0)
        row_decimals = decimals.max(axis=1)
        full = row_digits >= _FULL
        half_sig = np.where(looked, 0.5 * 10.0 ** (e - row_digits[:, None] + 1), 0.0)
        half_dec = np.broadcast_to((0.5 * 10.0**-row_decimals)[:, None], (n, c))
        if input_kind == "logprobs":
            p = np.exp(rows.astype(np.float64))
            p = np.where(np.isfinite(p), p, 0.0)
            sig = np.sum(p * np.expm1(half_sig), axis=1)
            dec = np.sum(p * np.expm1(half_dec), axis=1)
        else:
            sig = np.sum(half_sig, axis=1)
            dec = np.sum(half_dec, axis=1)
    sig = np.where(full, 0.0, sig)
    dec = np.where(full, 0.0, dec)
    bound = np.minimum(np.maximum(sig, dec), MAX_ROUNDING)
    tolerance: np.ndarray = np.maximum(out, bound)
    return tolerance


def renormalized(s: np.ndarray, input_kind: str) -> np.ndarray:
    """``s`` with each row that sums to 1 up to the rounding of its digits
    rescaled (a new array; rows further off are left for the check to report)."""
    with np.errstate(all="ignore"):
        p = s if input_kind == "probs" else np.exp(s)
        total = np.sum(p, axis=1, dtype=np.float64)
        off = np.abs(total - 1)
        near = off <= RENORMALIZE_TOLERANCE
        far = ~near & (off <= MAX_ROUNDING)  # rounding may explain them: look
        if far.any():
            near[far] = off[far] <= rounding_tolerance(s[far], input_kind)
        if not near.any():
            return s
        scale = np.where(near, total, 1.0).astype(s.dtype)[:, None]
        out: np.ndarray = s / scale if input_kind == "probs" else s - np.log(scale)
    return out


def beyond_rounding(tolerance: float) -> str:
    """The words for a row sum that `renormalized` left alone, its row's
    `rounding_tolerance` being ``tolerance``."""
    return (
        f"further from 1 than rounding explains (the row's digits allow "
        f"{tolerance:.3g}; --renormalize allows at least "
        f"{RENORMALIZE_TOLERANCE:g}, at most {MAX_ROUNDING:g})"
    )
