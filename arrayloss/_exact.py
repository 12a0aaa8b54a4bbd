"""Exact sums of float64 arrays, as fractions, in vectorised NumPy.

Streaming evaluation adds each chunk's sums to a running total; for the result to
be the same at every chunk size, each chunk's sum must be exact (a float64 sum
rounds differently for different groupings).  `exact_sum` is exact for any
finite float64 array: each value is ``m * 2**e`` with an integer mantissa
``|m| < 2**53``; the mantissas are split into 26-bit halves and summed per
exponent with `numpy.bincount` (exact: the partial sums stay below ``2**53``),
and the few per-exponent sums are combined as Python integers.  `exact_dot`
makes each product exact first: each factor's mantissa (in ``[0.5, 1)``, its
power of two kept aside) is the sum of two 26-bit halves (Veltkamp splitting,
Dekker 1971), whose four products are exact in float64, so weights of 1e308 do
not overflow and subnormal ones keep every bit.

Reference: T. J. Dekker, "A floating-point technique for extending the
available precision", Numerische Mathematik 18 (1971) 224-242.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

__all__ = [
    "BLOCK_VALUES",
    "exact_dot",
    "exact_dots_by_group",
    "exact_products",
    "exact_sum",
    "exact_sums_by_group",
]

BLOCK_VALUES = 1 << 22
"""Values per ``bincount`` of exact sums: ``2**22 * 2**27 < 2**53``, exact in float64."""
_SPLIT = float(2**27 + 1)


def _scaled(ints: int, exponent: int) -> Fraction:
    if exponent >= 0:
        return Fraction(ints << exponent)
    return Fraction(ints, 1 << -exponent)


def _sum_times_powers(values: np.ndarray, extra: np.ndarray | None) -> Fraction:
    """``sum(values * 2**extra)`` exactly (finite float64 values, integer powers)."""
    return _grouped_sums(values, extra, None, 1)[0]


def _grouped_sums(
    values: np.ndarray, extra: np.ndarray | None, groups: np.ndarray | None, n: int
) -> list[Fraction]:
    """``sum(values[groups == g] * 2**extra[groups == g])`` for ``g < n``, exactly.

    One pass for every group: the mantissa halves are summed per (group, exponent)
    by a single `numpy.bincount`.
    """
    parts: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for a in range(0, values.shape[0], BLOCK_VALUES):
        mant, exp = np.frexp(values[a : a + BLOCK_VALUES])
        exp = exp.astype(np.int64)
        if extra is not None:
            exp += extra[a : a + BLOCK_VALUES]
        # value = m * 2**(exp - 53) with m = mant * 2**53 an integer, |m| < 2**53,
        # and m = hi * 2**26 + lo with integers hi and 0 <= lo < 2**26 (all exact)
        hi = np.floor(mant * 2.0**27)
        lo = mant * 2.0**53 - hi * 2.0**26
        low = int(exp.min()) if exp.size else 0
        idx = exp - low
        width = int(idx.max()) + 1 if idx.size else 0
        if groups is not None:
            idx += groups[a : a + BLOCK_VALUES].astype(np.int64) * width
        hs = np.bincount(idx, weights=hi, minlength=width * n)
        ls = np.bincount(idx, weights=lo, minlength=width * n)
        nz = np.flatnonzero((hs != 0) | (ls != 0))
        # integers below 2**49 (2**22 values of |hi| < 2**27): exact in int64
        his = hs[nz].astype(np.int64).tolist()
        los = ls[nz].astype(np.int64).tolist()
        for k, h, lo_sum in zip(nz.tolist(), his, los, strict=True):
            g, j = divmod(k, width)
            parts[g].append(((h << 26) + lo_sum, low + j - 53))
    return [_combine(p) for p in parts]


def _combine(parts: list[tuple[int, int]]) -> Fraction:
    """``sum(ints * 2**e)`` over ``(ints, e)`` pairs, as a fraction."""
    if not parts:
        return Fraction(0)
    base = min(e for _, e in parts)
    total = 0
    for ints, e in parts:
        total += ints << (e - base)
    return _scaled(total, base)


def exact_sum(x: np.ndarray) -> Fraction:
    """The exact sum of the finite float64 values ``x`` (any shape)."""
    return _sum_times_powers(np.asarray(x, dtype=np.float64).reshape(-1), None)


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a = hi + lo`` with at most 26 significant bits in each (|a| < 2**996)."""
    c = a * _SPLIT
    hi = c - (c - a)
    return hi, a - hi


def exact_products(
    w: np.ndarray, t: np.ndarray
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """``w * t`` (finite float64 arrays of one shape) as four arrays of exact
    float64 products and their powers of two: ``w * t = (p_0 + p_1 + p_2 + p_3) *
    2**power`` exactly.

    Each factor is written ``m * 2**e`` with ``0.5 <= |m| < 1`` and the mantissas
    split into 26-bit halves (Veltkamp, Dekker 1971), whose four products are exact
    (no overflow or underflow can occur in ``[0.25, 1)``)."""
    mw, ew = np.frexp(w)
    mt, et = np.frexp(t)
    wh, wl = _split(mw)
    th, tl = _split(mt)
    return (wh * th, wh * tl, wl * th, wl * tl), ew.astype(np.int64) + et


def exact_dot(w: np.ndarray, t: np.ndarray) -> Fraction:
    """``sum(w * t)`` of finite float64 vectors, exactly: the sum of the
    `exact_products` with their powers of two."""
    return exact_dots_by_group(w, t, None, 1)[0]


def exact_sums_by_group(
    x: np.ndarray, groups: np.ndarray, n_groups: int
) -> list[Fraction]:
    """The exact sum of the finite float64 values ``x[groups == g]`` for each
    ``g`` in ``range(n_groups)`` (``groups``: integers in that range), in one pass."""
    values = np.asarray(x, dtype=np.float64).reshape(-1)
    return _grouped_sums(values, None, np.asarray(groups).reshape(-1), n_groups)


def exact_dots_by_group(
    w: np.ndarray, t: np.ndarray, groups: np.ndarray | None, n_groups: int
) -> list[Fraction]:
    """`exact_dot` of ``w[groups == g]`` and ``t[groups == g]`` for each ``g`` in
    ``range(n_groups)``, in one pass (``groups=None``: one group of everything)."""
    products, power = exact_products(
        np.asarray(w, dtype=np.float64).reshape(-1),
        np.asarray(t, dtype=np.float64).reshape(-1),
    )
    g = None if groups is None else np.tile(np.asarray(groups).reshape(-1), 4)
    return _grouped_sums(np.concatenate(products), np.tile(power, 4), g, n_groups)
