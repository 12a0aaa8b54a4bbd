"""Kullback–Leibler divergence KL(target || softmax(logits)), exact."""

from __future__ import annotations

from .. import _xp
from .._api import Kernel, Targets
from .._doc import fill_doc
from .._typing import Array, Namespace
from ._janocha import _log_loss, _residual, _softmax_parts
from ._public import call, grad_twin

__all__ = ["kl_divergence", "kl_divergence_and_grad"]


def _rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool
) -> tuple[Array, Array | None]:
    p, c, w, log_s = _softmax_parts(z, xp=xp)
    if t.index is not None:
        # sum t log t = 0 for one-hot t: exactly the cross-entropy lse(z) - z_y.
        loss = _log_loss(z, w, log_s, t, xp=xp)
    else:
        q = t.probs
        has = q > 0
        log_q = xp.log(xp.where(has, q, xp.ones_like(q)))
        log_p = w - log_s
        # term by term, so that nearly equal q and p do not cancel in a large sum;
        # 0 log 0 = 0 by the where(), before the product (log p is -inf where it
        # overflowed: 0 * inf warned), and a class of mass whose log p overflowed
        # from the halves of its shift (finite wherever its term is).
        gap = xp.where(has, log_q - log_p, xp.zeros_like(q))
        loss = xp.sum(_xp.times_mass(q, gap, xp=xp, scores=z), axis=1)
    return loss, (_residual(p, c, t.probs) if want_grad else None)


_KERNEL = Kernel("kl_divergence", _rows)


@fill_doc
def kl_divergence(
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
    r"""Kullback–Leibler divergence ``KL(labels || softmax(logits))``, exact.

    .. math::

        \ell(s, t) = \sum_j t_j \log t_j - \sum_j t_j \log p_j,
        \quad p = \operatorname{softmax}(s),
        \qquad \frac{\partial \ell}{\partial s} = p - t

    with :math:`0 \log 0 = 0`, computed term by term from the log-softmax, so it is
    exact (no clipping) and finite for any finite scores.  It differs from
    cross-entropy by the entropy of ``t``, a constant, so the gradients agree; for a
    one-hot target (or integer labels) it **equals** :func:`cross_entropy`.  Unlike
    Keras' ``kl_divergence`` it does not clip ``p`` at 1e-7, so confidently wrong
    samples keep their gradient (see Dräger & Dunkelau [1]_ on why that matters).

    %(parameters_returns)s

    References
    ----------
    .. [1] S. Dräger and J. Dunkelau, "Evaluating the Impact of Loss Function
       Variation in Deep Learning for Classification", arXiv:2210.16003, 2022.

    %(examples)s
    >>> print(f"{float(al.kl_divergence(s, np.array([2]))):.6f}")
    3.985205
    >>> t = np.array([[0.0, 0.5, 0.0, 0.0, 0.5]])
    >>> print(f"{float(al.kl_divergence(s, t)):.6f}")
    0.192058
    """
    return call(_KERNEL, locals())


kl_divergence_and_grad = grad_twin(_KERNEL, kl_divergence)
