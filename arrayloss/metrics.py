r"""Classification metrics for any array-API array, and exact streaming tallies.

Two ways to compute each metric:

* **In memory**: `accuracy`, `top_k_accuracy`, `nll`, `brier`, `ece`, `mce` and
  `rmsce` take ``scores`` of shape ``(..., C)`` and integer ``labels`` of the batch
  shape from any array-API library and return a 0-d array in the scores'
  namespace, device and floating dtype, like the losses.
* **Streaming**: `Accuracy`, `TopKAccuracy`, `NLL`, `Brier`, `ECE`, `MCE` and
  `RMSCE` are frozen dataclasses holding exact sufficient statistics (as are
  `ClassReport`, the per-class report and confusion matrix, and `Reliability`,
  the reliability diagram, of ``arrayloss eval``'s report).
  ``tally.update(scores, labels)`` returns a new tally with a batch added,
  ``a.merge(b)`` combines two tallies, and ``tally.result()`` gives the metric as
  a Python float.  Sums over samples are taken
  in float64 within a batch and kept as exact fractions across batches, so a chunked
  pass gives the in-memory result (float64: to about 1e-15 relative) whatever the
  chunk size, and merging is associative and commutative.

``input`` says what the scores are: ``"logits"`` (default; the predicted distribution
is ``softmax(scores)``), ``"probs"`` (rows of probabilities, used as given) or
``"logprobs"`` (log-probabilities; ``-inf`` allowed for a zero probability).
Probabilities are checked: finite, non-negative, each row summing to 1 within
``max(1e-4, 4·C·eps)``.  Where a logarithm of a probability is needed, a zero
probability is read as the smallest normal number of the dtype (``log`` of it is
about -708 in float64, -87.3 in float32), so every value is finite.

Conventions, chosen to agree with scikit-learn 1.9:

* `accuracy`: the prediction is the arg-max, the *first* index on ties, as
  ``accuracy_score(labels, scores.argmax(axis=1))``.
* `top_k_accuracy`: a sample counts as correct when fewer than ``k`` classes rank
  above its label, class ``j`` ranking above the label ``y`` when ``s_j > s_y``, or
  when ``s_j == s_y`` and ``j > y`` (ties go to the *higher* class index).  This is
  exactly ``top_k_accuracy_score(labels, scores, k=k, labels=range(C))``, which
  takes the last ``k`` entries of a stable ``argsort``.  Because of the opposite tie
  rules, ``top_k_accuracy(k=1)`` and `accuracy` differ on rows whose top score is
  tied; both match their scikit-learn counterpart.
* `nll`: ``-log p_y``, exact from logits; from probabilities ``p_y`` is first
  clipped to ``[eps, 1]`` with ``eps`` the dtype's machine epsilon by default, as
  ``log_loss`` (which clips to ``[eps, 1 - eps]``).  The streaming `NLL` tally reads
  a zero as the smallest normal number instead (the ``eps=`` of ``arrayloss eval``
  is applied by its engine).
* `brier`: the multiclass Brier score ``sum_j (p_j - [j == y])**2``, in ``[0, 2]``,
  never halved; ``brier_score_loss(..., scale_by_half=False)``.
* `ece`: expected calibration error with the top-label confidence, see `ece`;
  `mce` and `rmsce`: the maximum and root-mean-square of the same bins' gaps.

All weighted means are ``sum(w * m) / sum(w)``; a zero weight removes a sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, TypeVar

import numpy as np

from . import _xp
from ._api import no_weight_message, nonzero_count, weighted_mean
from ._doc import filler
from ._exact import exact_dots_by_group, exact_sums_by_group
from ._metric_rows import (
    INPUTS,
    _Batches,
    _check_classes,
    _check_same,
    _merged_classes,
    _prepare,
    _Rows,
)
from ._typing import Array, Namespace
from ._validation import check_choice, check_int
from ._xp import to_numpy

__all__ = [
    "ECE",
    "INPUTS",
    "MCE",
    "METRICS",
    "NLL",
    "RMSCE",
    "STRATEGIES",
    "Accuracy",
    "Brier",
    "ClassReport",
    "Reliability",
    "TopKAccuracy",
    "accuracy",
    "brier",
    "check_eps",
    "ece",
    "mce",
    "nll",
    "rmsce",
    "top_k_accuracy",
]


STRATEGIES = ("uniform", "quantile")
"""ECE binnings: equal-width and equal-mass."""

_M = TypeVar("_M", bound="_MeanTally")


def _mean(terms: Array, rows: _Rows) -> Array:
    """Weighted mean ``sum(w * t) / sum(w)`` over samples, as a 0-d array."""
    return weighted_mean(terms, rows.batch, subject="a metric")


# --------------------------------------------------------------------------- #
# In-memory metrics
# --------------------------------------------------------------------------- #

_fill_doc = filler(
    {
        "metric_arrays": """\
scores : array of shape (..., C)
    Logits, probabilities or log-probabilities (see ``input``); the class axis
    is ``axis``.
labels : integer array of the batch shape
    Class indices in ``[0, C)``.
weights : array of the batch shape, optional
    Non-negative sample weights; the result is ``sum(w * m) / sum(w)``.
axis : int
    The class axis of ``scores``.
input : {"logits", "probs", "logprobs"}
    What ``scores`` holds.""",
        "metric_returns": """\
Returns
-------
array
    0-d, in the floating dtype and on the device of ``scores``.""",
        "metric_examples": """\
Examples
--------
>>> import numpy as np
>>> from arrayloss import metrics""",
        "metric_closing": "%(metric_returns)s\n\n%(metric_examples)s",
        "metric_sections": "Parameters\n----------\n%(metric_arrays)s\n\n%(metric_closing)s",
        "calibration_parameters": """\
Parameters
----------
n_bins : int >= 1
    Number of bins.
strategy : {"uniform", "quantile"}
    Equal-width or equal-mass bins.
%(metric_arrays)s

%(metric_returns)s""",
        "calibration_examples": """\
%(metric_examples)s
>>> p = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])
>>> y = np.array([0, 1, 1, 0])""",
    }
)
"""Fill a metric's docstring from `arrayloss._doc.DOCS` and the metrics' blocks:
``metric_arrays`` (``scores`` to ``input``), ``metric_returns``,
``metric_examples``, ``metric_closing`` (those two), ``metric_sections`` (the
``Parameters`` header to the examples, for a metric without options of its own),
and the calibration errors' ``calibration_parameters`` (both sections) and
``calibration_examples``."""


@_fill_doc
def accuracy(
    scores: Array,
    labels: Array,
    /,
    *,
    weights: Array | None = None,
    axis: int = -1,
    input: str = "logits",
) -> Array:
    """Fraction of samples whose arg-max score is the label.

    On ties the first (lowest) index is the prediction, as ``numpy.argmax``; the
    result equals ``sklearn.metrics.accuracy_score(labels, scores.argmax(axis))``.

    %(metric_sections)s
    >>> s = np.array([[2.0, 1.0, 0.1], [0.3, 0.2, 3.0], [1.0, 1.0, 0.0]])
    >>> float(metrics.accuracy(s, np.array([0, 1, 1])))
    0.3333333333333333
    """
    rows = _prepare("accuracy", scores, labels, weights, axis=axis, input=input)
    return _mean(rows.hit, rows)


@_fill_doc
def top_k_accuracy(
    scores: Array,
    labels: Array,
    /,
    *,
    k: int = 5,
    weights: Array | None = None,
    axis: int = -1,
    input: str = "logits",
) -> Array:
    """Fraction of samples whose label is among the ``k`` highest scores.

    A sample counts when fewer than ``k`` classes rank above its label ``y``; class
    ``j`` ranks above ``y`` if ``s_j > s_y``, or if ``s_j == s_y`` and ``j > y``.
    This tie rule (ties go to the higher class index) is scikit-learn's, so the
    result equals ``sklearn.metrics.top_k_accuracy_score(labels, scores, k=k,
    labels=range(C))``.  ``k >= C`` gives 1.  Computed in O(n·C) by counting, without
    sorting.

    Parameters
    ----------
    k : int >= 1
        How many top classes count as a hit.
    %(metric_arrays)s

    %(metric_closing)s
    >>> s = np.array([[2.0, 1.0, 0.1], [0.3, 0.2, 3.0], [1.0, 1.0, 0.0]])
    >>> float(metrics.top_k_accuracy(s, np.array([0, 1, 0]), k=2))
    0.6666666666666666
    """
    k = check_int("k", k, low=1)
    rows = _prepare("top_k_accuracy", scores, labels, weights, axis=axis, input=input)
    return _mean(rows.top_k_hit(k), rows)


@_fill_doc
def nll(
    scores: Array,
    labels: Array,
    /,
    *,
    weights: Array | None = None,
    axis: int = -1,
    input: str = "logits",
    eps: float | None = None,
) -> Array:
    r"""Negative log-likelihood (log loss) of the labels.

    .. math:: \operatorname{nll} = \frac{\sum_i w_i \left(-\log p_{i, y_i}\right)}{\sum_i w_i}

    From logits this is ``logsumexp(s) - s_y``, exact and finite for any finite
    scores (the cross-entropy loss with its default parameters; ``eps`` is not
    used).  From probabilities (or log-probabilities), ``-log p_y`` with ``p_y``
    clipped to ``[eps, 1]`` first, the convention of ``sklearn.metrics.log_loss``
    (which clips to ``[eps, 1 - eps]``, the same to within ``eps`` a sample): at the
    default ``eps`` the result equals ``log_loss`` to rounding.

    Parameters
    ----------
    %(metric_arrays)s
    eps : float in [0, 0.5), optional
        The clipping floor of the probabilities.  ``None`` (default) is the machine
        epsilon of the scores' dtype, ``finfo(dtype).eps``, as scikit-learn's
        ``log_loss`` uses; ``0`` clips nothing, so a zero ``p_y`` gives ``inf``.

    %(metric_closing)s
    >>> s = np.array([[1.0, 2.5, -0.3, 0.7, 3.1]])
    >>> print(f"{float(metrics.nll(s, np.array([2]))):.6f}")
    3.985205
    """
    eps = check_eps(eps)
    rows = _prepare("nll", scores, labels, weights, axis=axis, input=input)
    if input == "logits":
        return _mean(rows.nll, rows)
    xp = rows.xp
    floor = _xp.finfo_eps(rows.z.dtype, xp=xp) if eps is None else eps
    s_y = rows._label_score[:, 0]
    if input == "logprobs":  # -log p_y = -s_y, exactly (-inf for a zero)
        low = math.log(floor) if floor > 0 else -math.inf
        return _mean(-xp.clip(s_y, min=low, max=0.0), rows)
    if floor > 0:
        return _mean(-xp.log(xp.clip(s_y, min=floor, max=1.0)), rows)
    positive = s_y > 0
    safe = xp.where(positive, xp.clip(s_y, max=1.0), xp.ones_like(s_y))
    return _mean(xp.where(positive, -xp.log(safe), xp.inf), rows)


def check_eps(eps: float | None) -> float | None:
    """``eps`` as a float in ``[0, 0.5)`` (or ``None``), else `ValueError`."""
    if eps is None:
        return None
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        msg = f"`eps` must be a number in [0, 0.5) or None (got {eps!r})"
        raise TypeError(msg)
    eps = float(eps)
    if not 0 <= eps < 0.5:
        msg = f"`eps` must be in [0, 0.5) (got {eps!r})"
        raise ValueError(msg)
    return eps


@_fill_doc
def brier(
    scores: Array,
    labels: Array,
    /,
    *,
    weights: Array | None = None,
    axis: int = -1,
    input: str = "logits",
) -> Array:
    r"""Multiclass Brier score.

    .. math:: \operatorname{BS} = \frac{\sum_i w_i \sum_j (p_{ij} - [j = y_i])^2}{\sum_i w_i}

    in ``[0, 2]`` and never halved, also for two classes.  This is
    ``sklearn.metrics.brier_score_loss(labels, p, labels=range(C),
    scale_by_half=False)``.

    %(metric_sections)s
    >>> p = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.2, 0.2, 0.6]])
    >>> print(f"{float(metrics.brier(p, np.array([0, 1, 2]), input='probs')):.4f}")
    0.1467
    """
    rows = _prepare("brier", scores, labels, weights, axis=axis, input=input)
    return _mean(rows.brier, rows)


@_fill_doc
def ece(
    scores: Array,
    labels: Array,
    /,
    *,
    n_bins: int = 15,
    strategy: str = "uniform",
    weights: Array | None = None,
    axis: int = -1,
    input: str = "logits",
) -> Array:
    r"""Expected calibration error of the top-label confidence.

    With ``c_i = max_j p_ij`` the confidence, ``a_i = [argmax_j s_ij = y_i]`` the hit
    (first index on ties, as `accuracy`) and samples grouped into bins ``B_b`` by
    their confidence:

    .. math::

        \operatorname{ECE} = \sum_b \frac{W_b}{W}\,\left|\bar a_b - \bar c_b\right|
        = \frac{1}{W} \sum_b \Bigl|\sum_{i \in B_b} w_i (a_i - c_i)\Bigr|

    (Guo et al. 2017).  Bin ``b`` holds the confidences in ``(e_b, e_{b+1}]``; the
    first bin also holds its lower edge.  In code: a sample's bin is the number of
    interior edges strictly below its confidence, compared in the scores' dtype.

    * ``strategy="uniform"``: equal width, ``e_b = b / n_bins``.
    * ``strategy="quantile"``: equal mass.  The interior edge ``e_b`` is the
      weighted ``b/n_bins`` quantile of the confidences by the inverted CDF, the
      smallest confidence ``c`` with ``sum(w[conf <= c]) >= (b / n_bins) · sum(w)``
      (``numpy.quantile(..., method="inverted_cdf", weights=w)``; unweighted, the
      ``ceil(b·n / n_bins)``-th smallest confidence, computed in exact integers).
      Ties never straddle an edge, so the result does not depend on the order of
      the samples; with many tied confidences some bins are empty and others hold
      more than ``n / n_bins`` samples.

    %(calibration_parameters)s

    References
    ----------
    .. [1] C. Guo, G. Pleiss, Y. Sun and K. Q. Weinberger, "On Calibration of
       Modern Neural Networks", ICML 2017.

    %(calibration_examples)s
    >>> print(f"{float(metrics.ece(p, y, n_bins=5, input='probs')):.4f}")
    0.3000
    """
    return _calibration("ece", scores, labels, n_bins, strategy, weights, axis, input)


@_fill_doc
def mce(
    scores: Array,
    labels: Array,
    /,
    *,
    n_bins: int = 15,
    strategy: str = "uniform",
    weights: Array | None = None,
    axis: int = -1,
    input: str = "logits",
) -> Array:
    r"""Maximum calibration error of the top-label confidence.

    With the confidences, hits and bins of `ece`, ``W_b = sum_{i in B_b} w_i``:

    .. math::

        \operatorname{MCE} = \max_{b:\,W_b > 0} \left|\bar a_b - \bar c_b\right|,
        \qquad \bar a_b - \bar c_b = \frac{1}{W_b}\sum_{i \in B_b} w_i (a_i - c_i)

    the worst gap between accuracy and confidence over the non-empty bins
    (Naeini, Cooper and Hauskrecht 2015).  ``MCE >= RMSCE >= ECE``.

    %(calibration_parameters)s

    References
    ----------
    .. [1] M. P. Naeini, G. F. Cooper and M. Hauskrecht, "Obtaining Well Calibrated
       Probabilities Using Bayesian Binning", AAAI 2015.

    %(calibration_examples)s
    >>> print(f"{float(metrics.mce(p, y, n_bins=5, input='probs')):.4f}")
    0.6000
    """
    return _calibration("mce", scores, labels, n_bins, strategy, weights, axis, input)


@_fill_doc
def rmsce(
    scores: Array,
    labels: Array,
    /,
    *,
    n_bins: int = 15,
    strategy: str = "uniform",
    weights: Array | None = None,
    axis: int = -1,
    input: str = "logits",
) -> Array:
    r"""Root-mean-square calibration error of the top-label confidence.

    With the bins of `ece` and the notation of `mce`:

    .. math::

        \operatorname{RMSCE} = \sqrt{\sum_b \frac{W_b}{W}\,(\bar a_b - \bar c_b)^2}
        = \sqrt{\frac{1}{W}\sum_{b:\,W_b > 0}
          \frac{\bigl(\sum_{i \in B_b} w_i (a_i - c_i)\bigr)^2}{W_b}}

    the bin-weighted quadratic mean of the gaps (Hendrycks, Mazeika and Dietterich
    2019; Nixon et al. 2019), between `ece` (their mean) and `mce` (their maximum).

    %(calibration_parameters)s

    References
    ----------
    .. [1] D. Hendrycks, M. Mazeika and T. Dietterich, "Deep Anomaly Detection with
       Outlier Exposure", ICLR 2019.
    .. [2] J. Nixon, M. Dusenberry, L. Zhang, G. Jerfel and D. Tran, "Measuring
       Calibration in Deep Learning", CVPR Workshops 2019.

    %(calibration_examples)s
    >>> print(f"{float(metrics.rmsce(p, y, n_bins=5, input='probs')):.4f}")
    0.3518
    """
    return _calibration("rmsce", scores, labels, n_bins, strategy, weights, axis, input)


def _calibration(
    kind: str,
    scores: Array,
    labels: Array,
    n_bins: int,
    strategy: str,
    weights: Array | None,
    axis: int,
    input: str,
) -> Array:
    """The in-memory binned calibration error ``kind`` (see `ece`, `mce`, `rmsce`)."""
    n_bins = check_int("n_bins", n_bins, low=1)
    strategy = check_choice("strategy", strategy, STRATEGIES)
    rows = _prepare(kind, scores, labels, weights, axis=axis, input=input)
    if rows.n == 0:
        _mean(rows.confidence, rows)  # raises the no-sample error
    w = rows.batch.w_mean
    return _ece(rows.confidence, rows.hit, w, n_bins, strategy, xp=rows.xp, kind=kind)


def _reduce_bins(
    gaps: Array, weight: Array, total: Array, kind: str, *, xp: Namespace
) -> Array:
    """MCE or RMSCE from per-bin ``sum(w (a - c))``, ``sum(w)`` and their total."""
    nonempty = weight > 0
    safe = xp.where(nonempty, weight, xp.ones_like(weight))
    mean_gap = xp.where(nonempty, gaps / safe, xp.zeros_like(gaps))
    if kind == "mce":
        return xp.max(xp.abs(mean_gap))
    return xp.sqrt(xp.sum(mean_gap * gaps) / total)


def _reduce_fraction_bins(
    gaps: tuple[Fraction, ...],
    weights: tuple[Fraction, ...],
    total: Fraction,
    kind: str,
) -> float:
    """`_reduce_bins` on exact per-bin sums: exact up to one final rounding (and
    the square root's)."""
    pairs = [(g, w) for g, w in zip(gaps, weights, strict=True) if w > 0]
    if kind == "mce":
        return float(max(abs(g) / w for g, w in pairs))
    return math.sqrt(float(sum((g * g / w for g, w in pairs), Fraction(0)) / total))


def _ece(
    conf: Array,
    hit: Array,
    w: Array | None,
    n_bins: int,
    strategy: str,
    *,
    xp: Namespace,
    dtype: Any = None,
    kind: str = "ece",
) -> Array:
    edges = _edges(conf, w, n_bins, strategy, xp=xp)
    gaps, weight = _bin_sums(conf, hit, w, edges, n_bins, xp=xp, dtype=dtype)
    total = xp.sum(weight)
    message = no_weight_message(f"`{kind}`", int(conf.shape[0]))
    lazy = _xp.is_lazy(total)
    if lazy:  # Dask: raises when computed; under `jax.jit`: unchecked
        total = nonzero_count(total, message, xp=xp)
    elif _xp.read_float(total) == 0:
        raise ValueError(message)
    if kind == "ece":
        out = xp.sum(xp.abs(gaps)) / total
    else:
        out = _reduce_bins(gaps, weight, total, kind, xp=xp)
    if lazy:  # every result reads the checked total (MCE's would not): NaN at 0
        out = xp.where(total > 0, out, xp.full_like(out, xp.nan))
    return _xp.as_0d(out, xp=xp)


def _uniform_edges(n_bins: int) -> list[float]:
    return [b / n_bins for b in range(1, n_bins)]


def _edges(
    conf: Array, w: Array | None, n_bins: int, strategy: str, *, xp: Namespace
) -> Array:
    """The ``n_bins - 1`` interior bin edges, in the dtype of ``conf``."""
    device = _xp.xp_device(conf)
    if strategy == "uniform" or n_bins == 1:
        return xp.asarray(_uniform_edges(n_bins), dtype=conf.dtype, device=device)
    n = int(conf.shape[0])
    if w is None:
        # the ceil(b n / B)-th smallest, in exact integer arithmetic
        idx = [(b * n + n_bins - 1) // n_bins - 1 for b in range(1, n_bins)]
        ordered = xp.sort(conf)
        return xp.take(ordered, xp.asarray(idx, device=device))
    order = xp.argsort(conf)
    ordered = xp.take(conf, order)
    cum = xp.cumulative_sum(xp.take(w, order))
    fractions = xp.asarray(
        [b / n_bins for b in range(1, n_bins)], dtype=cum.dtype, device=device
    )
    targets = fractions * cum[-1]
    idx = xp.searchsorted(cum, targets, side="left")
    idx = xp.clip(idx, max=n - 1)
    return xp.take(ordered, idx)


def _bin_sums(
    conf: Array,
    hit: Array,
    w: Array | None,
    edges: Array,
    n_bins: int,
    *,
    xp: Namespace,
    dtype: Any = None,
) -> tuple[Array, Array]:
    """Per-bin ``sum(w * (hit - conf))`` and ``sum(w)``, each of shape ``(n_bins,)``.

    Bins are assigned in the dtype of ``conf``; the sums are taken in ``dtype``
    (default: that of ``conf``; the streaming tally asks for float64).
    """
    bins = xp.count_nonzero(conf[:, None] > edges[None, :], axis=1)
    if dtype is not None:
        conf = xp.astype(conf, dtype)
        w = None if w is None else xp.astype(w, dtype)
    d = xp.astype(hit, conf.dtype) - conf
    ones = xp.ones_like(conf)
    if w is not None:
        d = xp.where(w == 0, xp.zeros_like(d), w * d)
        ones = w
    if n_bins * int(conf.shape[0]) <= 1 << 22:  # one (n_bins, n) pass: few calls
        ids = xp.arange(n_bins, dtype=bins.dtype, device=_xp.xp_device(conf))
        inside = ids[:, None] == bins[None, :]
        zeros = xp.zeros_like(inside, dtype=d.dtype)
        gaps = xp.sum(xp.where(inside, d[None, :], zeros), axis=1)
        return gaps, xp.sum(xp.where(inside, ones[None, :], zeros), axis=1)
    zero = xp.zeros_like(d)
    gaps_list, weight_list = [], []
    for b in range(n_bins):  # n_bins passes over n numbers; no (n_bins, n) temporary
        inside_b = bins == b
        gaps_list.append(xp.sum(xp.where(inside_b, d, zero)))
        weight_list.append(xp.sum(xp.where(inside_b, ones, zero)))
    return xp.stack(gaps_list), xp.stack(weight_list)


# --------------------------------------------------------------------------- #
# Streaming tallies
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _MeanTally(_Batches):
    """Exact ``sum(w * m)``, ``sum(w)`` and sample count of a per-sample metric,
    and the class count of its batches (``None`` before the first: every batch
    needs the same)."""

    total: Fraction = field(default=Fraction(0), kw_only=True)
    weight: Fraction = field(default=Fraction(0), kw_only=True)
    count: int = field(default=0, kw_only=True)
    n_classes: int | None = field(default=None, kw_only=True)

    _name = "metric"

    def _terms(self, rows: _Rows) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def _config(self) -> tuple[Any, ...]:
        return ()

    def _add(self: _M, rows: _Rows) -> _M:
        n_classes = _check_classes(self, self.n_classes, rows.n_classes)
        total, weight = rows.exact_sums(self._terms(rows))
        return replace(
            self,
            total=self.total + total,
            weight=self.weight + weight,
            count=self.count + rows.n,
            n_classes=n_classes,
        )

    def merge(self: _M, other: _M) -> _M:
        """The tally of both batches together (exact; order does not matter)."""
        _check_same(self, other)
        if self._config() != other._config():
            msg = f"cannot merge {self!r} with {other!r}: different settings"
            raise ValueError(msg)
        return replace(
            self,
            total=self.total + other.total,
            weight=self.weight + other.weight,
            count=self.count + other.count,
            n_classes=_merged_classes(self, other),
        )

    def result(self) -> float:
        """The weighted mean, correctly rounded from the exact sums."""
        if self.count == 0 or self.weight == 0:
            raise ValueError(no_weight_message(f"`{self._name}`", self.count))
        return float(self.total / self.weight)


@dataclass(frozen=True)
class Accuracy(_MeanTally):
    """Streaming `accuracy`: ``Accuracy().update(s, y).update(s2, y2).result()``."""

    _name = "accuracy"

    def _terms(self, rows: _Rows) -> Array:
        return rows.hit


@dataclass(frozen=True)
class TopKAccuracy(_MeanTally):
    """Streaming `top_k_accuracy` for one ``k`` (same tie rule)."""

    k: int = 5
    _name = "top_k_accuracy"

    def __post_init__(self) -> None:
        check_int("k", self.k, low=1)

    def _config(self) -> tuple[Any, ...]:
        return (self.k,)

    def _terms(self, rows: _Rows) -> Array:
        return rows.top_k_hit(self.k)


@dataclass(frozen=True)
class NLL(_MeanTally):
    """Streaming `nll`."""

    _name = "nll"

    def _terms(self, rows: _Rows) -> Array:
        return rows.nll


@dataclass(frozen=True)
class Brier(_MeanTally):
    """Streaming `brier`."""

    _name = "brier"

    def _terms(self, rows: _Rows) -> Array:
        return rows.brier


@dataclass(frozen=True)
class ECE(_Batches):
    """Streaming `ece`.

    ``strategy="uniform"`` keeps, per bin, the exact ``sum(w * (hit - conf))`` and
    ``sum(w)``: O(n_bins) memory, however many samples.  ``strategy="quantile"``
    needs the bin edges, which are quantiles of *all* confidences, so it keeps every
    sample's confidence, hit and weight on the host (about 10 bytes a sample
    unweighted, 18 weighted; far less than the scores) and bins them in `result`.
    """

    n_bins: int = 15
    strategy: str = "uniform"
    gaps: tuple[Fraction, ...] = field(default=(), kw_only=True)
    weights: tuple[Fraction, ...] = field(default=(), kw_only=True)
    count: int = field(default=0, kw_only=True)
    n_classes: int | None = field(default=None, kw_only=True)
    samples: tuple[tuple[np.ndarray, np.ndarray, np.ndarray | None], ...] = field(
        default=(), kw_only=True, compare=False, repr=False
    )
    _name = "ece"

    def __post_init__(self) -> None:
        check_int("n_bins", self.n_bins, low=1)
        check_choice("strategy", self.strategy, STRATEGIES)
        if not self.gaps:
            zero = (Fraction(0),) * self.n_bins
            object.__setattr__(self, "gaps", zero)
            object.__setattr__(self, "weights", zero)

    def _add(self, rows: _Rows) -> ECE:
        n_classes = _check_classes(self, self.n_classes, rows.n_classes)
        conf = to_numpy(rows.confidence)
        hit = to_numpy(rows.hit)
        w, e = rows.host_weights
        if self.strategy == "quantile":
            raw = None if w is None else np.ldexp(w, e)  # exact
            return replace(
                self,
                samples=(*self.samples, (conf, hit, raw)),
                count=self.count + rows.n,
                n_classes=n_classes,
            )
        host = rows.xp if rows.xp is np else _xp.array_namespace(conf)
        edges = _edges(conf, None, self.n_bins, "uniform", xp=host)
        gaps, weight = _exact_bin_sums(conf, hit, w, edges, self.n_bins)
        scale = Fraction(2) ** e
        return replace(
            self,
            gaps=_add_scaled(self.gaps, gaps, scale),
            weights=_add_scaled(self.weights, weight, scale),
            count=self.count + rows.n,
            n_classes=n_classes,
        )

    def merge(self, other: ECE) -> ECE:
        """The tally of both batches together (exact; order does not matter)."""
        _check_same(self, other)
        if (self.n_bins, self.strategy) != (other.n_bins, other.strategy):
            msg = f"cannot merge {self!r} with {other!r}: different settings"
            raise ValueError(msg)
        return replace(
            self,
            gaps=tuple(a + b for a, b in zip(self.gaps, other.gaps, strict=True)),
            weights=tuple(
                a + b for a, b in zip(self.weights, other.weights, strict=True)
            ),
            count=self.count + other.count,
            n_classes=_merged_classes(self, other),
            samples=self.samples + other.samples,
        )

    def result(self) -> float:
        """The ECE over every sample added."""
        if self.strategy == "quantile":
            if self.count == 0:
                raise ValueError(no_weight_message(f"`{self._name}`", 0))
            conf = np.concatenate([s[0] for s in self.samples])
            hit = np.concatenate([s[1] for s in self.samples])
            w = _quantile_weights(self.samples)
            host = _xp.array_namespace(conf)
            value = _ece(
                conf, hit, w, self.n_bins, "quantile", xp=host, dtype=np.float64,
                kind=self._name,
            )  # fmt: skip
            return float(value)
        total = sum(self.weights, Fraction(0))
        if self.count == 0 or total == 0:
            raise ValueError(no_weight_message(f"`{self._name}`", self.count))
        if self._name != "ece":
            return _reduce_fraction_bins(self.gaps, self.weights, total, self._name)
        return float(sum((abs(g) for g in self.gaps), Fraction(0)) / total)


@dataclass(frozen=True)
class MCE(ECE):
    """Streaming `mce`: the per-bin tallies of `ECE`, reduced to their maximum gap."""

    _name = "mce"


@dataclass(frozen=True)
class RMSCE(ECE):
    """Streaming `rmsce`: the per-bin tallies of `ECE`, reduced to their
    bin-weighted root-mean-square gap."""

    _name = "rmsce"


def _add_scaled(
    old: tuple[Fraction, ...], new: list[Fraction], scale: Fraction
) -> tuple[Fraction, ...]:
    """``old + new * scale`` per bin (exact; empty bins and unit scales cost
    nothing)."""
    if scale == 1:
        return tuple(a + b if b else a for a, b in zip(old, new, strict=True))
    return tuple(a + b * scale if b else a for a, b in zip(old, new, strict=True))


def _exact_bin_sums(
    conf: np.ndarray,
    hit: np.ndarray,
    w: np.ndarray | None,
    edges: np.ndarray,
    n_bins: int,
) -> tuple[list[Fraction], list[Fraction]]:
    """Per-bin ``sum(w * (hit - conf))`` and ``sum(w)`` of one batch, exactly.

    Exact sums make the streamed ECE identical at every batch size (float64 sums
    round differently for each grouping); every bin is summed in one pass.
    """
    # the number of edges below each confidence: count_nonzero(conf > edges)
    bins = np.searchsorted(edges, conf, side="left")
    d = hit.astype(np.float64) - conf.astype(np.float64)  # per sample: batch-free
    if w is None:
        counts = np.bincount(bins, minlength=n_bins).tolist()
        return exact_sums_by_group(d, bins, n_bins), [Fraction(c) for c in counts]
    gaps = exact_dots_by_group(w, np.where(w == 0, 0.0, d), bins, n_bins)
    return gaps, exact_sums_by_group(w, bins, n_bins)


def _quantile_weights(
    samples: tuple[tuple[np.ndarray, np.ndarray, np.ndarray | None], ...],
) -> np.ndarray | None:
    """The weights of every stored sample, scaled to a largest of 1.

    ``None`` when no batch was weighted; an unweighted batch among weighted ones
    has weight 1 per sample, as in the in-memory `ece`.
    """
    if all(w is None for _, _, w in samples):
        return None
    w = np.concatenate([np.ones(len(c)) if w is None else w for c, _, w in samples])
    top = float(np.max(w)) if w.size else 0.0
    return w / top if top > 0 else w


METRICS: dict[str, Callable[..., Any]] = {
    "accuracy": Accuracy,
    "top_k_accuracy": TopKAccuracy,
    "nll": NLL,
    "brier": Brier,
    "ece": ECE,
    "mce": MCE,
    "rmsce": RMSCE,
}
"""Metric name -> streaming tally class (its constructor takes the metric's options)."""


# The per-class report, the confusion matrix and the reliability diagram live in
# their own module; they are part of this one's interface.
from ._classwise import ClassReport, Reliability  # noqa: E402
