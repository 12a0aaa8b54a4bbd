"""Column specs: which columns of a table a ``--score-columns``,
``--label-column`` or ``--drop-column`` value selects (by name, number, range or
glob pattern)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .._errors import DataError

__all__ = ["check_column_spec", "column_spec_needs_names", "select_columns"]


def _unique_index(name: str, header: Sequence[str], label: str) -> int:
    """The column of ``header`` named ``name`` (there is one), or a `DataError`
    when several are: which one is meant is not known."""
    found = [i for i, n in enumerate(header) if n == name]
    if len(found) > 1:
        numbers = ", ".join(map(str, found))
        msg = (
            f"{label} has {len(found)} columns named {name!r} (columns {numbers}); "
            "give the one meant by its 0-based number"
        )
        raise DataError(msg)
    return found[0]


def _column_index(name: str, header: list[str] | None, width: int, label: str) -> int:
    if header is not None and name in header:
        return _unique_index(name, header, label)
    try:
        i = int(name)
    except ValueError:
        msg = f"{label} has no column named {name!r} {_where(header)}"
        if header is not None and len(header) == 1 and name in header[0].split():
            msg += (  # a header of names between spaces: delimited text not sniffed
                "; for columns separated by white space, give --delimiter ' '"
            )
        raise DataError(msg) from None
    if not -width <= i < width:
        msg = f"{label} has {width} columns; column {i} is out of range"
        raise DataError(msg)
    return i % width


def _where(header: Sequence[str] | None, most: int = 12) -> str:
    """``(columns: a, b, ...)``, at most ``most`` of them, for a message."""
    if not header:
        return "(it has no header row)"
    names = list(header[:most])
    more = f", ... ({len(header)} in all)" if len(header) > most else ""
    return f"(columns: {', '.join(names)}{more})"


def _is_int(s: str) -> bool:
    return bool(re.fullmatch(r"[+-]?\d+", s.strip()))


def column_spec_needs_names(spec: str) -> bool:
    """Whether a column spec (`select_columns`) names columns rather than
    numbering them, so that the file needs a header row."""
    for item in spec.split(","):
        parts = item.split(":") if ":" in item and not _is_glob(item) else [item]
        if any(p.strip() and not _is_int(p) for p in parts):
            return True
    return False


def _is_glob(item: str) -> bool:
    return any(c in item for c in "*?[")


def check_column_spec(spec: str) -> str | None:
    """Why ``spec`` is not a column spec (`select_columns`), or ``None``."""
    items = spec.split(",")
    for item in items:
        if not item.strip():
            return f"{spec!r} has an empty column name"
        if not _is_glob(item) and item.count(":") > 1:
            return f"{item!r} is not a range (give it as FIRST:LAST or I:J)"
    return None


def select_columns(
    spec: str,
    header: Sequence[str] | None,
    width: int,
    label: str,
    *,
    option: str = "--score-columns",
) -> list[int]:
    """The 0-based column numbers a column spec selects, in the order it lists them.

    ``spec`` is a comma-separated list of items, each one of

    * ``NAME``: the column of that header name, or ``N`` a 0-based number (a name
      takes precedence, as for ``--label-column``);
    * ``FIRST:LAST``: the columns from name ``FIRST`` to name ``LAST``, both
      included (as pandas' ``.loc``);
    * ``I:J``: the columns numbered ``I`` to ``J - 1`` (as pandas' ``.iloc`` and a
      Python slice; either end may be left out or negative);
    * a glob pattern (``prob_*``, ``p?``, ``[ab]*``): the named columns it
      matches, in the file's order.

    An item that is a column's whole name is that column, whatever it holds
    (``p[1]`` is the column ``p[1]``, not the pattern that matches ``p1``).

    A column that is not there, a range whose ends are the wrong way round, a
    pattern that matches nothing or a column selected twice is a `DataError`
    naming it and ``option``.
    """
    import fnmatch

    names = list(header) if header is not None else None
    out: list[int] = []
    for raw in spec.split(","):
        item = raw.strip()
        if names is not None and item in names:  # a name, not a pattern or range
            got = [_unique_index(item, names, label)]
        elif _is_glob(item):
            if names is None:
                msg = f"{label}: {option} pattern {item!r} needs a header row"
                raise DataError(msg)
            got = [i for i, n in enumerate(names) if fnmatch.fnmatchcase(n, item)]
            if not got:
                msg = f"{label}: no column matches the {option} pattern {item!r} {_where(names)}"
                raise DataError(msg)
        elif ":" in item:
            lo, hi = (p.strip() for p in item.split(":"))
            if names is not None and lo in names and hi in names:
                a, b = _unique_index(lo, names, label), _unique_index(hi, names, label)
                if a > b:
                    msg = f"{label}: the {option} range {item!r} runs backwards ({lo!r} comes after {hi!r})"
                    raise DataError(msg)
                got = list(range(a, b + 1))
            elif all(not p or _is_int(p) for p in (lo, hi)):
                got = list(range(width))[
                    slice(int(lo) if lo else None, int(hi) if hi else None)
                ]
                if not got:
                    msg = f"{label} has {width} columns; the {option} range {item!r} selects none"
                    raise DataError(msg)
            else:
                bad = lo if names is None or lo not in names else hi
                msg = f"{label} has no column named {bad!r} (in the {option} range {item!r}) {_where(names)}"
                raise DataError(msg)
        else:
            try:
                got = [_column_index(item, names, width, label)]
            except DataError as exc:
                msg = f"{exc} (in {option})"
                raise DataError(msg) from None
        for i in got:
            if i in out:
                name = names[i] if names is not None else str(i)
                msg = f"{label}: column {name!r} is selected twice by {option}"
                raise DataError(msg)
            out.append(i)
    return out
