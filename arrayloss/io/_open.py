"""Open any input by its suffix (`open_array`), and rows ``start:stop`` of an
``.npy``/``.npz`` file (`read_rows`, what a worker of a cluster reads)."""

from __future__ import annotations

import numpy as np

from .._errors import DataError
from ._formats import ARROW_SUFFIXES, check_suffix
from ._npy import _open_npy, _open_npz
from ._source import Source, _describe
from ._spec import TableSpec
from ._text import _TextVector, open_table

__all__ = ["open_array", "read_rows"]

_NO_SPEC = TableSpec()


def open_array(
    path: str,
    kind: str,
    *,
    key: str | None = None,
    spec: TableSpec = _NO_SPEC,
    allow_empty: bool = False,
) -> Source:
    """A `Source` for the ``kind`` in ``path``: ``"scores"``, ``"labels"`` (class
    indices or names), ``"soft"`` (soft labels: rows of class probabilities) or
    ``"weights"``.

    ``key`` picks the member of an ``.npz``; ``spec`` (a `TableSpec`) says how to
    read a text, Parquet or Feather file (a 1-D ``kind`` takes one column: the
    only one, or ``label_column``; soft labels take every column, or those
    ``label_column`` selects).  A suffix that is none of `INPUT_SUFFIXES` is a
    `DataError` (a file without a suffix is read as CSV).  ``allow_empty``: a
    text file without a row is a source without rows (`open_table`), not an error.
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

        src: Source = open_arrow(path, label, kind, spec)
        return src
    if kind == "soft":  # the soft-label columns are read as a table's scores
        spec = spec.replace(score_columns=spec.label_column, label_column=None)
    if kind in ("scores", "soft"):
        scores, _ = open_table(path, spec, allow_empty=allow_empty)
        scores.label = label
        return scores
    return _TextVector(path, label, kind, spec, allow_empty=allow_empty)


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
