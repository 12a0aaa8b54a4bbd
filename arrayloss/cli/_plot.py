"""``arrayloss eval --plot FILE.png``: the reliability diagram (and confusion matrix).

One PNG figure:

* a **reliability diagram**: for each equal-width bin of the top-label confidence,
  a bar of the bin's accuracy, its gap to the bin's mean confidence hatched, and
  the diagonal of perfect calibration; the ECE (from the same exact tallies as
  ``--metric ece``) is printed on it;
* beneath it, the **confidence histogram**: each bin's share of the (weighted)
  samples;
* with ``--confusion``, a **second panel** to the right: the confusion matrix with
  each row (true class) divided by its sum, so the diagonal is each class's
  recall, as a heat map on ``[0, 1]`` (class names on the axes up to 30 classes).

matplotlib (the ``plot`` extra) is imported only here, when ``--plot`` is given,
and drawn without pyplot (an Agg canvas of its own: no global state, no display).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._errors import DataError, UsageError, one_line

__all__ = [
    "matplotlib_problem",
    "require_matplotlib",
    "text_as_given",
    "write_plot",
]

PLOT_HINT = "pip install 'arrayloss[plot]'"
MAX_TICK_CLASSES = 30


def matplotlib_problem() -> str | None:
    """Import matplotlib's figures now: ``None`` when they can draw, else why not:
    matplotlib refuses to start on a bad ``MPLBACKEND`` or ``matplotlibrc``, which
    found only when a plot is drawn would lose the work done before it. (An
    `ImportError`, matplotlib not installed, is raised.)"""
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise
    except Exception as exc:
        backend = os.environ.get("MPLBACKEND")
        hint = f"; MPLBACKEND is {backend!r}" if backend else ""
        return f"matplotlib cannot start ({one_line(exc)}{hint})"
    return None


@contextlib.contextmanager
def text_as_given() -> Iterator[None]:
    """Draw the figures built inside with every text as it is given (the names of
    data files, classes, losses): no mathtext, which parsed a name with ``$`` as
    TeX (``a$x^$.npz``: a ValueError when the figure was saved, after all the
    training), and characters the font lacks (a data set named 日本.npz) as boxes
    without matplotlib's "Glyph ... missing from font" warning, a line on stderr
    per character and an error where warnings are errors."""
    import matplotlib as mpl

    with (
        warnings.catch_warnings(),
        mpl.rc_context({"text.parse_math": False}),
    ):
        warnings.filterwarnings(
            "ignore", message=r"Glyph \d+ .*missing from font", category=UserWarning
        )
        yield


def require_matplotlib() -> None:
    """A `UsageError` (exit 2, one line naming the extra) when matplotlib is absent
    or cannot start (`matplotlib_problem`)."""
    try:
        problem = matplotlib_problem()
    except ImportError:
        msg = f"--plot needs matplotlib, which is not installed ({PLOT_HINT})"
        raise UsageError(msg) from None
    if problem is not None:
        msg = f"--plot: {problem}"
        raise UsageError(msg)


def write_plot(
    path: str,
    label: str,
    diagram: dict[str, Any],
    heat: tuple[np.ndarray, list[str]] | None,
) -> None:
    """Draw the figure and save it as PNG to ``path`` (``label``: the name the user
    gave, for errors).  ``diagram`` is `arrayloss.metrics.Reliability.result`;
    ``heat`` the confusion matrix and class names, or ``None``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with text_as_given():  # class names such as '$x^$' (not TeX)
        fig = Figure(figsize=(11.0, 6.0) if heat else (6.0, 6.0), layout="constrained")
        FigureCanvasAgg(fig)
        if heat is None:
            grid = fig.add_gridspec(2, 1, height_ratios=(3, 1))
        else:
            grid = fig.add_gridspec(2, 2, height_ratios=(3, 1), width_ratios=(1, 1.1))
        ax = fig.add_subplot(grid[0, 0])
        hist = fig.add_subplot(grid[1, 0], sharex=ax)
        _reliability(ax, hist, diagram)
        if heat is not None:
            _confusion(fig, fig.add_subplot(grid[:, 1]), *heat)
        png = io.BytesIO()  # PIL seeks in the file it writes: a pipe has no seek
        fig.savefig(png, format="png", dpi=100)
        try:
            with open(path, "wb") as f:
                f.write(png.getbuffer())
        except OSError as exc:
            msg = f"cannot write --plot '{label}': {exc.strerror or exc}"
            raise DataError(msg) from None


def _reliability(ax: Any, hist: Any, diagram: dict[str, Any]) -> None:
    edges = np.asarray(diagram["edges"])
    left, width = edges[:-1], np.diff(edges)
    filled = np.array([a is not None for a in diagram["accuracy"]])
    acc = np.array([a or 0.0 for a in diagram["accuracy"]])
    conf = np.array([c or 0.0 for c in diagram["confidence"]])
    ax.bar(
        left[filled], acc[filled], width=width[filled], align="edge",
        color="#4c72b0", edgecolor="black", linewidth=0.6, label="accuracy",
    )  # fmt: skip
    ax.bar(
        left[filled], (conf - acc)[filled], bottom=acc[filled], width=width[filled],
        align="edge", facecolor="none", edgecolor="#c44e52", hatch="///",
        linewidth=0.8, label="gap to mean confidence",
    )  # fmt: skip
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    ax.text(
        0.03, 0.95, f"ECE = {diagram['ece']:.4f}", transform=ax.transAxes,
        va="top", fontsize=12,
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "gray"},
    )  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title("reliability diagram")
    ax.legend(loc="lower right", fontsize=9)
    ax.tick_params(labelbottom=False)
    hist.bar(
        left, diagram["weight"], width=width, align="edge", color="#55a868",
        edgecolor="black", linewidth=0.6,
    )  # fmt: skip
    hist.set_xlabel("confidence (top-label probability)")
    hist.set_ylabel("share of samples")


def _confusion(fig: Any, ax: Any, matrix: np.ndarray, names: list[str]) -> None:
    m = np.asarray(matrix, dtype=np.float64)
    totals = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)
    image = ax.imshow(norm, vmin=0.0, vmax=1.0, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    n = len(names)
    if n <= MAX_TICK_CLASSES:
        ticks = np.arange(n)
        ax.set_xticks(ticks, labels=names, rotation=90 if n > 10 else 0)
        ax.set_yticks(ticks, labels=names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("confusion matrix (rows normalised)")
