"""Where Lapin's non-smooth top-k losses have kinks, for finite-difference tests.

``KINKS[name](logits, labels, params)`` takes NumPy ``(n, C)`` float64 scores,
``(n,)`` integer labels and the loss's parameters (missing ones take the
registry's defaults)
and returns, per sample, a lower bound on the max-norm distance from ``logits`` to
the nearest point where the loss is not differentiable: changing every score by
less than this crosses no kink.  Each kink surface is the zero set of an affine
function ``g`` of the scores, so the distance is ``|g| / ||grad g||_1``; for every
``g`` here ``||grad g||_1 = 2`` (a sorted gap, ``margin + s_j - s_y``, or the
hinge-α argument, whose gradient is ``1/k`` on k competitors and ``-1`` on the
label).  A max-norm distance also bounds the Euclidean one from below.

``topk_entropy`` is continuously differentiable (its maximiser is unique), but its
second derivative jumps where the number ``m`` of capped competitors changes,
i.e. where ``g_m = b_[m+1] - lse_{i>m} b_[i] + log(k - m)`` crosses zero; a
finite-difference stencil straddling such a point loses its high order, so the
entry bounds the distance to every ``g_m = 0`` with ``m < k - 1``
(``||grad g_m||_1 <= 2``).
``truncated_topk_entropy`` has kinks only where the (k-1)-th and k-th competitors
tie.
"""

from __future__ import annotations

import numpy as np

from ._defaults import kink_table

__all__ = ["KINKS"]


def _sorted_margins(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``b_j = s_j - s_y`` over the competitors, sorted decreasing, ``(n, C-1)``."""
    n = logits.shape[0]
    rows = np.arange(n)
    b = logits - logits[rows, labels][:, None]
    b[rows, labels] = -np.inf
    return -np.sort(-b, axis=1)[:, :-1]


def _gap(b: np.ndarray, i: int) -> np.ndarray:
    """``b_[i] - b_[i+1]`` (1-based ranks); infinite when there is no ``b_[i+1]``."""
    if i >= b.shape[1]:
        return np.full(b.shape[0], np.inf)
    return b[:, i - 1] - b[:, i]


def _hinge_alpha(logits: np.ndarray, labels: np.ndarray, params: dict) -> np.ndarray:
    k, margin = int(params["k"]), float(params["margin"])
    b = _sorted_margins(logits, labels)
    h = margin + b[:, :k].mean(axis=1)
    # the hinge, and (only where the hinge is active) a tie across rank k
    dist = np.where(h > 0, np.minimum(h, _gap(b, k)), -h)
    return dist / 2


def _hinge_beta(logits: np.ndarray, labels: np.ndarray, params: dict) -> np.ndarray:
    k, margin = int(params["k"]), float(params["margin"])
    b = _sorted_margins(logits, labels)
    a = margin + b
    # each of the top-k terms at its hinge, and a tie across rank k while the
    # k-th term is active (below zero both sides of the tie contribute nothing)
    dist = np.abs(a[:, :k]).min(axis=1)
    dist = np.where(a[:, k - 1] > 0, np.minimum(dist, _gap(b, k)), dist)
    return dist / 2


def _topk_entropy(logits: np.ndarray, labels: np.ndarray, params: dict) -> np.ndarray:
    k = int(params["k"])
    b = _sorted_margins(logits, labels)
    dist = np.full(logits.shape[0], np.inf)
    # g_{k-1} <= 0 always (lse >= max), so m = k - 1 is never a boundary.
    for m in range(min(k - 1, b.shape[1])):
        tail = np.logaddexp.reduce(b[:, m:], axis=1)
        g = b[:, m] - tail + np.log(k - m)
        dist = np.minimum(dist, np.abs(g) / 2)
    return dist


def _truncated(logits: np.ndarray, labels: np.ndarray, params: dict) -> np.ndarray:
    k = int(params["k"])
    if k == 1:
        return np.full(logits.shape[0], np.inf)
    return _gap(_sorted_margins(logits, labels), k - 1) / 2


KINKS = kink_table(
    {
        "topk_hinge_alpha": _hinge_alpha,
        "topk_hinge_beta": _hinge_beta,
        "topk_entropy": _topk_entropy,
        "truncated_topk_entropy": _truncated,
    }
)
