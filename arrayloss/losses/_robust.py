"""Noise-robust losses that are functions of the label's probability: focal,
generalized cross-entropy, poly-1 and Taylor cross-entropy.

Each is ``sum_j t_j f(p_j)`` for one scalar function ``f`` of a probability (for a
one-hot target, ``f(p_y)``).  A kernel is the pair ``f`` and ``g(p) = p f'(p)``,
both written in terms of ``p``, its complement ``c = 1 - p`` and ``log p``, each
computed without cancellation; the chain rule through the softmax is shared:

.. math::

    \\frac{\\partial}{\\partial z_k} \\sum_j t_j f(p_j) = G_k - p_k \\sum_j G_j,
    \\qquad G_j = t_j\\, g(p_j),

written as ``G c - p (sum G - G)`` so that a one-hot target gives the exact
``g(p_y) (e_y - p)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import _xp
from .._api import Kernel, Targets
from .._doc import fill_doc
from .._typing import Array, Namespace
from .._validation import check_int, check_real
from ._janocha import _softmax_parts
from ._public import call, grad_twin

__all__ = [
    "focal",
    "focal_and_grad",
    "generalized_cross_entropy",
    "generalized_cross_entropy_and_grad",
    "poly1",
    "poly1_and_grad",
    "taylor_cross_entropy",
    "taylor_cross_entropy_and_grad",
]

# f(p, c, log p, **params) and g = p f'(p), elementwise.
Scalar = Callable[..., Array]


# ----------------------------------------------------------------------------- helpers


def label_parts(
    z: Array, t: Targets, *, xp: Namespace, want_p: bool, want_wsum: bool = False
) -> tuple[Array | None, Array, Array, Array, Array, Array | None]:
    """For index labels: ``p = softmax(z)`` (fresh, or ``None`` unless ``want_p``),
    ``p_y``, ``c_y = 1 - p_y``, ``log p_y``, ``s = sum_j exp(z_j - max z)`` and
    (if ``want_wsum``) ``mean_j (z_j - max z)`` (a mean, so it cannot overflow), each
    ``(n,)``, without cancellation.

    ``c_y`` is the sum of the other classes' exponentials over the total; ``log p_y``
    is ``-log1p(rest / e_y)`` where the label dominates (``p_y > 1/2``, so it is the
    maximum and ``e_y = 1``), else ``w_y - log s`` (two terms of one sign).  One
    ``(n, C)`` array is created, and written in place where the namespace allows.
    """
    e = _xp.sub(z, xp.max(z, axis=1, keepdims=True), xp=xp, below=True)
    w_sum = xp.sum(e / e.shape[1], axis=1) if want_wsum else None
    w_y = t.pick(e)
    e_y = xp.exp(w_y)
    e = _xp.exp_(e, xp=xp)
    if _xp.scatter_supported(xp):
        rows = xp.arange(e.shape[0], device=_xp.xp_device(e))
        e[rows, t.index] = 0  # our own array: sum the others, then put it back
        rest = xp.sum(e, axis=1)
        e[rows, t.index] = e_y
    else:
        rest = xp.sum(xp.where(t.mask, xp.zeros_like(e), e), axis=1)
    s = e_y + rest
    top = e_y > rest
    ratio = rest / xp.where(top, e_y, xp.ones_like(e_y))
    log_p = xp.where(top, -xp.log1p(ratio), w_y - xp.log(s))
    p = None
    if want_p:
        p = e
        p /= s[:, None]
    return p, e_y / s, rest / s, log_p, s, w_sum


def through_label(
    p: Array, g_y: Array, c_y: Array, t: Targets, *, xp: Namespace
) -> Array:
    """``g_y (e_y - p)``, row by row, written into ``p`` where the namespace allows."""
    p *= -g_y[:, None]
    return t.set_label(p, g_y * c_y)


def through_softmax(p: Array, c: Array, big_g: Array, *, xp: Namespace) -> Array:
    """``G - p sum(G)`` as ``G c - p (sum(G) - G)``: exact for one-hot ``G``."""
    total = xp.sum(big_g, axis=1, keepdims=True)
    return big_g * c - p * (total - big_g)


def _scalar_rows(f: Scalar, g: Scalar) -> Callable[..., tuple[Array, Array | None]]:
    """The kernel of the loss ``sum_j t_j f(p_j)``."""

    def rows(
        z: Array, t: Targets, *, xp: Namespace, want_grad: bool, **params: Any
    ) -> tuple[Array, Array | None]:
        if t.index is not None:
            p, p_y, c_y, log_p, _, _ = label_parts(z, t, xp=xp, want_p=want_grad)
            loss = f(p_y, c_y, log_p, xp=xp, **params)
            if p is None:
                return loss, None
            g_y = g(p_y, c_y, log_p, xp=xp, **params)
            return loss, through_label(p, g_y, c_y, t, xp=xp)
        p, c, w, log_s = _softmax_parts(z, xp=xp)
        log_p = w - log_s
        q = t.probs
        # f(p) = -log p + O(1) as p -> 0 (focal, poly-1; the others are bounded):
        # where log p overflowed, q f from the halves of the shift
        terms = _xp.times_mass(q, f(p, c, log_p, xp=xp, **params), xp=xp, scores=z)
        loss = xp.sum(terms, axis=1)
        if not want_grad:
            return loss, None
        big_g = _xp.times_mass(q, g(p, c, log_p, xp=xp, **params), xp=xp)
        return loss, through_softmax(p, c, big_g, xp=xp)

    return rows


# ----------------------------------------------------------------------------- focal


def _focal_f(p: Array, c: Array, log_p: Array, *, xp: Namespace, gamma: float) -> Array:
    return -(c**gamma) * log_p


def _focal_g(p: Array, c: Array, log_p: Array, *, xp: Namespace, gamma: float) -> Array:
    # p f'(p) = c^gamma (gamma p log(p)/c - 1); log(p)/c -> -1 as c -> 0.
    has = c > 0
    ratio = xp.where(has, log_p / xp.where(has, c, xp.ones_like(c)), -xp.ones_like(c))
    # p log(p) -> 0 as p -> 0: not 0 * -inf where log p overflowed (spreads near
    # the largest float)
    p_ratio = p * xp.where(p > 0, ratio, xp.zeros_like(p))
    return c**gamma * (gamma * p_ratio - 1)


def _focal_check(*, n_classes: int, gamma: float = 2.0) -> dict[str, Any]:
    return {"gamma": check_real("gamma", gamma, low=0)}


# ----------------------------------------------------------------------------- GCE


def _gce_f(p: Array, c: Array, log_p: Array, *, xp: Namespace, q: float) -> Array:
    return -xp.expm1(q * log_p) / q  # (1 - p^q) / q, exact near p = 1


def _gce_g(p: Array, c: Array, log_p: Array, *, xp: Namespace, q: float) -> Array:
    return -xp.exp(q * log_p)  # -p^q


def _gce_check(*, n_classes: int, q: float = 0.7) -> dict[str, Any]:
    return {"q": check_real("q", q, low=0, high=1, low_open=True)}


# ----------------------------------------------------------------------------- poly-1


def _poly1_f(
    p: Array, c: Array, log_p: Array, *, xp: Namespace, epsilon: float
) -> Array:
    return epsilon * c - log_p


def _poly1_g(
    p: Array, c: Array, log_p: Array, *, xp: Namespace, epsilon: float
) -> Array:
    return -1 - epsilon * p


def _poly1_check(*, n_classes: int, epsilon: float = 1.0) -> dict[str, Any]:
    return {"epsilon": check_real("epsilon", epsilon, low=-1)}


# ----------------------------------------------------------------------------- Taylor


def _taylor_f(p: Array, c: Array, log_p: Array, *, xp: Namespace, order: int) -> Array:
    acc = xp.zeros_like(c) + 1 / order  # Horner: c (1 + c (1/2 + ... c / order))
    for i in range(order - 1, 0, -1):
        acc = 1 / i + c * acc
    return c * acc


def _taylor_g(p: Array, c: Array, log_p: Array, *, xp: Namespace, order: int) -> Array:
    acc = xp.ones_like(c)  # -p (1 + c + ... + c^(order-1))
    for _ in range(order - 1):
        acc = 1 + c * acc
    return -p * acc


TAYLOR_MAX_ORDER = 10_000
"""The largest order `taylor_cross_entropy` takes: the series is summed term by
term, two passes over the batch a term (``t=10**9`` ran for hours a call)."""


def _taylor_check(*, n_classes: int, t: int = 2) -> dict[str, Any]:
    order = check_int("t", t, low=1, high=TAYLOR_MAX_ORDER)
    return {"order": order}  # the kernel's name for the order


_FOCAL = Kernel(
    "focal", _scalar_rows(_focal_f, _focal_g), min_classes=1, check_params=_focal_check
)
_GCE = Kernel(
    "generalized_cross_entropy", _scalar_rows(_gce_f, _gce_g), check_params=_gce_check
)
_POLY1 = Kernel("poly1", _scalar_rows(_poly1_f, _poly1_g), check_params=_poly1_check)
_TAYLOR = Kernel(
    "taylor_cross_entropy",
    _scalar_rows(_taylor_f, _taylor_g),
    check_params=_taylor_check,
)


@fill_doc
def focal(
    logits: Array,
    labels: Array,
    /,
    *,
    gamma: float = 2.0,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Focal loss (Lin et al. 2017), on logits.

    .. math::

        \ell(s, t) = -\sum_j t_j (1 - p_j)^\gamma \log p_j,
        \quad p = \operatorname{softmax}(s),
        \qquad \frac{\partial \ell}{\partial s} = g(p_y)\,(e_y - p),
        \quad g(p) = (1 - p)^\gamma \Bigl(\frac{\gamma\, p \log p}{1 - p} - 1\Bigr)

    for a one-hot target (soft targets: ``G_k - p_k \sum_j G_j`` with
    ``G_j = t_j g(p_j)``).  ``gamma = 0`` is :func:`cross_entropy`.  It is computed
    from the log-softmax and the exact complement ``1 - p_y``, so it is accurate
    when ``p_y`` is near 1 (the loss is then about ``(1 - p_y)^(1 + gamma)``) and
    finite when ``p_y`` underflows.  Class balancing (the paper's ``alpha_t``) is
    ``class_weights=alpha``.  Keras'
    ``CategoricalFocalCrossentropy(alpha=a)`` on softmax outputs is ``a`` times
    this loss (with its 1e-7 clipping).

    %(parameters)s
    gamma : float >= 0
        The focusing parameter.
    %(common_returns)s

    References
    ----------
    .. [1] T.-Y. Lin, P. Goyal, R. Girshick, K. He and P. Dollár, "Focal Loss for
       Dense Object Detection", ICCV 2017, arXiv:1708.02002.

    %(examples)s
    >>> print(f"{float(al.focal(s, np.array([4]))):.6f}")
    0.114850
    """
    return call(_FOCAL, locals())


focal_and_grad = grad_twin(_FOCAL, focal)


@fill_doc
def generalized_cross_entropy(
    logits: Array,
    labels: Array,
    /,
    *,
    q: float = 0.7,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Generalized cross-entropy :math:`L_q` (Zhang & Sabuncu 2018).

    .. math::

        \ell(s, t) = \sum_j t_j \frac{1 - p_j^q}{q},
        \quad p = \operatorname{softmax}(s),
        \qquad \frac{\partial \ell}{\partial s} = -p_y^q\,(e_y - p)

    for a one-hot target (soft targets: ``G_k - p_k \sum_j G_j`` with
    ``G_j = -t_j p_j^q``).  As ``q -> 0`` it tends to :func:`cross_entropy`;
    ``q = 1`` is ``1 - p_y``, half the :func:`expectation` loss (the MAE of
    Ghosh et al.).  Computed as ``-expm1(q log p) / q`` from the log-softmax, so
    it is accurate for ``p_y`` near 1 and exact to ``1/q`` when ``p_y``
    underflows.

    %(parameters)s
    q : float in (0, 1]
        The Box–Cox exponent.
    %(common_returns)s

    References
    ----------
    .. [1] Z. Zhang and M. R. Sabuncu, "Generalized Cross Entropy Loss for
       Training Deep Neural Networks with Noisy Labels", NeurIPS 2018,
       arXiv:1805.07836.

    %(examples)s
    >>> print(f"{float(al.generalized_cross_entropy(s, np.array([2]))):.6f}")
    1.340796
    """
    return call(_GCE, locals())


generalized_cross_entropy_and_grad = grad_twin(_GCE, generalized_cross_entropy)


@fill_doc
def poly1(
    logits: Array,
    labels: Array,
    /,
    *,
    epsilon: float = 1.0,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Poly-1 cross-entropy (Leng et al. 2022).

    .. math::

        \ell(s, t) = -\sum_j t_j \log p_j + \epsilon \Bigl(1 - \sum_j t_j p_j\Bigr),
        \quad p = \operatorname{softmax}(s),
        \qquad \frac{\partial \ell}{\partial s} = -(1 + \epsilon p_y)(e_y - p)

    for a one-hot target (soft targets: ``G_k - p_k \sum_j G_j`` with
    ``G_j = -t_j (1 + epsilon p_j)``).  ``epsilon = 0`` is :func:`cross_entropy`;
    the soft-label form is Optax's ``poly_loss_cross_entropy``.  ``1 - p_y`` is
    the exact complement, so a confident sample keeps its small loss.

    %(parameters)s
    epsilon : float >= -1
        Weight of the first polynomial term (``-1`` keeps the loss non-negative).
    %(common_returns)s

    References
    ----------
    .. [1] Z. Leng, M. Tan, C. Liu, E. D. Cubuk, X. Shi, S. Cheng and D. Anguelov,
       "PolyLoss: A Polynomial Expansion Perspective of Classification Loss
       Functions", ICLR 2022, arXiv:2204.12511.

    %(examples)s
    >>> print(f"{float(al.poly1(s, np.array([2]))):.6f}")
    4.966617
    """
    return call(_POLY1, locals())


poly1_and_grad = grad_twin(_POLY1, poly1)


@fill_doc
def taylor_cross_entropy(
    logits: Array,
    labels: Array,
    /,
    *,
    t: int = 2,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Taylor cross-entropy (Feng et al. 2020): the order-``t`` Taylor series of
    ``-log p_y`` around ``p_y = 1``.

    .. math::

        \ell(s, y) = \sum_{i=1}^{t} \frac{(1 - p_y)^i}{i},
        \quad p = \operatorname{softmax}(s),
        \qquad \frac{\partial \ell}{\partial s}
            = -p_y \sum_{i=0}^{t-1} (1 - p_y)^i \,(e_y - p)

    (soft targets: ``sum_j t_j`` of the same terms).  ``t = 1`` is ``1 - p_y``
    (half the :func:`expectation` loss); as ``t -> inf`` it tends to
    :func:`cross_entropy`.  Horner's scheme on the exact complement ``1 - p_y``.

    %(parameters)s
    t : int in [1, 10000]
        The order of the series, summed term by term (two passes over the batch
        a term); :func:`cross_entropy` is its limit.
    %(common_returns)s

    References
    ----------
    .. [1] L. Feng, S. Shu, Z. Lin, F. Lv, L. Li and B. An, "Can Cross Entropy
       Loss Be Robust to Label Noise?", IJCAI 2020, pp. 2206–2212.

    %(examples)s
    >>> print(f"{float(al.taylor_cross_entropy(s, np.array([2]))):.6f}")
    1.462996
    """
    return call(_TAYLOR, locals())


taylor_cross_entropy_and_grad = grad_twin(_TAYLOR, taylor_cross_entropy)
