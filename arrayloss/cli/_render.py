"""The results of ``arrayloss eval`` as text: a table, CSV or JSON.

`render` lays out the data counts, losses and metrics (with ``--bootstrap``, each
with its interval: the table's fourth column, CSV columns ``low`` and ``high``,
JSON ``intervals``).  JSON is strict: an infinite value (``--eps 0``) is the string
``"inf"``, and each row of a confusion matrix, each per-class entry and each interval is
one line.  A confusion matrix travels as `CountRows` (its array), encoded a row at a
time: no list of ``C**2`` Python numbers.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["CountRows", "render", "spreadsheet_safe"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""The first characters that make a spreadsheet read a CSV cell as a formula
(OWASP's list for CSV injection)."""


def spreadsheet_safe(text: str) -> str:
    """A name for a CSV report cell: with a leading apostrophe when a spreadsheet
    would run it as a formula (it starts with one of `FORMULA_STARTS` and is not
    a number such as ``-1``), as OWASP advises; else as it is.  Excel and
    LibreOffice show such a cell as the text after the apostrophe."""
    if not text.startswith(FORMULA_STARTS):
        return text
    try:
        float(text)
    except ValueError:
        return "'" + text
    return text  # -1, +0.5: a number, which no spreadsheet runs


class CountRows:
    """The rows of a matrix of counts (or weight sums), kept as its array.

    Iterating gives each row as a list of Python numbers (``int`` for an integer
    array, ``float`` otherwise), one row at a time; the JSON text encodes each
    row as ``json.dumps`` encodes that list, so the document is the same as with
    the nested lists, without holding ``C**2`` Python numbers at once.

    Parameters
    ----------
    matrix : numpy.ndarray of shape (rows, columns)
        The counts (int64) or weight sums (float64, finite).
    """

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = matrix

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def __iter__(self) -> Iterator[list[Any]]:
        for row in self.matrix:
            yield row.tolist()

    def __eq__(self, other: object) -> bool:
        """Equal to the nested lists of the same numbers (or another `CountRows`)."""
        if isinstance(other, CountRows):
            other = other.tolist()
        return self.tolist() == other

    __hash__ = None  # type: ignore[assignment]

    def tolist(self) -> list[list[Any]]:
        """The rows as nested lists."""
        return list(self)


def render(
    fmt: str,
    meta: dict[str, Any],
    results: dict[str, dict[str, float]],
    extra: dict[str, Any] | None = None,
    intervals: dict[str, Any] | None = None,
) -> str:
    """The results (``meta``'s counts, ``results``' losses and metrics) in ``fmt``
    (``"table"``, ``"csv"`` or ``"json"``); ``extra`` (the per-class report) joins
    the JSON document, ``intervals`` (``--bootstrap``) each value."""
    rows: list[tuple[str, str, Any]] = [
        ("data", "n_samples", meta["n_samples"]),
        ("data", "n_classes", meta["n_classes"]),
    ]
    if "n_clipped" in meta:
        rows.append(("data", "n_clipped", meta["n_clipped"]))
    if "n_ignored" in meta:
        rows.append(("data", "n_ignored", meta["n_ignored"]))
    rows += [("loss", k, v) for k, v in results["losses"].items()]
    rows += [("metric", k, v) for k, v in results["metrics"].items()]
    if fmt == "json":  # strict JSON: an infinite nll (--eps 0) is the string "inf"
        doc = {**meta, **results, **(extra or {})}
        for group in ("losses", "metrics"):
            doc[group] = {
                k: v if math.isfinite(v) else repr(v) for k, v in doc[group].items()
            }
        if intervals is not None:
            doc["intervals"] = _json_intervals(intervals)
        return _json_text(doc) + "\n"
    if intervals is not None:
        return _render_with_intervals(fmt, rows, intervals, meta)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(("kind", "name", "value"))
        writer.writerows((kind, name, repr(value)) for kind, name, value in rows)
        return buf.getvalue()
    cells = [(kind, name, _short(value)) for kind, name, value in rows]
    widths = [
        max(len(c[i]) for c in [("kind", "name", "value"), *cells]) for i in range(3)
    ]
    out = []
    for kind, name, value in [("kind", "name", "value"), *cells]:
        out.append(
            f"{kind:<{widths[0]}}  {name:<{widths[1]}}  {value:>{widths[2]}}".rstrip()
        )
    return "\n".join(out) + "\n"


def _json_intervals(intervals: dict[str, Any]) -> dict[str, Any]:
    """The intervals as JSON: ``[low, high]`` or ``null``, per loss and metric,
    and per class and per-class metric under ``per_class``."""

    def span(v: Any) -> list[float] | None:
        return None if v is None else [float(v[0]), float(v[1])]

    out: dict[str, Any] = {}
    for group, ivs in intervals.items():
        if group == "per_class":
            out[group] = {
                name: {m: span(v) for m, v in per.items()} for name, per in ivs.items()
            }
        else:
            out[group] = {k: span(v) for k, v in ivs.items()}
    return out


# The containers whose every item is written compact, on one line: at C = 1000
# they hold a million confusion cells and thousands of per-class entries, which
# json's indented encoder (pure Python) would put one number a line, slowly.
_ONE_LINE_ITEMS = (
    ("confusion", "matrix"),
    ("per_class",),
    ("intervals", "losses"),
    ("intervals", "metrics"),
    ("intervals", "per_class"),
)


def _json_text(doc: dict[str, Any]) -> str:
    """``doc`` as indented JSON, each confusion row, per-class entry and interval
    on one line.

    The items of the `_ONE_LINE_ITEMS` containers are encoded apart, compact (the
    C encoder; a `CountRows` one row of its array at a time, as the text is put
    together), and put in place of placeholder strings in the indented rest.
    """
    items: list[Any] = []

    def placeholders(node: Any, path: tuple[str, ...], token: str) -> Any:
        def mark(item: Any) -> str:
            items.append(item)
            return f"{token}{len(items) - 1}"

        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            here = (*path, key)
            if here in _ONE_LINE_ITEMS and isinstance(value, CountRows):
                value = [mark(row) for row in value.matrix]  # views of the rows
            elif here in _ONE_LINE_ITEMS and isinstance(value, list):
                value = [mark(v) for v in value]
            elif here in _ONE_LINE_ITEMS and isinstance(value, dict):
                value = {k: mark(v) for k, v in value.items()}
            out[key] = placeholders(value, here, token)
        return out

    token = "@item-"
    while token in json.dumps(placeholders(doc, (), ""), allow_nan=False):
        token += "@"
    items.clear()
    text = json.dumps(placeholders(doc, (), token), indent=2, allow_nan=False)
    if not items:
        return text
    return re.sub(
        f'"{re.escape(token)}(\\d+)"', lambda m: _compact(items[int(m[1])]), text
    )


_ENCODER = json.JSONEncoder(allow_nan=False)
"""``json.dumps(item, allow_nan=False)``'s encoder, made once (``dumps`` makes
one a call when an option is given)."""

_SMALL = tuple(str(i) for i in range(1 << 10))
"""The JSON text of the integers below 1024, the most common counts."""


def _compact(item: Any) -> str:
    """One item as compact JSON, as ``json.dumps(item, allow_nan=False)`` writes
    it; a row of a `CountRows` as its list (a row of small counts from a table of
    their texts)."""
    if isinstance(item, np.ndarray):
        if (
            item.dtype.kind in "iu"
            and item.size
            and int(item.min()) >= 0
            and int(item.max()) < len(_SMALL)
        ):
            small = _SMALL
            return "[" + ", ".join([small[v] for v in item.tolist()]) + "]"
        item = item.tolist()
    return _ENCODER.encode(item)


def _render_with_intervals(
    fmt: str,
    rows: Sequence[tuple[str, str, Any]],
    intervals: dict[str, dict[str, tuple[float, float] | None]],
    meta: dict[str, Any],
) -> str:
    """The table or CSV of ``--bootstrap``: each value with its interval (CSV
    columns ``low`` and ``high``; the table's fourth column)."""
    spans = _interval_cells(rows, intervals)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(("kind", "name", "value", "low", "high"))
        for (kind, name, value), span in zip(rows, spans, strict=True):
            extra = ("", "") if span is None else (repr(span[0]), repr(span[1]))
            writer.writerow((kind, name, repr(value), *extra))
        return buf.getvalue()
    level = f"{100 * meta['bootstrap']['confidence']:g}% interval"
    head = ("kind", "name", "value", level)
    cells = [
        (kind, name, _short(value), "" if span is None else
         f"[{_short(span[0])}, {_short(span[1])}]")
        for (kind, name, value), span in zip(rows, spans, strict=True)
    ]  # fmt: skip
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(4)]
    out = []
    for a, b, c, d in [head, *cells]:
        line = f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d}"
        out.append(line.rstrip())
    return "\n".join(out) + "\n"


def _interval_cells(
    rows: Sequence[tuple[str, str, Any]],
    intervals: dict[str, dict[str, tuple[float, float] | None]],
) -> list[tuple[float, float] | None]:
    """Each row's bootstrap interval (``None`` for counts and values without
    one)."""
    groups = {"loss": intervals["losses"], "metric": intervals["metrics"]}
    return [
        groups[kind].get(name) if kind in groups else None for kind, name, _ in rows
    ]


def _short(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.8g}" if abs(value) >= 1e-4 or value == 0 else f"{value:.6e}"
