"""Lapin, Hein & Schiele's top-k losses: two top-k hinges and two top-k entropies.

Conventions follow ``mlapin/libsdca``: every sort runs over the competitors
``j != y`` only, with ``a_j = margin + s_j - s_y`` and ``b_j = s_j - s_y`` sorted in
decreasing order, ``a_[1] >= a_[2] >= ...``.

Ties in the sort are broken by a stable descending sort, so among equal scores the
lower class index ranks first.  This fixes the subgradient returned at a tie across
rank ``k`` (the hinges) or rank ``k - 1`` (the truncated entropy); the top-k entropy
itself is continuously differentiable and does not depend on tie-breaking.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_extra as xpx

from .. import _xp
from .._api import CheckParams, Kernel, KernelRows, Targets
from .._doc import filler
from .._typing import Array, Namespace
from .._validation import check_int, check_real
from ._public import call, grad_twin

__all__ = [
    "topk_entropy",
    "topk_entropy_and_grad",
    "topk_hinge_alpha",
    "topk_hinge_alpha_and_grad",
    "topk_hinge_beta",
    "topk_hinge_beta_and_grad",
    "truncated_topk_entropy",
    "truncated_topk_entropy_and_grad",
]


# --------------------------------------------------------------------------- helpers


def _sum_scale(a: Array, k: int, *, xp: Namespace) -> float:
    """The power of two ``2^j >= k`` by which sums of ``k`` entries of ``a`` are
    scaled down, or 1: only where a plain sum could overflow (a sum of the scaled
    entries, scaled back, is the same bits for normal numbers: scaling by a power
    of two commutes with rounding; a sum of ``k`` entries each at most
    ``max / 2^j`` cannot overflow, halves could from ``k = 3``)."""
    scale = float(2 ** math.ceil(math.log2(k))) if k > 1 else 2.0
    if _xp.is_lazy(a) or math.prod(a.shape) == 0:  # torch: `size` is a method
        return scale
    big = max(abs(float(xp.max(a))), abs(float(xp.min(a))))
    return scale if k * big > float(xp.finfo(a.dtype).max) else 1.0


def _sum_over_k(a: Array, k: int, *, xp: Namespace) -> Array:
    """``sum(a, axis=1) / k`` without an overflowing intermediate sum."""
    scale = _sum_scale(a, k, xp=xp)
    if scale != 1:
        return xp.sum(a * (1 / scale), axis=1) / k * scale
    return xp.sum(a, axis=1) / k


def _prefix_over_k(a: Array, k: int, *, xp: Namespace) -> Array:
    """``cumulative_sum(a, axis=1) / k`` without an overflowing intermediate sum."""
    scale = _sum_scale(a, k, xp=xp)
    if scale != 1:
        return xp.cumulative_sum(a * (1 / scale), axis=1) / k * scale
    return xp.cumulative_sum(a, axis=1) / k


def _check_k(*, n_classes: int, k: int = 5) -> dict[str, Any]:
    """``1 <= k <= n_classes - 1``, checked at the call (the wrapper knows ``n_classes``)."""
    k = check_int("k", k, low=1)
    if k > n_classes - 1:
        msg = (
            "`k` must be an integer with 1 <= k <= n_classes - 1 "
            f"(got k={k}, n_classes={n_classes})"
        )
        raise ValueError(msg)
    return {"k": k}


def _check_hinge(*, n_classes: int, k: int = 5, margin: float = 1.0) -> dict[str, Any]:
    return {
        **_check_k(n_classes=n_classes, k=k),
        "margin": check_real("margin", margin, low=0),
    }


def _sorted(z: Array, t: Targets, *, xp: Namespace) -> Array:
    """The competitors' scores in decreasing order, ``(n, C - 1)``."""
    zc = t.without_label(z)
    return xp.sort(zc, axis=1, descending=True)[:, : t.n_classes - 1]


def _top(z: Array, t: Targets, m: int, *, xp: Namespace) -> Array:
    """Boolean ``(n, C)``: the ``m`` largest competitors of each row.

    Among equal scores the lower class index is taken first, as the first ``m`` of
    a stable descending sort would.  One partition and two passes, no sort.
    """
    zc = t.without_label(z)
    c = t.n_classes
    if m == 0:
        return xp.zeros(zc.shape, dtype=xp.bool, device=_xp.xp_device(zc))
    vm = xpx.partition(zc, c - m, axis=1, xp=xp)[:, c - m : c - m + 1]  # m-th largest
    above = zc > vm
    tie = zc == vm
    count = _xp.default_int(xp, _xp.xp_device(zc))
    need = m - xp.sum(xp.astype(above, count), axis=1, keepdims=True)
    return above | (tie & (xp.cumulative_sum(xp.astype(tie, count), axis=1) <= need))


def _with_target(g: Array, t: Targets, *, xp: Namespace) -> Array:
    """Competitor gradient ``g`` (zero at the label) plus ``-sum(g)`` at the label."""
    return g - xp.astype(t.mask, g.dtype) * xp.sum(g, axis=1, keepdims=True)


def _kernel(name: str, rows: KernelRows, check: CheckParams) -> Kernel:
    """A Lapin loss's kernel: class indices only, at least two classes (a label and
    a competitor), ``k`` checked against the class count at the call."""
    return Kernel(name, rows, soft_labels=False, min_classes=2, check_params=check)


# ------------------------------------------------------------------- top-k hinge α


def _hinge_alpha_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool, k: int, margin: float
) -> tuple[Array, Array | None]:
    sy = t.pick(z)
    top = _top(z, t, k, xp=xp)
    # (1/k) sum_{i<=k} a_[i] = margin + mean of the top-k competitor scores - s_y
    top_z = xp.where(top, z, xp.zeros_like(z))
    h = _xp.sub(margin + _sum_over_k(top_z, k, xp=xp), sy, xp=xp)
    loss = xp.maximum(h, xp.zeros_like(h))
    if not want_grad:
        return loss, None
    on = top & (h > 0)[:, None]
    return loss, _with_target(xp.astype(on, z.dtype) / k, t, xp=xp)


_KERNEL_ALPHA = _kernel("topk_hinge_alpha", _hinge_alpha_rows, _check_hinge)


_fill = filler(
    {
        "hinge_parameters": r"""%(parameters_c2_index)s
k : int
    How many competitors are averaged, ``1 <= k <= C - 1``.
margin : float, non-negative
    The margin :math:`\Delta` (the "1 +" of the paper).
%(common_returns)s

Raises
------
ValueError
    If ``k`` is not in ``[1, C - 1]``, ``margin`` is negative, or the labels
    are soft or out of range.""",
        "entropy_sections": """%(common_returns)s

Raises
------
ValueError
    If ``k`` is not in ``[1, C - 1]`` or the labels are soft or out of range.

%(references_cvpr)s""",
        "references_cvpr": """References
----------
.. [1] M. Lapin, M. Hein and B. Schiele, "Loss Functions for Top-k Error:
   Analysis and Insights", CVPR 2016.""",
    }
)
"""`arrayloss._doc.fill_doc` with the blocks the four top-k losses share: the
hinges' sections from parameters to raises, the entropies' from returns to
references, and the CVPR paper."""


@_fill
def topk_hinge_alpha(
    logits: Array,
    labels: Array,
    /,
    *,
    k: int = 5,
    margin: float = 1.0,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Top-k hinge α ("hinge of top-k") of Lapin, Hein & Schiele (NIPS 2015).

    .. math::

        \ell(s, y) = \max\Bigl\{0,\ \frac1k \sum_{i=1}^{k} a_{[i]}\Bigr\},
        \qquad a_j = \Delta + s_j - s_y \quad (j \ne y),

    with :math:`a_{[1]} \ge a_{[2]} \ge \dots` the competitors sorted in decreasing
    order and :math:`\Delta` = ``margin``.  A subgradient is

    .. math::

        \frac{\partial \ell}{\partial s_j} = \frac{[\ell > 0]}{k}\,[j \in K],
        \qquad \frac{\partial \ell}{\partial s_y} = -[\ell > 0],

    where :math:`K` holds the k highest-scoring competitors.  At the hinge
    (:math:`\ell = 0` exactly) the gradient is zero; at a tie across rank k the
    lower class index is taken into :math:`K` (stable sort).

    With ``k=1`` it is the Crammer–Singer loss
    :math:`\max\{0, \Delta + \max_{j \ne y} s_j - s_y\}`; it never exceeds
    :func:`topk_hinge_beta` and does not increase with ``k``.

    %(hinge_parameters)s

    References
    ----------
    .. [1] M. Lapin, M. Hein and B. Schiele, "Top-k Multiclass SVM", NIPS 2015.

    %(examples)s
    >>> print(f"{float(al.topk_hinge_alpha(s, np.array([2]), k=2)):.6f}")
    4.100000
    """
    return call(_KERNEL_ALPHA, locals())


topk_hinge_alpha_and_grad = grad_twin(_KERNEL_ALPHA, topk_hinge_alpha)


# -------------------------------------------------------------------- top-k hinge β


def _hinge_beta_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool, k: int, margin: float
) -> tuple[Array, Array | None]:
    sy = t.pick(z)
    top = _top(z, t, k, xp=xp)
    a = _xp.sub(margin + z, sy[:, None], xp=xp)
    on = top & (a > 0)
    zero = xp.zeros_like(a)
    terms = xp.where(on, a, zero)
    near = _xp.near_range_rows(terms, xp=xp)
    if near is None:
        loss = xp.sum(terms, axis=1) / k
    else:
        # the sum (or a term) past the range, the mean over k not: from the halves
        half = xp.where(on, (margin * 0.5 + z * 0.5) - sy[:, None] * 0.5, zero)
        mean = xp.sum(half / k, axis=1)
        past = mean > 0.5 * float(xp.finfo(z.dtype).max)  # inf, quietly
        wide = xp.where(past, xp.full_like(mean, xp.inf), 2 * xp.where(past, 0, mean))
        kept = xp.sum(xp.where(near[:, None], zero, terms), axis=1) / k
        loss = xp.where(near, wide, kept)
    if not want_grad:
        return loss, None
    return loss, _with_target(xp.astype(on, z.dtype) / k, t, xp=xp)


_KERNEL_BETA = _kernel("topk_hinge_beta", _hinge_beta_rows, _check_hinge)


@_fill
def topk_hinge_beta(
    logits: Array,
    labels: Array,
    /,
    *,
    k: int = 5,
    margin: float = 1.0,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Top-k hinge β ("top-k of hinge") of Lapin, Hein & Schiele (CVPR 2016).

    .. math::

        \ell(s, y) = \frac1k \sum_{i=1}^{k} \max\{0,\ a_{[i]}\},
        \qquad a_j = \Delta + s_j - s_y \quad (j \ne y),

    with :math:`a_{[1]} \ge a_{[2]} \ge \dots` the competitors sorted in decreasing
    order and :math:`\Delta` = ``margin``.  A subgradient is

    .. math::

        \frac{\partial \ell}{\partial s_j} = \frac1k\,[j \in K]\,[a_j > 0],
        \qquad \frac{\partial \ell}{\partial s_y}
            = -\frac1k \sum_{j \in K} [a_j > 0],

    where :math:`K` holds the k highest-scoring competitors.  A term exactly at its
    hinge (:math:`a_j = 0`) contributes zero; at a tie across rank k the lower
    class index is taken into :math:`K` (stable sort).

    With ``k=1`` it is the Crammer–Singer loss; it is never below
    :func:`topk_hinge_alpha` and does not increase with ``k``.

    %(hinge_parameters)s

    %(references_cvpr)s

    %(examples)s
    >>> print(f"{float(al.topk_hinge_beta(s, np.array([2]), k=3)):.6f}")
    3.500000
    """
    return call(_KERNEL_BETA, locals())


topk_hinge_beta_and_grad = grad_twin(_KERNEL_BETA, topk_hinge_beta)


# ------------------------------------------------------------------- top-k entropy


def _entropy_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool, k: int
) -> tuple[Array, Array | None]:
    # The maximiser caps the m largest competitors at x_j = S/k and spreads the
    # rest as x_j = S (1 - m/k) exp(b_j) / sum_{i>m} exp(b_[i]), S = sum(x).  For a
    # given m the maximum over S is softplus(c_m) with
    #   c_m = B_m/k + (m/k) log k + (1 - m/k) nu_m,
    #   nu_m = lse_{i>m} b_[i] - log(1 - m/k),   B_m = b_[1] + ... + b_[m],
    # and the right m is the smallest one with b_[m+1] <= lse_{i>m} b_[i] - log(k-m)
    # (m = k - 1 always qualifies).  Then x_j = S min(1/k, exp(b_j - nu)).
    sy = t.pick(z)
    ranked = _sorted(z, t, xp=xp)
    b = _xp.sub(ranked, sy[:, None], xp=xp)  # b_[1] >= ... >= b_[C-1]
    prefix = _prefix_over_k(b[:, :k], k, xp=xp)  # B_m / k = prefix[:, m - 1]

    def candidate(m: int, suffix: Array) -> tuple[Array, Array]:
        nu_m = suffix - math.log1p(-m / k)
        c_m = (m / k) * math.log(k) + (1 - m / k) * nu_m
        # c_m + B_m / k, quiet where it is below -max (softplus gives 0 there)
        return (_xp.sub(c_m, -prefix[:, m - 1], xp=xp) if m else c_m), nu_m

    # lse_{i>m} b_[i] for m = k-1, k-2, ..., 0, tail first (one pass, no overflow)
    suffix = b[:, k - 1]
    if b.shape[1] > k:
        suffix = _xp.logaddexp(suffix, _xp.logsumexp(b[:, k:], xp=xp, axis=1), xp=xp)
    c, nu = candidate(k - 1, suffix)
    for m in range(k - 2, -1, -1):
        head = b[:, m]
        suffix = _xp.logaddexp(head, suffix, xp=xp)
        ok = head <= suffix - math.log(k - m)
        c_m, nu_m = candidate(m, suffix)
        c, nu = xp.where(ok, c_m, c), xp.where(ok, nu_m, nu)
    loss = _xp.softplus(c, xp=xp)
    if not want_grad:
        return loss, None
    # x_j = S min(1/k, exp(b_j - nu)); the min inside exp keeps capped entries finite
    e = xp.exp(
        xp.minimum(_xp.sub(z, (sy + nu)[:, None], xp=xp), xp.full_like(z, -math.log(k)))
    )
    x = _xp.sigmoid(c, xp=xp)[:, None] * e
    x = xp.where(t.mask, xp.zeros_like(x), x)
    return loss, _with_target(x, t, xp=xp)


_KERNEL_ENTROPY = _kernel("topk_entropy", _entropy_rows, _check_k)


@_fill
def topk_entropy(
    logits: Array,
    labels: Array,
    /,
    *,
    k: int = 5,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Top-k entropy loss of Lapin, Hein & Schiele (CVPR 2016), convex.

    The conjugate of the top-k simplex: with :math:`b_j = s_j - s_y` for
    :math:`j \ne y`,

    .. math::

        \ell(s, y) = \max_{x \in \Delta_k}\ \langle b, x \rangle
            - (1 - \textstyle\sum x) \log(1 - \textstyle\sum x)
            - \textstyle\sum_j x_j \log x_j,
        \qquad \Delta_k = \{x \ge 0,\ \textstyle\sum x \le 1,\
                            x_j \le \textstyle\sum x / k\}.

    The maximiser :math:`x^*` is computed exactly: it caps the :math:`m < k`
    largest competitors at :math:`x_j = S/k` (:math:`S = \sum x^*`) and spreads the
    rest softmax-like, which gives

    .. math::

        \ell = \log\bigl(1 + e^{c}\bigr),\quad
        c = \frac1k \sum_{i \le m} b_{[i]} + \frac mk \log k
            + \Bigl(1 - \frac mk\Bigr)\Bigl(\operatorname{lse}_{i > m} b_{[i]}
            - \log\bigl(1 - \tfrac mk\bigr)\Bigr),

    with :math:`m` the smallest number for which the uncapped entries respect the
    cap.  By Danskin's theorem the gradient is the maximiser itself:

    .. math::

        \frac{\partial \ell}{\partial s_j} = x^*_j
            = \sigma(c) \min\bigl\{\tfrac1k,\ e^{b_j - \nu}\bigr\},
        \qquad \frac{\partial \ell}{\partial s_y} = -\sum_{j \ne y} x^*_j,

    where :math:`\nu = \operatorname{lse}_{i > m} b_{[i]} - \log(1 - m/k)`.  The
    maximiser is unique, so the loss is continuously differentiable, ties
    included.

    At ``k=1`` it is softmax cross-entropy :math:`\log(1 + \sum_{j \ne y}
    e^{b_j})`; it never exceeds cross-entropy and does not increase with ``k``; at
    ``k = C - 1`` it is :math:`\log(1 + k \exp(\operatorname{mean}_{j \ne y}
    b_j))`.

    %(parameters_c2_index)s
    k : int
        The ``k`` of the top-k simplex, ``1 <= k <= C - 1``.
    %(entropy_sections)s
    .. [2] M. Lapin, M. Hein and B. Schiele, "Analysis and Optimization of Loss
       Functions for Multiclass, Top-k, and Multilabel Classification", TPAMI
       2018 (arXiv:1612.03663).

    %(examples)s
    >>> print(f"{float(al.topk_entropy(s, np.array([2]), k=2)):.6f}")
    3.976169
    """
    return call(_KERNEL_ENTROPY, locals())


topk_entropy_and_grad = grad_twin(_KERNEL_ENTROPY, topk_entropy)


# --------------------------------------------------------- truncated top-k entropy


def _truncated_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool, k: int
) -> tuple[Array, Array | None]:
    sy = t.pick(z)
    # the tail: every competitor but the k - 1 largest
    kept = ~(_top(z, t, k - 1, xp=xp) | t.mask)
    b = xp.where(kept, _xp.sub(z, sy[:, None], xp=xp), xp.full_like(z, -math.inf))
    tail = _xp.logsumexp(b, xp=xp, axis=1)
    loss = _xp.softplus(tail, xp=xp)
    if not want_grad:
        return loss, None
    # exp(b_j) / (1 + sum_tail exp(b)) = sigmoid(tail) exp(b_j - tail) on the tail;
    # b_j <= tail there, so the min only tames the dropped entries before masking
    e = xp.exp(xp.minimum(_xp.sub(z, (sy + tail)[:, None], xp=xp), xp.zeros_like(z)))
    x = xp.where(kept, _xp.sigmoid(tail, xp=xp)[:, None] * e, xp.zeros_like(z))
    return loss, _with_target(x, t, xp=xp)


_KERNEL_TRUNCATED = _kernel("truncated_topk_entropy", _truncated_rows, _check_k)


@_fill
def truncated_topk_entropy(
    logits: Array,
    labels: Array,
    /,
    *,
    k: int = 5,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Truncated top-k entropy of Lapin, Hein & Schiele (CVPR 2016), non-convex.

    Cross-entropy with the ``k - 1`` strongest competitors dropped: with
    :math:`b_j = s_j - s_y` for :math:`j \ne y` sorted as
    :math:`b_{[1]} \ge b_{[2]} \ge \dots`,

    .. math::

        \ell(s, y) = \log\Bigl(1 + \sum_{i \ge k} e^{b_{[i]}}\Bigr),
        \qquad
        \frac{\partial \ell}{\partial s_j}
            = \frac{[j \in T]\, e^{b_j}}{1 + \sum_{i \in T} e^{b_i}},
        \qquad \frac{\partial \ell}{\partial s_y}
            = -\sum_{j \ne y} \frac{\partial \ell}{\partial s_j},

    where :math:`T` holds the competitors ranked k-th or lower.  Computed as
    ``softplus(lse)`` over the kept tail, so it is finite for any finite scores.
    The loss is continuous but its gradient jumps where the (k-1)-th and k-th
    competitors tie; there the lower class index counts as dropped (stable sort).

    At ``k=1`` nothing is dropped and it is softmax cross-entropy.

    %(parameters_c2_index)s
    k : int
        ``k - 1`` competitors are dropped, ``1 <= k <= C - 1``.
    %(entropy_sections)s

    %(examples)s
    >>> print(f"{float(al.truncated_topk_entropy(s, np.array([2]), k=2)):.6f}")
    3.171039
    """
    return call(_KERNEL_TRUNCATED, locals())


truncated_topk_entropy_and_grad = grad_twin(_KERNEL_TRUNCATED, truncated_topk_entropy)
