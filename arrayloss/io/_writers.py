"""Streaming writers of per-sample results: ``.npy`` (`NpyWriter`) and CSV/TSV
(`TextWriter`)."""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Sequence
from typing import IO

import numpy as np

__all__ = ["NpyWriter", "TextWriter"]


class NpyWriter:
    """Write a float64 ``(rows, len(columns))`` ``.npy`` file block by block.

    The row count is unknown until the end, so the header is written with room to
    spare and rewritten by `close`.  A destination that cannot seek (a FIFO, a
    pipe) gets the rows spooled to an anonymous temporary file and copied after
    the final header at `close`.
    """

    _HEADER = 128

    def __init__(self, path: str, columns: Sequence[str]) -> None:
        self._f = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._width = len(columns)
        self._rows = 0
        self._body: IO[bytes] = self._f
        if self._f.seekable():
            self._f.write(self._header())
        else:
            self._body = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()

    def _header(self) -> bytes:
        d = f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({self._rows}, {self._width}), }}"
        body = d.encode("latin1")
        pad = self._HEADER - 10 - len(body) - 1
        return (
            b"\x93NUMPY\x01\x00"
            + (self._HEADER - 10).to_bytes(2, "little")
            + body
            + b" " * pad
            + b"\n"
        )

    def write(self, block: np.ndarray) -> None:
        """Append the rows of ``block``."""
        self._body.write(np.ascontiguousarray(block, dtype="<f8").tobytes())
        self._rows += int(block.shape[0])

    def close(self) -> None:
        """Write the final header (and, for a pipe, the rows) and close."""
        try:
            if self._body is self._f:
                self._f.seek(0)
                self._f.write(self._header())
            else:
                self._f.write(self._header())
                self._body.seek(0)
                while block := self._body.read(1 << 20):
                    self._f.write(block)
        finally:
            if self._body is not self._f:
                self._body.close()
            self._f.close()


class TextWriter:
    """Write ``(rows, len(columns))`` numbers as CSV (or TSV) with a header row."""

    def __init__(
        self, path: str, columns: Sequence[str], *, delimiter: str = ","
    ) -> None:
        self._f = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._delimiter = delimiter
        # "\n" as savetxt ends the rows (csv's default is "\r\n")
        csv.writer(self._f, delimiter=delimiter, lineterminator="\n").writerow(columns)

    def write(self, block: np.ndarray) -> None:
        np.savetxt(
            self._f,
            np.asarray(block, dtype=np.float64),
            fmt="%.17g",
            delimiter=self._delimiter,
        )

    def close(self) -> None:
        self._f.close()
