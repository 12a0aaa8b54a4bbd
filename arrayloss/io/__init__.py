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

Each job has its module: the `Source` interface (``_source``), the formats
(``_formats``), ``.npy``/``.npz`` (``_npy``), delimited text (``_text``),
column specs (``_columns``), how to read a table (``_spec``), opening by suffix (``_open``), shard paths
(``_paths``), labels (``_labels``), reading in step (``_aligned``) and the
writers (``_writers``); this package re-exports their public names.
"""

from .._errors import DataError
from ._aligned import Chunk, iter_aligned
from ._columns import check_column_spec as check_column_spec
from ._columns import column_spec_needs_names as column_spec_needs_names
from ._columns import select_columns
from ._formats import ARROW_SUFFIXES as ARROW_SUFFIXES
from ._formats import INPUT_SUFFIXES as INPUT_SUFFIXES
from ._formats import SHARD_SUFFIXES
from ._formats import TEXT_SUFFIXES as TEXT_SUFFIXES
from ._formats import check_suffix as check_suffix
from ._labels import classes_from, header_classes, label_indices, soft_label_rows
from ._open import open_array, read_rows
from ._paths import expand_paths
from ._source import Source
from ._spec import TableSpec
from ._text import DELIMITERS as DELIMITERS
from ._text import open_table
from ._text import sniff_delimiter as sniff_delimiter
from ._writers import NpyWriter, TextWriter

__all__ = [
    "SHARD_SUFFIXES",
    "Chunk",
    "DataError",
    "NpyWriter",
    "Source",
    "TableSpec",
    "TextWriter",
    "classes_from",
    "expand_paths",
    "header_classes",
    "iter_aligned",
    "label_indices",
    "open_array",
    "open_table",
    "read_rows",
    "select_columns",
    "soft_label_rows",
]
