"""Exact sums of float64 arrays, as fractions, in vectorised NumPy.

Streaming evaluation adds each chunk's sums to a running total; for the result to
be the same at every chunk size, each chunk's sum must be exact (a float64 sum
rounds differently for different groupings).  `exact_sum` is exact for any
finite float64 array: each value is ``m * 2**e`` with an integer mantissa
``|m| < 2**53``; the mantissas are split into 26-bit halves and summed per
exponent with `numpy.bincount` (exact: the partial sums stay below ``2**53``),
and the few per-exponent sums are combined as Python integers.  `exact_dot`
makes each product exact first (Veltkamp splitting, Dekker 1971: each factor is
the sum of two 26-bit halves, whose four products are exact in float64) after
scaling both factors by powers of two into ``[0.5, 1)``, so weights of 1e308 do
not overflow and subnormal ones keep every bit.

Reference: T. J. Dekker, "A floating-point technique for extending the
available precision", Numerische Mathematik 18 (1971) 224-242.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

__all__ = ["exact_dot", "exact_sum"]

_BLOCK = 1 << 22  # values per bincount: 2**22 * 2**27 < 2**53, exact in float64
_SPLIT = float(2**27 + 1)


def _scaled(ints: int, exponent: int) -> Fraction:
    if exponent >= 0:
        return Fraction(ints << exponent)
    return Fraction(ints, 1 << -exponent)


def exact_sum(x: np.ndarray) -> Fraction:
    """The exact sum of the finite float64 values ``x`` (any shape)."""
    values = np.asarray(x, dtype=np.float64).reshape(-1)
    total = 0
    base = None
    parts: list[tuple[int, int]] = []
    for a in range(0, values.shape[0], _BLOCK):
        block = values[a : a + _BLOCK]
        mant, exp = np.frexp(block)
        # block = m * 2**(exp - 53) with m = mant * 2**53 an integer, |m| < 2**53,
        # and m = hi * 2**26 + lo with integers hi and 0 <= lo < 2**26 (all exact)
        hi = np.floor(mant * 2.0**27)
        lo = mant * 2.0**53 - hi * 2.0**26
        low_exp = int(exp.min()) - 53 if exp.size else 0
        idx = exp - (low_exp + 53)
        width = int(idx.max()) + 1 if idx.size else 0
        hs = np.bincount(idx, weights=hi, minlength=width)
        ls = np.bincount(idx, weights=lo, minlength=width)
        for k in np.flatnonzero((hs != 0) | (ls != 0)).tolist():
            parts.append(((int(hs[k]) << 26) + int(ls[k]), low_exp + k))
    if not parts:
        return Fraction(0)
    base = min(e for _, e in parts)
    for ints, e in parts:
        total += ints << (e - base)
    return _scaled(total, base)


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a = hi + lo`` with at most 26 significant bits in each (|a| < 2**996)."""
    c = a * _SPLIT
    hi = c - (c - a)
    return hi, a - hi


def _unit(a: np.ndarray) -> tuple[np.ndarray, int]:
    """``a / 2**e`` with its largest magnitude in [0.5, 1) (exact), and ``e``."""
    top = float(np.max(np.abs(a))) if a.size else 0.0
    if top == 0:
        return a, 0
    e = int(np.frexp(top)[1])
    return np.ldexp(a, -e), e


def exact_dot(w: np.ndarray, t: np.ndarray) -> Fraction:
    """``sum(w * t)`` of finite float64 vectors, exactly.

    Exact unless a partial product falls below the smallest subnormal relative to
    the largest factors (below 2**-1074 after scaling), far beneath any result's
    last bit.
    """
    w64, ew = _unit(np.asarray(w, dtype=np.float64).reshape(-1))
    t64, et = _unit(np.asarray(t, dtype=np.float64).reshape(-1))
    wh, wl = _split(w64)
    th, tl = _split(t64)
    with np.errstate(under="ignore"):
        products = np.concatenate([wh * th, wh * tl, wl * th, wl * tl])
    return exact_sum(products) * _scaled(1, ew + et)
