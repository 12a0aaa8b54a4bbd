"""Open any input by its suffix (`open_array`), and rows ``start:stop`` of an
``.npy``/``.npz`` file (`read_rows`, what a worker of a cluster reads)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._errors import DataError
from ._formats import ARROW_SUFFIXES, check_suffix
from ._npy import _open_npy, _open_npz
from ._source import Source, _describe
from ._text import _TextVector, open_table

__all__ = ["open_array", "read_rows"]


def open_array(path: str, kind: str, *, key: str | None = None, **text: Any) -> Source:
    """A `Source` for the ``kind`` in ``path``: ``"scores"``, ``"labels"`` (class
    indices or names), ``"soft"`` (soft labels: rows of class probabilities) or
    ``"weights"``.

    ``key`` picks the member of an ``.npz``; ``text`` goes to `open_table` for text
    files and to `arrayloss._arrow.open_arrow` for Parquet and Feather files (a
    1-D ``kind`` takes one column: the only one, or ``label_column``; soft labels
    take every column, or those ``label_column`` selects).  A suffix that is none
    of `INPUT_SUFFIXES` is a `DataError` (a file without a suffix is read as CSV).
    """
    what = {"weights": "--weights", "soft": "LABELS"}.get(kind, kind.upper())
    label = _describe(what, path)
    suffix = check_suffix(path, label)
    if suffix == ".npy":
        return _open_npy(path, label, kind)
    if suffix == ".npz":
        return _open_npz(path, key, label, kind)
    if suffix in ARROW_SUFFIXES:
        from .._arrow import open_arrow

        src: Source = open_arrow(path, label, kind, **text)
        return src
    if kind in ("scores", "soft"):
        text.pop("classes", None)
        if kind == "soft":
            text["score_columns"] = text.pop("label_column", None)
        scores, _ = open_table(path, **text)
        scores.label = label
        return scores
    for option in ("drop_columns", "score_columns", "soft"):
        text.pop(option, None)
    return _TextVector(path, label, kind, **text)


def read_rows(
    path: str, kind: str, start: int, stop: int, *, key: str | None = None
) -> np.ndarray:
    """Rows ``start:stop`` of the ``kind`` array in an ``.npy`` or ``.npz`` file.

    An ``.npy`` file is read with one seek and positioned reads, so a worker that
    reads one block of a large shard touches only that block; a compressed
    ``.npz`` member is decompressed up to ``stop``.
    """
    src = open_array(path, kind, key=key)
    try:
        src.skip(start)
        out = src.read(stop - start)
    finally:
        src.close()
    if out.shape[0] != stop - start:
        msg = f"{src.label} has {start + out.shape[0]} rows, fewer than {stop}"
        raise DataError(msg)
    return out
