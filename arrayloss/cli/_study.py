"""``arrayloss study``: losses × label-noise rates × seeds, in parallel processes.

Every run trains the same MLP (`arrayloss.cli._train.run`) on one split of the data
with noisy training labels and clean validation and test labels. The command prints
mean ± standard deviation over seeds of the test accuracy, the top-k accuracy, the
number of epochs until the validation accuracy first reaches ``--target`` and the
best validation accuracy over the epochs (what early stopping would keep), and
writes ``runs.csv`` (every run), ``summary.md`` (the tables) and
``accuracy_vs_noise.png`` (one line per loss) to ``--out``.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import importlib
import io
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import click

from .._errors import DataError, one_line
from . import _options as opt
from ._train import (
    OutputPath,
    check_features,
    check_loss,
    check_outputs,
    data_inputs,
    load_data,
    write_outputs,
)

__all__ = ["DEFAULT_LOSSES", "study"]

DEFAULT_LOSSES = (
    "cross_entropy",
    "expectation",
    "regularised_expectation",
    "squared_hinge",
    "tanimoto",
    "cauchy_schwarz",
    "keras.kl_divergence",
    "smooth_topk_svm",
)

CSV_FIELDS = (
    "loss",
    "loss_params",
    "noise",
    "noise_kind",
    "seed",
    "test_accuracy",
    "test_top_k_accuracy",
    "test_nll",
    "test_ece",
    "train_accuracy",
    "final_val_accuracy",
    "best_val_accuracy",
    "epochs_to_target",
    "final_loss",
    "seconds",
    "error",
)

OUT_FILES = ("runs.csv", "summary.md", "accuracy_vs_noise.png")

# More runs than this is a typing slip (--seeds 100000), not a study.
MAX_RUNS = 100_000

_DATA_CACHE: dict[str, Any] = {}


def _one_blas_thread() -> Any:
    """Limit BLAS to one thread now (with threadpoolctl, when installed).

    Returns a context manager that restores the old limit on exit.
    """
    try:
        tpc = importlib.import_module("threadpoolctl")
    except ImportError:  # pragma: no cover - optional
        return contextlib.nullcontext()
    return tpc.threadpool_limits(1)


def _init_worker() -> None:
    """One BLAS thread per worker process: the parallelism is across runs."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # takes effect if NumPy is not loaded yet
    _one_blas_thread()


def _label(name: str, params: dict[str, Any]) -> str:
    from ._options import format_spec

    return format_spec(name, params)


# The task keys that `arrayloss.cli._train.run` takes under the same name.
_RUN_KEYS = (
    "loss",
    "loss_params",
    "hidden",
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "weight_decay",
    "noise_kind",
    "seed",
    "top_k",
)


def run_one(task: dict[str, Any]) -> dict[str, Any]:
    """One training run of the study, as a CSV row (a worker's unit of work)."""
    from ..datasets import split
    from ._train import run

    data = _DATA_CACHE.get(task["data"])
    if data is None:
        from ..datasets import load

        data = _DATA_CACHE[task["data"]] = load(task["data"])
    row: dict[str, Any] = {
        "loss": task["label"],
        "loss_params": json.dumps(task["loss_params"], sort_keys=True),
        "noise": task["noise"],
        "noise_kind": task["noise_kind"],
        "seed": task["seed"],
        "error": "",
    }
    start = time.perf_counter()
    try:
        result = run(
            split(data, seed=task["seed"]),
            label_noise=task["noise"],
            **{key: task[key] for key in _RUN_KEYS},
        )
    except FloatingPointError as exc:
        row.update({f: math.nan for f in CSV_FIELDS if f not in row})
        row.update(error=str(exc), seconds=time.perf_counter() - start)
        row["epochs_to_target"] = ""
        return row
    val = [h["val_accuracy"] for h in result.history]
    reached = next((i + 1 for i, a in enumerate(val) if a >= task["target"]), None)
    test, train = result.metrics["test"], result.metrics["train"]
    row.update(
        test_accuracy=test["accuracy"],
        test_top_k_accuracy=test["top_k_accuracy"],
        test_nll=test["nll"],
        test_ece=test["ece"],
        train_accuracy=train["accuracy"],
        final_val_accuracy=val[-1],
        best_val_accuracy=max(val),
        epochs_to_target="" if reached is None else reached,
        final_loss=result.history[-1]["loss"],
        seconds=time.perf_counter() - start,
    )
    return row


def _run_all(
    tasks: list[dict[str, Any]], jobs: int, quiet: bool
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def report(row: dict[str, Any]) -> None:
        rows.append(row)
        if quiet:
            return
        what = row["error"] or (
            f"acc {row['test_accuracy']:.3f} top-k {row['test_top_k_accuracy']:.3f}"
        )
        click.echo(
            f"[{len(rows)}/{len(tasks)}] {row['loss']} noise={row['noise']:g} "
            f"seed={row['seed']}: {what} ({row['seconds']:.1f} s)",
            err=True,
        )

    if jobs == 1:
        limit = _one_blas_thread()
        with limit:
            for task in tasks:
                try:
                    report(run_one(task))
                except ValueError as exc:  # the library's checks on the data
                    raise DataError(one_line(exc)) from None
        return rows

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")
    workers = min(jobs, len(tasks), os.cpu_count() or 1)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
        futures = [pool.submit(run_one, t) for t in tasks]
        try:
            for fut in as_completed(futures):
                report(fut.result())
        except BaseException as exc:  # a failed run ends the study: cancel the rest
            for fut in futures:
                fut.cancel()
            if isinstance(exc, BrokenProcessPool):
                msg = (
                    "a study worker process died (out of memory or killed?); "
                    "try fewer --jobs"
                )
                raise click.ClickException(msg) from None
            if isinstance(exc, ValueError):  # the library's checks on the data
                raise DataError(one_line(exc)) from None
            raise
    return rows


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), sd


def _tables(
    rows: list[dict[str, Any]],
    labels: list[str],
    noises: list[float],
    k: int,
    n_seeds: int,
    target: float,
) -> str:
    """The three summary tables as markdown."""

    def cell(loss: str, noise: float, key: str) -> str:
        sel = [r for r in rows if r["loss"] == loss and r["noise"] == noise]
        if key == "epochs_to_target":
            hit = [float(r[key]) for r in sel if r[key] != ""]
            if not hit:
                return "—"
            m, s = _mean_std(hit)
            return f"{m:.1f} ± {s:.1f}" + (
                "" if len(hit) == len(sel) else f" ({len(hit)}/{len(sel)})"
            )
        ok = [float(r[key]) for r in sel if not r["error"]]
        if not ok:
            return "diverged"
        m, s = _mean_std(ok)
        return f"{m:.3f} ± {s:.3f}" + (
            "" if len(ok) == len(sel) else f" ({len(ok)}/{len(sel)})"
        )

    head = "| loss | " + " | ".join(f"noise {n:g}" for n in noises) + " |"
    rule = "|---|" + "---|" * len(noises)
    out = []
    for title, key in (
        (f"Test accuracy (mean ± std over {n_seeds} seeds)", "test_accuracy"),
        (f"Test top-{k} accuracy", "test_top_k_accuracy"),
        (
            f"Epochs until validation accuracy ≥ {target:g} (runs that got there)",
            "epochs_to_target",
        ),
        (
            "Best validation accuracy over the epochs (what early stopping would keep)",
            "best_val_accuracy",
        ),
    ):
        out += [f"**{title}**", "", head, rule]
        out += [
            "| " + " | ".join([lab, *(cell(lab, n, key) for n in noises)]) + " |"
            for lab in labels
        ]
        out.append("")
    return "\n".join(out)


def _plot(
    rows: list[dict[str, Any]],
    labels: list[str],
    noises: list[float],
    k: int,
    title: str,
) -> bytes:
    """Accuracy against noise rate as a PNG in memory."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    markers = "osD^vP*Xh<>"
    for i, lab in enumerate(labels):
        for ax, key in zip(axes, ("test_accuracy", "test_top_k_accuracy"), strict=True):
            means, sds = [], []
            for n in noises:
                vals = [
                    float(r[key])
                    for r in rows
                    if r["loss"] == lab and r["noise"] == n and not r["error"]
                ]
                m, s = _mean_std(vals)
                means.append(m)
                sds.append(s)
            ax.errorbar(
                noises,
                means,
                yerr=sds,
                label=lab,
                marker=markers[i % len(markers)],
                linestyle=("-", "--", "-.", ":")[i % 4],
                capsize=3,
                color=f"C{i % 10}",
            )
    axes[0].set(
        xlabel="label noise rate", ylabel="test accuracy", title="top-1 accuracy"
    )
    axes[1].set(
        xlabel="label noise rate",
        ylabel=f"test top-{k} accuracy",
        title=f"top-{k} accuracy",
    )
    axes[1].legend(fontsize="small", loc="lower left")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _floats(ctx: click.Context, param: click.Parameter, value: str) -> list[float]:
    try:
        rates = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        msg = f"expected comma-separated numbers (got {value!r})"
        raise click.BadParameter(msg, ctx, param) from None
    bad = [r for r in rates if not 0 <= r < 1]
    if not rates or bad:
        msg = f"noise rates must lie in [0, 1) (got {value!r})"
        raise click.BadParameter(msg, ctx, param)
    return sorted(set(rates))


def _losses(
    ctx: click.Context,
    param: click.Parameter,
    value: Iterable[tuple[str, dict[str, Any]]],
) -> list[tuple[str, dict[str, Any]]]:
    from .. import LOSSES

    losses = [(name, dict(params)) for name, params in value]
    if not losses:  # the defaults that are registered
        missing = [n for n in DEFAULT_LOSSES if n not in LOSSES]
        if missing:
            click.echo(
                f"note: not registered, left out: {', '.join(missing)}", err=True
            )
        losses = [(n, {}) for n in DEFAULT_LOSSES if n in LOSSES]
    seen: set[str] = set()
    for name, params in losses:
        label = _label(name, params)
        if label in seen:
            msg = f"{label!r} is given twice"
            raise click.BadParameter(msg, ctx, param)
        seen.add(label)
    return losses


@click.command("study")
@opt.data_option("synthetic", help="As for `arrayloss train`.")
@opt.loss_option(
    callback=_losses,
    help="[default: " + ", ".join(DEFAULT_LOSSES) + " (those registered)]",
)
@click.option(
    "--noise",
    "noises",
    default="0,0.2,0.4,0.6",
    show_default=True,
    callback=_floats,
    metavar="R1,R2,...",
    help="Label-noise rates, each in [0, 1).",
)
@opt.noise_kind_option()
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Runs per (loss, noise), with seeds 0, 1, ...",
)
@opt.epochs_option(30)
@opt.batch_size_option(32)
@opt.hidden_option()
@opt.optimizer_option("adam")
@opt.lr_option()
@opt.weight_decay_option()
@click.option(
    "--target",
    type=opt.Real(0, 1),
    default=0.4,
    show_default=True,
    help="Validation accuracy that counts as reached, for epochs-to-target.",
)
@opt.top_k_option()
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Parallel worker processes, at most one per CPU (1: run in this process).",
)
@click.option(
    "--out",
    type=OutputPath(file_okay=False, path_type=Path),
    default=Path("arrayloss-study"),
    show_default=True,
    help="Directory for runs.csv, summary.md and accuracy_vs_noise.png "
    "(created if missing; written together when the study ends).",
)
@click.option("--no-plot", is_flag=True, help="Skip the PNG (no matplotlib needed).")
@click.option("-q", "--quiet", is_flag=True, help="No line per finished run on stderr.")
def study(
    data: str,
    losses: list[tuple[str, dict[str, Any]]],
    noises: list[float],
    noise_kind: str,
    seeds: int,
    epochs: int,
    batch_size: int,
    hidden: tuple[int, ...],
    optimizer: str,
    lr: float | None,
    weight_decay: float,
    target: float,
    top_k: int,
    jobs: int,
    out: Path,
    no_plot: bool,
    quiet: bool,
) -> None:
    """Compare losses under label noise: every loss × noise rate × seed.

    Each run splits the data 60/20/20 by its seed, flips that fraction of the
    training labels (validation and test labels stay clean) and trains the same
    MLP. The defaults (synthetic 100-class data, 8 losses × 4 noise rates × 5
    seeds = 160 runs) take 4 to 8 minutes on two cores shared with other jobs.

    Exit codes: 0 success (diverged runs are results, marked in runs.csv); 1 bad
    data or an output that cannot be written; 2 bad usage. Every option is checked
    before the first run, and the files are written together at the end.
    """
    import importlib.util

    from ..datasets import split

    n_runs = len(losses) * len(noises) * seeds
    if n_runs > MAX_RUNS:
        msg = (
            f"{len(losses)} losses x {len(noises)} noise rates x {seeds} seeds = "
            f"{n_runs} runs, more than {MAX_RUNS}; lower --seeds"
        )
        raise click.UsageError(msg)
    dataset = load_data(data)
    if not losses:
        msg = "no loss to study"
        raise click.UsageError(msg)
    for name, params in losses:
        check_loss(name, params, dataset.n_classes)
    split(dataset, seed=0)  # too few samples: the part sizes do not depend on the seed
    check_features(dataset, "float32")  # the dtype of every run
    files = [(out / f, f"--out file {f}") for f in OUT_FILES[: 2 if no_plot else 3]]
    check_outputs(files, inputs=data_inputs(data))
    # After the usage checks (exit 2), before any run: a missing plotting library
    # must not cost the whole study.
    if not no_plot and importlib.util.find_spec("matplotlib") is None:
        msg = "the plot needs matplotlib: pip install 'arrayloss[plot]' (or pass --no-plot)"
        raise click.ClickException(msg)
    _DATA_CACHE[data] = dataset  # runs in this process use the data checked here
    labels = [_label(n, p) for n, p in losses]
    tasks = [
        {
            "data": data,
            "loss": name,
            "loss_params": params,
            "label": _label(name, params),
            "noise": noise,
            "noise_kind": noise_kind,
            "seed": seed,
            "hidden": hidden,
            "epochs": epochs,
            "batch_size": batch_size,
            "optimizer": optimizer,
            "lr": lr,
            "weight_decay": weight_decay,
            "target": target,
            "top_k": top_k,
        }
        for name, params in losses
        for noise in noises
        for seed in range(seeds)
    ]
    jobs = min(jobs, len(tasks), os.cpu_count() or 1)
    start = time.perf_counter()
    rows = _run_all(tasks, jobs, quiet)
    elapsed = time.perf_counter() - start
    order = {(t["label"], t["noise"], t["seed"]): i for i, t in enumerate(tasks)}
    rows.sort(key=lambda r: order[(r["loss"], r["noise"], r["seed"])])

    k = min(top_k, dataset.n_classes)
    lr_used = lr if lr is not None else (0.1 if optimizer == "sgd" else 1e-3)
    sizes = "-".join(str(s) for s in (dataset.x.shape[1], *hidden, dataset.n_classes))
    setup = (
        f"{dataset.name} ({dataset.y.size} samples, {dataset.n_classes} classes), MLP "
        f"{sizes}, {optimizer} lr={lr_used:g}, {epochs} epochs of batch {batch_size}, "
        f"{noise_kind} label noise on the training part; {len(tasks)} runs in "
        f"{elapsed:.0f} s with {jobs} job{'s' * (jobs > 1)}"
    )
    tables = _tables(rows, labels, noises, k, seeds, target)
    click.echo(setup + "\n")
    click.echo(tables)
    failed = [r for r in rows if r["error"]]
    if failed:
        click.echo(
            f"{len(failed)} run(s) diverged; see the error column of runs.csv", err=True
        )

    csv_text = io.StringIO(newline="")
    writer = csv.DictWriter(csv_text, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for r in rows:
        writer.writerow({key: _fmt(r.get(key, "")) for key in CSV_FIELDS})
    command = (
        "arrayloss study " + " ".join(sys.argv[2:])
        if sys.argv[1:2] == ["study"]
        else ""
    )
    md = ["# Loss study", "", setup + ".", ""]
    if command:
        md += ["Command: `" + command.strip() + "`", ""]
    if not no_plot:
        md += ["![Test accuracy against label noise](accuracy_vs_noise.png)", ""]
    contents = [csv_text.getvalue().encode(), ("\n".join(md) + "\n" + tables).encode()]
    if not no_plot:
        title = f"{dataset.name}: {noise_kind} label noise"
        contents.append(_plot(rows, labels, noises, k, title))
    write_outputs(
        [
            (path, label, functools.partial(_write_blob, blob))
            for (path, label), blob in zip(files, contents, strict=True)
        ],
        inputs=data_inputs(data),
        directory=out,
    )
    click.echo(f"wrote {out}/" + ", ".join(OUT_FILES[: len(files)]))


def _write_blob(blob: bytes, f: BinaryIO) -> None:
    f.write(blob)


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v
