"""Hinge losses on raw scores: Janocha's one-vs-all hinge, squared and cubed hinge,
and the multiclass SVMs of Weston–Watkins and Crammer–Singer.

Subgradients at the kinks follow ``1[0 > 0] = 0``: a margin term that is exactly
zero contributes nothing to the gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import _xp
from .._api import Kernel, Targets
from .._doc import filler
from .._typing import Array, Namespace
from .._validation import check_real
from ._public import call, grad_twin

__all__ = [
    "crammer_singer",
    "crammer_singer_and_grad",
    "cubed_hinge",
    "cubed_hinge_and_grad",
    "hinge",
    "hinge_and_grad",
    "multiclass_hinge",
    "multiclass_hinge_and_grad",
    "squared_hinge",
    "squared_hinge_and_grad",
]


def _check(*, n_classes: int, margin: float) -> dict[str, Any]:
    return {"margin": check_real("margin", margin, low=0)}


def _one_vs_all(power: int) -> Callable[..., tuple[Array, Array | None]]:
    """The kernel of ``sum_j max(0, m - yhat_j z_j)**power`` with ``yhat = 2t - 1``
    (``power`` 1, 2 or 3: the hinge, squared and cubed hinge)."""

    def rows(
        z: Array, t: Targets, *, xp: Namespace, want_grad: bool, margin: float
    ) -> tuple[Array, Array | None]:
        yhat = 2 * t.probs - 1
        h = xp.maximum(margin - yhat * z, xp.zeros_like(z))
        if power == 1:
            loss = xp.sum(h, axis=1)
            grad = xp.where(h > 0, -yhat, xp.zeros_like(z)) if want_grad else None
        elif power == 2:
            loss = xp.sum(h * h, axis=1)
            grad = -2 * yhat * h if want_grad else None
        else:
            h2 = h * h
            loss = xp.sum(h2 * h, axis=1)
            grad = -3 * yhat * h2 if want_grad else None
        return loss, grad

    return rows


def _multiclass_hinge_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool, margin: float
) -> tuple[Array, Array | None]:
    h = _xp.sub(z, t.pick(z)[:, None], xp=xp) + margin  # quiet -inf
    active = (h > 0) & ~t.mask
    loss = xp.sum(xp.where(active, h, xp.zeros_like(h)), axis=1)
    if not want_grad:
        return loss, None
    a = xp.astype(active, z.dtype)
    count = xp.sum(a, axis=1, keepdims=True)
    return loss, a - xp.astype(t.mask, z.dtype) * count


def _crammer_singer_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool, margin: float
) -> tuple[Array, Array | None]:
    others = t.without_label(z)
    h = _xp.sub(margin + xp.max(others, axis=1), t.pick(z), xp=xp)
    loss = xp.maximum(h, xp.zeros_like(h))
    if not want_grad:
        return loss, None
    # +1 at the first arg-max among the other classes, -1 at the label, if active.
    idx = xp.argmax(others, axis=1)
    classes = xp.arange(z.shape[1], device=_xp.xp_device(z))
    star = xp.astype(classes == idx[:, None], z.dtype)
    active = xp.astype(h > 0, z.dtype)[:, None]
    return loss, (star - xp.astype(t.mask, z.dtype)) * active


_HINGE_KERNEL = Kernel("hinge", _one_vs_all(1), check_params=_check)
_SQUARED_HINGE_KERNEL = Kernel("squared_hinge", _one_vs_all(2), check_params=_check)
_CUBED_HINGE_KERNEL = Kernel("cubed_hinge", _one_vs_all(3), check_params=_check)
_MULTICLASS_HINGE_KERNEL = Kernel(
    "multiclass_hinge", _multiclass_hinge_rows, soft_labels=False, check_params=_check
)
_CRAMMER_SINGER_KERNEL = Kernel(
    "crammer_singer",
    _crammer_singer_rows,
    soft_labels=False,
    min_classes=2,
    check_params=_check,
)


# ----------------------------------------------------------------- one-vs-all (Janocha)


_fill = filler(
    {
        "one_vs_all_sections": """\
%(parameters)s
margin : float >= 0
    The margin ``m``.
%(common_returns)s

Raises
------
ValueError
    If ``margin`` is negative.

%(references_janocha)s""",
        "margin_delta": "margin : float >= 0\n    The margin :math:`\\Delta`.",
    }
)
"""`arrayloss._doc.fill_doc` with the sections the three one-vs-all hinges share
(parameters to references) and the ``margin`` of the two multiclass hinges."""


@_fill
def hinge(
    logits: Array,
    labels: Array,
    /,
    *,
    margin: float = 0.5,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""One-vs-all hinge loss on the raw logits (Janocha & Czarnecki).

    .. math::

        \ell(s, t) = \sum_j \max(0,\, m - \hat y_j s_j), \quad \hat y = 2t - 1,
        \qquad \frac{\partial \ell}{\partial s_j}
            = -\hat y_j\, \mathbb 1[m - \hat y_j s_j > 0]

    Each class is a binary problem with target :math:`\hat y_j = +1` for the label
    and :math:`-1` for the others.  The default margin ``m = 1/2`` follows [1]_.
    Soft labels are accepted and used as :math:`\hat y = 2t - 1 \in [-1, 1]`
    (convex and piecewise linear; a class with ``t_j = 1/2`` contributes the
    constant ``m``); for one-hot ``t`` this is the usual one-vs-all hinge.  At a
    kink the subgradient is 0 (``1[0 > 0] = 0``).

    %(one_vs_all_sections)s

    %(examples)s
    >>> print(f"{float(al.hinge(s, np.array([2]))):.6f}")
    10.100000
    >>> print(f"{float(al.hinge(s, np.array([2]), margin=1.0)):.6f}")
    12.600000
    """
    return call(_HINGE_KERNEL, locals())


hinge_and_grad = grad_twin(_HINGE_KERNEL, hinge)


@_fill
def squared_hinge(
    logits: Array,
    labels: Array,
    /,
    *,
    margin: float = 0.5,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""One-vs-all squared hinge loss on the raw logits; Tang's L2-SVM at ``margin=1``.

    .. math::

        \ell(s, t) = \sum_j \max(0,\, m - \hat y_j s_j)^2, \quad \hat y = 2t - 1,
        \qquad \frac{\partial \ell}{\partial s_j}
            = -2 \hat y_j \max(0,\, m - \hat y_j s_j)

    The default margin ``m = 1/2`` follows Janocha & Czarnecki [1]_; with
    ``margin=1.0`` it is the one-vs-rest L2-SVM of Tang [2]_ (without the weight
    penalty).  The loss is continuously differentiable.  Soft labels are used as
    :math:`\hat y = 2t - 1`, as in :func:`hinge`.  The value overflows to ``inf``
    only where the true value exceeds the dtype's range.

    %(one_vs_all_sections)s
    .. [2] Y. Tang, "Deep Learning using Linear Support Vector Machines", ICML 2013
       Challenges in Representation Learning workshop; arXiv:1306.0239.

    %(examples)s
    >>> print(f"{float(al.squared_hinge(s, np.array([2]))):.6f}")
    26.290000
    >>> print(f"{float(al.squared_hinge(s, np.array([2]), margin=1.0)):.6f}")
    37.640000
    """
    return call(_SQUARED_HINGE_KERNEL, locals())


squared_hinge_and_grad = grad_twin(_SQUARED_HINGE_KERNEL, squared_hinge)


@_fill
def cubed_hinge(
    logits: Array,
    labels: Array,
    /,
    *,
    margin: float = 0.5,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""One-vs-all cubed hinge loss on the raw logits (Janocha & Czarnecki).

    .. math::

        \ell(s, t) = \sum_j \max(0,\, m - \hat y_j s_j)^3, \quad \hat y = 2t - 1,
        \qquad \frac{\partial \ell}{\partial s_j}
            = -3 \hat y_j \max(0,\, m - \hat y_j s_j)^2

    The default margin ``m = 1/2`` follows [1]_.  Twice continuously
    differentiable.  Soft labels are used as :math:`\hat y = 2t - 1`, as in
    :func:`hinge`.  The value overflows to ``inf`` only where the true value
    exceeds the dtype's range.

    %(one_vs_all_sections)s

    %(examples)s
    >>> print(f"{float(al.cubed_hinge(s, np.array([2]))):.6f}")
    79.271000
    """
    return call(_CUBED_HINGE_KERNEL, locals())


cubed_hinge_and_grad = grad_twin(_CUBED_HINGE_KERNEL, cubed_hinge)


# ---------------------------------------------------------------- multiclass SVMs


@_fill
def multiclass_hinge(
    logits: Array,
    labels: Array,
    /,
    *,
    margin: float = 1.0,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Multiclass hinge loss of Weston and Watkins (the CS231n "SVM loss").

    .. math::

        \ell(s, y) = \sum_{j \ne y} \max(0,\, s_j - s_y + \Delta),
        \qquad \frac{\partial \ell}{\partial s_j} = \mathbb 1[s_j - s_y + \Delta > 0]
        \;(j \ne y), \quad
        \frac{\partial \ell}{\partial s_y} = -\sum_{j \ne y}
            \mathbb 1[s_j - s_y + \Delta > 0]

    on the raw scores, with margin :math:`\Delta` = ``margin``.  Every class that
    comes within the margin of the label is penalised (compare
    :func:`crammer_singer`, which penalises only the worst).  Integer labels only.
    At a kink the subgradient is 0 (``1[0 > 0] = 0``).

    %(parameters_index)s
    %(margin_delta)s
    %(common_returns)s

    Raises
    ------
    ValueError
        If ``margin`` is negative or ``labels`` are soft labels.

    References
    ----------
    .. [1] J. Weston and C. Watkins, "Support Vector Machines for Multi-Class
       Pattern Recognition", ESANN 1999, pp. 219–224.
    .. [2] CS231n, "Linear classification: Support Vector Machine and Softmax",
       https://cs231n.github.io/linear-classify/.

    Examples
    --------
    The CS231n example (cat, car, frog):

    >>> import numpy as np
    >>> import arrayloss as al
    >>> s = np.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
    >>> print(al.multiclass_hinge(s, np.array([0, 1, 2]), reduction="none").round(6))
    [ 2.9  0.  12.9]
    """
    return call(_MULTICLASS_HINGE_KERNEL, locals())


multiclass_hinge_and_grad = grad_twin(_MULTICLASS_HINGE_KERNEL, multiclass_hinge)


@_fill
def crammer_singer(
    logits: Array,
    labels: Array,
    /,
    *,
    margin: float = 1.0,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Multiclass hinge loss of Crammer and Singer.

    .. math::

        \ell(s, y) = \max\bigl(0,\, \Delta + \max_{j \ne y} s_j - s_y\bigr),
        \qquad \frac{\partial \ell}{\partial s} = (e_{j^*} - e_y)\,
            \mathbb 1\bigl[\Delta + s_{j^*} - s_y > 0\bigr]

    on the raw scores, with margin :math:`\Delta` = ``margin`` and :math:`j^*` the
    highest-scoring class other than ``y``.  Only that most violating class is
    penalised (compare :func:`multiclass_hinge`).  When several classes share the
    maximum, :math:`j^*` is the one with the lowest index (a valid subgradient);
    at the hinge kink the subgradient is 0 (``1[0 > 0] = 0``).  Integer labels
    only; needs at least 2 classes.

    %(parameters_c2_index)s
    %(margin_delta)s
    %(common_returns)s

    Raises
    ------
    ValueError
        If ``margin`` is negative, ``labels`` are soft labels, or ``C < 2``.

    References
    ----------
    .. [1] K. Crammer and Y. Singer, "On the Algorithmic Implementation of
       Multiclass Kernel-based Vector Machines", JMLR 2, pp. 265–292, 2001.

    %(examples)s
    >>> print(f"{float(al.crammer_singer(s, np.array([2]))):.6f}")
    4.400000
    """
    return call(_CRAMMER_SINGER_KERNEL, locals())


crammer_singer_and_grad = grad_twin(_CRAMMER_SINGER_KERNEL, crammer_singer)
