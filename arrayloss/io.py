"""Prediction files: chunked readers and streaming writers.

Readers hand out rows in chunks so a file of any size is read in bounded memory:

* ``.npy``: the header is parsed and rows are read with positioned reads into a
  fresh buffer, chunk by chunk.  (A memory map would do the same work, but every
  page it touches stays resident and counts towards the process' RSS, so a 1 GB file
  would show as 1 GB.)  Fortran-ordered 2-D arrays, whose rows are not contiguous,
  are read through a memory map instead.
* ``.npz``: the member is streamed out of the zip archive the same way (compressed
  or not); Fortran-ordered members are loaded whole.
* ``.csv``, ``.tsv`` and ``.txt`` (anything else is read as comma-separated), or
  ``-`` for CSV on standard input: parsed with the `csv` module, a chunk of rows at a
  time, with or without a header row.

Every problem with a file is a `DataError` whose message names the file and, where
it can, the row or line.

Many files (shards) are named by a directory or a glob pattern: `expand_paths`
lists them in natural order, and `read_rows` reads rows ``start:stop`` of one file,
as a worker of a cluster does with its block.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import io
import itertools
import math
import os
import re
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from ._errors import DataError
from ._errors import one_line as _one_line

__all__ = [
    "SHARD_SUFFIXES",
    "Chunk",
    "DataError",
    "NpyWriter",
    "Source",
    "TextWriter",
    "classes_from",
    "expand_paths",
    "iter_aligned",
    "label_indices",
    "open_array",
    "open_table",
    "read_rows",
    "select_columns",
    "soft_label_rows",
]

_SCORE_KEYS = ("scores", "logits", "probs", "logprobs")
_LABEL_KEYS = ("labels", "y", "targets")
_WEIGHT_KEYS = ("weights", "sample_weight")


# --------------------------------------------------------------------------- #
# Sources
# --------------------------------------------------------------------------- #


class Source:
    """Rows of one array, read in order.

    ``n_rows`` is known in advance for ``.npy``/``.npz`` and ``None`` for text;
    ``n_cols`` is the row width of a 2-D source, ``None`` for a 1-D one.
    ``read(n)`` returns the next ``min(n, rows left)`` rows; an empty array at the end.
    """

    label: str
    n_rows: int | None
    n_cols: int | None

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


def _suffix(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def _open_binary(path: str, label: str) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as exc:
        msg = f"cannot read {label}: {exc.strerror or exc}"
        raise DataError(msg) from None


def _check_dtype(dtype: np.dtype[Any], label: str, kind: str) -> None:
    if dtype.hasobject:
        msg = f"{label} holds Python objects (a pickled array), which are not read"
        raise DataError(msg)
    if dtype.names is not None or dtype.subdtype is not None:
        msg = f"{label} has a structured dtype {dtype}; a plain numeric array is needed"
        raise DataError(msg)
    allowed = "biuf" if kind != "labels" else "biufUS"
    if dtype.kind not in allowed:
        msg = f"{label} has dtype {dtype}, which cannot hold {kind}"
        raise DataError(msg)


def _check_shape(
    shape: tuple[int, ...], label: str, kind: str
) -> tuple[int, int | None]:
    """(rows, row width or None) of an array that should hold ``kind``."""
    if kind in ("scores", "soft"):
        if len(shape) != 2:
            msg = f"{label} must be a 2-D array (rows, classes); its shape is {shape}"
            raise DataError(msg)
        return shape[0], shape[1]
    if len(shape) == 1 or (len(shape) == 2 and shape[1] == 1):
        return shape[0], None
    hint = " (for soft labels, add --soft-labels)" if kind == "labels" else ""
    msg = f"{label} must be a 1-D array of {kind}; its shape is {shape}{hint}"
    raise DataError(msg)


class _NpyStream(Source):
    """Rows of an ``.npy`` stream, read into fresh buffers (C order only)."""

    def __init__(
        self,
        f: IO[bytes],
        label: str,
        kind: str,
        *,
        available: int | None,
        owners: Sequence[Any] = (),
    ) -> None:
        self.label = label
        self._f = f
        self._owners = owners
        self._pos = 0
        try:
            shape, fortran, dtype = _read_npy_header(f)
        except Exception as exc:
            self.close()
            msg = f"{label} is not a valid .npy file ({_one_line(exc)})"
            raise DataError(msg) from None
        try:
            _check_dtype(dtype, label, kind)
            self.n_rows, self.n_cols = _check_shape(shape, label, kind)
        except DataError:
            self.close()
            raise
        self.fortran = fortran and len(shape) == 2 and shape[1] > 1
        self.dtype = dtype
        self._tail = () if self.n_cols is None else (self.n_cols,)
        self._row_bytes = dtype.itemsize * math.prod(self._tail)
        need = self._row_bytes * self.n_rows
        if available is not None:
            available -= f.tell()
            if available < need:
                self.close()
                msg = (
                    f"{label} is truncated: its header says shape {shape} "
                    f"({need} bytes of data) but only {available} bytes follow"
                )
                raise DataError(msg)

    def read(self, n: int) -> np.ndarray:
        assert self.n_rows is not None
        m = max(0, min(n, self.n_rows - self._pos))
        out = np.empty((m, *self._tail), dtype=self.dtype)
        want = m * self._row_bytes
        if want:
            buf = out.reshape(-1).view(np.uint8).data
            got = 0
            while got < want:
                k = self._readinto(buf[got:])
                if not k:
                    msg = (
                        f"{self.label} is truncated: it ends in row {self._pos + got // self._row_bytes} "
                        f"of {self.n_rows}"
                    )
                    raise DataError(msg)
                got += k
        self._pos += m
        if self._owners and self._pos == self.n_rows and want:
            # a zip member checks its CRC only once read to its end: read past the
            # last row so corrupt data fail here instead of giving wrong numbers
            self._readinto(bytearray(1))
        return out

    def _readinto(self, buf: Any) -> int:
        try:
            return int(self._f.readinto(buf))  # type: ignore[attr-defined]
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            msg = f"{self.label} is corrupt or unreadable ({_one_line(exc)})"
            raise DataError(msg) from None

    def skip(self, n: int) -> None:
        assert self.n_rows is not None
        m = max(0, min(n, self.n_rows - self._pos))
        f: Any = self._f
        if m and f.seekable():  # a plain file, or a zip member (read forward)
            try:
                f.seek(m * self._row_bytes, os.SEEK_CUR)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                msg = f"{self.label} is corrupt or unreadable ({_one_line(exc)})"
                raise DataError(msg) from None
            self._pos += m
        else:
            super().skip(m)

    def progress(self) -> tuple[int, int] | None:
        return (self._pos, self.n_rows or 0)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._f.close()
        for owner in self._owners:
            with contextlib.suppress(Exception):
                owner.close()


def _read_npy_header(f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        return fmt.read_array_header_1_0(f)
    if version == (2, 0):
        return fmt.read_array_header_2_0(f)
    return fmt._read_array_header(f, version)  # type: ignore[attr-defined,no-any-return]


class _ArraySource(Source):
    """Rows of an array already in memory or memory-mapped."""

    def __init__(self, arr: np.ndarray, label: str, kind: str) -> None:
        self.label = label
        _check_dtype(arr.dtype, label, kind)
        self.n_rows, self.n_cols = _check_shape(tuple(arr.shape), label, kind)
        self.dtype = arr.dtype
        self._arr = arr if self.n_cols is not None else arr.reshape(-1)
        self._pos = 0

    def read(self, n: int) -> np.ndarray:
        out = np.array(self._arr[self._pos : self._pos + n], order="C")
        self._pos += out.shape[0]
        return out

    def skip(self, n: int) -> None:
        assert self.n_rows is not None
        self._pos = min(self.n_rows, self._pos + max(0, n))

    def progress(self) -> tuple[int, int] | None:
        return (self._pos, self.n_rows or 0)


def _open_npy(path: str, label: str, kind: str) -> Source:
    f = _open_binary(path, label)
    size = os.fstat(f.fileno()).st_size
    src = _NpyStream(f, label, kind, available=size)
    if src.fortran:
        src.close()
        mm = np.load(path, mmap_mode="r", allow_pickle=False)
        return _ArraySource(mm, label, kind)
    return src


def _open_npz(path: str, key: str | None, label: str, kind: str) -> Source:
    f = _open_binary(path, label)
    try:
        zf = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        f.close()
        msg = f"{label} is not a valid .npz file ({_one_line(exc)})"
        raise DataError(msg) from None
    names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
    try:
        member = _pick_key(names, key, kind, label)
    except DataError:
        zf.close()
        f.close()
        raise
    info = zf.getinfo(member + ".npy")
    label = f"{label}[{member!r}]"
    try:
        stream = zf.open(info)
        src = _NpyStream(stream, label, kind, available=info.file_size, owners=(zf, f))
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        zf.close()
        f.close()
        msg = f"{label} cannot be read ({_one_line(exc)})"
        raise DataError(msg) from None
    if src.fortran:
        src.close()
        with np.load(path, allow_pickle=False) as npz:
            return _ArraySource(npz[member], label, kind)
    return src


def _pick_key(names: Sequence[str], key: str | None, kind: str, label: str) -> str:
    if key is not None:
        if key in names:
            return key
        msg = f"{label} has no array {key!r} (it has {_listing(names)})"
        raise DataError(msg)
    defaults = {
        "scores": _SCORE_KEYS,
        "labels": _LABEL_KEYS,
        "soft": _LABEL_KEYS,
        "weights": _WEIGHT_KEYS,
    }
    for k in defaults[kind]:
        if k in names:
            return k
    if len(names) == 1:
        return names[0]
    option = {"scores": "--scores-key", "labels": "--labels-key"}.get(
        kind, "--labels-key" if kind == "soft" else "a key"
    )
    msg = f"{label} has no array of {kind} by a usual name (it has {_listing(names)}); name one with {option}"
    raise DataError(msg)


def _listing(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names) if names else "no arrays"


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
        from ._arrow import open_arrow

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


TEXT_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".dat")
"""The suffixes of delimited text (a file without a suffix is read as text too)."""

ARROW_SUFFIXES = (".parquet", ".pq", ".feather", ".arrow", ".ipc")
"""Parquet and Feather/Arrow IPC files, read through pyarrow (the ``io`` extra)."""

INPUT_SUFFIXES = (".npy", ".npz", *TEXT_SUFFIXES, *ARROW_SUFFIXES)
"""Every suffix `open_array` reads."""


def check_suffix(path: str, label: str) -> str:
    """The lower-case suffix of ``path`` (``""`` for standard input or none), or a
    `DataError` naming it when `open_array` does not read it."""
    suffix = "" if path == "-" else _suffix(path)
    if suffix and suffix not in INPUT_SUFFIXES:
        msg = (
            f"{label} has the unsupported suffix {suffix!r} (eval reads "
            f"{', '.join(INPUT_SUFFIXES)}, or CSV on standard input)"
        )
        raise DataError(msg)
    return suffix


SHARD_SUFFIXES = (".npy", ".npz", ".csv", ".tsv", ".tab", ".txt", *ARROW_SUFFIXES)
"""The files a directory of shards contributes (others, and hidden files, are ignored)."""


def _natural_key(path: str) -> tuple[Any, ...]:
    """Sort key comparing runs of digits as numbers: part-2 before part-10."""
    parts = re.split(r"(\d+)", path)
    return (*(int(p) if i % 2 else p for i, p in enumerate(parts)), path)


def expand_paths(spec: str, kind: str) -> list[str]:
    """The files ``spec`` names, in natural order (``part-2`` before ``part-10``).

    ``spec`` is one file (or ``-``), a directory (its files with a suffix in
    `SHARD_SUFFIXES`, hidden files left out) or a glob pattern (``*``, ``?``,
    ``[...]``; ``**`` crosses directories).  A path that exists is taken as it is,
    even with glob characters in its name; one that does not exist and has none is
    returned unchanged, for the reader to report.  Raises `DataError` when a
    directory or pattern names no files.
    """
    label = kind.upper() if kind != "weights" else "--weights"
    if spec == "-" or os.path.isfile(spec):
        return [spec]
    if os.path.isdir(spec):
        try:
            names = os.listdir(spec)
        except OSError as exc:
            msg = f"cannot list {label} directory '{spec}': {exc.strerror or exc}"
            raise DataError(msg) from None
        found = [
            os.path.join(spec, n)
            for n in names
            if not n.startswith(".")
            and _suffix(n) in SHARD_SUFFIXES
            and os.path.isfile(os.path.join(spec, n))
        ]
        if not found:
            kinds = ", ".join(SHARD_SUFFIXES)
            msg = f"{label} directory '{spec}' holds no data files ({kinds})"
            raise DataError(msg)
        return sorted(found, key=_natural_key)
    if not any(c in spec for c in "*?["):
        return [spec]
    found = [p for p in glob.glob(spec, recursive=True) if os.path.isfile(p)]
    if not found:
        msg = f"no files match the {label} pattern '{spec}'"
        raise DataError(msg)
    return sorted(found, key=_natural_key)


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


# --------------------------------------------------------------------------- #
# Text
# --------------------------------------------------------------------------- #


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


DELIMITERS = (",", "\t", ";", "|")
"""The field delimiters a text file is sniffed for."""

_SNIFF_CHARS = 1 << 16
_SNIFF_ROWS = 50


def sniff_delimiter(sample: str, default: str) -> str:
    """The delimiter of the text ``sample`` (the start of a file), one of
    `DELIMITERS`, or ``default`` when no candidate splits the first row.

    Each candidate parses the first `_SNIFF_ROWS` non-blank rows (quotes
    respected); the one whose rows all have the first row's width, and then the
    one with the most fields, wins; ``default`` first on ties.
    """
    best: tuple[bool, int] = (False, 1)
    chosen = default
    for d in (default, *(c for c in DELIMITERS if c != default)):
        try:
            reader = csv.reader(io.StringIO(sample, newline=""), delimiter=d)
            rows = [r for r in itertools.islice(reader, 2 * _SNIFF_ROWS) if r]
        except csv.Error:
            continue
        rows = [r for r in rows if any(f.strip() for f in r)][:_SNIFF_ROWS]
        if not rows or len(rows[0]) < 2:
            continue
        score = (all(len(r) == len(rows[0]) for r in rows), len(rows[0]))
        if score > best:
            best, chosen = score, d
    return chosen


def _is_index(first: Sequence[str], second: Sequence[str] | None) -> bool:
    """Whether ``first`` is the header of a file with a leading index column, as
    pandas' ``DataFrame.to_csv()`` writes it: an empty first field, every other
    field named, and (when there is one) an integer first field in the next row."""
    if len(first) < 2 or first[0].strip() or not all(f.strip() for f in first[1:]):
        return False
    return second is None or bool(re.fullmatch(r"\s*[+-]?\d+\s*", second[0]))


class _TextRows:
    """Rows of a delimited text file, checked to have one width.

    ``delimiter=None`` sniffs it (`sniff_delimiter`) from the first 64 KB, with
    the suffix's (tab for ``.tsv``/``.tab``, else comma) as the fallback.  A
    byte-order mark, CRLF line ends and quoted fields are read as `csv` does.
    """

    def __init__(self, path: str, label: str, delimiter: str | None = None) -> None:
        self.label = label
        self.path = path
        default = "\t" if _suffix(path) in (".tsv", ".tab") else ","
        if path == "-":
            # sys.stdin at call time, so click.testing's replacement is seen.
            raw: IO[bytes] = sys.stdin.buffer
            self._size = None
        else:
            raw = _open_binary(path, label)
            self._size = os.fstat(raw.fileno()).st_size
        self._raw = raw
        self._text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        lines: Any = self._text
        if delimiter is None:
            head: list[str] = []
            size = 0
            try:
                while len(head) < 2 * _SNIFF_ROWS and size < _SNIFF_CHARS:
                    line = self._text.readline()
                    if not line:
                        break
                    head.append(line)
                    size += len(line)
            except (UnicodeDecodeError, OSError) as exc:
                self.close()
                msg = f"{label} line {len(head) + 1}: {_one_line(exc)}"
                raise DataError(msg) from None
            sample = "".join(head)
            delimiter = sniff_delimiter(sample, default)
            lines = itertools.chain(head, self._text)
        self.delimiter = delimiter
        self._reader = csv.reader(lines, delimiter=delimiter)
        self.width: int | None = None
        self._pending: list[tuple[list[str], int]] = []  # peeked rows and lines
        self.lines: list[int] = []  # file line of each row of the last take()

    def _next(self) -> list[str] | None:
        try:
            for row in self._reader:
                if row and any(field.strip() for field in row):
                    return row
        except (csv.Error, UnicodeDecodeError) as exc:
            msg = f"{self.label} line {self._reader.line_num}: {_one_line(exc)}"
            raise DataError(msg) from None
        return None

    def peek(self, n: int) -> list[list[str]]:
        """The first ``n`` non-blank rows (fewer at the end), which stay to be read."""
        while len(self._pending) < n:
            row = self._next()
            if row is None:
                break
            self._pending.append((row, self.line()))
            if self.width is None:
                self.width = len(row)
        return [row for row, _ in self._pending[:n]]

    def first(self) -> list[str] | None:
        """The first non-blank row, which stays to be read again."""
        rows = self.peek(1)
        return rows[0] if rows else None

    def take(self, n: int) -> list[list[str]]:
        rows: list[list[str]] = []
        self.lines = []
        while len(rows) < n:
            if self._pending:
                row, line = self._pending.pop(0)
            else:
                got = self._next()
                if got is None:
                    break
                row, line = got, self.line()
            if len(row) != self.width:
                msg = (
                    f"{self.label} line {line}: expected {self.width} "
                    f"fields, found {len(row)} (ragged rows)"
                )
                raise DataError(msg)
            self.lines.append(line)
            rows.append(row)
        return rows

    def line(self) -> int:
        return int(self._reader.line_num)

    def progress(self) -> tuple[int, int] | None:
        if self._size is None:
            return None
        with contextlib.suppress(OSError, ValueError):
            return (self._raw.tell(), self._size)
        return None

    def close(self) -> None:
        if self.path != "-":
            with contextlib.suppress(Exception):
                self._text.close()
        else:
            with contextlib.suppress(Exception):
                self._text.detach()


def _column_index(name: str, header: list[str] | None, width: int, label: str) -> int:
    if header is not None and name in header:
        return header.index(name)
    try:
        i = int(name)
    except ValueError:
        msg = f"{label} has no column named {name!r} {_where(header)}"
        raise DataError(msg) from None
    if not -width <= i < width:
        msg = f"{label} has {width} columns; column {i} is out of range"
        raise DataError(msg)
    return i % width


def _where(header: Sequence[str] | None, most: int = 12) -> str:
    """``(columns: a, b, ...)``, at most ``most`` of them, for a message."""
    if not header:
        return "(it has no header row)"
    names = list(header[:most])
    more = f", ... ({len(header)} in all)" if len(header) > most else ""
    return f"(columns: {', '.join(names)}{more})"


def _is_int(s: str) -> bool:
    return bool(re.fullmatch(r"[+-]?\d+", s.strip()))


def column_spec_needs_names(spec: str) -> bool:
    """Whether a column spec (`select_columns`) names columns rather than
    numbering them, so that the file needs a header row."""
    for item in spec.split(","):
        parts = item.split(":") if ":" in item and not _is_glob(item) else [item]
        if any(p.strip() and not _is_int(p) for p in parts):
            return True
    return False


def _is_glob(item: str) -> bool:
    return any(c in item for c in "*?[")


def check_column_spec(spec: str) -> str | None:
    """Why ``spec`` is not a column spec (`select_columns`), or ``None``."""
    items = spec.split(",")
    for item in items:
        if not item.strip():
            return f"{spec!r} has an empty column name"
        if not _is_glob(item) and item.count(":") > 1:
            return f"{item!r} is not a range (give it as FIRST:LAST or I:J)"
    return None


def select_columns(
    spec: str,
    header: Sequence[str] | None,
    width: int,
    label: str,
    *,
    option: str = "--score-columns",
) -> list[int]:
    """The 0-based column numbers a column spec selects, in the order it lists them.

    ``spec`` is a comma-separated list of items, each one of

    * ``NAME``: the column of that header name, or ``N`` a 0-based number (a name
      takes precedence, as for ``--label-column``);
    * ``FIRST:LAST``: the columns from name ``FIRST`` to name ``LAST``, both
      included (as pandas' ``.loc``);
    * ``I:J``: the columns numbered ``I`` to ``J - 1`` (as pandas' ``.iloc`` and a
      Python slice; either end may be left out or negative);
    * a glob pattern (``prob_*``, ``p?``, ``[ab]*``): the named columns it
      matches, in the file's order.

    A column that is not there, a range whose ends are the wrong way round, a
    pattern that matches nothing or a column selected twice is a `DataError`
    naming it and ``option``.
    """
    import fnmatch

    names = list(header) if header is not None else None
    out: list[int] = []
    for raw in spec.split(","):
        item = raw.strip()
        if _is_glob(item):
            if names is None:
                msg = f"{label}: {option} pattern {item!r} needs a header row"
                raise DataError(msg)
            got = [i for i, n in enumerate(names) if fnmatch.fnmatchcase(n, item)]
            if not got:
                msg = f"{label}: no column matches the {option} pattern {item!r} {_where(names)}"
                raise DataError(msg)
        elif ":" in item:
            lo, hi = (p.strip() for p in item.split(":"))
            if names is not None and lo in names and hi in names:
                a, b = names.index(lo), names.index(hi)
                if a > b:
                    msg = f"{label}: the {option} range {item!r} runs backwards ({lo!r} comes after {hi!r})"
                    raise DataError(msg)
                got = list(range(a, b + 1))
            elif all(not p or _is_int(p) for p in (lo, hi)):
                got = list(range(width))[
                    slice(int(lo) if lo else None, int(hi) if hi else None)
                ]
                if not got:
                    msg = f"{label} has {width} columns; the {option} range {item!r} selects none"
                    raise DataError(msg)
            else:
                bad = lo if names is None or lo not in names else hi
                msg = f"{label} has no column named {bad!r} (in the {option} range {item!r}) {_where(names)}"
                raise DataError(msg)
        else:
            try:
                got = [_column_index(item, names, width, label)]
            except DataError as exc:
                msg = f"{exc} (in {option})"
                raise DataError(msg) from None
        for i in got:
            if i in out:
                name = names[i] if names is not None else str(i)
                msg = f"{label}: column {name!r} is selected twice by {option}"
                raise DataError(msg)
            out.append(i)
    return out


def _parse_floats(
    cells: np.ndarray, label: str, lines: Sequence[int], names: Sequence[str] | None
) -> np.ndarray:
    try:
        return cells.astype(np.float64)
    except ValueError:
        for r, row in enumerate(cells):
            for c, cell in enumerate(row if row.ndim else [row]):
                if not _is_number(str(cell)):
                    col = f", column {names[c]!r}" if names else f", column {c}"
                    where = col if cells.ndim == 2 else ""
                    msg = (
                        f"{label} line {lines[r]}{where}: {str(cell)!r} is not a number"
                    )
                    raise DataError(msg) from None
        raise  # pragma: no cover


class _TextScores(Source):
    """The score columns ``keep`` of a text table, in that order, and its label
    columns ``label_cols``: one column of labels kept as text, or with ``soft``
    the columns of soft labels, parsed as numbers (each `read` leaves them in
    ``labels`` for `_LabelColumn`)."""

    def __init__(
        self,
        rows: _TextRows,
        header: list[str] | None,
        keep: list[int],
        label_cols: list[int] | None = None,
        *,
        soft: bool = False,
    ) -> None:
        self.label = rows.label
        self._rows = rows
        self.n_rows = None
        self._keep = keep
        self._label_cols = label_cols
        self._soft = soft
        self.n_cols = len(keep)
        self._names = None if header is None else [header[c] for c in keep]
        self._label_names = (
            None
            if header is None or label_cols is None
            else [header[c] for c in label_cols]
        )
        self.labels: np.ndarray | None = None
        if self.n_cols == 0:
            msg = f"{self.label} has no score columns"
            raise DataError(msg)

    def read(self, n: int) -> np.ndarray:
        rows = self._rows.take(n)
        if not rows:
            self.labels = (
                np.empty((0, len(self._label_cols or ())))
                if self._soft
                else np.empty(0, dtype=str)
            )
            return np.empty((0, len(self._keep)))
        cells = np.array(rows, dtype=str)
        if self._label_cols is not None:
            if self._soft:
                self.labels = _parse_floats(
                    cells[:, self._label_cols],
                    self.label,
                    self._rows.lines,
                    self._label_names,
                )
            else:
                self.labels = np.char.strip(cells[:, self._label_cols[0]])
        if self._keep != list(range(cells.shape[1])):
            cells = cells[:, self._keep]
        return _parse_floats(cells, self.label, self._rows.lines, self._names)

    def progress(self) -> tuple[int, int] | None:
        return self._rows.progress()

    def close(self) -> None:
        self._rows.close()


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


def _header_flag(
    rows: Sequence[list[str]],
    header: bool | None,
    skip: int | None,
    names: Sequence[str] = (),
) -> bool:
    """Whether the first of ``rows`` (the first two of the file) is a header row.

    A header is a row of names: every field (other than column ``skip``) is text,
    neither a number, nor one of the class ``names``, nor empty, and the row after
    it is not such a row too (two rows of text are data: class names without
    ``--classes``).  A first row with some numbers and some text or empty fields
    is data with a malformed cell, which the reader then reports by line and
    column, rather than a header that silently drops a row.
    """
    if header is not None:
        return header

    def texts(row: list[str]) -> bool:
        cells = [v.strip() for c, v in enumerate(row) if c != skip]
        return bool(cells) and all(
            v and not _is_number(v) and v not in names for v in cells
        )

    if not rows or not texts(rows[0]):
        return False
    return len(rows) < 2 or not texts(rows[1])


def open_table(
    path: str,
    *,
    label_column: str | None = None,
    header: bool | None = None,
    delimiter: str | None = None,
    drop_columns: Sequence[str] = (),
    score_columns: str | None = None,
    soft: bool = False,
) -> tuple[Source, Source | None]:
    """The scores of a delimited text file, and its label column if named.

    ``delimiter=None`` sniffs the delimiter (`sniff_delimiter`).  With
    ``header=None`` the first row is a header when it is a row of names
    (`_header_flag`): each of its fields (other than the label column, given as
    a 0-based number) is text that is not a number, and the next row is not text
    throughout too.  A first row with an empty first field and every other field
    named, above a row starting with an integer, is the header of a leading index
    column (pandas' ``df.to_csv()``): that column is dropped.  ``drop_columns``
    (header names or 0-based numbers) drops columns explicitly, and turns the
    detection off.  ``label_column`` is a header name or a 0-based column
    number (with ``soft``, a column spec of `select_columns` for the soft-label
    columns); ``score_columns``, a column spec, picks the score columns (by
    default every other column).  A spec that names columns implies a header row.
    """
    label = _describe("SCORES", path)
    rows = _TextRows(path, label, delimiter)
    try:
        first = rows.first()
        if first is None:
            msg = f"{label} is empty"
            raise DataError(msg)
        width = len(first)
        skip = None
        if label_column is not None and not soft and _is_int(label_column):
            skip = (
                int(label_column) % width
                if -width <= int(label_column) < width
                else None
            )
        elif (
            label_column is not None
            and header is None
            and (not soft or column_spec_needs_names(label_column))
        ):
            header = True  # a column name needs a header row
        if (
            score_columns is not None
            and header is None
            and column_spec_needs_names(score_columns)
        ):
            header = True
        peeked = rows.peek(2)
        indexed = header is not False and _is_index(
            first, peeked[1] if len(peeked) > 1 else None
        )
        index = indexed and not drop_columns and score_columns is None
        has_header = indexed or _header_flag(peeked, header, skip)
        head = None
        if has_header:
            head = [h.strip() for h in first]
            rows.take(1)
        label_cols = None
        if label_column is not None:
            if soft:
                label_cols = select_columns(
                    label_column, head, width, label, option="--label-column"
                )
            else:
                label_cols = [_column_index(label_column, head, width, label)]
        drop = {0} if index else set()
        for name in drop_columns:
            drop.add(_column_index(name, head, width, label))
        if label_cols is not None and drop.intersection(label_cols):
            msg = f"{label}: the label column {label_column!r} is also dropped"
            raise DataError(msg)
        if score_columns is not None:
            keep = select_columns(score_columns, head, width, label)
            clash = set(keep).intersection(label_cols or ())
            if clash:
                c = min(clash)
                name = head[c] if head is not None else str(c)
                msg = f"{label}: column {name!r} is both a score and a label column"
                raise DataError(msg)
        else:
            keep = [
                c for c in range(width) if c not in drop and c not in (label_cols or ())
            ]
        scores = _TextScores(rows, head, keep, label_cols, soft=soft)
    except BaseException:
        rows.close()
        raise
    if label_cols is None:
        return scores, None
    return scores, _LabelColumn(scores, len(label_cols) if soft else None)


class _TextVector(Source):
    """One column of a text file: labels (kept as text) or weights (numbers)."""

    def __init__(
        self,
        path: str,
        label: str,
        kind: str,
        *,
        label_column: str | None = None,
        header: bool | None = None,
        classes: Sequence[str] = (),
        delimiter: str | None = None,
    ) -> None:
        self.label = label
        self.kind = kind
        self.n_rows = None
        self.n_cols = None
        self._rows = _TextRows(path, label, delimiter)
        try:
            first = self._rows.first()
            if first is None:
                msg = f"{label} is empty"
                raise DataError(msg)
            width = len(first)
            column = label_column if kind == "labels" else None
            if column is not None and column in first and header is None:
                header = True
            peeked = self._rows.peek(2)
            index = (
                header is not False
                and width == 2
                and _is_index(first, peeked[1] if len(peeked) > 1 else None)
            )
            has_header = index or _header_flag(peeked, header, None, classes)
            head = [h.strip() for h in first] if has_header else None
            if has_header:
                self._rows.take(1)
            if column is not None and width > 1:
                self._col = _column_index(column, head, width, label)
            elif index:  # pandas' Series.to_csv(): the index, then the values
                self._col = 1
            elif width == 1:
                self._col = 0
            else:
                hint = " (say which with --label-column)" if kind == "labels" else ""
                msg = (
                    f"{label} has {width} columns; one column of {kind} is needed{hint}"
                )
                raise DataError(msg)
        except BaseException:
            self._rows.close()
            raise

    def read(self, n: int) -> np.ndarray:
        rows = self._rows.take(n)
        cells = np.array([r[self._col].strip() for r in rows], dtype=str)
        if self.kind == "labels":
            return cells
        return _parse_floats(cells, self.label, self._rows.lines, None)

    def progress(self) -> tuple[int, int] | None:
        return self._rows.progress()

    def close(self) -> None:
        self._rows.close()


# --------------------------------------------------------------------------- #
# Labels
# --------------------------------------------------------------------------- #


def classes_from(value: str) -> tuple[str, ...]:
    """Class names from ``a,b,c`` or from a file with one name a line."""
    if os.path.isfile(value):
        with open(value, encoding="utf-8-sig") as f:
            names = [line.strip() for line in f]
        return tuple(n for n in names if n)
    return tuple(n.strip() for n in value.split(","))


def label_indices(
    raw: np.ndarray,
    *,
    n_classes: int,
    classes: Sequence[str] | None,
    start: int,
    label: str,
) -> np.ndarray:
    """Integer class indices (int64) from integer, integral-float or name labels.

    ``start`` is the row number of ``raw[0]`` in the file, for messages.
    """
    kind = raw.dtype.kind
    if kind in "US":
        values = raw.astype(str) if kind == "S" else raw
        checked = _names_to_indices(values, classes, start, label, n_classes)
    elif kind in "iuf":
        checked = raw
        if kind == "f":
            bad = ~np.isfinite(raw) | (raw != np.round(raw))
            if bad.any():
                i = int(np.argmax(bad))
                msg = f"{label} row {start + i}: {raw[i].item()!r} is not an integer class index"
                raise DataError(msg)
    else:
        msg = f"{label} has dtype {raw.dtype}, which cannot hold class indices"
        raise DataError(msg)
    # Compared in the labels' own dtype, before any cast: 2**64 - 1 stays itself
    # and 1e300 is not wrapped into int64.
    outside = (checked < 0) | (checked >= n_classes)
    if outside.any():
        i = int(np.argmax(outside))
        value = checked[i].item()
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**64:
            value = int(value)
        msg = (
            f"{label} row {start + i}: label {value} is out of range for "
            f"{n_classes} classes (0 to {n_classes - 1})"
        )
        raise DataError(msg)
    return checked.astype(np.int64)


def soft_label_rows(
    raw: np.ndarray, *, n_classes: int, dtype: Any, start: int, label: str
) -> tuple[np.ndarray, np.ndarray]:
    """Soft labels (rows of class probabilities) in ``dtype``, and the arg-max
    class of each row (int64; the first on ties), or a `DataError` naming the row.

    A row must be finite, non-negative and sum to 1 within ``sqrt(eps)`` of the
    coarser of its dtype and ``dtype`` (the tolerance the losses apply).
    ``start`` is the row number of ``raw[0]`` in the file, for messages.
    """
    if raw.ndim != 2 or raw.shape[1] != n_classes:
        width = raw.shape[1] if raw.ndim == 2 else 1
        msg = f"{label} has {width} soft-label columns but the scores have {n_classes} classes"
        raise DataError(msg)
    if raw.dtype.kind not in "biuf":
        msg = f"{label} has dtype {raw.dtype}, which cannot hold soft labels"
        raise DataError(msg)
    soft = raw.astype(dtype)
    if not soft.shape[0]:
        return soft, np.empty(0, dtype=np.int64)
    eps = max(
        float(np.finfo(dtype).eps),
        float(np.finfo(np.result_type(raw.dtype, np.float16)).eps),
    )
    tol = math.sqrt(eps)
    with np.errstate(all="ignore"):
        bad_value = ~np.isfinite(soft).all(axis=1) | (soft < 0).any(axis=1)
        total = np.asarray(np.sum(soft, axis=1, dtype=np.float64))
    if bad_value.any():
        i = int(np.argmax(bad_value))
        msg = f"{label} row {start + i}: soft labels must be finite and non-negative (found {soft[i].min().item()!r})"
        raise DataError(msg)
    off = np.abs(total - 1) > tol
    if off.any():
        i = int(np.argmax(off))
        msg = f"{label} row {start + i}: soft labels sum to {total[i]:.6g}, not 1 (tolerance {tol:.1g})"
        raise DataError(msg)
    return soft, np.argmax(soft, axis=1).astype(np.int64)


def _names_to_indices(
    values: np.ndarray,
    classes: Sequence[str] | None,
    start: int,
    label: str,
    n_classes: int,
) -> np.ndarray:
    uniq, inverse = np.unique(values, return_inverse=True)
    lookup = {name: i for i, name in enumerate(classes or ())}
    mapped = np.empty(len(uniq), dtype=np.int64)
    unknown: list[str] = []
    big: list[str] = []
    for j, name in enumerate(uniq.tolist()):
        if name in lookup:
            mapped[j] = lookup[name]
            continue
        try:
            value = float(name)
            if not value.is_integer():
                raise ValueError
            index = int(value)
        except (ValueError, OverflowError):
            unknown.append(name)
            continue
        if not -(2**63) <= index < 2**63:  # out of range, reported below as itself
            big.append(name)
            continue
        mapped[j] = index
    if unknown:
        i = int(np.argmax(np.isin(values, unknown)))  # the first such row
        name = str(values[i])
        if classes:
            msg = f"{label} row {start + i}: {name!r} is not one of the --classes"
        else:
            msg = (
                f"{label} row {start + i}: {name!r} is not a class index; "
                "for class names, give --classes"
            )
        raise DataError(msg)
    if big:
        i = int(np.argmax(np.isin(values, big)))
        msg = (
            f"{label} row {start + i}: label {values[i]} is out of range for "
            f"{n_classes} classes (0 to {n_classes - 1})"
        )
        raise DataError(msg)
    return mapped[inverse.reshape(-1)]


# --------------------------------------------------------------------------- #
# Reading several files in step
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Chunk:
    """Rows ``start`` to ``start + len(scores)`` of every input."""

    start: int
    scores: np.ndarray
    labels: np.ndarray
    weights: np.ndarray | None


def iter_aligned(
    scores: Source, labels: Source, weights: Source | None, chunk_rows: int
) -> Iterator[Chunk]:
    """Read the sources in step, checking that they have the same number of rows."""
    others = [s for s in (labels, weights) if s is not None]
    for other in others:
        known = scores.n_rows is not None and other.n_rows is not None
        if known and scores.n_rows != other.n_rows:
            msg = f"{scores.label} has {scores.n_rows} rows but {other.label} has {other.n_rows}"
            raise DataError(msg)
    start = 0
    while True:
        s = scores.read(chunk_rows)
        m = int(s.shape[0])
        if m == 0 and start == 0:
            msg = f"{scores.label} has no rows"
            raise DataError(msg)
        parts = []
        for other in others:
            part = other.read(chunk_rows if m else 1)
            if part.shape[0] != m:
                if part.shape[0] < m:
                    have, more = f"{start + part.shape[0]} rows", scores.label
                    msg = f"{other.label} has {have} but {more} has more"
                else:
                    msg = (
                        f"{other.label} has more rows than {scores.label} ({start + m})"
                    )
                raise DataError(msg)
            parts.append(part)
        if m == 0:
            if start == 0:
                msg = f"{scores.label} has no rows"
                raise DataError(msg)
            return
        yield Chunk(start, s, parts[0], parts[1] if len(parts) > 1 else None)
        start += m


# --------------------------------------------------------------------------- #
# Writers
# --------------------------------------------------------------------------- #


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
        csv.writer(self._f, delimiter=delimiter).writerow(columns)

    def write(self, block: np.ndarray) -> None:
        np.savetxt(
            self._f,
            np.asarray(block, dtype=np.float64),
            fmt="%.17g",
            delimiter=self._delimiter,
        )

    def close(self) -> None:
        self._f.close()
