"""Reading the scores, labels and weights in step (`iter_aligned`), a `Chunk` at a
time, with their row counts checked."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .._errors import DataError
from ._source import Source

__all__ = ["Chunk", "iter_aligned", "transposed_hint"]


@dataclass(frozen=True)
class Chunk:
    """Rows ``start`` to ``start + len(scores)`` of every input."""

    start: int
    scores: np.ndarray
    labels: np.ndarray
    weights: np.ndarray | None


def transposed_hint(scores: Source, other: Source) -> str:
    """``"; ..."`` when the scores look transposed: as many score columns as
    ``other`` (labels or weights, of a known row count) has rows; else ``""``."""
    n_cols, n_rows = scores.n_cols, other.n_rows
    if n_cols is None or n_rows is None or n_cols != n_rows or n_cols < 2:
        return ""
    return (
        f"; {scores.label} has {n_cols} columns, one a sample? (transposed: the "
        "scores need one row per sample, one column per class)"
    )


def iter_aligned(
    scores: Source,
    labels: Source,
    weights: Source | None,
    chunk_rows: int,
    *,
    allow_empty: bool = False,
) -> Iterator[Chunk]:
    """Read the sources in step, checking that they have the same number of rows.

    Sources without rows are a `DataError` ("has no rows") unless
    ``allow_empty`` (a shard among others: then no chunk, once the others are
    checked to have no rows either)."""
    others = [s for s in (labels, weights) if s is not None]
    for other in others:
        known = scores.n_rows is not None and other.n_rows is not None
        if known and scores.n_rows != other.n_rows:
            msg = f"{scores.label} has {scores.n_rows} rows but {other.label} has {other.n_rows}"
            raise DataError(msg + transposed_hint(scores, other))
    start = 0
    while True:
        s = scores.read(chunk_rows)
        m = int(s.shape[0])
        if m == 0 and start == 0 and not allow_empty:
            msg = f"{scores.label} has no rows"
            raise DataError(msg)
        parts = []
        for other in others:
            part = other.read(chunk_rows if m else 1)
            if part.shape[0] != m:
                if part.shape[0] < m:
                    have, more = f"{start + part.shape[0]} rows", scores.label
                    msg = f"{other.label} has {have} but {more} has more"
                    hint = getattr(scores, "extra_row_hint", "")
                    if hint:  # a header read as a row of data?
                        msg += f"; {hint}"
                else:
                    msg = (
                        f"{other.label} has more rows than {scores.label} ({start + m})"
                    )
                    hint = getattr(other, "extra_row_hint", "") or getattr(
                        scores, "missing_row_hint", ""
                    )
                    if hint:  # a header read as a row of data, or a row as one?
                        msg += f"; {hint}"
                    elif not start:
                        msg += transposed_hint(scores, other)
                raise DataError(msg)
            parts.append(part)
        if m == 0:
            return
        yield Chunk(start, s, parts[0], parts[1] if len(parts) > 1 else None)
        start += m
