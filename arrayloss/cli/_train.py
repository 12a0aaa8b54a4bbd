"""``arrayloss train``: train a small MLP with any registry loss and report metrics.

The helpers here are shared with ``arrayloss study``: data loading, one training
run (`run`), and the command-line safety layer (expected errors become one line
and an exit status in the top-level handler, `arrayloss.cli._LazyGroup.invoke`):

- `OutputPath`, `plot_format`, `check_outputs`: every output path checked before
  any work (a usage error for an empty name, an unknown image type, two outputs
  naming one file or an output that is an input; a data error for a path that
  cannot be written);
- `write_outputs`: all output files of a command through one
  `arrayloss.cli._output.Outputs`, committed together at the end (a full disk or
  any error leaves the old files, no temporary file and no new folder).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import click

from .._errors import (
    DataError,
    UsageError,
    blamed_line,
    one_line,
    printable,
    utf8_text,
)
from ._options import (
    backend_option,
    batch_size_option,
    check_top_k,
    choice_option,
    count_option,
    data_option,
    epochs_option,
    fraction_option,
    hidden_option,
    json_params,
    loss_option,
    lr_option,
    noise_kind_option,
    optimizer_option,
    top_k_given,
    top_k_option,
    weight_decay_option,
)

__all__ = [
    "PLOT_FORMATS",
    "OutputPath",
    "RunResult",
    "check_features",
    "check_metrics",
    "check_model_memory",
    "check_outputs",
    "data_errors",
    "echo_before_writing",
    "note_on_stderr",
    "plot_format",
    "run",
    "train",
    "write_outputs",
]

DATA_NAMES = ("digits", "synthetic", "mnist1d")

# Image types for --plot: matplotlib writes these without extra software.
PLOT_FORMATS = (
    "png",
    "pdf",
    "svg",
    "svgz",
    "eps",
    "ps",
    "jpg",
    "jpeg",
    "tif",
    "tiff",
    "webp",
)


class OutputPath(click.Path):
    """`click.Path` for an output that refuses an empty name, and ``-``.

    An empty ``--save "$DIR"`` would otherwise mean the current directory, and
    ``--save -`` a folder named ``-``; a file output (``dir_okay=False``) ending
    in a slash names a folder (``--plot o/x.png/`` wrote ``o/x.png``).
    (Local to train and study for now; it belongs with the shared options.)
    """

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail(
                "an empty path is not an output (use '.' for this directory)",
                param,
                ctx,
            )
        if isinstance(value, str) and not self.dir_okay:  # before Path drops a "/"
            from ._output import folder_name_error

            problem = folder_name_error(value)
            if problem is not None:
                self.fail(problem, param, ctx)
        if value == "-":  # made a folder named '-' where standard output was meant
            self.fail(
                "'-' (standard output) cannot take these files; name a path "
                "('./-' for a file or folder named so)",
                param,
                ctx,
            )
        return super().convert(value, param, ctx)


def check_loss(name: str, params: Mapping[str, Any], n_classes: int) -> None:
    """Run the loss once on a tiny batch so bad parameters fail before training."""
    from ._options import check_loss_params

    check_loss_params(name, params, n_classes, param_hint="'--loss'")


def load_data(spec: str, param_hint: str = "'--data'") -> Any:
    """A `Dataset` by name or path.

    An unknown name is a `click.BadParameter` (exit 2); a file that cannot be used
    raises `DataError`, and ``mnist1d`` without its package a `click.ClickException`
    naming the extra (exit 1).
    """
    from ..datasets import load

    if spec not in DATA_NAMES and (not spec.strip() or not os.path.lexists(spec)):
        msg = (
            f"{spec!r} is not 'digits', 'synthetic', 'mnist1d' or an existing file "
            "or directory"
        )
        raise click.BadParameter(msg, param_hint=param_hint)
    try:
        return load(spec)
    except ModuleNotFoundError as exc:
        raise click.ClickException(one_line(exc)) from None


def check_features(dataset: Any, dtype: str) -> float:
    """The largest absolute feature; `DataError` if it overflows ``dtype``."""
    import numpy as np

    top = max(
        float(np.max(np.abs(a))) for a in (dataset.x, dataset.x_test) if a is not None
    )
    if top > float(np.finfo(dtype).max):
        msg = (
            f"{dataset.name}: features up to {top:.3g} overflow {dtype}; rescale them"
            + (" or pass --dtype float64" if dtype != "float64" else "")
        )
        raise DataError(msg)
    return top


def check_model_memory(
    sizes: Sequence[int],
    *,
    rows: int,
    dtype: str,
    optimizer: str,
    jobs: int = 1,
) -> None:
    """`DataError` when training an MLP of layer widths ``sizes`` on batches of
    ``rows`` rows surely needs more than this machine's memory (``jobs`` runs at
    once), before any of it is allocated.

    A lower bound: the parameters, their gradients, the step's new parameters and
    the optimizer's state (SGD's momentum, Adam's two moments), and two arrays
    per layer of the batch.  One array larger than the memory is a
    ``MemoryError`` at once, but layers that each fit and together do not were
    allocated one after another until the system killed the process (no message,
    exit 137).
    """
    import itertools

    from ..datasets import _memory

    memory = _memory()
    if memory is None:  # pragma: no cover - not POSIX
        return
    itemsize = 8 if dtype == "float64" else 4
    params = sum(a * b + b for a, b in itertools.pairwise(sizes))
    copies = 3 + (1 if optimizer == "sgd" else 2)
    need = jobs * itemsize * (copies * params + 2 * rows * sum(sizes))
    if need > memory:
        runs = f" ({jobs} runs at once)" if jobs > 1 else ""
        msg = (
            f"the model {'-'.join(map(str, sizes))} has {params:.3g} parameters: "
            f"training it on batches of {rows} rows{runs} needs at least "
            f"{need / 2**30:.3g} GiB, more than this machine's memory "
            f"({memory / 2**30:.3g} GiB); use a smaller --hidden or --batch-size"
        )
        raise DataError(msg)


def check_metrics(
    metrics: Mapping[str, Mapping[str, float]], name: str, dtype: str, scale: float
) -> None:
    """`DataError` when a metric of the trained model is not finite.

    Every metric of finite scores is finite; one that is not means the scores
    (or their sum over the samples) overflowed ``dtype``, as features far larger
    on one part than on another make them, and the number would be wrong.
    """
    for part, values in metrics.items():
        bad = [f"{k} {v:g}" for k, v in values.items() if not math.isfinite(v)]
        if bad:
            msg = (
                f"{name}: the trained model's {part} metrics are not finite "
                f"({', '.join(bad)}): its scores overflow {dtype} (features up to "
                f"{scale:.3g}); rescale the features"
                + (" or pass --dtype float64" if dtype != "float64" else "")
            )
            raise DataError(msg)


def _metric_cell(value: float) -> str:
    """A metric of the table: four decimals, or three significant digits where
    the number is large (an NLL of ``1.27e+42``, not 43 digits)."""
    return f"{value:.4f}" if abs(value) < 1e3 else f"{value:.3g}"


def data_inputs(spec: str) -> list[str]:
    """The files behind ``--data``, which no output may replace."""
    return [] if spec in DATA_NAMES else [spec]


# -- errors and output files (shared with `arrayloss study`) -----------------------


@contextlib.contextmanager
def data_errors() -> Iterator[None]:
    """Training runs inside: a `ValueError` from the library becomes a `DataError`.

    The library checks the data it is given (labels, features, loss inputs) with
    `ValueError`; from a run of ``train`` or ``study`` that is bad data (exit 1,
    one line), not a bug. The one place both commands convert it.
    """
    try:
        yield
    except DataError:
        raise
    except UsageError:
        raise
    except ValueError as exc:
        raise DataError(blamed_line(exc)) from None  # naming a user's loss


def plot_format(path: Path | None, param_hint: str = "'--plot'") -> str:
    """The image type named by ``path``'s extension; `click.BadParameter` if unsupported."""
    if path is None:
        return ""
    ext = path.suffix.lower().lstrip(".")
    if ext not in PLOT_FORMATS:
        got = f"{path.suffix!r}" if path.suffix else "no extension"
        msg = (
            f"cannot tell the image type of {str(path)!r} ({got}); end the name in "
            + ", ".join("." + f for f in PLOT_FORMATS)
        )
        raise click.BadParameter(msg, param_hint=param_hint)
    return ext


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists."""
    p = Path(os.path.abspath(path))
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def check_outputs(
    files: Sequence[tuple[Path, str]],
    *,
    inputs: Iterable[str] = (),
    directory: Path | None = None,
) -> None:
    """Refuse outputs that cannot be written, before any work is done.

    ``files`` are ``(path, label)`` pairs. Two outputs naming one file, or an
    output that is an input, are a `UsageError`; an output that is a directory, or
    whose folder is not a folder, cannot be written or does not exist, is a
    `DataError`. ``directory`` is the folder `write_outputs` creates (and its
    missing parents): a file in it need not have its folder yet. Writing itself
    goes through `write_outputs`.
    """
    created: set[Path] = set()
    if directory is not None:
        p = Path(os.path.realpath(directory))
        while not os.path.lexists(p) and p != p.parent:
            created.add(p)
            p = p.parent
    from ._output import file_identity, read_only_error

    # by (device, inode): a hard link to the input is the input
    seen: dict[tuple[int, int] | str, str] = {}
    probed: set[Path] = set()
    for spec in inputs:
        seen[file_identity(spec)] = f"the input {spec!r}"
    for path, label in files:
        real = os.path.realpath(path)
        ident = file_identity(str(path))
        if ident in seen:
            what = seen[ident]
            if what.startswith("the input"):
                msg = f"{label} {str(path)!r} is {what}; choose another file"
            else:
                msg = f"{label} {str(path)!r} and {what} name the same file"
            raise UsageError(msg)
        seen[ident] = f"{label} {str(path)!r}"
        if os.path.isdir(real):
            msg = f"cannot write {label} {str(path)!r}: it is a directory"
            raise DataError(msg)
        read_only = read_only_error(str(path), label)
        if read_only is not None:
            raise read_only
        folder = _nearest_existing(Path(real).parent)
        try:
            name_max = os.pathconf(folder, "PC_NAME_MAX") if folder.is_dir() else 255
        except (OSError, ValueError):  # pragma: no cover - no pathconf here
            name_max = 255
        long = [
            c
            for c in Path(real).relative_to(folder).parts
            if len(os.fsencode(c)) > name_max
        ]
        if long:
            msg = (
                f"cannot write {label} {str(path)!r}: the name {long[0][:20] + '...'!r} "
                f"is longer than {name_max} bytes"
            )
            raise DataError(msg)
        if not folder.is_dir():
            msg = f"cannot write {label} {str(path)!r}: {str(folder)!r} is not a directory"
            raise DataError(msg)
        if not os.access(folder, os.W_OK | os.X_OK):
            where = (
                f"{str(folder)!r} is on a read-only file system"
                if _read_only(folder)
                else f"no permission to write in {str(folder)!r}"
            )
            msg = f"cannot write {label} {str(path)!r}: {where}"
            raise DataError(msg)
        if folder not in probed:  # what os.access cannot tell (/proc, NFS, root)
            probed.add(folder)
            why = _cannot_create_in(folder)
            if why is not None:
                msg = f"cannot write {label} {str(path)!r}: no file can be made in {str(folder)!r} ({why})"
                raise DataError(msg)
        parent = Path(real).parent
        if not os.path.lexists(parent) and parent not in created:
            msg = f"cannot write {label} {str(path)!r}: the folder {str(parent)!r} does not exist"
            raise DataError(msg)
        try:
            os.stat(path)  # what else writing would meet: a loop of links
        except FileNotFoundError:
            pass
        except OSError as exc:
            msg = f"cannot write {label} {str(path)!r}: {exc.strerror or exc}"
            raise DataError(msg) from None


def _read_only(folder: Path) -> bool:
    """Whether ``folder`` is on a file system mounted read-only (where root, too,
    is refused: "no permission" misled)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # pragma: no cover - not POSIX
        return False


def _cannot_create_in(folder: Path) -> str | None:
    """Why no file can be created in ``folder`` (a hidden one is made and removed
    again to find out), or ``None``."""
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".arrayloss-", suffix=".part")
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return None


def _open_output(path: str) -> BinaryIO:
    """Open one output for writing (the single place, so tests can fill the disk)."""
    return open(path, "wb")


def _make_dirs(directory: Path) -> list[Path]:
    """Create ``directory`` and its missing parents; return those created, outermost first.

    Through links, as `check_outputs` looks: a dangling link's target is created.
    """
    missing: list[Path] = []
    p = Path(os.path.realpath(directory))
    while not os.path.lexists(p) and p != p.parent:
        missing.append(p)
        p = p.parent
    created: list[Path] = []
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            if d.is_dir():  # made meanwhile by another run: theirs, not removed
                continue
            _remove_dirs(created)
            msg = f"cannot create directory {str(directory)!r}: {str(d)!r} exists"
            raise DataError(msg) from None
        except OSError as exc:
            _remove_dirs(created)
            msg = f"cannot create directory {str(directory)!r}: {exc.strerror or exc}"
            raise DataError(msg) from None
        created.append(d)
    return created


def _remove_dirs(created: list[Path]) -> None:
    for d in reversed(created):
        with contextlib.suppress(OSError):
            d.rmdir()


def write_outputs(
    files: Sequence[tuple[Path, str, Callable[[BinaryIO], Any]]],
    *,
    inputs: Iterable[str] = (),
    directory: Path | None = None,
    remove: Sequence[tuple[Path, str]] = (),
) -> None:
    """Write every file through one `Outputs`, committed together at the end.

    ``files`` are ``(path, label, fill)``; ``fill(f)`` writes the content to the
    binary file ``f``. ``remove`` are ``(path, label)`` of an earlier run's
    outputs that this one does not write, removed in the same commit (those that
    exist as regular files). ``directory`` (created when missing) holds some of them. On
    any error (a full disk included) no destination is replaced, no temporary file
    stays, and the folders created here are removed again; the error is a
    `DataError` naming the file.
    """
    from ._output import Outputs, install_signal_handlers

    install_signal_handlers()  # SIGTERM while writing: clean up, as on an error
    created = [] if directory is None else _make_dirs(directory)
    try:
        with Outputs(inputs=list(inputs)) as out:
            for path, label, fill in files:
                target = out.add(str(path), label)
                try:
                    with _open_output(target) as f:
                        fill(f)
                except OSError as exc:
                    msg = f"cannot write {label} {str(path)!r}: {exc.strerror or exc}"
                    raise DataError(msg) from None
            for path, label in remove:
                out.remove(str(path), label)
    except BaseException:
        _remove_dirs(created)
        raise


def echo_before_writing(text: str) -> OSError | None:
    """Print a command's results on standard output, and return the error of
    doing so (the reader of a pipe gone, a full disk) instead of raising it: the
    command writes its files first and raises it after.  ``arrayloss study ...
    | head -3`` lost the whole study's files when ``head`` had gone before the
    table was printed."""
    try:
        click.echo(text)
    except OSError as exc:
        return exc
    return None


def note_on_stderr(text: str) -> None:
    """A line of progress or a note on standard error, lost without a word when
    it cannot be written (its reader gone: ``arrayloss study 2>&1 | head -2``
    ended the study at its next progress line, all its runs lost)."""
    with contextlib.suppress(OSError):
        click.echo(text, err=True)


# Offset of the seed that flips validation labels in `run` (``noisy_validation``),
# so that they are drawn independently of the training labels.
VAL_NOISE_SEED = 1_000_003


@dataclass
class RunResult:
    """What one training run produced."""

    params: Any
    metrics: dict[str, dict[str, float]]
    history: list[dict[str, float]] = field(default_factory=list)
    test_scores: Any = None
    test_labels: Any = None
    n_flipped: int = 0
    seconds: float = 0.0


def run(
    s: Any,
    *,
    loss: str,
    loss_params: Mapping[str, Any],
    hidden: tuple[int, ...],
    activation: str = "relu",
    epochs: int,
    batch_size: int,
    optimizer: str,
    lr: float | None,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    label_noise: float = 0.0,
    noise_kind: str = "symmetric",
    seed: int = 0,
    top_k: int = 5,
    dtype: str = "float32",
    xp: Any = None,
    on_batch: Callable[[int, int, Any], None] | None = None,
    noisy_validation: bool = False,
    track_test: bool = False,
    patience: int | None = None,
    max_epochs: int | None = None,
) -> RunResult:
    r"""Add label noise to the training part of splits ``s``, train, evaluate.

    Test labels stay clean. Validation labels stay clean too, unless
    ``noisy_validation``: then they are flipped like the training labels (same
    rate and kind, their own draw, `VAL_NOISE_SEED` + ``seed``), as a practitioner's
    held-out part of noisy data would be. ``history`` holds, per epoch, the mean
    training loss and the validation accuracy, and with ``track_test`` the test
    accuracy and top-k accuracy of that epoch's parameters.

    Without ``patience`` training runs ``epochs`` epochs. With it, ``epochs`` is a
    minimum: training ends after the first epoch :math:`e \ge` ``epochs`` with
    :math:`e - b_e \ge` ``patience``, :math:`b_e` the first epoch of the highest
    validation accuracy up to :math:`e` (a plateau), or after ``max_epochs``
    (default ``epochs``), whichever comes first. The epochs before the end are
    those of a run without ``patience`` (same batches, same steps).
    """
    import numpy as np

    from .. import mlp
    from ..datasets import add_label_noise

    y_train = add_label_noise(
        s.y_train, label_noise, n_classes=s.n_classes, kind=noise_kind, seed=seed
    )
    y_val = (
        add_label_noise(
            s.y_val,
            label_noise,
            n_classes=s.n_classes,
            kind=noise_kind,
            seed=VAL_NOISE_SEED + seed,
        )
        if noisy_validation
        else s.y_val
    )
    net = mlp.init(
        [s.x_train.shape[1], *hidden, s.n_classes],
        activation=activation,
        seed=seed,
        dtype=dtype,
        xp=xp,
    )
    opt: mlp.SGD | mlp.Adam = (
        mlp.SGD(lr=0.1 if lr is None else lr, momentum=momentum)
        if optimizer == "sgd"
        else mlp.Adam(lr=1e-3 if lr is None else lr)
    )
    history: list[dict[str, float]] = []
    best = {"epoch": 0, "accuracy": -math.inf}  # the first epoch of the best so far

    def on_epoch(epoch: int, params: mlp.MLP, mean_loss: float) -> bool:
        val = mlp.evaluate(params, s.x_val, y_val, k=top_k)
        entry = {"epoch": epoch, "loss": mean_loss, "val_accuracy": val["accuracy"]}
        if track_test:
            test = mlp.evaluate(params, s.x_test, s.y_test, k=top_k)
            entry["test_accuracy"] = test["accuracy"]
            entry["test_top_k_accuracy"] = test["top_k_accuracy"]
        history.append(entry)
        if val["accuracy"] > best["accuracy"]:
            best.update(epoch=epoch, accuracy=val["accuracy"])
        return (  # a plateau: `fit` stops here
            patience is not None
            and epoch >= epochs
            and epoch - best["epoch"] >= patience
        )

    start = time.perf_counter()
    net = mlp.fit(
        net,
        s.x_train,
        y_train,
        loss=loss,
        loss_params=loss_params,
        optimizer=opt,
        epochs=epochs if patience is None else max(max_epochs or epochs, epochs),
        batch_size=batch_size,
        weight_decay=weight_decay,
        seed=seed,
        on_batch=on_batch,
        on_epoch=on_epoch,
    )
    seconds = time.perf_counter() - start
    # Scores that overflow make metrics that are not finite (`check_metrics` says
    # so), not NumPy's warnings on stderr.
    with np.errstate(over="ignore", invalid="ignore"):
        test_scores = mlp.to_numpy(mlp.predict(net, s.x_test))
        metrics = {
            "train": mlp.evaluate(net, s.x_train, y_train, k=top_k),
            "test": mlp.score_metrics(test_scores, s.y_test, k=top_k),
        }
    return RunResult(
        net,
        metrics,
        history,
        test_scores,
        s.y_test,
        int(np.sum(y_train != s.y_train)),
        seconds,
    )


def _namespace(backend: str) -> Any:
    if backend == "numpy":
        return None
    try:
        import cupy
    except ImportError:
        msg = "cupy is not installed: pip install 'arrayloss[gpu]'"
        raise click.BadParameter(msg, param_hint="'--backend'") from None
    return cupy


def _check_matplotlib() -> None:
    import importlib.util

    from ._plot import matplotlib_problem

    if importlib.util.find_spec("matplotlib") is None:
        msg = "--plot needs matplotlib: pip install 'arrayloss[plot]'"
        raise click.ClickException(msg) from None
    problem = matplotlib_problem()
    if problem is not None:
        msg = f"--plot: {problem}"
        raise click.ClickException(msg)


def _plot_curves(
    history: list[dict[str, float]], image_format: str, title: str
) -> bytes:
    """The training curves as an image in memory (written with the other outputs)."""
    from matplotlib.figure import Figure

    from ._plot import text_as_given

    with text_as_given():  # a data set named in any script, with any characters
        fig = Figure(figsize=(8, 3.2), layout="constrained")
        ax1, ax2 = fig.subplots(1, 2)
        epochs = [h["epoch"] for h in history]
        ax1.plot(epochs, [h["loss"] for h in history], marker=".")
        ax1.set(xlabel="epoch", ylabel="training loss", title="mean training loss")
        ax2.plot(epochs, [h["val_accuracy"] for h in history], marker=".", color="C1")
        ax2.set(xlabel="epoch", ylabel="accuracy", title="validation accuracy")
        for ax in (ax1, ax2):
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.grid(alpha=0.3)
        fig.suptitle(title)
        buf = io.BytesIO()
        fig.savefig(buf, format=image_format, dpi=120)
    return buf.getvalue()


def _progress(total: int) -> Any:
    """A click progress bar on stderr that shows the running loss."""
    return click.progressbar(
        length=total,
        label="training",
        file=sys.stderr,
        item_show_func=lambda s: s,
        show_eta=True,
        width=24,
    )


@click.command("train")
@data_option()
@loss_option("loss_spec", multiple=False, default="cross_entropy")
@hidden_option()
@choice_option("--activation", choices=("relu", "tanh"))
@epochs_option(20)
@batch_size_option(64)
@optimizer_option()
@lr_option()
@fraction_option("--momentum", default=0.9, help="SGD momentum.")
@weight_decay_option()
@fraction_option(
    "--label-noise",
    default=0.0,
    metavar="RATE",
    help="Fraction of training labels flipped, in [0, 1).",
)
@noise_kind_option()
@top_k_option()
@count_option(
    "--seed",
    default=0,
    low=0,
    help="Seeds the split, the noise, the weights and the batch order.",
)
@choice_option("--dtype", choices=("float32", "float64"))
@backend_option(("numpy", "cupy"))
@click.option(
    "--save",
    "save_dir",
    type=OutputPath(file_okay=False, path_type=Path),
    default=None,
    help="Write model.npz, test_logits.npy, test_labels.npy and "
    "metrics.json to this directory (created if missing; all four or none).",
)
@click.option(
    "--plot",
    "plot_path",
    type=OutputPath(dir_okay=False, path_type=Path),
    default=None,
    help="Save training curves to this image: .png, .pdf, .svg, ... (needs matplotlib).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def train(
    data: str,
    loss_spec: tuple[str, dict[str, Any]],
    hidden: tuple[int, ...],
    activation: str,
    epochs: int,
    batch_size: int,
    optimizer: str,
    lr: float | None,
    momentum: float,
    weight_decay: float,
    label_noise: float,
    noise_kind: str,
    top_k: int,
    seed: int,
    dtype: str,
    backend: str,
    save_dir: Path | None,
    plot_path: Path | None,
    quiet: bool,
) -> None:
    """Train an MLP on a data set with one loss; print accuracy, top-k, NLL and ECE.

    The data are split 60/20/20 into train, validation and test parts by --seed
    (MNIST files keep their own test part); label noise touches only the training
    labels. NLL and ECE use the softmax of the network's scores whatever the loss.
    The progress bar goes to stderr, and only to a terminal.

    Exit codes: 0 success; 1 bad data, training diverged or an output cannot be
    written; 2 bad usage. Every option is checked before training starts, and the
    output files are written together at the end: on an error none is replaced.
    """
    from .. import mlp
    from ..datasets import split
    from ._options import format_spec

    # Every check before any work: usage (exit 2) first, then the data (exit 1).
    image_format = plot_format(plot_path)
    xp = _namespace(backend)
    if plot_path is not None:
        _check_matplotlib()
    dataset = load_data(data)
    name, params = loss_spec
    check_loss(name, params, dataset.n_classes)
    if top_k_given(click.get_current_context(silent=True)):
        check_top_k(top_k, dataset.n_classes, dataset.name)
    splits = split(dataset, seed=seed)
    feature_scale = check_features(dataset, dtype)
    outputs = _save_files(save_dir) + (
        [] if plot_path is None else [(plot_path, "--plot image")]
    )
    check_outputs(outputs, inputs=data_inputs(data), directory=save_dir)
    if xp is None:  # (a GPU's memory is its own)
        check_model_memory(
            [splits.x_train.shape[1], *hidden, dataset.n_classes],
            rows=min(batch_size, splits.y_train.size),
            dtype=dtype,
            optimizer=optimizer,
        )
    lr_used = lr if lr is not None else (0.1 if optimizer == "sgd" else 1e-3)

    from .._errors import stderr_is_a_terminal

    show = not quiet and stderr_is_a_terminal()
    steps = epochs * math.ceil(splits.y_train.size / batch_size)
    bar: Any = _progress(steps) if show else contextlib.nullcontext()
    running: list[float] = []

    def on_batch(epoch: int, step: int, value: Any) -> None:
        v = float(value)
        running.append(v if not running else 0.9 * running[-1] + 0.1 * v)
        bar.update(1, f"epoch {epoch}/{epochs} loss {running[-1]:.4f}")

    try:
        with bar, data_errors():
            result = run(
                splits,
                loss=name,
                loss_params=params,
                hidden=hidden,
                activation=activation,
                epochs=epochs,
                batch_size=batch_size,
                optimizer=optimizer,
                lr=lr,
                momentum=momentum,
                weight_decay=weight_decay,
                label_noise=label_noise,
                noise_kind=noise_kind,
                seed=seed,
                top_k=top_k,
                dtype=dtype,
                xp=xp,
                on_batch=on_batch if show else None,
            )
    except mlp.TrainingDiverged as exc:
        msg = (
            f"training diverged in epoch {exc.epoch} ({exc.reason} on the first "
            "batch, before any step, so no smaller --lr helps); check the "
            f"parameters of --loss {format_spec(name, params)!r}"
            # the penalty is part of the loss: 1e308 x |W|^2 overflows alone
            + (f" and --weight-decay {weight_decay:g}" if weight_decay else "")
            if exc.at_start
            else f"training diverged in epoch {exc.epoch} ({exc.reason}); "
            f"try a smaller --lr than {lr_used:g}"
        )
        if feature_scale > 1e3:
            msg += f", or rescale the features (|x| up to {feature_scale:.3g})"
        raise click.ClickException(msg) from None

    check_metrics(result.metrics, dataset.name, dtype, feature_scale)
    sizes = "-".join(str(s) for s in result.params.sizes)
    k = int(result.metrics["test"]["k"])
    spec = format_spec(name, params)
    lines = [
        f"data       {dataset.name}: {dataset.n_classes} classes; "
        f"{splits.y_train.size} train, {splits.y_val.size} validation, "
        f"{splits.y_test.size} test samples"
    ]
    if label_noise:
        lines.append(
            f"noise      {noise_kind}, {result.n_flipped} training labels flipped "
            f"({label_noise:g}); train metrics use the noisy labels"
        )
    lines.append(
        f"model      {sizes} {activation}, loss {spec}, {optimizer} lr={lr_used:g}, "
        f"{epochs} epochs of batch {batch_size}, seed {seed} "
        f"({result.seconds:.1f} s)"
    )
    rows = (
        ("accuracy", "accuracy"),
        (f"top-{k} acc", "top_k_accuracy"),
        ("nll", "nll"),
        ("ece", "ece"),
    )
    cells = [
        (label, _metric_cell(result.metrics["train"][key]),
         _metric_cell(result.metrics["test"][key]))
        for label, key in rows
    ]  # fmt: skip
    width = max(8, *(1 + len(c) for _, tr, te in cells for c in (tr, te)))
    lines.append(f"{'':<12}{'train':>{width}}{'test':>{width}}")
    lines += [f"{label:<12}{tr:>{width}}{te:>{width}}" for label, tr, te in cells]
    failure = echo_before_writing("\n".join(lines))

    config = {
        "data": utf8_text(data),
        "loss": name,
        "loss_params": params,
        "hidden": list(hidden),
        "activation": activation,
        "epochs": epochs,
        "batch_size": batch_size,
        "optimizer": optimizer,
        "lr": lr_used,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "label_noise": label_noise,
        "noise_kind": noise_kind,
        "seed": seed,
        "dtype": dtype,
        "top_k": top_k,
    }
    files = [] if save_dir is None else _save_contents(save_dir, result, config)
    if plot_path is not None:
        image = _plot_curves(result.history, image_format, f"{dataset.name}, {spec}")
        files.append((plot_path, "--plot image", lambda f: f.write(image)))
    write_outputs(files, inputs=data_inputs(data), directory=save_dir)
    if failure is not None:
        raise failure
    if save_dir is not None:
        click.echo(
            f"saved      {printable(str(save_dir))}/model.npz, test_logits.npy, "
            "test_labels.npy, metrics.json"
        )
    if plot_path is not None:
        click.echo(f"plot       {printable(str(plot_path))}")


SAVE_FILES = ("model.npz", "test_logits.npy", "test_labels.npy", "metrics.json")


def _save_files(directory: Path | None) -> list[tuple[Path, str]]:
    if directory is None:
        return []
    return [(directory / name, f"--save file {name}") for name in SAVE_FILES]


def _save_contents(
    directory: Path, result: RunResult, config: dict[str, Any]
) -> list[tuple[Path, str, Callable[[BinaryIO], Any]]]:
    """What ``--save`` writes: `SAVE_FILES`, as ``(path, label, fill)``."""
    import numpy as np

    from .. import mlp

    # strict JSON: a user loss's infinite parameter (clip=inf) as its text
    strict = {**config, "loss_params": json_params(config["loss_params"])}
    summary = {"config": strict, "metrics": result.metrics, "history": result.history}
    text = (json.dumps(summary, indent=2, allow_nan=False) + "\n").encode()
    fills: dict[str, Callable[[BinaryIO], Any]] = {
        "model.npz": lambda f: mlp.save(result.params, f, **config),
        "test_logits.npy": lambda f: np.save(f, result.test_scores),
        "test_labels.npy": lambda f: np.save(f, result.test_labels),
        "metrics.json": lambda f: f.write(text),
    }
    return [(path, label, fills[path.name]) for path, label in _save_files(directory)]
