"""Where the sparse Fenchel–Young losses (and NCE+MAE) are not smooth, for
finite-difference checks.

``sparsemax_loss`` has the gradient ``sparsemax(z) - t``, continuous and piecewise
linear: its derivative jumps where the support changes, i.e. where some
``h_j = z_j - tau(z)`` crosses zero.  On a fixed support ``dtau/dz = 1_S / |S|``,
so ``||grad h_j||_1 <= 2`` and ``min_j |h_j| / 2`` bounds the max-norm distance to
the nearest support change from below.  ``entmax15_loss`` is twice differentiable,
but its third derivative jumps at ``h_j = z_j / 2 - tau = 0``; there
``dtau/dz = sqrt(p) / (2 sum sqrt(p))``, so ``||grad h_j||_1 <= 1`` and the bound
is ``min_j |h_j|``.  ``nce_mae`` has the kinks of its MAE term (the expectation
loss: none for one-hot targets).

The thresholds are recomputed here by a plain NumPy sort (an oracle independent of
the loss's own array-API code).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._svm import KINKS as _SVM

__all__ = ["KINKS"]


def _tau_sparsemax(x: np.ndarray) -> np.ndarray:
    srt = -np.sort(-x, axis=1)
    k = np.arange(1, x.shape[1] + 1)
    csum = np.cumsum(srt, axis=1)
    kstar = np.sum(1 + k * srt > csum, axis=1)
    return (csum[np.arange(x.shape[0]), kstar - 1] - 1) / kstar


def _tau_entmax15(x: np.ndarray) -> np.ndarray:
    srt = -np.sort(-x, axis=1)
    k = np.arange(1, x.shape[1] + 1)
    mean = np.cumsum(srt, axis=1) / k
    mean_sq = np.cumsum(srt**2, axis=1) / k
    tau = mean - np.sqrt(np.maximum((1 - k * (mean_sq - mean**2)) / k, 0))
    kstar = np.sum(tau <= srt, axis=1)
    return tau[np.arange(x.shape[0]), kstar - 1]


def _shift(z: np.ndarray, scale: float) -> np.ndarray:
    return np.maximum(scale * (z - z.max(axis=1, keepdims=True)), -2.0)


def _sparsemax(z: np.ndarray, y: np.ndarray, params: dict) -> np.ndarray:
    x = _shift(z, 1.0)
    return np.abs(x - _tau_sparsemax(x)[:, None]).min(axis=1) / 2


def _entmax15(z: np.ndarray, y: np.ndarray, params: dict) -> np.ndarray:
    x = _shift(z, 0.5)
    return np.abs(x - _tau_entmax15(x)[:, None]).min(axis=1)


KINKS: dict[str, Callable[[np.ndarray, np.ndarray, dict], np.ndarray]] = {
    "sparsemax_loss": _sparsemax,
    "entmax15_loss": _entmax15,
    "nce_mae": _SVM["expectation"],
}
