"""``arrayloss eval``: losses and metrics of a prediction file in one streaming pass.

This module is the command and its driver: its options, the usage checks, the
outputs, and the run (`_evaluate`: the files' tallies, then the results, which
`arrayloss.cli._render` lays out as a table, CSV or JSON).  The options that take
more than a plain value are parsed by the types of `arrayloss.cli._options`.  The
work is done by `arrayloss.cli._engine` (a chunk of
rows to exact tallies: the result equals the in-memory one at any chunk size, in
memory bounded by the chunk, except for ``ece:strategy=quantile``, which keeps
each sample's confidence, hit and weight, about 10 to 18 bytes a sample) and
`arrayloss.cli._shards` (directories and glob patterns of shards, paired in
natural order and checked shard by shard before anything is computed); with
``--dask`` the shards are evaluated on a cluster (`arrayloss.cli._dask_eval`) by
the same engine.

Every output file goes through `arrayloss.cli._output.Outputs`: a regular file is
replaced only when the whole run succeeds, a link is written through, a FIFO or
device is written directly, and an output that names an input or another output is
bad usage (exit 2) before anything is read.
"""

from __future__ import annotations

import errno
import itertools
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from .._errors import DataError, UsageError, blamed_line
from .._errors import one_line as _one_line
from ._bootstrap import MAX_SEED, BootstrapSpec, BootstrapTally
from ._engine import (
    MAX_ROUNDING,
    RENORMALIZE_TOLERANCE,
    ClipTally,
    IgnoreTally,
    LossTally,
    PerSampleWriter,
    ProbInput,
    Tallies,
    _shortened,
    backend_converter,
    chunk_rows,
    loss_value,
    stream,
)
from ._options import (
    ColumnSpec,
    Delimiter,
    Eps,
    Real,
    backend_option,
    check_loss_params,
    check_top_k,
    choice_option,
    format_option,
    format_spec,
    loss_option,
    parse_spec,
    top_k_option,
)
from ._output import STDOUT, Outputs
from ._render import render
from ._report import (
    AVERAGES,
    MAX_CLASSWISE_CELLS,
    MAX_REPORT_CLASSES,
    MAX_TABLE_CLASSES,
    REPORT_TALLIES,
    Report,
)
from ._report import report_usage as _report_usage
from ._shards import (
    Shard,
    ShardOpener,
    check_shards,
    pair_shards,
    reordered,
    shard_paths,
)

__all__ = ["eval_command"]

EXIT_CODES = (
    "Exit codes: 0 success; 1 bad data (a missing, unreadable, corrupt or truncated "
    "file, an unsupported file suffix, a ragged CSV, an unknown column, a missing "
    "value, files with different row counts, a label out of range, NaN "
    "or infinite scores, rows that are not probabilities, a loss that overflows, an "
    "unwritable output or a full disk, a pattern that matches no file, an unreachable "
    "Dask scheduler); 2 bad usage (an unknown option, loss, metric or parameter, a "
    "parameter out of range, an output that is an input or another output, an "
    "output name with another format's suffix, a backend, Dask or pyarrow that is "
    "not installed)."
)

METRIC_PARAMS: dict[str, dict[str, Any]] = {
    "accuracy": {},
    "top_k_accuracy": {"k": 5},
    "nll": {},
    "brier": {},
    "ece": {"n_bins": 15, "strategy": "uniform"},
    "mce": {"n_bins": 15, "strategy": "uniform"},
    "rmsce": {"n_bins": 15, "strategy": "uniform"},
}
DEFAULT_METRICS = ("accuracy", "top_k_accuracy", "nll", "brier", "ece")
MAX_ECE_BINS = 10_000
"""The most ECE bins ``--metric ece:n_bins=N`` takes: the exact streaming tally
keeps a fraction per bin and adds every bin per chunk, so its cost grows with the
bin count; 10,000 bins keep that well under the cost of reading the scores."""
DASK_HINT = "pip install 'arrayloss[dask]'"
MAX_REPLICATES = 10_000
"""The most ``--bootstrap`` replicates (each costs ~8 bytes per scalar and digit)."""

# scheme://anything, host:port or [ipv6]:port: what --dask takes as an address
_ADDRESS = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://\S+|[\w.-]+:\d+|\[[0-9A-Fa-f:.]+\]:\d+"
)


def _is_address(value: str) -> bool:
    """Whether ``value`` looks like a scheduler address rather than a file."""
    return _ADDRESS.fullmatch(value) is not None


def _is_table_name(value: str) -> bool:
    """Whether ``value`` names a per-class CSV/TSV file (``--per-class FILE``)."""
    return value.lower().endswith((".csv", ".tsv"))


class _EvalCommand(click.Command):
    """``--dask`` takes an optional value: it takes the next word only if that word
    looks like a scheduler address, so ``--dask shards/ labels/`` leaves both
    paths to SCORES and LABELS (click alone would read ``shards/`` as the address).
    ``--per-class`` likewise takes the next word only if it ends in ``.csv`` or
    ``.tsv`` (``--per-class=FILE`` takes any name).
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = list(args)
        for i, arg in enumerate(args):
            if arg == "--":
                break
            if arg == "--dask" and (i + 1 == len(args) or not _is_address(args[i + 1])):
                args[i] = "--dask="
            if arg == "--per-class" and (
                i + 1 == len(args) or not _is_table_name(args[i + 1])
            ):
                args[i] = "--per-class="
        return super().parse_args(ctx, args)


@click.command(
    "eval",
    cls=_EvalCommand,
    epilog=EXIT_CODES,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.argument("scores", required=False)
@click.argument("labels", required=False)
@click.option(
    "--example",
    is_flag=True,
    help="Evaluate the bundled example (2000 samples, 10 classes) instead of SCORES.",
)
@choice_option(
    "--input",
    "input_kind",
    choices=("logits", "probs", "logprobs"),
    help="What SCORES holds. Probabilities must be non-negative with rows summing "
    "to 1 (see --renormalize); nll and the losses see the logarithm of each "
    "probability clipped to [EPS, 1] (see --eps).",
)
@click.option(
    "--eps",
    "eps",
    default="auto",
    show_default=True,
    metavar="EPS|auto",
    type=Eps(),
    help="With --input probs or logprobs: probabilities are clipped to [EPS, 1] "
    "before the log, 0 <= EPS < 0.5. auto is the machine epsilon of the scores' "
    "dtype (2.2e-16 for float64, 1.2e-7 for float32), as sklearn.metrics.log_loss "
    "uses; 0 clips nothing, so a zero true-class probability makes nll inf (the "
    "losses read a zero as the dtype's smallest normal number). An EPS between 0 "
    "and that number (2.2e-308 for float64, 1.2e-38 for float32) is bad usage: "
    "it could not be the floor, and nll would not be sklearn's log_loss clipped "
    "at it. The samples clipped are counted (n_clipped), with a warning when they "
    "move nll by more than 1%.",
)
@click.option(
    "--renormalize",
    is_flag=True,
    help="With --input probs or logprobs (of SCORES) or --soft-labels (of "
    "LABELS): accept rows that sum to 1 only up to "
    "rounding and divide them by their sum: within "
    f"{RENORMALIZE_TOLERANCE:g}, or as far as rounding to the digits the row is "
    "written with can take it (%.3g: 0.005; %.3f: 0.0005 a class), at most "
    f"{MAX_ROUNDING:g}.",
)
@loss_option("losses", help="[default: cross_entropy]")
@click.option(
    "--metric",
    "metric_specs",
    multiple=True,
    metavar="NAME[:K=V,...]",
    help="accuracy, top_k_accuracy, nll, brier, ece[:n_bins=15,strategy=uniform|"
    f"quantile] (n_bins at most {MAX_ECE_BINS}), and mce, rmsce (maximum and "
    "RMS calibration error; the options of ece). Repeat for several. [default: "
    "accuracy, top_k_accuracy, nll, brier, ece]",
)
@top_k_option(
    many=True,
    help="The k of top_k_accuracy, e.g. 1,5 (a default k >= the class count is "
    "skipped; a k given above it is an error).",
)
@choice_option(
    "--reduction",
    choices=("mean", "sum"),
    help="How losses are reduced over samples (metrics are always means).",
)
@click.option(
    "--weights",
    "weights_path",
    metavar="FILE",
    help="Per-sample weights (.npy, .npz, or one column of text), same row count.",
)
@click.option(
    "--scores-key",
    metavar="KEY",
    help="The scores array of an .npz SCORES (bad usage for another format).",
)
@click.option(
    "--labels-key",
    metavar="KEY",
    help="The labels array of an .npz LABELS, or of an .npz SCORES without LABELS "
    "(bad usage for another format). [default: labels]",
)
@click.option(
    "--label-column",
    metavar="NAME|N",
    help="The label column of a CSV (header name or 0-based number): of SCORES when "
    "no LABELS file is given, else of LABELS.",
)
@click.option(
    "--classes",
    metavar="A,B,...|FILE",
    help="Class names in column order (a comma list or a file, one a line), for "
    "labels given as names (a Parquet/Feather categorical label column names them "
    "by its categories; without either, text labels that are the names of a "
    "table's score columns, as columns=clf.classes_ writes them, name the classes "
    "by those names). Boolean labels are the classes 0 (False) and 1 (True).",
)
@click.option(
    "--header/--no-header",
    default=None,
    help="Whether a CSV SCORES file starts with a header row. [default: guessed: "
    "a header if every field but a numbered label column is a name (no number, "
    "none empty but the last) and the next row is not, or if it is 0,1,2,... "
    "(pandas' numbered columns) above a row of fractions; a first row with one "
    "bad cell is data, reported by line and column]. Bad usage for another "
    "SCORES format.",
)
@click.option(
    "--delimiter",
    metavar="CHAR",
    type=Delimiter(),
    help="The field delimiter of CSV/TSV inputs: one character, or tab; ' ' for "
    "white-space-separated numbers (numpy.savetxt), a run of spaces being one; "
    "bad usage when neither SCORES nor LABELS is text. "
    "[default: sniffed from the first rows among , tab ; | and space]",
)
@click.option(
    "--drop-column",
    "drop_columns",
    multiple=True,
    metavar="SPEC",
    type=ColumnSpec(),
    help="Columns of a table SCORES that hold no scores, as --score-columns picks "
    "them (header names, 0-based numbers, ranges, patterns); repeat for several. "
    "[default: a leading index column, as pandas' df.to_csv() writes it (an "
    "unnamed first header field), is dropped, with --drop-column too]",
)
@click.option(
    "--score-columns",
    metavar="SPEC",
    type=ColumnSpec(),
    help="The score columns of a CSV/TSV, Parquet or Feather SCORES, in this order: "
    "a comma list of names or 0-based numbers, name ranges FIRST:LAST (both "
    "included, as pandas' .loc), number ranges I:J (J excluded, as .iloc) and glob "
    "patterns (prob_*). [default: every column but the label and index columns]",
)
@click.option(
    "--soft-labels",
    is_flag=True,
    help="LABELS (or the --label-column SPEC columns of SCORES) holds soft labels: "
    "one row of class probabilities per sample, summing to 1. Every loss that "
    "accepts soft labels uses them; the metrics use their arg-max class.",
)
@format_option(
    ("table", "json", "csv"), help="Output format (json and csv carry every digit)."
)
@click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    metavar="FILE",
    help="Write the results here instead of standard output (a regular file is "
    "replaced only when the run succeeds; a link is written through). A name "
    "ending in .json or .csv is written in that format when --format is not given; "
    "one ending in .npy, .parquet, .png or .gz is refused.",
)
@click.option(
    "--per-sample",
    metavar="FILE",
    help="Also write, per sample, its id (row in the whole input), predicted class "
    "(arg-max), confidence (top-label probability), p_true (true-class "
    "probability) and (unweighted) losses, one column per --loss: .npy (float64) "
    "or CSV/TSV with a header.",
)
@click.option(
    "--per-class",
    "per_class",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[FILE]",
    help="Add the per-class report: precision, recall, F1 and support (as "
    "sklearn.metrics.classification_report), per-class NLL and classwise ECE, with "
    "macro and weighted averages and classwise_ece (their mean) among the metrics. "
    f"Shown as a table up to {MAX_TABLE_CLASSES} classes; with FILE (.csv or .tsv; "
    "--per-class=FILE for .tab, .txt, .dat or no suffix) written there as a table "
    "(TSV for .tsv and .tab). Any class count, but at most "
    f"{MAX_CLASSWISE_CELLS:,} classes x ECE bins (the classwise ECE's sums: "
    "~1 GB at the limit).",
)
@click.option(
    "--confusion",
    is_flag=True,
    help="Add the confusion matrix (rows: true class, columns: predicted; weight "
    "sums with --weights; names from --classes): in JSON output, as a table up to "
    f"{MAX_TABLE_CLASSES} classes. --confusion takes at most "
    f"{MAX_REPORT_CLASSES} classes (the C x C matrix: ~3 GB at the limit; "
    "--per-class alone has no class limit).",
)
@click.option(
    "--plot",
    "plot",
    metavar="FILE.png",
    help="Draw a reliability diagram (accuracy per confidence bin against the "
    "diagonal, the confidence histogram beneath, ECE on the figure) and, with "
    "--confusion, the row-normalised confusion matrix as a second panel, to a PNG "
    "file. Needs matplotlib (pip install 'arrayloss[plot]').",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=None,
    metavar="ROWS",
    help="Rows per chunk, or with --dask per block (one task each). [default: "
    "65536, fewer for many classes (~512K scores); with --dask ~4M scores]",
)
@backend_option(
    help="Array library for the computation (torch uses CUDA when available; "
    "jax runs with float64 enabled).",
)
@click.option(
    "--dask",
    "dask_address",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[ADDRESS]",
    help="Evaluate the (.npy/.npz) files on a Dask cluster: the scheduler at "
    "ADDRESS (tcp://host:port or host:port), or without one a local cluster of "
    "--dask-workers processes, closed afterwards. Same numbers as without --dask. "
    f"Needs {DASK_HINT}.",
)
@click.option(
    "--dask-workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    metavar="N",
    help="Worker processes (one thread each) of the local cluster of --dask.",
)
@click.option(
    "--dask-timeout",
    type=Real(min=0, min_open=True),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to try to reach the --dask scheduler.",
)
@click.option(
    "--ignore-label",
    type=int,
    default=None,
    metavar="N",
    help="Samples whose label is N (e.g. -100, PyTorch's ignore_index) count for "
    "nothing in any loss or metric and are not range-checked; the report gives "
    "n_ignored, and --per-sample writes NaN for them.",
)
@click.option(
    "--bootstrap",
    "replicates",
    type=int,
    default=None,
    metavar="N",
    help="Percentile confidence intervals of every loss and metric (with "
    "--per-class, of each class's precision, recall and F1 too) from N Poisson "
    "bootstrap replicates, in the same pass (same at any --chunk-size and with "
    "--dask).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    metavar="S",
    help="The seed of --bootstrap's draws, 0 <= S < 2**64. [default: 0]",
)
@click.option(
    "--confidence",
    type=float,
    default=None,
    metavar="LEVEL",
    help="The level of --bootstrap's intervals, 0 < LEVEL < 1. [default: 0.95]",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def eval_command(ctx: click.Context, /, **opts: Any) -> None:
    """Losses and metrics of predicted SCORES against true LABELS.

    SCORES is an .npy, .npz (--scores-key), .csv/.tsv/.txt file (or .csv.gz, .bz2,
    .xz; delimiter sniffed:
    , tab ; | or spaces as numpy.savetxt writes them; a leading pandas index
    column dropped), a .parquet or
    .feather/.arrow file (needs pip install "arrayloss[io]"), or - for CSV on
    standard input; it holds one row of class scores per sample (in a table, the
    columns --score-columns picks).  LABELS holds the true classes, as integers or
    as names (--classes), in an .npy, .npz, text, Parquet or Feather file; it may
    instead be a column of a table SCORES (--label-column) or an array of an .npz
    SCORES (--labels-key, default 'labels').  With --soft-labels, LABELS (or the
    --label-column columns) holds one row of class probabilities per sample.

    SCORES may also be a directory of shards or a quoted glob pattern
    ('shards/part-*.npy'); LABELS (and --weights) then name as many files, paired
    in natural order (part-2 before part-10), with the row counts checked shard by
    shard.  The shards are read one after another, or on a Dask cluster with
    --dask (.npy/.npz only; not with --per-sample).

    --per-class, --confusion and --plot add the per-class report, the confusion
    matrix and a reliability diagram, from exact tallies too.

    The files are read in chunks and reduced to exact sufficient statistics, so the
    result equals the in-memory computation at any chunk size, in memory bounded
    by the chunk (except ece:strategy=quantile, which keeps ~10-18 bytes a sample,
    with --dask on this machine).

    \b
    Examples:
      arrayloss eval --example
      arrayloss eval logits.npy labels.npy --loss cross_entropy --loss hinge:margin=1
      arrayloss eval preds.csv --label-column label --input probs --format json
      arrayloss eval proba.csv labels.csv --input probs --eps 1e-15 --renormalize
      arrayloss eval preds.parquet --label-column y --score-columns 'prob_*'
      arrayloss eval student.npy teacher.npy --soft-labels --loss kl_divergence
      arrayloss eval scores.npz --metric ece:strategy=quantile --top-k 1,5
      arrayloss eval logits.npy labels.npy --per-class report.csv --confusion
      arrayloss eval proba.csv labels.csv --input probs --plot reliability.png
      arrayloss eval 'shards/logits-*.npy' 'shards/labels-*.npy' --dask
      arrayloss eval logits/ labels/ --dask tcp://scheduler:8786
    """
    try:
        _run(ctx, **opts)
    except (click.ClickException, DataError, UsageError):
        raise
    except ValueError as exc:  # the library's checks on the data, or a user's loss
        raise DataError(blamed_line(exc)) from None
    except MemoryError:
        msg = "out of memory (try a smaller --chunk-size)"
        raise DataError(msg) from None


# --------------------------------------------------------------------------- #
# The run
# --------------------------------------------------------------------------- #


def _run(
    ctx: click.Context,
    *,
    scores: str | None,
    labels: str | None,
    example: bool,
    input_kind: str,
    eps: float | None,
    renormalize: bool,
    losses: Sequence[tuple[str, dict[str, Any]]],
    metric_specs: Sequence[str],
    top_k: tuple[int, ...],
    reduction: str,
    weights_path: str | None,
    scores_key: str | None,
    labels_key: str | None,
    label_column: str | None,
    classes: str | None,
    header: bool | None,
    delimiter: str | None,
    drop_columns: tuple[str, ...],
    score_columns: str | None,
    soft_labels: bool,
    fmt: str,
    output: str,
    per_sample: str | None,
    per_class: str | None,
    confusion: bool,
    plot: str | None,
    chunk_size: int | None,
    backend: str,
    dask_address: str | None,
    dask_workers: int,
    dask_timeout: float,
    ignore_label: int | None,
    replicates: int | None,
    seed: int | None,
    confidence: float | None,
    quiet: bool,
) -> None:
    # -- usage: everything that needs no data ---------------------------------
    boot_spec = _bootstrap_spec(replicates, seed, confidence)
    if example:
        if scores is not None or labels is not None:
            msg = "--example takes no SCORES or LABELS"
            raise click.UsageError(msg)
        scores, labels = _example_paths()
    elif scores is None:
        msg = "missing SCORES (or use --example)"
        raise click.UsageError(msg)
    if scores == "-" and labels == "-":
        msg = "only one of SCORES and LABELS can be standard input"
        raise click.UsageError(msg)
    if weights_path == "-" and "-" in (scores, labels):  # it read what was left
        which = "SCORES" if scores == "-" else "LABELS"
        msg = f"only one of {which} and --weights can be standard input"
        raise click.UsageError(msg)
    if output == STDOUT and sys.stdout is None:  # run with >&-: click writes nothing
        msg = "standard output is closed: give -o FILE for the results"
        raise DataError(msg)
    if per_sample == STDOUT:
        msg = (
            "--per-sample needs a file name (a pipe or /dev/stdout is written directly)"
        )
        raise click.BadParameter(msg, param_hint=["--per-sample"])
    if per_sample is not None:
        _check_per_sample_suffix(per_sample)
    if label_column is not None and not label_column.strip():
        msg = "needs a column name or number (got an empty one)"
        raise click.BadParameter(msg, param_hint=["--label-column"])
    fmt = _output_format(ctx, fmt, output)
    if input_kind == "logits":
        for name, given in (("--eps", "eps"), ("--renormalize", "renormalize")):
            if (
                ctx.get_parameter_source(given)
                is not click.core.ParameterSource.DEFAULT
            ) and not (given == "renormalize" and soft_labels):
                also = " or --soft-labels" if given == "renormalize" else ""
                msg = f"{name} applies to --input probs or logprobs{also}, not logits"
                raise click.BadParameter(msg, param_hint=[name])
    report = _report_usage(per_class, confusion, plot)
    use_dask = dask_address is not None
    if use_dask:
        _check_dask_usage(scores, labels, weights_path, per_sample, backend)
        if soft_labels:
            msg = "--soft-labels is not available with --dask; run without --dask"
            raise click.BadParameter(msg, param_hint=["--dask"])
    ks_explicit = (
        ctx.get_parameter_source("top_k") is not click.core.ParameterSource.DEFAULT
    )
    metric_list = _parse_metrics(metric_specs or DEFAULT_METRICS)
    loss_list = list(losses) or [("cross_entropy", {})]
    if soft_labels:
        _check_soft_losses(loss_list)
        if ignore_label is not None:
            msg = "--ignore-label applies to class indices, not --soft-labels"
            raise UsageError(msg)
    to_backend = backend_converter(backend)
    from arrayloss.io import TableSpec

    class_names = _parse_classes(classes) if classes is not None else None
    table = TableSpec(
        label_column=label_column, score_columns=score_columns,
        drop_columns=drop_columns, soft=soft_labels, header=header,
        delimiter=delimiter, classes=class_names or (),
    )  # fmt: skip
    shards = pair_shards(scores, labels, weights_path)
    inputs = shard_paths(shards)
    if classes is not None and os.path.isfile(classes):
        inputs.append(classes)

    with Outputs(
        inputs=inputs, reads=_shard_reader(scores, labels, weights_path)
    ) as outputs:
        # Both outputs are claimed before anything is read: an output that is an
        # input, or two that name one file, are usage errors (exit 2).
        write_output = outputs.add(output, "--output")
        rows_to = None  # --per-sample: its name and the path to write it to
        if per_sample is not None:
            rows_to = (per_sample, outputs.add(per_sample, "--per-sample"))
        report.claim(outputs)
        if output != STDOUT:  # after the checks that an output is no input
            _check_output_suffix(output)
        text = _evaluate(
            _Inputs(scores, labels, weights_path, shards,
                    ShardOpener(scores_key, labels_key, table,
                                allow_empty=len(shards) > 1)),
            _Computation(
                input_kind=input_kind,
                prob=ProbInput(eps=eps, renormalize=renormalize),
                losses=loss_list, metrics=metric_list, ks=top_k,
                ks_explicit=ks_explicit, reduction=reduction,
                class_names=class_names, ignore_label=ignore_label,
                boot_spec=boot_spec, report=report,
            ),
            _Runner(
                backend=backend, to_backend=to_backend, chunk_size=chunk_size,
                quiet=quiet,
                dask=None if dask_address is None else
                _DaskCluster(dask_address, dask_workers, dask_timeout),
            ),
            fmt=fmt,
            per_sample=rows_to,
        )  # fmt: skip
        if output != STDOUT:
            _write_text(write_output, output, text)
    if output == STDOUT:
        _echo_results(text)


def _echo_results(text: str) -> None:
    """Print the results; a full disk or a closed descriptor behind standard output
    is a `DataError` naming it (a reader that went away stays quiet, as click has
    it)."""
    try:
        click.echo(text, nl=False)
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            raise
        msg = f"cannot write the results to standard output: {exc.strerror or exc}"
        raise DataError(msg) from None


def _shard_reader(
    scores: str, labels: str | None, weights: str | None
) -> Callable[[str], str | None]:
    """For `Outputs`: which of SCORES, LABELS and --weights, given as a directory
    or a glob pattern, would read a file written at a path (an output among the
    shards would be one more shard, with its row count, the next time)."""
    from arrayloss.io._paths import would_list

    specs = [
        (f"{name} '{spec}'", spec)
        for name, spec in (
            ("SCORES", scores),
            ("LABELS", labels),
            ("--weights", weights),
        )
        if spec is not None
    ]

    def reads(path: str) -> str | None:
        return next((name for name, spec in specs if would_list(spec, path)), None)

    return reads


_SUFFIX_FORMATS = {".json": "json", ".csv": "csv"}
"""The ``--format`` that an ``-o`` name's suffix says (as pandoc takes the output
format from the file's extension)."""


def _output_format(ctx: click.Context, fmt: str, output: str) -> str:
    """The format of the results: ``--format``, or when it is not given the one
    the suffix of ``-o`` says (`_SUFFIX_FORMATS`: ``eval.json`` is JSON), else the
    table; a ``--format`` that the suffix contradicts is bad usage (a table
    under ``eval.json`` would be a surprise to whatever reads it)."""
    said = _SUFFIX_FORMATS.get(os.path.splitext(output)[1].lower())
    if output == STDOUT or said is None:
        return fmt
    if ctx.get_parameter_source("fmt") is click.core.ParameterSource.DEFAULT:
        return said
    if fmt != said:
        msg = f"-o {output!r} is {said} by its suffix, not {fmt}"
        raise click.BadParameter(msg, param_hint=["--format"])
    return fmt


_NOT_TEXT = (".npy", ".npz", ".png", ".jpg", ".jpeg", ".pdf", ".svg", ".xlsx", ".xls")
"""Suffixes of files that are no text table (NumPy, images, documents,
spreadsheets): ``-o`` under them is bad usage (`_check_output_suffix`)."""


def _check_output_suffix(path: str) -> None:
    """Bad usage for an ``-o`` name whose suffix is a binary format's
    (``eval.npy``, ``eval.parquet``, ``eval.json.gz``, ``eval.png``, ``eval.pdf``,
    ``eval.xlsx``: `_NOT_TEXT`): the results
    are text, which its readers cannot open.  Any other name is written as it is
    (``eval.txt``, ``eval.log``, ``/dev/fd/3``)."""
    from arrayloss.io import ARROW_SUFFIXES
    from arrayloss.io._formats import COMPRESSION_SUFFIXES

    suffix = os.path.splitext(path)[1].lower()
    if suffix in (*_NOT_TEXT, *ARROW_SUFFIXES, *COMPRESSION_SUFFIXES):
        msg = (
            f"-o writes the results as text (--format table, json or csv); "
            f"{path!r} has the suffix {suffix!r}"
        )
        raise UsageError(msg)


def _check_per_sample_suffix(path: str) -> None:
    """Bad usage for a ``--per-sample`` name whose suffix is another format's
    (``rows.parquet`` would hold CSV): `PerSampleWriter` writes ``.npy``, TSV
    (``.tsv``, ``.tab``) and CSV (any other text suffix, or none: ``/dev/fd/3``)."""
    from arrayloss.io import TEXT_SUFFIXES

    suffix = os.path.splitext(path)[1]
    if suffix and suffix.lower() not in (".npy", *TEXT_SUFFIXES):
        msg = (
            f"--per-sample writes .npy or CSV/TSV ({', '.join(TEXT_SUFFIXES)}); "
            f"{path!r} has the suffix {suffix!r}"
        )
        raise UsageError(msg)


def _write_text(path: str, label: str, text: str) -> None:
    """Write the results to ``path`` (a temporary file, a FIFO or a device)."""
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        msg = f"cannot write --output '{label}': {exc.strerror or exc}"
        raise DataError(msg) from None


@dataclass(frozen=True)
class _Inputs:
    """The files of a run: as given, and paired shard by shard with their reader."""

    scores: str
    labels: str | None
    weights: str | None
    shards: Sequence[Shard]
    opener: ShardOpener


@dataclass(frozen=True)
class _Computation:
    """What a run computes: the scores' kind and how probabilities are read, the
    losses and metrics (and report) and their reduction, the class names, the
    ignored label and the bootstrap."""

    input_kind: str
    prob: ProbInput
    losses: Sequence[tuple[str, dict[str, Any]]]
    metrics: Sequence[tuple[str, dict[str, Any], bool]]
    ks: Sequence[int]
    ks_explicit: bool
    reduction: str
    class_names: tuple[str, ...] | None
    ignore_label: int | None
    boot_spec: BootstrapSpec | None
    report: Report

    def tallies(self, n_classes: int) -> Tallies:
        """Empty tallies of every loss, metric and extra, for ``n_classes``."""
        for name, params in self.losses:
            check_loss_params(name, params, n_classes)
        metrics = _metric_tallies(self.metrics, self.ks, self.ks_explicit, n_classes)
        metrics.update(self.report.tallies(n_classes, self.metrics))
        losses: dict[str, LossTally] = {}
        for name, params in self.losses:
            spec = format_spec(name, params)
            losses.setdefault(spec, LossTally(spec, name, params))
        boot = None
        if self.boot_spec is not None:
            boot = BootstrapTally(self.boot_spec, metrics, list(losses))
        ignored = None if self.ignore_label is None else IgnoreTally(self.ignore_label)
        return Tallies(metrics, losses, ClipTally(), ignored, boot)


@dataclass(frozen=True)
class _DaskCluster:
    """``--dask``: the scheduler's address (``""``: a local cluster of ``workers``)."""

    address: str
    workers: int
    timeout: float


@dataclass(frozen=True)
class _Runner:
    """Where and how a run computes: the backend, the chunk size, the progress
    bar, or a Dask cluster."""

    backend: str
    to_backend: Callable[[Any], Any]
    chunk_size: int | None
    quiet: bool
    dask: _DaskCluster | None


def _evaluate(
    inputs: _Inputs,
    what: _Computation,
    runner: _Runner,
    *,
    fmt: str,
    per_sample: tuple[str, str] | None,
) -> str:
    """Read, check and reduce every shard; the rendered results.

    ``per_sample`` is the ``--per-sample`` name and the path to write it to."""
    tallies, n_samples, n_classes, class_names = _tally(
        inputs, what, runner, per_sample
    )
    ignored = tallies.ignored
    if ignored is not None and n_samples and ignored.count == n_samples:
        msg = f"all {n_samples} samples have the ignored label {ignored.label} (--ignore-label)"
        raise DataError(msg)
    return _results(
        inputs, what, runner, tallies, n_samples, n_classes, fmt, class_names
    )


def _tally(
    inputs: _Inputs,
    what: _Computation,
    runner: _Runner,
    per_sample: tuple[str, str] | None,
) -> tuple[Tallies, int, int, tuple[str, ...] | None]:
    """Every shard reduced to tallies: the tallies, the sample and class counts,
    and the class names (--classes, or a categorical label column's)."""
    shards, opener, class_names = inputs.shards, inputs.opener, what.class_names
    use_dask = runner.dask is not None
    infos = widest = None
    if use_dask or len(shards) > 1:  # headers only: every mismatch before any work
        infos = [opener.inspect(shard, dask=use_dask) for shard in shards]
        widest = check_shards(infos)

    opened = opener.each(shards)
    try:
        first = None
        if not use_dask:
            first = next(opened)
        if widest is not None:  # the first shard of a known width
            n_classes, first_label = widest.n_cols, widest.scores_label
            column_names = widest.column_names
        else:
            assert first is not None
            n_classes, first_label = first[0].n_cols, first[0].label
            column_names = first[0].column_names
        assert n_classes is not None
        if n_classes == 0:
            msg = f"{first_label} has no classes (0 score columns)"
            raise DataError(msg)
        if n_classes == 1:  # one class: nothing to tell apart
            msg = (
                f"{first_label} has 1 score column; scores need one column per "
                "class, two or more (a binary classifier's probability of class 1 "
                "alone: save both columns, predict_proba(X))"
            )
            raise DataError(msg)
        if class_names is not None and len(class_names) != n_classes:
            msg = f"--classes lists {len(class_names)} names but {first_label} has {n_classes} columns"
            raise DataError(msg)
        names_from = "--classes"
        if class_names is None:  # a categorical label column names the classes
            class_names = _category_names(infos, first, n_classes, column_names)
            if class_names is not None and class_names == tuple(column_names or ()):
                names_from = (
                    f"the score columns' names ({_shortened(class_names)}), which "
                    "name the classes of the categorical labels (else give --classes)"
                )
        swapped = reordered(column_names, class_names)
        if swapped is not None:  # classes listed in another order than the columns
            i, name, theirs = swapped
            msg = (
                f"{first_label} names its score column {i} {name!r} but --classes "
                f"names it {theirs!r}: the same names in another order "
                "(--classes lists the classes in column order: reorder it, or pick "
                "the columns in its order with --score-columns)"
            )
            raise DataError(msg)
        if what.input_kind != "logits":  # every shard's dtype, before any work
            sources = infos if infos is not None else [first[0]] if first else []
            for src in sources:
                if getattr(src, "dtype", None) is not None:
                    what.prob.check_eps(src.dtype)
        tallies = what.tallies(n_classes)
        if runner.dask is not None:
            from ._dask_eval import cluster_client, evaluate_on_cluster

            assert infos is not None
            with cluster_client(
                runner.dask.address or None,
                n_workers=runner.dask.workers,
                timeout=runner.dask.timeout,
            ) as client:
                n_samples = evaluate_on_cluster(
                    client, infos, input_kind=what.input_kind, n_classes=n_classes,
                    class_names=class_names, tallies=tallies,
                    block_rows=runner.chunk_size, prob=what.prob,
                )  # fmt: skip
        else:
            assert first is not None
            writer = None
            if per_sample is not None:
                writer = PerSampleWriter(*per_sample, list(tallies.losses))
            from arrayloss.io import header_classes

            header = None if class_names else header_classes(column_names, n_classes)
            try:
                n_samples = stream(
                    itertools.chain([first], opened), len(shards),
                    input_kind=what.input_kind, n_classes=n_classes,
                    first_label=first_label, class_names=class_names,
                    chunk_rows=runner.chunk_size or chunk_rows(n_classes),
                    to_backend=runner.to_backend, tallies=tallies, writer=writer,
                    quiet=runner.quiet, prob=what.prob, header_names=header,
                    names_from=names_from,
                )  # fmt: skip
                class_names = class_names or tallies.header_classes
            except DataError as exc:
                msg = _names_hint(str(exc), class_names, column_names)
                if msg:
                    raise DataError(msg) from None
                raise
            finally:
                if writer is not None:
                    writer.close()
    finally:
        opened.close()
    return tallies, n_samples, n_classes, class_names


NEEDS_CLASSES = "for class names, give --classes"
"""How `arrayloss.io.label_indices` ends the error of a name label without
--classes."""


def _names_hint(
    msg: str, class_names: Sequence[str] | None, column_names: Sequence[str] | None
) -> str:
    """The message of a name label without --classes, in a table whose score
    columns are named by words (``columns=clf.classes_``): the label is not one
    of those names either (which name the classes when the first label is one
    of them); ``""`` for another message."""
    if class_names is not None or not column_names or not msg.endswith(NEEDS_CLASSES):
        return ""
    from arrayloss.io import header_classes

    if header_classes(column_names, len(column_names)) is None:
        return ""  # numbered columns name no classes
    head = msg[: -len(NEEDS_CLASSES)].rstrip("; ")
    return (
        f"{head}, nor one of the score columns' names ({_shortened(column_names)}), "
        "the class names of text labels without --classes; for other names, give "
        "--classes"
    )


def _category_names(
    infos: Sequence[Any] | None,
    first: tuple[Any, Any, Any] | None,
    n_classes: int,
    column_names: Sequence[str] | None,
) -> tuple[str, ...] | None:
    """The class names a categorical (dictionary) label column gives, the same in
    every shard (`DataError` when they differ or are not one a score column);
    ``None`` without one.  Categories among which are the score columns' own
    names, in any order and with others unused (``pd.Categorical(y)`` sorts
    them, and a filtered frame keeps them all), give the columns' names: the
    labels are then matched to the columns by name."""
    found: list[tuple[str, tuple[str, ...]]]
    if infos is not None:
        found = [
            (info.labels_label, info.label_categories)
            for info in infos
            if info.label_categories is not None
        ]
    else:
        assert first is not None
        found = []
        cats: tuple[str, ...] | None = getattr(first[1], "categories", None)
        if cats is not None:
            found = [(str(first[1].label), cats)]
    if not found:
        return None
    label, names = found[0]
    for other_label, other in found[1:]:
        if other != names:
            msg = (
                f"{other_label} has the label categories {list(other)} but {label} "
                f"has {list(names)}: they are the class names in column order, so "
                "every file needs the same (or give --classes)"
            )
            raise DataError(msg)
    if (
        column_names is not None
        and len(set(column_names)) == n_classes
        and set(column_names) <= set(names)
    ):  # pandas sorts categories, and keeps unused ones in a filtered frame
        return tuple(column_names)  # the labels are matched to them by name
    if len(set(names)) != len(names) or len(names) != n_classes:
        msg = (
            f"{label} is a categorical column of {len(names)} categories "
            f"{list(names)[:8]}{'...' if len(names) > 8 else ''}, but there are "
            f"{n_classes} score columns: name the classes with --classes"
        )
        raise DataError(msg)
    return names


def _results(
    inputs: _Inputs,
    what: _Computation,
    runner: _Runner,
    tallies: Tallies,
    n_samples: int,
    n_classes: int,
    fmt: str,
    class_names: Sequence[str] | None,
) -> str:
    """The losses, metrics, report and intervals of the tallies, rendered."""
    prob, reduction, report = what.prob, what.reduction, what.report
    clips, ignored, boot = tallies.clips, tallies.ignored, tallies.boot
    assert clips is not None
    results = {
        "losses": {
            spec: loss_value(t, reduction, n_samples)
            for spec, t in tallies.losses.items()
        },
        "metrics": {
            key: _metric_value(key, t)
            for key, t in tallies.metrics.items()
            if key not in REPORT_TALLIES
        },
    }
    if what.input_kind != "logits":
        _report_clipping(clips, prob, tallies.metrics, results["metrics"])
    elif tallies.probs_like:
        click.echo(tallies.probs_like, err=True)
    if what.input_kind == "logits":
        for warning in (tallies.index_like, tallies.label_like):
            if warning:
                click.echo(warning, err=True)
    meta: dict[str, Any] = {
        "scores": inputs.scores,
        "labels": inputs.labels,
        "weights": inputs.weights,
        "input": what.input_kind,
        "reduction": reduction,
        "backend": runner.backend,
        "n_samples": n_samples,
        "n_classes": n_classes,
    }
    if what.input_kind != "logits":
        meta["eps"] = clips.eps
        meta["n_clipped"] = clips.count
        meta["renormalize"] = prob.renormalize
    if ignored is not None:
        meta["ignore_label"] = ignored.label
        meta["n_ignored"] = ignored.count
    intervals: dict[str, Any] | None = None
    class_intervals = None
    if boot is not None:
        intervals = boot.intervals(reduction)
        class_intervals = boot.class_intervals()
        for group, values in results.items():  # no interval for an inf (--eps 0)
            for key, value in values.items():
                if not math.isfinite(value):
                    intervals[group][key] = None
        meta["bootstrap"] = {
            "replicates": boot.spec.replicates,
            "seed": boot.spec.seed,
            "confidence": boot.spec.confidence,
        }
    if len(inputs.shards) > 1:
        meta["n_files"] = len(inputs.shards)
    if runner.dask is not None:
        n = runner.dask.workers
        meta["dask"] = (
            runner.dask.address or f"local cluster ({n} worker{'s' * (n != 1)})"
        )
    names = list(class_names) if class_names else [str(i) for i in range(n_classes)]
    extra = report.results(
        tallies.metrics, names, results["metrics"], zero_is_inf=prob.eps == 0,
        class_intervals=class_intervals,
    )  # fmt: skip
    if intervals is not None and class_intervals is not None:
        intervals["per_class"] = {
            name: {m: spans[i] for m, spans in class_intervals.items()}
            for i, name in enumerate([*names, *AVERAGES])
        }
    return render(fmt, meta, results, extra, intervals) + report.render(fmt, extra)


def _bootstrap_spec(
    replicates: int | None, seed: int | None, confidence: float | None
) -> BootstrapSpec | None:
    """``--bootstrap``, ``--seed`` and ``--confidence``, checked (bad usage is a
    `UsageError`, one line, exit 2)."""
    if replicates is None:
        for name, value in (("--seed", seed), ("--confidence", confidence)):
            if value is not None:
                msg = f"{name} applies to --bootstrap N, which is not given"
                raise UsageError(msg)
        return None
    if replicates < 1:
        msg = f"--bootstrap takes a number of replicates >= 1 (got {replicates})"
        raise UsageError(msg)
    if replicates > MAX_REPLICATES:
        msg = (
            f"--bootstrap takes at most {MAX_REPLICATES} replicates (got {replicates})"
        )
        raise UsageError(msg)
    seed = 0 if seed is None else seed
    if not 0 <= seed <= MAX_SEED:
        msg = f"--seed must be in [0, 2**64) (got {seed})"
        raise UsageError(msg)
    confidence = 0.95 if confidence is None else confidence
    if not 0 < confidence < 1:
        msg = f"--confidence must be strictly between 0 and 1 (got {confidence!r})"
        raise UsageError(msg)
    return BootstrapSpec(replicates, seed, confidence)


def _report_clipping(
    clips: ClipTally,
    prob: ProbInput,
    tallies: dict[str, Any],
    values: dict[str, float],
) -> None:
    """Make an unclipped ``inf`` NLL visible (``--eps 0``), and warn on standard
    error when clipping moved the NLL by more than 1 %."""
    from arrayloss.metrics import NLL

    if clips.count == 0:
        return
    for key, tally in tallies.items():
        if not isinstance(tally, NLL) or tally.weight == 0:
            continue
        if prob.eps == 0:
            if clips.infinite:
                values[key] = math.inf
                click.echo(
                    f"warning: {clips.count} sample(s) have a true-class probability "
                    f"of 0, so {key} is inf (--eps clips them); the losses, which need "
                    "finite logarithms, read each zero as the dtype's smallest normal "
                    "number",
                    err=True,
                )
            continue
        clipped = values[key]
        if clips.infinite:
            change = "from inf"
        else:
            unclipped = float((tally.total + clips.moved) / tally.weight)
            if clipped == 0 or abs(unclipped - clipped) <= 0.01 * abs(clipped):
                continue
            change = f"by {100 * (unclipped - clipped) / clipped:.3g}% (from {unclipped:.6g})"
        click.echo(
            f"warning: clipping {clips.count} true-class probabilities to eps="
            f"{clips.eps:.3g} moved {key} {change} to {clipped:.6g}",
            err=True,
        )


def _batch_wide_soft() -> set[str]:
    """The losses whose soft-label conversion looks at the whole batch
    (``Kernel.batch_wide_soft``): streamed, their value would depend on the chunk."""
    import sys

    from arrayloss._api import Kernel

    return {
        v.name
        for mod in list(sys.modules.values())
        if getattr(mod, "__name__", "").startswith("arrayloss.losses.")
        for v in vars(mod).values()
        if isinstance(v, Kernel) and v.batch_wide_soft
    }


def _check_soft_losses(loss_list: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Bad usage for a loss that takes class indices only, or whose soft-label
    conversion looks at the whole batch (its result would depend on the chunk)."""
    from arrayloss._registry import get_loss

    batch_wide = _batch_wide_soft()
    for name, _ in loss_list:
        if name in batch_wide:
            msg = (
                f"loss {name!r} converts soft labels batch-wide, so its value would "
                "depend on --chunk-size; it is not available with --soft-labels"
            )
            raise click.BadParameter(msg, param_hint=["--soft-labels"])
        if "soft" not in get_loss(name).targets.split("|"):
            msg = (
                f"loss {name!r} takes class indices, not soft labels "
                "(`arrayloss list` shows each loss's targets)"
            )
            raise click.BadParameter(msg, param_hint=["--soft-labels"])


def _metric_value(key: str, tally: Any) -> float:
    """A tally's finite result; `DataError` when it is beyond the float64 range."""
    try:
        value = float(tally.result())
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        msg = f"metric {key!r} is {value!r}: it exceeds the float64 range for these scores"
        raise DataError(msg)
    return value


# --------------------------------------------------------------------------- #
# Usage
# --------------------------------------------------------------------------- #


def _check_dask_usage(
    scores: str,
    labels: str | None,
    weights: str | None,
    per_sample: str | None,
    backend: str,
) -> None:
    """The usage errors of --dask, before any data or cluster is touched."""
    if "-" in (scores, labels, weights):
        msg = "--dask reads files, not standard input"
        raise click.BadParameter(msg, param_hint=["--dask"])
    if per_sample is not None:
        msg = (
            "--per-sample is not available with --dask (it would gather every row on "
            "this machine); run without --dask"
        )
        raise click.BadParameter(msg, param_hint=["--dask"])
    if backend != "numpy":
        msg = f"--dask computes with NumPy on the workers; drop --backend {backend}"
        raise click.BadParameter(msg, param_hint=["--dask"])
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        msg = f"Dask is not installed ({DASK_HINT}): {_one_line(exc)}"
        raise click.BadParameter(msg, param_hint=["--dask"]) from None


def _example_paths() -> tuple[str, str]:
    from importlib.resources import files

    data = files("arrayloss") / "data"
    return str(data / "example_logits.npy"), str(data / "example_labels.npy")


def _parse_classes(value: str) -> tuple[str, ...]:
    from arrayloss.io import classes_from

    try:
        names = classes_from(value)
    except OSError as exc:
        msg = f"cannot read {value!r}: {exc.strerror or exc}"
        raise click.BadParameter(msg, param_hint=["--classes"]) from None
    if not names or any(not n for n in names):
        msg = f"empty class name in {value!r}"
        raise click.BadParameter(msg, param_hint=["--classes"])
    if len(names) == 1 and not os.path.isfile(value):  # a file name mistyped
        what = "is a directory" if os.path.isdir(value) else "is no file"
        msg = (
            f"{value!r} {what}, and one class name cannot name two or more score "
            "columns: give the names as A,B,... or a file of one name a line"
        )
        raise click.BadParameter(msg, param_hint=["--classes"])
    seen = set()
    for n in names:
        if n in seen:
            msg = f"class {n!r} is listed twice"
            raise click.BadParameter(msg, param_hint=["--classes"])
        seen.add(n)
    return names


def _parse_metrics(specs: Sequence[str]) -> list[tuple[str, dict[str, Any], bool]]:
    """(name, params, k given explicitly) for each --metric."""
    out = []
    for spec in specs:
        try:
            name, params = parse_spec(spec, METRIC_PARAMS, what="metric")
        except click.BadParameter as exc:
            exc.param_hint = ["--metric"]
            raise
        n_bins = params.get("n_bins")
        if isinstance(n_bins, int) and n_bins > MAX_ECE_BINS:
            msg = f"{spec!r}: `n_bins` must be at most {MAX_ECE_BINS} (got {n_bins})"
            raise click.BadParameter(msg, param_hint=["--metric"])
        out.append((name, params, "k" in params))
    return out


def _metric_tallies(
    metric_list: Sequence[tuple[str, dict[str, Any], bool]],
    ks: Sequence[int],
    ks_explicit: bool,
    n_classes: int,
) -> dict[str, Any]:
    from arrayloss.metrics import METRICS

    tallies: dict[str, Any] = {}
    for name, params, has_k in metric_list:
        if name == "top_k_accuracy":
            chosen = [params["k"]] if has_k else list(ks)
            if not has_k and not ks_explicit:
                chosen = [k for k in chosen if k < n_classes]
            else:  # asked for: a k above the classes is refused
                for k in chosen:
                    check_top_k(
                        k, n_classes, "the scores",
                        param_hint="'--metric'" if has_k else "'--top-k'",
                    )  # fmt: skip
            for k in chosen:
                tallies.setdefault(
                    f"top_{k}_accuracy", _make_tally(METRICS, name, {"k": k})
                )
            continue
        key = format_spec(name, params)
        tallies.setdefault(key, _make_tally(METRICS, name, params))
    return tallies


def _make_tally(catalogue: Any, name: str, params: dict[str, Any]) -> Any:
    try:
        return catalogue[name](**params)
    except (TypeError, ValueError) as exc:
        msg = f"{format_spec(name, params)!r}: {exc}"
        raise click.BadParameter(msg, param_hint=["--metric"]) from None
