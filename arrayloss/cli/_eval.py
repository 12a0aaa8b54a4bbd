"""``arrayloss eval``: losses and metrics of a prediction file in one streaming pass.

The file is read in chunks of rows.  Each chunk is checked on the host (finite
scores, probabilities that are probabilities, labels in range, weights finite and
non-negative, each problem reported with its row), moved to the chosen backend,
and reduced to exact sufficient statistics (`arrayloss.metrics` tallies: float64
sums per chunk, exact fractions across chunks).  The result therefore equals the
in-memory one whatever the chunk size, and memory stays bounded by the chunk,
except for ``ece:strategy=quantile``, which keeps each sample's confidence, hit and
weight (about 10 to 18 bytes a sample) because its bin edges are quantiles of all
of them.

SCORES (and LABELS, --weights) may name many files: a directory of shards or a
quoted glob pattern.  The files are paired in natural order (``part-2`` before
``part-10``), their row counts checked shard by shard before anything is computed,
and streamed one after another, which gives the numbers of the concatenated file.
With ``--dask`` the shards become Dask arrays evaluated on a cluster
(`arrayloss.cli._dask_eval`): the same loss and metric code runs on each block and
the same exact tallies are merged in a tree.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import os
import re
import sys
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import click

from .._errors import one_line as _one_line
from ._options import (
    LOSS,
    LOSS_HELP,
    check_loss_params,
    format_spec,
    parse_int_list,
    parse_spec,
)

__all__ = ["eval_command"]

EXIT_CODES = (
    "Exit codes: 0 success; 1 bad data (a missing, unreadable or truncated file, a "
    "ragged CSV, files with different row counts, a label out of range, NaN or "
    "infinite scores, rows that are not probabilities, an unwritable output, a "
    "pattern that matches no file, an unreachable Dask scheduler); 2 bad usage (an "
    "unknown option, loss, metric or parameter, a parameter out of range, a backend "
    "or Dask that is not installed)."
)

METRIC_PARAMS: dict[str, dict[str, Any]] = {
    "accuracy": {},
    "top_k_accuracy": {"k": 5},
    "nll": {},
    "brier": {},
    "ece": {"n_bins": 15, "strategy": "uniform"},
}
DEFAULT_METRICS = ("accuracy", "top_k_accuracy", "nll", "brier", "ece")
CHUNK_ELEMENTS = (
    1 << 19
)  # default chunk: at most 65536 rows and ~512K scores (cache-sized)
MAX_CHUNK_ROWS = 65536
DASK_HINT = "pip install 'arrayloss[dask]'"

# scheme://anything, host:port or [ipv6]:port: what --dask takes as an address
_ADDRESS = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://\S+|[\w.-]+:\d+|\[[0-9A-Fa-f:.]+\]:\d+"
)


def _is_address(value: str) -> bool:
    """Whether ``value`` looks like a scheduler address rather than a file."""
    return _ADDRESS.fullmatch(value) is not None


class _EvalCommand(click.Command):
    """``--dask`` takes an optional value: it takes the next word only if that word
    looks like a scheduler address, so ``--dask shards/ labels/`` leaves both
    paths to SCORES and LABELS (click alone would read ``shards/`` as the address).
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = list(args)
        for i, arg in enumerate(args):
            if arg == "--":
                break
            if arg == "--dask" and (i + 1 == len(args) or not _is_address(args[i + 1])):
                args[i] = "--dask="
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
@click.option(
    "--input",
    "input_kind",
    type=click.Choice(["logits", "probs", "logprobs"]),
    default="logits",
    show_default=True,
    help="What SCORES holds. Probabilities must be non-negative with rows summing "
    "to 1; losses see their logarithm (0 read as the smallest normal number).",
)
@click.option(
    "--loss",
    "losses",
    type=LOSS,
    multiple=True,
    metavar="NAME[:K=V,...]",
    help=LOSS_HELP + " [default: cross_entropy]",
)
@click.option(
    "--metric",
    "metric_specs",
    multiple=True,
    metavar="NAME[:K=V,...]",
    help="accuracy, top_k_accuracy, nll, brier, ece[:n_bins=15,strategy=uniform|"
    "quantile]. Repeat for several. [default: all five]",
)
@click.option(
    "--top-k",
    "top_k",
    default="5",
    show_default=True,
    metavar="K[,K...]",
    help="The k of top_k_accuracy, e.g. 1,5 (default k >= the class count is skipped).",
)
@click.option(
    "--reduction",
    type=click.Choice(["mean", "sum"]),
    default="mean",
    show_default=True,
    help="How losses are reduced over samples (metrics are always means).",
)
@click.option(
    "--weights",
    "weights_path",
    metavar="FILE",
    help="Per-sample weights (.npy, .npz, or one column of text), same row count.",
)
@click.option("--scores-key", metavar="KEY", help="The scores array in an .npz.")
@click.option("--labels-key", metavar="KEY", help="The labels array in an .npz.")
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
    "labels given as names.",
)
@click.option(
    "--header/--no-header",
    default=None,
    help="Whether a CSV SCORES file starts with a header row. [default: guessed: "
    "a header if a field other than a numbered label column is not a number]",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="Output format (json and csv carry every digit).",
)
@click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    metavar="FILE",
    help="Write the results here (atomically) instead of standard output.",
)
@click.option(
    "--per-sample",
    metavar="FILE",
    help="Also write each sample's (unweighted) losses, one column per --loss: "
    ".npy (float64) or CSV/TSV with a header.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=None,
    metavar="ROWS",
    help="Rows per chunk, or with --dask per block (one task each). [default: "
    "65536, fewer for many classes (~512K scores); with --dask ~4M scores]",
)
@click.option(
    "--backend",
    type=click.Choice(["numpy", "torch", "jax", "cupy"]),
    default="numpy",
    show_default=True,
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
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to try to reach the --dask scheduler.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def eval_command(ctx: click.Context, /, **opts: Any) -> None:
    """Losses and metrics of predicted SCORES against true LABELS.

    SCORES is an .npy, .npz (--scores-key), .csv/.tsv file, or - for CSV on
    standard input; it holds one row of class scores per sample.  LABELS holds the
    true classes, as integers or as names (--classes), in an .npy, .npz or text
    file; it may instead be a column of a CSV SCORES (--label-column) or an array
    of an .npz SCORES (--labels-key, default 'labels').

    SCORES may also be a directory of shards or a quoted glob pattern
    ('shards/part-*.npy'); LABELS (and --weights) then name as many files, paired
    in natural order (part-2 before part-10), with the row counts checked shard by
    shard.  The shards are read one after another, or on a Dask cluster with
    --dask (.npy/.npz only; not with --per-sample).

    The files are read in chunks and reduced to exact sufficient statistics, so the
    result equals the in-memory computation at any chunk size, in memory bounded
    by the chunk (except ece:strategy=quantile, which keeps ~10-18 bytes a sample,
    with --dask on this machine).

    \b
    Examples:
      arrayloss eval --example
      arrayloss eval logits.npy labels.npy --loss cross_entropy --loss hinge:margin=1
      arrayloss eval preds.csv --label-column label --input probs --format json
      arrayloss eval scores.npz --metric ece:strategy=quantile --top-k 1,5
      arrayloss eval 'shards/logits-*.npy' 'shards/labels-*.npy' --dask
      arrayloss eval logits/ labels/ --dask tcp://scheduler:8786
    """
    try:
        _run(ctx, **opts)
    except click.ClickException:
        raise
    except (ValueError, OSError, MemoryError) as exc:
        raise click.ClickException(_one_line(exc)) from None
    except Exception as exc:  # never a traceback: say what happened
        msg = (
            f"internal error ({type(exc).__name__}: {_one_line(exc)}); please report it"
        )
        raise click.ClickException(msg) from None


# --------------------------------------------------------------------------- #
# The run
# --------------------------------------------------------------------------- #


@dataclass
class _LossTally:
    spec: str
    name: str
    params: dict[str, Any]
    total: Fraction = field(default_factory=Fraction)
    weight: Fraction = field(default_factory=Fraction)


@dataclass(frozen=True)
class _Shard:
    """The files of one shard: scores, and labels and weights where separate."""

    scores: str
    labels: str | None
    weights: str | None


@dataclass(frozen=True)
class _ShardInfo:
    """What the headers of one shard's files say (for the checks and for --dask)."""

    shard: _Shard
    scores_key: str | None
    scores_label: str
    labels_path: str
    labels_key: str | None
    labels_label: str
    weights_label: str | None
    n_rows: int | None
    n_cols: int
    dtype: Any
    labels_dtype: Any
    weights_dtype: Any


def _run(
    ctx: click.Context,
    *,
    scores: str | None,
    labels: str | None,
    example: bool,
    input_kind: str,
    losses: Sequence[tuple[str, dict[str, Any]]],
    metric_specs: Sequence[str],
    top_k: str,
    reduction: str,
    weights_path: str | None,
    scores_key: str | None,
    labels_key: str | None,
    label_column: str | None,
    classes: str | None,
    header: bool | None,
    fmt: str,
    output: str,
    per_sample: str | None,
    chunk_size: int | None,
    backend: str,
    dask_address: str | None,
    dask_workers: int,
    dask_timeout: float,
    quiet: bool,
) -> None:
    from arrayloss import io as alio

    # -- usage: everything that needs no data ---------------------------------
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
    use_dask = dask_address is not None
    if use_dask:
        _check_dask_usage(scores, labels, weights_path, per_sample, backend)
    ks = parse_int_list(top_k, name="--top-k")
    ks_explicit = (
        ctx.get_parameter_source("top_k") is not click.core.ParameterSource.DEFAULT
    )
    metric_list = _parse_metrics(metric_specs or DEFAULT_METRICS)
    loss_list = list(losses) or [("cross_entropy", {})]
    to_backend = _backend(backend)
    class_names = _parse_classes(classes) if classes is not None else None
    for path, what in ((output, "--output"), (per_sample, "--per-sample")):
        if path not in (None, "-"):
            _check_writable(path, what)
    shards = _shards(scores, labels, weights_path)
    opener = _ShardOpener(
        scores_key=scores_key, labels_key=labels_key, label_column=label_column,
        header=header, classes=class_names or (),
    )  # fmt: skip
    infos = None
    if use_dask or len(shards) > 1:  # headers only: every mismatch before any work
        infos = [opener.inspect(shard, dask=use_dask) for shard in shards]
        _check_shards(infos)

    # -- evaluate ---------------------------------------------------------------
    with contextlib.ExitStack() as stack:
        opened = opener.each(shards)
        stack.callback(opened.close)
        first = None
        if infos is not None and use_dask:
            n_classes, first_label = infos[0].n_cols, infos[0].scores_label
        else:
            first = next(opened)
            n_classes, first_label = first[0].n_cols, first[0].label
        assert n_classes is not None
        if class_names is not None and len(class_names) != n_classes:
            msg = f"--classes lists {len(class_names)} names but {first_label} has {n_classes} columns"
            raise alio.DataError(msg)
        for name, params in loss_list:
            check_loss_params(name, params, n_classes)
        tallies = _metric_tallies(metric_list, ks, ks_explicit, n_classes)
        loss_tallies: dict[str, _LossTally] = {}
        for name, params in loss_list:
            spec = format_spec(name, params)
            loss_tallies.setdefault(spec, _LossTally(spec, name, params))

        if use_dask:
            from ._dask_eval import cluster_client, evaluate_on_cluster

            assert infos is not None
            with cluster_client(
                dask_address or None, n_workers=dask_workers, timeout=dask_timeout
            ) as client:
                n_samples = evaluate_on_cluster(
                    client, infos, input_kind=input_kind, n_classes=n_classes,
                    class_names=class_names, tallies=tallies,
                    loss_tallies=loss_tallies, block_rows=chunk_size,
                )  # fmt: skip
        else:
            assert first is not None
            writer = None
            if per_sample is not None:
                tmp = stack.enter_context(
                    alio.atomic_output(per_sample, "--per-sample")
                )
                writer = _per_sample_writer(per_sample, tmp, list(loss_tallies))
                stack.callback(writer.close)
            n_samples = _stream(
                itertools.chain([first], opened), len(shards), input_kind=input_kind,
                n_classes=n_classes, first_label=first_label, class_names=class_names,
                chunk_rows=chunk_size or max(
                    1, min(MAX_CHUNK_ROWS, CHUNK_ELEMENTS // n_classes)
                ),
                to_backend=to_backend, tallies=tallies, loss_tallies=loss_tallies,
                writer=writer, quiet=quiet,
            )  # fmt: skip

        results = {
            "losses": {
                spec: _loss_value(t, reduction, n_samples)
                for spec, t in loss_tallies.items()
            },
            "metrics": {key: tally.result() for key, tally in tallies.items()},
        }
        meta: dict[str, Any] = {
            "scores": scores,
            "labels": labels,
            "weights": weights_path,
            "input": input_kind,
            "reduction": reduction,
            "backend": backend,
            "n_samples": n_samples,
            "n_classes": n_classes,
        }
        if len(shards) > 1:
            meta["n_files"] = len(shards)
        if use_dask:
            workers = f"{dask_workers} worker{'s' * (dask_workers != 1)}"
            meta["dask"] = dask_address or f"local cluster ({workers})"
        text = _render(fmt, meta, results)
        if output != "-":
            tmp = stack.enter_context(alio.atomic_output(output, "--output"))
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
    if output == "-":
        click.echo(text, nl=False)


# --------------------------------------------------------------------------- #
# Many files
# --------------------------------------------------------------------------- #


def _stream(
    opened: Iterator[tuple[Any, Any, Any]],
    n_shards: int,
    *,
    input_kind: str,
    n_classes: int,
    first_label: str,
    class_names: Sequence[str] | None,
    chunk_rows: int,
    to_backend: Callable[[Any], Any],
    tallies: dict[str, Any],
    loss_tallies: dict[str, _LossTally],
    writer: Any,
    quiet: bool,
) -> int:
    """Stream each shard's sources chunk by chunk into the tallies; the row count."""
    from arrayloss import io as alio

    n_samples = 0
    for i, (scores_src, label_src, weights_src) in enumerate(opened):
        if scores_src.n_cols != n_classes:
            msg = f"{scores_src.label} has {scores_src.n_cols} columns but {first_label} has {n_classes}"
            raise alio.DataError(msg)
        scores_label = "SCORES" if n_shards == 1 else scores_src.label
        bar = "eval" if n_shards == 1 else f"eval {i + 1}/{n_shards}"
        chunks = alio.iter_aligned(scores_src, label_src, weights_src, chunk_rows)
        for chunk in _with_progress(chunks, scores_src, quiet, label=bar):
            block = _evaluate_chunk(
                chunk, input_kind, n_classes, class_names, scores_label,
                label_src.label, weights_src.label if weights_src else "",
                to_backend, tallies, loss_tallies, want_rows=writer is not None,
            )  # fmt: skip
            if writer is not None:
                writer.write(block)
            n_samples += int(chunk.scores.shape[0])
    return n_samples


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


def _shards(scores: str, labels: str | None, weights: str | None) -> list[_Shard]:
    """The files of SCORES, LABELS and --weights, paired shard by shard."""
    from arrayloss.io import DataError, expand_paths

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
            msg = (
                f"SCORES '{scores}' names {n} file{'s' * (n != 1)} but {name} "
                f"'{spec}' names {len(files)}; each shard needs its own {kind} file"
            )
            raise DataError(msg)
        paired.append(list(files))
    return [_Shard(s, y, w) for s, y, w in zip(score_files, *paired, strict=True)]


@dataclass
class _ShardOpener:
    """Opens the sources of a shard with the command's reading options."""

    scores_key: str | None
    labels_key: str | None
    label_column: str | None
    header: bool | None
    classes: Sequence[str]

    def open(self, shard: _Shard) -> tuple[Any, Any, Any]:
        from arrayloss import io as alio

        scores_src, label_src = _open_inputs(
            shard.scores, shard.labels, scores_key=self.scores_key,
            labels_key=self.labels_key, label_column=self.label_column,
            header=self.header, classes=self.classes,
        )  # fmt: skip
        weights_src = None
        if shard.weights is not None:
            try:
                weights_src = alio.open_array(shard.weights, "weights")
            except BaseException:
                scores_src.close()
                label_src.close()
                raise
        return scores_src, label_src, weights_src

    def each(
        self, shards: Sequence[_Shard]
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

    def inspect(self, shard: _Shard, *, dask: bool) -> _ShardInfo:
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
                        "one (convert it, or run without --dask)"
                    )
                    raise click.BadParameter(msg, param_hint=["--dask"])
        scores_src, label_src, weights_src = self.open(shard)
        try:
            n_rows = scores_src.n_rows
            for other in (label_src, weights_src):
                known = other is not None and None not in (n_rows, other.n_rows)
                if known and n_rows != other.n_rows:
                    msg = f"{scores_src.label} has {n_rows} rows but {other.label} has {other.n_rows}"
                    raise _data_error(msg)
            return _ShardInfo(
                shard=shard,
                scores_key=self.scores_key,
                scores_label=scores_src.label,
                labels_path=shard.labels or shard.scores,
                labels_key=self.labels_key,
                labels_label=label_src.label,
                weights_label=None if weights_src is None else weights_src.label,
                n_rows=n_rows,
                n_cols=int(scores_src.n_cols),
                dtype=getattr(scores_src, "dtype", None),
                labels_dtype=getattr(label_src, "dtype", None),
                weights_dtype=getattr(weights_src, "dtype", None),
            )
        finally:
            for src in (scores_src, label_src, weights_src):
                if src is not None:
                    src.close()


def _data_error(msg: str) -> Exception:
    from arrayloss.io import DataError

    return DataError(msg)


def _check_shards(infos: Sequence[_ShardInfo]) -> None:
    """Every shard has the class count of the first."""
    first = infos[0]
    for info in infos[1:]:
        if info.n_cols != first.n_cols:
            msg = f"{info.scores_label} has {info.n_cols} columns but {first.scores_label} has {first.n_cols}"
            raise _data_error(msg)


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


def _backend(name: str) -> Callable[[Any], Any]:
    import numpy as np

    def writable(a: Any) -> Any:
        return a if a.flags.writeable else np.array(a)

    if name == "numpy":
        return writable
    if name == "torch":
        try:
            import torch
        except ImportError:
            msg = "PyTorch is not installed (pip install 'arrayloss[torch]')"
            raise click.BadParameter(msg, param_hint=["--backend"]) from None
        device = "cuda" if torch.cuda.is_available() else "cpu"
        return lambda a: torch.from_numpy(writable(a)).to(device)
    if name == "jax":
        try:
            import jax
        except ImportError:
            msg = "JAX is not installed (pip install 'arrayloss[jax]')"
            raise click.BadParameter(msg, param_hint=["--backend"]) from None
        jax.config.update("jax_enable_x64", True)  # type: ignore[no-untyped-call, unused-ignore]
        return jax.numpy.asarray  # type: ignore[no-any-return, unused-ignore]  # float64 stays float64
    try:
        import cupy
    except ImportError:
        msg = "CuPy is not installed (pip install 'arrayloss[gpu]')"
        raise click.BadParameter(msg, param_hint=["--backend"]) from None
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # any CUDA failure means no device
        count, reason = 0, _one_line(exc)
    else:
        reason = "no CUDA device"
    if count < 1:
        msg = f"CuPy finds no usable CUDA device ({reason})"
        raise click.BadParameter(msg, param_hint=["--backend"])
    return cupy.asarray  # type: ignore[no-any-return]


def _check_writable(path: str, what: str) -> None:
    from arrayloss.io import DataError

    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        msg = f"cannot write {what} '{path}': no directory {directory!r}"
        raise DataError(msg)
    if os.path.isdir(path):
        msg = f"cannot write {what} '{path}': it is a directory"
        raise DataError(msg)


def _open_inputs(
    scores: str,
    labels: str | None,
    *,
    scores_key: str | None,
    labels_key: str | None,
    label_column: str | None,
    header: bool | None,
    classes: Sequence[str],
) -> tuple[Any, Any]:
    from arrayloss import io as alio

    suffix = os.path.splitext(scores)[1].lower() if scores != "-" else ""
    is_npy = suffix in (".npy", ".npz")
    if labels is None and not (suffix == ".npz" or (not is_npy and label_column)):
        msg = (
            "no labels: give a LABELS file, --label-column for a CSV SCORES, "
            "or an .npz SCORES holding a labels array"
        )
        raise click.UsageError(msg)
    if is_npy:
        scores_src = alio.open_array(scores, "scores", key=scores_key)
        column = None
    else:
        scores_src, column = alio.open_table(
            scores, label_column=label_column if labels is None else None, header=header
        )
    try:
        if labels is not None:
            label_src = alio.open_array(
                labels,
                "labels",
                key=labels_key,
                label_column=label_column,
                classes=classes,
            )
        elif column is not None:
            label_src = column
        else:
            label_src = alio.open_array(scores, "labels", key=labels_key)
            label_src.label = label_src.label.replace("LABELS", "SCORES", 1)
    except BaseException:
        scores_src.close()
        raise
    return scores_src, label_src


def _with_progress(
    chunks: Iterator[Any], source: Any, quiet: bool, *, label: str = "eval"
) -> Iterator[Any]:
    if quiet or not sys.stderr.isatty() or source.progress() is None:
        yield from chunks
        return
    total = source.progress()[1]
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        done = 0
        for chunk in chunks:
            yield chunk
            now = (source.progress() or (done, total))[0]
            bar.update(now - done)
            done = now


def _compute_dtype(stored: Any) -> Any:
    """The dtype scores stored as ``stored`` are computed in.

    float32 and float64 stay as they are (in native byte order); anything else
    (float16, integers) becomes float64.
    """
    import numpy as np

    dtype = np.dtype(stored)
    if dtype.kind == "f" and dtype.itemsize >= 4:
        return dtype.newbyteorder("=")
    return np.dtype(np.float64)


def _checked_scores(s: Any, input_kind: str, *, start: int, label: str) -> Any:
    """Scores rows in their computation dtype, or a `DataError` naming the row.

    ``start`` is the row number of ``s[0]`` in its file; ``label`` names the file.
    """
    from array_api_compat import array_namespace

    from arrayloss import metrics as M
    from arrayloss.io import DataError

    s = s.astype(_compute_dtype(s.dtype), copy=False)
    bad = M.first_bad_row(s, input_kind, xp=array_namespace(s))
    if bad is not None:
        msg = f"{label} row {start + bad[0]} {bad[1]} (--input {input_kind})"
        raise DataError(msg)
    return s


def _checked_weights(w: Any, target: Any, *, start: int, label: str) -> Any:
    """Weights as ``target``, or a `DataError` for a negative or non-finite one."""
    import numpy as np

    from arrayloss.io import DataError

    w = w.astype(np.float64, copy=False)
    bad_w = ~np.isfinite(w) | (w < 0)
    if bad_w.any():
        i = int(np.argmax(bad_w))
        msg = f"{label} row {start + i}: weight {float(w[i])!r} is not finite and non-negative"
        raise DataError(msg)
    return w.astype(target)


def _loss_rows(name: str, params: dict[str, Any], rows: Any, input_kind: str) -> Any:
    """Per-sample values of loss ``name`` on a metrics batch ``rows`` (any backend)."""
    from arrayloss._registry import get_loss

    if name == "cross_entropy" and input_kind == "logits" and not any(params.values()):
        # plain cross-entropy is the NLL of the softmax, which the metrics have
        # already computed by the kernel's own operations: reuse it (one exp)
        return rows.nll
    return get_loss(name).value(
        rows.loss_logits, rows.index, reduction="none", **params
    )


def _evaluate_chunk(
    chunk: Any,
    input_kind: str,
    n_classes: int,
    class_names: Sequence[str] | None,
    scores_label: str,
    labels_label: str,
    weights_label: str,
    to_backend: Callable[[Any], Any],
    tallies: dict[str, Any],
    loss_tallies: dict[str, _LossTally],
    *,
    want_rows: bool,
) -> Any:
    import numpy as np
    from array_api_compat import array_namespace

    from arrayloss import metrics as M
    from arrayloss.io import label_indices

    s = _checked_scores(chunk.scores, input_kind, start=chunk.start, label=scores_label)
    y = label_indices(
        chunk.labels, n_classes=n_classes, classes=class_names, start=chunk.start,
        label=labels_label,
    )  # fmt: skip
    w = None
    if chunk.weights is not None:
        w = _checked_weights(
            chunk.weights, s.dtype, start=chunk.start, label=weights_label
        )

    z = to_backend(s)
    xp = array_namespace(z)
    rows = M._Rows(
        z, to_backend(y), None if w is None else to_backend(w),
        input=input_kind, xp=xp, eager=True,
    )  # fmt: skip
    for key, tally in tallies.items():
        tallies[key] = tally._add(rows)
    columns = []
    for t in loss_tallies.values():
        per_host = M.to_numpy(_loss_rows(t.name, t.params, rows, input_kind))
        total, weight = M._exact_sums(per_host, rows.host_weights)
        t.total += total
        t.weight += weight
        if want_rows:
            columns.append(per_host.astype(np.float64))
    return np.stack(columns, axis=1) if want_rows else None


def _loss_value(t: _LossTally, reduction: str, n_samples: int) -> float:
    if reduction == "sum":
        return float(t.total)
    if t.weight == 0:
        msg = f"`reduction='mean'` needs at least one sample with non-zero weight (got {n_samples})"
        raise ValueError(msg)
    return float(t.total / t.weight)


def _per_sample_writer(path: str, tmp: str, columns: list[str]) -> Any:
    from arrayloss.io import NpyWriter, TextWriter

    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        return NpyWriter(tmp, columns)
    delimiter = "\t" if suffix in (".tsv", ".tab") else ","
    return TextWriter(tmp, columns, delimiter=delimiter)


# --------------------------------------------------------------------------- #
# Output
# --------------------------------------------------------------------------- #


def _render(
    fmt: str, meta: dict[str, Any], results: dict[str, dict[str, float]]
) -> str:
    rows: list[tuple[str, str, Any]] = [
        ("data", "n_samples", meta["n_samples"]),
        ("data", "n_classes", meta["n_classes"]),
    ]
    rows += [("loss", k, v) for k, v in results["losses"].items()]
    rows += [("metric", k, v) for k, v in results["metrics"].items()]
    if fmt == "json":
        return json.dumps({**meta, **results}, indent=2) + "\n"
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


def _short(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.8g}" if abs(value) >= 1e-4 or value == 0 else f"{value:.6e}"
