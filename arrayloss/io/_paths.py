"""Shards: the files a directory or a glob pattern names, in natural order."""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from typing import Any

from .._errors import DataError
from ._formats import SHARD_SUFFIXES, _suffix

__all__ = ["expand_paths", "would_list"]


def _natural_key(path: str) -> tuple[Any, ...]:
    """Sort key comparing runs of digits as numbers: part-2 before part-10."""
    parts = re.split(r"(\d+)", path)
    return (*(int(p) if i % 2 else p for i, p in enumerate(parts)), path)


def _data_files(paths: list[str], label: str) -> list[str]:
    """The regular files among ``paths`` (a directory's entries or a pattern's
    matches), in natural order; a symbolic link to no file among them (a
    git-annex or DVC file whose data was never fetched) is a `DataError` naming
    it, not a shard left out: its rows would be missing from the numbers."""
    for path in paths:
        if os.path.islink(path) and not os.path.exists(path):
            msg = (
                f"{label} shard '{path}' is a symbolic link to a missing file "
                f"('{os.readlink(path)}'): fetch its data or remove the link"
            )
            raise DataError(msg)
    return sorted((p for p in paths if os.path.isfile(p)), key=_natural_key)


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
        found = _data_files(
            [
                os.path.join(spec, n)
                for n in names
                if not n.startswith(".") and _suffix(n) in SHARD_SUFFIXES
            ],
            label,
        )
        if not found:
            kinds = ", ".join(SHARD_SUFFIXES)
            msg = f"{label} directory '{spec}' holds no data files ({kinds})"
            raise DataError(msg)
        return found
    if not any(c in spec for c in "*?["):
        return [spec]
    found = _data_files(glob.glob(spec, recursive=True), label)
    if not found:
        msg = f"no files match the {label} pattern '{spec}'"
        raise DataError(msg)
    return found


def would_list(spec: str, path: str) -> bool:
    """Whether `expand_paths` would list a file written at ``path`` among the
    files of the directory or glob pattern ``spec`` (``False`` for one file:
    naming the same file is another check), so that an output written there
    becomes one more shard of the next run.  Patterns match as `glob.glob` does
    (``*`` stays within a directory and skips hidden names unless ``**``)."""
    if spec == "-" or path == "-":
        return False
    name = os.path.basename(path)
    if os.path.isdir(spec):
        here = os.path.realpath(os.path.dirname(path) or ".")
        return (
            here == os.path.realpath(spec)
            and not name.startswith(".")
            and _suffix(name) in SHARD_SUFFIXES
        )
    if os.path.isfile(spec) or not any(c in spec for c in "*?["):
        return False
    pattern, target = os.path.abspath(spec), os.path.abspath(path)
    if "**" in pattern:
        return fnmatch.fnmatchcase(target, pattern)
    folder, base = os.path.split(pattern)
    if name.startswith(".") and not base.startswith("."):
        return False
    return fnmatch.fnmatchcase(os.path.dirname(target), folder) and fnmatch.fnmatchcase(
        name, base
    )
