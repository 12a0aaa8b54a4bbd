"""Symmetric cross-entropy, normalized cross-entropy and the active-passive pairs
NCE+RCE and NCE+MAE: the label-noise losses of Wang et al. (2019) and Ma et al.
(2020).

Shared parts: the reverse cross-entropy ``RCE = -sum_k p_k log t_k`` with
``log 0 := A``, and the normalized cross-entropy ``NCE = CE / sum_j (-log p_j)``,
both from the exact softmax parts of `_janocha._softmax_parts`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import _xp
from .._api import Kernel, Targets
from .._doc import filler
from .._typing import Array, Namespace
from .._validation import check_real
from ._janocha import _expectation_rows, _log_loss, _residual, _softmax_parts
from ._public import call, grad_twin
from ._robust import label_parts, through_label

Rows = tuple[Array, Array | None]

__all__ = [
    "nce_mae",
    "nce_mae_and_grad",
    "nce_rce",
    "nce_rce_and_grad",
    "normalized_cross_entropy",
    "normalized_cross_entropy_and_grad",
    "symmetric_cross_entropy",
    "symmetric_cross_entropy_and_grad",
]


def _rce(
    p: Array, c: Array, resid: Array, t: Targets, A: float, *, xp: Namespace
) -> tuple[Array, Array]:
    """RCE and its gradient from the softmax parts (``resid = p - t``)."""
    if t.index is not None:
        # -A sum_{k != y} p_k = -A (1 - p_y); gradient A p_y (e_y - p).
        return -A * t.pick(c), (-A * t.pick(p))[:, None] * resid
    q = t.probs
    has = q > 0
    log_q = xp.where(has, xp.log(xp.where(has, q, xp.ones_like(q))), xp.full_like(q, A))
    mean = xp.sum(p * log_q, axis=1, keepdims=True)
    return -mean[:, 0], -p * (log_q - mean)


def _nce_ratio(
    ce: Array, u_c: Array, z: Array, t: Targets, log_s: Array, *, xp: Namespace
) -> Array:
    """``NCE = ce / C / u_c`` (``u_c = U / C``, each ``(n,)``), and from the halves
    ``z/2 - max z/2`` (which cannot overflow) in the rows where ``z - max z`` did:
    a spread beyond the largest float makes ``CE`` and ``U`` both infinite, their
    ratio (in ``[0, 1]``) not.  ``log_s`` is the log of the shifted sum."""
    ok = xp.isfinite(ce) & xp.isfinite(u_c)
    n_classes = z.shape[1]
    if not _xp.is_lazy(z) and bool(xp.all(ok)):
        return ce / n_classes / u_c
    half = 0.5 * z - 0.5 * xp.max(z, axis=1, keepdims=True)
    nl = 0.5 * log_s[:, None] - half  # -log(p) / 2
    u_half = xp.sum(nl / n_classes, axis=1)
    ce_half = (
        t.pick(nl)
        if t.index is not None
        else xp.sum(_xp.times_mass(t.probs, nl, xp=xp), axis=1)
    )
    one = xp.ones_like(u_c)
    plain = xp.where(ok, ce, xp.zeros_like(ce)) / n_classes / xp.where(ok, u_c, one)
    return xp.where(ok, plain, ce_half / n_classes / u_half)


def _nce(
    z: Array,
    p: Array,
    c: Array,
    w: Array,
    log_s: Array,
    resid: Array,
    t: Targets,
    *,
    xp: Namespace,
) -> tuple[Array, Array]:
    """NCE = CE / sum_j(-log p_j) and its gradient ``((p - t) - NCE (C p - 1)) / U``.

    ``U / C`` is summed instead of ``U`` (a mean of ``-log p_j``), so that scores
    spread near the largest float give a finite ``U / C`` without an overflow.
    """
    nl = log_s - w  # -log p >= 0: the sum has no cancellation
    n_classes = p.shape[1]
    u_c = xp.sum(nl / n_classes, axis=1, keepdims=True)  # U / C
    if t.index is not None:
        ce = t.pick(nl)
    else:
        terms = _xp.times_mass(t.probs, nl, xp=xp)
        near = _xp.near_range_rows(terms, xp=xp)
        if near is None:
            ce = xp.sum(terms, axis=1)
        else:  # inf, quietly, where the sum may overflow: the ratio from halves
            kept = xp.sum(xp.where(near[:, None], xp.zeros_like(terms), terms), axis=1)
            ce = xp.where(near, xp.full_like(kept, xp.inf), kept)
    nce = _nce_ratio(ce, u_c[:, 0], z, t, log_s[:, 0], xp=xp)
    return nce, (resid - nce[:, None] * (n_classes * p - 1)) / n_classes / u_c


def _nce_index(
    z: Array,
    t: Targets,
    *,
    xp: Namespace,
    want_grad: bool,
    alpha: float,
    beta: float,
    kappa: float,
) -> tuple[Array, Array | None]:
    """``alpha NCE + beta kappa (1 - p_y)`` for index labels, with one ``(n, C)``
    array: RCE is ``kappa = -A``, MAE ``kappa = 2``.

    ``U = sum_j(-log p_j) = C (log s - mean_j w_j)`` (``w = z - max z <= 0``: two
    terms of one sign; ``U / C`` is what is computed, so it cannot overflow), and the gradient is ``a p + b`` off the label with
    ``a = alpha (1 - C NCE) / U + beta kappa p_y``, ``b = alpha NCE / U``.
    """
    p, p_y, c_y, log_p, s, w_mean = label_parts(
        z, t, xp=xp, want_p=want_grad, want_wsum=True
    )
    n_classes = z.shape[1]
    u_c = xp.log(s) - w_mean  # U / C: cannot overflow where U would
    nce = _nce_ratio(-log_p, u_c, z, t, xp.log(s), xp=xp)
    loss = alpha * nce + (beta * kappa) * c_y
    if p is None:
        return loss, None
    a = alpha * (1 - n_classes * nce) / n_classes / u_c + (beta * kappa) * p_y
    p *= a[:, None]
    p += (alpha * nce / n_classes / u_c)[:, None]
    g_y = (
        alpha * (-c_y - nce * (n_classes * p_y - 1)) / n_classes / u_c
        - (beta * kappa) * p_y * c_y
    )
    return loss, t.set_label(p, g_y)


def _times(weight: float, term: Array, *, xp: Namespace) -> Array:
    """``weight * term``, and ``0`` for a zero weight even where ``term`` overflowed
    (``alpha = 0`` leaves the loss ``beta RCE``, not ``0 * inf = nan``)."""
    return weight * term if weight else xp.zeros_like(term)


def _times_ce(
    alpha: float, log_p: Array, z: Array, t: Targets, *, xp: Namespace
) -> Array:
    """``alpha CE = -alpha log p_y`` of index labels, finite wherever it is: where
    ``log p_y`` overflowed (``z_y - max z`` below ``-max``) from the halves of the
    shift (`_xp.times_mass`), so that ``alpha = 0.1`` at a CE of ``1.8e308`` gives
    ``1.8e307``, not ``inf``; ``0`` for ``alpha = 0`` (`_times`)."""
    if not alpha:
        return _times(alpha, log_p, xp=xp)
    top = xp.max(z, axis=1)
    return _xp.times_mass(
        xp.full_like(log_p, alpha), -log_p, xp=xp, scores=t.pick(z), top=top
    )


def _alpha_ce(
    alpha: float, z: Array, w: Array, log_s: Array, t: Targets, *, xp: Namespace
) -> Array:
    """``alpha CE`` of soft labels: ``alpha (lse(w) - <q, w>)`` from `_log_loss`'s
    terms, bit for bit, except in rows whose ``<q, w>`` is beyond the float range
    while ``alpha CE`` need not be (``alpha < 1``): there ``alpha lse(w) - <alpha
    q, w>``, the masses scaled first (``0.1`` times a CE of ``1.8e308`` is
    ``1.8e307``, not inf), without the sum's 'overflow' warning.  The soft-label
    twin of `_times_ce`."""
    if not alpha:  # not even formed (its sum may overflow, with a warning)
        return xp.zeros_like(log_s[:, 0])
    if alpha >= 1:
        return alpha * _log_loss(z, w, log_s, t, xp=xp)
    terms = _xp.times_mass(t.probs, w, xp=xp, scores=z)  # each <= 0
    near = _xp.near_range_rows(terms, xp=xp)
    if near is None:
        return alpha * (log_s[:, 0] - xp.sum(terms, axis=1))  # cannot overflow
    over = near[:, None]
    zero = xp.zeros_like(terms)
    plain = log_s[:, 0] - xp.sum(xp.where(over, zero, terms), axis=1)
    q = xp.where(over, alpha * t.probs, zero)
    scaled = alpha * log_s[:, 0] - xp.sum(_xp.times_mass(q, w, xp=xp, scores=z), axis=1)
    return xp.where(over[:, 0], scaled, alpha * plain)


def _check_ab(alpha: float, beta: float) -> dict[str, float]:
    return {
        "alpha": check_real("alpha", alpha, low=0),
        "beta": check_real("beta", beta, low=0),
    }


# ----------------------------------------------------------------------------- kernels


def _rows(active: str, passive: str | None) -> Callable[..., Rows]:
    """The kernel of ``alpha * active + beta * passive``: ``active`` is ``"ce"``
    or ``"nce"``, ``passive`` is ``"rce"`` (with ``log 0 := A``), ``"mae"`` (the
    expectation loss) or ``None``."""

    def rows(
        z: Array,
        t: Targets,
        *,
        xp: Namespace,
        want_grad: bool,
        alpha: float = 1.0,
        beta: float = 0.0,
        A: float = 0.0,
    ) -> Rows:
        if t.index is not None and active == "ce":
            p, p_y, c_y, log_p, _, _ = label_parts(z, t, xp=xp, want_p=want_grad)
            loss = _times_ce(alpha, log_p, z, t, xp=xp) - beta * A * c_y
            if p is None:
                return loss, None
            return loss, through_label(p, beta * A * p_y - alpha, c_y, t, xp=xp)
        if t.index is not None:
            kappa = 2.0 if passive == "mae" else -A
            return _nce_index(
                z, t, xp=xp, want_grad=want_grad, alpha=alpha, beta=beta, kappa=kappa
            )
        p, c, w, log_s = _softmax_parts(z, xp=xp)
        resid = _residual(p, c, t.probs)
        if active == "ce":  # alpha CE itself (finite wherever it is)
            first: tuple[Array, Array] = (
                _alpha_ce(alpha, z, w, log_s, t, xp=xp),
                resid,
            )
        else:
            first = _nce(z, p, c, w, log_s, resid, t, xp=xp)
        if passive is None:
            return first[0], (first[1] if want_grad else None)
        if passive == "rce":
            second: Rows = _rce(p, c, resid, t, A, xp=xp)
        else:
            second = _expectation_rows(z, t, xp=xp, want_grad=want_grad)
        active_term = first[0] if active == "ce" else _times(alpha, first[0], xp=xp)
        loss = active_term + _times(beta, second[0], xp=xp)
        if not want_grad or second[1] is None:
            return loss, None
        return loss, alpha * first[1] + beta * second[1]

    return rows


def _sce_check(
    *, n_classes: int, alpha: float = 0.1, beta: float = 1.0, A: float = -4.0
) -> dict[str, Any]:
    return {**_check_ab(alpha, beta), "A": check_real("A", A, high=0)}


def _nce_rce_check(
    *, n_classes: int, alpha: float = 1.0, beta: float = 1.0, A: float = -4.0
) -> dict[str, Any]:
    return _sce_check(n_classes=n_classes, alpha=alpha, beta=beta, A=A)


def _nce_mae_check(
    *, n_classes: int, alpha: float = 1.0, beta: float = 1.0
) -> dict[str, Any]:
    return _check_ab(alpha, beta)


_SCE = Kernel("symmetric_cross_entropy", _rows("ce", "rce"), check_params=_sce_check)
_NCE = Kernel("normalized_cross_entropy", _rows("nce", None), min_classes=2)
_NCE_RCE = Kernel(
    "nce_rce", _rows("nce", "rce"), min_classes=2, check_params=_nce_rce_check
)
_NCE_MAE = Kernel(
    "nce_mae", _rows("nce", "mae"), min_classes=2, check_params=_nce_mae_check
)

_fill = filler(
    {
        "rce": r"""The reverse cross-entropy is

.. math::

    \mathrm{RCE}(s, t) = -\sum_k p_k \log t_k \quad (\log 0 := A),
    \qquad \frac{\partial\, \mathrm{RCE}}{\partial s}
        = -p \odot (L - \langle p, L \rangle), \quad L_k = \log t_k,

for a one-hot target ``-A (1 - p_y)``, with gradient ``A p_y (e_y - p)``.""",
        "nce": r"""The normalized cross-entropy divides CE by its sum over all labels:

.. math::

    \mathrm{NCE}(s, t) = \frac{-\sum_k t_k \log p_k}{-\sum_j \log p_j} = \frac{N}{U},
    \qquad \frac{\partial\, \mathrm{NCE}}{\partial s}
        = \frac{(p - t) - \mathrm{NCE}\,(C p - 1)}{U},

in [0, 1]; both sums have terms of one sign (no cancellation).""",
        "A": "A : float <= 0\n    The value that stands for ``log 0`` in RCE.",
        "references_ma": """References
----------
.. [1] X. Ma, H. Huang, Y. Wang, S. Romano, S. Erfani and J. Bailey,
   "Normalized Loss Functions for Deep Learning with Noisy Labels",
   ICML 2020, arXiv:2006.13554.""",
        "references_wang": """References
----------
.. [1] Y. Wang, X. Ma, Z. Chen, Y. Luo, J. Yi and J. Bailey, "Symmetric Cross
   Entropy for Robust Learning with Noisy Labels", ICCV 2019,
   arXiv:1908.06112.""",
    }
)
"""`arrayloss._doc.fill_doc` with the RCE and NCE paragraphs, the parameter ``A``
and the papers of Ma et al. and Wang et al."""


@_fill
def symmetric_cross_entropy(
    logits: Array,
    labels: Array,
    /,
    *,
    alpha: float = 0.1,
    beta: float = 1.0,
    A: float = -4.0,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Symmetric cross-entropy (Wang et al. 2019): ``alpha CE + beta RCE``.

    %(rce)s

    So for a one-hot target

    .. math::

        \ell(s, y) = -\alpha \log p_y - \beta A (1 - p_y),
        \qquad \frac{\partial \ell}{\partial s} = (\beta A p_y - \alpha)(e_y - p).

    ``beta = 0`` is ``alpha`` times :func:`cross_entropy`.  The defaults are the
    paper's CIFAR-10 setting.  ``log p_y`` comes from the log-softmax and
    ``1 - p_y`` is the exact complement.

    %(parameters)s
    alpha, beta : float >= 0
        Weights of CE and RCE.
    %(A)s
    %(common_returns)s

    %(references_wang)s

    %(examples)s
    >>> print(f"{float(al.symmetric_cross_entropy(s, np.array([2]))):.6f}")
    4.324166
    """
    return call(_SCE, locals())


symmetric_cross_entropy_and_grad = grad_twin(_SCE, symmetric_cross_entropy)


@_fill
def normalized_cross_entropy(
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
    r"""Normalized cross-entropy (Ma et al. 2020), robust to symmetric label noise.

    %(nce)s

    It needs ``C >= 2`` classes (then ``U >= log 2``).

    %(parameters_returns)s

    %(references_ma)s

    %(examples)s
    >>> print(f"{float(al.normalized_cross_entropy(s, np.array([2]))):.6f}")
    0.348783
    """
    return call(_NCE, locals())


normalized_cross_entropy_and_grad = grad_twin(_NCE, normalized_cross_entropy)


@_fill
def nce_rce(
    logits: Array,
    labels: Array,
    /,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    A: float = -4.0,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""The active-passive loss NCE+RCE (Ma et al. 2020): ``alpha NCE + beta RCE``.

    %(nce)s

    %(rce)s

    The defaults ``alpha = beta = 1`` are the paper's CIFAR-10 setting.

    %(parameters)s
    alpha, beta : float >= 0
        Weights of NCE (active) and RCE (passive).
    %(A)s
    %(common_returns)s

    %(references_ma)s

    %(examples)s
    >>> print(f"{float(al.nce_rce(s, np.array([2]))):.6f}")
    4.274429
    """
    return call(_NCE_RCE, locals())


nce_rce_and_grad = grad_twin(_NCE_RCE, nce_rce)


@_fill
def nce_mae(
    logits: Array,
    labels: Array,
    /,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""The active-passive loss NCE+MAE (Ma et al. 2020): ``alpha NCE + beta MAE``.

    %(nce)s

    MAE is the paper's ``sum_k |p_k - t_k|``, :func:`expectation` (``2 (1 - p_y)``
    for a one-hot target, gradient ``-2 p_y (e_y - p)``; it has kinks where
    ``p_k = t_k`` for soft targets).  The defaults ``alpha = beta = 1`` are the
    paper's CIFAR-10 setting.

    %(parameters)s
    alpha, beta : float >= 0
        Weights of NCE (active) and MAE (passive).
    %(common_returns)s

    %(references_ma)s

    %(examples)s
    >>> print(f"{float(al.nce_mae(s, np.array([2]))):.6f}")
    2.311606
    """
    return call(_NCE_MAE, locals())


nce_mae_and_grad = grad_twin(_NCE_MAE, nce_mae)
