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
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import click

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
    "infinite scores, rows that are not probabilities, an unwritable output); 2 bad "
    "usage (an unknown option, loss, metric or parameter, a parameter out of range, "
    "a backend that is not installed)."
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


@click.command(
    "eval",
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
    help="Rows per chunk. [default: 65536, fewer for many classes (~512K scores)]",
)
@click.option(
    "--backend",
    type=click.Choice(["numpy", "torch", "cupy"]),
    default="numpy",
    show_default=True,
    help="Array library for the computation (torch uses CUDA when available).",
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

    The file is read in chunks and reduced to exact sufficient statistics, so the
    result equals the in-memory computation at any chunk size, in memory bounded
    by the chunk (except ece:strategy=quantile, which keeps ~10-18 bytes a sample).

    \b
    Examples:
      arrayloss eval --example
      arrayloss eval logits.npy labels.npy --loss cross_entropy --loss hinge:margin=1
      arrayloss eval preds.csv --label-column label --input probs --format json
      arrayloss eval scores.npz --metric ece:strategy=quantile --top-k 1,5
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


def _one_line(exc: BaseException) -> str:
    return " ".join((str(exc) or type(exc).__name__).split())


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

    # -- open the inputs --------------------------------------------------------
    with contextlib.ExitStack() as stack:
        scores_src, label_src = _open_inputs(
            scores, labels, scores_key=scores_key, labels_key=labels_key,
            label_column=label_column, header=header, classes=class_names or (),
        )  # fmt: skip
        stack.callback(scores_src.close)
        stack.callback(label_src.close)
        weights_src = None
        if weights_path is not None:
            weights_src = alio.open_array(weights_path, "weights")
            stack.callback(weights_src.close)

        n_classes = scores_src.n_cols
        assert n_classes is not None
        if class_names is not None and len(class_names) != n_classes:
            msg = f"--classes lists {len(class_names)} names but {scores_src.label} has {n_classes} columns"
            raise alio.DataError(msg)
        for name, params in loss_list:
            check_loss_params(name, params, n_classes)
        tallies = _metric_tallies(metric_list, ks, ks_explicit, n_classes)
        loss_tallies: dict[str, _LossTally] = {}
        for name, params in loss_list:
            spec = format_spec(name, params)
            loss_tallies.setdefault(spec, _LossTally(spec, name, params))
        rows = chunk_size or max(1, min(MAX_CHUNK_ROWS, CHUNK_ELEMENTS // n_classes))

        writer = None
        if per_sample is not None:
            tmp = stack.enter_context(alio.atomic_output(per_sample, "--per-sample"))
            writer = _per_sample_writer(per_sample, tmp, list(loss_tallies))
            stack.callback(writer.close)

        chunks = alio.iter_aligned(scores_src, label_src, weights_src, rows)
        n_samples = 0
        for chunk in _with_progress(chunks, scores_src, quiet):
            block = _evaluate_chunk(
                chunk, input_kind, n_classes, class_names, label_src.label,
                weights_src.label if weights_src else "", to_backend,
                tallies, loss_tallies, want_rows=writer is not None,
            )  # fmt: skip
            if writer is not None:
                writer.write(block)
            n_samples += int(chunk.scores.shape[0])

        results = {
            "losses": {
                spec: _loss_value(t, reduction, n_samples)
                for spec, t in loss_tallies.items()
            },
            "metrics": {key: tally.result() for key, tally in tallies.items()},
        }
        meta = {
            "scores": scores,
            "labels": labels,
            "weights": weights_path,
            "input": input_kind,
            "reduction": reduction,
            "backend": backend,
            "n_samples": n_samples,
            "n_classes": n_classes,
        }
        text = _render(fmt, meta, results)
        if output != "-":
            tmp = stack.enter_context(alio.atomic_output(output, "--output"))
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
    if output == "-":
        click.echo(text, nl=False)


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


def _with_progress(chunks: Iterator[Any], source: Any, quiet: bool) -> Iterator[Any]:
    if quiet or not sys.stderr.isatty() or source.progress() is None:
        yield from chunks
        return
    total = source.progress()[1]
    with click.progressbar(length=total, label="eval", file=sys.stderr) as bar:
        done = 0
        for chunk in chunks:
            yield chunk
            now = (source.progress() or (done, total))[0]
            bar.update(now - done)
            done = now


def _evaluate_chunk(
    chunk: Any,
    input_kind: str,
    n_classes: int,
    class_names: Sequence[str] | None,
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
    from arrayloss._registry import get_loss
    from arrayloss.io import DataError, label_indices

    s = chunk.scores
    dtype = s.dtype if s.dtype.kind == "f" and s.dtype.itemsize >= 4 else None
    target = np.dtype(np.float64) if dtype is None else dtype.newbyteorder("=")
    s = s.astype(target, copy=False)
    host = array_namespace(s)
    bad = M.first_bad_row(s, input_kind, xp=host)
    if bad is not None:
        msg = f"SCORES row {chunk.start + bad[0]} {bad[1]} (--input {input_kind})"
        raise DataError(msg)
    y = label_indices(
        chunk.labels, n_classes=n_classes, classes=class_names, start=chunk.start,
        label=labels_label,
    )  # fmt: skip
    w = None
    if chunk.weights is not None:
        w = chunk.weights.astype(np.float64, copy=False)
        bad_w = ~np.isfinite(w) | (w < 0)
        if bad_w.any():
            i = int(np.argmax(bad_w))
            msg = f"{weights_label} row {chunk.start + i}: weight {float(w[i])!r} is not finite and non-negative"
            raise DataError(msg)
        w = w.astype(target)

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
        if (
            t.name == "cross_entropy"
            and input_kind == "logits"
            and not any(t.params.values())
        ):
            # plain cross-entropy is the NLL of the softmax, which the metrics have
            # already computed by the kernel's own operations: reuse it (one exp)
            per = rows.nll
        else:
            per = get_loss(t.name).value(
                rows.loss_logits, rows.index, reduction="none", **t.params
            )
        per_host = M.to_numpy(per)
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
