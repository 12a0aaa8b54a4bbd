r"""``arrayloss eval --bootstrap N``: percentile intervals in the same streaming pass.

**The Poisson bootstrap** (Oza and Russell 2001; Hanley and MacGibbon 2006;
Chamandy et al. 2012).  The ordinary bootstrap resamples ``n`` rows with
replacement, so row ``i`` appears ``K_i ~ Binomial(n, 1/n)`` times; for large ``n``
that is ``Poisson(1)``, drawn independently for each row.  Replicate ``b`` of a
weighted mean ``sum(w m) / sum(w)`` is then

.. math:: \hat\theta_b = \frac{\sum_i K_{ib}\, w_i\, m_i}{\sum_i K_{ib}\, w_i},
   \qquad K_{ib} \sim \operatorname{Poisson}(1),

a sum over rows that a single pass adds up chunk by chunk, like the point estimate.
The percentile interval at confidence ``1 - alpha`` is the ``alpha/2`` and ``1 -
alpha/2`` quantiles of the replicates (``numpy.quantile``, its default linear
interpolation); replicates with no weight at all are left out.

**Counter-based draws.**  ``K_{ib}`` is a function of ``(seed, b, i)`` alone, ``i``
being the row's number in the whole input (across shards): a 64-bit splitmix64
hash (Steele, Lea and Flood 2014) of the row's counter mixed with a key of
``(seed, b // 2)``, whose two 32-bit halves serve replicates ``2 (b // 2)`` and
``2 (b // 2) + 1``, turned into ``Poisson(1)`` by inverting its CDF at 32 bits
(`poisson_weights`).  No generator state travels between chunks, so every chunk,
Dask block or thread draws its own rows' weights and the intervals are the same at
every ``--chunk-size``, with ``--dask``, in any order.

**Exact replicate sums.**  Each term ``w_i m_i`` (an exact sum of four float64
products when weighted, as `arrayloss._exact.exact_dot` splits them) is cut into
26-bit integer digits on a grid of powers ``2**(26 k)`` shared by all values; a
block of at most `BLOCK_ROWS` rows (the chunks' rows, buffered until a block is
full) multiplies the ``(replicates, rows)`` matrix of draws by the ``(rows,
digits)`` matrix of every scalar's digits at once, one small float64 product,
which is exact because every partial sum is an integer below ``2**53``; the terms
that go to one of several sums (an ECE bin, a class) are multiplied sum by sum.
The block sums are added to int64 digit accumulators, carried before any could
overflow, so the replicate sums are exact integers and independent of how the
rows were grouped.  Memory: the draws of one block, at most `BLOCK_DRAWS` (4096
rows x 200 replicates: 0.8 MB as uint8, 6.6 MB as float64), and the
accumulators, about ``8 N`` bytes per scalar and digit; nothing grows with the
rows.

ECE with ``strategy="uniform"`` is the sum over bins of ``|sum_i K w (hit - conf)|``
over ``sum_i K w``: each bin is one more accumulated sum; MCE and RMSCE also keep
each bin's ``sum_i K w``.  ``strategy="quantile"`` keeps each sample's row
number, confidence, hit and weight (as its point estimate does) and recomputes
the edges for each replicate at the end.

**Per-class intervals** (``--per-class``): per class ``c`` the replicate sums of
``K w [y = c != pred]``, ``K w [pred = c != y]`` and ``K w [y = pred = c]``
(int64 counts while the weights are 0 or 1: the rows of draws summed by key, one
vector addition per rank of a key's terms, `_keyed_row_sums`), from which each
replicate's precision, recall and F1 are the correctly rounded ratios that
`arrayloss.metrics.ClassReport` reports, and their macro average (over all
classes) and support-weighted average.  Per-class NLL and ECE-by-class have no
interval: the first needs one more product per row and replicate (about a tenth
of a plain eval at ``C = 1000``), the second every probability of every row in
every replicate (``n C N`` products).

**Cost.**  Chunks are buffered into whole blocks (the rest waits for the next
chunk); terms of equal value (``nll`` and the cross-entropy of logits,
``accuracy`` and ``top_1_accuracy``) are summed once; a 0/1 term is one column
of the product, without digits.

References: N. C. Oza and S. Russell, "Online bagging and boosting", AISTATS 2001;
J. A. Hanley and B. MacGibbon, "Creating non-parametric bootstrap samples using
Poisson frequencies", Computer Methods and Programs in Biomedicine 83 (2006)
57-62; N. Chamandy, O. Muralidharan, A. Najmi and S. Naidu, "Estimating uncertainty
for massive data streams", Google technical report (2012); G. L. Steele, D. Lea and
C. H. Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from functools import cache
from typing import Any

import numpy as np

from arrayloss._errors import UsageError

__all__ = [
    "BLOCK_DRAWS",
    "BLOCK_ROWS",
    "MAX_SEED",
    "MAX_SUMS",
    "BootstrapSpec",
    "BootstrapTally",
    "block_rows",
    "poisson_weights",
]

BLOCK_ROWS = 4096
"""The most rows per block of draws (fewer for many replicates: `block_rows`)."""

BLOCK_DRAWS = 1 << 20
"""Draws per block at most: 1 MB as uint8 and 8 MB as float64 (a block of 4096
rows x 256 replicates)."""

MAX_SUMS = 1_000_000
"""The most exact sums (replicates x accumulated scalars and ECE bins) a run
keeps, about 8 bytes each per digit: ~80 MB at ten digits."""

MAX_SEED = 2**64 - 1

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio, odd (splitmix64's increment)
_ROW_MULT = 0xD6E8FEB86659FD93  # an odd multiplier for the row counter
_DIGIT = 26  # bits per digit of the exact replicate sums
_DIGIT_MASK = (1 << _DIGIT) - 1
_CARRIED = 1 << 41  # |digit| after a carry: below 2**26, the top one below 2**41
_CARRY_AT = 1 << 61  # carry before any digit can reach 2**62
_HASH_ROWS = 256  # rows hashed at a time (the uint64 temporaries stay in cache)


# --------------------------------------------------------------------------- #
# Counter-based Poisson(1) draws
# --------------------------------------------------------------------------- #


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser of a uint64 array, in place (a bijection; wraps
    modulo 2**64); returns ``x``."""
    tmp = np.empty_like(x)
    for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        np.right_shift(x, np.uint64(shift), out=tmp)
        x ^= tmp
        x *= np.uint64(mult)
    np.right_shift(x, np.uint64(31), out=tmp)
    x ^= tmp
    return x


def _mix_int(x: int) -> int:
    """`_mix` of one Python integer (no NumPy scalar overflow warnings)."""
    x &= _MASK64
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


@cache
def _cdf_thresholds() -> np.ndarray:
    """``T_k = round(2**32 P(K <= k))`` for ``K ~ Poisson(1)``, while below 2**32.

    A uniform 32-bit ``u`` gives ``K = #{k : u >= T_k}``, the inverse CDF (each
    probability within ``2**-32`` of Poisson(1)'s); the CDF is computed with 40
    significant digits.
    """
    with localcontext() as ctx:
        ctx.prec = 40
        term = Decimal(-1).exp()
        cdf, k, out = Decimal(0), 0, []
        while True:
            cdf += term
            t = int((cdf * (1 << 32)).to_integral_value())
            if t >= 1 << 32:
                break
            out.append(t)
            k += 1
            term /= k
    return np.array(out, dtype=np.uint32)


_COMPARED = 5
"""Thresholds `_poisson_from_uniform` compares every draw with (``P(K >= 5)`` is
0.4 %: the rest are looked up)."""


def _poisson_from_uniform(u: np.ndarray) -> np.ndarray:
    """Poisson(1) draws (uint8) from uniform uint32 ``u``, by the inverse CDF:
    ``K = #{k : u >= T_k}``, counted for the first `_COMPARED` thresholds (a few
    vector comparisons, faster than a table lookup) and searched for the rare
    draws beyond them."""
    thresholds = _cdf_thresholds()
    k: np.ndarray = np.greater_equal(u, thresholds[0]).view(np.uint8)
    for t in thresholds[1 : _COMPARED - 1]:
        k += u >= t
    far = u >= thresholds[_COMPARED - 1]
    k += far
    if far.any():
        k[far] = np.searchsorted(thresholds, u[far], side="right")
    return k


def _halves(u: np.ndarray, count: int) -> np.ndarray:
    """The 32-bit halves of uint64 ``u`` (``(n, m)``), low then high for each
    column, as ``(n, count)`` uint32 (``count <= 2 m``)."""
    if np.little_endian and u.flags.c_contiguous:  # the halves in memory order
        return u.view(np.uint32)[:, :count]
    out = np.empty((u.shape[0], 2 * u.shape[1]), dtype=np.uint32)
    out[:, 0::2] = u  # the low half (a cast modulo 2**32)
    out[:, 1::2] = u >> np.uint64(32)
    return out[:, :count]


@cache
def _replicate_keys(seed: int, replicates: int) -> np.ndarray:
    """The uint64 key of each replicate ``b``: a hash of ``(seed, b)``."""
    s = _mix_int(seed + _GOLDEN)
    keys = np.array(
        [_mix_int(s ^ _mix_int((b + 1) * _GOLDEN)) for b in range(replicates)],
        dtype=np.uint64,
    )
    keys.flags.writeable = False  # cached: shared by every call
    return keys


def _row_hashes(rows: np.ndarray) -> np.ndarray:
    """A uint64 hash of each row counter."""
    counter = rows.astype(np.uint64)  # a copy: mixed in place
    counter += np.uint64(1)
    counter *= np.uint64(_ROW_MULT)
    return _mix(counter)


def poisson_weights(seed: int, replicates: int, rows: np.ndarray) -> np.ndarray:
    """The Poisson(1) bootstrap weight of each row for each replicate.

    Parameters
    ----------
    seed : int in [0, 2**64)
        The master seed.
    replicates : int >= 1
        How many replicates ``b = 0, ..., replicates - 1``.
    rows : integer array of shape (n,)
        The rows' counters (their numbers in the whole input), >= 0.

    Returns
    -------
    numpy.ndarray of shape (n, replicates), uint8
        ``K[i, b] = F^{-1}(u_{i,b} / 2**32)`` with ``F`` the Poisson(1) CDF and
        ``u_{i,2j}``, ``u_{i,2j+1}`` the low and high halves of the splitmix64
        hash ``mix(h(rows[i]) ^ key(seed, j))``: a function of ``(seed, b,
        rows[i])`` alone, so any subset of rows, in any grouping, gets the same
        draws.
    """
    keys = _replicate_keys(seed, (replicates + 1) // 2)
    hashed = _row_hashes(np.asarray(rows, dtype=np.int64))
    out = np.empty((hashed.shape[0], replicates), dtype=np.uint8)
    for a in range(0, hashed.shape[0], _HASH_ROWS):
        u = _mix(hashed[a : a + _HASH_ROWS, None] ^ keys[None, :])
        out[a : a + _HASH_ROWS] = _poisson_from_uniform(_halves(u, replicates))
    return out


# --------------------------------------------------------------------------- #
# Exact digits
# --------------------------------------------------------------------------- #


def _digits(
    x: np.ndarray, power: np.ndarray | int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x * 2**power`` (finite float64) as signed 26-bit digits on the global grid.

    Returns ``(k, d, nonzero)``: value ``= sum_j d[:, j] * 2**(26 (k + j))`` for
    ``j = 0, 1, 2``, with ``|d| < 2**27``, exactly.
    """
    mant, exp = np.frexp(x)
    m = (mant * 2.0**53).astype(np.int64)  # |m| < 2**53, exact
    q = exp.astype(np.int64) + power - 53  # value = m * 2**q
    k = q // _DIGIT
    r = q - k * _DIGIT
    mag = np.abs(m)
    lo = (mag & _DIGIT_MASK) << r  # < 2**52
    hi = (mag >> _DIGIT) << r  # < 2**53
    d = np.empty((x.shape[0], 3), dtype=np.int64)
    d[:, 0] = lo & _DIGIT_MASK
    d[:, 1] = (lo >> _DIGIT) + (hi & _DIGIT_MASK)
    d[:, 2] = hi >> _DIGIT
    d *= np.sign(m)[:, None]
    return k, d, m != 0


@dataclass
class _Contribution:
    """Digits of one accumulated quantity: sample ``i`` adds to accumulator row
    ``target[i]``."""

    target: np.ndarray  # (n,) accumulator row of each sample
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # (k, d, nonzero)
    row: int | None = None  # the accumulator row of every sample, if one
    layout: tuple[int, np.ndarray, np.ndarray] | None = None  # `_layout`, if known


class _Digits:
    """Exact integer sums per (replicate, quantity) as int64 base-2**26 digits.

    ``cols[j, b, q]`` is digit ``j`` (worth ``2**(26 (low + j))``) of quantity
    ``q`` of replicate ``b``; after every addition each digit but the top one is
    in ``[0, 2**26)`` (carries moved up), so no digit can overflow.
    """

    def __init__(self, replicates: int, width: int) -> None:
        self.low = 0
        self.cols = np.zeros((0, replicates, width), dtype=np.int64)
        self.load = 0  # a bound on |digit| since the last carry

    def _settle(self) -> None:
        """Carry every digit (the value is unchanged)."""
        if self.load > _CARRIED:
            self._carry(0)
            self.load = _CARRIED

    def _cover(self, low: int, high: int) -> None:
        """Make room for digits ``low .. high`` (and two above, for carries)."""
        high += 2
        if self.cols.shape[0] == 0:
            self.low = low
            self.cols = np.zeros((high - low + 1, *self.cols.shape[1:]), np.int64)
            return
        below = max(0, self.low - low)
        above = max(0, high - (self.low + self.cols.shape[0] - 1))
        if below or above:
            self.cols = np.pad(self.cols, ((below, above), (0, 0), (0, 0)))
            self.low -= below

    def add(self, low: int, block: np.ndarray, rows: np.ndarray) -> None:
        """Add ``block[j, b, g]`` (int64 digits from ``2**(26 low)``) to rows
        ``rows[g]`` (distinct), then carry."""
        self._cover(low, low + block.shape[0] - 1)
        start = low - self.low
        if rows.shape[0] == self.cols.shape[2] and bool(np.all(np.diff(rows) == 1)):
            self.cols[start : start + block.shape[0]] += block  # every row, in order
        else:
            self.cols[start : start + block.shape[0], :, rows] += block
        # carries wait until the digits could near the int64 range
        self.load += int(np.abs(block).max(initial=0))
        if self.load >= _CARRY_AT:
            self._settle()

    def merge(self, other: _Digits) -> None:
        """Add another accumulator of the same shape."""
        if other.cols.shape[0] == 0:
            return
        other._settle()
        self._settle()
        self._cover(other.low, other.low + other.cols.shape[0] - 1)
        start = other.low - self.low
        self.cols[start : start + other.cols.shape[0]] += other.cols
        self._carry(start)

    def _carry(self, start: int) -> None:
        cols = self.cols
        for j in range(start, cols.shape[0] - 1):
            carry = cols[j] >> _DIGIT
            if not carry.any():
                continue
            cols[j] &= _DIGIT_MASK
            cols[j + 1] += carry
        if np.abs(cols[-1]).max(initial=0) >= 1 << 40:  # keep the top digit small
            self.cols = np.pad(cols, ((0, 1), (0, 0), (0, 0)))
            self._carry(self.cols.shape[0] - 2)

    def integers(self) -> tuple[np.ndarray, int]:
        """The sums as Python integers, ``(replicates, width)`` of objects, and the
        power of two ``26 * low`` they are in units of."""
        self._settle()
        total = np.zeros(self.cols.shape[1:], dtype=object)
        for j in range(self.cols.shape[0] - 1, -1, -1):
            total = total * (1 << _DIGIT) + self.cols[j].astype(object)
        return total, _DIGIT * self.low


@cache
def _blas_controller() -> Any:
    """threadpoolctl's controller, if installed (else ``None``)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def _one_blas_thread() -> Any:
    """A context with BLAS limited to one thread, when threadpoolctl is installed.

    The products are small ((replicates, 4096) by (4096, ~50)): several BLAS
    threads gain little on them and, on a busy machine, wait for one another
    (20x slower measured with two threads on two loaded cores).
    """
    controller = _blas_controller()
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


_LOOPED_GROUPS = 64
"""Up to this many accumulator rows a contribution's block sums are one small
product per row (the rows' draws by their digits); beyond, one `numpy.bincount` per
replicate and digit column."""


def _layout(c: _Contribution, n: int) -> tuple[int, np.ndarray, np.ndarray] | None:
    """``(low, digits, nonzero)`` of one contribution: ``digits[i, s]`` (float64,
    ``(n, span)``) is sample ``i``'s digit worth ``2**(26 (low + s))``, the span
    trimmed to the columns that are not all zero at either end (an indicator is
    one column).  The parts' digits are added by one `numpy.bincount` (exact: a
    few integers below ``2**27`` a cell)."""
    if c.layout is not None:
        return c.layout if c.layout[2].any() else None
    nonzero = c.parts[0][2]
    for _, _, nz in c.parts[1:]:
        nonzero = nonzero | nz
    if not nonzero.any():
        return None
    low = min(int(k[nz].min()) for k, _, nz in c.parts if nz.any())
    high = max(int(k[nz].max()) for k, _, nz in c.parts if nz.any())
    span = high - low + 3
    index = np.arange(n, dtype=np.int64) * span
    flat = [
        (index + np.where(nz, k - low, 0))[:, None] + np.arange(3)
        for k, _, nz in c.parts
    ]
    digits = [np.where(nz[:, None], d, 0) for _, d, nz in c.parts]
    dig = np.bincount(
        np.concatenate(flat).reshape(-1),
        weights=np.concatenate(digits).reshape(-1),
        minlength=n * span,
    ).reshape(n, span)
    used = np.flatnonzero(dig.any(axis=0))
    if used.size == 0:
        return None
    first, last = int(used[0]), int(used[-1]) + 1
    if first or last < span:
        dig = dig[:, first:last]
    return low + first, dig, nonzero


def _block_sums(
    draws: np.ndarray, contributions: Sequence[_Contribution]
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """For each contribution, ``(low, sums[j, b, g], rows[g])``: the exact
    ``sum_i draws[i, b] * digit_j(i)`` per accumulator row ``rows[g]``.

    The contributions of one accumulator row each go through one float64 matrix
    product (the draws by all their digit columns); those spread over several
    rows (ECE bins) are summed row by row (`_grouped_sums`), the block's rows
    being sorted by the first such contribution's rows (the same sums in any
    order).  Every product is exact: the digits of a sample in one column add to
    less than ``2**31``, the draws are below 2**5 and a block has at most
    `BLOCK_ROWS` (2**12) rows, so every partial sum is an integer below
    ``2**53``, in any order.
    """
    n = draws.shape[0]
    order = None
    for c in contributions:
        if c.row is None:
            order = np.argsort(c.target)  # any order of equal rows: exact sums
            break
    kw = (draws if order is None else draws[order]).T.astype(np.float64)
    dense: list[tuple[int, int, int, int]] = []  # (index, low, span, offset)
    columns: list[np.ndarray] = []
    out: list[tuple[int, np.ndarray, np.ndarray] | None] = [None] * len(contributions)
    n_cols = 0
    for i, c in enumerate(contributions):
        layout = _layout(c, n)
        if layout is None:
            continue
        low, dig, nonzero = layout
        if c.row is not None:
            dense.append((i, low, dig.shape[1], n_cols))
            columns.append(dig)
            n_cols += dig.shape[1]
            continue
        assert order is not None
        rows, sums = _grouped_sums(kw, dig[order], c.target[order], nonzero[order])
        out[i] = (low, sums, rows)
    if dense:
        x = np.concatenate(columns, axis=1)
        sums = kw @ (x if order is None else x[order])  # exact integers
        for i, low, span, offset in dense:
            row = contributions[i].row
            assert row is not None
            part = sums[:, offset : offset + span].T[:, :, None]
            out[i] = (low, part.astype(np.int64), np.array([row], dtype=np.int64))
    return [x for x in out if x is not None]


def _grouped_sums(
    kw: np.ndarray, dig: np.ndarray, target: np.ndarray, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, sums[s, b, g])``: per accumulator row ``rows[g]`` (ascending), the
    exact ``sum_{i: target_i = rows[g]} kw[b, i] * dig[i, s]`` over the samples
    kept (float64 products of integers below ``2**53``: exact in any order).

    Sorted targets (the rows the block was sorted by) make each group a slice;
    else the kept samples are gathered group by group, or, beyond
    `_LOOPED_GROUPS` groups, summed by one `numpy.bincount` per replicate and
    digit column."""
    if target.shape[0] and bool(np.all(target[1:] >= target[:-1])):
        starts = np.flatnonzero(np.r_[True, target[1:] != target[:-1]])
        if starts.shape[0] <= _LOOPED_GROUPS:
            ends = np.r_[starts[1:], target.shape[0]]
            sums = np.stack(
                [
                    kw[:, a:b] @ dig[a:b]
                    for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
                ]
            )  # (groups, replicates, span)
            rows = target[starts]
            return rows.astype(np.int64), sums.transpose(2, 1, 0).astype(np.int64)
    at = np.flatnonzero(keep)
    order = at[np.argsort(target[at])]  # any order of equal targets: exact sums
    keys = target[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    rows = keys[starts]
    if rows.shape[0] <= _LOOPED_GROUPS:
        ends = np.r_[starts[1:], keys.shape[0]]
        sums = np.stack(
            [
                kw[:, order[a:b]] @ dig[order[a:b]]
                for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
            ]
        )  # (groups, replicates, span)
    else:  # one bincount per replicate and digit column
        group = np.searchsorted(rows, keys)
        sums = np.empty((rows.shape[0], kw.shape[0], dig.shape[1]), dtype=np.float64)
        picked_kw, picked_dig = kw[:, order], dig[order]
        for s in range(dig.shape[1]):
            for r in range(kw.shape[0]):
                sums[:, r, s] = np.bincount(
                    group,
                    weights=picked_kw[r] * picked_dig[:, s],
                    minlength=rows.shape[0],
                )
    return rows.astype(np.int64), sums.transpose(2, 1, 0).astype(np.int64)


# --------------------------------------------------------------------------- #
# The tally
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class BootstrapSpec:
    """``--bootstrap N --seed S --confidence C``."""

    replicates: int
    seed: int = 0
    confidence: float = 0.95


def _kind(tally: Any) -> str | None:
    """How a metric tally is bootstrapped: ``mean``; ``ece``, ``mce`` or ``rmsce``
    (equal-width bins), the same with ``-quantile`` (quantile bins); ``None``: a
    tally this module does not know (no interval)."""
    from arrayloss import metrics as M

    if isinstance(tally, M._MeanTally):
        return "mean"
    if isinstance(tally, M.ECE):
        kind = str(tally._name)
        return kind if tally.strategy == "uniform" else f"{kind}-quantile"
    return None


def _per_class_report(metric_tallies: dict[str, Any]) -> int | None:
    """The class count of the per-class report among the tallies (``None``: none,
    or the confusion matrix alone)."""
    from arrayloss._classwise import ClassReport

    for tally in metric_tallies.values():
        if isinstance(tally, ClassReport) and tally.calibration:
            return int(tally.n_classes)
    return None


CLASS_METRICS = ("precision", "recall", "f1-score")
"""The per-class metrics that get intervals (``--per-class``), with their averages."""

_INT32_BLOCKS = 1 << 12
"""Blocks whose per-class counts an int32 holds: a block adds below ``2**16``
to each (4096 rows, draws below 16)."""

MAX_CLASS_SUMS = 3_000_000
"""The most replicate sums of the per-class report (replicates x 3 x classes):
24 MB of int64 counts and 12 MB of int32 ones (the latest blocks')."""


@dataclass
class _Pending:
    """Chunks waiting for a block of draws: the rows' counters, weights (scaled
    by ``2**-e``, ``e`` per row), the terms ``(target, values)`` and the class
    indices ``(true, predicted)`` of the per-class report."""

    rows: np.ndarray
    w: np.ndarray | None
    e: np.ndarray | None
    terms: list[tuple[int | np.ndarray, np.ndarray]]
    classes: tuple[np.ndarray, np.ndarray] | None

    @staticmethod
    def join(parts: list[_Pending]) -> _Pending:
        """The parts as one (same layout; all weighted or none)."""
        if len(parts) == 1:
            return parts[0]

        def cat(arrays: list[Any]) -> Any:
            return None if arrays[0] is None else np.concatenate(arrays)

        terms: list[tuple[int | np.ndarray, np.ndarray]] = []
        for j, (target, _) in enumerate(parts[0].terms):
            values = np.concatenate([p.terms[j][1] for p in parts])
            if isinstance(target, np.ndarray):
                terms.append((np.concatenate([p.terms[j][0] for p in parts]), values))
            else:
                terms.append((target, values))
        classes = None
        if parts[0].classes is not None:
            classes = (
                np.concatenate([p.classes[0] for p in parts if p.classes is not None]),
                np.concatenate([p.classes[1] for p in parts if p.classes is not None]),
            )
        return _Pending(
            cat([p.rows for p in parts]), cat([p.w for p in parts]),
            cat([p.e for p in parts]), terms, classes,
        )  # fmt: skip

    def split(self, at: int) -> tuple[_Pending, _Pending]:
        """Rows ``:at`` and ``at:``."""

        def cut(x: Any) -> tuple[Any, Any]:
            return (None, None) if x is None else (x[:at], x[at:])

        head: list[tuple[int | np.ndarray, np.ndarray]] = []
        tail: list[tuple[int | np.ndarray, np.ndarray]] = []
        for target, values in self.terms:
            t0, t1 = cut(target) if isinstance(target, np.ndarray) else (target,) * 2
            head.append((t0, values[:at]))
            tail.append((t1, values[at:]))
        c0 = c1 = None
        if self.classes is not None:
            (y0, y1), (p0, p1) = (cut(x) for x in self.classes)
            c0, c1 = (y0, p0), (y1, p1)
        (r0, r1), (w0, w1), (e0, e1) = cut(self.rows), cut(self.w), cut(self.e)
        return _Pending(r0, w0, e0, head, c0), _Pending(r1, w1, e1, tail, c1)


class BootstrapTally:
    """The exact replicate sums of every scalar of an ``eval`` report.

    Accumulator rows: 0 is ``sum K w`` (the weight, shared by every scalar); then
    one row ``sum K w t`` per loss and per mean metric, ``n_bins`` rows per uniform
    ECE (``sum K w (hit - conf)`` of each bin) and ``2 n_bins`` per uniform MCE or
    RMSCE (those and ``sum K w`` of each bin).  With the per-class report, per
    replicate and class ``c``: ``sum K w [y = c != pred]``, ``sum K w [pred = c !=
    y]`` and ``sum K w [y = pred = c]`` (the true positives, which added to the
    first two make the support and the predictions), as int64 counts while the
    weights are 0 or 1, else as exact digits.  `add` takes a chunk (buffered
    until a block of `block_rows` rows, so that short chunks share their draws'
    products), `merge` another tally (exact and order free); `intervals` gives
    the result.
    """

    def __init__(
        self,
        spec: BootstrapSpec,
        metric_tallies: dict[str, Any],
        loss_specs: Sequence[str],
    ) -> None:
        self.spec = spec
        self.loss_rows = {s: 1 + i for i, s in enumerate(loss_specs)}
        self.metric_rows: dict[str, tuple[str, int, int]] = {}
        width = 1 + len(loss_specs)
        for key, tally in metric_tallies.items():
            kind = _kind(tally)
            if kind == "mean":
                self.metric_rows[key] = (kind, width, 1)
                width += 1
            elif kind in ("ece", "mce", "rmsce"):
                self.metric_rows[key] = (kind, width, tally.n_bins)
                width += tally.n_bins * (1 if kind == "ece" else 2)
            elif kind is not None:
                self.metric_rows[key] = (kind, 0, tally.n_bins)
        self.width = width
        if spec.replicates * width > MAX_SUMS:
            msg = (
                f"--bootstrap {spec.replicates} with {width - 1} scalars and ECE bins "
                f"keeps {spec.replicates * width:,} exact sums, more than "
                f"{MAX_SUMS:,}: use fewer replicates or ECE bins"
            )
            raise UsageError(msg)
        self.n_classes = _per_class_report(metric_tallies)
        if self.n_classes is not None:
            n_sums = 3 * self.n_classes * spec.replicates
            if n_sums > MAX_CLASS_SUMS:
                msg = (
                    f"--bootstrap {spec.replicates} with --per-class of "
                    f"{self.n_classes} classes keeps {n_sums:,} exact sums, more "
                    f"than {MAX_CLASS_SUMS:,}: use fewer replicates"
                )
                raise UsageError(msg)
        self._reset()
        self._lock = threading.Lock()

    def _reset(self) -> None:
        """Nothing added yet."""
        replicates = self.spec.replicates
        self.sums = _Digits(replicates, self.width)
        # ece-quantile: (rows, confidence, hit, weight) of every sample, per chunk
        self.samples: dict[str, list[tuple[np.ndarray, ...]]] = {
            key: [] for key, (kind, _, _) in self.metric_rows.items()
            if kind.endswith("-quantile")
        }  # fmt: skip
        width = 3 * (self.n_classes or 0)
        self.class_counts = np.zeros((width, replicates), dtype=np.int64)
        # the latest blocks' counts: int32 (half the memory traffic), at most
        # `_INT32_BLOCKS` blocks before they are added to ``class_counts``
        self.recent_counts = np.zeros((width, replicates), dtype=np.int32)
        self.n_recent = 0
        self.class_sums = _Digits(replicates, width)
        self.pending: list[_Pending] = []
        self.n_pending = 0

    def __getstate__(self) -> dict[str, Any]:
        self.flush()
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def empty(self) -> BootstrapTally:
        """A tally of the same layout with nothing added."""
        out = BootstrapTally.__new__(BootstrapTally)
        out.__dict__.update(self.__dict__)
        out._reset()
        out._lock = threading.Lock()
        return out

    def add(
        self,
        rows: Any,
        metric_tallies: dict[str, Any],
        losses: dict[str, np.ndarray],
        first_row: int,
    ) -> None:
        """Add one chunk: ``rows`` (`arrayloss._metric_rows._Rows`), the metric tallies
        (their terms are taken from ``rows``), the per-sample ``losses`` (float64,
        by spec) and ``first_row``, the number of the chunk's first row in the
        whole input (the draws' counter)."""
        from arrayloss._xp import to_numpy

        n = int(rows.n)
        if n == 0:
            return
        w, e = rows.host_weights  # the weights times 2**-e, exactly
        terms: list[tuple[int | np.ndarray, np.ndarray]] = [(0, np.ones(n))]
        terms += [(self.loss_rows[s], v) for s, v in losses.items()]
        for key, (kind, row, n_bins) in self.metric_rows.items():
            tally = metric_tallies[key]
            if kind == "mean":
                values = np.asarray(to_numpy(tally._terms(rows)), dtype=np.float64)
                if w is not None:  # a zero weight removes any term (as the tally)
                    values = np.where(w == 0, 0.0, values)
                terms.append((row, values))
                continue
            conf = np.asarray(to_numpy(rows.confidence))
            hit = np.asarray(to_numpy(rows.hit))
            if kind.endswith("-quantile"):
                raw = np.ones(n) if w is None else np.ldexp(w, e)
                index = np.arange(first_row, first_row + n, dtype=np.int64)
                with self._lock:
                    self.samples[key].append((index, conf, hit, raw))
                continue
            edges = np.array([b / n_bins for b in range(1, n_bins)], conf.dtype)
            bins = np.searchsorted(edges, conf, side="left")
            gap = hit.astype(np.float64) - conf.astype(np.float64)
            if w is not None:
                gap = np.where(w == 0, 0.0, gap)
            terms.append((row + bins, gap))
            if kind != "ece":  # the bins' weights
                terms.append((row + n_bins + bins, np.ones(n)))
        classes = None
        if self.n_classes is not None:
            classes = (
                np.asarray(to_numpy(rows.index), dtype=np.int64),
                np.asarray(to_numpy(rows.predicted), dtype=np.int64),
            )
        part = _Pending(
            np.arange(first_row, first_row + n, dtype=np.int64), w,
            None if w is None else np.full(n, e, dtype=np.int64), terms, classes,
        )  # fmt: skip
        with self._lock:
            ready = []
            if self.pending and (self.pending[0].w is None) != (w is None):
                ready.append(self._take())
            self.pending.append(part)
            self.n_pending += n
            step = block_rows(self.spec.replicates)
            if self.n_pending >= step:  # whole blocks; the rest waits
                ready.append(self._take(self.n_pending - self.n_pending % step))
        for chunk in ready:
            self._add_pending(chunk)

    def _take(self, rows: int | None = None) -> _Pending:
        """The first ``rows`` pending rows (default all) as one chunk, removed
        (under the lock)."""
        out = _Pending.join(self.pending)
        self.pending, self.n_pending = [], 0
        if rows is not None and rows < out.rows.shape[0]:
            out, rest = out.split(rows)
            self.pending, self.n_pending = [rest], rest.rows.shape[0]
        return out

    def flush(self) -> None:
        """Add the chunks still waiting for a full block."""
        with self._lock:
            chunk = self._take() if self.pending else None
        if chunk is not None:
            self._add_pending(chunk)
        with self._lock:
            self._fold_counts()

    def _add_pending(self, part: _Pending) -> None:
        """Add buffered chunks, block by block of draws."""
        n = part.rows.shape[0]
        step = block_rows(self.spec.replicates)
        terms, copies = _distinct_terms(part.terms)
        for a in range(0, n, step):
            b = min(n, a + step)
            draws = poisson_weights(
                self.spec.seed, self.spec.replicates, part.rows[a:b]
            )
            e = 0 if part.e is None else part.e[a:b]
            contributions = [
                _contribution(target, t, part.w, e, a, b) for target, t in terms
            ]
            with _one_blas_thread():
                sums = _block_sums(draws, contributions)
                if part.classes is not None:
                    self._add_classes(draws, part, a, b)
            with self._lock:
                for low, block, targets in sums:
                    self.sums.add(low, block, targets)
                    if targets.shape[0] == 1:  # the same sums for equal terms
                        for row in copies.get(int(targets[0]), ()):
                            self.sums.add(low, block, np.array([row]))

    def _add_classes(self, draws: np.ndarray, part: _Pending, a: int, b: int) -> None:
        """Add the per-class sums of rows ``a:b`` (their ``draws``)."""
        assert part.classes is not None
        assert self.n_classes is not None
        c = self.n_classes
        y, pred = part.classes[0][a:b], part.classes[1][a:b]
        unit = part.w is None
        if part.w is not None and part.e is not None:
            raw = np.ldexp(part.w[a:b], part.e[a:b])
            unit = bool(np.all((raw == 0) | (raw == 1)))
            keep = np.flatnonzero(raw != 0)
        else:
            keep = np.arange(b - a)
        right = y[keep] == pred[keep]
        hit, miss = keep[right], keep[~right]
        # a hit adds to its class's true positives, a miss to the support of its
        # class and to the predictions of the predicted one (fewer terms)
        src = np.concatenate([miss, miss, hit])
        keys = np.concatenate([y[miss], c + pred[miss], 2 * c + y[hit]])
        if src.size == 0:
            return
        if unit:  # counts: the draws' rows summed by key
            ids, counts = _keyed_row_sums(draws, src, keys)
            with self._lock:
                self.recent_counts[ids] += counts
                self.n_recent += 1
                if self.n_recent >= _INT32_BLOCKS:
                    self._fold_counts()
            return
        assert part.w is not None
        assert part.e is not None
        w, e = part.w[a:b][src], part.e[a:b][src]
        c_sums = _block_sums(
            draws[src], [_contribution(keys, np.ones(src.size), w, e, 0, src.size)]
        )
        with self._lock:
            for low, block, targets in c_sums:
                self.class_sums.add(low, block, targets)

    def _fold_counts(self) -> None:
        """Add the int32 counts of the latest blocks to ``class_counts`` (under
        the lock)."""
        if self.n_recent:
            self.class_counts += self.recent_counts
            self.recent_counts[:] = 0
            self.n_recent = 0

    def merge(self, other: BootstrapTally) -> BootstrapTally:
        """Add ``other`` (same layout) into this tally; returns ``self``."""
        other.flush()
        self.flush()
        with self._lock:
            other._fold_counts()
            self._fold_counts()
            self.sums.merge(other.sums)
            for key, parts in other.samples.items():
                self.samples[key].extend(parts)
            self.class_counts += other.class_counts
            self.class_sums.merge(other.class_sums)
        return self

    # -- results ---------------------------------------------------------------

    def _replicates(
        self, kind: str, row: int, n_bins: int, total: np.ndarray, key: str
    ) -> np.ndarray:
        """Each replicate's value of one scalar; NaN where it has no weight."""
        from arrayloss import metrics as M

        weight = total[:, 0]
        out = np.full(weight.shape[0], math.nan)
        for b in range(weight.shape[0]):
            if weight[b] == 0:
                continue
            if kind == "ece":
                gaps = sum((abs(g) for g in total[b, row : row + n_bins]), 0)
                out[b] = float(Fraction(gaps, weight[b]))
            elif kind in ("mce", "rmsce"):
                gaps = tuple(Fraction(g) for g in total[b, row : row + n_bins])
                weights = tuple(
                    Fraction(v) for v in total[b, row + n_bins : row + 2 * n_bins]
                )
                out[b] = M._reduce_fraction_bins(
                    gaps, weights, Fraction(weight[b]), kind
                )
            else:
                out[b] = float(Fraction(total[b, row], weight[b]))
        return out

    def _quantile_replicates(self, key: str, kind: str, n_bins: int) -> np.ndarray:
        """Each replicate's quantile-binned ECE (MCE, RMSCE), from the stored
        samples (in row order, so the result does not depend on how they were
        chunked)."""
        from arrayloss import _xp
        from arrayloss import metrics as M

        parts = self.samples[key]
        index = np.concatenate([p[0] for p in parts])
        order = np.argsort(index, kind="stable")
        conf, hit, w = (np.concatenate([p[j] for p in parts])[order] for j in (1, 2, 3))
        index = index[order]
        host = _xp.array_namespace(conf)
        out = np.full(self.spec.replicates, math.nan)
        for b in range(self.spec.replicates):
            k = np.empty(index.shape[0], dtype=np.float64)
            for a in range(0, index.shape[0], 1 << 16):
                rows = index[a : a + (1 << 16)]
                k[a : a + rows.shape[0]] = _one_replicate(self.spec.seed, b, rows)
            wb = w * k
            if not (wb > 0).any():
                continue
            top = float(wb.max())
            value = M._ece(
                conf, hit, wb / top, n_bins, "quantile", xp=host, dtype=np.float64,
                kind=kind.removesuffix("-quantile"),
            )  # fmt: skip
            out[b] = float(value)
        return out

    def _class_sums(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any] | None:
        """Per replicate and class, the true positives, the support and the
        predictions (float64 counts, or exact integers on one grid when weighted),
        and the ratio that divides them; ``None`` without the per-class report."""
        self.flush()
        c = self.n_classes
        if c is None:
            return None
        counts = self.class_counts
        if self.class_sums.cols.shape[0] == 0:
            sums = [counts[j * c : (j + 1) * c].T.astype(np.float64) for j in range(3)]
            ratio = _float_ratio
        else:  # weighted: exact integers on one grid
            ints, power = self.class_sums.integers()
            low = min(power, 0)
            exact = (ints << (power - low)) + (counts.T.astype(object) << -low)
            sums = [exact[:, j * c : (j + 1) * c] for j in range(3)]
            ratio = _int_ratio
        missed, wrong, tp = sums  # the support and predictions less the hits
        return tp, missed + tp, wrong + tp, ratio

    def class_replicates(self) -> dict[str, np.ndarray] | None:
        """Each replicate's precision, recall and F1 of every class, ``(replicates,
        classes)`` float64 arrays, as `arrayloss.metrics.ClassReport.result`
        computes them (correctly rounded ratios, 0 for a zero denominator); NaN
        rows for replicates without weight.  ``None`` without the per-class
        report."""
        sums = self._class_sums()
        return None if sums is None else _class_ratios(sums)

    def average_replicates(self) -> dict[str, np.ndarray] | None:
        """Each replicate's macro and weighted averages of the per-class
        precision, recall and F1: per metric a ``(replicates, 2)`` float64 array,
        column 0 the macro average ``sum_c v_c / C`` over all ``C`` classes (as
        ``classification_report(labels=range(C))``), column 1 the average
        weighted by the replicate's support, ``sum_c v_c s_c / sum_c s_c`` (each
        share ``s_c / sum s`` a correctly rounded ratio, the products summed in
        float64); NaN rows for replicates without weight.  ``None`` without the
        per-class report."""
        sums = self._class_sums()
        return None if sums is None else _class_averages(sums, _class_ratios(sums))

    def replicates(self, reduction: str) -> dict[str, dict[str, np.ndarray]]:
        """Each replicate's value of every loss and metric (float64 arrays of
        length ``replicates``; NaN for a replicate with no weight)."""
        self.flush()
        total, scale = self.sums.integers()
        losses: dict[str, np.ndarray] = {}
        for s, row in self.loss_rows.items():
            if reduction == "sum":
                losses[s] = np.array(
                    [float(_scaled(v, scale)) for v in total[:, row]], dtype=float
                )
            else:
                losses[s] = self._replicates("mean", row, 1, total, s)
        metrics: dict[str, np.ndarray] = {}
        for key, (kind, row, n_bins) in self.metric_rows.items():
            if kind.endswith("-quantile"):
                metrics[key] = self._quantile_replicates(key, kind, n_bins)
            else:
                metrics[key] = self._replicates(kind, row, n_bins, total, key)
        return {"losses": losses, "metrics": metrics}

    def _levels(self) -> list[float]:
        alpha = 1 - self.spec.confidence
        return [alpha / 2, 1 - alpha / 2]

    def intervals(
        self, reduction: str
    ) -> dict[str, dict[str, tuple[float, float] | None]]:
        """The percentile interval of every loss and metric (``None``: no
        replicate with weight).  A metric tally of a kind this module does not
        know has no entry."""
        levels = self._levels()

        def interval(values: np.ndarray) -> tuple[float, float] | None:
            values = values[np.isfinite(values)]
            if values.size == 0:
                return None
            lo, hi = np.quantile(values, levels)
            return float(lo), float(hi)

        return {
            group: {key: interval(values) for key, values in per.items()}
            for group, per in self.replicates(reduction).items()
        }

    def class_intervals(self) -> dict[str, list[tuple[float, float] | None]] | None:
        """Per class metric (`CLASS_METRICS`), the percentile interval of each
        class, then of the macro and of the weighted average
        (`arrayloss.cli._report.AVERAGES`): ``C +
        2`` entries (``None`` without the per-class report).

        The replicate sums, ratios and averages are computed once, and each
        metric's replicates are let go once its quantiles are taken (a few
        ``(replicates, classes)`` arrays at a time)."""
        sums = self._class_sums()
        if sums is None:
            return None
        per = _class_ratios(sums)
        averages = _class_averages(sums, per)
        del sums
        out: dict[str, list[tuple[float, float] | None]] = {}
        for name in CLASS_METRICS:
            values = np.concatenate([per.pop(name), averages.pop(name)], axis=1)
            ok = values[np.isfinite(values[:, 0])] if values.shape[1] else values
            del values
            if ok.shape[0] == 0:
                out[name] = [None] * ok.shape[1]
                continue
            lo, hi = np.quantile(ok, self._levels(), axis=0)
            out[name] = [(float(a), float(b)) for a, b in zip(lo, hi, strict=True)]
        return out


def _class_ratios(
    sums: tuple[np.ndarray, np.ndarray, np.ndarray, Any],
) -> dict[str, np.ndarray]:
    """`BootstrapTally.class_replicates` from `BootstrapTally._class_sums`."""
    tp, sup, prd, ratio = sums
    out = {
        "precision": ratio(tp, prd),
        "recall": ratio(tp, sup),
        "f1-score": ratio(2 * tp, sup + prd),
    }
    empty = np.asarray((sup != 0).sum(axis=1) == 0)
    for values in out.values():
        values[empty] = math.nan
    return out


def _class_averages(
    sums: tuple[np.ndarray, np.ndarray, np.ndarray, Any],
    per: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """`BootstrapTally.average_replicates` from `BootstrapTally._class_sums` and
    `_class_ratios`."""
    _, sup, _, ratio = sums
    share = ratio(sup, sup.sum(axis=1, keepdims=True))
    out = {}
    for name, values in per.items():
        both = np.empty((values.shape[0], 2))
        both[:, 0] = values.sum(axis=1) / values.shape[1]
        both[:, 1] = (values * share).sum(axis=1)
        out[name] = both
    return out


def _distinct_terms(
    terms: list[tuple[int | np.ndarray, np.ndarray]],
) -> tuple[list[tuple[int | np.ndarray, np.ndarray]], dict[int, list[int]]]:
    """The terms of one accumulator row each without repeats (``nll`` is the
    cross-entropy of logits, ``top_1_accuracy`` the accuracy), and per row kept
    the rows whose terms are equal to its own (their sums are the same)."""
    out: list[tuple[int | np.ndarray, np.ndarray]] = []
    copies: dict[int, list[int]] = {}
    for target, values in terms:
        if not isinstance(target, np.ndarray):
            for row, kept in out:
                # float32 or float64: both are summed as float64, exactly
                if not isinstance(row, np.ndarray) and np.array_equal(kept, values):
                    copies.setdefault(row, []).append(target)
                    break
            else:
                out.append((target, values))
            continue
        out.append((target, values))
    return out, copies


def _keyed_row_sums(
    draws: np.ndarray, src: np.ndarray, keys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, sums)``: ``sums[g] = sum_{j: keys[j] = ids[g]} draws[src[j]]``,
    int32 ``(groups, replicates)`` (a block's sums are below ``2**31``), ``ids``
    ascending.

    The terms of one key are numbered ``0, 1, ...`` (their rank, after a sort by
    key, in any order among equal keys); the terms of one rank have distinct keys,
    so each rank is one vector addition of whole rows of draws (as many as the
    most terms of a key: a few when the keys are many).  Exact integer sums, in
    any grouping.
    """
    order = np.argsort(keys)  # the order of a key's terms changes no sum
    k, rows = keys[order], src[order]
    first = np.empty(k.shape[0], dtype=bool)
    first[:1] = True
    np.not_equal(k[1:], k[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    group = np.cumsum(first) - 1
    rank = np.arange(k.shape[0]) - starts[group]
    sums = draws[rows[starts]].astype(np.int32)
    for r in range(1, int(rank.max(initial=0)) + 1):
        at = np.flatnonzero(rank == r)
        sums[group[at]] += draws[rows[at]]
    return k[starts], sums


def _float_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` of exact float64 integers (correctly rounded), 0 where
    ``den`` is 0."""
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _int_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """`_float_ratio` of object arrays of Python integers."""
    ratio = np.frompyfunc(lambda a, b: a / b if b else 0.0, 2, 1)
    return np.asarray(ratio(num, den), dtype=np.float64)


def _one_replicate(seed: int, b: int, rows: np.ndarray) -> np.ndarray:
    """Column ``b`` of `poisson_weights` for ``rows``, without the other columns."""
    j = b // 2
    key = _replicate_keys(seed, j + 1)[j : j + 1]
    u = _mix(_row_hashes(rows) ^ key)
    half = u >> np.uint64(32) if b % 2 else u
    return _poisson_from_uniform(half.astype(np.uint32))


def _scaled(v: int, power: int) -> Fraction:
    return Fraction(v << power) if power >= 0 else Fraction(v, 1 << -power)


def block_rows(replicates: int) -> int:
    """Rows per block of draws: `BLOCK_ROWS`, or fewer so that a block holds at
    most `BLOCK_DRAWS` draws (never under 16 rows)."""
    return max(16, min(BLOCK_ROWS, BLOCK_DRAWS // replicates))


def _contribution(
    target: int | np.ndarray,
    t: np.ndarray,
    w: np.ndarray | None,
    e: int | np.ndarray,
    a: int,
    b: int,
) -> _Contribution:
    """The digits of rows ``a:b`` of ``w * t * 2**e`` for accumulator rows
    ``target``; weighted products are split into four exact ones (`exact_products`).
    ``e`` is one power for all rows, or one per row of ``a:b``."""
    from arrayloss._exact import exact_products

    t = np.asarray(t[a:b], dtype=np.float64)
    row = None
    if isinstance(target, np.ndarray):
        rows = target[a:b]
    else:
        rows, row = np.full(t.shape, target, dtype=np.int64), int(target)
    if w is None:
        nonzero = t != 0
        if np.array_equal(t[nonzero], np.ones(int(nonzero.sum()))):  # indicator
            return _Contribution(rows, [], row, (0, t[:, None], nonzero))
        return _Contribution(rows, [_digits(t, 0)], row)
    products, power = exact_products(w[a:b], t)
    power = power + e
    return _Contribution(rows, [_digits(p, power) for p in products], row)
