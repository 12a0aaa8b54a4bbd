"""The results of ``arrayloss eval`` as text: a table, CSV or JSON.

`render` lays out the data counts, losses and metrics (with ``--bootstrap``, each
with its interval: the table's fourth column, CSV columns ``low`` and ``high``,
JSON ``intervals``).  JSON is strict: an infinite value (``--eps 0``) is the string
``"inf"``, and each row of a confusion matrix is one line.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["render"]


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


def _json_text(doc: dict[str, Any]) -> str:
    """``doc`` as indented JSON, each row of the confusion matrix on one line.

    json's indented encoder is pure Python, ~1 s for the million cells at
    ``C = 1000``, and puts each cell on a line of its own; the rows are encoded
    apart, compact (its C encoder), and put in place of a placeholder string.
    """
    confusion = doc.get("confusion")
    if not isinstance(confusion, dict) or not confusion.get("matrix"):
        return json.dumps(doc, indent=2, allow_nan=False)
    rows = confusion["matrix"]
    rest = {**doc, "confusion": {**confusion, "matrix": []}}
    token = "@row-"
    while token in json.dumps(rest, allow_nan=False):
        token += "@"
    rest["confusion"]["matrix"] = [f"{token}{i}" for i in range(len(rows))]
    text = json.dumps(rest, indent=2, allow_nan=False)
    lines = [json.dumps(row, allow_nan=False) for row in rows]
    return re.sub(f'"{re.escape(token)}(\\d+)"', lambda m: lines[int(m[1])], text)


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
