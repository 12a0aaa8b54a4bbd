"""The input files of ``arrayloss eval``: shards, their pairing and their sources.

SCORES (and LABELS, ``--weights``) may each name many files: a directory of shards
or a quoted glob pattern.  `pair_shards` lists them in natural order (``part-2``
before ``part-10``) and pairs them shard by shard; `ShardOpener` opens a shard's
files as `arrayloss.io.Source` readers, or reads only their headers
(`ShardOpener.inspect`), so that every row-count and class-count mismatch is found
before anything is computed (`check_shards`).  Both the streaming engine
(`arrayloss.cli._engine`) and ``--dask`` (`arrayloss.cli._dask_eval`) read shards
through this module.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from .._errors import DataError, UsageError

if TYPE_CHECKING:  # arrayloss.io is imported when a file is opened, not at --help
    from ..io import TableSpec

__all__ = [
    "Shard",
    "ShardInfo",
    "ShardOpener",
    "check_shards",
    "open_inputs",
    "pair_shards",
    "reordered",
    "shard_paths",
]


@dataclass(frozen=True)
class Shard:
    """The files of one shard: scores, and labels and weights where separate."""

    scores: str
    labels: str | None
    weights: str | None


@dataclass(frozen=True)
class ShardInfo:
    """What the headers of one shard's files say (for the checks and for --dask)."""

    shard: Shard
    scores_key: str | None
    scores_label: str
    labels_path: str
    labels_key: str | None
    labels_label: str
    weights_label: str | None
    n_rows: int | None
    n_cols: int | None  # None: a text file without a row (no header either)
    column_names: list[str] | None  # of the score columns, where a table names them
    dtype: Any
    labels_dtype: Any
    weights_dtype: Any
    label_categories: tuple[str, ...] | None = None  # a categorical label column's


def pair_shards(scores: str, labels: str | None, weights: str | None) -> list[Shard]:
    """The files of SCORES, LABELS and --weights, paired shard by shard.

    Raises `DataError` when a pattern matches nothing or the file counts differ.
    """
    from arrayloss.io import expand_paths

    score_files = expand_paths(scores, "scores")
    n = len(score_files)
    paired: list[list[str | None]] = []
    for spec, kind in ((labels, "labels"), (weights, "weights")):
        if spec is None:
            paired.append([None] * n)
            continue
        files = expand_paths(spec, kind)
        if len(files) != n:
            name = kind.upper() if kind != "weights" else "--weights"
            for path, found, what in (
                (scores, score_files, "SCORES"),
                (spec, files, name),
            ):  # a path that is not there (not a pattern): not a file count
                if found == [path] and path != "-" and not os.path.exists(path):
                    msg = f"cannot read {what} '{path}': No such file or directory"
                    raise DataError(msg)
            msg = (
                f"SCORES '{scores}' names {n} file{'s' * (n != 1)} but {name} "
                f"'{spec}' names {len(files)}; each shard needs its own {kind} file"
            )
            raise DataError(msg)
        paired.append(list(files))
    return [Shard(s, y, w) for s, y, w in zip(score_files, *paired, strict=True)]


def shard_paths(shards: Sequence[Shard]) -> list[str]:
    """Every file the shards read (for `Outputs`' input-as-output check)."""
    return [p for s in shards for p in (s.scores, s.labels, s.weights) if p]


def open_inputs(
    scores: str,
    labels: str | None,
    *,
    scores_key: str | None,
    labels_key: str | None,
    table: TableSpec,
    allow_empty: bool = False,
) -> tuple[Any, Any]:
    """The scores and labels `Source` of one shard (both closed on an error).

    ``allow_empty``: a text file without a row (zero bytes, or blank lines) is a
    source without rows and of no known width (a shard among others), not an
    error.

    ``table`` says how to read a table SCORES (and, for what applies to it, a
    table LABELS: `TableSpec.of_labels_file`); its ``label_column`` is a column
    of SCORES when there is no LABELS file, else of LABELS.  With ``table.soft``
    the labels are rows of class probabilities: a 2-D array, or the columns
    ``label_column`` selects (a column spec) of a table.
    """
    from arrayloss import io as alio
    from arrayloss._arrow import own_memory_pool
    from arrayloss.io._columns import _is_int
    from arrayloss.io._source import _describe

    own_memory_pool()  # the command line's process: it may set pyarrow's pool
    suffix = alio.check_suffix(scores, _describe("SCORES", scores))
    is_npy = suffix in (".npy", ".npz")
    is_arrow = suffix in alio.ARROW_SUFFIXES
    if table.score_columns is not None and is_npy:
        msg = "--score-columns picks columns of a table (CSV, Parquet, Feather), not of an .npy/.npz SCORES"
        raise UsageError(msg)
    if table.drop_columns and is_npy:  # it was ignored: every column was scores
        msg = "--drop-column leaves out columns of a table (CSV, Parquet, Feather), not of an .npy/.npz SCORES"
        raise UsageError(msg)
    _check_format_options(
        suffix, labels, scores_key=scores_key, labels_key=labels_key, table=table
    )
    source = scores if labels is None else labels  # where --label-column looks
    if table.label_column is not None and os.path.splitext(source)[1].lower() in (
        ".npy",
        ".npz",
    ):
        what = "SCORES" if labels is None else "LABELS"
        msg = (
            f"--label-column picks a column of a table {what} (CSV, Parquet, "
            f"Feather), not of an .npy/.npz {what} (an .npz array: --labels-key)"
        )
        raise UsageError(msg)
    if labels is None and not (suffix == ".npz" or (not is_npy and table.label_column)):
        msg = (
            "no labels: give a LABELS file, --label-column for a CSV SCORES, "
            "or an .npz SCORES holding a labels array"
        )
        raise UsageError(msg)
    one_table = labels is not None and not is_npy and table.score_columns is None
    if one_table and labels is not None and _same_file(scores, labels):
        msg = (
            f"LABELS '{labels}' is the SCORES file itself, whose label column "
            "would be read as a class score too: give --label-column without "
            "LABELS (or --score-columns)"
        )
        raise UsageError(msg)
    if labels is not None and suffix == ".npy" and _same_file(scores, labels):
        msg = (  # soft labels read so were the scores' own (their entropy), exit 0
            f"LABELS '{labels}' is the SCORES file itself: give the file of the "
            "true labels"
        )
        raise UsageError(msg)
    own = table.replace(label_column=table.label_column if labels is None else None)
    if is_npy:
        scores_src = alio.open_array(scores, "scores", key=scores_key)
        column = None
    elif is_arrow:
        from arrayloss._arrow import open_arrow

        scores_src, column = open_arrow(
            scores, _describe("SCORES", scores), "scores", own, with_labels=True
        )
    else:
        scores_src, column = alio.open_table(scores, own, allow_empty=allow_empty)
    kind = "soft" if table.soft else "labels"
    try:
        named = table.label_column if labels is not None and not table.soft else None
        if named is not None and _is_int(named):  # a number: a position in LABELS
            named = None
        if named is not None and named in (scores_src.column_names or ()):
            msg = (
                f"{scores_src.label} has a score column {named!r}, the name "
                "--label-column gives the labels of LABELS by: leave it out of the "
                f"scores with --drop-column {named}, or pick them with --score-columns"
            )
            raise DataError(msg)
        if labels is not None:
            label_spec = table.of_labels_file()
            header = alio.header_classes(scores_src.column_names, scores_src.n_cols)
            suffix = alio.check_suffix(labels, _describe("LABELS", labels))
            binary = suffix in (*alio.ARROW_SUFFIXES, ".npy", ".npz")
            if header is not None and not table.classes and not binary:
                # the class names a text labels file may hold: a first line of
                # another name above them is its header ("label")
                label_spec = label_spec.replace(classes=header)
            label_src = alio.open_array(
                labels, kind, key=labels_key, spec=label_spec,
                allow_empty=allow_empty,
            )  # fmt: skip
        elif column is not None:
            label_src = column
        else:
            # an .npz of one array: its member would be the labels too (as soft
            # labels, the scores' own probabilities), or fail as labels
            same = scores_src.label.replace("SCORES", "LABELS", 1)
            try:
                label_src = alio.open_array(scores, kind, key=labels_key)
            except DataError as exc:  # named as the file it is: SCORES
                if not str(exc).startswith(f"{same} "):
                    raise DataError(str(exc).replace("LABELS", "SCORES", 1)) from None
                label_src = None
            if label_src is None or label_src.label == same:
                if label_src is not None:
                    label_src.close()
                msg = (
                    f"{scores_src.label} would be both the scores and the labels: "
                    "give a LABELS file, or save the labels beside the scores "
                    "(np.savez(path, scores=..., labels=...))"
                )
                raise DataError(msg) from None
            label_src.label = label_src.label.replace("LABELS", "SCORES", 1)
    except BaseException:
        scores_src.close()
        raise
    return scores_src, label_src


def _format_name(suffix: str) -> str:
    """The format of a file by its suffix, with its article: ``"an .npz"``."""
    from arrayloss import io as alio

    if suffix in (".npy", ".npz"):
        return f"an {suffix}"
    if suffix in alio.ARROW_SUFFIXES:
        return "a Parquet" if suffix in (".parquet", ".pq") else "a Feather/Arrow"
    return "a CSV/TSV"


def _check_format_options(
    suffix: str,
    labels: str | None,
    *,
    scores_key: str | None,
    labels_key: str | None,
    table: TableSpec,
) -> None:
    """`UsageError` for a reading option given for inputs of a format it does not
    apply to (it would be ignored): ``--delimiter`` without a text SCORES or
    LABELS, ``--header``/``--no-header`` without a text SCORES, ``--scores-key``
    without an .npz SCORES, ``--labels-key`` without an .npz that holds the
    labels (LABELS, or SCORES when there is no LABELS file)."""
    from arrayloss import io as alio
    from arrayloss.io._source import _describe

    binary = (".npy", ".npz", *alio.ARROW_SUFFIXES)
    labels_suffix: str | None = suffix
    if labels is not None:
        try:
            labels_suffix = alio.check_suffix(labels, _describe("LABELS", labels))
        except DataError:  # reported when LABELS is opened, after SCORES
            labels_suffix = None
    if table.delimiter is not None and suffix in binary:
        formats = f"{_format_name(suffix)} SCORES"
        if labels_suffix in binary and labels is not None:
            formats += f" and {_format_name(labels_suffix)} LABELS"
        if labels is None or labels_suffix in binary:
            msg = f"--delimiter applies to CSV/TSV inputs, not to {formats}"
            raise UsageError(msg)
    if table.header is not None and suffix in binary:
        name = "--header" if table.header else "--no-header"
        msg = (
            f"{name} applies to a CSV/TSV SCORES, not to {_format_name(suffix)} SCORES"
        )
        raise UsageError(msg)
    if scores_key is not None and suffix != ".npz":
        msg = (
            "--scores-key picks an array of an .npz SCORES, not of "
            f"{_format_name(suffix)} SCORES"
        )
        raise UsageError(msg)
    if labels_key is not None and labels_suffix not in (".npz", None):
        which = "SCORES" if labels is None else "LABELS"
        msg = (
            f"--labels-key picks an array of an .npz {which}, not of "
            f"{_format_name(labels_suffix)} {which}"
        )
        if labels_suffix != ".npy":
            msg += " (the labels of a table: --label-column)"
        raise UsageError(msg)


def _same_file(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` name one file (``False`` for standard input
    or a path that cannot be looked at: reading it reports that)."""
    if "-" in (a, b):
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@dataclass
class ShardOpener:
    """Opens the sources of a shard with the command's reading options.

    ``allow_empty`` (a shard among others): a text file without a row is a shard
    without rows, which adds nothing (`open_inputs`), as a header-only one.
    """

    scores_key: str | None
    labels_key: str | None
    table: TableSpec
    allow_empty: bool = False

    def open(self, shard: Shard) -> tuple[Any, Any, Any]:
        """The (scores, labels, weights or None) sources of ``shard``."""
        from arrayloss import io as alio

        scores_src, label_src = open_inputs(
            shard.scores, shard.labels, scores_key=self.scores_key,
            labels_key=self.labels_key, table=self.table,
            allow_empty=self.allow_empty,
        )  # fmt: skip
        weights_src = None
        if shard.weights is not None:
            try:
                weights_src = alio.open_array(
                    shard.weights, "weights", allow_empty=self.allow_empty
                )
            except BaseException:
                scores_src.close()
                label_src.close()
                raise
        return scores_src, label_src, weights_src

    def each(
        self, shards: Sequence[Shard]
    ) -> Generator[tuple[Any, Any, Any], None, None]:
        """Each shard's sources in turn, each closed before the next is opened."""
        for shard in shards:
            sources = self.open(shard)
            try:
                yield sources
            finally:
                for src in sources:
                    if src is not None:
                        src.close()

    def inspect(self, shard: Shard, *, dask: bool) -> ShardInfo:
        """Open a shard's files, read their headers and close them."""
        if dask:
            for path, what in (
                (shard.scores, "SCORES"),
                (shard.labels, "LABELS"),
                (shard.weights, "--weights"),
            ):
                suffix = os.path.splitext(path or "")[1].lower()
                if path is not None and suffix not in (".npy", ".npz"):
                    msg = (
                        f"--dask reads .npy and .npz files; {what} '{path}' is not "
                        "one (convert it, or run without --dask: Parquet, Feather "
                        "and CSV files are streamed in bounded memory)"
                    )
                    raise click.BadParameter(msg, param_hint=["--dask"])
        scores_src, label_src, weights_src = self.open(shard)
        try:
            n_rows = scores_src.n_rows
            for other in (label_src, weights_src):
                known = other is not None and None not in (n_rows, other.n_rows)
                if known and n_rows != other.n_rows:
                    from arrayloss.io._aligned import transposed_hint

                    msg = f"{scores_src.label} has {n_rows} rows but {other.label} has {other.n_rows}"
                    raise DataError(msg + transposed_hint(scores_src, other))
            return ShardInfo(
                shard=shard,
                scores_key=self.scores_key,
                scores_label=scores_src.label,
                labels_path=shard.labels or shard.scores,
                labels_key=self.labels_key,
                labels_label=label_src.label,
                weights_label=None if weights_src is None else weights_src.label,
                n_rows=n_rows,
                n_cols=scores_src.n_cols,
                column_names=scores_src.column_names,
                dtype=getattr(scores_src, "dtype", None),
                labels_dtype=getattr(label_src, "dtype", None),
                weights_dtype=getattr(weights_src, "dtype", None),
                label_categories=getattr(label_src, "categories", None),
            )
        finally:
            for src in (scores_src, label_src, weights_src):
                if src is not None:
                    src.close()


def check_shards(infos: Sequence[ShardInfo]) -> ShardInfo:
    """The first shard of a known width (`DataError` when none has rows), after
    checking that every other shard of a known width has its class count (a text
    shard without a row has none to check)."""
    known = [info for info in infos if info.n_cols is not None]
    if not known:
        msg = f"SCORES: none of its {len(infos)} files has rows"
        raise DataError(msg)
    first = known[0]
    for info in known[1:]:
        if info.n_cols != first.n_cols:
            msg = f"{info.scores_label} has {info.n_cols} columns but {first.scores_label} has {first.n_cols}"
            raise DataError(msg)
        swapped = reordered(info.column_names, first.column_names)
        if swapped is not None:
            i, name, theirs = swapped
            msg = (
                f"{info.scores_label} names its score column {i} {name!r} but "
                f"{first.scores_label} names it {theirs!r}: the same names in "
                "another order"
            )
            raise DataError(msg)
    return first


def reordered(
    names: Sequence[str] | None, other: Sequence[str] | None
) -> tuple[int, str, str] | None:
    """Where ``names`` and ``other`` hold the same names in another order (the
    same columns, or classes, read by position as others): the first position
    that differs and the name of each there; else ``None`` (also when either is
    unknown)."""
    if names is None or other is None or list(names) == list(other):
        return None
    if sorted(names) != sorted(other):
        return None
    return next(
        (i, a, b) for i, (a, b) in enumerate(zip(names, other, strict=True)) if a != b
    )
