"""One validated batch of a metric and the ``update`` every streaming tally shares.

`_prepare` validates a caller's batch the way the losses do
(`arrayloss._api.prepare`), checks the scores as ``input`` requires
(`first_bad_row`) and gives a `_Rows`: the ``(n, C)`` scores, labels and weights
and the per-sample quantities the metrics share, each computed once.  `_Batches`
is the ``update(scores, labels, /, *, weights, axis, input)`` of the tallies of
`arrayloss.metrics` and `arrayloss._classwise`, which both import this module
(and not each other's internals).
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cached_property
from typing import Any, TypeVar

import numpy as np
from array_api_compat import is_cupy_namespace, is_dask_namespace, is_numpy_namespace

from . import _xp
from ._api import Batch, Targets, dask_checked, prepare
from ._exact import exact_dot, exact_sum
from ._typing import Array, Namespace
from ._validation import check_choice
from ._xp import to_numpy

__all__ = ["INPUTS", "first_bad_row", "prob_tolerance"]

INPUTS = ("logits", "probs", "logprobs")
"""What ``scores`` may hold."""

_T = TypeVar("_T", bound="_Batches")


def prob_tolerance(n_classes: int, dtype: Any, *, xp: Namespace) -> float:
    """How far a row of probabilities may sum from 1: ``max(1e-4, 4·C·eps)``."""
    return max(1e-4, 4 * n_classes * _xp.finfo_eps(dtype, xp=xp))


def first_bad_row(
    z: Array, input: str, *, xp: Namespace, stored: Any = None
) -> tuple[int, str] | None:
    """The first row of ``(n, C)`` scores that ``input`` does not allow, and why.

    Returns ``None`` when every row is valid.  Eager arrays only (it reads values).
    ``stored``: the dtype the scores were rounded to before ``z`` (float16 computed
    in float64), whose `prob_tolerance` applies; default ``z.dtype``.
    """
    if z.shape[0] == 0:
        return None
    finite = bool(xp.all(xp.isfinite(z)))  # one pass; rows are located only on failure
    if not finite:
        nan = xp.any(xp.isnan(z), axis=1)
        if input == "logprobs":  # log(0) = -inf is a valid log-probability
            bad = nan | xp.any(z == xp.inf, axis=1)
        else:
            bad = nan | xp.any(xp.isinf(z), axis=1)
        if bool(xp.any(bad)):
            i = _first_true(bad, xp=xp)
            what = "NaN" if bool(nan[i]) else "an infinite value"
            return i, f"contains {what}"
    if input == "logits":
        return None
    if input == "probs":
        negative = xp.any(z < 0, axis=1)
        if bool(xp.any(negative)):
            i = _first_true(negative, xp=xp)
            low = _xp.read_float(xp.min(z[i, :]))
            return i, f"has a negative probability ({low:.6g})"
    p = z if input == "probs" else xp.exp(z)
    tol = prob_tolerance(int(z.shape[1]), z.dtype if stored is None else stored, xp=xp)
    total = xp.sum(p, axis=1)
    off = xp.abs(total - 1) > tol
    if bool(xp.any(off)):
        i = _first_true(off, xp=xp)
        what = "probabilities" if input == "probs" else "exp(log-probabilities)"
        got = _xp.read_float(total[i])
        return i, f"{what} sum to {got:.6g}, not 1 (tolerance {tol:.1g})"
    return None


def _in_place(xp: Namespace) -> bool:
    """Whether ``out=`` works (NumPy, CuPy): it saves a fresh (n, C) temporary."""
    return bool(is_numpy_namespace(xp) or is_cupy_namespace(xp))


def _count_rows(mask: Array, *, xp: Namespace) -> Array:
    """``count_nonzero(mask, axis=1)`` as the default integer dtype.

    On NumPy, summing the bytes of the boolean array is 4x faster than
    ``count_nonzero``, which casts each element to an integer first.
    """
    if is_numpy_namespace(xp) and mask.shape[1] < 2**16:
        c = int(mask.shape[1])
        if c % 8 == 0 and c < 2048 and mask.flags.c_contiguous:
            # eight flags a word: each byte of a row's word sum counts at most
            # c / 8 < 256 flags, and the eight bytes of the sum add up to the count
            words = np.add.reduce(mask.view(np.uint64), axis=1)
            lanes = words.view(np.uint8).reshape(-1, 8)
            return np.add.reduce(lanes, axis=1, dtype=np.int64)
        counts = np.add.reduce(mask.view(np.uint8), axis=1, dtype=np.uint16)
        return counts.astype(np.int64)
    return xp.count_nonzero(mask, axis=1)


def _first_true(mask: Array, *, xp: Namespace) -> int:
    return int(xp.argmax(xp.astype(mask, xp.int8)))


class _Rows:
    """One validated ``(n, C)`` batch and the per-sample quantities metrics share.

    Each quantity is computed once, on first use, in the scores' namespace and
    dtype, so a pass that wants accuracy, top-k accuracy, NLL and ECE takes one
    max, one exp and one rank count over the scores.
    """

    def __init__(
        self,
        z: Array,
        index: Array,
        w: Array | None,
        *,
        input: str,
        xp: Namespace,
        eager: bool,
    ) -> None:
        """Rows already validated: ``(n, C)`` scores, ``(n,)`` class indices and
        weights (in any floating dtype); `_prepare` builds them from a caller's
        batch."""
        n, n_classes = int(z.shape[0]), int(z.shape[1])
        targets = Targets(
            index=index, soft=None, n_classes=n_classes, dtype=z.dtype, xp=xp
        )
        self.batch = Batch(
            xp=xp, z=z, targets=targets, weights=w, batch_shape=(n,), axis=1, ndim=2,
            eager=eager,
        )  # fmt: skip
        self.z = z
        self.index: Array = index
        self.input = input
        self.xp = xp
        self.eager = eager
        self.n = n
        self.n_classes = n_classes

    @cached_property
    def _cols(self) -> Array:
        xp = self.xp
        cols = xp.arange(self.n_classes, device=_xp.xp_device(self.z))
        return xp.astype(cols, self.index.dtype)[None, :]

    @cached_property
    def _label_score(self) -> Array:
        return _xp.take_along_axis(self.z, self.index[:, None], xp=self.xp, axis=1)

    @cached_property
    def _ranks(self) -> tuple[Array, Array]:
        """(rank with ties to the higher index, arg-max-first hit)."""
        xp, z, s_y = self.xp, self.z, self._label_score
        above = _count_rows(z > s_y, xp=xp)
        at_or_above = _count_rows(z >= s_y, xp=xp)
        if self.eager and not bool(xp.any(at_or_above != above + 1)):
            return above, above == 0  # no ties with the label's score
        before = _count_rows((z == s_y) & (self._cols < self.index[:, None]), xp=xp)
        after = at_or_above - above - 1 - before
        return above + after, (above == 0) & (before == 0)

    @property
    def hit(self) -> Array:
        """Whether the arg-max (first index on ties) is the label, shape ``(n,)``."""
        return self._ranks[1]

    @cached_property
    def predicted(self) -> Array:
        """The arg-max class (first index on ties), shape ``(n,)``."""
        return self.xp.argmax(self.z, axis=1)

    def top_k_hit(self, k: int) -> Array:
        """Whether fewer than ``k`` classes rank above the label (ties: higher index)."""
        return self._ranks[0] < k

    @cached_property
    def _softmax_parts(self) -> tuple[Array, Array, Array]:
        """For logits: the row max ``m`` (at `predicted`, which `_rest` needs too),
        ``e = exp(z - m)`` and ``s = sum(e)``."""
        xp = self.xp
        m = _xp.row_max_at(self.z, self.predicted, xp=xp)
        e = self.z - m  # a fresh array of our own: exp may overwrite it
        e = xp.exp(e, out=e) if _in_place(xp) else xp.exp(e)
        return m, e, xp.sum(e, axis=1)

    @cached_property
    def _rest(self) -> Array:
        """For logits: ``sum(e)`` without the first maximum's ``exp(0) = 1``, shape
        ``(n,)``: ``s - 1`` with all its digits where ``s`` rounds to 1."""
        xp = self.xp
        _, e, _ = self._softmax_parts
        top = self.predicted  # the first maximum (one arg-max pass for both)
        return _xp.sum_leaving_out(e, top, xp=xp, in_place=_in_place(xp) and self.eager)

    def _label_minus_one(self) -> Array:
        """For logits: ``p_y - 1 = ((e_y - 1) - rest) / s`` without cancellation
        where ``p_y`` is near 1, shape ``(n,)``."""
        _, e, s = self._softmax_parts
        e_y = _xp.take_along_axis(e, self.index[:, None], xp=self.xp, axis=1)[:, 0]
        return ((e_y - 1) - self._rest) / s

    @cached_property
    def _tiny(self) -> float:
        return float(self.xp.finfo(self.z.dtype).smallest_normal)

    @cached_property
    def nll(self) -> Array:
        """``-log p_y``, shape ``(n,)``."""
        xp = self.xp
        s_y = self._label_score[:, 0]
        if self.input == "logits":
            m, _, _ = self._softmax_parts
            # as the cross-entropy kernel: log s = log1p(rest), so that a confident
            # sample's nll (about rest << eps) keeps its digits
            return xp.log1p(self._rest) - (s_y - m[:, 0])
        if self.input == "probs":
            return -xp.log(xp.clip(s_y, min=self._tiny))
        return -xp.clip(s_y, min=math.log(self._tiny))

    @cached_property
    def probs(self) -> Array:
        """The predicted distribution, shape ``(n, C)``."""
        xp = self.xp
        if self.input == "logits":
            _, e, s = self._softmax_parts
            return e / s[:, None]
        return self.z if self.input == "probs" else xp.exp(self.z)

    @cached_property
    def confidence(self) -> Array:
        """The top-label probability ``max_j p_j``, shape ``(n,)``."""
        xp = self.xp
        if self.input == "logits":
            return 1 / self._softmax_parts[2]  # exp(m - m) / s
        top = xp.max(self.z, axis=1)
        return top if self.input == "probs" else xp.exp(top)

    @cached_property
    def brier(self) -> Array:
        """``sum_j (p_j - [j == y])**2``, shape ``(n,)``."""
        xp = self.xp
        if _in_place(xp) and self.eager:
            # the same values as below, in one fresh array: `where` and its (n, C)
            # mask and temporaries cost ten times the division
            d = self._fresh_probs()
            rows = xp.arange(self.n, device=_xp.xp_device(d))
            if self.input == "logits":
                d[rows, self.index] = self._label_minus_one()
            else:
                d[rows, self.index] -= 1
            d *= d
            return xp.sum(d, axis=1)
        p = self.probs
        at_label = self._cols == self.index[:, None]
        if self.input == "logits":
            d = xp.where(at_label, self._label_minus_one()[:, None], p)
        else:
            d = xp.where(at_label, p - 1, p)
        return xp.sum(d * d, axis=1)

    def _fresh_probs(self) -> Array:
        """`probs` (the same values) in a new array of our own."""
        if self.input == "logits":
            _, e, s = self._softmax_parts
            return e / s[:, None]
        return self.probs * 1  # exact: a copy, never the caller's scores

    @cached_property
    def loss_logits(self) -> Array:
        """Logits whose softmax is the predicted distribution (for the losses)."""
        xp = self.xp
        if self.input == "logits":
            return self.z
        if self.input == "probs":
            return xp.log(xp.clip(self.z, min=self._tiny))
        return xp.clip(self.z, min=math.log(self._tiny))

    def exact_sums(self, terms: Array) -> tuple[Fraction, Fraction]:
        """`_exact_sums` of per-sample ``terms`` with these weights, computed once
        per array (``nll`` is also the sum of plain cross-entropy)."""
        memo: dict[int, Any] = self.__dict__.setdefault("_exact_memo", {})
        hit = memo.get(id(terms))
        if hit is None or hit[0] is not terms:
            hit = memo[id(terms)] = (
                terms,
                _exact_sums(to_numpy(terms), self.host_weights),
            )
        return hit[1]

    @cached_property
    def host_weights(self) -> tuple[np.ndarray | None, int]:
        """The weights on the host in float64, scaled by a power of two ``2**-e``
        (exactly) so that the largest lies in ``[0.5, 1)``, and ``e``.

        Products and sums of the scaled weights neither overflow (weights of 1e308)
        nor lose bits to subnormals; ``e`` puts the scale back, exactly, in the
        fractions of the streaming tallies.
        """
        w = self.batch.weights
        if w is None:
            return None, 0
        host = np.asarray(to_numpy(w), dtype=np.float64)
        top = float(np.max(host)) if host.size else 0.0
        if top == 0:
            return host, 0
        e = math.frexp(top)[1]
        return np.ldexp(host, -e), e


def _prepare(
    name: str,
    scores: Array,
    labels: Array,
    weights: Array | None,
    *,
    axis: int,
    input: str,
) -> _Rows:
    """Validate a batch the way the losses do (`arrayloss._api.prepare`) and check
    the scores as ``input`` requires."""
    check_choice("input", input, INPUTS)

    def check_scores(z: Array, xp: Namespace, start: int = 0) -> None:
        bad = first_bad_row(z, input, xp=xp)
        if bad is not None:
            msg = f"`scores` row {start + bad[0]} {bad[1]} (input={input!r})"
            raise ValueError(msg)

    batch = prepare(
        scores, labels, weights, axis=axis, name=name, arg="scores",
        soft_labels=False, check_scores=check_scores,
    )  # fmt: skip
    z = batch.z
    if is_dask_namespace(batch.xp):  # the checks run in the blocks, when computed
        z = dask_checked(z, batch.targets, batch.weights, check_scores)
    return _Rows(
        z, batch.targets.index, batch.weights,
        input=input, xp=batch.xp, eager=batch.eager,
    )  # fmt: skip


def _exact_sums(
    terms: np.ndarray, scaled: tuple[np.ndarray | None, int]
) -> tuple[Fraction, Fraction]:
    """``sum(w * t)`` and ``sum(w)`` of one batch, exactly, as fractions.

    ``scaled`` is `_Rows.host_weights`: the weights times ``2**-e``, and ``e``.
    Exact sums (`arrayloss._exact`) make a streamed total independent of how the
    rows are cut into batches: a float64 sum rounds differently for each grouping.
    A non-finite term raises `OverflowError` (infinity) or `ValueError` (NaN).
    """
    w, e = scaled
    if getattr(terms, "dtype", None) == np.bool_:  # an indicator: count or select
        hit = np.asarray(terms)
        if w is None:
            return Fraction(int(np.count_nonzero(hit))), Fraction(hit.shape[0])
        scale = Fraction(2) ** e
        return exact_sum(w[hit]) * scale, exact_sum(w) * scale
    t = np.asarray(terms, dtype=np.float64)
    if not np.isfinite(t).all():
        bad = t[~np.isfinite(t)] if w is None else t[~np.isfinite(t) & (w != 0)]
        if bad.size:
            if np.isnan(bad).any():
                msg = "cannot sum NaN terms exactly"
                raise ValueError(msg)
            msg = "cannot sum infinite terms exactly"
            raise OverflowError(msg)
        t = np.where(np.isfinite(t), t, 0.0)  # only where the weight is zero
    if w is None:
        return exact_sum(t), Fraction(t.shape[0])
    scale = Fraction(2) ** e
    return exact_dot(w, t) * scale, exact_sum(w) * scale


def _check_same(a: object, b: object) -> None:
    if type(a) is not type(b):
        msg = f"cannot merge a {type(a).__name__} with a {type(b).__name__}"
        raise TypeError(msg)


def _check_classes(tally: object, known: int | None, got: int) -> int:
    """``got``, the class count of a batch for ``tally``, whose batches so far had
    ``known`` classes (``None``: none yet); another count is a `ValueError` (a
    mean over the rows of two problems is no metric of either)."""
    if known is not None and got != known:
        msg = f"a batch of {got} classes in a {type(tally).__name__} of {known} classes"
        raise ValueError(msg)
    return got


def _merged_classes(a: Any, b: Any) -> int | None:
    """The class count of the merge of tallies ``a`` and ``b`` (of one type),
    either's when the other has none yet, else a `ValueError` when they differ."""
    mine: int | None = a.n_classes
    theirs: int | None = b.n_classes
    if mine is not None and theirs is not None and mine != theirs:
        msg = (
            f"cannot merge a {type(a).__name__} of {mine} classes with one of {theirs}"
        )
        raise ValueError(msg)
    return mine if theirs is None else theirs


class _Batches:
    """``update``: a batch from any array library, validated as the metrics do."""

    _name = "tally"

    def _add(self: _T, rows: _Rows) -> _T:  # pragma: no cover - abstract
        raise NotImplementedError

    def update(
        self: _T,
        scores: Array,
        labels: Array,
        /,
        *,
        weights: Array | None = None,
        axis: int = -1,
        input: str = "logits",
    ) -> _T:
        """A new tally with the batch added (arguments as `arrayloss.metrics.accuracy`)."""
        rows = _prepare(self._name, scores, labels, weights, axis=axis, input=input)
        return self._add(rows)
