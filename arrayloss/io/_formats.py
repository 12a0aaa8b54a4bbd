"""Which files are read: the suffixes of each format, and `check_suffix`."""

from __future__ import annotations

import os

from .._errors import DataError

__all__ = [
    "ARROW_SUFFIXES",
    "COMPRESSION_SUFFIXES",
    "INPUT_SUFFIXES",
    "SHARD_SUFFIXES",
    "TEXT_SUFFIXES",
    "check_suffix",
    "compression",
]

COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz")
"""Compressed text (``preds.csv.gz``, as ``df.to_csv("preds.csv.gz")`` writes it),
decompressed as it is read."""


def compression(path: str) -> str | None:
    """The compression suffix of ``path`` (`COMPRESSION_SUFFIXES`), else ``None``."""
    suffix = os.path.splitext(path)[1].lower()
    return suffix if suffix in COMPRESSION_SUFFIXES else None


def _suffix(path: str) -> str:
    """The lower-case suffix of the format: ``.csv`` for ``preds.csv.gz`` too."""
    root, suffix = os.path.splitext(path)
    if suffix.lower() in COMPRESSION_SUFFIXES:
        return os.path.splitext(root)[1].lower()
    return suffix.lower()


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
    packed = None if path == "-" else compression(path)
    if packed is not None and suffix not in ("", *TEXT_SUFFIXES):
        msg = (
            f"{label} is a compressed {suffix} file: eval decompresses text only "
            f"({', '.join(TEXT_SUFFIXES)} ending in {', '.join(COMPRESSION_SUFFIXES)}); "
            "decompress it first"
        )
        raise DataError(msg)
    if suffix and suffix not in INPUT_SUFFIXES:
        msg = (
            f"{label} has the unsupported suffix {suffix!r} (eval reads "
            f"{', '.join(INPUT_SUFFIXES)}, or CSV on standard input)"
        )
        raise DataError(msg)
    return suffix


SHARD_SUFFIXES = (".npy", ".npz", ".csv", ".tsv", ".tab", ".txt", *ARROW_SUFFIXES)
"""The files a directory of shards contributes (others, and hidden files, are ignored)."""
