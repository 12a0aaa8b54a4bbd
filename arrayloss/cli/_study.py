"""``arrayloss study``: losses × data sets × label-noise rates × seeds, in parallel.

Every run trains the same MLP (`arrayloss.cli._train.run`) on one split of a data
set whose training *and validation* labels are flipped at the noise rate; the test
labels stay clean. A run trains at least ``--epochs`` epochs and then until its
noisy-validation accuracy has not improved for ``--patience`` epochs (a plateau),
at most ``--max-epochs``. It records its test metrics at the final epoch and at the
epoch of its best noisy-validation accuracy (early stopping as a practitioner with
only noisy labels would do it), and the accuracy of every epoch.

The learning rate is chosen per data set, loss and noise rate: one run per rate of
``--lr-grid`` with the separate seed ``--tune-seed`` (its own split, noise, weights
and batch order), the rate of the best noisy-validation accuracy wins (ties: the
smaller rate), and the seeds 0, 1, ... are run at that rate. Tuning runs are in
``runs.csv`` (phase ``tune``) and in no table.

The tables, the paired statistics against cross-entropy and the figures come from
`arrayloss.cli._study_report`, applied to the CSV text the study writes, so that a
committed ``runs.csv`` regenerates the committed tables exactly.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import math
import os
import resource
import shlex
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import click

from .._errors import printable, stderr_is_a_terminal, utf8_text
from . import _options as opt
from . import _study_report as report
from ._train import (
    DATA_NAMES,
    OutputPath,
    check_features,
    check_loss,
    check_model_memory,
    check_outputs,
    data_errors,
    data_inputs,
    echo_before_writing,
    load_data,
    note_on_stderr,
    write_outputs,
)

__all__ = ["DEFAULT_DATA", "DEFAULT_LOSSES", "GRIDS", "study"]

DEFAULT_LOSSES = (
    "cross_entropy",
    "expectation",
    "regularised_expectation",
    "squared_hinge",
    "tanimoto",
    "cauchy_schwarz",
    "keras.kl_divergence",
    "smooth_topk_svm",
    "focal",
    "generalized_cross_entropy",
    "symmetric_cross_entropy",
    "nce_rce",
    "poly1",
    "sparsemax_loss",
)

DEFAULT_DATA = ("synthetic", "digits", "mnist1d")

# The presets of --grid; an option given explicitly overrides its preset value.
# "epochs" is the minimum of every run, "patience" the plateau rule's epochs without
# improvement, "max_epochs" the cap (a run cut there is flagged in the report).
GRIDS: dict[str, dict[str, Any]] = {
    "default": {"noises": (0.0, 0.4), "seeds": 3, "epochs": 30, "patience": 10,
                "max_epochs": 150},
    "full": {"noises": (0.0, 0.3, 0.6), "seeds": 5, "epochs": 40, "patience": 10,
             "max_epochs": 200},
}  # fmt: skip
LR_GRID = (1e-3, 3e-3, 1e-2)
TUNE_SEED = 1000

TABLE_FILES = ("runs.csv", "curves.csv", "study.json", "summary.md")
PLOT_FILES = ("accuracy_vs_noise.png", "paired_differences.png", "curves.png")

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


def _init_worker(
    datasets: dict[str, Any],
    user_losses: dict[str, tuple[str, str | None]] | None = None,
) -> None:
    """One BLAS thread per worker process (the parallelism is across runs), the
    data sets the parent checked, so that no worker loads them again, the user
    losses (``--loss module:function``) the parent registered, and SIGINT
    ignored (the parent ends the workers on Ctrl-C)."""
    import signal

    from .._user import register_again

    # Ctrl-C reaches the whole process group: the parent stops the workers
    # (`_stop_workers`); one idle here would print its own traceback first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # takes effect if NumPy is not loaded yet
    _one_blas_thread()
    _DATA_CACHE.update(datasets)
    register_again(user_losses or {})


def _label(name: str, params: dict[str, Any]) -> str:
    return opt.format_spec(name, params)


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
# Those of the plateau rule; a task without them trains its fixed "epochs".
_PLATEAU_KEYS = ("patience", "max_epochs")


def run_one(task: dict[str, Any]) -> dict[str, Any]:
    """One training run of the study, as a row of ``runs.csv`` (a worker's unit of
    work); ``curve`` holds ``(noisy val accuracy, test accuracy)`` per epoch."""
    from ..datasets import split
    from ._train import run

    data = _DATA_CACHE.get(task["data"])
    if data is None:
        from ..datasets import load

        data = _DATA_CACHE[task["data"]] = load(task["data"])
    row: dict[str, Any] = {
        "data": data.name,
        "loss": task["label"],
        # strict JSON: a user loss's infinite parameter (clip=inf) as its text
        "loss_params": json.dumps(opt.json_params(task["loss_params"]), sort_keys=True),
        "noise": task["noise"],
        "noise_kind": task["noise_kind"],
        "phase": task["phase"],
        "seed": task["seed"],
        "lr": task["lr"],
        "epochs": task["epochs"],
        "error": "",
        "curve": [],
    }
    # a task written before the plateau rule has no such keys: fixed epochs
    plateau: dict[str, Any] = {key: task.get(key) for key in _PLATEAU_KEYS}
    start = time.perf_counter()
    try:
        result = run(
            split(data, seed=task["seed"]),
            label_noise=task["noise"],
            noisy_validation=True,
            track_test=True,
            **{key: task[key] for key in _RUN_KEYS},
            **plateau,
        )
    except FloatingPointError as exc:
        row.update({f: math.nan for f in report.CSV_FIELDS if f not in row})
        row.update(error=str(exc), seconds=time.perf_counter() - start)
        row["best_epoch"] = ""
        row["epochs"] = getattr(exc, "epoch", "")  # the epoch it diverged in
        return row
    hist = result.history
    val = [h["val_accuracy"] for h in hist]
    best = val.index(max(val))  # the first epoch of the best noisy-validation score
    test, train = result.metrics["test"], result.metrics["train"]
    row.update(
        test_accuracy_final=test["accuracy"],
        test_accuracy_es=hist[best]["test_accuracy"],
        top_k_accuracy_final=test["top_k_accuracy"],
        top_k_accuracy_es=hist[best]["test_top_k_accuracy"],
        test_nll_final=test["nll"],
        test_ece_final=test["ece"],
        train_accuracy_final=train["accuracy"],
        val_accuracy_final=val[-1],
        val_accuracy_best=val[best],
        best_epoch=best + 1,
        epochs=len(hist),  # trained: the plateau rule ends a run
        final_loss=hist[-1]["loss"],
        seconds=time.perf_counter() - start,
        curve=[(h["val_accuracy"], h["test_accuracy"]) for h in hist],
    )
    return row


class _Plan:
    """The runs of a study: tuning runs first; a cell's seeds once its rate is chosen.

    A cell is one (data set, loss, noise rate). `start` gives the tasks that can run
    at once; `done` takes a finished row and gives the tasks it unlocks.
    """

    def __init__(
        self, cells: list[dict[str, Any]], lr_grid: Sequence[float], seeds: int,
        tune_seed: int,
    ) -> None:  # fmt: skip
        self.cells, self.lr_grid, self.seeds, self.tune_seed = (
            cells, list(lr_grid), seeds, tune_seed,
        )  # fmt: skip
        self.tuned: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(cells))}
        self.chosen: dict[int, float] = {}
        tune_each = len(self.lr_grid) if len(self.lr_grid) > 1 else 0
        self.total = len(cells) * (tune_each + seeds)

    def _task(self, i: int, phase: str, seed: int, lr: float) -> dict[str, Any]:
        return {**self.cells[i], "cell": i, "phase": phase, "seed": seed, "lr": lr}

    def _report(self, i: int) -> list[dict[str, Any]]:
        return [self._task(i, "report", s, self.chosen[i]) for s in range(self.seeds)]

    def start(self) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = []
        for i in range(len(self.cells)):
            if len(self.lr_grid) > 1:
                tasks += [
                    self._task(i, "tune", self.tune_seed, lr) for lr in self.lr_grid
                ]
            else:
                self.chosen[i] = self.lr_grid[0]
                tasks += self._report(i)
        return tasks

    def done(self, task: dict[str, Any], row: dict[str, Any]) -> list[dict[str, Any]]:
        if task["phase"] != "tune":
            return []
        i = task["cell"]
        self.tuned[i].append(row)
        if len(self.tuned[i]) < len(self.lr_grid):
            return []

        def score(r: dict[str, Any]) -> tuple[float, float]:
            v = -math.inf if r["error"] else float(r["val_accuracy_best"])
            return (v, -float(r["lr"]))  # ties: the smaller rate

        self.chosen[i] = float(max(self.tuned[i], key=score)["lr"])
        return self._report(i)


class _Progress:
    """A progress bar on a terminal; otherwise one line per finished run (none with
    ``quiet``)."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet, self.count = total, quiet, 0
        self.bar: Any = None
        if not quiet and stderr_is_a_terminal():
            self.bar = click.progressbar(
                length=total, label="study", file=sys.stderr, show_eta=True,
                item_show_func=lambda s: s, width=24,
            )  # fmt: skip

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def __call__(self, row: dict[str, Any]) -> None:
        self.count += 1
        what = row["error"] or (
            f"acc {row['test_accuracy_final']:.3f} / {row['test_accuracy_es']:.3f} "
            f"(final / early-stopped)"
        )
        text = (
            f"{row['data']} {row['loss']} noise={row['noise']:g} {row['phase']} "
            f"seed={row['seed']} lr={row['lr']:g}"
        )
        if self.bar is not None:
            self.bar.update(1, text)
        elif not self.quiet:
            note_on_stderr(
                f"[{self.count}/{self.total}] {text}: {what} ({row['seconds']:.1f} s)"
            )


def _execute(
    plan: _Plan,
    jobs: int,
    datasets: dict[str, Any],
    progress: _Progress,
    user_losses: dict[str, tuple[str, str | None]] | None = None,
) -> list[dict[str, Any]]:
    """Every run of ``plan``, in this process (``jobs == 1``) or in a pool."""
    rows: list[dict[str, Any]] = []
    if jobs == 1:
        _DATA_CACHE.update(datasets)
        queue = deque(plan.start())
        with _one_blas_thread():
            while queue:
                task = queue.popleft()
                row = run_one(task)
                rows.append(row)
                progress(row)
                queue.extend(plan.done(task, row))
        return rows

    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        jobs, mp_context=ctx, initializer=_init_worker,
        initargs=(datasets, user_losses),
    ) as pool:  # fmt: skip
        running: dict[Future[dict[str, Any]], dict[str, Any]] = {}

        def submit(tasks: Iterable[dict[str, Any]]) -> None:
            with _sigint_held():  # where the pool starts its worker processes
                for t in tasks:
                    running[pool.submit(run_one, t)] = t

        try:
            submit(plan.start())
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    task = running.pop(fut)
                    row = fut.result()
                    rows.append(row)
                    progress(row)
                    submit(plan.done(task, row))
        except BaseException as exc:  # a failed run ends the study: cancel the rest
            for fut in running:
                fut.cancel()
            _stop_workers(pool)
            if isinstance(exc, BrokenProcessPool):
                msg = (
                    "a study worker process died (out of memory or killed?); "
                    "try fewer --jobs"
                )
                raise click.ClickException(msg) from None
            raise
    return rows


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Ctrl-C held back while this process may start worker processes, and
    acted on after: a terminal sends it to the whole process group, and a worker
    still starting up (importing NumPy, before `_init_worker` ignores SIGINT)
    printed its KeyboardInterrupt traceback; a KeyboardInterrupt here, between a
    worker's start and the pool's record of it, would leave that worker running.
    The workers start with SIGINT blocked (POSIX: they inherit this thread's
    mask); this process notes it meanwhile (any of its threads may take it) and
    raises it after."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # pragma: no cover - signal handlers belong to the main thread
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    mask = getattr(signal, "pthread_sigmask", None)
    old = None if mask is None else mask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        if mask is not None and old is not None:
            mask(signal.SIG_SETMASK, old)
        signal.signal(signal.SIGINT, previous)
    if held and callable(previous):
        previous(signal.SIGINT, None)  # Python's: KeyboardInterrupt


def _stop_workers(pool: Any) -> None:
    """End the pool's worker processes now, so that a study that is interrupted
    (Ctrl-C, SIGTERM) or has failed exits at once: `Future.cancel` cannot reach
    the runs in flight nor those already handed to a worker's queue, and leaving
    the pool would wait for all of them to train to the end."""
    processes = getattr(pool, "_processes", None) or {}  # pid -> Process
    for process in list(processes.values()):
        with contextlib.suppress(Exception):
            process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


# The resolution of the CPU clock the estimate reads.
_CPU_TICK = max(time.get_clock_info("process_time").resolution, 1e-9)

# CPU seconds a worker process takes to start (Python, NumPy, arrayloss, the data).
WORKER_START_SECONDS = 1.5


def _estimate(
    datasets: dict[str, Any],
    plan: _Plan,
    hidden: tuple[int, ...],
    batch_size: int,
    jobs: int,
) -> float:
    """CPU seconds the plan should take: a few batches of each loss and data set
    timed now, scaled to the plan's epochs."""
    import numpy as np

    from .. import mlp
    from ..datasets import split

    def seconds_per_sample(spec: str, loss: str, params: dict[str, Any]) -> float:
        s = split(datasets[spec], seed=0)
        n = min(s.y_train.size, 10 * batch_size)
        net = mlp.init([s.x_train.shape[1], *hidden, datasets[spec].n_classes])
        x, y = s.x_train[:n], np.asarray(s.y_train[:n])
        steps = [0]

        def count(epoch: int, step: int, value: Any) -> None:
            steps[0] += 1

        start = time.process_time()
        try:
            mlp.fit(net, x, y, loss=loss, loss_params=params, optimizer=mlp.Adam(),
                    epochs=1, batch_size=batch_size, on_batch=count)  # fmt: skip
            done = n
        except mlp.TrainingDiverged:  # a probe only: the runs will be marked diverged
            done = min(n, (steps[0] + 1) * batch_size)  # the batch that diverged too
        # at least the clock's tick: a coarse CPU clock (Windows: 16 ms) reads 0
        # for a small probe, and the ratios below divide by it
        return max(time.process_time() - start, _CPU_TICK) / done

    specs = list(dict.fromkeys(c["data"] for c in plan.cells))
    losses = {c["label"]: (c["loss"], c["loss_params"]) for c in plan.cells}
    with _one_blas_thread():
        seconds_per_sample(specs[0], "cross_entropy", {})  # warm up
        base = {d: seconds_per_sample(d, "cross_entropy", {}) for d in specs}
        ratio = {
            label: seconds_per_sample(specs[0], name, params) / base[specs[0]]
            for label, (name, params) in losses.items()
        }
    per_run: dict[int, float] = {}
    for c in plan.cells:
        s = split(datasets[c["data"]], seed=0)
        # Training, plus the validation and test scores of every epoch.
        samples = (
            s.y_train.size * ratio[c["label"]] + (s.y_val.size + s.y_test.size) / 3
        )
        # The rule's minimum and most of the patience: the default grid's runs
        # averaged 38 epochs at a minimum of 30 and a patience of 10.
        epochs = min(c["epochs"] + 0.8 * c["patience"], c["max_epochs"])
        per_run[id(c)] = epochs * samples * base[c["data"]]
    tune_each = len(plan.lr_grid) if len(plan.lr_grid) > 1 else 0
    runs = sum(per_run[id(c)] * (tune_each + plan.seeds) for c in plan.cells)
    return float(runs + jobs * WORKER_START_SECONDS)


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children so far."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _git_commit() -> str:
    """The commit of the checkout arrayloss runs from (``+changes`` when its code
    differs from it), or ``"unknown"`` outside a git checkout."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return "unknown"

    # the checkout's own repository: not one a GIT_DIR or GIT_WORK_TREE of the
    # caller's environment (a git hook, a script) names
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True,
            timeout=30, check=False, env=env,
        )  # fmt: skip
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "arrayloss")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit or "unknown") + (" +changes" if commit and dirty else "")


def _curves(rows: list[dict[str, Any]], noise: float) -> list[dict[str, Any]]:
    """Mean noisy-validation and test accuracy per epoch over the reported seeds of
    each (data set, loss) at ``noise`` (diverged runs left out), up to the longest
    run: a run that has stopped counts with its last epoch's model, which is what
    it keeps; ``runs`` is the number still training at that epoch."""
    groups: dict[tuple[str, str], list[list[tuple[float, float]]]] = {}
    for r in rows:
        if r["phase"] == "report" and r["noise"] == noise and r["curve"]:
            groups.setdefault((r["data"], r["loss"]), []).append(r["curve"])
    out = []
    for (data, loss), curves in groups.items():
        for e in range(max(len(c) for c in curves)):
            at = [c[min(e, len(c) - 1)] for c in curves]
            out.append(
                {
                    "data": data,
                    "loss": loss,
                    "noise": noise,
                    "epoch": e + 1,
                    "runs": sum(len(c) > e for c in curves),
                    "val_accuracy": sum(v for v, _ in at) / len(at),
                    "test_accuracy": sum(t for _, t in at) / len(at),
                }
            )
    return out


def _floats(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> list[float] | None:
    if value is None:
        return None
    try:
        values = [float(v) + 0.0 for v in value.split(",") if v.strip()]  # -0: 0
    except ValueError:
        msg = f"expected comma-separated numbers (got {value!r})"
        raise click.BadParameter(msg, ctx, param) from None
    if param.name == "lr_grid":
        bad = [r for r in values if not (math.isfinite(r) and r > 0)]
        what = "learning rates must be finite and > 0"
    else:
        bad = [r for r in values if not 0 <= r < 1]
        what = "noise rates must lie in [0, 1)"
    if not values or bad:
        msg = f"{what} (got {value!r})"
        raise click.BadParameter(msg, ctx, param)
    return sorted(set(values))


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
            note_on_stderr(f"note: not registered, left out: {', '.join(missing)}")
        losses = [(n, {}) for n in DEFAULT_LOSSES if n in LOSSES]
    from .._registry import USER_LOSSES

    seen: dict[tuple[str, tuple[tuple[str, Any], ...]], str] = {}
    for name, params in losses:
        label = _label(name, params)
        # the parameters in effect: a default given explicitly is the same loss
        info = LOSSES.get(name) or USER_LOSSES.get(name)
        effective = {**(dict(info.params) if info is not None else {}), **params}
        key = (name, tuple(sorted(effective.items())))
        if key in seen:
            first = seen[key]
            msg = (
                f"{label!r} is given twice"
                if first == label
                else f"{label!r} is {first!r} again (the same parameters in effect)"
            )
            raise click.BadParameter(msg, ctx, param)
        seen[key] = label
    return losses


def _user_losses(
    losses: Iterable[tuple[str, dict[str, Any]]],
) -> dict[str, tuple[str, str | None]]:
    """Where the worker processes find the user losses (``--loss
    module:function``) the study runs; a usage error for one they cannot."""
    from .._user import user_references

    try:
        return user_references(name for name, _ in losses)
    except ValueError as exc:
        msg = f"{exc}; pass -j 1 to run it in this process"
        raise click.UsageError(msg) from None


def _data_sets(specs: Sequence[str]) -> dict[str, Any]:
    """The data sets by spec, loaded and checked; without ``--data``, the defaults
    (MNIST-1D left out, with a note, when its package is missing)."""
    import importlib.util

    from ..datasets import MNIST1D_HINT

    if not specs:
        specs = list(DEFAULT_DATA)
        if importlib.util.find_spec("mnist1d") is None:
            note_on_stderr(f"note: mnist1d left out; it needs {MNIST1D_HINT}")
            specs.remove("mnist1d")
    from ._output import file_identity

    out: dict[str, Any] = {}
    names: dict[str, str] = {}
    files: dict[Any, str] = {}  # by (device, inode): a link to a file is the file
    for spec in specs:
        if spec in out:
            msg = f"{spec!r} is given twice"
            raise click.BadParameter(msg, param_hint="'--data'")
        ident = spec if spec in DATA_NAMES else file_identity(spec)
        if ident in files:
            msg = f"{spec!r} and {files[ident]!r} are one file (studied twice)"
            raise click.BadParameter(msg, param_hint="'--data'")
        files[ident] = spec
        dataset = load_data(spec)
        if dataset.name in names:
            msg = (
                f"{spec!r} and {names[dataset.name]!r} are both named {dataset.name!r}"
            )
            raise click.BadParameter(msg, param_hint="'--data'")
        names[dataset.name] = spec
        out[spec] = dataset
    return out


def _about(dataset: Any) -> dict[str, Any]:
    from ..datasets import split

    s = split(dataset, seed=0)
    n = dataset.y.size + (0 if dataset.y_test is None else dataset.y_test.size)
    return {
        "samples": int(n),
        "classes": int(dataset.n_classes),
        "features": int(dataset.x.shape[1]),
        "train": int(s.y_train.size),
        "val": int(s.y_val.size),
        "test": int(s.y_test.size),
        "about": (
            f"{n} samples, {dataset.n_classes} classes, {dataset.x.shape[1]} "
            f"features; {s.y_train.size} training, {s.y_val.size} validation and "
            f"{s.y_test.size} test samples per run."
        ),
    }


@click.command("study")
@click.option(
    "--data",
    "data_specs",
    multiple=True,
    metavar="digits|synthetic|mnist1d|PATH",
    help="A data set, as for `arrayloss train`; repeat for several. "
    "[default: synthetic, digits and mnist1d (with the 'data' extra)]",
)
@opt.loss_option(
    callback=_losses,
    help="[default: " + ", ".join(DEFAULT_LOSSES) + " (those registered)]",
)
@click.option(
    "--grid",
    type=click.Choice(sorted(GRIDS)),
    default="default",
    show_default=True,
    help="Preset of --noise, --seeds, --epochs, --patience and --max-epochs; "
    + "; ".join(
        f"{name}: noise {','.join(f'{n:g}' for n in g['noises'])}, {g['seeds']} "
        f"seeds, {g['epochs']} to {g['max_epochs']} epochs, patience "
        f"{g['patience']}"
        for name, g in GRIDS.items()
    )
    + ". The options below override it.",
)
@click.option(
    "--noise",
    "noises",
    default=None,
    callback=_floats,
    metavar="R1,R2,...",
    help="Label-noise rates of the training and validation labels, each in [0, 1).  "
    "[default: the --grid preset]",
)
@opt.noise_kind_option()
@opt.count_option(
    "--seeds",
    default=None,
    help="Reported runs per cell, seeds 0, 1, ...  [default: the --grid preset]",
)
@opt.count_option(
    "--epochs",
    default=None,
    high=opt.MAX_EPOCHS,
    help="Epochs every run trains at least.  [default: the --grid preset]",
)
@opt.count_option(
    "--patience",
    default=None,
    high=opt.MAX_EPOCHS,
    help="After --epochs, train until the noisy-validation accuracy has not "
    "improved for this many epochs (a plateau).  [default: the --grid preset]",
)
@opt.count_option(
    "--max-epochs",
    default=None,
    high=opt.MAX_EPOCHS,
    help="Cap of every run; a run cut here before its plateau is flagged in the "
    "tables.  [default: the --grid preset, at least --epochs]",
)
@click.option(
    "--lr-grid",
    default=",".join(f"{r:g}" for r in LR_GRID),
    show_default=True,
    callback=_floats,
    metavar="R1,R2,...",
    help="Learning rates tried per data set, loss and noise rate, on the noisy "
    "validation part of the --tune-seed run; one rate: no tuning.",
)
@opt.count_option(
    "--tune-seed",
    default=TUNE_SEED,
    low=0,
    help="Seed of the tuning runs (the reported runs use seeds 0, 1, ...).",
)
@opt.batch_size_option(64)
@opt.hidden_option()
@opt.optimizer_option("adam")
@opt.weight_decay_option()
@opt.top_k_option()
@opt.count_option(
    "-j",
    "--jobs",
    default=2,
    help="Parallel worker processes, at most one per CPU (1: run in this process).",
)
@click.option(
    "--out",
    type=OutputPath(file_okay=False, path_type=Path),
    default=Path("arrayloss-study"),
    show_default=True,
    help="Directory for " + ", ".join(TABLE_FILES + PLOT_FILES) + " (created if "
    "missing; written together when the study ends).",
)
@click.option(
    "--no-plot",
    is_flag=True,
    help="Skip the PNGs (no matplotlib needed); those of an earlier study in --out "
    "are removed with the commit, so that the folder holds this study alone.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def study(
    data_specs: tuple[str, ...],
    losses: list[tuple[str, dict[str, Any]]],
    grid: str,
    noises: list[float] | None,
    noise_kind: str,
    seeds: int | None,
    epochs: int | None,
    patience: int | None,
    max_epochs: int | None,
    lr_grid: list[float],
    tune_seed: int,
    batch_size: int,
    hidden: tuple[int, ...],
    optimizer: str,
    weight_decay: float,
    top_k: int,
    jobs: int,
    out: Path,
    no_plot: bool,
    quiet: bool,
) -> None:
    """Compare losses under label noise: every data set × loss × noise rate × seed.

    Each run splits the data 60/20/20 by its seed (MNIST-1D keeps its own test
    part), flips that fraction of the training and validation labels (the test
    labels stay clean) and trains the same MLP for at least --epochs epochs, then
    until the noisy-validation accuracy has not improved for --patience epochs (at
    most --max-epochs); its learning rate is chosen per data set, loss and noise
    rate on the noisy validation part of a separate tuning seed. Reported: test accuracy at the final epoch and early-stopped on
    the noisy validation part, and each loss against cross-entropy paired by seed
    (mean difference, 95 % t interval, wins, verdict). The default grid is
    sized for at most 10 minutes of CPU time; every study prints its estimate
    first, and a progress bar on a terminal.

    Exit codes: 0 success (diverged runs are results, marked in runs.csv); 1 bad
    data or an output that cannot be written; 2 bad usage. Every option is checked
    before the first run, and the files are written together at the end.
    """
    import importlib.util

    from .. import __version__
    from ..datasets import split

    preset = GRIDS[grid]
    noises = list(preset["noises"]) if noises is None else noises
    seeds = preset["seeds"] if seeds is None else seeds
    epochs = preset["epochs"] if epochs is None else epochs
    patience = preset["patience"] if patience is None else patience
    if max_epochs is None:
        max_epochs = max(preset["max_epochs"], epochs)
    elif max_epochs < epochs:
        msg = f"--max-epochs {max_epochs} is below --epochs {epochs}"
        raise click.UsageError(msg)
    if not losses:
        msg = "no loss to study"
        raise click.UsageError(msg)
    if len(lr_grid) > 1 and tune_seed < seeds:
        msg = (
            f"--tune-seed {tune_seed} is one of the reported seeds 0..{seeds - 1}; "
            "the rate must be chosen on a separate seed"
        )
        raise click.UsageError(msg)
    n_cells = len(losses) * len(noises) * max(len(data_specs), 1)
    n_runs = n_cells * (seeds + (len(lr_grid) if len(lr_grid) > 1 else 0))
    if n_runs > MAX_RUNS:
        msg = (
            f"{n_cells} cells x ({seeds} seeds + tuning) = {n_runs} runs, more than "
            f"{MAX_RUNS}; lower --seeds"
        )
        raise click.UsageError(msg)
    datasets = _data_sets(data_specs)
    for dataset in datasets.values():
        for name, params in losses:
            check_loss(name, params, dataset.n_classes)
        if opt.top_k_given(click.get_current_context(silent=True)):
            opt.check_top_k(top_k, dataset.n_classes, dataset.name)
        split(dataset, seed=0)  # too few samples: the part sizes do not depend on it
        check_features(dataset, "float32")  # the dtype of every run
    names = TABLE_FILES + (() if no_plot else PLOT_FILES)
    files = [(out / f, f"--out file {f}") for f in names]
    inputs = [p for spec in datasets for p in data_inputs(spec)]
    check_outputs(files, inputs=inputs, directory=out)
    stale = [(out / f, f"--out file {f}") for f in PLOT_FILES if no_plot]
    _check_stale(stale, inputs)
    # After the usage checks (exit 2), before any run: a missing plotting library
    # must not cost the whole study.
    if not no_plot and importlib.util.find_spec("matplotlib") is None:
        msg = "the plot needs matplotlib: pip install 'arrayloss[plot]' (or pass --no-plot)"
        raise click.ClickException(msg)
    if not no_plot:
        from ._plot import matplotlib_problem

        problem = matplotlib_problem()
        if problem is not None:
            msg = f"the plot: {problem} (or pass --no-plot)"
            raise click.ClickException(msg)
    curve_noise = min(noises, key=lambda n: (abs(n - 0.4), n))  # the curves' rate
    cells: list[dict[str, Any]] = [
        {
            "data": spec,
            "loss": name,
            "loss_params": params,
            "label": _label(name, params),
            "noise": noise,
            "noise_kind": noise_kind,
            "hidden": hidden,
            "epochs": epochs,
            "patience": patience,
            "max_epochs": max_epochs,
            "batch_size": batch_size,
            "optimizer": optimizer,
            "weight_decay": weight_decay,
            "top_k": top_k,
        }
        for spec in datasets
        for name, params in losses
        for noise in noises
    ]
    plan = _Plan(cells, lr_grid, seeds, tune_seed)
    jobs = min(jobs, plan.total, os.cpu_count() or 1)
    for dataset in datasets.values():  # before the probe allocates any of it
        s = split(dataset, seed=0)
        check_model_memory(
            [s.x_train.shape[1], *hidden, dataset.n_classes],
            rows=min(batch_size, s.y_train.size),
            dtype="float32",
            optimizer=optimizer,
            jobs=jobs,
        )
    user_losses = _user_losses(losses) if jobs > 1 else {}
    commit = _git_commit()  # now: the code the runs use, whatever changes later
    cpu0, start = _cpu_seconds(), time.perf_counter()
    with data_errors():  # the probe trains too: a model too large for an array
        estimate = _estimate(datasets, plan, hidden, batch_size, jobs)
    note_on_stderr(
        f"{plan.total} runs ({plan.total - len(cells) * seeds} tuning, "
        f"{len(cells) * seeds} reported); estimated {estimate / 60:.1f} CPU "
        f"minutes, about {estimate / 60 / jobs:.1f} minutes with {jobs} "
        f"job{'s' * (jobs > 1)} on idle cores"
    )
    with data_errors(), _Progress(plan.total, quiet) as progress:
        rows = _execute(plan, jobs, datasets, progress, user_losses)
    elapsed, cpu = time.perf_counter() - start, _cpu_seconds() - cpu0
    by_name = {spec: d.name for spec, d in datasets.items()}
    rank = {
        (by_name[c["data"]], c["label"], c["noise"]): i for i, c in enumerate(cells)
    }
    rows.sort(
        key=lambda r: (
            r["phase"] != "tune",
            rank[(r["data"], r["loss"], r["noise"])],
            r["seed"],
            r["lr"],
        )
    )
    command = (  # quoted as a shell reads it: the command runs again as written
        "arrayloss study " + shlex.join(sys.argv[2:])
        if sys.argv[1:2] == ["study"]
        else ""
    )
    meta: dict[str, Any] = {
        "arrayloss": __version__,
        "commit": commit,
        "command": utf8_text(command.strip()),
        "grid": grid,
        "data_sets": {d.name: _about(d) for d in datasets.values()},
        "losses": [_label(n, p) for n, p in losses],
        "noises": noises,
        "noise_kind": noise_kind,
        "seeds": seeds,
        "tune_seed": tune_seed,
        "lr_grid": lr_grid,
        "epochs": epochs,
        "patience": patience,
        "max_epochs": max_epochs,
        "batch_size": batch_size,
        "hidden": list(hidden),
        "optimizer": optimizer,
        "weight_decay": weight_decay,
        "top_k": top_k,
        "curve_noise": curve_noise,
        "jobs": jobs,
        "runs": len(rows),
        "wall_seconds": round(elapsed, 1),
        "cpu_seconds": round(cpu, 1),
        "estimated_cpu_seconds": round(estimate, 1),
    }
    csv_text = report.write_runs(rows)
    parsed = report.read_runs(csv_text)  # the tables come from the text written
    curves_text = report.write_curves(_curves(rows, curve_noise))
    page = report.summary_page(parsed, meta, plots=not no_plot)
    failure = echo_before_writing(
        report.describe(meta) + "\n\n" + report.glance(parsed)
    )
    failed = [r for r in rows if r["error"]]
    if failed:
        note_on_stderr(
            f"{len(failed)} run(s) diverged; see the error column of runs.csv"
        )
    contents: list[bytes] = [
        csv_text.encode(),
        curves_text.encode(),
        (json.dumps(meta, indent=2) + "\n").encode(),
        page.encode(),
    ]
    if not no_plot:
        drawn = report.figures(parsed, report.read_curves(curves_text), meta)
        contents += [blob for _, blob in drawn]
    write_outputs(
        [
            (path, label, functools.partial(_write_blob, blob))
            for (path, label), blob in zip(files, contents, strict=True)
        ],
        inputs=inputs,
        directory=out,
        # --no-plot: an earlier study's figures would stay beside this report
        remove=stale,
    )
    if failure is not None:
        raise failure
    click.echo(f"wrote {printable(str(out))}/" + ", ".join(names))


def _check_stale(stale: Sequence[tuple[Path, str]], inputs: Sequence[str]) -> None:
    """Before any run: the earlier study's files that this one removes (its
    figures, under --no-plot) may be removed: none is an input or read-only."""
    from ._output import file_identity, read_only_error

    given = {file_identity(p): p for p in inputs}
    for path, label in stale:
        if not path.is_file():
            continue
        if file_identity(str(path)) in given:
            msg = f"{label} {str(path)!r} is the input {given[file_identity(str(path))]!r}; choose another --out"
            raise click.UsageError(msg)
        read_only = read_only_error(str(path), label)
        if read_only is not None:
            raise read_only


def _write_blob(blob: bytes, f: BinaryIO) -> None:
    f.write(blob)
