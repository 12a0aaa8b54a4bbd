"""The loss's own defaults for the parameters a kink oracle was not given.

Every oracle reads its parameters (``k``, ``margin``, ``tau``, ...) from one dict
that `kink_table` fills from the registry (``arrayloss.LOSSES[name].params``), so
the defaults live in one place: the loss's signature.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from .._registry import LOSSES

__all__ = ["KinkFn", "kink_table"]

KinkFn = Callable[[Any, Any, dict[str, Any]], Any]


def _filled(name: str, fn: KinkFn) -> KinkFn:
    @functools.wraps(fn)
    def distance(logits: Any, labels: Any, params: dict[str, Any]) -> Any:
        return fn(logits, labels, {**LOSSES[name].params, **params})

    return distance


def kink_table(table: Mapping[str, KinkFn]) -> dict[str, KinkFn]:
    """``{name: oracle}`` with each oracle's missing parameters taken from the
    registry's defaults for ``name``."""
    return {name: _filled(name, fn) for name, fn in table.items()}
