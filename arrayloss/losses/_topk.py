"""The top-k SVM losses of Berrada, Zisserman & Kumar (ICLR 2018): smooth and hard."""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import is_jax_array

from .. import _esp_compiled, _xp
from .._api import Kernel, Targets
from .._doc import filler
from .._typing import Array, Namespace
from .._validation import check_choice, check_int, check_real
from ..esp import _log_ratio_and_grad
from ._public import call, grad_twin

__all__ = [
    "smooth_topk_svm",
    "smooth_topk_svm_and_grad",
    "topk_svm",
    "topk_svm_and_grad",
]

_METHODS = ("auto", "direct", "fft")


def _check_k(k: object, n_classes: int) -> int:
    """``1 <= k < n_classes``, checked at the call (the wrapper knows ``n_classes``)."""
    k = check_int("k", k, low=1)
    if k >= n_classes:
        msg = (
            f"`k` must be an integer with 1 <= k < n_classes "
            f"(got k={k}, n_classes={n_classes})"
        )
        raise ValueError(msg)
    return k


def _hard_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool, k: int, alpha: float
) -> tuple[Array, Array | None]:
    """max(alpha + (s_[k] of s without y - s_y)/k, 0) and its subgradient."""
    n, c = z.shape
    others = t.without_label(z)
    # The k-th largest non-label score: a stable descending argsort, column k-1.
    order = xp.argsort(others, axis=1, descending=True, stable=True)
    jk = order[:, k - 1 : k]
    kth = _xp.take_along_axis(z, jk, xp=xp, axis=1)[:, 0]
    margin = alpha + _xp.sub(kth, t.pick(z), xp=xp) / k
    loss = xp.maximum(margin, xp.zeros_like(margin))
    if not want_grad:
        return loss, None
    w = xp.where(margin > 0, xp.ones_like(margin), xp.zeros_like(margin)) / k
    classes = xp.arange(c, device=_xp.xp_device(z))[None, :]
    zero = xp.zeros((n, c), dtype=z.dtype, device=_xp.xp_device(z))
    grad = xp.where(classes == jk, w[:, None], zero)
    grad = xp.where(t.mask, -w[:, None], grad)
    return loss, grad


def _check_hard(*, n_classes: int, k: int = 5, alpha: float = 1.0) -> dict[str, Any]:
    return {
        "k": _check_k(k, n_classes),
        "alpha": check_real("alpha", alpha, low=0),
    }


def _topk_svm_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool, k: int, alpha: float
) -> tuple[Array, Array | None]:
    return _hard_rows(z, t, xp=xp, want_grad=want_grad, k=k, alpha=alpha)


# --------------------------------------------------------------------------------------
# Smooth top-k SVM.
# --------------------------------------------------------------------------------------


def _check_smooth(
    *,
    n_classes: int,
    k: int = 5,
    tau: float = 1.0,
    alpha: float = 1.0,
    method: str = "auto",
    hard_threshold: float | None = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "k": _check_k(k, n_classes),
        "tau": check_real("tau", tau, low=0, low_open=True),
        "alpha": check_real("alpha", alpha, low=0),
        "method": check_choice("method", method, _METHODS),
        "hard_threshold": None,
    }
    if hard_threshold is not None:
        params["hard_threshold"] = check_real("hard_threshold", hard_threshold, low=1)
    return params


def _smooth_k1(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool, tau: float, alpha: float
) -> tuple[Array, Array | None]:
    """k = 1: tau * softplus(r), r = logsumexp_{j != y}((s_j + alpha) / tau) - s_y / tau.

    The same value as ``tau * logsumexp((s + alpha [j != y] - s_y) / tau)``, in a
    form that keeps its relative accuracy when the label wins by far and the loss
    is tiny (``log`` of a sum near 1 would lose it), and so does the gradient:
    ``sigmoid(r)`` times the softmax of the others, ``-sigmoid(r)`` at the label.
    """
    inv = 1 / tau
    # alpha / tau apart, and m - s_y / tau first: with scores of 1e30 (s + alpha)
    # would lose alpha, and log(s) + m - s_y / tau the log.
    zs = z * inv
    wg = t.pick(zs)
    w = t.without_label(zs, overwrite=True)  # others only
    m = xp.max(w, axis=1, keepdims=True)
    e = _xp.exp_(_xp.sub(w, m, xp=xp, below=True), xp=xp)  # 0 at the label
    s = xp.sum(e, axis=1)
    r = (alpha * inv + xp.log(s)) + _xp.sub(m[:, 0], wg, xp=xp)
    loss = tau * _xp.softplus(r, xp=xp)
    if not want_grad:
        return loss, None
    sig = _xp.sigmoid(r, xp=xp)
    e *= (sig / s)[:, None]  # our own array
    return loss, t.set_label(e, -sig)


def _smooth_rows(
    z: Array,
    t: Targets,
    *,
    xp: Namespace,
    want_grad: bool,
    k: int,
    tau: float,
    alpha: float,
    method: str,
    hard_threshold: float | None,
) -> tuple[Array, Array | None]:
    n, c = z.shape
    if n == 0:
        loss = xp.zeros((0,), dtype=z.dtype, device=_xp.xp_device(z))
        return loss, (
            xp.zeros((0, c), dtype=z.dtype, device=_xp.xp_device(z))
            if want_grad
            else None
        )
    opts: dict[str, Any] = {"want_grad": want_grad, "k": k, "tau": tau, "alpha": alpha}
    loss, grad = _split_wide(z, t, opts, xp=xp, method=method)
    if hard_threshold is None:
        return loss, grad
    # Opt-in parity with the reference code: rows whose k-th and (k+1)-th largest
    # scores (label included) differ by >= k tau log(threshold) take the hard loss.
    top = xp.sort(z, axis=1, descending=True)
    gap = _xp.sub(top[:, k - 1], top[:, k], xp=xp)
    hard = gap >= k * tau * math.log(hard_threshold)
    h_loss, h_grad = _hard_rows(z, t, xp=xp, want_grad=want_grad, k=k, alpha=alpha)
    loss = xp.where(hard, h_loss, loss)
    if grad is not None:
        grad = xp.where(hard[:, None], h_grad, grad)
    return loss, grad


def _smooth_regular(
    z: Array,
    t: Targets,
    *,
    xp: Namespace,
    want_grad: bool,
    k: int,
    tau: Any,
    alpha: Any,
    method: str,
) -> tuple[Array, Array | None]:
    """The smooth loss on rows whose ``s / (k tau)`` stays below ``max / 4``."""
    if k == 1:
        return _smooth_k1(z, t, xp=xp, want_grad=want_grad, tau=tau, alpha=alpha)
    return _smooth_k(
        z, t, xp=xp, want_grad=want_grad, k=k, tau=tau, alpha=alpha, method=method
    )


def _wide_limit(xp: Namespace, dtype: Any, k: int, tau: Any) -> Any:
    """Scores beyond ``max k tau / 4`` in magnitude may overflow ``s / (k tau)`` or
    the differences the regular path forms from it (``inf`` when ``k tau >= 4``)."""
    return _at_most(float(xp.finfo(dtype).max) * (k * tau / 4), xp, dtype)


def _at_most(v: Any, xp: Namespace, dtype: Any) -> Any:
    """A Python float threshold capped at the dtype's maximum (NumPy warns when
    it casts a larger one to float32); traced values as they are."""
    return min(v, float(xp.finfo(dtype).max)) if isinstance(v, float) else v


def _any_wide(
    z: Array, *, k: int, tau: Any, xp: Namespace | None = None, **_: Any
) -> bool:
    """Whether a score of the eager ``z`` is beyond `_wide_limit` (two reductions)."""
    xp = _xp.array_namespace(z) if xp is None else xp
    lim = _wide_limit(xp, z.dtype, k, tau)
    if z.shape[0] == 0:
        return False
    return not (float(xp.max(z)) <= lim and float(xp.min(z)) >= -lim)


def _split_wide(
    z: Array, t: Targets, opts: dict[str, Any], *, xp: Namespace, method: str
) -> tuple[Array, Array | None]:
    """The regular path on ordinary rows, `_smooth_wide` on the rows whose scores
    exceed `_wide_limit` (two reductions decide that no row does, the usual case;
    in a traced JAX program `_smooth_traced`, both in one).  ``opts``: the
    keywords ``want_grad``, ``k``, ``tau`` and ``alpha`` of both paths."""
    k, tau, want_grad = opts["k"], opts["tau"], opts["want_grad"]
    if is_jax_array(z) and _xp.is_lazy(z):  # a tracer, or inside `jax.jit`
        return _smooth_traced(z, t, xp=xp, method=method, **opts)
    if not _any_wide(z, xp=xp, k=k, tau=tau):
        return _smooth_regular(z, t, xp=xp, method=method, **opts)
    wide = xp.max(xp.abs(z), axis=1) > _wide_limit(xp, z.dtype, k, tau)
    if bool(xp.all(wide)):
        return _smooth_wide(z, t, xp=xp, method=method, **opts)
    parts = []
    for sel in (~wide, wide):
        (idx,) = xp.nonzero(sel)
        zi = xp.take(z, idx, axis=0)
        ti = Targets(
            index=xp.take(t.index, idx, axis=0), soft=None, n_classes=t.n_classes,
            dtype=t.dtype, xp=xp,
        )  # fmt: skip
        run = _smooth_wide if sel is wide else _smooth_regular
        parts.append((idx, *run(zi, ti, xp=xp, method=method, **opts)))
    # Back in the caller's row order: row i of the stacked parts is row order[i].
    where = xp.argsort(xp.concat([parts[0][0], parts[1][0]]))
    loss = xp.take(xp.concat([parts[0][1], parts[1][1]]), where, axis=0)
    if not want_grad:
        return loss, None
    grad = xp.take(xp.concat([parts[0][2], parts[1][2]], axis=0), where, axis=0)
    return loss, grad


def _wide_width(xp: Namespace, dtype: Any, n: int, k: int) -> float:
    """``G = 2 log(1/eps) + log(n k)``: an entry of ``(s - c) / (k tau)`` beyond
    ``+-G`` weighs ``exp(-G) < eps^2 / (n k)`` against the k-th largest, so clipping
    it there (above) or dropping it (below) changes no digit of the result."""
    eps = float(xp.finfo(dtype).eps)
    return 2 * math.log(1 / eps) + math.log(n * k)


def _smooth_wide(
    z: Array,
    t: Targets,
    *,
    xp: Namespace,
    want_grad: bool,
    k: int,
    tau: Any,
    alpha: Any,
    method: str,
) -> tuple[Array, Array | None]:
    """The smooth loss where ``s / (k tau)`` (or a difference of it) overflows.

    Every row is shifted in score units by ``c``, its k-th largest other score,
    before the division: ``x' = (s - c) / (k tau)``, with the entries beyond
    ``+-G`` (`_wide_width`) clipped to ``G`` or dropped (exact in floating point:
    such an entry is in every k-subset that counts, or in none).  Then
    ``r = alpha / tau + log(e_k(x') / e_{k-1}(x')) + (c - s_y) / (k tau)``, the
    last term saturated to ``+-inf`` past ``max / 2`` (where ``sigmoid(r)`` is 0 or
    1 and ``exp(-|r|)`` is 0), and where ``r`` is ``+inf`` the loss is formed in
    score units, ``alpha + tau log(e_k(x') / e_{k-1}(x')) + (c - s_y) / k``: the
    hard top-k SVM's linear branch plus the smoothing term.
    """
    x, off, c, sy = _wide_inputs(z, t, xp=xp, k=k, tau=tau)
    a = alpha / tau
    if k == 1:
        e = xp.exp(x)  # x <= 0, 1 at the maximum
        s = xp.sum(e, axis=1)
        rho = xp.log(s)
        g = None
        if want_grad:
            g = e / s[:, None]
    else:

        def coef(rho: Array, off: Array) -> tuple[Array, Array]:
            c1 = _xp.sigmoid((a + rho) + off, xp=xp) / k
            return c1, c1

        rho, g = _log_ratio_and_grad(
            x, k, xp=xp, method=method, coef=coef if want_grad else None, aux=off
        )
    r = (a + rho) + off
    linear = (alpha + tau * rho) + _xp.sub(c / k, sy / k, xp=xp)  # inf past max
    loss = xp.where(r == xp.inf, linear, tau * _xp.softplus(r, xp=xp))
    if g is None:
        return loss, None
    sig = _xp.sigmoid(r, xp=xp)
    if k == 1:
        g = g * sig[:, None]
    return loss, t.set_label(g, -sig / k)


def _wide_inputs(
    z: Array, t: Targets, *, xp: Namespace, k: int, tau: Any
) -> tuple[Array, Array, Array, Array]:
    """`_smooth_wide`'s rows in score units: ``x' = (s - c) / (k tau)`` clipped
    (``-inf`` at the label), ``(c - s_y) / (k tau)`` saturated, ``c`` and
    ``s_y``; finite (but for the saturation) for every finite ``z``."""
    nc = z.shape[1]
    fmax = float(xp.finfo(z.dtype).max)
    kt = k * tau
    width = _wide_width(xp, z.dtype, nc, k)
    others = t.without_label(z)  # -inf at the label
    sy = t.pick(z)
    if k == 1:
        c = xp.max(others, axis=1)
    else:
        c = xp.sort(others, axis=1, descending=True)[:, k - 1]
    d = _xp.sub(others, c[:, None], xp=xp)  # -inf at the label, +-inf past the range
    lim = _at_most(width * kt, xp, z.dtype)
    inside = xp.abs(d) <= lim
    x = xp.where(inside, d, xp.zeros_like(d)) / kt
    clipped = xp.where(d > 0, xp.full_like(d, width), xp.full_like(d, -xp.inf))
    x = xp.where(inside, x, clipped)
    dy = _xp.sub(c, sy, xp=xp)
    fits = xp.abs(dy) <= _at_most(0.5 * fmax * kt, xp, z.dtype)
    off = xp.where(fits, dy, xp.zeros_like(dy)) / kt
    inf = xp.full_like(dy, xp.inf)
    off = xp.where(fits, off, xp.where(dy > 0, inf, -inf))
    return x, off, c, sy


def _smooth_traced(
    z: Array,
    t: Targets,
    *,
    xp: Namespace,
    want_grad: bool,
    k: int,
    tau: Any,
    alpha: Any,
    method: str,
) -> tuple[Array, Array | None]:
    """`_split_wide` in a traced JAX program, without branching on values: one
    pass of the regular path whose inputs are, on the rows past `_wide_limit`,
    `_smooth_wide`'s (selected by ``where``; the tree is traced once).  Ordinary
    rows see exactly the regular path's operations: their extra terms are
    ``+ 0``."""
    wide = xp.max(xp.abs(z), axis=1) > _wide_limit(xp, z.dtype, k, tau)
    xw, off_w, c, sy = _wide_inputs(z, t, xp=xp, k=k, tau=tau)
    zero = xp.zeros_like(off_w)
    linear = _xp.sub(c / k, sy / k, xp=xp)  # the hard loss's branch, less alpha
    if k == 1:
        inv = 1 / tau
        zs = z * inv
        wg = t.pick(zs)
        w = xp.where(wide[:, None], xw, t.without_label(zs))
        m = xp.max(w, axis=1, keepdims=True)  # 0 on the wide rows
        e = xp.exp(_xp.sub(w, m, xp=xp, below=True))
        s = xp.sum(e, axis=1)
        rho = xp.log(s)
        off = xp.where(wide, off_w, _xp.sub(m[:, 0], wg, xp=xp))
        r = (alpha * inv + rho) + off
        g = e
    else:
        inv = 1 / (k * tau)
        a = alpha / tau
        zs = z * inv
        x = xp.where(wide[:, None], xw, t.without_label(zs))
        ref = xp.where(wide, zero, t.pick(zs))
        aux = xp.where(wide, off_w, zero)

        def coef(rho: Array, aux: Array) -> tuple[Array, Array]:
            c1 = _xp.sigmoid((a + rho) + aux, xp=xp) / k
            return c1, c1

        rho, g = _log_ratio_and_grad(
            x, k, xp=xp, method=method, coef=coef if want_grad else None,
            aux=aux, ref=ref,
        )  # fmt: skip
        r = (a + rho) + aux
    past = wide & (r == xp.inf)
    loss = xp.where(past, (alpha + tau * rho) + linear, tau * _xp.softplus(r, xp=xp))
    if not want_grad:
        return loss, None
    sig = _xp.sigmoid(r, xp=xp)
    if k == 1:
        g = e * (sig / s)[:, None]
    return loss, t.set_label(g, -sig / k)


def _smooth_k(
    z: Array,
    t: Targets,
    *,
    xp: Namespace,
    want_grad: bool,
    k: int,
    tau: float,
    alpha: float,
    method: str,
) -> tuple[Array, Array | None]:
    if _esp_compiled.applies(xp, z, method):  # NumPy with numba: one compiled pass
        return _esp_compiled.smooth_topk_rows(
            z, t.index, k=k, tau=tau, alpha=alpha, want_grad=want_grad
        )
    inv = 1 / (k * tau)
    a = alpha / tau
    # x = s / (k tau) with the label as an absent entry (weight exp(-inf) = 0);
    # x_y from the same product (XLA rounded a separate z_y * inv differently).
    zs = z * inv
    xg = t.pick(zs)
    x = t.without_label(zs, overwrite=True)  # a fresh array of our own

    def coef(rho: Array, _: Any) -> tuple[Array, Array]:
        c1 = _xp.sigmoid(a + rho, xp=xp) / k
        return c1, c1

    # rho = log(e_k/e_{k-1}) - x_y, formed from rows shifted near their k-th
    # largest entry (scores of 1e30 keep the digits of the difference).
    rho, g = _log_ratio_and_grad(
        x, k, xp=xp, method=method, coef=coef if want_grad else None, ref=xg
    )
    r = a + rho
    loss = tau * _xp.softplus(r, xp=xp)
    if not want_grad:
        return loss, None
    return loss, t.set_label(g, -_xp.sigmoid(r, xp=xp) / k)


_SMOOTH = Kernel(
    "smooth_topk_svm",
    _smooth_rows,
    soft_labels=False,
    min_classes=2,
    check_params=_check_smooth,
    jax_compile=("tau", "alpha"),
)
_HARD = Kernel(
    "topk_svm",
    _topk_svm_rows,
    soft_labels=False,
    min_classes=2,
    check_params=_check_hard,
    jax_compile=("alpha",),
)


_fill = filler(
    {
        "references_berrada": """\
References
----------
.. [1] L. Berrada, A. Zisserman and M. P. Kumar, "Smooth Loss Functions for
   Deep Top-k Classification", ICLR 2018, arXiv:1802.07595.""",
    }
)
"""`arrayloss._doc.fill_doc` with the paper both top-k SVMs cite."""


@_fill
def smooth_topk_svm(
    logits: Array,
    labels: Array,
    /,
    *,
    k: int = 5,
    tau: float = 1.0,
    alpha: float = 1.0,
    method: str = "auto",
    hard_threshold: float | None = None,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Smooth top-k SVM loss :math:`L_{k,\tau}` of Berrada, Zisserman & Kumar.

    With :math:`x = s / (k\tau)`, :math:`e_m` the elementary symmetric polynomials
    of :math:`\exp(x_j)` over the classes :math:`j \ne y`, and
    :math:`\sigma` the logistic function,

    .. math::

        L_{k,\tau}(s, y) = \tau \operatorname{softplus}(r), \qquad
        r = \frac{\alpha}{\tau} + \log e_k - \log e_{k-1} - x_y ,

    the smoothing (max replaced by :math:`\tau`-log-sum-exp over k-subsets) of the
    top-k hinge :math:`\max(\alpha + (s_{\setminus y, [k]} - s_y)/k,\ 0)`
    (:func:`topk_svm`).  Its gradient is

    .. math::

        \frac{\partial L}{\partial s_j} = \frac{\sigma(r)}{k}
            \big(\pi^{(k)}_j - \pi^{(k-1)}_j\big) \ (j \ne y), \qquad
        \frac{\partial L}{\partial s_y} = -\frac{\sigma(r)}{k},

    with :math:`\pi^{(m)}_j = \partial \log e_m / \partial x_j`, the probability
    that class ``j`` is in a k-subset drawn with weights :math:`\prod e^{x}`.  It
    sums to zero and is non-negative off the label.

    The polynomials are computed in a tilted linear space by a divide-and-conquer
    product with a reverse sweep for the gradient (:mod:`arrayloss.esp`): ``O(C k)``
    work, float32 stays float32, and relative errors of a few ulps times
    ``max|s|/(k tau)``.

    **Scores near the float range.**  A row with a score beyond ``max k tau / 4``
    in magnitude (``max`` the dtype's largest float: only with a small ``tau`` or
    scores near ``max``), where ``s / (k tau)`` or differences of it would
    overflow, is computed in score units instead: shifted by its k-th largest
    other score ``c`` before the division, the entries of ``(s - c)/(k tau)``
    beyond ``+-G`` (``G = 2 log(1/eps) + log(C k)``) clipped to ``G`` or dropped,
    which is exact in floating point (such a class is in every k-subset that
    counts, or in none), and where ``r`` overflows the loss is
    ``alpha + tau log(e_k/e_{k-1}) + (c - s_y)/k`` (the hard loss's linear branch
    plus the smoothing term).  Value and gradient are then finite wherever the loss
    is below ``max``, and silent; other rows take the regular path unchanged.
    Inside a traced JAX program (``jax.jit`` of this function, `arrayloss.jax`
    without host kernels) too: there every row's inputs are chosen by ``where``
    and the regular path runs once on all of them.

    Identities: ``k=1`` is :math:`\tau \operatorname{lse}((s + \alpha[j \ne y] -
    s_y)/\tau)` (the code's smooth top-1 SVM); ``k=1, tau=1, alpha=0`` is
    :func:`~arrayloss.cross_entropy`; as ``tau -> 0`` it tends to :func:`topk_svm`.

    %(parameters_index)s
    k : int
        ``1 <= k < C``.
    tau : float
        Temperature, ``tau > 0``.
    alpha : float
        Margin, ``alpha >= 0``.  The reference code's normalisation: the raw-score
        margin is ``k * alpha``.
    method : {"auto", "direct", "fft"}
        Polynomial products by direct convolution, by FFT at every level, or
        (``"auto"``) by FFT only where the operand degree is >= 64 (``k >= 64``).
    hard_threshold : float >= 1, optional
        Parity with the reference implementation (its value is ``1e3``): a sample
        whose k-th and (k+1)-th largest scores (label included) differ by at least
        ``k * tau * log(hard_threshold)`` takes the hard loss :func:`topk_svm` and
        its subgradient.  This changes the loss (by up to ~3e-3) and makes the
        gradient jump, so it is off by default.
    %(common_returns)s

    Raises
    ------
    ValueError
        For ``k`` outside ``1 <= k < C``, ``tau <= 0``, ``alpha < 0``, a
        ``hard_threshold`` below 1, or soft labels.

    %(references_berrada)s

    %(examples)s
    >>> y = np.array([2])
    >>> print(f"{float(al.smooth_topk_svm(s, y, k=2)):.10f}")
    2.5889173872
    >>> ce = al.cross_entropy(s, y)
    >>> bool(np.isclose(al.smooth_topk_svm(s, y, k=1, alpha=0.0), ce))
    True
    """
    return call(_SMOOTH, locals())


smooth_topk_svm_and_grad = grad_twin(_SMOOTH, smooth_topk_svm)


@_fill
def topk_svm(
    logits: Array,
    labels: Array,
    /,
    *,
    k: int = 5,
    alpha: float = 1.0,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Hard top-k SVM loss of Berrada, Zisserman & Kumar (the code's normalisation).

    .. math::

        l_k(s, y) = \max\Big(\alpha + \frac{s_{\setminus y, [k]} - s_y}{k},\ 0\Big)
        = \max_{|S|=k} \Big[\alpha [y \notin S] + \frac{1}{k}\sum_{j \in S} s_j\Big]
          - \max_{|S|=k,\ y \in S} \frac{1}{k}\sum_{j \in S} s_j ,

    with :math:`s_{\setminus y, [k]}` the k-th largest score other than the label's:
    zero once the label beats the k-th best other class by the raw margin
    ``k * alpha``.  This is exactly the reference code's ``Topk_Hard_SVM``, and the
    ``tau -> 0`` limit of :func:`smooth_topk_svm`.  Subgradient: ``+1/k`` at the
    k-th best other class and ``-1/k`` at the label where the loss is positive, 0
    elsewhere (ties go to the lower class index).

    %(parameters_index)s
    k : int
        ``1 <= k < C``.
    alpha : float
        Margin, ``alpha >= 0``.
    %(common_returns)s

    %(references_berrada)s

    %(examples)s
    >>> print(f"{float(al.topk_svm(s, np.array([2]), k=2)):.6f}")
    2.400000
    """
    return call(_HARD, locals())


topk_svm_and_grad = grad_twin(_HARD, topk_svm)
