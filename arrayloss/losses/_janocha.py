"""Janocha & Czarnecki's losses: L1, L2, the expectation family, Chebyshev, squared
log, Tanimoto and Cauchy–Schwarz.

The softmax-based kernels share `_softmax_parts`, which also returns the complement
``c = 1 - p`` computed without cancellation (for the largest probability as the sum of
the others), so that ``p - t`` is exact to rounding even where ``p_j`` is close to 1.
"""

from __future__ import annotations

from .. import _xp
from .._api import Kernel, KernelRows, Targets
from .._doc import fill_doc
from .._typing import Array, Namespace
from ._public import call, grad_twin

__all__ = [
    "cauchy_schwarz",
    "cauchy_schwarz_and_grad",
    "chebyshev",
    "chebyshev_and_grad",
    "expectation",
    "expectation_and_grad",
    "l1",
    "l1_and_grad",
    "l2",
    "l2_and_grad",
    "regularised_expectation",
    "regularised_expectation_and_grad",
    "squared_log",
    "squared_log_and_grad",
    "tanimoto",
    "tanimoto_and_grad",
]

# ----------------------------------------------------------------------------- helpers


def _first_max(x: Array, *, xp: Namespace) -> Array:
    """Boolean ``(n, C)`` mask of the first maximum of each row of ``x``."""
    idx = xp.argmax(x, axis=1)
    classes = xp.arange(x.shape[1], device=_xp.xp_device(x))
    return classes == idx[:, None]


def _softmax_parts(z: Array, *, xp: Namespace) -> tuple[Array, Array, Array, Array]:
    """``p = softmax(z)``, ``c = 1 - p``, ``w = z - max z`` and ``log sum exp w``.

    ``c`` is exact to rounding: at each row's largest entry ``1 - p`` would cancel, so
    it is the sum of the other probabilities there; elsewhere ``p <= 1/2``.  For the
    same reason ``log sum exp w = log1p(sum of the other exp w)`` (the largest is 1),
    which keeps tiny log-losses of confident samples accurate.
    """
    w = _xp.sub(z, xp.max(z, axis=1, keepdims=True), xp=xp, below=True)
    e = xp.exp(w)
    top = _first_max(z, xp=xp)
    rest = xp.sum(xp.where(top, xp.zeros_like(e), e), axis=1, keepdims=True)
    s = 1 + rest
    p = e / s
    c = xp.where(top, rest / s, 1 - p)
    return p, c, w, xp.log1p(rest)


def _log_loss(z: Array, w: Array, log_s: Array, t: Targets, *, xp: Namespace) -> Array:
    """The cross-entropy ``lse(w) - <t, w>`` of scores ``z`` from `_softmax_parts`'
    ``w`` and ``log_s`` (``lse(w) - w_y`` for class indices)."""
    if t.index is not None:
        return log_s[:, 0] - t.pick(w)
    return log_s[:, 0] - xp.sum(_xp.times_mass(t.probs, w, xp=xp, scores=z), axis=1)


def _residual(p: Array, c: Array, q: Array) -> Array:
    """``p - q`` written as ``p (1 - q) - q (1 - p)``: exact when ``q`` is one-hot."""
    return p * (1 - q) - q * c


# ----------------------------------------------------------------------------- kernels


def _l1_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool
) -> tuple[Array, Array | None]:
    r = z - t.probs
    return xp.sum(xp.abs(r), axis=1), (xp.sign(r) if want_grad else None)


def _l2_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool
) -> tuple[Array, Array | None]:
    r = z - t.probs
    return xp.sum(r * r, axis=1), (2 * r if want_grad else None)


def _expectation_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool
) -> tuple[Array, Array | None]:
    p, c, _, _ = _softmax_parts(z, xp=xp)
    d = _residual(p, c, t.probs)
    loss = xp.sum(xp.abs(d), axis=1)
    if not want_grad:
        return loss, None
    # g = sign(d); g_j - <g, p> = sum_k p_k (g_j - g_k), grouped by the sign of d_k so
    # that every term is a sum of non-negative probabilities (no cancellation).
    zero = xp.zeros_like(p)
    pos = xp.sum(xp.where(d > 0, p, zero), axis=1, keepdims=True)
    neg = xp.sum(xp.where(d < 0, p, zero), axis=1, keepdims=True)
    flat = xp.sum(xp.where(d == 0, p, zero), axis=1, keepdims=True)
    g = xp.where(d > 0, 2 * neg + flat, xp.where(d < 0, -(2 * pos + flat), neg - pos))
    return loss, p * g


def _regularised_expectation_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool
) -> tuple[Array, Array | None]:
    p, c, _, _ = _softmax_parts(z, xp=xp)
    d = _residual(p, c, t.probs)
    loss = xp.sum(d * d, axis=1)
    return loss, (_xp.through_softmax_from_g(p, 2 * d, xp=xp) if want_grad else None)


def _chebyshev_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool
) -> tuple[Array, Array | None]:
    p, c, _, _ = _softmax_parts(z, xp=xp)
    d = _residual(p, c, t.probs)
    # One-hot: |d_y| = 1 - p_y = sum of the other p_j >= every other |d_j|, so the
    # arg-max is the label; soft: the first arg-max of |d|.
    star = t.mask if t.index is not None else _first_max(xp.abs(d), xp=xp)
    zero = xp.zeros_like(p)
    d_star = xp.sum(xp.where(star, d, zero), axis=1, keepdims=True)
    loss = xp.abs(d_star)[:, 0]
    if not want_grad:
        return loss, None
    # d|d_*|/dz_j = sign(d_*) p_* (delta_j* - p_j); at j* this is sign(d_*) p_* c_*.
    p_star = xp.sum(xp.where(star, p, zero), axis=1, keepdims=True)
    return loss, xp.sign(d_star) * xp.where(star, p * c, -p * p_star)


def _squared_log_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool
) -> tuple[Array, Array | None]:
    p, c, w, log_s = _softmax_parts(z, xp=xp)
    ce = _log_loss(z, w, log_s, t, xp=xp)
    loss = ce * ce
    if not want_grad:
        return loss, None
    d = _residual(p, c, t.probs)
    # where(): never inf * 0 if the loss itself overflowed.
    return loss, xp.where(d == 0, xp.zeros_like(d), (2 * ce)[:, None] * d)


def _tanimoto_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool
) -> tuple[Array, Array | None]:
    p = _xp.softmax(z, xp=xp, axis=1)
    q = t.probs
    num = xp.sum(p * q, axis=1, keepdims=True)
    den = xp.sum(p * p, axis=1, keepdims=True) + xp.sum(q * q, axis=1, keepdims=True)
    den = den - num  # >= (|p|^2 + |q|^2) / 2 > 0
    loss = -(num / den)[:, 0]
    if not want_grad:
        return loss, None
    g = (2 * num * p - (den + num) * q) / (den * den)
    if t.index is not None:
        # At the label 2 N p_y - (D + N) = -(c_y (1 + p_y) + sum_{j != y} p_j^2):
        # no cancellation where p_y is near 1 (the gradient is then about c_y^2).
        off = xp.where(t.mask, xp.zeros_like(p), p)
        others = xp.sum(off * off, axis=1)
        p_y, c_y = t.pick(p), xp.sum(off, axis=1)  # c_y = 1 - p_y, summed
        g = t.set_label(g, -(c_y * (1 + p_y) + others) / (den * den)[:, 0])
    return loss, _xp.through_softmax_from_g(p, g, xp=xp)


def _twice(w: Array, *, xp: Namespace) -> Array:
    """``2 w`` for shifted scores ``w <= 0``: ``w - (-w)``, exact, and ``-inf`` without
    an overflow warning where ``2 w`` is below the largest float."""
    return _xp.sub(w, -w, xp=xp, below=True)


def _cauchy_schwarz_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool
) -> tuple[Array, Array | None]:
    if t.index is not None:
        # 1/2 CE(2z) = 1/2 lse(2z) - z_y; gradient softmax(2z) - e_y.  Shift before
        # doubling so that 2z cannot overflow.
        w = _xp.sub(z, xp.max(z, axis=1, keepdims=True), xp=xp, below=True)
        p2, c2, w2, log_s2 = _softmax_parts(_twice(w, xp=xp), xp=xp)
        w2_y = t.pick(w2)
        loss = 0.5 * (log_s2[:, 0] - w2_y)
        # 2 w_y below the float range (the loss up to max, not inf): halved first.
        w_y = t.pick(w)
        over = (w2_y == -xp.inf) & (w_y > -xp.inf)
        loss = xp.where(over, 0.5 * log_s2[:, 0] - w_y, loss)
        return loss, (_residual(p2, c2, t.probs) if want_grad else None)
    # -log<p,q> + 1/2 log|p|^2 + 1/2 log|q|^2 with <p,q> = exp(lse(w + log q) - lse(w))
    # and |p|^2 = exp(lse(2w) - 2 lse(w)); the lse(w) terms cancel.
    q = t.probs
    w = _xp.sub(z, xp.max(z, axis=1, keepdims=True), xp=xp, below=True)
    has = q > 0
    log_q = xp.log(xp.where(has, q, xp.ones_like(q)))
    # w + log q as w - (-log q) (the same bits): quiet where it is below the
    # float range (float16 scores near -max and a subnormal mass, log q = -17)
    a = xp.where(has, _xp.sub(w, -log_q, xp=xp), xp.full_like(w, -xp.inf))
    w2 = _twice(w, xp=xp)
    loss = (
        0.5 * _xp.logsumexp(w2, xp=xp, axis=1)
        - _xp.logsumexp(a, xp=xp, axis=1)
        + 0.5 * xp.log(xp.sum(q * q, axis=1))
    )
    if not want_grad:
        return loss, None
    # d/dz: softmax(2w) - softmax(w + log q), two probability vectors.  Where every
    # class with mass is -inf in w (beyond the float range below the maximum; the
    # loss is inf), the second one from z itself.
    lost = xp.all(a == -xp.inf, axis=1, keepdims=True)
    at_z = _xp.sub(z, -log_q, xp=xp)  # z + log q, quiet as above
    a = xp.where(lost, xp.where(has, at_z, xp.full_like(z, -xp.inf)), a)
    return loss, _xp.softmax(w2, xp=xp, axis=1) - _xp.softmax(a, xp=xp, axis=1)


def _kernel(rows: KernelRows) -> Kernel:
    """The kernel of the loss ``name`` whose rows function is ``_<name>_rows``."""
    return Kernel(rows.__name__.removeprefix("_").removesuffix("_rows"), rows)


_L1_KERNEL = _kernel(_l1_rows)
_L2_KERNEL = _kernel(_l2_rows)
_EXPECTATION_KERNEL = _kernel(_expectation_rows)
_BRIER_KERNEL = _kernel(_regularised_expectation_rows)
_CHEBYSHEV_KERNEL = _kernel(_chebyshev_rows)
_SQUARED_LOG_KERNEL = _kernel(_squared_log_rows)
_TANIMOTO_KERNEL = _kernel(_tanimoto_rows)
_CAUCHY_SCHWARZ_KERNEL = _kernel(_cauchy_schwarz_rows)

# ----------------------------------------------------------------------------- L1, L2


@fill_doc
def l1(
    logits: Array,
    labels: Array,
    /,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""L1 loss between the raw logits and the one-hot (or soft) target.

    .. math::

        \ell(s, t) = \sum_j |s_j - t_j|,
        \qquad \frac{\partial \ell}{\partial s_j} = \operatorname{sign}(s_j - t_j)

    on the raw scores, not on probabilities (for that, see :func:`expectation`).
    At a kink ``s_j = t_j`` the subgradient ``sign(0) = 0`` is returned.

    %(parameters_returns)s

    %(references_janocha)s

    %(examples)s
    >>> print(f"{float(al.l1(s, np.array([2]))):.6f}")
    8.600000
    """
    return call(_L1_KERNEL, locals())


l1_and_grad = grad_twin(_L1_KERNEL, l1)


@fill_doc
def l2(
    logits: Array,
    labels: Array,
    /,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""L2 (squared error) loss between the raw logits and the one-hot (or soft) target.

    .. math::

        \ell(s, t) = \sum_j (s_j - t_j)^2,
        \qquad \frac{\partial \ell}{\partial s_j} = 2 (s_j - t_j)

    on the raw scores, summed over classes (for probabilities, see
    :func:`regularised_expectation`).

    %(parameters_returns)s

    %(references_janocha)s

    %(examples)s
    >>> print(f"{float(al.l2(s, np.array([2]))):.6f}")
    19.040000
    """
    return call(_L2_KERNEL, locals())


l2_and_grad = grad_twin(_L2_KERNEL, l2)


# ------------------------------------------------------------------------ on softmax


@fill_doc
def expectation(
    logits: Array,
    labels: Array,
    /,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Expectation loss: L1 distance between ``softmax(logits)`` and the target.

    .. math::

        \ell(s, t) = \sum_j |p_j - t_j|, \quad p = \operatorname{softmax}(s),
        \qquad \frac{\partial \ell}{\partial s} = p \odot (g - \langle g, p \rangle),
        \quad g = \operatorname{sign}(p - t)

    For a one-hot target it is :math:`2 (1 - p_y)`, twice the probability that a
    prediction drawn from ``p`` is wrong, with gradient :math:`2 p_y (p - e_y)`.
    For soft targets it has kinks where some ``p_j = t_j``; there ``sign(0) = 0``.
    :func:`chebyshev` equals half of it for one-hot targets only.

    %(parameters_returns)s

    %(references_janocha)s

    %(examples)s
    >>> print(f"{float(al.expectation(s, np.array([2]))):.6f}")
    1.962823
    """
    return call(_EXPECTATION_KERNEL, locals())


expectation_and_grad = grad_twin(_EXPECTATION_KERNEL, expectation)


@fill_doc
def regularised_expectation(
    logits: Array,
    labels: Array,
    /,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Regularised expectation loss: squared L2 distance of ``softmax(logits)``.

    .. math::

        \ell(s, t) = \sum_j (p_j - t_j)^2, \quad p = \operatorname{softmax}(s),
        \qquad \frac{\partial \ell}{\partial s}
            = 2\, p \odot \bigl((p - t) - \langle p - t, p \rangle\bigr)

    For a one-hot target it is :math:`1 - 2 p_y + \lVert p \rVert^2`: twice the
    expected misclassification minus the Gini impurity of ``p``.  It is the Brier
    score of ``p``.

    %(parameters_returns)s

    %(references_janocha)s

    %(examples)s
    >>> print(f"{float(al.regularised_expectation(s, np.array([2]))):.6f}")
    1.374056
    """
    return call(_BRIER_KERNEL, locals())


regularised_expectation_and_grad = grad_twin(_BRIER_KERNEL, regularised_expectation)


@fill_doc
def chebyshev(
    logits: Array,
    labels: Array,
    /,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Chebyshev loss: L-infinity distance between ``softmax(logits)`` and the target.

    .. math::

        \ell(s, t) = \max_j |p_j - t_j| = |p_{j^*} - t_{j^*}|,
        \qquad \frac{\partial \ell}{\partial s_k}
            = \operatorname{sign}(p_{j^*} - t_{j^*})\, p_{j^*} (\delta_{k j^*} - p_k)

    with :math:`p = \operatorname{softmax}(s)` and :math:`j^*` the first index of the
    maximum (a subgradient at ties; ``sign(0) = 0``).

    For a one-hot target the maximum is always at the label, so the loss collapses to
    :math:`1 - p_y`, exactly **half the expectation loss** (:func:`expectation`),
    with gradient :math:`p_y (p - e_y)`.  For soft targets the two losses differ,
    which is why both exist.

    %(parameters_returns)s

    %(references_janocha)s

    %(examples)s
    >>> print(f"{float(al.chebyshev(s, np.array([2]))):.6f}")
    0.981411
    """
    return call(_CHEBYSHEV_KERNEL, locals())


chebyshev_and_grad = grad_twin(_CHEBYSHEV_KERNEL, chebyshev)


@fill_doc
def squared_log(
    logits: Array,
    labels: Array,
    /,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Squared log loss: the square of the cross-entropy.

    .. math::

        \ell(s, t) = \Bigl(\sum_j t_j \log p_j\Bigr)^2 \;(= (\log p_y)^2
        \text{ for one-hot } t),
        \qquad \frac{\partial \ell}{\partial s} = 2\, \mathrm{CE}(s, t)\, (p - t)

    with :math:`p = \operatorname{softmax}(s)`, computed through log-softmax.  This
    is the *positive* square: the table in [1]_ prints a minus sign, which would be
    minimised by sending :math:`p_y \to 0`.  For soft targets the cross-entropy is
    squared (rather than summing :math:`(t_j \log p_j)^2` over classes), so the
    gradient is the cross-entropy gradient scaled by ``2 CE``, as for one-hot
    targets.

    %(parameters_returns)s

    %(references_janocha)s

    %(examples)s
    >>> print(f"{float(al.squared_log(s, np.array([2]))):.6f}")
    15.881860
    """
    return call(_SQUARED_LOG_KERNEL, locals())


squared_log_and_grad = grad_twin(_SQUARED_LOG_KERNEL, squared_log)


@fill_doc
def tanimoto(
    logits: Array,
    labels: Array,
    /,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Tanimoto loss: minus the Tanimoto (extended Jaccard) similarity.

    .. math::

        \ell(s, t) = -\frac{N}{D}, \quad N = \langle p, t \rangle, \quad
        D = \lVert p \rVert^2 + \lVert t \rVert^2 - N,
        \qquad \frac{\partial \ell}{\partial s} = p \odot (g - \langle g, p \rangle),
        \quad g = -\frac{(D + N)\, t - 2 N p}{D^2}

    with :math:`p = \operatorname{softmax}(s)`; :math:`D \ge (\lVert p \rVert^2 +
    \lVert t \rVert^2)/2 > 0`, so no division is unsafe.  For a one-hot target it is
    :math:`-p_y / (1 + \lVert p \rVert^2 - p_y) \in (-1, 0)`.

    %(parameters_returns)s

    %(references_janocha)s

    %(examples)s
    >>> print(f"{float(al.tanimoto(s, np.array([2]))):.6f}")
    -0.013348

    The one-hot closed form above gives the same value:

    >>> p = np.exp(s[0]) / np.exp(s[0]).sum()
    >>> print(f"{float(-p[2] / (1 + p @ p - p[2])):.6f}")
    -0.013348
    """
    return call(_TANIMOTO_KERNEL, locals())


tanimoto_and_grad = grad_twin(_TANIMOTO_KERNEL, tanimoto)


@fill_doc
def cauchy_schwarz(
    logits: Array,
    labels: Array,
    /,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Cauchy–Schwarz divergence between ``softmax(logits)`` and the target.

    .. math::

        \ell(s, t) = -\log \frac{\langle p, t \rangle}{\lVert p \rVert\,
        \lVert t \rVert}
        = \tfrac12 \operatorname{lse}(2s) - \operatorname{lse}(s + \log t)
          + \tfrac12 \log \lVert t \rVert^2,
        \qquad \frac{\partial \ell}{\partial s}
            = \operatorname{softmax}(2s) - \operatorname{softmax}(s + \log t)

    with :math:`p = \operatorname{softmax}(s)` and :math:`\log 0 = -\infty`.  It is
    computed entirely in log space, so it is finite for any finite scores.

    For a one-hot target it collapses to :math:`-s_y + \tfrac12 \operatorname{lse}(2s)
    = \tfrac12 \mathrm{CE}(2s)`, **half the cross-entropy at temperature 1/2**, with
    gradient :math:`\operatorname{softmax}(2s) - e_y`.  For soft targets it differs
    from that, which is why it is a separate loss.

    %(parameters_returns)s

    %(references_janocha)s

    %(examples)s
    >>> print(f"{float(al.cauchy_schwarz(s, np.array([2]))):.6f}")
    3.540907
    """
    return call(_CAUCHY_SCHWARZ_KERNEL, locals())


cauchy_schwarz_and_grad = grad_twin(_CAUCHY_SCHWARZ_KERNEL, cauchy_schwarz)
