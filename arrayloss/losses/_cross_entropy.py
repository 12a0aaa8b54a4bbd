"""Softmax cross-entropy, with optional label smoothing."""

from __future__ import annotations

from typing import Any

from .. import _xp
from .._api import Kernel, Targets
from .._doc import fill_doc
from .._typing import Array, Namespace
from .._validation import check_real
from ._public import call, grad_twin

__all__ = ["cross_entropy", "cross_entropy_and_grad"]


def _check(*, n_classes: int, label_smoothing: float = 0.0) -> dict[str, Any]:
    return {
        "label_smoothing": check_real("label_smoothing", label_smoothing, low=0, high=1)
    }


def _rows(
    z: Array,
    t: Targets,
    *,
    xp: Namespace,
    want_grad: bool,
    label_smoothing: float,
    grad_scale: float | None = None,
) -> tuple[Array, Array | None]:
    # One fresh (n, C) temporary: shifted scores, then exp, then softmax - target,
    # all in place where the namespace allows (see _xp.exp_).
    # The first maximum of each row: its exp(0) = 1 is left out of ``rest`` below.
    top = xp.argmax(z, axis=1)
    scatter = _xp.scatter_supported(xp)
    m = _xp.row_max_at(z, top, xp=xp)
    work = _xp.sub(z, m, xp=xp, below=True)  # quiet -inf
    if t.index is not None and label_smoothing == 0:
        q = None
        target_score = t.pick(work)
    else:
        q = t.probs
        if label_smoothing:
            q = (1 - label_smoothing) * q + label_smoothing / t.n_classes
        # <q, shifted> with sum(q) = 1; a class of mass whose shift overflowed
        # from the halves (finite wherever its term is)
        target_score = xp.sum(_xp.times_mass(q, work, xp=xp, scores=z), axis=1)
    work = _xp.exp_(work, xp=xp)
    # ``rest`` sums exp over all but the first maximum (whose exp(0) is 1), so that
    # log s = log1p(rest) keeps the digits of a confident sample's loss, about
    # rest << eps, that log(1 + rest) rounds away.  In place (O(n)) where the
    # namespace allows, restored for the gradient.
    rest = _xp.sum_leaving_out(work, top, xp=xp, in_place=scatter)
    s = (1 + rest)[:, None]
    loss = xp.log1p(rest) - target_score
    if not want_grad:
        return loss, None
    c = 1.0 if grad_scale is None else grad_scale  # the mean's 1/n, fused in
    if q is None:
        # p_y - 1 = ((e_y - 1) - rest) / s: no cancellation where p_y is near 1.
        e_y = t.pick(work)
        work *= c / s
        return loss, t.set_label(work, c * ((e_y - 1) - rest) / s[:, 0])
    work *= c / s
    work -= q if c == 1.0 else c * q
    return loss, work


_KERNEL = Kernel(
    "cross_entropy", _rows, min_classes=1, check_params=_check, fused_scale=True
)


@fill_doc
def cross_entropy(
    logits: Array,
    labels: Array,
    /,
    *,
    label_smoothing: float = 0.0,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Softmax cross-entropy (log loss).

    .. math::

        \ell(s, q) = -\sum_j q_j \log \operatorname{softmax}(s)_j
                   = \operatorname{lse}(s) - \langle q, s \rangle,
        \qquad \frac{\partial \ell}{\partial s} = \operatorname{softmax}(s) - q

    with ``q`` the one-hot (or soft) target, optionally smoothed to
    ``(1 - ε) q + ε / C`` by ``label_smoothing = ε``.  Computed with the max shift,
    so it is finite for any finite scores.  It is the special case ``k=1, tau=1,
    alpha=0`` of the smooth top-k SVM (Berrada et al. 2018).

    %(parameters)s
    label_smoothing : float in [0, 1]
        Mix the targets with the uniform distribution.
    %(common_returns)s

    %(references_janocha)s

    %(examples)s
    >>> print(f"{float(al.cross_entropy(s, np.array([2]))):.6f}")
    3.985205
    """
    return call(_KERNEL, locals())


cross_entropy_and_grad = grad_twin(_KERNEL, cross_entropy)
