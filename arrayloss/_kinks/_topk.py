"""Kinks of the hard top-k SVM (and of the smooth one with its opt-in hard switch)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._defaults import kink_table

__all__ = ["KINKS"]


def _topk_svm(logits: Any, labels: Any, params: dict[str, Any]) -> Any:
    """Max-norm distance to the hinge (``alpha + (s_[k] - s_y)/k = 0``) or to a tie
    of the k-th largest non-label score with its neighbours in the ranking."""
    k = int(params["k"])
    alpha = float(params["alpha"])
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)
    rows = np.arange(z.shape[0])
    others = z.copy()
    others[rows, y] = -np.inf
    srt = -np.sort(-others, axis=1)
    kth = srt[:, k - 1]
    dist = np.abs(alpha + (kth - z[rows, y]) / k) / (2.0 / k)
    if k < z.shape[1] - 1:
        dist = np.minimum(dist, (kth - srt[:, k]) / 2.0)
    if k >= 2:
        dist = np.minimum(dist, (srt[:, k - 2] - kth) / 2.0)
    return dist


def _smooth_topk_svm(logits: Any, labels: Any, params: dict[str, Any]) -> Any:
    """Smooth everywhere, unless the reference's hard switch is turned on: then the
    switch surface (the k-th/(k+1)-th gap of all scores at ``k tau log(threshold)``)
    and the hard loss's own kinks."""
    z = np.asarray(logits, dtype=np.float64)
    threshold = params["hard_threshold"]
    if threshold is None:
        return np.full(z.shape[0], np.inf)
    k = int(params["k"])
    tau = float(params["tau"])
    srt = -np.sort(-z, axis=1)
    gap = srt[:, k - 1] - srt[:, k]
    switch = np.abs(gap - k * tau * np.log(float(threshold))) / 2.0
    return np.minimum(switch, _topk_svm(z, labels, params))


KINKS = kink_table({"topk_svm": _topk_svm, "smooth_topk_svm": _smooth_topk_svm})
