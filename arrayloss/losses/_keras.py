"""The Keras 2.10 loss catalogue on softmax outputs, as ``keras.<name>``.

Every loss here acts on ``q = softmax(logits)`` (computed stably) against the
target distribution ``t`` (one-hot for class indices), with exactly the formulas of
``keras/losses.py`` at tag v2.10.0 and its clipping at ``ε = backend.epsilon() =
1e-7``.  This is the setting of Dräger & Dunkelau (2022), who train a softmax
network with each loss of the Keras catalogue.

The gradient is with respect to the *logits*: with ``g = ∂ℓ/∂q``,

    ∂ℓ/∂z = p ⊙ (g − ⟨g, p⟩),   p = softmax(z),

and, as TensorFlow's ``clip_by_value``/``maximum`` do, a clip that is active
passes **no** gradient.  Kernels form ``p ⊙ g`` directly (never ``g`` alone) so
that huge ``g`` (MAPE) or ``t/q`` with ``q`` underflowed (KL) stay finite.

Keras averages over the class axis for the "regression" and hinge losses and sums
for cross-entropy, KL and cosine similarity; the functions here do the same, and
their docstrings say which.

float16 and bfloat16 scores are computed in float32 and rounded once (``+-inf``
only beyond the dtype's range): value and gradient are the exact ones rounded to
the dtype, to an ulp.
"""

from __future__ import annotations

import math
from typing import Any

from .. import _xp
from .._api import Kernel, Targets, in_work_dtype
from .._doc import filler
from .._typing import Array, Namespace
from .._validation import check_real
from . import _cross_entropy
from ._public import call, grad_twin

__all__ = [
    "categorical_crossentropy",
    "categorical_crossentropy_and_grad",
    "categorical_hinge",
    "categorical_hinge_and_grad",
    "cosine_similarity",
    "cosine_similarity_and_grad",
    "hinge",
    "hinge_and_grad",
    "huber",
    "huber_and_grad",
    "kl_divergence",
    "kl_divergence_and_grad",
    "log_cosh",
    "log_cosh_and_grad",
    "mean_absolute_error",
    "mean_absolute_error_and_grad",
    "mean_absolute_percentage_error",
    "mean_absolute_percentage_error_and_grad",
    "mean_squared_error",
    "mean_squared_error_and_grad",
    "mean_squared_logarithmic_error",
    "mean_squared_logarithmic_error_and_grad",
    "poisson",
    "poisson_and_grad",
    "squared_hinge",
    "squared_hinge_and_grad",
]

EPSILON = 1e-7
"""Keras' ``backend.epsilon()``, the default of every ``epsilon`` option here."""

_L2_NORMALIZE_EPS = 1e-12
"""The floor on the squared norm in ``tf.math.l2_normalize`` (fixed in Keras)."""

Rows = tuple[Array, "Array | None"]


# --------------------------------------------------------------------------------
# Docstring blocks shared by every public function
# --------------------------------------------------------------------------------

_fill = filler(
    {
        "references": """\
References
----------
.. [1] S. Dräger and J. Dunkelau, "Evaluating the Impact of Loss Function
   Variation in Deep Learning for Classification", arXiv:2210.16003, 2022.
.. [2] Keras 2.10.0, ``keras/losses.py``,
   https://github.com/keras-team/keras/blob/v2.10.0/keras/losses.py""",
        "examples": """\
Examples
--------
>>> import numpy as np
>>> import arrayloss.keras as K
>>> s = np.array([[1.0, 2.5, -0.3, 0.7, 3.1]])""",
    }
)
"""`arrayloss._doc.fill_doc` with the references every Keras loss cites and
examples that import `arrayloss.keras`."""


# --------------------------------------------------------------------------------
# Parameter checks
# --------------------------------------------------------------------------------


def _check_epsilon(*, n_classes: int, epsilon: float = EPSILON) -> dict[str, Any]:
    return {
        "epsilon": check_real(
            "epsilon", epsilon, low=0, high=1, low_open=True, high_open=True
        )
    }


def _check_delta(*, n_classes: int, delta: float = 1.0) -> dict[str, Any]:
    return {"delta": check_real("delta", delta, low=0, low_open=True)}


# --------------------------------------------------------------------------------
# Shared pieces of the kernels
# --------------------------------------------------------------------------------


_through_softmax = _xp.through_softmax  # p ⊙ (g − ⟨g, p⟩) from p and pg = p ⊙ g


def _as_float(mask: Array, like: Array, *, xp: Namespace) -> Array:
    return xp.astype(mask, like.dtype)


def _signed_targets(t: Targets, *, xp: Namespace) -> Array:
    """Keras' ``_maybe_convert_labels``: ``2t − 1`` if every target is 0 or 1.

    The test is one 0-d boolean over the whole batch, as in Keras, used through
    ``xp.where`` so lazy arrays are never computed here.  Class indices are always
    binary, so they skip the test.
    """
    probs = t.probs
    signed = 2 * probs - 1
    if t.index is not None:
        return signed
    binary = xp.all((probs == 0) | (probs == 1))
    return xp.where(binary, signed, probs)


# --------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------


def _kl_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool, epsilon: float
) -> Rows:
    tc = xp.clip(t.probs, min=epsilon, max=1.0)
    logp = _xp.log_softmax(z, xp=xp)
    p = xp.exp(logp)
    open_ = p >= epsilon  # the clip of q at ε is inactive; q <= 1 always
    logq = xp.where(open_, logp, xp.full_like(logp, math.log(epsilon)))
    loss = xp.sum(tc * (xp.log(tc) - logq), axis=1)
    if not want_grad:
        return loss, None
    # g = -t'/q' where the clip is open, 0 where it is active: p ⊙ g = -t' ⊙ open.
    pg = -tc * _as_float(open_, tc, xp=xp)
    return loss, _through_softmax(p, pg, xp=xp)


def _poisson_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool, epsilon: float
) -> Rows:
    tt = t.probs
    c = t.n_classes
    p = _xp.softmax(z, xp=xp)
    loss = xp.sum(p - tt * xp.log(p + epsilon), axis=1) / c
    if not want_grad:
        return loss, None
    # g = (1 - t/(q+ε))/C;  p ⊙ g = (p - t·p/(p+ε))/C
    pg = (p - tt * (p / (p + epsilon))) / c
    return loss, _through_softmax(p, pg, xp=xp)


def _categorical_hinge_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool
) -> Rows:
    tt = t.probs
    p = _xp.softmax(z, xp=xp)
    pos = xp.sum(tt * p, axis=1)
    others = (1 - tt) * p
    neg = xp.max(others, axis=1)
    h = neg - pos + 1
    loss = xp.maximum(h, xp.zeros_like(h))
    if not want_grad:
        return loss, None
    # TensorFlow's reduce_max gradient shares equally between tied maxima.
    top = _as_float(others == neg[:, None], p, xp=xp)
    top = top / xp.sum(top, axis=1, keepdims=True)
    active = _as_float(h > 0, p, xp=xp)[:, None]
    pg = p * (top * (1 - tt) - tt) * active
    return loss, _through_softmax(p, pg, xp=xp)


def _hinge_rows(z: Array, t: Targets, *, xp: Namespace, want_grad: bool) -> Rows:
    ts = _signed_targets(t, xp=xp)
    c = t.n_classes
    p = _xp.softmax(z, xp=xp)
    m = 1 - ts * p
    loss = xp.sum(xp.maximum(m, xp.zeros_like(m)), axis=1) / c
    if not want_grad:
        return loss, None
    pg = -ts * p * _as_float(m > 0, p, xp=xp) / c
    return loss, _through_softmax(p, pg, xp=xp)


def _squared_hinge_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool
) -> Rows:
    ts = _signed_targets(t, xp=xp)
    c = t.n_classes
    p = _xp.softmax(z, xp=xp)
    m = 1 - ts * p
    m = xp.maximum(m, xp.zeros_like(m))
    loss = xp.sum(m * m, axis=1) / c
    if not want_grad:
        return loss, None
    pg = -2 * ts * m * p / c
    return loss, _through_softmax(p, pg, xp=xp)


def _mse_rows(z: Array, t: Targets, *, xp: Namespace, want_grad: bool) -> Rows:
    c = t.n_classes
    p = _xp.softmax(z, xp=xp)
    d = p - t.probs
    loss = xp.sum(d * d, axis=1) / c
    if not want_grad:
        return loss, None
    return loss, _through_softmax(p, 2 * p * d / c, xp=xp)


def _mae_rows(z: Array, t: Targets, *, xp: Namespace, want_grad: bool) -> Rows:
    c = t.n_classes
    p = _xp.softmax(z, xp=xp)
    d = p - t.probs
    loss = xp.sum(xp.abs(d), axis=1) / c
    if not want_grad:
        return loss, None
    return loss, _through_softmax(p, p * xp.sign(d) / c, xp=xp)


def _mape_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool, epsilon: float
) -> Rows:
    tt = t.probs
    c = t.n_classes
    p = _xp.softmax(z, xp=xp)
    scale = xp.clip(xp.abs(tt), min=epsilon)  # on the targets: no effect on ∂/∂q
    d = p - tt
    loss = 100 * xp.sum(xp.abs(d) / scale, axis=1) / c
    if not want_grad:
        return loss, None
    # The chain rule p (g - <g, p>) with g taken relative to its value at each
    # row's most probable class r: p_j (h_j - sum_i p_i h_i), h = g - g_r.  g is
    # up to 1e9/C (finite: |t| is floored at ε), and with p_r near 1 the plain
    # pg - p sum(pg) cancels two numbers of 1e9 to leave one of 1 (float32 gave 0
    # for 0.687); here the term of r is exactly 0 and nothing large cancels.
    g = 100 * xp.sign(d) / (c * scale)
    top = xp.argmax(p, axis=1)
    h = g - _xp.take_along_axis(g, top[:, None], xp=xp, axis=1)
    return loss, _through_softmax(p, p * h, xp=xp)


def _msle_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool, epsilon: float
) -> Rows:
    c = t.n_classes
    p = _xp.softmax(z, xp=xp)
    open_ = p >= epsilon
    a = xp.log1p(xp.clip(p, min=epsilon)) - xp.log1p(xp.clip(t.probs, min=epsilon))
    loss = xp.sum(a * a, axis=1) / c
    if not want_grad:
        return loss, None
    # g = 2a/(C(1+q)) where the clip is open, 0 where q < ε.
    pg = 2 * a * p / ((1 + p) * c) * _as_float(open_, p, xp=xp)
    return loss, _through_softmax(p, pg, xp=xp)


def _log_cosh_rows(z: Array, t: Targets, *, xp: Namespace, want_grad: bool) -> Rows:
    c = t.n_classes
    p = _xp.softmax(z, xp=xp)
    d = p - t.probs
    # log cosh d = log1p(2 sinh(d/2)^2): Keras' d + softplus(-2d) - log 2 without
    # its cancellation for small |d| (|d| <= 1 here, so sinh cannot overflow).
    s = xp.sinh(d / 2)
    loss = xp.sum(xp.log1p(2 * s * s), axis=1) / c
    if not want_grad:
        return loss, None
    return loss, _through_softmax(p, p * xp.tanh(d) / c, xp=xp)


def _huber_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool, delta: float
) -> Rows:
    c = t.n_classes
    p = _xp.softmax(z, xp=xp)
    d = p - t.probs
    ad = xp.abs(d)
    quadratic = ad <= delta
    elem = xp.where(quadratic, 0.5 * d * d, delta * ad - 0.5 * delta * delta)
    loss = xp.sum(elem, axis=1) / c
    if not want_grad:
        return loss, None
    pg = p * xp.clip(d, min=-delta, max=delta) / c
    return loss, _through_softmax(p, pg, xp=xp)


def _cosine_rows(z: Array, t: Targets, *, xp: Namespace, want_grad: bool) -> Rows:
    tt = t.probs
    p = _xp.softmax(z, xp=xp)
    # tf.math.l2_normalize: x / sqrt(max(sum(x^2), 1e-12))
    nq2 = xp.sum(p * p, axis=1, keepdims=True)
    nt2 = xp.sum(tt * tt, axis=1, keepdims=True)
    iq = 1 / xp.sqrt(xp.clip(nq2, min=_L2_NORMALIZE_EPS))
    it = 1 / xp.sqrt(xp.clip(nt2, min=_L2_NORMALIZE_EPS))
    th = tt * it
    qh = p * iq
    cos = xp.sum(th * qh, axis=1)
    if not want_grad:
        return -cos, None
    # g = -(t̂ - ⟨t̂,q̂⟩ q̂)/‖q‖; the second term vanishes where the floor is active.
    open_ = _as_float(nq2 >= _L2_NORMALIZE_EPS, p, xp=xp)
    pg = p * iq * (cos[:, None] * qh * open_ - th)
    return -cos, _through_softmax(p, pg, xp=xp)


# --------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------

# Every kernel runs in float32 for float16 and bfloat16 scores, rounded once
# (`in_work_dtype`): there ε = 1e-7 is a subnormal or 0, 1/ε and MAPE's 1e9-sized
# sums overflow, p underflows below 6e-8, and the chain rule's sums lose the
# gradient's digits.  Keras' logits path is exactly softmax cross-entropy: share
# its kernel.
_CCE = Kernel(
    "keras.categorical_crossentropy",
    in_work_dtype(_cross_entropy._rows),
    check_params=_cross_entropy._check,
    fused_scale=True,
)
_KL = Kernel(
    "keras.kl_divergence", in_work_dtype(_kl_rows), check_params=_check_epsilon
)
_POISSON = Kernel(
    "keras.poisson", in_work_dtype(_poisson_rows), check_params=_check_epsilon
)
_CATEGORICAL_HINGE = Kernel(
    "keras.categorical_hinge", in_work_dtype(_categorical_hinge_rows)
)
_HINGE = Kernel("keras.hinge", in_work_dtype(_hinge_rows), batch_wide_soft=True)
_SQUARED_HINGE = Kernel(
    "keras.squared_hinge", in_work_dtype(_squared_hinge_rows), batch_wide_soft=True
)
_MSE = Kernel("keras.mean_squared_error", in_work_dtype(_mse_rows))
_MAE = Kernel("keras.mean_absolute_error", in_work_dtype(_mae_rows))
_MAPE = Kernel(
    "keras.mean_absolute_percentage_error",
    in_work_dtype(_mape_rows),
    check_params=_check_epsilon,
)
_MSLE = Kernel(
    "keras.mean_squared_logarithmic_error",
    in_work_dtype(_msle_rows),
    check_params=_check_epsilon,
)
_LOG_COSH = Kernel("keras.log_cosh", in_work_dtype(_log_cosh_rows))
_HUBER = Kernel("keras.huber", in_work_dtype(_huber_rows), check_params=_check_delta)
_COSINE = Kernel("keras.cosine_similarity", in_work_dtype(_cosine_rows))


@_fill
def categorical_crossentropy(
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
    r"""Keras ``categorical_crossentropy`` of a softmax output (its logits path).

    .. math::

        \ell(z, t) = -\sum_j t_j \log \operatorname{softmax}(z)_j,
        \qquad
        \frac{\partial \ell}{\partial z}
            = \operatorname{softmax}(z) \textstyle\sum_j t_j - t

    summed over the classes, with ``t`` smoothed to ``(1 - ls) t + ls / C`` by
    ``label_smoothing = ls`` first.  When ``y_pred`` comes out of a softmax, Keras
    2.10 recovers the logits and calls ``softmax_cross_entropy_with_logits``, so the
    value and gradient are exact and nothing is clipped; this is that path (it
    equals :func:`arrayloss.cross_entropy`).  Keras' other path, for probabilities
    that carry no logits (``q`` normalised, clipped to ``[ε, 1 − ε]``, no gradient
    where clipped), is not offered; :func:`kl_divergence` shows the same clipping.

    %(parameters)s
    label_smoothing : float in [0, 1]
        Mix the targets with the uniform distribution, as Keras does.
    %(common_returns)s

    %(references)s

    %(examples)s
    >>> print(f"{float(K.categorical_crossentropy(s, np.array([2]))):.9f}")
    3.985205162
    """
    return call(_CCE, locals())


categorical_crossentropy_and_grad = grad_twin(_CCE, categorical_crossentropy)


@_fill
def kl_divergence(
    logits: Array,
    labels: Array,
    /,
    *,
    epsilon: float = EPSILON,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Keras ``kl_divergence`` of ``q = softmax(logits)``, clipped at ε.

    .. math::

        \ell = \sum_j t'_j \log \frac{t'_j}{q'_j}, \quad
        t' = \operatorname{clip}(t, ε, 1),\; q' = \operatorname{clip}(q, ε, 1),
        \qquad
        \frac{\partial \ell}{\partial q_j} = -\frac{t'_j}{q'_j}\,[q_j \ge ε]

    summed over the classes; the logit gradient is
    :math:`p \odot (g - \langle g, p\rangle)` with :math:`p \odot g = -t' \odot
    [q \ge ε]`.  ``log q`` is the stable log-softmax.

    **Clipping.**  Where ``q_j < ε`` the clip is active and passes *zero*
    gradient, as in TensorFlow.  So a confidently wrong sample (``p_y < ε``) gets
    almost no gradient and its loss saturates at ``−log ε ≈ 16.118``, where
    cross-entropy gives it the largest gradient: the behaviour Dräger & Dunkelau
    measured [1]_ (implicit trimming of outliers).

    **One-hot targets.**  While every ``p_j ≥ ε``, this is
    ``CE + Σ_{j≠y} ε (log ε − log p_j)``: cross-entropy plus a term of order
    ``C ε log(1/ε)``.  For soft targets it is the (clipped) KL divergence, which
    differs from cross-entropy by the targets' entropy.

    %(parameters)s
    epsilon : float in (0, 1)
        Keras' ``backend.epsilon()``: the clip floor for ``t`` and ``q``.
    %(common_returns)s

    %(references)s

    %(examples)s
    >>> print(f"{float(K.kl_divergence(s, np.array([2]))):.9f}")
    3.985199459
    >>> v, g = K.kl_divergence_and_grad(np.array([[0.0, 0, -21, 0, 0]]), np.array([2]))
    >>> print(f"{float(v):.3f}", bool(np.abs(g).max() < 1e-5))
    16.118 True
    """
    return call(_KL, locals())


kl_divergence_and_grad = grad_twin(_KL, kl_divergence)


@_fill
def poisson(
    logits: Array,
    labels: Array,
    /,
    *,
    epsilon: float = EPSILON,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Keras ``poisson`` of ``q = softmax(logits)``.

    .. math::

        \ell = \frac1C \sum_j \bigl(q_j - t_j \log(q_j + ε)\bigr),
        \qquad
        \frac{\partial \ell}{\partial q_j} = \frac1C\Bigl(1 - \frac{t_j}{q_j + ε}\Bigr)

    averaged over the classes.  ``ε`` is added, not clipped, so the gradient is
    never cut off.

    **One-hot targets.**  ``(1 − log(p_y + ε)) / C ≈ (CE + 1) / C`` (as the ``q_j``
    sum to 1): a rescaled cross-entropy, up to the ``ε``.  For soft targets it is
    ``(1 − Σ_j t_j log(q_j + ε)) / C``, likewise a rescaled soft cross-entropy.

    %(parameters)s
    epsilon : float in (0, 1)
        Keras' ``backend.epsilon()``, added to ``q`` inside the logarithm.
    %(common_returns)s

    %(references)s

    %(examples)s
    >>> print(f"{float(K.poisson(s, np.array([2]))):.10f}")
    0.9970399565
    """
    return call(_POISSON, locals())


poisson_and_grad = grad_twin(_POISSON, poisson)


@_fill
def categorical_hinge(
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
    r"""Keras ``categorical_hinge`` of ``q = softmax(logits)``.

    .. math::

        \ell = \max\Bigl(0,\; 1 + \max_j (1 - t_j) q_j - \sum_j t_j q_j\Bigr),
        \qquad
        \frac{\partial \ell}{\partial q_j} = \bigl(-t_j + [j = j^*](1 - t_j)\bigr)
            [\ell > 0]

    with ``j* = argmax_j (1 − t_j) q_j`` (a tie shares the gradient equally, as
    TensorFlow's ``reduce_max`` does).  A single value per sample: no mean or sum
    over the classes.

    **One-hot targets.**  ``1 + max_{j≠y} p_j − p_y``, the Crammer–Singer hinge on
    probabilities, in ``(0, 2)`` and always active; it is non-differentiable where
    the two largest non-target scores tie.  Soft targets give a different loss.

    %(parameters_returns)s

    %(references)s

    %(examples)s
    >>> print(f"{float(K.categorical_hinge(s, np.array([2]))):.9f}")
    1.538402946
    """
    return call(_CATEGORICAL_HINGE, locals())


categorical_hinge_and_grad = grad_twin(_CATEGORICAL_HINGE, categorical_hinge)


@_fill
def hinge(
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
    r"""Keras ``hinge`` of ``q = softmax(logits)``.

    .. math::

        \ell = \frac1C \sum_j \max(0,\, 1 - \hat t_j q_j),
        \qquad
        \frac{\partial \ell}{\partial q_j} = -\frac{\hat t_j}{C}\,[1 - \hat t_j q_j > 0]

    averaged over the classes, where ``t̂ = 2t − 1`` if *every* target in the batch
    is 0 or 1 (Keras' ``_maybe_convert_labels``; always so for class indices) and
    ``t̂ = t`` otherwise.  The test is a single 0-d boolean applied with
    ``xp.where``, so lazy arrays stay lazy.

    **One-hot targets.**  ``(C − 1)/C + 2(1 − p_y)/C``: a constant plus the
    expectation loss over ``C``, with the same gradient as
    :func:`mean_absolute_error`.  For soft (non-binary) targets the labels are not
    converted and the loss differs.

    %(parameters_returns)s

    %(references)s

    %(examples)s
    >>> print(f"{float(K.hinge(s, np.array([2]))):.9f}")
    1.192564548
    """
    return call(_HINGE, locals())


hinge_and_grad = grad_twin(_HINGE, hinge)


@_fill
def squared_hinge(
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
    r"""Keras ``squared_hinge`` of ``q = softmax(logits)``.

    .. math::

        \ell = \frac1C \sum_j \max(0,\, 1 - \hat t_j q_j)^2,
        \qquad
        \frac{\partial \ell}{\partial q_j}
            = -\frac{2 \hat t_j}{C}\max(0,\, 1 - \hat t_j q_j)

    averaged over the classes, with ``t̂`` as in :func:`hinge` (``2t − 1`` when
    every target in the batch is 0 or 1).

    **One-hot targets.**  ``((1 − p_y)^2 + Σ_{j≠y} (1 + p_j)^2) / C``; soft
    (non-binary) targets are not converted and give a different loss.

    %(parameters_returns)s

    %(references)s

    %(examples)s
    >>> print(f"{float(K.squared_hinge(s, np.array([2]))):.9f}")
    1.467375685
    """
    return call(_SQUARED_HINGE, locals())


squared_hinge_and_grad = grad_twin(_SQUARED_HINGE, squared_hinge)


@_fill
def mean_squared_error(
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
    r"""Keras ``mean_squared_error`` of ``q = softmax(logits)``.

    .. math::

        \ell = \frac1C \sum_j (q_j - t_j)^2,
        \qquad
        \frac{\partial \ell}{\partial q_j} = \frac{2 (q_j - t_j)}{C}

    averaged over the classes.

    **One-hot targets.**  The same as for soft targets: Janocha's regularised
    expectation loss (L2∘σ) divided by ``C``; it is :func:`huber` times 2.

    %(parameters_returns)s

    %(references)s

    %(examples)s
    >>> print(f"{float(K.mean_squared_error(s, np.array([2]))):.10f}")
    0.2748111371
    """
    return call(_MSE, locals())


mean_squared_error_and_grad = grad_twin(_MSE, mean_squared_error)


@_fill
def mean_absolute_error(
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
    r"""Keras ``mean_absolute_error`` of ``q = softmax(logits)``.

    .. math::

        \ell = \frac1C \sum_j |q_j - t_j|,
        \qquad
        \frac{\partial \ell}{\partial q_j} = \frac{\operatorname{sign}(q_j - t_j)}{C}

    averaged over the classes, with ``sign(0) = 0``.

    **One-hot targets.**  ``2(1 − p_y)/C``: Janocha's expectation loss (L1∘σ)
    divided by ``C``, smooth for finite logits.  Soft targets give a different loss,
    with kinks where ``q_j = t_j``.

    %(parameters_returns)s

    %(references)s

    %(examples)s
    >>> print(f"{float(K.mean_absolute_error(s, np.array([2]))):.10f}")
    0.3925645479
    """
    return call(_MAE, locals())


mean_absolute_error_and_grad = grad_twin(_MAE, mean_absolute_error)


@_fill
def mean_absolute_percentage_error(
    logits: Array,
    labels: Array,
    /,
    *,
    epsilon: float = EPSILON,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Keras ``mean_absolute_percentage_error`` of ``q = softmax(logits)``.

    .. math::

        \ell = \frac{100}{C} \sum_j \frac{|t_j - q_j|}{\max(|t_j|, ε)},
        \qquad
        \frac{\partial \ell}{\partial q_j}
            = \frac{100 \operatorname{sign}(q_j - t_j)}{C \max(|t_j|, ε)}

    averaged over the classes, with ``sign(0) = 0``.  The clip acts on the targets
    only, so it never cuts the gradient off; instead it divides every class with
    ``t_j = 0`` by ``ε``.

    **One-hot targets.**  ``(100/C) (P + P/ε) ≈ (10⁹/C) P`` with ``P = 1 − p_y``:
    the expectation loss scaled by about ``10⁹/C``, so values and gradients are
    huge by design (finite, about 1e9, even in float32).  Soft targets give a
    different loss.

    **Precision.**  The chain rule is formed relative to each row's most probable
    class (nothing of size 1e9 cancels where ``p`` is near one-hot), and float16
    is computed in float32 and rounded once (``ε`` is a subnormal in float16):
    value and gradient are the exact ones rounded to the dtype, ``inf`` only
    where they are beyond its range (float16's 65504: most one-hot losses).

    %(parameters)s
    epsilon : float in (0, 1)
        Keras' ``backend.epsilon()``, the floor of ``|t|`` in the denominator.
    %(common_returns)s

    %(references)s

    %(examples)s
    >>> print(f"{float(K.mean_absolute_percentage_error(s, np.array([2]))):.1f}")
    196282293.6
    """
    return call(_MAPE, locals())


mean_absolute_percentage_error_and_grad = grad_twin(
    _MAPE, mean_absolute_percentage_error
)


@_fill
def mean_squared_logarithmic_error(
    logits: Array,
    labels: Array,
    /,
    *,
    epsilon: float = EPSILON,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Keras ``mean_squared_logarithmic_error`` of ``q = softmax(logits)``.

    .. math::

        \ell = \frac1C \sum_j a_j^2, \quad
        a_j = \log(1 + \max(q_j, ε)) - \log(1 + \max(t_j, ε)),
        \qquad
        \frac{\partial \ell}{\partial q_j} = \frac{2 a_j}{C (1 + q_j)}\,[q_j \ge ε]

    averaged over the classes (``log1p`` is used for ``log(1 + ·)``).

    **Clipping.**  Where ``q_j < ε`` the ``max`` is active and passes *zero*
    gradient through ``q_j``, as in TensorFlow.

    **One-hot targets.**  No simpler form: the true class contributes
    ``(log(1 + p_y) − log 2)²`` and every other class ``(log(1 + max(p_j, ε)) −
    log(1 + ε))²``, all over ``C``.  Soft targets give a different loss.

    %(parameters)s
    epsilon : float in (0, 1)
        Keras' ``backend.epsilon()``: the floor of ``q`` and ``t``.
    %(common_returns)s

    %(references)s

    %(examples)s
    >>> print(f"{float(K.mean_squared_logarithmic_error(s, np.array([2]))):.10f}")
    0.1458436667
    """
    return call(_MSLE, locals())


mean_squared_logarithmic_error_and_grad = grad_twin(
    _MSLE, mean_squared_logarithmic_error
)


@_fill
def log_cosh(
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
    r"""Keras ``log_cosh`` of ``q = softmax(logits)``.

    .. math::

        \ell = \frac1C \sum_j \log\cosh(q_j - t_j),
        \qquad
        \frac{\partial \ell}{\partial q_j} = \frac{\tanh(q_j - t_j)}{C}

    averaged over the classes.  Keras evaluates ``x + softplus(−2x) − log 2``; the
    same function is computed here as ``log1p(2 sinh²(x/2))``, which keeps full
    relative accuracy for small ``|x|`` (in float32 too).

    **One-hot targets.**  No simpler form; ``≈ MSE/2`` while the errors are small.
    Soft targets give a different loss.

    %(parameters_returns)s

    %(references)s

    %(examples)s
    >>> print(f"{float(K.log_cosh(s, np.array([2]))):.10f}")
    0.1234028981
    """
    return call(_LOG_COSH, locals())


log_cosh_and_grad = grad_twin(_LOG_COSH, log_cosh)


@_fill
def huber(
    logits: Array,
    labels: Array,
    /,
    *,
    delta: float = 1.0,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Keras ``huber`` of ``q = softmax(logits)``.

    .. math::

        \ell = \frac1C \sum_j h(q_j - t_j), \quad
        h(x) = \begin{cases} \tfrac12 x^2 & |x| \le δ \\
                             δ|x| - \tfrac12 δ^2 & |x| > δ \end{cases},
        \qquad
        \frac{\partial \ell}{\partial q_j}
            = \frac{\operatorname{clip}(q_j - t_j, -δ, δ)}{C}

    averaged over the classes.

    **One-hot targets.**  ``|q_j − t_j| < 1`` always, so with ``δ ≥ 1`` (the
    default ``δ = 1``) this is :func:`mean_squared_error` / 2 = L2∘σ / (2C), for
    soft targets too.  With ``δ < 1`` it has kinks where ``|q_j − t_j| = δ``.

    %(parameters)s
    delta : float > 0
        Where the quadratic part turns linear.
    %(common_returns)s

    %(references)s

    %(examples)s
    >>> print(f"{float(K.huber(s, np.array([2]))):.10f}")
    0.1374055685
    """
    return call(_HUBER, locals())


huber_and_grad = grad_twin(_HUBER, huber)


@_fill
def cosine_similarity(
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
    r"""Keras ``cosine_similarity`` of ``q = softmax(logits)`` (negated, in [−1, 0]).

    .. math::

        \ell = -\langle \hat t, \hat q \rangle, \quad
        \hat x = \frac{x}{\sqrt{\max(\lVert x \rVert^2, 10^{-12})}},
        \qquad
        \frac{\partial \ell}{\partial q} = -\frac{\hat t - \langle \hat t, \hat q
            \rangle \hat q}{\lVert q \rVert}

    summed over the classes, with ``tf.math.l2_normalize``'s fixed floor ``1e-12``
    on the squared norms (not ``backend.epsilon()``; it is never active for a
    softmax output or a target distribution with fewer than 10¹² classes, and
    where it were, the normalisation would pass no gradient).

    **One-hot targets.**  ``−p_y/‖p‖ = −exp(−D_CS)``, a monotone transform of the
    Cauchy–Schwarz divergence.  Soft targets give a different loss.

    %(parameters_returns)s

    %(references)s

    %(examples)s
    >>> print(f"{float(K.cosine_similarity(s, np.array([2]))):.11f}")
    -0.02898701121
    """
    return call(_COSINE, locals())


cosine_similarity_and_grad = grad_twin(_COSINE, cosine_similarity)
