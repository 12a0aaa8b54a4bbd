"""The report options of ``arrayloss eval``: ``--per-class``, ``--confusion``, ``--plot``.

Each adds an exact tally (`arrayloss.metrics.ClassReport`,
`arrayloss.metrics.Reliability`) to the scalar metrics' tallies, so the chunk
engine and ``--dask`` compute them by the same code and the results do not depend
on ``--chunk-size`` or on the cluster.  This module turns the finished tallies
into the report: JSON fields, the terminal tables (only up to `MAX_TABLE_CLASSES`
classes, else a line that says where the numbers are), the ``--per-class FILE``
table (with ``--bootstrap``, each class's intervals as ``METRIC_low`` and
``METRIC_high`` columns) and the ``--plot`` figure, both written through
`arrayloss.cli._output.Outputs` (atomic: replaced only when the run succeeds).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from typing import Any

import click
import numpy as np

from .._errors import DataError, UsageError, printable
from ._output import STDOUT, Outputs
from ._render import CountRows, spreadsheet_safe

__all__ = [
    "MAX_CLASSWISE_CELLS",
    "MAX_REPORT_CLASSES",
    "MAX_TABLE_CLASSES",
    "REPORT_TALLIES",
    "Report",
    "report_usage",
]

MAX_TABLE_CLASSES = 20
"""The most classes whose per-class report and confusion matrix the table shows."""

MAX_REPORT_CLASSES = 10_000
"""The most classes ``--confusion`` takes: it keeps the exact ``C x C`` confusion
matrix, about 25 bytes a cell (30 with ``--weights``) while the run lasts, so
10,000 classes need about 3 GB; more is a `UsageError` (exit 2) before anything
is allocated.  ``--per-class`` alone has no class limit: its precision, recall, F1
and support come from ``3 C`` sums (``ClassReport(matrix=False)``), its NLL and
classwise ECE from ``C`` and ``C x n_bins`` (at most `MAX_CLASSWISE_CELLS`)."""

_BYTES_PER_CELL = 25

MAX_CLASSWISE_CELLS = 20_000_000
"""The most classes x bins ``--per-class`` takes: its classwise ECE keeps exact
sums for each class and bin of the first equal-width ``ece`` (15 by default),
about 52 bytes a pair while the run lasts, so the limit is about 1 GB (1,000,000
classes at 15 bins; 5,000 classes at 10,000 bins, 2.6 GB, are refused); more is
a `UsageError` (exit 2) before anything is allocated."""

_BYTES_PER_CLASSWISE_CELL = 52

REPORT_TALLIES = ("per-class report", "reliability diagram")
"""The keys of the report's tallies among the metric tallies (not scalars)."""

PER_CLASS_COLUMNS = ("precision", "recall", "f1-score", "support", "nll", "ece")
AVERAGES = ("macro avg", "weighted avg")
DEFAULT_BINS = 15


def report_usage(per_class: str | None, confusion: bool, plot: str | None) -> Report:
    """The report asked for, after the usage checks that need no data."""
    if per_class == STDOUT:
        msg = (
            "--per-class needs a file name (a pipe or /dev/stdout is written directly)"
        )
        raise click.BadParameter(msg, param_hint=["--per-class"])
    if per_class:
        _check_table_suffix(per_class)
    if plot is not None:
        if plot == STDOUT:
            msg = "--plot needs a file name"
            raise click.BadParameter(msg, param_hint=["--plot"])
        suffix = os.path.splitext(plot)[1]
        if suffix and suffix.lower() != ".png":  # none: /dev/fd/3, a pipe
            msg = f"--plot writes a PNG file; {plot!r} has the suffix {suffix!r} (name it .png)"
            raise UsageError(msg)
        from ._plot import require_matplotlib

        require_matplotlib()
    return Report(per_class=per_class, confusion=confusion, plot=plot)


def _check_table_suffix(path: str) -> None:
    """Bad usage for a ``--per-class FILE`` whose suffix is another format's
    (``report.json`` or ``report.parquet`` would hold CSV): the table is TSV
    under ``.tsv`` and ``.tab``, else CSV (a text suffix, or none: a pipe)."""
    from arrayloss.io import TEXT_SUFFIXES

    suffix = os.path.splitext(path)[1]
    if suffix and suffix.lower() not in TEXT_SUFFIXES:
        msg = (
            f"--per-class writes a CSV/TSV table ({', '.join(TEXT_SUFFIXES)}); "
            f"{path!r} has the suffix {suffix!r}"
        )
        if suffix.lower() == ".json":
            msg += " (--format json holds the per-class report, as per_class)"
        raise UsageError(msg)


def _table_delimiter(path: str) -> str:
    """The ``--per-class FILE`` delimiter: tab for ``.tsv`` and ``.tab`` (as
    ``--per-sample`` writes them and the readers read them), else comma."""
    return "\t" if os.path.splitext(path)[1].lower() in (".tsv", ".tab") else ","


class Report:
    """What ``--per-class``, ``--confusion`` and ``--plot`` ask for, and their files."""

    def __init__(self, *, per_class: str | None, confusion: bool, plot: str | None):
        self.per_class = per_class  # None: off; "": on, no file; else the file
        self.confusion = confusion
        self.plot = plot
        self._write_table: str | None = None
        self._write_plot: str | None = None

    @property
    def classes(self) -> bool:
        """Whether the per-class tally is needed."""
        return self.per_class is not None or self.confusion

    def claim(self, outputs: Outputs) -> None:
        """Register the report's files with the command's outputs (before any
        reading: an output that is an input is a usage error)."""
        if self.per_class:
            self._write_table = outputs.add(self.per_class, "--per-class")
        if self.plot is not None:
            self._write_plot = outputs.add(self.plot, "--plot")

    def tallies(
        self, n_classes: int, metric_list: Sequence[tuple[str, dict[str, Any], bool]]
    ) -> dict[str, Any]:
        """The empty tallies to stream, keyed by `REPORT_TALLIES`."""
        from arrayloss.metrics import ClassReport, Reliability

        n_bins = _bins(metric_list)
        out: dict[str, Any] = {}
        if self.classes:
            if self.confusion:
                self._check_size(n_classes)
            if self.per_class is not None:
                _check_classwise_size(n_classes, n_bins)
            out[REPORT_TALLIES[0]] = ClassReport(
                n_classes,
                n_bins,
                calibration=self.per_class is not None,
                matrix=self.confusion,
            )
        if self.plot is not None:
            out[REPORT_TALLIES[1]] = Reliability(n_bins)
        return out

    def _check_size(self, n_classes: int) -> None:
        """A `UsageError` when the ``C x C`` confusion matrix of ``n_classes``
        classes (``--confusion``) is beyond `MAX_REPORT_CLASSES` (before it is
        allocated)."""
        if n_classes <= MAX_REPORT_CLASSES:
            return
        need = max(1.0, _BYTES_PER_CELL * n_classes * n_classes / 1e9)
        alone = (
            " (--per-class alone has no class limit)"
            if self.per_class is not None
            else ""
        )
        msg = (
            f"--confusion with {n_classes} classes would keep a {n_classes} x "
            f"{n_classes} confusion matrix (about {need:,.0f} GB); --confusion "
            f"takes at most {MAX_REPORT_CLASSES} classes{alone}"
        )
        raise UsageError(msg)

    def results(
        self,
        tallies: dict[str, Any],
        names: list[str],
        metrics: dict[str, float],
        *,
        zero_is_inf: bool = False,
        class_intervals: dict[str, list[tuple[float, float] | None]] | None = None,
    ) -> dict[str, Any]:
        """The report's JSON fields (adding ``classwise_ece`` to ``metrics``), and
        its files written.  ``zero_is_inf``: ``--eps 0``, a zero true-class
        probability makes its class's NLL ``inf``, as it makes ``nll``.
        ``class_intervals`` (``--bootstrap``): per metric of
        `arrayloss.cli._bootstrap.CLASS_METRICS`, each class's interval, written
        as ``METRIC_low`` and ``METRIC_high`` columns of the ``--per-class``
        table."""
        extra: dict[str, Any] = {}
        matrix: np.ndarray | None = None
        if self.classes:
            tally = tallies[REPORT_TALLIES[0]]
            if self.confusion:
                matrix = tally.confusion()
            if self.per_class is not None:
                per_class = tally.result(names, zero_is_inf=zero_is_inf)
                metrics["classwise_ece"] = per_class.pop("classwise_ece")
                per_class.pop("accuracy")
                for row in per_class.values():  # strict JSON: an inf NLL is "inf"
                    if row.get("nll") == math.inf:
                        row["nll"] = "inf"
                extra["per_class"] = per_class
            if matrix is not None:
                extra["confusion"] = {"classes": names, "matrix": CountRows(matrix)}
        if self.plot is not None:
            diagram = tallies[REPORT_TALLIES[1]].result()
            extra["reliability"] = diagram
            from ._plot import write_plot

            assert self._write_plot is not None
            heat = None
            if self.confusion and matrix is not None:
                heat = (matrix, names)
            write_plot(self._write_plot, self.plot, diagram, heat)
        if self._write_table is not None:
            assert self.per_class
            text = _per_class_csv(
                extra["per_class"],
                delimiter=_table_delimiter(self.per_class),
                intervals=class_intervals,
            )
            _write(self._write_table, self.per_class, text)
        return extra

    def render(self, fmt: str, extra: dict[str, Any]) -> str:
        """The report's part of a table or CSV output (JSON carries ``extra``)."""
        if fmt == "json" or not extra:
            return ""
        if fmt == "csv":
            return _csv_rows(extra)
        out = []
        per_class = extra.get("per_class")
        if per_class is not None:
            n = len(per_class) - len(AVERAGES)
            if self.per_class:
                out.append(f"per-class report ({n} classes): {self.per_class}")
            elif n <= MAX_TABLE_CLASSES:
                out.append(_per_class_table(per_class))
            else:
                out.append(
                    f"per-class report ({n} classes): too wide for the table; use "
                    "--per-class FILE.csv or --format json"
                )
        confusion = extra.get("confusion")
        if confusion is not None:
            n = len(confusion["classes"])
            if n <= MAX_TABLE_CLASSES:
                out.append(_confusion_table(confusion["classes"], confusion["matrix"]))
            else:
                out.append(
                    f"confusion matrix ({n} x {n}): too wide for the table; use "
                    "--format json"
                )
        if self.plot is not None:
            out.append(f"reliability diagram: {self.plot}")
        return "".join("\n" + block.rstrip("\n") + "\n" for block in out)


def _check_classwise_size(n_classes: int, n_bins: int) -> None:
    """A `UsageError` when the classwise ECE sums of ``--per-class``, ``n_classes``
    x ``n_bins``, are beyond `MAX_CLASSWISE_CELLS` (before they are allocated)."""
    cells = n_classes * n_bins
    if cells <= MAX_CLASSWISE_CELLS:
        return
    need = _BYTES_PER_CLASSWISE_CELL * cells / 1e9
    msg = (
        f"--per-class with {n_classes} classes and {n_bins} ECE bins would keep "
        f"{n_classes} x {n_bins} classwise calibration sums (about {need:,.1f} GB); "
        f"--per-class takes at most {MAX_CLASSWISE_CELLS:,} classes x bins: give "
        "fewer bins (--metric ece:n_bins=N)"
    )
    raise UsageError(msg)


def _bins(metric_list: Sequence[tuple[str, dict[str, Any], bool]]) -> int:
    """The bins of the first equal-width ``ece`` asked for (else 15)."""
    for name, params, _ in metric_list:
        if name == "ece" and params.get("strategy", "uniform") == "uniform":
            return int(params.get("n_bins", DEFAULT_BINS))
    return DEFAULT_BINS


def _write(path: str, label: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    except OSError as exc:
        msg = f"cannot write --per-class '{label}': {exc.strerror or exc}"
        raise DataError(msg) from None


def _cell(value: Any, *, digits: bool) -> str:
    """A report value as text: every digit (``repr``) or 6 significant ones."""
    if value is None:
        return ""
    if isinstance(value, (int, str)):
        return str(value)
    return repr(value) if digits else f"{value:.6g}"


def _per_class_csv(
    per_class: dict[str, dict[str, Any]],
    *,
    delimiter: str,
    intervals: dict[str, list[tuple[float, float] | None]] | None = None,
) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    spans = list(intervals or {})
    writer.writerow(
        (
            "class",
            *PER_CLASS_COLUMNS,
            *(f"{m}_{end}" for m in spans for end in ("low", "high")),
        )
    )
    for i, (name, row) in enumerate(per_class.items()):
        cells = [_cell(row.get(k), digits=True) for k in PER_CLASS_COLUMNS]
        for m in spans:
            assert intervals is not None
            at = intervals[m]
            span = at[i] if i < len(at) else None  # the averages have none
            cells += ["", ""] if span is None else [repr(span[0]), repr(span[1])]
        writer.writerow((spreadsheet_safe(name), *cells))
    return buf.getvalue()


def _csv_rows(extra: dict[str, Any]) -> str:
    """``kind,name,value`` rows: ``per_class:FIELD,CLASS,value`` and the non-zero
    cells of the confusion matrix as ``confusion:TRUE,PREDICTED,value`` (a class
    name a spreadsheet would run as a formula behind an apostrophe:
    `spreadsheet_safe`; the ``kind`` cell starts with its word, so stays safe)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for name, row in extra.get("per_class", {}).items():
        for k in PER_CLASS_COLUMNS:
            if row.get(k) is not None:
                writer.writerow(
                    (
                        f"per_class:{k}",
                        spreadsheet_safe(name),
                        _cell(row[k], digits=True),
                    )
                )
    confusion = extra.get("confusion")
    if confusion is not None:
        names = confusion["classes"]
        for t, cells in zip(names, confusion["matrix"], strict=True):
            for p, value in zip(names, cells, strict=True):
                if value:
                    cell = _cell(value, digits=True)
                    writer.writerow((f"confusion:{t}", spreadsheet_safe(p), cell))
    return buf.getvalue()


def _aligned(rows: list[list[str]], right_from: int = 1) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [
            c.ljust(w) if i < right_from else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _per_class_table(per_class: dict[str, dict[str, Any]]) -> str:
    rows = [["class", *PER_CLASS_COLUMNS]]
    for name, row in per_class.items():  # a --classes name, escaped for the terminal
        cells = (_cell(row.get(k), digits=False) or "-" for k in PER_CLASS_COLUMNS)
        rows.append([printable(name), *cells])
    return _aligned(rows)


def _confusion_table(names: list[str], matrix: list[list[Any]]) -> str:
    shown = [printable(name) for name in names]  # --classes names, for the terminal
    rows = [["true \\ predicted", *shown]]
    for name, cells in zip(shown, matrix, strict=True):
        rows.append([name, *(_cell(v, digits=False) for v in cells)])
    return _aligned(rows)
