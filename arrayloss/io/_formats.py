"""Which files are read: the suffixes of each format, and `check_suffix`."""

from __future__ import annotations

import os

from .._errors import DataError

__all__ = [
    "ARROW_SUFFIXES",
    "INPUT_SUFFIXES",
    "SHARD_SUFFIXES",
    "TEXT_SUFFIXES",
    "check_suffix",
]


def _suffix(path: str) -> str:
    return os.path.splitext(path)[1].lower()


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
