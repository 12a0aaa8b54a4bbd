r"""The per-class report and the confusion matrix, as exact streaming tallies.

`ClassReport` keeps, for ``C`` classes, the exact sums (`arrayloss._exact_groups`)
that the per-class report is made of, so its result does not depend on how the
samples are cut into batches (or Dask blocks):

* the ``C x C`` confusion matrix ``M[t, p] = sum(w_i : y_i = t, pred_i = p)`` (a
  count per cell without weights), the prediction being the arg-max, first index
  on ties, as `arrayloss.metrics.accuracy`; or, with ``matrix=False``, only the
  ``3 C`` sums the report needs of it, its diagonal and the off-diagonal row and
  column sums (`_tally_keys`);
* per class ``c``: the sum of ``w_i * (-log p_{i, y_i})`` over the samples of class
  ``c`` (the per-class NLL, with the `arrayloss.metrics.nll` of the batch: the
  ``eps`` clipping of ``arrayloss eval`` included);
* per class and confidence bin ``b`` of ``p_{ic}`` (the `arrayloss.metrics.ece`
  bins, equal width): ``sum(w_i [y_i = c])`` and ``sum(w_i q(p_{ic}))``, where
  ``q`` rounds a probability to the nearest multiple of ``2**-60`` (an error below
  ``1e-18`` a term, the same whatever the batch, so that the sum of ``n * C``
  probabilities stays exact and fast; with weights each product ``w_i q(p_{ic})``
  is rounded once to float64, also the same whatever the batch, and the products
  are summed exactly).

From them, for each class (the conventions of
``sklearn.metrics.classification_report(labels=range(C), output_dict=True)``,
``zero_division="warn"``, which reports 0; no warning here):

.. math::

    \text{precision}_c = \frac{M_{cc}}{\sum_t M_{tc}}, \quad
    \text{recall}_c = \frac{M_{cc}}{\sum_p M_{cp}}, \quad
    F_{1,c} = \frac{2 M_{cc}}{\sum_t M_{tc} + \sum_p M_{cp}},

0 where a denominator is 0; the support ``sum_p M_{cp}`` (an integer count, or
the weight sum when weighted); the per-class NLL (``None`` without support);
and the classwise ECE of class ``c`` (Kull et al. 2019), the calibration of
``p_c`` against ``[y = c]``:

.. math::

    \operatorname{ECE}_c = \frac{1}{W} \sum_b
        \Bigl|\sum_{i:\, p_{ic} \in B_b} w_i \bigl([y_i = c] - p_{ic}\bigr)\Bigr|,

whose mean over the classes is the classwise ECE.

Without weights a batch adds to int64 counters (`_State.pending`), in place when
the caller hands over its tally (``_add(rows, owned=True)``, as the eval engine
does chunk after chunk): the confusion counts (which stay int64 until a weighted
batch comes: no ``C**2`` Python integers), the hits per class and bin, and the
sums of ``q(p)`` as the column sums of their 30-bit halves, with only the
probabilities above the first bin edge (fewer than ``n_bins`` a row) binned one
by one; bin 0 of each class gets the rest.  The sums are the same as binning
every probability, at the cost of a few vector passes over the batch.  The
per-class NLL terms wait until `_NLL_TERMS` of them can be summed exactly at once.

Reference: M. Kull, M. Perello-Nieto, M. Kängsepp, T. Silva Filho, H. Song and
P. Flach, "Beyond temperature scaling: Obtaining well-calibrated multiclass
probabilities with Dirichlet calibration", NeurIPS 2019.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from ._exact_groups import ExactVector, group_sums
from ._metric_rows import _Batches, _check_classes, _merged_classes
from ._validation import check_int
from ._xp import to_numpy

__all__ = ["ClassReport", "Reliability"]

_WEIGHTED_BLOCK = 1 << 16
"""Probabilities per `group_sums` call of a weighted batch (bounds its temporaries)."""

_QUANTUM = 60
"""Probabilities are rounded to multiples of ``2**-_QUANTUM`` in the calibration sums."""


class _State:
    """The exact sums of a `ClassReport`, owned by one tally at a time.

    Unweighted batches add to int64 counters first (``pending``: the confusion
    counts, the hit counts and the 30-bit halves of the quantized probability sums
    per class and bin), a few vector additions a batch; `settle` moves them into
    the exact vectors (they cannot overflow before `_SETTLE_ROWS` rows).
    """

    def __init__(
        self, n_classes: int, n_bins: int, calibration: bool, matrix: bool = True
    ) -> None:
        # the C x C confusion matrix, or (``matrix=False``) the 3 C tallies of
        # `_tally_keys`: true positives, misses by true and by predicted class
        self.confusion = ExactVector(n_classes * (n_classes if matrix else 3))
        self.nll = ExactVector(n_classes) if calibration else None
        self.nll_inf = np.zeros(n_classes, dtype=bool)  # a weighted NLL term of inf
        self.zero_p = np.zeros(n_classes, dtype=bool)  # a weighted p_y of exactly 0
        self.hits = ExactVector(n_classes * n_bins) if calibration else None
        self.psum = ExactVector(n_classes * n_bins) if calibration else None
        self.weighted = False
        self.pending: dict[str, np.ndarray] = {}
        self.pending_rows = 0
        self.cells: list[tuple[np.ndarray, np.ndarray]] = []  # sparse counts
        self.n_cells = 0
        self.nll_terms: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
        self.n_nll_terms = 0
        self.dense_skip = 0  # see `_DENSE_SKIP`

    def counter(self, name: str, size: int) -> np.ndarray:
        """The int64 counter ``name`` (created at zero)."""
        out = self.pending.get(name)
        if out is None:
            out = self.pending[name] = np.zeros(size, dtype=np.int64)
        return out

    def add_cells(self, ids: np.ndarray, counts: np.ndarray, size: int) -> None:
        """Add confusion counts: kept sparse (a batch fills few of the ``C x C``
        cells, and a tally of one chunk on the thread pool stays small) until
        `_SPARSE_CELLS` of them wait, then added to the dense counter."""
        self.cells.append((ids, counts))
        self.n_cells += ids.size
        if self.n_cells > _SPARSE_CELLS or self.n_cells > size // 4:
            self._fold_cells(size)

    def add_nll(self, y: np.ndarray, nll: np.ndarray, w: np.ndarray | None) -> None:
        """Add per-class NLL terms: kept (never changed) until `_NLL_TERMS` of
        them wait, then summed exactly at once (one `group_sums` of many rows
        costs less than one a batch)."""
        self.nll_terms.append((y.copy(), nll.copy(), None if w is None else w.copy()))
        self.n_nll_terms += y.size
        if self.n_nll_terms >= _NLL_TERMS:
            self._fold_nll()

    def _fold_nll(self) -> None:
        if not self.nll_terms or self.nll is None:
            self.nll_terms, self.n_nll_terms = [], 0
            return
        terms, self.nll_terms, self.n_nll_terms = self.nll_terms, [], 0
        y = np.concatenate([t[0] for t in terms])
        values = np.concatenate([t[1] for t in terms])
        w = None
        if any(t[2] is not None for t in terms):  # a weight of 1: the same sums
            w = np.concatenate(
                [np.ones(t[0].size) if t[2] is None else t[2] for t in terms]
            )
        self.nll.add(y, values, w)

    def _fold_cells(self, size: int) -> None:
        if self.cells:
            dense = self.counter("confusion", size)
            for ids, counts in self.cells:
                dense[ids] += counts
        self.cells, self.n_cells = [], 0

    def settle(self) -> None:
        """Move the int64 counters into the exact sums (the value is unchanged)."""
        self._fold_cells(self.confusion.n)
        self._fold_nll()
        if not self.pending:
            return
        pending, self.pending, self.pending_rows = self.pending, {}, 0
        if self.counts_only() and "confusion" in pending:
            # unweighted counts stay int64 (a cell counts fewer than 2**63 rows)
            self.pending["confusion"] = pending.pop("confusion")
        for name, target in (("confusion", self.confusion), ("hits", self.hits)):
            counts = pending.get(name)
            if counts is not None and target is not None:
                ids = np.flatnonzero(counts)
                target.add_ints(ids, counts[ids].astype(object), 0)
        hi, lo = pending.get("psum_hi"), pending.get("psum_lo")
        if hi is not None and lo is not None and self.psum is not None:
            ids = np.flatnonzero((hi != 0) | (lo != 0))
            ints = (hi[ids].astype(object) << 30) + lo[ids].astype(object)
            self.psum.add_ints(ids, ints, -_QUANTUM)

    def counts_only(self) -> bool:
        """Whether the confusion matrix is the int64 counter alone (no weights,
        nothing in its exact sums)."""
        return not self.weighted and self.confusion._ints is None

    def confusion_counts(self) -> np.ndarray | None:
        """The confusion counts, int64 of shape ``(C * C,)``, while
        `counts_only` (else ``None``: the exact sums hold them)."""
        self._fold_cells(self.confusion.n)
        if not self.counts_only():
            return None
        return self.counter("confusion", self.confusion.n)

    def merge_into(self, other: _State) -> None:
        """Add ``other``'s sums to these, in place (``other`` is left as it was)."""
        if self.pending_rows + other.pending_rows > _SETTLE_ROWS:
            self.settle()
        for name, counts in other.pending.items():
            self.counter(name, counts.size)[:] += counts
        for ids, cells in list(other.cells):  # a snapshot: other may be self
            self.add_cells(ids, cells, self.confusion.n)
        for y, nll, w in list(other.nll_terms):
            self.add_nll(y, nll, w)
        self.pending_rows += other.pending_rows
        self.confusion.add_vector(other.confusion)
        for name in ("nll", "hits", "psum"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None:
                mine.add_vector(theirs)
        self.nll_inf |= other.nll_inf
        self.zero_p |= other.zero_p
        self.weighted = self.weighted or other.weighted

    def copy(self) -> _State:
        out = _State.__new__(_State)
        out.confusion = self.confusion.copy()
        out.nll = None if self.nll is None else self.nll.copy()
        out.nll_inf = self.nll_inf.copy()
        out.zero_p = self.zero_p.copy()
        out.hits = None if self.hits is None else self.hits.copy()
        out.psum = None if self.psum is None else self.psum.copy()
        out.weighted = self.weighted
        out.pending = {name: counts.copy() for name, counts in self.pending.items()}
        out.pending_rows = self.pending_rows
        out.cells, out.n_cells = list(self.cells), self.n_cells  # never changed
        out.nll_terms, out.n_nll_terms = list(self.nll_terms), self.n_nll_terms
        out.dense_skip = self.dense_skip
        return out


_SPARSE_CELLS = 1 << 16
"""Confusion counts a `_State` keeps sparse before adding them to its counter."""

_NLL_TERMS = 1 << 16
"""Per-class NLL terms a `_State` keeps before summing them."""

_SETTLE_ROWS = 1 << 30
"""Unweighted rows the int64 counters of a `_State` take before `_State.settle`
(a row adds less than ``2**31`` to each)."""


@dataclass(frozen=True, eq=False)
class ClassReport(_Batches):
    """Streaming per-class report and confusion matrix; see the module doc.

    ``tally._add(rows)`` (the eval engine), ``tally.update(scores, labels, ...)``
    and ``a.merge(b)`` return a new tally and leave their inputs as they were
    (the sums are copied, then added to: a ``C x C`` object array of ``C**2``
    pointers, 8 MB at ``C = 1000``).  ``calibration=False`` keeps the confusion
    matrix only (no per-class NLL or ECE); ``matrix=False`` keeps no confusion
    matrix, only the ``3 C`` sums the precision, recall, F1 and support are made
    of (per class: the true positives and the misses by true and by predicted
    class; the same results, in ``O(C)`` memory instead of ``O(C**2)``, and no
    `confusion`).

    Parameters
    ----------
    n_classes : int >= 1
        The class count ``C``.
    n_bins : int >= 1
        Equal-width bins of the classwise ECE.
    calibration : bool
        Whether to keep the per-class NLL and classwise ECE sums.
    matrix : bool
        Whether to keep the ``C x C`` confusion matrix (`confusion`).
    """

    n_classes: int
    n_bins: int = 15
    calibration: bool = True
    matrix: bool = True
    count: int = field(default=0, kw_only=True)
    _state: _State | None = field(default=None, kw_only=True, repr=False)

    def __post_init__(self) -> None:
        check_int("n_classes", self.n_classes, low=1)
        check_int("n_bins", self.n_bins, low=1)

    _name = "per-class report"

    def _add(self, rows: Any, *, owned: bool = False) -> ClassReport:
        """The tally with the batch ``rows`` added.

        ``owned``: this tally's sums may be added to in place (no copy), for a
        caller that drops this tally for the one returned (the eval engine,
        chunk after chunk); both then share the sums.
        """
        _check_classes(self, self.n_classes, rows.n_classes)
        if not rows.n:
            return self
        if self._state is None:
            state = _State(self.n_classes, self.n_bins, self.calibration, self.matrix)
        elif owned:
            state = self._state
        else:
            state = self._state.copy()
        _add_batch(state, rows, self.n_classes, self.n_bins, self.matrix)
        return ClassReport(
            self.n_classes, self.n_bins, self.calibration, self.matrix,
            count=self.count + rows.n, _state=state,
        )  # fmt: skip

    def merge(self, other: ClassReport, *, owned: bool = False) -> ClassReport:
        """The tally of both together (exact; order does not matter).

        ``owned``: this tally's sums may be added to in place (as in `_add`).
        """
        if type(other) is not type(self):
            msg = f"cannot merge a ClassReport with a {type(other).__name__}"
            raise TypeError(msg)
        if (self.n_classes, self.n_bins, self.calibration, self.matrix) != (
            other.n_classes, other.n_bins, other.calibration, other.matrix
        ):  # fmt: skip
            msg = f"cannot merge {self!r} with {other!r}: different settings"
            raise ValueError(msg)
        a, b = self._state, other._state
        if a is None or b is None:
            state = a if b is None else b  # shared: copied before any change
            if owned and state is b and b is not None:
                state = b.copy()  # ``other``'s sums are not ours to change
        else:
            state = a if owned else a.copy()
            state.merge_into(b)
        return ClassReport(
            self.n_classes, self.n_bins, self.calibration, self.matrix,
            count=self.count + other.count, _state=state,
        )  # fmt: skip

    # -- results ------------------------------------------------------------
    def confusion(self) -> np.ndarray:
        """The ``C x C`` matrix (rows: true class, columns: predicted): int64
        counts, or float64 weight sums when a batch had weights.  A tally of
        ``matrix=False`` has none: a `ValueError`."""
        c = self.n_classes
        if not self.matrix:
            msg = "this per-class report keeps no confusion matrix (matrix=False)"
            raise ValueError(msg)
        state = self._state
        if state is None:
            return np.zeros((c, c), dtype=np.int64)
        counts = state.confusion_counts()
        if counts is not None:
            return counts.reshape(c, c).copy()
        state.settle()
        if state.weighted:
            return state.confusion.floats().reshape(c, c)
        return np.array(state.confusion.ints.tolist(), dtype=np.int64).reshape(c, c)

    def result(
        self, names: list[str] | None = None, *, zero_is_inf: bool = False
    ) -> dict[str, Any]:
        """The per-class report, keyed like ``classification_report(...,
        output_dict=True)``.

        ``{name: {"precision", "recall", "f1-score", "support", "nll", "ece"},
        "accuracy", "macro avg", "weighted avg", "classwise_ece"}`` (``nll``,
        ``ece`` and ``classwise_ece`` only with ``calibration``); ``names`` are the
        class names (default ``"0"``, ``"1"``, ...).  With ``zero_is_inf`` a class
        with a true-class probability of exactly 0 has an NLL of ``inf`` (``eval
        --eps 0``); else the NLL is that of the batches' ``nll`` (a zero read as
        the dtype's smallest normal number, or clipped to ``eps`` by ``eval``).
        """
        c = self.n_classes
        names = [str(i) for i in range(c)] if names is None else list(names)
        state = self._state
        if state is None or self.count == 0:
            msg = "the per-class report needs at least one sample (got 0)"
            raise ValueError(msg)
        state.settle()
        # the confusion sums are integers times 2**base: every ratio of two of
        # them is a ratio of integers, correctly rounded by Python's int division
        counts = state.confusion_counts()
        if counts is not None:  # int64 counts
            sums, base = counts, 0
        else:
            sums, base = state.confusion.ints, state.confusion.base
        if self.matrix:
            cells = sums.reshape(c, c)
            sup = [int(v) for v in cells.sum(axis=1).tolist()]
            pred = [int(v) for v in cells.sum(axis=0).tolist()]
            tp = [int(cells[i, i]) for i in range(c)]
        else:  # the `_tally_keys` sums
            tp, by_true, by_pred = (
                [int(v) for v in part] for part in sums.reshape(3, c)
            )
            sup = [t + m for t, m in zip(tp, by_true, strict=True)]
            pred = [t + m for t, m in zip(tp, by_pred, strict=True)]
        total_int = sum(sup)
        if total_int == 0:
            msg = "the per-class report needs at least one sample with non-zero weight"
            raise ValueError(msg)
        scale = _scale(base)
        nll = ece = None
        if state.nll is not None:
            nll = [
                None
                if sup[i] == 0
                else math.inf
                if state.nll_inf[i] or (zero_is_inf and state.zero_p[i])
                else float(state.nll.fraction(i) / (sup[i] * scale))
                for i in range(c)
            ]
            ece = _classwise_ece(state, c, self.n_bins, total_int, base)
        scores = {
            "precision": [_ratio(tp[i], pred[i]) for i in range(c)],
            "recall": [_ratio(tp[i], sup[i]) for i in range(c)],
            "f1-score": [_ratio(2 * tp[i], sup[i] + pred[i]) for i in range(c)],
        }
        out: dict[str, Any] = {}
        for i, name in enumerate(names):
            row: dict[str, Any] = {k: v[i] for k, v in scores.items()}
            row["support"] = _number(sup[i] * scale, state.weighted)
            if nll is not None and ece is not None:
                row["nll"] = nll[i]
                row["ece"] = ece[i]
            out[name] = row
        out["accuracy"] = sum(tp) / total_int
        macro = {k: _float_sum(v) / (c << _FLOAT_BITS) for k, v in scores.items()}
        weighted = {
            k: _float_sum(v, sup) / (total_int << _FLOAT_BITS)
            for k, v in scores.items()
        }
        total = _number(total_int * scale, state.weighted)
        out["macro avg"] = {**macro, "support": total}
        out["weighted avg"] = {**weighted, "support": total}
        if ece is not None:
            out["classwise_ece"] = _float_sum(ece) / (c << _FLOAT_BITS)
        return out


_FLOAT_BITS = 1074
"""Every finite float64 is an integer multiple of ``2**-1074``."""


def _float_sum(values: list[float], factors: list[int] | None = None) -> int:
    """``2**1074 sum(values[i] * factors[i])`` (factors 1 by default), exactly,
    as an integer: each float64 is ``m 2**-k`` with ``k <= 1074``."""
    acc = 0
    for i, x in enumerate(values):
        num, den = x.as_integer_ratio()
        term = num << (_FLOAT_BITS + 1 - den.bit_length())
        acc += term if factors is None else term * factors[i]
    return acc


def _scale(base: int) -> Fraction:
    return Fraction(2) ** base


def _ratio(num: int, den: int) -> float:
    """``num / den``, correctly rounded (Python's int division); 0 when ``den`` is
    0 (scikit-learn's ``zero_division`` default)."""
    return 0.0 if den == 0 else num / den


def _number(value: Fraction, weighted: bool) -> int | float:
    return float(value) if weighted else int(value)


def _classwise_ece(
    state: _State, c: int, n_bins: int, total: int, total_base: int
) -> list[float]:
    """``ECE_c`` of every class from the exact per-bin sums, the weight sum being
    ``total 2**total_base``."""
    assert state.hits is not None
    assert state.psum is not None
    base = min(state.hits.base, state.psum.base)
    hits = np.left_shift(state.hits.ints, state.hits.base - base)
    psum = np.left_shift(state.psum.ints, state.psum.base - base)
    gaps = np.abs(hits - psum).reshape(c, n_bins).sum(axis=1)
    shift = base - total_base
    if shift >= 0:
        return [(int(g) << shift) / total for g in gaps.tolist()]
    den = total << -shift
    return [int(g) / den for g in gaps.tolist()]


def _tally_keys(
    y: np.ndarray, pred: np.ndarray, c: int, w: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The keys (and weights) of a batch in the ``3 C`` sums of a
    ``matrix=False`` report: a hit adds to ``tp[y]`` (key ``y``), a miss to
    ``miss_true[y]`` (``C + y``) and ``miss_pred[pred]`` (``2 C + pred``); the
    support of ``c`` is ``tp + miss_true``, its predictions ``tp + miss_pred``
    (the row and column sums of the confusion matrix, exactly)."""
    miss = y != pred
    keys = np.concatenate((np.where(miss, y + c, y), pred[miss] + 2 * c))
    return keys, None if w is None else np.concatenate((w, w[miss]))


def _add_batch(state: _State, rows: Any, c: int, n_bins: int, matrix: bool) -> None:
    """Add the rows of one validated batch (`arrayloss._metric_rows._Rows`) to
    ``state`` (of a report with or without the confusion ``matrix``)."""
    y = np.asarray(to_numpy(rows.index), dtype=np.int64)
    pred = np.asarray(to_numpy(rows.predicted), dtype=np.int64)
    w = rows.batch.weights
    w64 = None if w is None else np.asarray(to_numpy(w), dtype=np.float64)
    if w64 is not None:
        state.weighted = True
    elif state.pending_rows + y.size > _SETTLE_ROWS:
        state.settle()
    if not matrix:
        keys, key_w = _tally_keys(y, pred, c, w64)
        if key_w is None:
            state.pending_rows += y.size
            counts = state.counter("confusion", 3 * c)
            counts += np.bincount(keys, minlength=3 * c)
        else:
            state.confusion.add(keys, key_w)
    elif w64 is None:
        state.pending_rows += y.size
        cells = y * c + pred
        ids, counts = np.unique(cells, return_counts=True)
        state.add_cells(ids, counts, c * c)
    else:
        state.confusion.add(y * c + pred, w64)
    if state.nll is None:
        return
    assert state.hits is not None
    assert state.psum is not None
    nll = np.asarray(to_numpy(rows.nll), dtype=np.float64)
    infinite = ~np.isfinite(nll)
    if infinite.any():  # -log 0 (``--eps 0``): that class's NLL is inf
        hit = infinite if w64 is None else infinite & (w64 > 0)
        state.nll_inf[y[hit]] = True
        nll = np.where(infinite, 0.0, nll)
    state.add_nll(y, nll, w64)
    if rows.input != "logits":
        s_y = np.asarray(to_numpy(rows._label_score[:, 0]), dtype=np.float64)
        zero = s_y <= 0 if rows.input == "probs" else s_y == -math.inf
        if w64 is not None:
            zero &= w64 > 0
        state.zero_p[y[zero]] = True
    if w64 is None:
        q, dtype = _scaled_probs(rows)
        edges = np.asarray([b / n_bins for b in range(1, n_bins)], dtype=dtype)
        scaled = edges.astype(q.dtype) * 2.0**_QUANTUM  # exact
        _add_unweighted_bins(state, q, y, scaled, c, n_bins)
        return
    p = to_numpy(rows.probs)
    edges = np.asarray([b / n_bins for b in range(1, n_bins)], dtype=p.dtype)
    bins = np.searchsorted(edges, p, side="left")  # edges strictly below p
    bin_keys = np.arange(c, dtype=np.int64)[None, :] * n_bins + bins
    hit_keys = bin_keys[np.arange(y.size), y]
    state.hits.add(hit_keys, w64)
    # q(p): p rounded to a multiple of 2**-60, an exact integer in float64
    q = np.multiply(p, 2.0**_QUANTUM, dtype=np.float64)  # exact: a power of two
    np.rint(q, out=q)
    # fl(w * q(p)) summed exactly, in blocks of rows (bounded temporaries)
    step = max(1, _WEIGHTED_BLOCK // c)
    for a in range(0, y.size, step):
        rows_ab = slice(a, a + step)
        terms = w64[rows_ab, None] * q[rows_ab]  # each rounded once, alike
        ids, ints, base = group_sums(bin_keys[rows_ab], terms)
        state.psum.add_ints(ids, ints, base - _QUANTUM)


_DENSE_ROWS = 1 << 22
"""Rows per column sum of `_add_unweighted_bins`: ``2**22`` halves below ``2**31``
keep the float64 sums exact."""


def _scaled_probs(rows: Any) -> tuple[np.ndarray, np.dtype[Any]]:
    """``(p * 2**60, dtype)``: the batch's `probs` scaled by a power of two,
    exactly, in a fresh NumPy array of our own (float32, or float64 for any other
    dtype), and the dtype of `probs` (that of the bin edges).

    For NumPy float32 or float64 logits the scaling is folded into the softmax's
    division, ``e / (s 2**-60)``, which is ``(e / s) 2**60`` bit for bit (both
    correctly rounded quotients of the same real number scaled by a power of two;
    where ``e / s`` would be subnormal both round to 0 under `_QUANTUM`'s
    rounding, below ``2**-66``): one pass over the batch instead of two, and the
    probabilities are not kept.  Else `probs`, then the scaling.
    """
    z = rows.z
    if (
        rows.input == "logits"
        and isinstance(z, np.ndarray)
        and z.dtype in (np.float32, np.float64)
    ):
        _, e, s = rows._softmax_parts
        return np.divide(e, (s * s.dtype.type(2.0**-_QUANTUM))[:, None]), z.dtype
    p = to_numpy(rows.probs)
    dtype = p.dtype
    if p.dtype != np.float32:  # float64 (float16 would overflow at 2**60)
        p = p.astype(np.float64, copy=False)
    return p * p.dtype.type(2.0**_QUANTUM), dtype  # exact: a power of two


def _add_unweighted_bins(
    state: _State, q: np.ndarray, y: np.ndarray, edges: np.ndarray, c: int, n_bins: int
) -> None:
    """The calibration sums of an unweighted batch of scaled probabilities ``q =
    p 2**60`` (n, C; `_scaled_probs`, overwritten here) binned at the scaled bin
    ``edges`` (``e_b 2**60``, exact: the same bins as ``p`` at ``e_b``): per class
    and bin, the hits and the sum of ``q(p)``, into the int64 counters.

    ``q(p) = rint(p 2**60)`` is an integer, exact in ``p``'s dtype (a scaling by a
    power of two, then a rounding to an integer that the dtype holds), split into
    30-bit halves whose column sums are exact in float64.  The per-class sums over
    every bin come from these column sums; the few probabilities above the first
    edge (fewer than ``n_bins`` a row, as a row sums to 1) are binned one by one,
    and bin 0 gets the rest: the same sums as binning every probability.
    """
    n = y.size
    q_y = q[np.arange(n), y]
    hit_keys = y * n_bins + np.searchsorted(edges, q_y, side="left")
    state.counter("hits", c * n_bins)[:] += np.bincount(hit_keys, minlength=c * n_bins)
    for a in range(0, n, _DENSE_ROWS):
        _add_quantized_sums(state, q[a : a + _DENSE_ROWS], edges, c, n_bins)


def _add_quantized_sums(
    state: _State, q: np.ndarray, edges: np.ndarray, c: int, n_bins: int
) -> None:
    """`_add_unweighted_bins`' sums of ``q(p)`` for at most `_DENSE_ROWS` rows of
    scaled probabilities ``q`` (overwritten): the probabilities above the first
    edge one by one, the rest (bin 0) by column sums, `_sparse_column_sums` or
    their 30-bit halves."""
    hi_acc = state.counter("psum_hi", c * n_bins)
    lo_acc = state.counter("psum_lo", c * n_bins)
    first = np.arange(c, dtype=np.int64) * n_bins  # bin 0 of each class
    flat = q.reshape(-1)
    at = values = tiny = None
    if edges.size:  # the probabilities above the first edge (then 0 in ``q``)
        edge = edges[0]
        if q.dtype == np.float32 and not state.dense_skip and edge > _TINY:
            # one scan finds them and those `_sparse_column_sums` sums one by one
            odd = np.flatnonzero((flat < np.float32(_TINY)) | (flat > edge))
            picked = flat[odd]
            above = picked > edge
            at, values = odd[above], picked[above]
            below = ~above
            tiny = odd[below], picked[below]
        else:
            at = np.flatnonzero(flat > edge)
            values = flat[at]
    top = float(edges[0]) if edges.size else 2.0**_QUANTUM  # bin 0's largest
    if not _sparse_column_sums(state, q, top, at, first, hi_acc, lo_acc, tiny):
        if at is not None:
            flat[at] = 0
        half = q.dtype.type(2.0**-30)
        np.rint(q, out=q)
        hi = q * half
        np.floor(hi, out=hi)
        hi_acc[first] += np.sum(hi, axis=0, dtype=np.float64).astype(np.int64)
        hi *= q.dtype.type(2.0**30)  # exact
        q -= hi  # the low half, exact
        lo_acc[first] += np.sum(q, axis=0, dtype=np.float64).astype(np.int64)
    if at is None or values is None or at.size == 0:
        return
    keys = (at % c) * n_bins + np.searchsorted(edges, values, side="left")
    q64 = np.rint(values.astype(np.float64))
    hi64 = np.floor(q64 * 2.0**-30)
    lo64 = q64 - hi64 * 2.0**30
    size = c * n_bins
    hi_acc += np.bincount(keys, weights=hi64, minlength=size).astype(np.int64)
    lo_acc += np.bincount(keys, weights=lo64, minlength=size).astype(np.int64)


_TINY = 2.0**36
"""Scaled float32 probabilities from this one up are integers (their unit in the
last place is at least ``2**13``): `_sparse_column_sums` sums them in float64."""

_DENSE_SKIP = 16
"""Batches that go straight to the 30-bit halves after one with too many
probabilities below `_TINY` (the result is the same either way)."""


def _sparse_column_sums(
    state: _State,
    q: np.ndarray,
    top: float,
    above: np.ndarray | None,
    first: np.ndarray,
    hi_acc: np.ndarray,
    lo_acc: np.ndarray,
    below: tuple[np.ndarray, np.ndarray] | None = None,
) -> bool:
    """The column sums of ``rint(q)`` (float32) into bin 0's counters, the
    entries ``above`` the first edge (flat indices) left out (set to 0), the rest
    being at most ``top``, when few entries are below `_TINY`; ``False`` (nothing
    added, ``q`` unchanged) otherwise.

    The entries below `_TINY` are rounded and summed one by one (and set to 0 in
    ``q``); the others are integers, multiples of ``2**13``, so the float64 sum of
    ``2**66 / top`` rows of them never exceeds ``2**53`` units of ``2**13``: one
    exact float64 column sum of the whole batch (two passes fewer than the
    halves, and no rounding pass).  ``below``: the entries below `_TINY` (flat
    indices, ascending, and their values) when the caller found them (with
    ``above``, in one scan)."""
    if q.dtype != np.float32:
        return False
    if state.dense_skip:
        state.dense_skip -= 1
        return False
    flat = q.reshape(-1)
    if below is None:
        tiny = np.flatnonzero(flat < np.float32(_TINY))
    else:
        tiny, values = below
    if tiny.size > min(flat.size // 32, 1 << 22):  # bincount sums below 2**52
        state.dense_skip = _DENSE_SKIP
        return False
    if below is None:
        values = flat[tiny]
    flat[tiny] = 0
    if above is not None:
        flat[above] = 0
    step = max(1, int(2.0**66 // top))
    for a in range(0, q.shape[0], step):
        sums = np.sum(q[a : a + step], axis=0, dtype=np.float64)  # exact
        hi = np.floor(sums * 2.0**-30)
        hi_acc[first] += hi.astype(np.int64)
        lo_acc[first] += (sums - hi * 2.0**30).astype(np.int64)
    if tiny.size:
        c = first.size
        q64 = np.rint(values.astype(np.float64))  # below 2**36
        hi64 = np.floor(q64 * 2.0**-30)
        lo64 = q64 - hi64 * 2.0**30
        cls = tiny % c
        hi_acc[first] += np.bincount(cls, weights=hi64, minlength=c).astype(np.int64)
        lo_acc[first] += np.bincount(cls, weights=lo64, minlength=c).astype(np.int64)
    return True


@dataclass(frozen=True, eq=False)
class Reliability(_Batches):
    """Streaming reliability diagram of the top-label confidence: per equal-width
    bin (the bins of `arrayloss.metrics.ece`), the exact ``sum(w)``,
    ``sum(w * hit)`` and ``sum(w * confidence)``.

    `result` gives the bins' weight, accuracy and mean confidence, and the ECE
    (equal to ``ECE(n_bins)``'s, from the same exact sums).
    """

    n_bins: int = 15
    count: int = field(default=0, kw_only=True)
    n_classes: int | None = field(default=None, kw_only=True)
    _sums: tuple[ExactVector, ExactVector, ExactVector] | None = field(
        default=None, kw_only=True, repr=False
    )

    def __post_init__(self) -> None:
        check_int("n_bins", self.n_bins, low=1)

    _name = "reliability diagram"

    def _add(self, rows: Any) -> Reliability:
        n_classes = _check_classes(self, self.n_classes, rows.n_classes)
        conf = to_numpy(rows.confidence)
        hit = np.asarray(to_numpy(rows.hit), dtype=np.float64)
        w = rows.batch.weights
        w64 = None if w is None else np.asarray(to_numpy(w), dtype=np.float64)
        edges = np.asarray(
            [b / self.n_bins for b in range(1, self.n_bins)], dtype=conf.dtype
        )
        bins = np.searchsorted(edges, conf, side="left")
        sums = self._sums or tuple(ExactVector(self.n_bins) for _ in range(3))
        weight, hits, confs = (v.copy() for v in sums)
        if w64 is None:
            weight.add_counts(bins)
        else:
            weight.add(bins, w64)
        hits.add(bins, hit, w64)
        confs.add(bins, np.asarray(conf, dtype=np.float64), w64)
        return Reliability(
            self.n_bins, count=self.count + rows.n, n_classes=n_classes,
            _sums=(weight, hits, confs),
        )  # fmt: skip

    def merge(self, other: Reliability) -> Reliability:
        """Both tallies together (exact; order does not matter)."""
        if type(other) is not type(self) or other.n_bins != self.n_bins:
            msg = f"cannot merge {self!r} with {other!r}"
            raise ValueError(msg)
        n_classes = _merged_classes(self, other)
        if self._sums is None or other._sums is None:
            return self if other._sums is None else other
        sums = tuple(a.merged(b) for a, b in zip(self._sums, other._sums, strict=True))
        return Reliability(
            self.n_bins,
            count=self.count + other.count,
            n_classes=n_classes,
            _sums=(sums[0], sums[1], sums[2]),
        )

    def result(self) -> dict[str, Any]:
        """``{"edges", "weight", "accuracy", "confidence", "ece"}``: the ``n_bins + 1``
        bin edges, each bin's share of the weight, and its accuracy and mean
        confidence (``None`` for an empty bin)."""
        if self._sums is None:
            msg = "the reliability diagram needs at least one sample (got 0)"
            raise ValueError(msg)
        weight, hits, confs = self._sums
        w = [weight.fraction(b) for b in range(self.n_bins)]
        a = [hits.fraction(b) for b in range(self.n_bins)]
        c = [confs.fraction(b) for b in range(self.n_bins)]
        total = sum(w, Fraction(0))
        if total == 0:
            msg = "the reliability diagram needs a sample with non-zero weight"
            raise ValueError(msg)
        return {
            "edges": [b / self.n_bins for b in range(self.n_bins + 1)],
            "weight": [float(x / total) for x in w],
            "accuracy": [
                None if x == 0 else float(y / x) for x, y in zip(w, a, strict=True)
            ],
            "confidence": [
                None if x == 0 else float(y / x) for x, y in zip(w, c, strict=True)
            ],
            "ece": float(
                sum((abs(y - z) for y, z in zip(a, c, strict=True)), Fraction(0))
                / total
            ),
        }
