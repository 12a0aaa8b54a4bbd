"""``arrayloss train``: train a small MLP with any registry loss and report metrics.

The helpers here (data loading, ``--hidden`` and ``--loss`` parsing, one training
run) are shared with ``arrayloss study``.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

__all__ = ["RunResult", "parse_hidden", "run", "train"]

DATA_NAMES = ("digits", "synthetic")


def parse_hidden(
    ctx: click.Context | None, param: click.Parameter | None, value: str
) -> tuple[int, ...]:
    """``"128,64"`` -> ``(128, 64)``; ``""`` or ``"none"`` -> ``()`` (a linear model)."""
    text = value.strip().lower()
    if text in ("", "none"):
        return ()
    widths = []
    for part in text.split(","):
        try:
            w = int(part)
        except ValueError:
            msg = f"hidden layer widths must be integers separated by commas (got {value!r})"
            raise click.BadParameter(msg, ctx, param) from None
        if w < 1:
            msg = f"hidden layer widths must be >= 1 (got {w} in {value!r})"
            raise click.BadParameter(msg, ctx, param)
        widths.append(w)
    return tuple(widths)


def parse_loss(
    ctx: click.Context | None, param: click.Parameter | None, value: str
) -> tuple[str, dict[str, Any]]:
    """``NAME[:k=v,...]`` -> ``(name, params)`` through the shared parser."""
    from ._options import parse_loss_spec

    try:
        name, params = parse_loss_spec(value)
    except click.BadParameter as exc:
        exc.ctx, exc.param = exc.ctx or ctx, exc.param or param
        raise
    return name, dict(params)


def check_loss(name: str, params: Mapping[str, Any], n_classes: int) -> None:
    """Run the loss once on a tiny batch so bad parameters fail before training."""
    from ._options import check_loss_params

    check_loss_params(name, params, n_classes, param_hint="'--loss'")


def load_data(spec: str, param_hint: str = "'--data'") -> Any:
    """A `Dataset` by name or path; unknown names are usage errors, bad files data errors."""
    from ..datasets import DataError, load

    if spec not in DATA_NAMES and not Path(spec).exists():
        msg = f"{spec!r} is not 'digits', 'synthetic' or an existing file or directory"
        raise click.BadParameter(msg, param_hint=param_hint)
    try:
        return load(spec)
    except DataError as exc:
        raise click.ClickException(str(exc)) from None


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
) -> RunResult:
    """Add label noise to the training part of splits ``s``, train, evaluate.

    Validation and test labels stay clean. ``history`` holds, per epoch, the mean
    training loss and the validation accuracy.
    """
    import numpy as np

    from .. import mlp
    from ..datasets import add_label_noise

    y_train = add_label_noise(
        s.y_train, label_noise, n_classes=s.n_classes, kind=noise_kind, seed=seed
    )
    net = mlp.init(
        [s.x_train.shape[1], *hidden, s.n_classes],
        activation=activation, seed=seed, dtype=dtype, xp=xp,
    )  # fmt: skip
    opt: mlp.SGD | mlp.Adam = (
        mlp.SGD(lr=0.1 if lr is None else lr, momentum=momentum)
        if optimizer == "sgd"
        else mlp.Adam(lr=1e-3 if lr is None else lr)
    )
    history: list[dict[str, float]] = []

    def on_epoch(epoch: int, params: mlp.MLP, mean_loss: float) -> None:
        val = mlp.evaluate(params, s.x_val, s.y_val, k=top_k)
        history.append(
            {"epoch": epoch, "loss": mean_loss, "val_accuracy": val["accuracy"]}
        )

    start = time.perf_counter()
    net = mlp.fit(
        net, s.x_train, y_train, loss=loss, loss_params=loss_params, optimizer=opt,
        epochs=epochs, batch_size=batch_size, weight_decay=weight_decay, seed=seed,
        on_batch=on_batch, on_epoch=on_epoch,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    test_scores = mlp.to_numpy(mlp.predict(net, s.x_test))
    metrics = {
        "train": mlp.evaluate(net, s.x_train, y_train, k=top_k),
        "test": mlp.score_metrics(test_scores, s.y_test, k=top_k),
    }
    return RunResult(
        net, metrics, history, test_scores, s.y_test,
        int(np.sum(y_train != s.y_train)), seconds,
    )  # fmt: skip


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

    if importlib.util.find_spec("matplotlib") is None:
        msg = "--plot needs matplotlib: pip install 'arrayloss[plot]'"
        raise click.ClickException(msg) from None


def _plot_curves(history: list[dict[str, float]], path: Path, title: str) -> None:
    from matplotlib.figure import Figure

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
    fig.savefig(path, dpi=120)


def _progress(total: int) -> Any:
    """A click progress bar on stderr that shows the running loss."""
    return click.progressbar(
        length=total, label="training", file=sys.stderr, item_show_func=lambda s: s,
        show_eta=True, width=24,
    )  # fmt: skip


@click.command("train")
@click.option(
    "--data",
    default="digits",
    show_default=True,
    metavar="digits|synthetic|PATH",
    help="Bundled digits, the synthetic 100-class set, or a file: .npz with x "
    "and y, or MNIST IDX files (a directory or an images file).",
)
@click.option(
    "--loss",
    "loss_spec",
    default="cross_entropy",
    show_default=True,
    metavar="NAME[:k=v,...]",
    callback=parse_loss,
    help="A loss from `arrayloss list`, with parameters, e.g. "
    "smooth_topk_svm:k=5,tau=0.5.",
)
@click.option(
    "--hidden",
    default="128",
    show_default=True,
    callback=parse_hidden,
    metavar="W1,W2,...",
    help="Hidden layer widths ('none' for a linear model).",
)
@click.option(
    "--activation",
    type=click.Choice(["relu", "tanh"]),
    default="relu",
    show_default=True,
)
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option(
    "--optimizer", type=click.Choice(["sgd", "adam"]), default="sgd", show_default=True
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Learning rate  [default: 0.1 for sgd, 0.001 for adam]",
)
@click.option(
    "--momentum",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.9,
    show_default=True,
    help="SGD momentum.",
)
@click.option(
    "--weight-decay",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="L2 penalty on the weights.",
)
@click.option(
    "--label-noise",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    metavar="RATE",
    help="Fraction of training labels flipped, in [0, 1).",
)
@click.option(
    "--noise-kind",
    type=click.Choice(["symmetric", "pairflip"]),
    default="symmetric",
    show_default=True,
)
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="k of the top-k accuracy.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seeds the split, the noise, the weights and the batch order.",
)
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float64"]),
    default="float32",
    show_default=True,
)
@click.option(
    "--backend",
    type=click.Choice(["numpy", "cupy"]),
    default="numpy",
    show_default=True,
)
@click.option(
    "--save",
    "save_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write model.npz, test_logits.npy, test_labels.npy and "
    "metrics.json to this directory.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Save training curves to this image (needs matplotlib).",
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

    Exit codes: 0 success; 1 bad data or training diverged; 2 bad usage.
    """
    from ..datasets import split
    from ._options import format_spec

    if plot_path is not None:
        _check_matplotlib()
    xp = _namespace(backend)
    dataset = load_data(data)
    name, params = loss_spec
    check_loss(name, params, dataset.n_classes)

    splits = split(dataset, seed=seed)
    show = not quiet and sys.stderr.isatty()
    steps = epochs * math.ceil(splits.y_train.size / batch_size)
    bar: Any = _progress(steps) if show else contextlib.nullcontext()
    running: list[float] = []

    def on_batch(epoch: int, step: int, value: Any) -> None:
        v = float(value)
        running.append(v if not running else 0.9 * running[-1] + 0.1 * v)
        bar.update(1, f"epoch {epoch}/{epochs} loss {running[-1]:.4f}")

    try:
        with bar:
            result = run(
                splits, loss=name, loss_params=params, hidden=hidden,
                activation=activation, epochs=epochs, batch_size=batch_size,
                optimizer=optimizer, lr=lr, momentum=momentum,
                weight_decay=weight_decay, label_noise=label_noise,
                noise_kind=noise_kind, seed=seed, top_k=top_k, dtype=dtype, xp=xp,
                on_batch=on_batch if show else None,
            )  # fmt: skip
    except FloatingPointError as exc:
        raise click.ClickException(str(exc)) from None

    lr_used = lr if lr is not None else (0.1 if optimizer == "sgd" else 1e-3)
    sizes = "-".join(str(s) for s in result.params.sizes)
    k = int(result.metrics["test"]["k"])
    spec = format_spec(name, params)
    click.echo(f"data       {dataset.name}: {dataset.n_classes} classes; "
               f"{splits.y_train.size} train, {splits.y_val.size} validation, "
               f"{splits.y_test.size} test samples")  # fmt: skip
    if label_noise:
        click.echo(f"noise      {noise_kind}, {result.n_flipped} training labels flipped "
                   f"({label_noise:g}); train metrics use the noisy labels")  # fmt: skip
    click.echo(f"model      {sizes} {activation}, loss {spec}, {optimizer} lr={lr_used:g}, "
               f"{epochs} epochs of batch {batch_size}, seed {seed} "
               f"({result.seconds:.1f} s)")  # fmt: skip
    click.echo(f"{'':<12}{'train':>8}{'test':>8}")
    rows = (
        ("accuracy", "accuracy"),
        (f"top-{k} acc", "top_k_accuracy"),
        ("nll", "nll"),
        ("ece", "ece"),
    )
    for label, key in rows:
        tr, te = result.metrics["train"][key], result.metrics["test"][key]
        click.echo(f"{label:<12}{tr:>8.4f}{te:>8.4f}")

    config = {
        "data": data, "loss": name, "loss_params": params, "hidden": list(hidden),
        "activation": activation, "epochs": epochs, "batch_size": batch_size,
        "optimizer": optimizer, "lr": lr_used, "momentum": momentum,
        "weight_decay": weight_decay, "label_noise": label_noise,
        "noise_kind": noise_kind, "seed": seed, "dtype": dtype, "top_k": top_k,
    }  # fmt: skip
    if save_dir is not None:
        _save(save_dir, result, config)
        click.echo(
            f"saved      {save_dir}/model.npz, test_logits.npy, test_labels.npy, metrics.json"
        )
    if plot_path is not None:
        _plot_curves(result.history, plot_path, f"{dataset.name}, {spec}")
        click.echo(f"plot       {plot_path}")


def _save(directory: Path, result: RunResult, config: dict[str, Any]) -> None:
    import numpy as np

    from .. import mlp

    try:
        directory.mkdir(parents=True, exist_ok=True)
        mlp.save(result.params, directory / "model.npz", **config)
        np.save(directory / "test_logits.npy", result.test_scores)
        np.save(directory / "test_labels.npy", result.test_labels)
        summary = {
            "config": config,
            "metrics": result.metrics,
            "history": result.history,
        }
        (directory / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    except OSError as exc:
        msg = f"cannot write to {directory}: {exc}"
        raise click.ClickException(msg) from None
