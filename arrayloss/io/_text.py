"""Delimited text (CSV, TSV, ...): the delimiter sniffed, the header row guessed,
a chunk of rows at a time parsed with the `csv` module."""

from __future__ import annotations

import bz2
import contextlib
import csv
import gzip
import io
import itertools
import lzma
import os
import re
import sys
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any, cast

import numpy as np

from .._errors import DataError
from .._errors import one_line as _one_line
from ._columns import _column_index, _is_int, column_spec_needs_names, select_columns
from ._formats import _suffix, compression
from ._source import Source, _describe, _LabelColumn, _NoRows, _open_binary
from ._spec import TableSpec

__all__ = ["DELIMITERS", "open_table", "sniff_delimiter"]

_NO_SPEC = TableSpec()


BOOL_TEXT = {"false": 0, "true": 1}
"""The class indices of boolean labels written as text, in lower case (pandas
writes ``True`` and ``False``): read so without --classes."""


def _is_number(s: str) -> bool:
    """Whether ``s`` is a number as `numpy.loadtxt` and pandas read one: what
    `float` takes (white space around it too), less the forms only Python reads
    as numbers, which they read as text: ``1_000`` and digits of other scripts
    (``١``, Arabic-Indic one)."""
    text = s.strip()
    if "_" in text or not text.isascii():
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True


def _python_only_numbers(cells: np.ndarray) -> bool:
    """Whether some text cell may be a number only to Python (`_is_number`): it
    holds an underscore or a character beyond ASCII.  One pass over the code
    points of ``cells`` (a NumPy text array), so only such a chunk is looked at
    cell by cell."""
    codes = np.ascontiguousarray(cells).view(np.uint32)
    return bool((codes == ord("_")).any() or (codes > 127).any())


DELIMITERS = (",", "\t", ";", "|")

SPACE = " "
"""The delimiter of white-space-separated numbers, as `numpy.savetxt` writes them
by default: a run of white space is one delimiter and white space at either end
of a line is none (as `numpy.loadtxt` reads it; no quotes).  Sniffed last, and
only when the rows after the first are all numbers, so a column of names with
spaces stays one column."""


_END = "\ue000\uf8ff\ue000"
_END_LINE = _END + "\n"
"""A line put after the file's last line (private-use characters only: no
delimiter, quote or space): read as its own row when the file ends outside
quotes, and into the quoted field left open where it ends inside one (`csv`
reads such a file as if the quote were closed)."""


def _unclosed_quote(label: str, line: int) -> DataError:
    """A file that ends inside the quoted field of the row starting on ``line``."""
    msg = (
        f"{label} line {line}: a quote opened in this row is not closed by the "
        "end of the file (a file cut short?)"
    )
    return DataError(msg)


def _squeezed(lines: Iterable[str]) -> Iterator[str]:
    """``lines`` with their runs of white space made one space and their ends
    stripped (the line end too: `csv` reads each string as one line)."""
    for line in lines:
        yield " ".join(line.split())


"""The field delimiters a text file is sniffed for."""

_SNIFF_CHARS = 1 << 16
_SNIFF_ROWS = 50

MAX_LINE = 1 << 26
"""The most characters a line of a text file may hold (64 Mi: three million
scores of 20 digits): a file with no line end (``/dev/zero``, a binary file of
NULs) is an error here, not a line read until memory runs out."""


def _long_line(label: str, number: int) -> DataError:
    return DataError(
        f"{label} line {number}: longer than {MAX_LINE} characters without a line "
        "end (is it a text table?)"
    )


def _bounded_lines(text: IO[str], label: str, first: int) -> Iterator[str]:
    """The lines of ``text`` (numbered from ``first``), each read with at most
    `MAX_LINE` characters: a longer one is a `DataError`."""
    readline, limit, number = text.readline, MAX_LINE, first
    while True:  # a loop of its own: ~1 % of the time csv takes to parse the lines
        line = readline(limit)
        if len(line) < limit:
            if not line:
                return
        elif line[-1] not in "\r\n":
            raise _long_line(label, number)
        number += 1
        yield line


def _without_excel_line(
    lines: Iterator[str], delimiter: str, label: str
) -> Iterator[str]:
    """``lines``, read with ``--delimiter``, with Excel's first line ``sep=;`` made
    blank (no row; the line numbers stay); a ``sep=`` line that names another
    delimiter is a `DataError`.  Lazy, so a read error is the reader's."""
    first = next(lines, None)
    if first is None:
        return
    excel = re.fullmatch(r"sep=(.)", first.rstrip("\r\n"))
    if excel is not None and excel.group(1) != delimiter:
        msg = (
            f"{label} line 1 is Excel's {excel.group(0)!r}, but --delimiter is "
            f"{delimiter!r}: give --delimiter {excel.group(1)!r}, or none"
        )
        raise DataError(msg)
    yield "\n" if excel is not None else first
    yield from lines


def sniff_delimiter(sample: str, default: str) -> str:
    """The delimiter of the text ``sample`` (the start of a file), one of
    `DELIMITERS` or `SPACE`, or ``default`` when no candidate splits the first
    row.

    Each candidate parses the first `_SNIFF_ROWS` non-blank rows (quotes
    respected); the one whose rows all have the first row's width, and then the
    one with the most fields, wins; ``default`` first on ties, `SPACE` last and
    only where the rows after the first hold numbers alone.
    """
    best: tuple[bool, int] = (False, 1)
    chosen = default
    for d in (default, *(c for c in DELIMITERS if c != default), SPACE):
        lines = io.StringIO(sample, newline="")
        try:
            reader = csv.reader(_squeezed(lines) if d == SPACE else lines, delimiter=d)
            rows = [r for r in itertools.islice(reader, 2 * _SNIFF_ROWS) if r]
        except csv.Error:
            continue
        rows = [r for r in rows if any(f.strip() for f in r)][:_SNIFF_ROWS]
        if not rows or len(rows[0]) < 2:
            continue
        if d == SPACE and not all(_is_number(f) for r in rows[1:] for f in r):
            continue
        score = (all(len(r) == len(rows[0]) for r in rows), len(rows[0]))
        if score > best:
            best, chosen = score, d
    return chosen


_INTEGER = re.compile(r"\s*[+-]?\d+\s*")


def _default_names(
    first: Sequence[str], second: Sequence[str] | None, names: Sequence[str] = ()
) -> bool:
    """Whether ``first`` is the header pandas writes for columns it numbered
    itself (``pd.DataFrame(array).to_csv(index=False)``: ``0,1,...``; a Series:
    ``0``; with a named column added, ``0,1,2,y``): its fields are ``0`` to
    ``k - 1`` in order (two or more, or the one of a Series), then names only,
    none of them one of the class ``names``, and the next row has a number that
    is no integer (or, in a file of one column, a name), so the first row cannot
    be a row of the same data.  (Below it, a row with a cell that is no number is
    a malformed row.)"""
    fields = [f.strip() for f in first]
    numbered = 0  # the leading fields 0, 1, 2, ...; names may follow (a label column)
    while numbered < len(fields) and fields[numbered] == str(numbered):
        numbered += 1
    named = fields[numbered:]
    if second is None or numbered < min(2, len(fields)):
        return False
    if not all(f and not _is_number(f) for f in named):
        return False
    if set(fields).intersection(names):
        return False
    if len(first) == 1 and second[0].strip() and not _is_number(second[0]):
        return True  # a Series of class names
    return any(_is_number(f) and not _INTEGER.fullmatch(f) for f in second)


def _class_header_hint(first: Sequence[str], second: Sequence[str]) -> str:
    """Why a scores file read without a header may have one row too many: its
    first row is integers in increasing order above a row of fractions, as the
    header ``pd.DataFrame(proba, columns=clf.classes_).to_csv(index=False)``
    writes for classes numbered 1, 2, 3 (a header of 0, 1, 2, ... is found by
    `_default_names`); else ``""``."""
    fields = [f.strip() for f in first]
    if not all(_INTEGER.fullmatch(f) for f in fields):
        return ""
    numbers = [int(f) for f in fields]
    if any(b <= a for a, b in itertools.pairwise(numbers)):
        return ""
    if not any(_is_number(f) and not _INTEGER.fullmatch(f.strip()) for f in second):
        return ""
    names = ",".join(fields)
    return (
        f"its first line, '{names}', may be a header of class names (as "
        f"columns=clf.classes_ writes it): give --header and --classes {names}"
    )


def _is_index(
    first: Sequence[str], second: Sequence[str] | None, *, text: bool = True
) -> bool:
    """Whether ``first`` is the header of a file with a leading index column, as
    pandas' ``DataFrame.to_csv()`` writes it: an empty first field, every other
    field named (the last may be empty: a delimiter at the end of the line, as in
    `_header_flag`), and (when there is one) an integer first field in the next
    row, or with ``text`` a text one that is no number (an index of sample ids,
    ``df.index = ids``: no score)."""
    return _index_columns(first, second, text=text) == 1


def _index_columns(
    first: Sequence[str], second: Sequence[str] | None, *, text: bool = True
) -> int:
    """How many leading index columns ``first``, a header row, has (0: none):
    one as `_is_index` finds it, or the ``k >= 2`` empty leading fields pandas
    writes for the levels of an unnamed MultiIndex (``df.groupby(...)``), above
    ``k`` fields of the next row that are each an integer or (with ``text``)
    text that is no number."""
    k = 0
    while k < len(first) and not first[k].strip():
        k += 1
    named = list(first[max(k, 1) :])
    if len(named) > 1 and not named[-1].strip():
        named.pop()
    if not k or not named or not all(f.strip() for f in named):
        return 0
    if any(_is_number(f) and not _INTEGER.fullmatch(f) for f in named):
        # ",1.5,2.5": data whose first cell is empty, no header (an integer
        # first field below it was taken for an index before: kept so)
        if k == 1 and (second is None or _INTEGER.fullmatch(second[0])):
            return 1
        return 0
    if second is None:
        return 1 if k == 1 else 0

    def level(field: str) -> bool:
        if _INTEGER.fullmatch(field):
            return True
        return text and bool(field.strip()) and not _is_number(field)

    if len(second) < k or not all(level(f) for f in second[:k]):
        return 0
    return k


_NOT_TEXT = (
    (b"\x1f\x8b", "gzip-compressed (name it .csv.gz, or decompress it first)"),
    (b"BZh", "bzip2-compressed (name it .csv.bz2, or decompress it first)"),
    (b"\xfd7zXZ\x00", "xz-compressed (name it .csv.xz, or decompress it first)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed (decompress it first)"),
    (b"PK\x03\x04", "a zip archive (an .npz needs that suffix)"),
    (b"PAR1", "a Parquet file (it needs the suffix .parquet)"),
    (b"ARROW1", "a Feather / Arrow IPC file (it needs the suffix .feather)"),
    (b"FEA1", "a Feather v1 file (save it again with pandas' to_feather: v2)"),
    (b"\x93NUMPY", "a NumPy .npy file (it needs the suffix .npy)"),
    (b"\xff\xfe", "UTF-16 text (save it as UTF-8)"),
    (b"\xfe\xff", "UTF-16 text (save it as UTF-8)"),
)
"""The first bytes of files that are not text, and what they are."""


def misnamed(head: bytes, own: bytes) -> str | None:
    """What a binary file is whose first bytes ``head`` are another format's
    magic (an entry of `_NOT_TEXT`) rather than its own format's ``own``: a file
    renamed to the wrong suffix.  ``None`` otherwise (a damaged file of its own
    format, text, or no telling)."""
    if head.startswith(own):
        return None
    for magic, what in _NOT_TEXT:
        if head.startswith(magic):
            if "compressed" in what:  # the table's hint is for text
                return f"{what.split(' (')[0]} (decompress it first)"
            return what
    return None


_UNPACK_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)
"""What reading a file raises: OSError, and a corrupt or cut compressed file's."""


def _unpack_error(exc: BaseException) -> str:
    """The message of a read that failed (`_UNPACK_ERRORS`)."""
    if isinstance(exc, EOFError):
        return f"the compressed file is cut short ({_one_line(exc)})"
    if isinstance(exc, (zlib.error, lzma.LZMAError, gzip.BadGzipFile)):
        return f"the compressed file is corrupt ({_one_line(exc)})"
    return _one_line(exc)


_MAGIC = ((b"\x1f\x8b", ".gz"), (b"BZh", ".bz2"), (b"\xfd7zXZ\x00", ".xz"))
"""The first bytes of the compressed text read (standard input has no suffix)."""


def _packed_by_magic(head: bytes) -> str | None:
    """The compression suffix (`COMPRESSION_SUFFIXES`) ``head`` starts with."""
    return next((suffix for magic, suffix in _MAGIC if head.startswith(magic)), None)


def _decompressed(raw: IO[bytes], packed: str) -> IO[bytes]:
    """``raw`` read decompressed (``packed``: one of `COMPRESSION_SUFFIXES`)."""
    out: Any
    if packed == ".gz":
        out = gzip.GzipFile(fileobj=raw, mode="rb")
    elif packed == ".bz2":
        out = bz2.BZ2File(raw)
    else:
        out = lzma.LZMAFile(raw)  # noqa: SIM115 - closed by its owner
    return cast("IO[bytes]", out)


def _not_utf8(
    path: str, label: str, exc: UnicodeDecodeError, head: bytes = b""
) -> DataError:
    """The error for a text file that is not UTF-8: what the file is, when its
    first bytes say so, else the line of its first byte that is not UTF-8 (found
    by reading the file again: the decoder's message gives the place in a block of
    text, not the line); for standard input, the decoder's message."""
    if path == "-":  # ``head``: its first bytes, peeked before they were read
        for magic, what in _NOT_TEXT:
            if head.startswith(magic):
                kind = what.split(" (")[0]
                fix = (
                    "decompress it first"
                    if kind.endswith("compressed")
                    else "standard input is read as CSV: give the file's path"
                )
                if _packed_by_magic(head) is not None:  # decompressed: not text
                    kind, fix = f"{kind} data", "its content is not CSV text"
                return DataError(f"{label} is {kind}, not CSV ({fix})")
        return DataError(f"{label} is not UTF-8 text ({_one_line(exc)})")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        packed = compression(path)
        for magic, what in _NOT_TEXT if packed is None else ():
            if head.startswith(magic):
                return DataError(f"{label} is {what}")
        with (
            open(path, "rb") as raw,
            io.TextIOWrapper(
                _decompressed(raw, packed) if packed else raw,
                encoding="utf-8-sig",
                errors="surrogateescape",
                newline="",
            ) as text,
        ):
            for number, line in enumerate(text, 1):
                bad = re.search("[\udc80-\udcff]", line)
                if bad:
                    byte = ord(bad.group()) - 0xDC00
                    return DataError(
                        f"{label} line {number}: byte 0x{byte:02x} is not UTF-8 text"
                    )
    except OSError:
        pass
    return DataError(f"{label} is not UTF-8 text ({_one_line(exc)})")


class _TextRows:
    """Rows of a delimited text file, checked to have one width.

    ``delimiter=None`` sniffs it (`sniff_delimiter`) from the first 64 KB, with
    the suffix's (tab for ``.tsv``/``.tab``, else comma) as the fallback, or takes
    it from Excel's first line ``sep=;`` (which is then no row).  A
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
            peek = getattr(raw, "peek", None)  # what it is, should it not be text
            self._head = bytes(peek(8)[:8]) if peek is not None else b""
        else:
            raw = _open_binary(path, label)
            self._size = os.fstat(raw.fileno()).st_size
            self._head = b""
        self._raw = raw  # the file itself (its position is the progress)
        packed = _packed_by_magic(self._head) if path == "-" else compression(path)
        if packed is not None:
            raw = _decompressed(raw, packed)
        self._text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        lines: Iterator[str]
        if delimiter is None:
            head: list[str] = []
            size = 0
            try:
                while len(head) < 2 * _SNIFF_ROWS and size < _SNIFF_CHARS:
                    line = self._text.readline(MAX_LINE)
                    if not line:
                        break
                    if len(line) == MAX_LINE and line[-1] not in "\r\n":
                        self.close()
                        raise _long_line(label, len(head) + 1)
                    head.append(line)
                    size += len(line)
            except UnicodeDecodeError as exc:
                self.close()
                raise _not_utf8(path, label, exc, self._head) from None
            except _UNPACK_ERRORS as exc:
                self.close()
                msg = f"{label} line {len(head) + 1}: {_unpack_error(exc)}"
                raise DataError(msg) from None
            excel = re.fullmatch(r"sep=(.)", head[0].rstrip("\r\n")) if head else None
            if excel is not None:  # Excel's delimiter line: no row (a blank line
                # in its place keeps the line numbers)
                head[0] = "\n"
            sample = "".join(head)
            delimiter = excel.group(1) if excel else sniff_delimiter(sample, default)
            lines = itertools.chain(
                head, _bounded_lines(self._text, label, len(head) + 1)
            )
        else:  # Excel's delimiter line is no row with --delimiter too
            lines = _without_excel_line(
                _bounded_lines(self._text, label, 1), delimiter, label
            )
        self.delimiter = delimiter
        if delimiter == SPACE:
            lines = _squeezed(lines)
        self._reader = csv.reader(
            itertools.chain(lines, (_END_LINE,)), delimiter=delimiter
        )
        self.width: int | None = None
        self._pending: list[tuple[list[str], int]] = []  # peeked rows and lines
        self.lines: list[int] = []  # file line of each row of the last take()

    def _next(self) -> list[str] | None:
        blank = None  # the line of a blank line skipped before the next row
        empty = None  # the line of a row of empty cells (``,,,``) skipped so
        start = self._reader.line_num + 1  # the line the next row starts on
        try:
            for row in self._reader:
                if row == [_END]:
                    break
                if any(_END in field for field in row):
                    raise _unclosed_quote(self.label, start)
                if row and any(field.strip() for field in row):
                    if empty is not None:
                        msg = (
                            f"{self.label} line {empty}: a row of empty cells, "
                            "missing values (pandas writes a row of NaN so): drop "
                            "or fill it (df.dropna())"
                        )
                        raise DataError(msg)
                    if blank is not None and self.width == 1:
                        msg = (
                            f"{self.label} line {blank}: an empty line between "
                            "values, a missing value (pandas writes NaN so in a "
                            "one-column file)"
                        )
                        raise DataError(msg)
                    return row
                if blank is None:
                    blank = self._reader.line_num
                if empty is None and len(row) > 1:  # at the end: Excel's empty rows
                    empty = self._reader.line_num
                start = self._reader.line_num + 1
        except UnicodeDecodeError as exc:
            raise _not_utf8(self.path, self.label, exc, self._head) from None
        except csv.Error as exc:
            msg = f"{self.label} line {self._reader.line_num}: {_one_line(exc)}"
            raise DataError(msg) from None
        except _UNPACK_ERRORS as exc:  # a corrupt or cut compressed file
            msg = f"{self.label} line {self._reader.line_num + 1}: {_unpack_error(exc)}"
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
            with contextlib.suppress(Exception):
                self._raw.close()  # under a decompressing reader, not closed by it
        else:
            with contextlib.suppress(Exception):
                self._text.detach()


def _parse_floats(
    cells: np.ndarray,
    label: str,
    lines: Sequence[int],
    names: Sequence[str] | None,
    columns: Sequence[int] = (),
) -> np.ndarray:
    """``cells`` (text) as float64, or a `DataError` naming the line and column
    (its header name in ``names``, else its number in the file, ``columns``) of
    the first cell that is not a number (`_is_number`: ``1_000`` is none,
    though NumPy's cast reads it)."""
    try:
        values: np.ndarray | None = cells.astype(np.float64)
    except ValueError:
        values = None
    if values is not None and not _python_only_numbers(cells):
        return values
    for r, row in enumerate(cells):
        for c, cell in enumerate(row if row.ndim else [row]):
            if not _is_number(str(cell)):
                number = columns[c] if columns else c
                name = names[c] if names else ""  # '' for a,b,c, too: a number
                col = f", column {name!r}" if name else f", column {number}"
                where = col if cells.ndim == 2 else ""
                what = f"{str(cell)!r} is not a number"
                text = str(cell).strip()
                if "," in str(cell) and _is_number(str(cell).replace(",", ".", 1)):
                    what += (
                        " (a decimal comma: write the file with a decimal "
                        "point, to_csv(decimal='.'))"
                    )
                elif text.endswith("%") and _is_number(text[:-1]):
                    what += (
                        " (a percentage: write the probabilities as numbers, "
                        "0.5 for 50%)"
                    )
                elif cells.ndim == 2 and not any(
                    _is_number(str(v)) or not str(v).strip() for v in cells[:, c]
                ):  # no number in the column: text, no scores
                    what += (
                        " (a column of text: --drop-column "
                        f"{name or number} leaves it out)"
                    )
                if not str(cell).strip():
                    what = "an empty cell"
                    last = cells.ndim == 2 and c == cells.shape[1] - 1
                    if last and not np.char.strip(cells[:, c]).any():
                        what += (
                            " (a delimiter at the end of each line makes an "
                            f"empty last column: --drop-column {number} leaves "
                            "it out)"
                        )
                msg = f"{label} line {lines[r]}{where}: {what}"
                raise DataError(msg) from None
    if values is None:  # pragma: no cover - astype failed on a cell that is a number
        msg = f"{label}: a cell is not a number"
        raise DataError(msg)
    return values  # only white space beyond ASCII around numbers (as loadtxt reads)


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
        self.column_names = self._names
        self._label_names = (
            None
            if header is None or label_cols is None
            else [header[c] for c in label_cols]
        )
        self.labels: np.ndarray | None = None
        self.extra_row_hint = ""  # why the file may have one row too many
        self.missing_row_hint = ""  # why it may have one too few
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
                    self._label_cols,
                )
            else:
                self.labels = np.char.strip(cells[:, self._label_cols[0]])
        if self._keep != list(range(cells.shape[1])):
            cells = cells[:, self._keep]
        return _parse_floats(
            cells, self.label, self._rows.lines, self._names, self._keep
        )

    def progress(self) -> tuple[int, int] | None:
        return self._rows.progress()

    def close(self) -> None:
        self._rows.close()


LABEL_COLUMN_HINT = (
    "say which with --label-column; for one-hot or soft labels, a column per "
    "class, add --soft-labels"
)
"""What a table of labels with several columns is told."""


def _data_row(row: Sequence[str]) -> bool:
    """Whether a first row is data, never a header: numbers throughout, one of
    them not an integer (a header of numbers, ``0,1,2`` as pandas names unnamed
    columns, is integers)."""
    fields = [f.strip() for f in row]
    return all(_is_number(f) for f in fields) and not all(
        _INTEGER.fullmatch(f) for f in fields
    )


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
    ``--classes``).  The last field alone may be empty (a delimiter at the end of
    the line, ``a,b,c,``: the empty column it makes is then reported with its
    ``--drop-column`` hint).  A first row with some numbers and some text or empty
    fields is data with a malformed cell, which the reader then reports by line
    and column, rather than a header that silently drops a row.  The column
    numbers pandas writes as the header of unnamed columns (`_default_names`)
    are a header too.  Booleans as pandas writes them (``True``, ``False``) are
    labels: a row after the first that holds them is data, and so is a first row
    of booleans only above a row with booleans (a file of boolean labels).
    """
    if header is not None:
        return header
    if len(rows) > 1 and _default_names(rows[0], rows[1], names):
        return True

    def cells(row: list[str]) -> list[str]:
        last = len(row) - 1
        return [
            v.strip()
            for c, v in enumerate(row)
            if c != skip and not (c == last > 0 and not v.strip())
        ]

    def texts(row: list[str], *, booleans: bool = True) -> bool:
        """Whether every cell is a name (with ``booleans``, True and False too)."""
        got = cells(row)
        return bool(got) and all(
            v
            and not _is_number(v)
            and v not in names
            and (booleans or v.lower() not in BOOL_TEXT)
            for v in got
        )

    def has_boolean(row: list[str]) -> bool:
        return any(v.lower() in BOOL_TEXT for v in cells(row))

    if not rows or not texts(rows[0]):
        return False
    first = cells(rows[0])
    if all(v.lower() in BOOL_TEXT for v in first) and (
        len(rows) < 2 or has_boolean(rows[1])
    ):  # boolean labels (pandas writes True, False), not a header of them
        return False
    return len(rows) < 2 or not texts(rows[1], booleans=False)


def open_table(
    path: str, spec: TableSpec = _NO_SPEC, *, allow_empty: bool = False
) -> tuple[Source, Source | None]:
    """The scores of a delimited text file, and its label column if ``spec`` names
    one (a `TableSpec`; its ``classes`` are not used here).

    A file without a row (zero bytes, or blank lines) is a `DataError` ("is
    empty"), unless ``allow_empty`` (a shard among others): then sources without
    rows and of no known width, whatever ``spec`` names (there is no header to
    look a name up in).

    ``delimiter=None`` sniffs the delimiter (`sniff_delimiter`).  With
    ``header=None`` the first row is a header when it is a row of names
    (`_header_flag`): each of its fields (other than the label column, given as
    a 0-based number) is text that is not a number, and the next row is not text
    throughout too.  A first row with an empty first field and every other field
    named, above a row starting with an integer, is the header of a leading index
    column (pandas' ``df.to_csv()``): that column is dropped, with
    ``drop_columns`` too (header names or 0-based numbers, dropped as well), not
    with ``score_columns`` (which picks the columns itself).  ``label_column`` is a header name or a 0-based column
    number (with ``soft``, a column spec of `select_columns` for the soft-label
    columns); ``score_columns``, a column spec, picks the score columns (by
    default every other column).  A spec that names columns implies a header row.
    """
    label_column, score_columns = spec.label_column, spec.score_columns
    header, delimiter = spec.header, spec.delimiter
    drop_columns, soft = spec.drop_columns, spec.soft
    label = _describe("SCORES", path)
    rows = _TextRows(path, label, delimiter)
    try:
        first = rows.first()
        if first is None:
            if allow_empty:
                rows.close()
                return _NoRows(label), None if label_column is None else _NoRows(label)
            msg = f"{label} is empty"
            raise DataError(msg)
        width = len(first)
        skip = None
        named_by = ""  # the option whose column names imply a header row
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
            named_by = f"--label-column {label_column!r}"
        specs = (
            *(("--drop-column", c) for c in drop_columns),
            *([("--score-columns", score_columns)] if score_columns else []),
        )
        needs = [f"{o} {c!r}" for o, c in specs if column_spec_needs_names(c)]
        if header is None and needs:
            header = True
            named_by = needs[0]
        if header and spec.header is None and _data_row(first):
            msg = (
                f"{label} has no header row (its first line is numbers), but "
                f"{named_by} names columns: give 0-based column numbers "
                f"(0 to {width - 1}; a range such as 0:{width}), or add a header"
            )
            raise DataError(msg)
        peeked = rows.peek(2)
        n_index = 0
        if header is not False:  # a text column --label-column names is the labels
            second = peeked[1] if len(peeked) > 1 else None
            n_index = _index_columns(first, second, text=skip != 0)
            if skip is not None and 0 < skip < n_index:
                n_index = skip
        indexed = n_index > 0
        index = indexed and score_columns is None  # with --drop-column too
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
        drop = set(range(n_index)) if index else set()
        for item in drop_columns:  # column specs, as in Parquet and Feather
            drop.update(
                select_columns(item, head, width, label, option="--drop-column")
            )
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
        if not has_header and header is None and len(peeked) > 1:
            scores.extra_row_hint = _class_header_hint(peeked[0], peeked[1])
        numbered = has_header and header is None and not indexed and len(peeked) > 1
        if numbered and _default_names(peeked[0], peeked[1]):
            scores.missing_row_hint = (
                f"its first line, '{','.join(f.strip() for f in first)}', was read "
                "as the header pandas writes for numbered columns "
                "(to_csv(index=False)): if it is a row of scores, give --no-header"
            )
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
        spec: TableSpec,
        *,
        allow_empty: bool = False,
    ) -> None:
        """``allow_empty``: a file without a row is one (else "is empty")."""
        label_column, header = spec.label_column, spec.header
        classes, delimiter = spec.classes, spec.delimiter
        self.label = label
        self.kind = kind
        self.n_rows = None
        self.n_cols = None
        self.extra_row_hint = ""  # why the file may have one row too many
        self._rows = _TextRows(path, label, delimiter)
        try:
            first = self._rows.first()
            if first is None:
                if allow_empty:
                    self.n_rows, self._col = 0, 0  # no row to take a column of
                    return
                msg = f"{label} is empty"
                raise DataError(msg)
            width = len(first)
            column = label_column if kind == "labels" else None
            named = column is not None and not _is_int(column)  # a number: a position
            if named and column in first and header is None:
                header = True
            peeked = self._rows.peek(2)
            index = (
                header is not False
                and width == 2
                and _is_index(first, peeked[1] if len(peeked) > 1 else None)
            )
            has_header = index or _header_flag(peeked, header, None, classes)
            if not has_header and width == 1 and first[0].strip() == "0":
                self.extra_row_hint = (
                    "its first line, '0', may be the header pandas writes for an "
                    "unnamed Series (to_csv(index=False)): save the "
                    f"{'labels' if kind == 'labels' else kind} with header=False"
                )
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
                hint = f" ({LABEL_COLUMN_HINT})" if kind == "labels" else ""
                if width == 2 and all(not r[-1].strip() for r in peeked):
                    fix = (
                        "--label-column 0 picks the labels"
                        if kind == "labels"
                        else "write it without"
                    )
                    hint = (
                        " (a delimiter at the end of each line makes an empty last "
                        f"column: {fix})"
                    )
                elif width == 2 and [r[0].strip() for r in peeked] == [
                    str(i) for i in range(len(peeked))
                ]:  # pandas' Series.to_csv(header=False): the index, the values
                    fix = (
                        "--label-column 1 picks the labels"
                        if kind == "labels"
                        else "write it with index=False"
                    )
                    hint = (
                        " (its first column holds the row numbers 0, 1, ..., "
                        f"pandas' index as to_csv(header=False) writes it: {fix})"
                    )
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
