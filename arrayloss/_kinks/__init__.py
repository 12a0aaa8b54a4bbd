"""Where each non-smooth loss has kinks, for finite-difference checks.

``KINKS[name](logits, labels, params)`` takes float64 NumPy ``(n, C)`` logits,
``(n,)`` integer labels or ``(n, C)`` soft labels (for the losses that accept them)
and the loss's parameters (missing ones take the registry's defaults,
``arrayloss.LOSSES[name].params``), and returns the ``(n,)`` lower bound on the
distance (in logit units) from each row to the nearest point where the loss is not
differentiable.  `arrayloss.gradcheck` keeps its finite-difference steps below that
distance and leaves out rows that sit on a kink, where the analytic value is just
one subgradient.  Smooth losses have no entry.

These are NumPy oracles for checking, not part of any loss's computation; the
module is imported only by `arrayloss.gradcheck`.  Each submodule holds a
``KINKS`` table built with `._defaults.kink_table`; adding one is one line in
``_TABLES``.
"""

from __future__ import annotations

import importlib

from ._defaults import KinkFn

KinkDistance = KinkFn

_TABLES = (
    "._svm",
    "._keras",
    "._lapin",
    "._topk",
    "._sparse",
)


def _merged() -> dict[str, KinkDistance]:
    out: dict[str, KinkDistance] = {}
    for module in _TABLES:
        table: dict[str, KinkDistance] = importlib.import_module(module, __name__).KINKS
        twice = sorted(set(out) & set(table))
        if twice:
            msg = f"kink oracles defined twice: {twice}"
            raise RuntimeError(msg)
        out.update(table)
    return out


KINKS: dict[str, KinkDistance] = _merged()

__all__ = ["KINKS", "KinkDistance"]
