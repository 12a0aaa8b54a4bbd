"""The reader interface: `Source` (rows of one array, read in chunks), the
`_LabelColumn` a table hands its label columns out through, and how a file is
named in messages and opened."""

from __future__ import annotations

import os
import stat
from typing import IO, Any

import numpy as np

from .._errors import DataError

__all__ = ["Source"]


class Source:
    """Rows of one array, read in order.

    ``n_rows`` is known in advance for ``.npy``/``.npz`` and ``None`` for text;
    ``n_cols`` is the row width of a 2-D source, ``None`` for a 1-D one;
    ``column_names`` the names of its columns where a table names them;
    ``categories`` the class names in order where labels are a categorical
    (dictionary) column of text in Parquet or Feather.
    ``read(n)`` returns the next ``min(n, rows left)`` rows; an empty array at the end.
    """

    label: str
    n_rows: int | None
    n_cols: int | None
    column_names: list[str] | None = None
    categories: tuple[str, ...] | None = None

    def read(self, n: int) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def progress(self) -> tuple[int, int] | None:
        """(done, total) in some unit (rows or bytes), or None when unknown."""
        return None

    def skip(self, n: int) -> None:
        """Pass over the next ``n`` rows without keeping them."""
        while n > 0:
            got = int(self.read(min(n, 65536)).shape[0])
            if got == 0:
                return
            n -= got

    def close(self) -> None:
        """Release the file."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe(kind: str, path: str) -> str:
    return f"{kind} '{path}'" if path != "-" else f"{kind} (standard input)"


def empty_file(label: str, path: str, what: str) -> DataError | None:
    """The error for a regular file of zero bytes read as a ``what`` file (a
    shard whose write never happened or was cut short), else ``None``."""
    try:
        st = os.stat(path)
    except OSError:  # the reader reports it
        return None
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        return DataError(f"{label} is empty (0 bytes), not {what} file")
    return None


def _open_binary(path: str, label: str) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as exc:
        msg = f"cannot read {label}: {exc.strerror or exc}"
        raise DataError(msg) from None


class _NoRows(Source):
    """A text file without a row (zero bytes, or blank lines only) read as a shard
    among others: no rows, and no header, so no known width (``n_cols`` is
    ``None``)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.n_rows = 0
        self.n_cols = None

    def read(self, n: int) -> np.ndarray:
        return np.empty((0, 0))


class _LabelColumn(Source):
    """The label column (or soft-label columns) of a table whose other columns are
    the scores: ``table`` is the scores' `Source`, whose `read` sets its
    ``labels``."""

    def __init__(self, table: Any, n_cols: int | None = None) -> None:
        self.label = table.label
        self.n_rows = table.n_rows
        self.n_cols = n_cols
        self._table = table

    def read(self, n: int) -> np.ndarray:
        out: np.ndarray | None = self._table.labels
        if out is None:  # pragma: no cover - read() of the scores comes first
            msg = "read the scores before their labels"
            raise RuntimeError(msg)
        self._table.labels = None
        return out
