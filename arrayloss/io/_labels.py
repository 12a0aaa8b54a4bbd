"""Labels: class names, integer class indices checked against the class count,
and soft labels checked to be distributions."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._errors import DataError
from ._text import BOOL_TEXT, _is_number

__all__ = ["classes_from", "header_classes", "label_indices", "soft_label_rows"]


def classes_from(value: str) -> tuple[str, ...]:
    """Class names from ``a,b,c`` or from a file with one name a line."""
    if os.path.isfile(value):
        with open(value, encoding="utf-8-sig") as f:
            try:
                names = [line.strip() for line in f]
            except UnicodeDecodeError as exc:
                from ._text import _not_utf8

                raise _not_utf8(value, f"--classes '{value}'", exc) from None
        return tuple(n for n in names if n)
    return tuple(n.strip() for n in value.split(","))


def header_classes(
    column_names: Sequence[str] | None, n_classes: int | None
) -> tuple[str, ...] | None:
    """The score columns' names when they can name the classes of name labels
    without ``--classes`` (``pd.DataFrame(clf.predict_proba(X),
    columns=clf.classes_)``): ``n_classes`` distinct names, none empty, none a
    number (columns ``0``, ``1``, ... or ``1``, ``2``, ...: the labels stay class
    indices) and none ``True``/``False`` (boolean labels stay the classes 0 and
    1); else ``None``."""
    if column_names is None or len(column_names) != n_classes:
        return None
    names = tuple(str(name) for name in column_names)
    if len(set(names)) != len(names):
        return None
    for name in names:
        text = name.strip()
        if not text or _is_number(text):
            return None
        if text.lower() in BOOL_TEXT:
            return None
    return names


def header_names_apply(raw: np.ndarray, names: Sequence[str]) -> bool:
    """Whether the labels ``raw`` (the first rows read) are read as the score
    columns' names `header_classes` gives: text labels, the first of them one
    of ``names`` (the first label decides, whatever the chunk size)."""
    if raw.dtype.kind not in "US" or not raw.size:
        return False
    first = raw.reshape(-1)[0]
    text = first.decode() if isinstance(first, bytes) else str(first)
    return text.strip() in names


class LabelRangeError(DataError):
    """A class index out of range (`label_indices`): the first such ``value`` of
    a batch, at ``index`` in it (``row`` in the file), for ``n_classes``.

    `one_based` gives the message that says the labels look 1-based when the
    value is ``n_classes`` and no label before it is 0."""

    def __init__(
        self, msg: str, *, value: Any, index: int, row: int, n_classes: int
    ) -> None:
        super().__init__(msg)
        self.base = msg
        self.value = value
        self.index = index
        self.row = row
        self.n_classes = n_classes
        self.zero_before = False

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled whole (a Dask worker's error comes back to the client)."""
        kw = {"value": self.value, "index": self.index, "row": self.row}
        return (
            _range_error,
            (str(self), kw, self.n_classes, self.base, self.zero_before),
        )

    def one_based(self, zero_before: bool) -> LabelRangeError:
        """This error, its message saying that the labels look 1-based unless a
        label 0 came before its row (``zero_before``) or the value is not the
        class count."""
        c = self.n_classes
        msg = self.base
        if self.value == c and not zero_before:
            msg += (
                f"; the labels look 1-based (up to this row they run from 1 to {c}, "
                "as R and MATLAB number classes): give 0-based class indices, "
                "subtracting 1 from each label (eval never shifts them)"
            )
        out = LabelRangeError(
            msg, value=self.value, index=self.index, row=self.row, n_classes=c
        )
        out.base, out.zero_before = self.base, zero_before
        return out


def _range_error(
    msg: str, kw: dict[str, Any], n_classes: int, base: str, zero_before: bool
) -> LabelRangeError:
    """A `LabelRangeError` unpickled (`LabelRangeError.__reduce__`)."""
    out = LabelRangeError(msg, n_classes=n_classes, **kw)
    out.base, out.zero_before = base, zero_before
    return out


def label_indices(
    raw: np.ndarray,
    *,
    n_classes: int,
    classes: Sequence[str] | None,
    start: int,
    label: str,
    names_from: str = "--classes",
    header: Sequence[str] | None = None,
) -> np.ndarray:
    """Integer class indices (int64) from integer, integral-float, boolean or
    name labels.

    Booleans are the classes 0 (``False``) and 1 (``True``), the order of
    scikit-learn's ``classes_`` (so ``predict_proba``'s columns); without
    ``classes``, so are the texts ``True`` and ``False`` (any case), as pandas
    writes a boolean column.  ``start`` is the row number of ``raw[0]`` in the
    file, for messages.  ``names_from``: where ``classes`` come from, for
    messages (``--classes``, or the score columns' names of `header_classes`,
    which every text label must then be one of).  ``header``: the score
    columns' names that were not taken as the classes (the first label was a
    class index), for the message of a label that is one of them.
    """
    kind = raw.dtype.kind
    if kind == "b":
        return raw.astype(np.int64)
    if kind in "US":
        values = raw.astype(str) if kind == "S" else raw
        checked = _names_to_indices(
            values, classes, start, label, n_classes, names_from, header
        )
    elif kind in "iuf":
        checked = raw
        if kind == "f":
            bad = ~np.isfinite(raw) | (raw != np.round(raw))
            if bad.any():
                i = int(np.argmax(bad))
                msg = f"{label} row {start + i}: {raw[i].item()!r} is not an integer class index"
                raise DataError(msg)
        if classes and _numeric_names(classes):  # numbers name the classes
            return _numbers_to_indices(raw, classes, start, label)
    else:
        msg = f"{label} has dtype {raw.dtype}, which cannot hold class indices"
        raise DataError(msg)
    # Compared in the labels' own dtype, before any cast: 2**64 - 1 stays itself
    # and 1e300 is not wrapped into int64.
    outside = (checked < 0) | (checked >= n_classes)
    if outside.any():
        i = int(np.argmax(outside))
        value = checked[i].item()
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**64:
            value = int(value)
        msg = (
            f"{label} row {start + i}: label {value} is out of range for "
            f"{n_classes} classes (0 to {n_classes - 1})"
        )
        raise LabelRangeError(
            msg, value=value, index=i, row=start + i, n_classes=n_classes
        ).one_based(zero_before=bool((checked[:i] == 0).any()))
    return checked.astype(np.int64)


def soft_label_rows(
    raw: np.ndarray,
    *,
    n_classes: int,
    dtype: Any,
    start: int,
    label: str,
    renormalize: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Soft labels (rows of class probabilities) in ``dtype``, and the arg-max
    class of each row (int64; the first on ties), or a `DataError` naming the row.

    A row must be finite, non-negative and sum to 1 within ``sqrt(eps)`` of the
    coarser of its dtype and ``dtype`` (the tolerance the losses apply).  With
    ``renormalize``, rows that sum to 1 up to the rounding of their digits
    (``0.33,0.33,0.33``: `arrayloss._rounding.renormalized`, the rule of
    ``--renormalize`` for scores) are divided by their sum first.  ``start`` is
    the row number of ``raw[0]`` in the file, for messages.
    """
    from .._rounding import beyond_rounding, renormalized, rounding_tolerance

    if raw.ndim != 2 or raw.shape[1] != n_classes:
        width = raw.shape[1] if raw.ndim == 2 else 1
        msg = f"{label} has {width} soft-label columns but the scores have {n_classes} classes"
        raise DataError(msg)
    if raw.dtype.kind not in "biuf":
        msg = f"{label} has dtype {raw.dtype}, which cannot hold soft labels"
        raise DataError(msg)
    soft = raw.astype(dtype)
    if not soft.shape[0]:
        return soft, np.empty(0, dtype=np.int64)
    eps = max(
        float(np.finfo(dtype).eps),
        float(np.finfo(np.result_type(raw.dtype, np.float16)).eps),
    )
    tol = math.sqrt(eps)
    with np.errstate(all="ignore"):
        bad_value = ~np.isfinite(soft).all(axis=1) | (soft < 0).any(axis=1)
    if bad_value.any():
        i = int(np.argmax(bad_value))
        msg = f"{label} row {start + i}: soft labels must be finite and non-negative (found {soft[i].min().item()!r})"
        raise DataError(msg)
    if renormalize:
        soft = renormalized(soft, "probs")
    with np.errstate(all="ignore"):  # a sum beyond float64 is inf: refused
        total = np.asarray(np.sum(soft, axis=1, dtype=np.float64))
    off = np.abs(total - 1) > tol
    if off.any():
        i = int(np.argmax(off))
        digits = float(rounding_tolerance(soft[i : i + 1], "probs")[0])
        if renormalize:
            why = f"{beyond_rounding(digits)} (--renormalize)"
        else:
            why = f"not 1 (tolerance {tol:.1g})"
            if abs(total[i] - 1) <= digits:  # where --renormalize would help
                why += (
                    "; for rows that sum to 1 only up to rounding (this one's "
                    f"digits explain {digits:.3g}), add --renormalize"
                )
        msg = f"{label} row {start + i}: soft labels sum to {total[i]:.10g}, {why}"
        raise DataError(msg)
    return soft, np.argmax(soft, axis=1).astype(np.int64)


def _text_index(name: str) -> int | None:
    """The class index a label's text gives, as `label_indices` reads it: an
    integral number (``2``, ``2.0``, ``2e0``), else ``None`` (for ``1_0`` and
    ``١`` too: `_is_number`)."""
    if not _is_number(name):
        return None
    value = float(name)
    return int(value) if value.is_integer() else None


def text_labels_equal(
    values: np.ndarray, label: int, classes: Sequence[str] | None
) -> np.ndarray:
    """Which text labels are the class index ``label`` (``--ignore-label``): the
    text of ``label`` itself, or a label other than a class name whose number is
    ``label``, as `label_indices` reads it (``-100.0``, as pandas writes a float
    column)."""
    stripped = np.char.strip(values)
    uniq, inverse = np.unique(stripped, return_inverse=True)
    names = set(classes or ())
    hit = np.array(
        [
            name == str(label) or (name not in names and _text_index(name) == label)
            for name in uniq.tolist()
        ],
        dtype=bool,
    )
    return np.asarray(hit[inverse.reshape(-1)]) if len(uniq) else hit


def _numeric_names(classes: Sequence[str]) -> bool:
    """Whether the class names are numbers other than their own index (``1,2,3``;
    ``-1,1``): a number label is then a class name, never an index."""
    return any(_text_index(c) not in (None, i) for i, c in enumerate(classes))


def _numbers_to_indices(
    raw: np.ndarray, classes: Sequence[str], start: int, label: str
) -> np.ndarray:
    """Integer(-valued) labels read as the numeric class names they equal (as
    the same labels written as text are read)."""
    lookup: dict[int, int] = {}
    for i, name in enumerate(classes):
        number = _text_index(name)
        if number is not None:
            lookup.setdefault(number, i)
    uniq, inverse = np.unique(raw, return_inverse=True)
    mapped = np.empty(len(uniq), dtype=np.int64)
    for j, value in enumerate(uniq.tolist()):
        index = lookup.get(int(value))
        if index is None:
            i = int(np.argmax(raw == value))
            shown = int(value)
            msg = (
                f"{label} row {start + i}: {shown} is not one of the --classes (they "
                "are numbers, so a number label is a class name, not a class index)"
            )
            raise DataError(msg)
        mapped[j] = index
    out: np.ndarray = mapped[inverse.reshape(-1)]
    return out


def _names_to_indices(
    values: np.ndarray,
    classes: Sequence[str] | None,
    start: int,
    label: str,
    n_classes: int,
    names_from: str = "--classes",
    header: Sequence[str] | None = None,
) -> np.ndarray:
    uniq, inverse = np.unique(values, return_inverse=True)
    lookup = {name: i for i, name in enumerate(classes or ())}
    by_header = bool(lookup) and names_from != "--classes"
    # class names that are numbers other than their own index: a number label is
    # a name, never an index (``1`` names class 0 of --classes 1,2,3; a ``0``
    # beside it is no class); names 0,1,2 in order read either way alike
    numeric = _numeric_names(list(lookup))
    mapped = np.empty(len(uniq), dtype=np.int64)
    unknown: list[str] = []
    big: list[str] = []
    for j, name in enumerate(uniq.tolist()):
        if name in lookup:
            mapped[j] = lookup[name]
            continue
        index = None if numeric or by_header else _text_index(name)
        if index is None and not lookup:
            index = BOOL_TEXT.get(name.strip().lower())
        if index is None:
            unknown.append(name)
            continue
        if not -(2**63) <= index < 2**63:  # out of range, reported below as itself
            big.append(name)
            continue
        mapped[j] = index
    if unknown:
        i = int(np.argmax(np.isin(values, unknown)))  # the first such row
        name = str(values[i])
        if not name.strip():
            msg = f"{label} row {start + i}: a missing label (an empty cell)"
        elif by_header:
            msg = f"{label} row {start + i}: {name!r} is not one of {names_from}"
        elif classes:
            msg = f"{label} row {start + i}: {name!r} is not one of the --classes"
            if numeric and _text_index(name) is not None:
                msg += (
                    " (they are numbers, so a number label is a class name, "
                    "not a class index)"
                )
        elif header and name.strip() in header:
            msg = (
                f"{label} row {start + i}: {name!r} is a score column's name, but "
                "the first label is a class index, not a name: give every label "
                "as a name or every one as an index"
            )
        elif _is_number(name) and math.isnan(float(name)):
            msg = f"{label} row {start + i}: a missing label ({name.strip()!r})"
        elif _is_number(name):  # 1.5: a number, never a name
            msg = f"{label} row {start + i}: {name.strip()!r} is not an integer class index"
        else:
            msg = (
                f"{label} row {start + i}: {name!r} is not a class index; "
                "for class names, give --classes"
            )
        raise DataError(msg)
    if big:
        i = int(np.argmax(np.isin(values, big)))
        msg = (
            f"{label} row {start + i}: label {values[i]} is out of range for "
            f"{n_classes} classes (0 to {n_classes - 1})"
        )
        raise DataError(msg)
    return mapped[inverse.reshape(-1)]
