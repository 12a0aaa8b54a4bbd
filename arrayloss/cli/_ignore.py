"""``arrayloss eval --ignore-label N``: samples with that label count for nothing.

As PyTorch's ``ignore_index``: a sample whose label is ``N`` gets weight 0 in
every loss and metric (so each mean is over the kept samples), its label is
replaced by a valid stand-in before the range check, and the samples ignored are
counted.  The chunk engine (`arrayloss.cli._engine.evaluate_chunk`) applies it to
each chunk, on the streaming and the ``--dask`` path alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["IgnoreTally", "drop_ignored", "zero_ignored"]


@dataclass
class IgnoreTally:
    """``--ignore-label``: the label whose samples count for nothing, and how many
    samples had it."""

    label: int
    count: int = 0

    def merge(self, other: IgnoreTally) -> IgnoreTally:
        """Both tallies together."""
        return IgnoreTally(self.label, self.count + other.count)


def _ignored_mask(raw: np.ndarray, label: int) -> np.ndarray | None:
    """Which raw labels equal ``label`` (``None`` when none can): integers are
    compared in their own dtype, names as the decimal text of ``label``."""
    if raw.ndim != 1:  # not class indices (soft labels): nothing to ignore
        return None
    kind = raw.dtype.kind
    if kind in "iu":
        info = np.iinfo(raw.dtype)
        if not info.min <= label <= info.max:
            return None
        return np.asarray(raw == label)
    if kind == "f":
        return np.asarray(raw == label)
    if kind in "US":
        values = raw.astype(str) if kind == "S" else raw
        return np.asarray(np.char.strip(values) == str(label))
    return None


def drop_ignored(
    raw: np.ndarray, ignored: IgnoreTally, class_names: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The labels with each ignored one replaced by a valid stand-in (so it is not
    range-checked), and the mask of the ignored samples (``None``: none)."""
    mask = _ignored_mask(raw, ignored.label)
    if mask is None or not mask.any():
        return raw, None
    ignored.count += int(np.count_nonzero(mask))
    raw = raw.copy()
    raw[mask] = (
        (class_names[0] if class_names else "0") if raw.dtype.kind in "US" else 0
    )
    return raw, mask


def zero_ignored(w: np.ndarray | None, mask: np.ndarray, dtype: Any) -> np.ndarray:
    """The weights with the ignored samples' set to 0 (a new array)."""
    out = np.ones(mask.shape[0], dtype=dtype) if w is None else np.array(w)
    out[mask] = 0
    return out
