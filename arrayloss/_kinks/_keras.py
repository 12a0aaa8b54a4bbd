"""Where the ``keras.*`` losses are not smooth, for finite-difference tests.

``KINKS[name](logits, labels, params)`` takes ``(n, C)`` float64 logits, ``(n,)``
integer labels and the loss's keyword parameters, and returns an ``(n,)`` array: a
*lower bound* on the Euclidean distance, in logit space, from each sample to the
nearest kink or active-clip boundary of that loss (``inf`` where there is none).  A
gradient test that rejects samples with a bound below its step never straddles one.

Most boundaries are level sets ``{p_j = c}`` of ``p = softmax(z)``.  Both
``log p_j`` and ``log(1 − p_j)`` have gradients of norm at most √2 in ``z``
(``‖e_j − p‖² ≤ 2(1 − p_j)²`` and ``‖∇ log(1 − p_j)‖² = p_j²(1 + Σ_{k≠j} r_k²)
≤ 2p_j²``), so the distance to ``{p_j = c}`` is at least
``max(|log p_j − log c|, |log(1 − p_j) − log(1 − c)|) / √2``; a level ``c`` outside
``(0, 1)`` is never reached at finite logits (distance ``inf``).

For soft labels the levels are the targets' own (``q_j = t_j`` for the absolute
errors, ``t_j ± δ`` for Huber) and the categorical hinge's kinks are ties of
``(1 − t_j) q_j``.

Losses missing here are smooth (C¹ at least) for class-index and soft targets:
categorical_crossentropy, poisson, squared_hinge, mean_squared_error, log_cosh and
cosine_similarity (whose ``1e-12`` norm floor a softmax never reaches).
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, logsumexp

from ._defaults import kink_table


def _targets(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """One-hot targets for class indices, the soft labels themselves otherwise."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return labels.astype(np.float64)
    return (np.arange(n_classes) == labels[:, None]).astype(np.float64)


def _level_distance(z: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``(n, C)`` lower bound on the distance from ``z`` to ``{p_j = c_j}``."""
    z = np.asarray(z, dtype=np.float64)
    c = np.broadcast_to(np.asarray(c, dtype=np.float64), z.shape)
    n_classes = z.shape[1]
    logp = z - logsumexp(z, axis=1, keepdims=True)
    # log(1 - p_j) = lse_{k != j} z_k - lse z, without cancellation near p_j = 1.
    others = np.where(np.eye(n_classes, dtype=bool), -np.inf, z[:, None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        log1m = logsumexp(others, axis=2) - logsumexp(z, axis=1, keepdims=True)
        reachable = (c > 0) & (c < 1)
        cc = np.where(reachable, c, 0.5)
        d = np.maximum(np.abs(logp - np.log(cc)), np.abs(log1m - np.log1p(-cc)))
    return np.where(reachable, d / np.sqrt(2), np.inf)


def _clip_at_epsilon(z: np.ndarray, labels: np.ndarray, params: dict) -> np.ndarray:
    """``q_j = ε``: where the clip of ``q`` starts passing zero gradient."""
    eps = float(params["epsilon"])
    return _level_distance(z, np.full(z.shape, eps)).min(axis=1)


def _at_target(z: np.ndarray, labels: np.ndarray, params: dict) -> np.ndarray:
    """``q_j = t_j`` (``|q − t|``): never reached for one-hot targets (``inf``)."""
    return _level_distance(z, _targets(labels, z.shape[1])).min(axis=1)


def _hinge(z: np.ndarray, labels: np.ndarray, params: dict) -> np.ndarray:
    """``t̂_j q_j = 1``: with ``t̂ = 2t − 1 = ±1`` (class indices, or soft labels
    that are all 0 or 1: Keras' batch-wide conversion) ``q_j = ±1``; with soft
    labels kept as they are, ``q_j = 1/t_j >= 1``.  Never reached (``inf``)."""
    t = _targets(labels, z.shape[1])
    signed = 2 * t - 1 if np.all((t == 0) | (t == 1)) else t
    with np.errstate(divide="ignore"):
        level = np.where(signed != 0, 1 / np.where(signed != 0, signed, 1), np.inf)
    return _level_distance(z, level).min(axis=1)


def _huber(z: np.ndarray, labels: np.ndarray, params: dict) -> np.ndarray:
    """``|q_j − t_j| = δ``: the levels ``t_j ± δ``."""
    delta = float(params["delta"])
    t = _targets(labels, z.shape[1])
    up = _level_distance(z, t + delta)
    down = _level_distance(z, t - delta)
    return np.minimum(up, down).min(axis=1)


def _categorical_hinge(z: np.ndarray, labels: np.ndarray, params: dict) -> np.ndarray:
    """Ties of the two largest ``(1 − t_j) q_j``.

    The hinge itself is always active (``1 + max_j (1 − t_j) q_j − ⟨t, q⟩ > 0``
    since ``⟨t, q⟩ < 1`` at finite logits), so the ``argmax`` switch is the only
    kink.  For class indices the competitors are the non-target scores and the
    distance is exact (gap / √2).  For soft labels it is measured on
    ``a_j = log(1 − t_j) + log q_j``: each ``log q_j`` moves by at most ``√2 |dz|``,
    a difference of two by ``2√2 |dz|``.
    """
    z = np.asarray(z, dtype=np.float64)
    n, n_classes = z.shape
    if np.asarray(labels).ndim == 2:
        with np.errstate(divide="ignore"):
            a = np.log1p(-_targets(labels, n_classes)) + log_softmax(z, axis=1)
        if n_classes < 2:
            return np.full(n, np.inf)
        a = np.sort(a, axis=1)
        with np.errstate(invalid="ignore"):
            gap = a[:, -1] - a[:, -2]
        return np.where(np.isnan(gap), np.inf, gap) / (2 * np.sqrt(2))
    if n_classes < 3:
        return np.full(n, np.inf)
    mask = _targets(labels, n_classes).astype(bool)
    others = np.sort(np.where(mask, -np.inf, z), axis=1)
    return (others[:, -1] - others[:, -2]) / np.sqrt(2)


KINKS = kink_table(
    {
        "keras.kl_divergence": _clip_at_epsilon,
        "keras.mean_squared_logarithmic_error": _clip_at_epsilon,
        "keras.mean_absolute_error": _at_target,
        "keras.mean_absolute_percentage_error": _at_target,
        "keras.hinge": _hinge,
        "keras.categorical_hinge": _categorical_hinge,
        "keras.huber": _huber,
    }
)
