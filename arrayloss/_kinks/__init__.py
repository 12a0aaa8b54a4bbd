"""Where each non-smooth loss has kinks, for finite-difference checks.

``KINKS[name](logits, labels, params)`` takes float64 NumPy ``(n, C)`` logits,
integer ``(n,)`` labels and the loss's parameters, and returns the ``(n,)`` lower
bound on the distance (in logit units) from each row to the nearest point where
the loss is not differentiable.  `arrayloss.gradcheck` keeps its finite-difference
steps below that distance and leaves out rows that sit on a kink, where the
analytic value is just one subgradient.  Smooth losses have no entry.

These are NumPy oracles for checking, not part of any loss's computation; the
module is imported only by `arrayloss.gradcheck`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._keras import KINKS as _KERAS
from ._lapin import KINKS as _LAPIN
from ._sparse import KINKS as _SPARSE
from ._svm import KINKS as _SVM
from ._topk import KINKS as _TOPK

KinkDistance = Callable[[Any, Any, dict[str, Any]], Any]

KINKS: dict[str, KinkDistance] = {**_SVM, **_KERAS, **_LAPIN, **_TOPK, **_SPARSE}

__all__ = ["KINKS", "KinkDistance"]
