"""`TableSpec`: how to read a table, one value for every reader of tables."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["TableSpec"]


@dataclass(frozen=True)
class TableSpec:
    """Which columns of a table hold what, and how its text is laid out.

    One value describes a table to every reader of tables: delimited text
    (`arrayloss.io.open_table`), Parquet and Feather (``arrayloss._arrow``) and
    `arrayloss.io.open_array` for either; ``arrayloss eval`` builds it once from its
    options.  Each reader uses the fields that apply to its format.

    Attributes
    ----------
    label_column : str or None
        The label column, a header name or a 0-based number; with ``soft``, a
        column spec (`arrayloss.io.select_columns`) of the soft-label columns.
        ``None``: the table holds no labels (a file of labels alone has one
        column).
    score_columns : str or None
        A column spec of the score columns, in that order. ``None``: every column
        but the label, dropped and index columns.
    drop_columns : tuple of str
        Columns (header names or 0-based numbers) that hold no scores; a leading
        pandas index column of text is dropped as well.
    soft : bool
        The label columns hold soft labels (rows of class probabilities).
    header : bool or None
        Text only: whether the first row is a header; ``None`` guesses it.
    delimiter : str or None
        Text only: the field delimiter; ``None`` sniffs it.
    classes : tuple of str
        Class names, for text labels given as names (a row of them is data, not
        a header).
    """

    label_column: str | None = None
    score_columns: str | None = None
    drop_columns: tuple[str, ...] = ()
    soft: bool = False
    header: bool | None = None
    delimiter: str | None = None
    classes: tuple[str, ...] = ()

    def of_labels_file(self) -> TableSpec:
        """The spec of a separate LABELS file: its label column, class names and
        delimiter (the header, score and dropped columns describe SCORES)."""
        return TableSpec(
            label_column=self.label_column,
            delimiter=self.delimiter,
            classes=self.classes,
        )

    def replace(self, **changes: Any) -> TableSpec:
        """A copy with ``changes`` (`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)
