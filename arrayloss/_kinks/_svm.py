"""Where the non-smooth losses of ``_janocha.py`` and ``_hinge.py`` have kinks.

``KINKS[name](logits, labels, params)`` returns, for each sample, the distance of
its logits to the nearest point where loss ``name`` is not (twice, for the squared
and cubed hinge) differentiable, so that finite-difference gradient tests can drop
samples that sit too close to one (say within ``1e-2``).

- ``logits``: ``(n, C)`` float64; ``labels``: ``(n,)`` integer class indices, or
  ``(n, C)`` soft labels; ``params``: the loss's keyword parameters (missing ones
  take the registry's defaults, see `._defaults.kink_table`).
- The distance is the smallest max-norm change of the logits that reaches a kink, to
  first order: ``|h| / ||grad h||_1`` for each function ``h`` whose zero set is a
  kink.  It is exact for the piecewise-linear hinges and ``inf`` where the loss is
  smooth for these labels (``expectation`` and ``chebyshev`` with one-hot targets).
"""

from __future__ import annotations

import numpy as np

from ._defaults import kink_table

__all__ = ["KINKS"]


def _targets(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    if labels.ndim == 2:
        return np.asarray(labels, dtype=np.float64)
    return np.eye(logits.shape[1])[labels]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """|num| / den, ``inf`` where ``den == 0``."""
    safe = np.where(den > 0, den, 1.0)
    return np.where(den > 0, np.abs(num) / safe, np.inf)


def _l1(z: np.ndarray, y: np.ndarray, params: dict) -> np.ndarray:
    return np.abs(z - _targets(z, y)).min(axis=1)


def _one_vs_all(z: np.ndarray, y: np.ndarray, params: dict) -> np.ndarray:
    """``margin - ŷ_j z_j = 0`` with ``ŷ = 2t - 1`` (never, where ``ŷ_j = 0``)."""
    yhat = 2 * _targets(z, y) - 1
    h = float(params["margin"]) - yhat * z
    return _ratio(h, np.abs(yhat)).min(axis=1)


def _multiclass_hinge(z: np.ndarray, y: np.ndarray, params: dict) -> np.ndarray:
    rows = np.arange(z.shape[0])
    h = z - z[rows, y][:, None] + float(params["margin"])
    h[rows, y] = np.inf  # the label's own term is the constant 0
    return (np.abs(h) / 2).min(axis=1)


def _crammer_singer(z: np.ndarray, y: np.ndarray, params: dict) -> np.ndarray:
    rows = np.arange(z.shape[0])
    others = z.copy()
    others[rows, y] = -np.inf
    top2 = -np.sort(-others, axis=1)[:, :2]
    h = float(params["margin"]) + top2[:, 0] - z[rows, y]
    # A tie among the other classes matters only where the hinge is active.
    tie = np.where(h > 0, (top2[:, 0] - top2[:, 1]) / 2, np.inf)
    return np.minimum(np.abs(h) / 2, tie)


def _expectation(z: np.ndarray, y: np.ndarray, params: dict) -> np.ndarray:
    if y.ndim == 1:
        return np.full(z.shape[0], np.inf)  # 2 (1 - p_y) is smooth
    p = _softmax(z)
    # h = p_j - t_j, ||grad h||_1 = 2 p_j (1 - p_j)
    return _ratio(p - y, 2 * p * (1 - p)).min(axis=1)


def _chebyshev(z: np.ndarray, y: np.ndarray, params: dict) -> np.ndarray:
    if y.ndim == 1 or z.shape[1] < 2:
        return np.full(z.shape[0], np.inf)  # 1 - p_y is smooth
    p = _softmax(z)
    d = p - y
    order = np.argsort(-np.abs(d), axis=1, kind="stable")
    rows = np.arange(z.shape[0])
    a, b = order[:, 0], order[:, 1]
    eye = np.eye(z.shape[1])
    # grad |d_k| = sign(d_k) p_k (e_k - p)
    ga = (np.sign(d[rows, a]) * p[rows, a])[:, None] * (eye[a] - p)
    gb = (np.sign(d[rows, b]) * p[rows, b])[:, None] * (eye[b] - p)
    gap = np.abs(d[rows, a]) - np.abs(d[rows, b])
    tie = _ratio(gap, np.abs(ga - gb).sum(axis=1))
    zero = _ratio(d[rows, a], 2 * p[rows, a] * (1 - p[rows, a]))
    return np.minimum(tie, zero)


KINKS = kink_table(
    {
        "l1": _l1,
        "expectation": _expectation,
        "chebyshev": _chebyshev,
        "hinge": _one_vs_all,
        "squared_hinge": _one_vs_all,
        "cubed_hinge": _one_vs_all,
        "multiclass_hinge": _multiclass_hinge,
        "crammer_singer": _crammer_singer,
    }
)
