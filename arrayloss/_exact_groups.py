"""Exact sums of float64 values by group, vectorised, for the per-class tallies.

`arrayloss._exact` sums one array exactly; the per-class report needs thousands of
sums at once (a C x C confusion matrix of weights, per-class NLL sums, per-class
calibration bins), so a loop of `arrayloss._exact.exact_sum` calls would cost a
Python call per group.  `group_sums` does the same exact arithmetic for every
group in a few NumPy passes: each value is ``m * 2**e`` with an integer mantissa
``|m| < 2**53``, split into 26-bit halves; the halves are summed per ``(group,
e)`` with one `numpy.bincount` (exact: fewer than ``2**22`` values a call keep the
partial sums below ``2**53``), and only the non-zero ``(group, e)`` sums become
Python integers.  Products ``w * t`` are made exact first by Veltkamp splitting of
both mantissas (Dekker 1971, `arrayloss._exact.exact_products`).

`ExactVector` keeps the running sums: one Python integer per group at a common
power of two, so adding a batch touches only the groups the batch has, and
merging is exact, associative and commutative.

Reference: T. J. Dekker, "A floating-point technique for extending the available
precision", Numerische Mathematik 18 (1971) 224-242.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ._exact import BLOCK_VALUES, exact_products

__all__ = ["ExactVector", "group_sums"]


def group_sums(
    groups: np.ndarray, values: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Per group, the exact ``sum(values)`` (or ``sum(weights * values)``).

    Parameters
    ----------
    groups : int array
        Non-negative group of each value.
    values : float array
        Finite values, the shape of ``groups``.
    weights : float array, optional
        Finite weights, the shape of ``groups``.

    Returns
    -------
    (ids, ints, base)
        ``ids``: the groups with a non-zero term, ascending; ``ints``: an object
        array of Python integers, the exact sum of group ``ids[k]`` being
        ``ints[k] * 2**base``.
    """
    g = np.asarray(groups, dtype=np.int64).reshape(-1)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    extra = None
    if weights is not None:
        products, power = exact_products(
            np.asarray(weights, dtype=np.float64).reshape(-1), v
        )
        v, extra, g = np.concatenate(products), np.tile(power, 4), np.tile(g, 4)
    mant, exp = np.frexp(v)
    exp = exp.astype(np.int64)
    if extra is not None:
        exp += extra
    keep = mant != 0
    if not keep.all():
        mant, exp, g = mant[keep], exp[keep], g[keep]
    if mant.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, object), 0
    # value = (hi * 2**26 + lo) * 2**(exp - 53), integers |hi| <= 2**27, 0 <= lo < 2**26
    hi = np.floor(mant * 2.0**27)
    lo = mant * 2.0**53 - hi * 2.0**26
    low = exp - 53
    base = int(low.min())
    offset = low - base
    width = int(offset.max()) + 1
    key = g * width + offset
    n_keys = (int(g.max()) + 1) * width
    if n_keys <= max(4 * key.size, 1 << 16):  # dense: one bincount
        inverse, size = key, n_keys
    else:  # sparse: number the keys present
        present, inverse = np.unique(key, return_inverse=True)
        size = int(present.size)
    hs = np.zeros(size, dtype=np.int64)
    ls = np.zeros(size, dtype=np.int64)
    for a in range(0, key.size, BLOCK_VALUES):
        part = slice(a, a + BLOCK_VALUES)
        hs += np.bincount(inverse[part], weights=hi[part], minlength=size).astype(
            np.int64
        )
        ls += np.bincount(inverse[part], weights=lo[part], minlength=size).astype(
            np.int64
        )
    nonzero = np.flatnonzero((hs != 0) | (ls != 0))
    keys = nonzero if size == n_keys else present[nonzero]
    ints = (hs[nonzero].astype(object) << 26) + ls[nonzero].astype(object)
    ints = np.left_shift(ints, (keys % width).astype(object))
    ids = keys // width
    if ids.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, object), 0
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    return ids[starts], np.add.reduceat(ints, starts), base


class ExactVector:
    """Exact running sums of ``n`` groups: sum ``g`` is ``ints[g] * 2**base``.

    `add` (in place) and `merged` (a new vector) keep every bit; `floats` and
    `fraction` read the sums out, correctly rounded.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self._ints: np.ndarray | None = None  # allocated on the first addition
        self.base = 0

    @property
    def ints(self) -> np.ndarray:
        """The ``n`` sums' integers (Python ``int`` objects), in units of
        ``2**base``."""
        if self._ints is None:
            self._ints = np.zeros(self.n, dtype=object)
        return self._ints

    @ints.setter
    def ints(self, value: np.ndarray) -> None:
        self._ints = value

    def copy(self) -> ExactVector:
        """An independent copy."""
        out = ExactVector(self.n)
        out._ints = None if self._ints is None else self._ints.copy()
        out.base = self.base
        return out

    def add_ints(self, ids: np.ndarray, ints: np.ndarray, base: int) -> None:
        """Add ``ints * 2**base`` to groups ``ids`` (distinct), in place."""
        if ids.size == 0:
            return
        if base < self.base:  # rare: a smaller power of two than ever before
            if self._ints is not None:
                self._ints = np.left_shift(self._ints, self.base - base)
            self.base = base
        elif base > self.base:
            ints = np.left_shift(ints, base - self.base)
        self.ints[ids] += ints

    def add_vector(self, other: ExactVector) -> None:
        """Add another vector's sums, in place (nothing to do for one never
        added to)."""
        if other._ints is not None:
            self.add_ints(np.arange(other.n), other._ints, other.base)

    def add(
        self, groups: np.ndarray, values: np.ndarray, weights: np.ndarray | None = None
    ) -> None:
        """Add ``values`` (times ``weights``) to their ``groups``, exactly, in place."""
        self.add_ints(*group_sums(groups, values, weights))

    def add_counts(self, groups: np.ndarray) -> None:
        """Add 1 to the group of each entry of ``groups``, in place."""
        ids, counts = np.unique(np.asarray(groups).reshape(-1), return_counts=True)
        self.add_ints(ids, counts.astype(object), 0)

    def merged(self, other: ExactVector) -> ExactVector:
        """A new vector holding both sums."""
        out = self.copy()
        out.add_vector(other)
        return out

    def fraction(self, g: int) -> Fraction:
        """Sum ``g`` exactly."""
        if self.base >= 0:
            return Fraction(int(self.ints[g]) << self.base)
        return Fraction(int(self.ints[g]), 1 << -self.base)

    def floats(self) -> np.ndarray:
        """Every sum as the nearest float64 (``inf`` beyond the range)."""
        out = np.zeros(self.n, dtype=np.float64)
        nonzero = np.flatnonzero(self.ints != 0)
        ints = self.ints[nonzero].tolist()
        if self.base >= 0:
            values = [_to_float(int(i) << self.base, 1) for i in ints]
        else:
            div = 1 << -self.base
            values = [_to_float(int(i), div) for i in ints]
        out[nonzero] = values
        return out


def _to_float(num: int, den: int) -> float:
    try:
        return num / den  # correctly rounded for Python integers
    except OverflowError:
        return float("inf") if num > 0 else float("-inf")
