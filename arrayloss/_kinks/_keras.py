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

Losses missing here are smooth (C¹ at least) for class-index targets:
categorical_crossentropy, poisson, squared_hinge, mean_squared_error, log_cosh and
cosine_similarity (whose ``1e-12`` norm floor a softmax never reaches).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import logsumexp

EPSILON = 1e-7

KinkFn = Callable[[np.ndarray, np.ndarray, dict], np.ndarray]


def _one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return (np.arange(n_classes) == np.asarray(labels)[:, None]).astype(np.float64)


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
    eps = float(params.get("epsilon", EPSILON))
    return _level_distance(z, np.full(z.shape, eps)).min(axis=1)


def _at_target(z: np.ndarray, labels: np.ndarray, params: dict) -> np.ndarray:
    """``q_j = t_j`` (``|q − t|``): never reached for one-hot targets (``inf``)."""
    return _level_distance(z, _one_hot(labels, z.shape[1])).min(axis=1)


def _hinge(z: np.ndarray, labels: np.ndarray, params: dict) -> np.ndarray:
    """``t̂_j q_j = 1`` with ``t̂ = ±1``: ``q_j = ±1``, never reached (``inf``)."""
    signed = 2 * _one_hot(labels, z.shape[1]) - 1
    return _level_distance(z, 1 / signed).min(axis=1)


def _huber(z: np.ndarray, labels: np.ndarray, params: dict) -> np.ndarray:
    """``|q_j − t_j| = δ``: the levels ``t_j ± δ``."""
    delta = float(params.get("delta", 1.0))
    t = _one_hot(labels, z.shape[1])
    up = _level_distance(z, t + delta)
    down = _level_distance(z, t - delta)
    return np.minimum(up, down).min(axis=1)


def _categorical_hinge(z: np.ndarray, labels: np.ndarray, params: dict) -> np.ndarray:
    """Ties of the two largest non-target scores (exact distance: gap / √2).

    The hinge itself is always active for one-hot targets (``1 + max_{j≠y} p_j −
    p_y > 0``), so the ``argmax`` switch is the only kink.
    """
    z = np.asarray(z, dtype=np.float64)
    n, n_classes = z.shape
    if n_classes < 3:
        return np.full(n, np.inf)
    mask = _one_hot(labels, n_classes).astype(bool)
    others = np.sort(np.where(mask, -np.inf, z), axis=1)
    return (others[:, -1] - others[:, -2]) / np.sqrt(2)


KINKS: dict[str, KinkFn] = {
    "keras.kl_divergence": _clip_at_epsilon,
    "keras.mean_squared_logarithmic_error": _clip_at_epsilon,
    "keras.mean_absolute_error": _at_target,
    "keras.mean_absolute_percentage_error": _at_target,
    "keras.hinge": _hinge,
    "keras.categorical_hinge": _categorical_hinge,
    "keras.huber": _huber,
}
