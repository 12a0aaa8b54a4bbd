"""Parquet and Feather/Arrow IPC prediction files, read through pyarrow.

pyarrow is the optional extra ``io`` (``pip install "arrayloss[io]"``) and is
imported only when such a file is opened; without it, opening one is a
`UsageError` naming the extra.

A file is read in record batches, so memory stays bounded whatever the file's
size, and rows are handed out in exactly the chunks asked for: the numbers are
the same at every chunk size, and the same as for the data saved as ``.npy``.

* Parquet (``.parquet``, ``.pq``): batches of at most `BATCH_VALUES` values
  (`pyarrow.parquet.ParquetFile.iter_batches`, columns decoded in parallel), only
  the columns used, page by page (`PARQUET_BUFFER`): memory is a batch plus, for
  each column, the page being decoded and its dictionary (about 3 MB a column as
  pyarrow and pandas write by default), whatever the size of the row groups.
* Feather v2 / Arrow IPC (``.feather``, ``.arrow``, ``.ipc``): the IPC file
  format batch by batch (compressed buffers included), or the IPC stream format.

The rows are read, decoded and copied into C-order rows in a thread, `PREFETCH`
blocks (of about a batch each) ahead of those asked for (`_Prefetch`): pyarrow
and NumPy's copies let go of the GIL, so the file is read while the rows read
before are evaluated, and memory grows by those blocks only.

Scores are one numeric column per class (integer or floating; their common NumPy
dtype is kept, so float32 stays float32), or a single fixed-size-list (or list)
column of the class scores.  The columns of a table are, by default, every column
except the label column and the index columns pandas stored (``df.to_parquet()``);
`arrayloss.io.select_columns` picks them by name, range or pattern.  Labels are an
integer, integral float, boolean (the classes 0 and 1), string or dictionary
(pandas categorical) column, whose categories, when they are text, are the class
names in column order (`Source.categories`; each batch must hold the same unless
--classes names the classes); soft
labels are numeric columns like the scores.  A missing value (null) is a
`DataError` naming the row and column.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ._errors import DataError, UsageError
from ._errors import one_line as _one_line
from ._validation import env_count
from .io._columns import select_columns
from .io._source import Source, _LabelColumn, empty_file
from .io._spec import TableSpec

__all__ = ["BATCH_ROWS", "IO_HINT", "open_arrow", "own_memory_pool"]

IO_HINT = 'pip install "arrayloss[io]"'
"""How to install pyarrow, named by the error when it is missing."""

BATCH_ROWS = 65536
"""The most rows per record batch read from a Parquet file."""

BATCH_VALUES = 1 << 22
"""The most values per record batch read from a Parquet file (``BATCH_ROWS``
rows of up to 64 columns; fewer rows of more).  Smaller batches have pyarrow
decode each column in more, smaller tasks on its threads: slower in
``python bench/bench_eval_formats.py`` (figures in docs/guide/formats.md)."""

PARQUET_BUFFER = 1 << 16
"""Bytes of a column read at a time: a Parquet file is read page by page, not a
column chunk (a row group's worth of a column, ~400 MB for 100 float32 columns
of a million rows as ``df.to_parquet()`` writes them) at once."""

PREFETCH = 2
"""Blocks of rows (about `BATCH_ROWS` rows or `BATCH_VALUES` values each) read
and converted ahead, in a thread, of those asked for; `PREFETCH_ENV` sets it."""

PREFETCH_ENV = "ARRAYLOSS_ARROW_PREFETCH"
"""The environment variable that sets `PREFETCH` (``0``: no thread, each block
read on the thread that asks for it; at most `MAX_PREFETCH`)."""

MAX_PREFETCH = 16
"""The most blocks `PREFETCH_ENV` reads ahead: each is held in memory (about
`BATCH_VALUES` values, 16 MB of float32), so more is bad usage (a `UsageError`,
exit 2), not gigabytes of blocks read ahead."""

_PARQUET = (".parquet", ".pq")


def _pyarrow(label: str, *, parquet: bool = True) -> Any:
    """The ``pyarrow`` module with ``parquet`` (else ``ipc``) loaded, or a
    `UsageError` naming the extra (``pyarrow.compute`` is imported where it is
    used: only ragged lists and nulls need it)."""
    try:
        if _PROCESS_OWNED and "pyarrow" not in sys.modules:
            _import_with_steady_pool()
        import pyarrow as pa

        if parquet:
            import pyarrow.parquet
        else:
            import pyarrow.ipc
    except ImportError:
        msg = f"reading {label} needs pyarrow, which is not installed ({IO_HINT})"
        raise UsageError(msg) from None
    if _PROCESS_OWNED:
        _steady_pool(pa)
    return pa


_PROCESS_OWNED = False
"""Whether this process is the command line's, whose pyarrow pool it may set."""

POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
"""The environment variable that names Arrow's default memory pool (read once,
when pyarrow first asks for the pool)."""


def own_memory_pool() -> None:
    """Let this process choose pyarrow's memory pools (`_import_with_steady_pool`,
    `_steady_pool`) when it opens a file: the command line calls it; a library
    caller's pools are left as they are, since they are process-wide."""
    global _PROCESS_OWNED
    _PROCESS_OWNED = True


def _import_with_steady_pool() -> None:
    """Import pyarrow with the system allocator as Arrow's default pool unless
    `POOL_VARIABLE` names one (the environment is restored afterwards).

    `pyarrow.set_memory_pool` (`_steady_pool`) sets the pool of pyarrow's Python
    layer only: the Parquet reader's page buffers (read, decompressed) and the
    IPC reader's decompressed buffers come from Arrow's own default pool, which
    only the variable chooses, and which is mimalloc in the wheels: its huge
    pages, zeroed by the kernel at each first touch, were 14 % of the time of
    reading a 1 M x 100 float32 file (``perf``: ``clear_page_erms`` under
    ``mi_page_free_list_extend`` and the decompression's ``memcpy``), 3 % with
    the system allocator or jemalloc.  The system allocator is the one every
    build has (an unknown name is a warning on stderr)."""
    if os.environ.get(POOL_VARIABLE):
        return
    os.environ[POOL_VARIABLE] = "system"
    try:
        import pyarrow as pa

        pa.default_memory_pool()  # the variable is read here, once
    finally:
        os.environ.pop(POOL_VARIABLE, None)


def _steady_pool(pa: Any) -> None:
    """Make jemalloc (else the system allocator) pyarrow's memory pool when it
    is mimalloc and `POOL_VARIABLE` does not say otherwise (only in the command
    line's process: `own_memory_pool`; pyarrow imported before, else
    `_import_with_steady_pool` chose already).

    Decoding a Parquet file allocates and frees a page buffer per column page;
    mimalloc hands the memory back to the system and takes it again, each time
    as huge pages the kernel zeroes: 2-3 s of system time for 100 float32
    columns of a million rows on a loaded machine (``perf``: ``clear_page_erms``
    under ``folio_zero_user``) against 0.5 s with jemalloc or the system
    allocator, whose peak RSS is lower too.
    """
    if os.environ.get(POOL_VARIABLE):
        return
    if pa.default_memory_pool().backend_name != "mimalloc":
        return
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        pool = pa.system_memory_pool()
    pa.set_memory_pool(pool)


class _ArrowFile:
    """The schema of a Parquet or Arrow IPC file and its record batches, handed
    out ``n`` rows at a time."""

    def __init__(self, path: str, label: str) -> None:
        parquet = os.path.splitext(path)[1].lower() in _PARQUET
        pa = _pyarrow(label, parquet=parquet)
        self.pa = pa
        self.label = label
        self.n_rows: int | None = None
        self._batches: Iterator[Any] | None = None
        self._pending: list[Any] = []
        self._have = 0
        self._done = 0
        self._n_batches: int | None = None
        self._read_batches = 0
        self.batch_rows = BATCH_ROWS
        self._file: Any = None
        self._ipc: Any = None
        self.parquet = parquet
        errors = (pa.ArrowException, OSError, ValueError)
        kind = "Parquet" if parquet else "Feather (v2) / Arrow IPC"
        empty = empty_file(label, path, f"a {kind}")
        if empty is not None:
            raise empty
        try:
            if self.parquet:
                self._pf = pa.parquet.ParquetFile(
                    path,
                    pre_buffer=False,
                    buffer_size=PARQUET_BUFFER,
                )
                self.schema = self._pf.schema_arrow
                self.n_rows = int(self._pf.metadata.num_rows)
            else:
                self._file = pa.OSFile(path, "rb")
                try:
                    self._ipc = pa.ipc.open_file(self._file)
                    self._n_batches = int(self._ipc.num_record_batches)
                except pa.ArrowInvalid:
                    self._file.seek(0)
                    self._ipc = pa.ipc.open_stream(self._file)
                self.schema = self._ipc.schema
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            self.close()
            msg = f"cannot read {label}: {exc.strerror or _one_line(exc)}"
            raise DataError(msg) from None
        except errors as exc:
            self.close()
            msg = f"{label} is not a valid {kind} file ({_one_line(exc)})"
            what = _misnamed(path, b"PAR1" if parquet else b"ARROW1")
            if what is not None:  # another format under this suffix
                msg = f"{label} is {what}"
            raise DataError(msg) from None
        self.names: list[str] = list(self.schema.names)

    def index_columns(self) -> set[int]:
        """The columns that hold the index pandas stored with the frame."""
        meta = self.schema.metadata or {}
        try:
            stored = json.loads(meta[b"pandas"])["index_columns"]
        except (KeyError, ValueError, TypeError):
            return set()
        return {self.names.index(c) for c in stored if c in self.names}

    def start(self, columns: Sequence[int]) -> None:
        """Read only ``columns`` (numbers, in this order) from now on (a Parquet
        file's columns decoded on pyarrow's threads: the reading thread is the
        longer chain, and they share its work with the cores the evaluation
        leaves)."""
        names = [self.names[c] for c in columns]
        # Parquet reads its columns by name, in the whole file: another column of
        # the name of one read (even one left out) could be read in its place;
        # Feather's are selected by number, but then looked up by name
        counts = Counter(self.names if self.parquet else names)
        twice = [n for n in names if counts[n] > 1]
        if twice:
            numbers = [str(i) for i, n in enumerate(self.names) if n == twice[0]]
            msg = (
                f"{self.label} has {len(numbers)} columns named {twice[0]!r} "
                f"(columns {', '.join(numbers)}), read by name even when given by "
                "number: give each column a name of its own"
            )
            raise DataError(msg)
        self.batch_rows = max(1, min(BATCH_ROWS, BATCH_VALUES // max(1, len(names))))
        if self.parquet:
            self._batches = self._pf.iter_batches(
                batch_size=self.batch_rows,
                columns=names,
                use_threads=True,
            )
        elif self._n_batches is not None:
            ipc = self._ipc
            self._batches = (
                ipc.get_batch(i).select(list(columns)) for i in range(self._n_batches)
            )
        else:
            self._batches = (b.select(list(columns)) for b in self._ipc)

    def _next(self) -> Any:
        assert self._batches is not None
        try:
            batch = next(self._batches, None)
        except (self.pa.ArrowException, OSError, ValueError) as exc:
            msg = f"{self.label} is corrupt or unreadable ({_one_line(exc)})"
            raise DataError(msg) from None
        if batch is not None:
            self._read_batches += 1
        return batch

    def peek(self) -> Any:
        """The first batch with rows (which stays to be read), or None."""
        while self._have == 0:
            batch = self._next()
            if batch is None:
                return None
            if batch.num_rows:
                self._pending.append(batch)
                self._have += batch.num_rows
        return self._pending[0]

    def take(self, n: int) -> list[Any]:
        """The next ``min(n, rows left)`` rows as record batches (slices of those
        read, never copied), none when no rows are left."""
        while self._have < n:
            batch = self._next()
            if batch is None:
                break
            if batch.num_rows:
                self._pending.append(batch)
                self._have += batch.num_rows
        want = min(n, self._have)
        out: list[Any] = []
        got = 0
        while got < want:
            batch = self._pending[0]
            k = min(want - got, batch.num_rows)
            out.append(batch if k == batch.num_rows else batch.slice(0, k))
            if k == batch.num_rows:
                self._pending.pop(0)
            else:
                self._pending[0] = batch.slice(k)
            got += k
        self._have -= want
        self._done += want
        return out

    def progress(self) -> tuple[int, int] | None:
        if self.n_rows is not None:
            return (self._done, self.n_rows)
        if self._n_batches is not None:
            return (self._read_batches, self._n_batches)
        return None

    def close(self) -> None:
        self._batches = None
        self._pending = []
        pf = getattr(self, "_pf", None)
        if pf is not None:
            with contextlib.suppress(Exception):
                pf.close()
        if self._file is not None:
            self._file.close()
            self._file = None


def _misnamed(path: str, own: bytes) -> str | None:
    """`arrayloss.io._text.misnamed` of the first bytes of the file ``path``."""
    from .io._text import misnamed

    try:
        with open(path, "rb") as f:
            return misnamed(f.read(8), own)
    except OSError:
        return None


def _first_null(col: Any) -> int:
    import pyarrow.compute as pc

    return int(np.argmax(pc.is_null(col).to_numpy(zero_copy_only=False)))


class _Reader:
    """How one role (scores, soft labels, labels, weights) turns table columns
    into a NumPy array."""

    def __init__(
        self, f: _ArrowFile, columns: list[int], kind: str, *, named: bool = False
    ) -> None:
        self.f = f
        self.columns = columns
        self.kind = kind
        # a dictionary (categorical) label column of text: its first batch's
        # categories, the class names in order; each batch must hold the same,
        # unless ``named`` (--classes given: labels are matched by name)
        self.categories: tuple[str, ...] | None = None
        self.named = named
        self.names = [f.names[c] for c in columns]
        pa = f.pa
        types = [f.schema.field(c).type for c in columns]
        self.list_width: int | None = None
        self.is_list = False
        what = {"weights": "--weights"}.get(kind, "")
        for name, t in zip(self.names, types, strict=True):
            if kind in ("scores", "soft", "weights"):
                if (
                    pa.types.is_list(t)
                    or pa.types.is_large_list(t)
                    or (pa.types.is_fixed_size_list(t))
                ):
                    if kind == "weights" or len(columns) != 1:
                        msg = (
                            f"{f.label} column {name!r} holds lists; a list column of "
                            "scores must be the only one (select it with "
                            "--score-columns)"
                        )
                        raise DataError(msg)
                    self.is_list = True
                    value = t.value_type
                    if not _numeric(pa, value):
                        msg = f"{f.label} column {name!r} holds lists of {value}, not numbers"
                        raise DataError(msg)
                    if pa.types.is_fixed_size_list(t):
                        self.list_width = int(t.list_size)
                elif not _numeric(pa, t):
                    hint = (
                        " (leave it out with --drop-column or pick the score columns "
                        "with --score-columns)"
                        if kind == "scores"
                        else ""
                    )
                    msg = f"{f.label}{what and ' '}{what} column {name!r} has type {t}, not numbers{hint}"
                    raise DataError(msg)
            elif not (
                _numeric(pa, t)
                or _text(pa, t)
                or pa.types.is_dictionary(t)
                or pa.types.is_boolean(t)
            ):
                msg = f"{f.label} column {name!r} has type {t}, which cannot hold class labels"
                raise DataError(msg)
        if self.is_list:
            self.n_cols: int | None = self.list_width
        elif kind in ("scores", "soft"):
            self.n_cols = len(columns)
        else:
            self.n_cols = None
        self.dtype = (
            np.result_type(*(t.to_pandas_dtype() for t in types))
            if kind in ("scores", "soft", "weights") and not self.is_list
            else None
        )

    def read_categories(self) -> None:
        """Set `categories` from the first batch of a dictionary label column of
        text (the file started: `_ArrowFile.start`)."""
        pa = self.f.pa
        if self.kind != "labels" or len(self.columns) != 1:
            return
        t = self.f.schema.field(self.columns[0]).type
        if not (pa.types.is_dictionary(t) and _text(pa, t.value_type)):
            return
        batch = self.f.peek()
        if batch is not None:
            self.categories = _categories(batch.column(self.names[0]))

    def _check_categories(self, chunk: Any, start: int) -> None:
        """A `DataError` when a batch's categories are not the first batch's."""
        if self.named or self.categories is None:
            return
        got = _categories(chunk)
        if got != self.categories:
            msg = (
                f"{self.f.label} row {start}: column {self.names[0]!r} has the "
                f"categories {list(got)} where its first rows have "
                f"{list(self.categories)}: the categories are the class names in "
                "column order, so they must not change (or give --classes)"
            )
            raise DataError(msg)

    def empty(self) -> np.ndarray:
        """No rows, in this role's shape."""
        if self.kind in ("scores", "soft"):
            return np.empty((0, self.n_cols or 0), dtype=self.dtype or np.float64)
        return np.empty(0, dtype=self.dtype or np.float64)

    def convert(self, batches: list[Any], start: int) -> np.ndarray:
        """The NumPy rows of this role's columns of ``batches`` (record batches
        of the same columns; none: no rows; ``start``: the row number of the
        first, for messages)."""
        if not batches:
            return self.empty()
        if self.kind in ("scores", "soft") and not self.is_list:
            return self._columns(batches, start)
        name = self.names[0]
        chunks = [b.column(name) for b in batches]
        row = start
        for chunk in chunks:
            self._no_nulls(chunk, name, row)
            if self.categories is not None:
                self._check_categories(chunk, row)
            row += len(chunk)
        pa = self.f.pa
        if self.is_list:
            return self._list_rows(pa.chunked_array(chunks), row - start, start)
        if self.kind == "labels" and not _numeric(pa, chunks[0].type):
            return _labels(pa, pa.chunked_array(chunks))
        values = _joined([_numpy(c) for c in chunks], self)
        return (
            values if self.kind == "labels" else values.astype(self.dtype, copy=False)
        )

    def _no_nulls(self, col: Any, name: str, start: int) -> None:
        """A `DataError` naming the row of the first null of ``col``, if any."""
        if col.null_count:
            i = _first_null(col)
            msg = f"{self.f.label} row {start + i}, column {name!r}: a missing value (null)"
            raise DataError(msg)

    def _columns(self, batches: list[Any], start: int) -> np.ndarray:
        """The ``(m, C)`` rows of one numeric column per class, in C order: each
        column's values (a view of the batch's buffer) are written straight
        into its column of the rows, one copy in all."""
        assert self.dtype is not None
        m = sum(b.num_rows for b in batches)
        out = np.empty((m, len(self.names)), dtype=self.dtype)
        row = 0
        for batch in batches:
            k = batch.num_rows
            schema = batch.schema
            rows = out[row : row + k]
            for j, name in enumerate(self.names):
                col = batch.column(schema.get_field_index(name))
                self._no_nulls(col, name, start + row)
                rows[:, j] = _numpy(col)
            row += k
        return out

    def _list_rows(self, col: Any, m: int, start: int) -> np.ndarray:
        import pyarrow.compute as pc

        arr = col.combine_chunks()
        lengths = _numpy(pc.list_value_length(arr))
        if self.n_cols is None:
            self.n_cols = int(lengths[0]) if m else None
        if m and (lengths != self.n_cols).any():
            i = int(np.argmax(lengths != self.n_cols))
            msg = (
                f"{self.f.label} row {start + i}: {int(lengths[i])} scores in column "
                f"{self.names[0]!r}, not {self.n_cols} as in its first row"
            )
            raise DataError(msg)
        flat = arr.flatten()
        if flat.null_count:
            i = _first_null(flat) // max(1, self.n_cols or 1)
            msg = f"{self.f.label} row {start + i}, column {self.names[0]!r}: a missing value (null)"
            raise DataError(msg)
        values = _numpy(flat)
        self.dtype = values.dtype
        return values.reshape(m, self.n_cols or 0)


def _numpy(col: Any) -> np.ndarray:
    """A read-only NumPy view of the values of ``col``, an Arrow array of
    integers or floats without nulls: its data buffer as it is.  (pyarrow's own
    ``to_numpy`` imports pandas on its first call, ~0.3 s of a run.)"""
    dtype = np.dtype(col.type.to_pandas_dtype())
    if not len(col):
        return np.empty(0, dtype=dtype)
    return np.frombuffer(
        col.buffers()[1],
        dtype=dtype,
        count=len(col),
        offset=col.offset * dtype.itemsize,
    )


def _categories(col: Any) -> tuple[str, ...]:
    """The categories (dictionary values, as text) of a dictionary array."""
    return tuple(str(v) for v in col.dictionary.to_pylist())


def _numeric(pa: Any, t: Any) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t))


def _text(pa: Any, t: Any) -> bool:
    """Whether ``t`` is a text type: ``string``, ``large_string`` or (pyarrow 16
    and later) ``string_view``, as polars writes text to Feather/IPC."""
    view = getattr(pa.types, "is_string_view", None)
    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or (view is not None and view(t))
    )


def _labels(pa: Any, col: Any) -> np.ndarray:
    """Class labels of a column: numbers as they are, text as ``str``."""
    t = col.type
    if pa.types.is_dictionary(t):  # decoded in NumPy, chunk by chunk (each has its
        # own values; pyarrow neither casts nor takes a dictionary of string_view)
        parts = [
            np.asarray(c.dictionary.to_numpy(zero_copy_only=False))[
                np.asarray(c.indices.to_numpy(zero_copy_only=False), dtype=np.intp)
            ]
            for c in col.chunks
        ]
        text = _text(pa, t.value_type)
        if not parts:
            return np.empty(0, dtype=str if text else np.int64)
        out = np.concatenate(parts)
        return out.astype(str) if text else out
    if _text(pa, t):
        return np.asarray(col.to_numpy(zero_copy_only=False), dtype=str)
    if pa.types.is_boolean(t):  # bit-packed: unpacked to NumPy bool (classes 0, 1)
        return np.asarray(col.to_numpy(zero_copy_only=False), dtype=bool)
    return np.asarray(col.to_numpy())


Block = tuple[int, np.ndarray, np.ndarray | None]
"""Rows converted: their count, those of the role, those of the labels."""


class _Blocks:
    """The rows of a file converted ``rows`` at a time (in the reading thread)."""

    def __init__(
        self, f: _ArrowFile, reader: _Reader, labels: _Reader | None, rows: int
    ) -> None:
        self.f = f
        self.reader = reader
        self.labels = labels
        self.rows = rows
        self.pos = 0  # the row number of the next row

    def next(self) -> Block | None:
        """The next ``rows`` rows (fewer at the end), None when none are left."""
        batches = self.f.take(self.rows)
        if not batches:
            return None
        m = sum(b.num_rows for b in batches)
        main = self.reader.convert(batches, self.pos)
        extra = None if self.labels is None else self.labels.convert(batches, self.pos)
        self.pos += m
        return m, main, extra


def _prefetch_depth() -> int:
    """`PREFETCH`, or the number `PREFETCH_ENV` gives (`UsageError` for a value
    that is not a non-negative integer, or is above `MAX_PREFETCH`)."""
    return env_count(PREFETCH_ENV, PREFETCH, high=MAX_PREFETCH)


class _Inline:
    """The blocks of ``produce`` made when asked for (`PREFETCH_ENV` ``0``)."""

    def __init__(self, produce: Callable[[], Block | None]) -> None:
        self._produce: Callable[[], Block | None] | None = produce

    def get(self) -> Block | None:
        """The next block, None after the last."""
        if self._produce is None:
            return None
        block = self._produce()
        if block is None:
            self._produce = None
        return block

    def close(self) -> None:
        self._produce = None


class _Prefetch:
    """The blocks of ``produce`` made in a thread, at most ``depth`` ahead of
    `get`: reading and decoding the file (pyarrow, and the copy into rows, let
    go of the GIL) overlap with the computing on the rows already read.  An
    error is raised by `get` where it occurred, after the blocks before it."""

    def __init__(self, produce: Callable[[], Block | None], depth: int) -> None:
        self._queue: queue.Queue[Block | BaseException | None] = queue.Queue(depth)
        self._stop = threading.Event()
        self._over = False
        self._thread = threading.Thread(
            target=_produce,
            args=(produce, self._queue, self._stop),
            name="arrayloss-arrow-reader",
            daemon=True,
        )
        _watch(self._thread, self._stop)
        self._thread.start()

    def get(self) -> Block | None:
        """The next block, None after the last."""
        if self._over:
            return None
        item = self._queue.get()
        if item is None or isinstance(item, BaseException):
            self._over = True
            self._thread.join()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop the thread and wait for it (at most the block it is making)."""
        self._stop.set()
        self._over = True
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.01)
        self._thread.join()

    def __del__(self) -> None:
        self._stop.set()  # a source never closed: its thread ends on its own


_LIVE: dict[threading.Thread, threading.Event] = {}
"""The reading threads running, and what stops each (`_stop_at_exit`)."""


def _watch(thread: threading.Thread, stop: threading.Event) -> None:
    """Count ``thread`` among `_LIVE` (`_stop_at_exit` registered once)."""
    atexit.unregister(_stop_at_exit)
    atexit.register(_stop_at_exit)
    _LIVE[thread] = stop


def _stop_at_exit() -> None:
    """Stop the reading threads of sources never closed, and wait for them,
    before the interpreter ends: a daemon thread still running in pyarrow's C++
    when it does would be cut off there (`threading` stops daemon threads
    where they stand)."""
    for thread, stop in list(_LIVE.items()):
        stop.set()
        thread.join(timeout=10)


def _produce(
    produce: Callable[[], Block | None],
    out: queue.Queue[Block | BaseException | None],
    stop: threading.Event,
) -> None:
    """`_Prefetch`'s thread: put each block of ``produce``, then None (or the
    error), until ``stop``."""
    try:
        _put_blocks(produce, out, stop)
    finally:
        _LIVE.pop(threading.current_thread(), None)


def _put_blocks(
    produce: Callable[[], Block | None],
    out: queue.Queue[Block | BaseException | None],
    stop: threading.Event,
) -> None:
    item: Block | BaseException | None
    while not stop.is_set():
        try:
            item = produce()
        except BaseException as exc:  # handed to the reader, raised there
            item = exc
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                out.put(item, timeout=0.1)
                break
        if item is None or isinstance(item, BaseException):
            return


class _ArrowSource(Source):
    """The rows of one role of an Arrow table, and optionally (``labels_reader``)
    the label or soft-label columns of the same rows, left in ``labels``."""

    def __init__(
        self, f: _ArrowFile, reader: _Reader, labels_reader: _Reader | None = None
    ) -> None:
        self.label = f.label
        self._f = f
        self._reader = reader
        self._labels_reader = labels_reader
        self.n_rows = f.n_rows
        self.labels: np.ndarray | None = None
        self._pending: list[tuple[np.ndarray, np.ndarray | None]] = []
        self._have = 0  # rows converted and not yet read
        self._done = 0  # rows read
        self._ahead: _Prefetch | _Inline | None = None
        order = list(reader.columns)
        if labels_reader is not None:
            order += labels_reader.columns
        self._depth = _prefetch_depth()
        f.start(order)
        for role in (reader, labels_reader):
            if role is not None:
                role.read_categories()
        self.categories = reader.categories
        if reader.is_list and reader.n_cols is None:
            first = f.peek()
            if first is None:
                msg = f"{f.label} has no rows"
                raise DataError(msg)
            reader.convert([first.slice(0, 1)], 0)
        self.n_cols = reader.n_cols
        self.dtype = reader.dtype
        self.column_names = None if reader.is_list else list(reader.names)

    def _fill(self, n: int) -> None:
        """Take converted rows until ``n`` wait, or none are left.  They are
        converted ahead in a thread (`_Prefetch`) about `_ArrowFile.batch_rows`
        at a time, a whole number of reads of the first ``n`` asked for (one
        conversion per batch however small the chunks, and each chunk a view of
        one)."""
        if self._ahead is None:
            step = n * max(1, self._f.batch_rows // n)
            blocks = _Blocks(self._f, self._reader, self._labels_reader, step)
            depth = self._depth
            self._ahead = (
                _Prefetch(blocks.next, depth) if depth else _Inline(blocks.next)
            )
        while self._have < n:
            got = self._ahead.get()
            if got is None:
                return
            m, main, extra = got
            self._pending.append((main, extra))
            self._have += m

    def read(self, n: int) -> np.ndarray:
        self._fill(n)
        parts: list[tuple[np.ndarray, np.ndarray | None]] = []
        got = 0
        while got < n and self._pending:
            main, extra = self._pending[0]
            k = min(n - got, main.shape[0])
            parts.append((main[:k], None if extra is None else extra[:k]))
            if k == main.shape[0]:
                self._pending.pop(0)
            else:
                self._pending[0] = (main[k:], None if extra is None else extra[k:])
            got += k
        self._have -= got
        self._done += got
        if self._labels_reader is not None:
            self.labels = _joined([e for _, e in parts], self._labels_reader)
        return _joined([m for m, _ in parts], self._reader)

    def progress(self) -> tuple[int, int] | None:
        if self.n_rows is not None:
            return (self._done, self.n_rows)
        return self._f.progress()

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None
        self._f.close()


def _joined(parts: list[Any], reader: _Reader) -> np.ndarray:
    """The rows of ``parts`` in one array (a view when there is one part)."""
    if not parts:
        return reader.empty()
    if len(parts) == 1:
        return np.asarray(parts[0])
    return np.concatenate(parts)


def _one_column(spec: str, names: list[str], label: str) -> list[int]:
    """The one column ``--label-column`` names (a name or a number)."""
    cols = select_columns(spec, names, len(names), label, option="--label-column")
    if len(cols) != 1:
        msg = (
            f"{label}: --label-column {spec!r} selects {len(cols)} columns; "
            "one is needed (for soft labels, add --soft-labels)"
        )
        raise DataError(msg)
    return cols


def open_arrow(
    path: str,
    label: str,
    kind: str,
    table: TableSpec,
    *,
    with_labels: bool = False,
) -> Any:
    """The `Source` of the ``kind`` (``"scores"``, ``"soft"``, ``"labels"``,
    ``"weights"``) in a Parquet or Feather file.

    For ``"scores"`` with ``with_labels``, the pair ``(scores, labels)``:
    ``label_column`` names the label column of the same table (with ``soft``, a
    column spec of the soft-label columns), and ``labels`` is ``None`` without
    one.  ``score_columns`` (a column spec, `arrayloss.io.select_columns`) picks
    the score columns, ``drop_columns`` leaves columns out; the index columns
    pandas stored are left out by default.  For a 1-D ``kind``, the only column
    other than the index, or ``label_column``.  ``table`` is a
    `arrayloss.io.TableSpec` (its text-only fields are not used).
    """
    label_column, score_columns = table.label_column, table.score_columns
    drop_columns, soft = table.drop_columns, table.soft
    named = bool(table.classes)
    f = _ArrowFile(path, label)
    try:
        width = len(f.names)
        index = f.index_columns()
        drop = set(index)
        for name in drop_columns:
            drop.update(
                select_columns(name, f.names, width, label, option="--drop-column")
            )
        if kind in ("labels", "weights"):
            if label_column is not None and kind == "labels":
                cols = _one_column(label_column, f.names, label)
            else:
                cols = [c for c in range(width) if c not in drop]
                if len(cols) != 1:
                    from .io._text import LABEL_COLUMN_HINT

                    hint = f" ({LABEL_COLUMN_HINT})" if kind == "labels" else ""
                    msg = f"{label} has {len(cols)} columns; one column of {kind} is needed{hint}"
                    raise DataError(msg)
            src: Any = _ArrowSource(f, _Reader(f, cols, kind, named=named))
            return src
        label_cols = None
        if with_labels and label_column is not None:
            if soft:
                label_cols = select_columns(
                    label_column, f.names, width, label, option="--label-column"
                )
            else:
                label_cols = _one_column(label_column, f.names, label)
        spec = score_columns if kind == "scores" else label_column
        if spec is not None:
            keep = select_columns(spec, f.names, width, label)
        else:
            keep = [
                c for c in range(width) if c not in drop and c not in (label_cols or ())
            ]
        clash = set(keep).intersection(label_cols or ())
        if clash:
            name = f.names[min(clash)]
            msg = f"{label}: column {name!r} is both a score and a label column"
            raise DataError(msg)
        if not keep:
            msg = f"{label} has no score columns"
            raise DataError(msg)
        labels_reader = None
        if label_cols is not None:
            labels_reader = _Reader(
                f, label_cols, "soft" if soft else "labels", named=named
            )
        src = _ArrowSource(f, _Reader(f, keep, kind), labels_reader)
    except BaseException:
        f.close()
        raise
    if not with_labels:
        return src
    if labels_reader is None:
        return src, None
    column = _LabelColumn(src, labels_reader.n_cols)
    column.categories = labels_reader.categories
    return src, column
