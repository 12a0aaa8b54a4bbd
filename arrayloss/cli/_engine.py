"""The chunk engine of ``arrayloss eval``: one chunk of rows to exact tallies.

Each chunk is checked on the host (finite scores, probabilities that are
probabilities, labels in range, weights finite and non-negative, each problem
reported with its row), moved to the chosen backend, and reduced to exact
sufficient statistics: `arrayloss.metrics` tallies (float64 sums within a chunk,
fractions across chunks) and, per loss, the exact ``sum(w * loss)`` and ``sum(w)``
as fractions (`arrayloss._exact`: exact within a chunk too).  A loss whose
per-row values do not depend on the batch is therefore identical at every chunk
size, and the metrics agree with the in-memory ones to about 1e-16.  A per-sample loss that is not finite (a loss that overflows float64 for
finite scores, such as ``l2`` of 1e200) is a `DataError` naming the loss and the
row, never a NaN in the table.

The same `evaluate_chunk` runs on the workers of ``--dask``
(`arrayloss.cli._dask_eval`), so both paths give the same numbers.  `stream`
evaluates chunks on a pool of threads, each into empty tallies merged in file
order, so its results are those of one thread, bit for bit.
"""

from __future__ import annotations

import errno
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache, cached_property, partial
from typing import Any

import click
import numpy as np

from .._errors import DataError, UsageError, stderr_is_a_terminal
from .._errors import one_line as _one_line
from .._exact import exact_dot
from .._rounding import (
    MAX_ROUNDING,
    RENORMALIZE_TOLERANCE,
    beyond_rounding,
    renormalized,
    rounding_tolerance,
)
from .._validation import env_count

__all__ = [
    "CHUNK_ELEMENTS",
    "MAX_CHUNK_ROWS",
    "MAX_EVAL_THREADS",
    "MAX_ROUNDING",
    "MAX_THREADS",
    "RENORMALIZE_TOLERANCE",
    "SAMPLE_COLUMNS",
    "THREADS_ENV",
    "ClipTally",
    "IgnoreTally",
    "LossTally",
    "PerSampleWriter",
    "ProbInput",
    "Tallies",
    "backend_converter",
    "chunk_rows",
    "default_threads",
    "eval_threads",
    "evaluate_chunk",
    "keep_freed_memory",
    "loss_value",
    "sample_columns",
    "stream",
    "with_progress",
]

CHUNK_ELEMENTS = 1 << 19
"""Default chunk: at most `MAX_CHUNK_ROWS` rows and ~512K scores (cache-sized)."""

MAX_CHUNK_ROWS = 65536


def chunk_rows(n_classes: int) -> int:
    """The default rows per chunk for ``n_classes`` scores a row."""
    return max(1, min(MAX_CHUNK_ROWS, CHUNK_ELEMENTS // n_classes))


@dataclass
class LossTally:
    """One ``--loss``: its spec and the exact weighted sum and weight so far."""

    spec: str
    name: str
    params: dict[str, Any]
    total: Fraction = field(default_factory=Fraction)
    weight: Fraction = field(default_factory=Fraction)


@dataclass(frozen=True)
class ProbInput:
    """How probabilities (``--input probs`` or ``logprobs``) are read.

    ``eps``: each probability is clipped to ``[eps, 1]`` before its logarithm is
    taken (by ``nll`` and by the losses); ``None`` is the machine epsilon of the
    scores' dtype, ``numpy.finfo(dtype).eps``, as ``sklearn.metrics.log_loss``
    uses.  ``eps=0`` clips nothing: a zero true-class probability makes ``nll``
    ``inf``, a subnormal one keeps its finite logarithm (`nll_floor`; the losses,
    which need finite logits, read probabilities below the dtype's smallest
    normal number as that number).  ``renormalize``: rows that sum to 1 up to the
    rounding of their digits (`arrayloss._rounding.rounding_tolerance`: at
    least `RENORMALIZE_TOLERANCE`, at most `MAX_ROUNDING`) are divided by their
    sum.
    """

    eps: float | None = None
    renormalize: bool = False

    def check_eps(self, stored: Any) -> None:
        """`UsageError` for an ``eps`` between 0 and the smallest normal number of
        the computation dtype of scores stored as ``stored``: the floor cannot be
        below it (every logarithm must be finite), so such an eps would be raised
        to it while the report showed the eps asked for, and ``nll`` would differ
        from ``sklearn.metrics.log_loss`` clipped at that eps."""
        if not self.eps:  # auto or 0
            return
        dtype = _compute_dtype(stored)
        tiny = float(np.finfo(dtype).smallest_normal)
        if self.eps < tiny:
            msg = (
                f"--eps {self.eps!r} is below the smallest normal number of "
                f"{dtype.name} scores, {tiny!r}, the least floor eval clips to: "
                f"give --eps {tiny!r} or more, or 0 to clip nothing"
            )
            raise UsageError(msg)

    def floor(self, dtype: Any) -> float:
        """The clipping floor for scores computed in ``dtype`` (never below the
        smallest normal number, so every logarithm is finite; a positive ``eps``
        below it is a `UsageError`: `check_eps`)."""
        self.check_eps(dtype)
        info = np.finfo(dtype)
        eps = float(info.eps) if self.eps is None else self.eps
        return max(eps, float(info.smallest_normal))

    def nll_floor(self, dtype: Any) -> float:
        """The floor ``nll`` clips true-class probabilities to: `floor`, or ``0``
        for ``eps=0`` (nothing clipped: a subnormal probability keeps its finite
        logarithm, a zero gives ``inf``; only the losses' logits are floored)."""
        return 0.0 if self.eps == 0 else self.floor(dtype)

    def eps_for(self, dtype: Any) -> float:
        """The ``eps`` in effect for ``dtype`` (as reported)."""
        return float(np.finfo(dtype).eps) if self.eps is None else self.eps


@dataclass
class ClipTally:
    """The samples whose true-class probability was clipped, and their effect.

    ``count``: how many (any weight); ``moved``: the exact ``sum(w * (log floor -
    log p_y))`` over them, by how much clipping lowered the weighted NLL sum;
    ``infinite``: whether some sample of non-zero weight had ``p_y = 0`` (the
    unclipped NLL is then ``inf``).
    """

    count: int = 0
    moved: Fraction = field(default_factory=Fraction)
    infinite: bool = False
    eps: float | None = None  # the eps in effect (the first chunk's dtype)

    def merge(self, other: ClipTally) -> ClipTally:
        """Both tallies together (exact; order does not matter)."""
        return ClipTally(
            self.count + other.count,
            self.moved + other.moved,
            self.infinite or other.infinite,
            self.eps if self.eps is not None else other.eps,
        )

    def add(
        self, p_y: np.ndarray, w: np.ndarray | None, *, log: bool, floor: float
    ) -> None:
        """Add one chunk's true-class probabilities (``log``: log-probabilities)
        clipped at ``floor`` (``0``, for --eps 0: nothing is clipped, the zeros,
        whose NLL is ``inf``, are counted)."""
        p_y = np.asarray(p_y, dtype=np.float64)
        if floor > 0:
            clipped = p_y < (math.log(floor) if log else floor)
        else:
            clipped = p_y == (-math.inf if log else 0.0)
        if not clipped.any():
            return
        self.count += int(np.count_nonzero(clipped))
        pc = p_y[clipped]
        wc = np.ones_like(pc) if w is None else np.asarray(w, np.float64)[clipped]
        with np.errstate(divide="ignore"):
            lp = pc if log else np.log(pc)
        zero = (lp == -math.inf) & (wc > 0)
        if zero.any():
            self.infinite = True
        keep = (lp != -math.inf) & (wc > 0)
        if floor > 0 and keep.any():
            d = math.log(floor) - lp[keep]
            self.moved += exact_dot(wc[keep], np.maximum(d, 0.0))


@dataclass
class IgnoreTally:
    """``--ignore-label``: the label whose samples count for nothing, and how many
    samples had it.

    As PyTorch's ``ignore_index``: such a sample gets weight 0 in every loss and
    metric (each mean is over the kept samples) and a valid stand-in label before
    the range check (`_drop_ignored`, `_zero_ignored`).
    """

    label: int
    count: int = 0

    def merge(self, other: IgnoreTally) -> IgnoreTally:
        """Both tallies together."""
        return IgnoreTally(self.label, self.count + other.count)


@dataclass
class Tallies:
    """Everything a run adds its chunks to, passed as one.

    ``metrics``: the metric (and report) tallies by key, each replaced by a new
    one as chunks are added; ``losses``: the `LossTally` of each ``--loss`` by
    spec; ``clips`` (``--input probs``/``logprobs``), ``ignored``
    (``--ignore-label``) and ``boot`` (``--bootstrap``, a
    `arrayloss.cli._bootstrap.BootstrapTally`), each ``None`` when not asked for.
    """

    metrics: dict[str, Any]
    losses: dict[str, LossTally]
    clips: ClipTally | None = None
    ignored: IgnoreTally | None = None
    boot: Any = None
    probs_like: str = ""  # the warning of logits that look like probabilities
    index_like: str = ""  # the warning of a first score column of row numbers
    label_like: str = ""  # the warning of a score column that holds the labels
    # the score columns' names, when the labels are those names (no --classes)
    header_classes: tuple[str, ...] | None = None
    zero_label: bool = False  # a (kept) label of class 0 was read: not 1-based

    def empty(self, *, own_boot: bool) -> Tallies:
        """Empty tallies of the same kinds, for a part of the rows to be merged
        back with `add`.  ``metrics`` must still be the empty ones (a tally is
        a value, so they are shared); ``own_boot``: a bootstrap tally of its own
        (else the same one, whose ``add`` is thread-safe)."""
        boot = self.boot
        if own_boot and boot is not None:
            boot = boot.empty()
        return Tallies(
            dict(self.metrics),
            {k: LossTally(t.spec, t.name, t.params) for k, t in self.losses.items()},
            None if self.clips is None else ClipTally(),
            None if self.ignored is None else IgnoreTally(self.ignored.label),
            boot,
        )

    def add(self, part: Tallies) -> None:
        """Merge ``part`` (from `empty`) into these tallies, exactly."""
        for key, tally in part.metrics.items():
            self.metrics[key] = _merged(self.metrics[key], tally)
        for key, t in part.losses.items():
            self.losses[key].total += t.total
            self.losses[key].weight += t.weight
        if self.clips is not None and part.clips is not None:
            merged = self.clips.merge(part.clips)
            self.clips.count, self.clips.moved = merged.count, merged.moved
            self.clips.infinite, self.clips.eps = merged.infinite, merged.eps
        if self.ignored is not None and part.ignored is not None:
            self.ignored.count += part.ignored.count
        self.zero_label = self.zero_label or part.zero_label
        if self.boot is not None and part.boot is not self.boot:
            self.boot.merge(part.boot)


def _ignored_mask(
    raw: np.ndarray, label: int, class_names: Sequence[str] | None
) -> np.ndarray | None:
    """Which raw labels equal ``label`` (``None`` when none can): integers are
    compared in their own dtype, text as `arrayloss.io.label_indices` reads it
    (the text of ``label``, or another number than a class name equal to it)."""
    if raw.ndim != 1:  # not class indices (soft labels): nothing to ignore
        return None
    kind = raw.dtype.kind
    if kind in "iu":
        info = np.iinfo(raw.dtype)
        if not info.min <= label <= info.max:
            return None
        return np.asarray(raw == label)
    if kind == "f":
        return np.asarray(raw == label)
    if kind in "US":
        from arrayloss.io._labels import text_labels_equal

        values = raw.astype(str) if kind == "S" else raw
        return text_labels_equal(values, label, class_names)
    return None


def _kept_labels(raw: np.ndarray, ignored: IgnoreTally | None) -> np.ndarray:
    """The labels ``raw`` without those of the ``--ignore-label`` (all of them
    without one, or for soft labels)."""
    if ignored is None:
        return raw
    mask = _ignored_mask(raw, ignored.label, None)
    return raw if mask is None else raw[~mask]


def _drop_ignored(
    raw: np.ndarray, ignored: IgnoreTally, class_names: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The labels with each ignored one replaced by a valid stand-in (so it is not
    range-checked), and the mask of the ignored samples (``None``: none)."""
    mask = _ignored_mask(raw, ignored.label, class_names)
    if mask is None or not mask.any():
        return raw, None
    ignored.count += int(np.count_nonzero(mask))
    raw = raw.copy()
    if raw.dtype.kind in "US":
        raw[mask] = class_names[0] if class_names else "0"
    else:  # a number that is a class, as an index or as a numeric class name
        from arrayloss.io._labels import _text_index

        numbers = (_text_index(name) for name in class_names or ())
        raw[mask] = next((n for n in numbers if n is not None and abs(n) < 2**31), 0)
    return raw, mask


def _zero_ignored(w: np.ndarray | None, mask: np.ndarray, dtype: Any) -> np.ndarray:
    """The weights with the ignored samples' set to 0 (a new array)."""
    out = np.ones(mask.shape[0], dtype=dtype) if w is None else np.array(w)
    out[mask] = 0
    return out


@cache
def _clipped_rows(rows_cls: Any) -> Any:
    """A subclass of ``rows_cls`` (`arrayloss._metric_rows._Rows`) that clips
    probabilities to ``[self.floor, 1]`` before taking their logarithm (those of
    ``nll`` to ``[self.nll_floor, 1]``; with ``nll_floor`` 0, a zero is read as
    ``floor``, its ``inf`` set by the report: the tallies take finite values)."""

    class ClippedRows(rows_cls):  # type: ignore[misc]
        floor: float

        nll_floor: float  # `ProbInput.nll_floor`: 0 for --eps 0

        @cached_property
        def nll(self) -> Any:
            xp = self.xp
            s_y = self._label_score[:, 0]
            if self.input == "probs":
                if self.nll_floor == 0:  # a zero as `floor` (inf in the report)
                    zero = s_y <= 0
                    s_y = xp.where(zero, xp.full_like(s_y, self.floor), s_y)
                return -xp.log(xp.clip(s_y, min=self.nll_floor, max=1.0))
            if self.nll_floor == 0:
                zero = s_y == -math.inf
                low = math.log(self.floor)
                return -xp.clip(xp.where(zero, xp.full_like(s_y, low), s_y), max=0.0)
            return -xp.clip(s_y, min=math.log(self.nll_floor), max=0.0)

        @cached_property
        def loss_logits(self) -> Any:
            xp = self.xp
            if self.input == "probs":
                return xp.log(xp.clip(self.z, min=self.floor, max=1.0))
            return xp.clip(self.z, min=math.log(self.floor), max=0.0)

    return ClippedRows


def _writable(a: Any) -> Any:
    """``a``, or a writable copy of it."""
    return a if a.flags.writeable else np.array(a)


_NUMPY_CONVERTER = _writable


def backend_converter(name: str) -> Callable[[Any], Any]:
    """The function that moves a NumPy chunk to backend ``name``.

    Raises `click.BadParameter` (exit 2) for a backend that is not installed or,
    for CuPy, has no CUDA device.
    """

    if name == "numpy":
        return _NUMPY_CONVERTER
    if name == "torch":
        try:
            import torch
        except ImportError:
            msg = "PyTorch is not installed (pip install 'arrayloss[torch]')"
            raise click.BadParameter(msg, param_hint=["--backend"]) from None
        device = "cuda" if torch.cuda.is_available() else "cpu"
        return lambda a: torch.from_numpy(_writable(a)).to(device)
    if name == "jax":
        try:
            import jax
        except ImportError:
            msg = "JAX is not installed (pip install 'arrayloss[jax]')"
            raise click.BadParameter(msg, param_hint=["--backend"]) from None
        jax.config.update("jax_enable_x64", True)  # type: ignore[no-untyped-call, unused-ignore]
        return jax.numpy.asarray  # float64 files stay float64
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


def with_progress(
    chunks: Iterator[Any], source: Any, quiet: bool, *, label: str = "eval"
) -> Iterator[Any]:
    """``chunks``, with a progress bar on standard error when it is a terminal."""
    if quiet or not stderr_is_a_terminal() or source.progress() is None:
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


@cache
def _numpy_is_array_api() -> bool:
    """Whether NumPy's own namespace has every array-API function the engine and
    the metrics call (NumPy 2.1: ``astype``, ``clip(min=, max=)``, ...)."""
    return bool(np.lib.NumpyVersion(np.__version__) >= "2.1.0")


def _namespace(x: Any) -> Any:
    """The array namespace of ``x``: NumPy itself for a NumPy array (2.1+).

    array-api-compat's NumPy namespace is a copy of NumPy's whose first import
    loads every lazy NumPy submodule (``f2py``, ``testing``, ...): about 0.1 s,
    a third of the startup of ``arrayloss eval``.  Both give the same numbers:
    for NumPy arrays its functions are NumPy's.
    """
    if type(x) is np.ndarray and _numpy_is_array_api():
        return np
    from array_api_compat import array_namespace

    return array_namespace(x)


def _compute_dtype(stored: Any) -> Any:
    """The dtype scores stored as ``stored`` are computed in.

    float32 and float64 stay as they are (in native byte order); anything else
    (float16, integers) becomes float64.
    """
    dtype = np.dtype(stored)
    if dtype.kind == "f" and dtype.itemsize >= 4:
        return dtype.newbyteorder("=")
    return np.dtype(np.float64)


def _checked_scores(
    s: Any, input_kind: str, *, start: int, label: str, renormalize: bool = False
) -> Any:
    """Scores rows in their computation dtype, or a `DataError` naming the row.

    ``start`` is the row number of ``s[0]`` in its file; ``label`` names the file.
    With ``renormalize``, rows of probabilities (or log-probabilities) that sum to
    1 up to the rounding of their digits (`rounding_tolerance`) are rescaled to
    sum to 1 first.
    """
    from arrayloss._metric_rows import first_bad_row

    # C order: a row's reductions then sum in one order whatever the reader gave
    # (a strided view of a CSV's columns or an Arrow batch), so each format gives
    # the same bits
    stored = np.dtype(s.dtype)  # float16 rows sum to 1 within float16's rounding
    s = np.ascontiguousarray(s, dtype=_compute_dtype(s.dtype))
    if renormalize and input_kind != "logits" and s.shape[0]:
        s = renormalized(s, input_kind)
    rounded = stored if stored.kind == "f" and stored.itemsize < 4 else None
    bad = first_bad_row(s, input_kind, xp=_namespace(s), stored=rounded)
    if bad is not None:
        hint, why, flags = "", bad[1], f"--input {input_kind}"
        if "sum to" not in why:
            pass
        elif not renormalize:
            tol = _row_tolerance(s[bad[0]], input_kind)
            if _near_one(s[bad[0]], input_kind):  # where --renormalize would help
                hint = (
                    "; for rows that sum to 1 only up to rounding (this one's "
                    f"digits explain {tol:.3g}), add --renormalize"
                )
        else:  # beyond --renormalize's tolerance, not the check's
            why, flags = _far_from_one(s[bad[0]], input_kind), f"{flags} --renormalize"
        if why.startswith("has a negative probability"):
            low = float(np.min(s[bad[0]]))
            if low >= -NEGATIVE_ROUNDING:  # 1 - sum(others) rounded below 0
                hint = (
                    "; a rounding error below 0 (as 1 - sum of the others gives)? "
                    "clip the probabilities to [0, 1] first"
                )
        if "sum to" in why and input_kind == "probs":
            total = _row_sum(s[bad[0]], input_kind)
            if abs(total - 100) <= PERCENT_TOLERANCE:
                hint = "; percentages? divide the scores by 100"
        msg = f"{label} row {start + bad[0]} {why} ({flags}){hint}"
        raise (RowSumError if "sum to" in why else DataError)(msg)
    return s


NEGATIVE_ROUNDING = 1e-9
"""Negative probabilities down to this are told they look like rounding errors."""


class RowSumError(DataError):
    """A row of probabilities (or log-probabilities) that does not sum to 1
    (`_checked_scores`); `stream` adds the score columns' names where a table
    names them (a column that is no class score is a common cause)."""


def _row_sum(row: np.ndarray, input_kind: str) -> float:
    """The float64 sum of a row's probabilities (``exp`` of log-probabilities)."""
    with np.errstate(all="ignore"):
        p = row if input_kind == "probs" else np.exp(row)
        return float(np.sum(p, dtype=np.float64))


def _row_tolerance(row: np.ndarray, input_kind: str) -> float:
    """How far from 1 ``--renormalize`` lets the row sum (`rounding_tolerance`)."""
    return float(rounding_tolerance(row[None, :], input_kind)[0])


def _near_one(row: np.ndarray, input_kind: str) -> bool:
    """Whether ``--renormalize`` would take the row (its sum within the rounding
    of its digits of 1: `rounding_tolerance`)."""
    return abs(_row_sum(row, input_kind) - 1) <= _row_tolerance(row, input_kind)


def _far_from_one(row: np.ndarray, input_kind: str) -> str:
    """Why a row of probabilities (or log-probabilities) that `renormalized`
    left alone is refused: its sum, to enough digits to be seen beyond its
    tolerance, and that tolerance."""
    total = _row_sum(row, input_kind)
    tol = _row_tolerance(row, input_kind)
    what = "probabilities" if input_kind == "probs" else "exp(log-probabilities)"
    return f"{what} sum to {total:.10g}, {beyond_rounding(tol)}"


def _checked_weights(w: Any, target: Any, *, start: int, label: str) -> Any:
    """Weights as ``target``, or a `DataError` for a negative or non-finite one."""
    w = w.astype(np.float64, copy=False)
    bad_w = ~np.isfinite(w) | (w < 0)
    if bad_w.any():
        i = int(np.argmax(bad_w))
        msg = f"{label} row {start + i}: weight {float(w[i])!r} is not finite and non-negative"
        raise DataError(msg)
    with np.errstate(over="ignore", under="ignore"):
        out = w.astype(target)
    lost = ~np.isfinite(out) | ((out == 0) & (w != 0))
    if lost.any():  # a weight the scores' dtype cannot hold: refuse, never drop it
        i = int(np.argmax(lost))
        msg = (
            f"{label} row {start + i}: weight {float(w[i])!r} is outside the range of "
            f"the scores' {np.dtype(target)} (rescale the weights)"
        )
        raise DataError(msg)
    return out


def _loss_rows(
    name: str, params: dict[str, Any], rows: Any, input_kind: str, soft: Any = None
) -> Any:
    """Per-sample values of loss ``name`` on a metrics batch ``rows`` (any
    backend), against ``soft`` labels when given, else the class indices."""
    from arrayloss._registry import get_loss

    if soft is not None:
        return get_loss(name).value(rows.loss_logits, soft, reduction="none", **params)
    if name == "cross_entropy" and input_kind == "logits" and not any(params.values()):
        # plain cross-entropy is the NLL of the softmax, which the metrics have
        # already computed by the kernel's own operations: reuse it (one exp)
        return rows.nll
    return get_loss(name).value(
        rows.loss_logits, rows.index, reduction="none", **params
    )


def evaluate_chunk(
    chunk: Any,
    input_kind: str,
    n_classes: int,
    class_names: Sequence[str] | None,
    scores_label: str,
    labels_label: str,
    weights_label: str,
    to_backend: Callable[[Any], Any],
    into: Tallies,
    *,
    want_rows: bool,
    prob: ProbInput | None = None,
    first_row: int | None = None,
    names_from: str = "--classes",
    header_names: Sequence[str] | None = None,
) -> Any:
    """Add one `arrayloss.io.Chunk` to the tallies ``into``.

    Probabilities are read as ``prob`` says (default `ProbInput()`), and the
    samples whose true-class probability is clipped are added to ``into.clips``.
    Samples whose label is ``into.ignored.label`` get weight 0 (and are counted
    there); ``into.boot`` gets the chunk's per-sample terms, its rows numbered
    from ``first_row`` (default ``chunk.start``) in the whole input.
    Returns, when ``want_rows``, the float64 ``(rows, 3 + losses)`` per-sample
    block: predicted class, confidence, true-class probability (`sample_columns`)
    and the losses.
    Raises `DataError` naming the file and row for bad scores, labels or weights,
    and for a loss or metric that is not finite on finite scores.
    """
    from arrayloss._metric_rows import _exact_sums, _Rows
    from arrayloss._xp import to_numpy
    from arrayloss.io import label_indices, soft_label_rows
    from arrayloss.io._labels import LabelRangeError

    prob = ProbInput() if prob is None else prob
    tallies, loss_tallies = into.metrics, into.losses
    clips, ignored, boot = into.clips, into.ignored, into.boot
    s = _checked_scores(
        chunk.scores, input_kind, start=chunk.start, label=scores_label,
        renormalize=prob.renormalize,
    )  # fmt: skip
    soft, ignore = None, None
    if chunk.labels.ndim == 2:  # soft labels: the metrics see their arg-max class
        soft, y = soft_label_rows(
            chunk.labels, n_classes=n_classes, dtype=s.dtype, start=chunk.start,
            label=labels_label, renormalize=prob.renormalize,
        )  # fmt: skip
        soft = to_backend(soft)
    else:
        raw_labels = chunk.labels
        if ignored is not None:
            raw_labels, ignore = _drop_ignored(raw_labels, ignored, class_names)
        read = partial(
            label_indices, n_classes=n_classes, classes=class_names,
            start=chunk.start, label=labels_label, names_from=names_from,
            header=header_names,
        )  # fmt: skip
        try:
            y = read(raw_labels)
        except LabelRangeError as exc:  # 1-based labels? a 0 before it says not
            before = read(raw_labels[: exc.index]) == 0
            if ignore is not None:
                before &= ~ignore[: exc.index]
            raise exc.one_based(into.zero_label or bool(before.any())) from None
        zero = y == 0 if ignore is None else (y == 0) & ~ignore
        into.zero_label = into.zero_label or bool(zero.any())
    w = None
    if chunk.weights is not None:
        w = _checked_weights(
            chunk.weights, s.dtype, start=chunk.start, label=weights_label
        )
    if ignore is not None:
        w = _zero_ignored(w, ignore, s.dtype)

    z = to_backend(s)
    xp = _namespace(z)
    columns = []
    # Intermediate overflow that resolves to a finite result is no error; a result
    # that is not finite is reported below, by name and row.
    with np.errstate(all="ignore"):
        rows_cls = _Rows if input_kind == "logits" else _clipped_rows(_Rows)
        rows: Any = rows_cls(
            z, to_backend(y), None if w is None else to_backend(w),
            input=input_kind, xp=xp, eager=True,
        )  # fmt: skip
        if input_kind != "logits":
            rows.floor = prob.floor(s.dtype)
            rows.nll_floor = floor = prob.nll_floor(s.dtype)
            if clips is not None:
                if clips.eps is None:
                    clips.eps = prob.eps_for(s.dtype)
                p_y = to_numpy(rows._label_score[:, 0])
                w_c = w
                if ignore is not None:  # ignored samples are never counted
                    p_y, w_c = p_y[~ignore], None if w is None else w[~ignore]
                clips.add(
                    p_y, w_c, log=input_kind == "logprobs", floor=floor,
                )  # fmt: skip
        for key, tally in tallies.items():
            try:
                tallies[key] = _added(tally, rows)
            except OverflowError:
                last = chunk.start + int(s.shape[0]) - 1
                msg = f"metric {key!r} overflows float64 on {scores_label} rows {chunk.start} to {last}"
                raise DataError(msg) from None
        per_loss: dict[str, np.ndarray] = {}
        if want_rows:
            columns += sample_columns(rows)
        for t in loss_tallies.values():
            per_row = _loss_rows(t.name, t.params, rows, input_kind, soft)
            per_host = to_numpy(per_row)
            finite = np.isfinite(per_host)
            if not finite.all():
                i = int(np.argmax(~finite))
                msg = (
                    f"loss {t.spec!r} is {float(per_host[i])!r} at {scores_label} row "
                    f"{chunk.start + i}: it overflows {per_host.dtype} for these scores"
                )
                raise DataError(msg)
            if per_row is rows.__dict__.get("nll"):  # plain CE: the NLL tally's sums
                total, weight = rows.exact_sums(per_row)
            else:
                total, weight = _exact_sums(per_host, rows.host_weights)
            t.total += total
            t.weight += weight
            if want_rows:
                columns.append(per_host.astype(np.float64))
                if ignore is not None:  # no loss for an ignored sample
                    columns[-1][ignore] = np.nan
            if boot is not None:
                per_loss[t.spec] = per_host
        if boot is not None:
            start = chunk.start if first_row is None else first_row
            boot.add(rows, tallies, per_loss, start)
    return np.stack(columns, axis=1) if want_rows else None


def _added(tally: Any, rows: Any) -> Any:
    """``tally`` with the chunk ``rows`` added; the tallies of the per-class report
    are added to in place (the engine drops the old one, so nothing is copied)."""
    from arrayloss._classwise import ClassReport

    if isinstance(tally, ClassReport):
        return tally._add(rows, owned=True)
    return tally._add(rows)


def _merged(total: Any, part: Any) -> Any:
    """``total.merge(part)``, in place for the per-class report (as `_added`)."""
    from arrayloss._classwise import ClassReport

    if isinstance(total, ClassReport):
        return total.merge(part, owned=True)
    return total.merge(part)


SAMPLE_COLUMNS = ("id", "predicted", "confidence", "p_true")
"""The first columns of ``--per-sample``, before one column per loss."""


def sample_columns(rows: Any) -> list[np.ndarray]:
    """Per sample of a metrics batch: the predicted class (arg-max, first index on
    ties, as ``accuracy``), the confidence (top-label probability) and the
    true-class probability, as float64 on the host."""
    from arrayloss._xp import take_along_axis, to_numpy

    xp = rows.xp
    pred = to_numpy(rows.predicted)
    p_true = take_along_axis(rows.probs, rows.index[:, None], xp=xp, axis=1)[:, 0]
    return [
        np.asarray(a, dtype=np.float64)
        for a in (pred, to_numpy(rows.confidence), to_numpy(p_true))
    ]


def loss_value(t: LossTally, reduction: str, n_samples: int) -> float:
    """The reduced loss; `DataError` without weight, or beyond the float64 range."""
    if reduction != "sum" and t.weight == 0:
        msg = (
            f"every one of the {n_samples} samples has weight 0 (its --weights, or "
            "--ignore-label): the mean loss needs a sample with non-zero weight"
        )
        raise DataError(msg)
    value = t.total if reduction == "sum" else t.total / t.weight
    try:
        return float(value)
    except OverflowError:
        what = "sum" if reduction == "sum" else "mean"
        msg = f"the {what} of loss {t.spec!r} over {n_samples} samples exceeds the float64 range"
        raise DataError(msg) from None


class PerSampleWriter:
    """``--per-sample``: each sample's id (its row in the whole input, from 0),
    predicted class, confidence, true-class probability and losses (the
    ``columns``) to an ``.npy`` (float64) or CSV/TSV file.

    Every failure to write (a full disk, a closed pipe) is a `DataError` naming the
    file.
    """

    def __init__(self, path: str, write_to: str, columns: list[str]) -> None:
        from arrayloss.io import NpyWriter, TextWriter

        columns = [*SAMPLE_COLUMNS, *columns]
        self._next_id = 0
        self.path = path
        suffix = os.path.splitext(path)[1].lower()
        try:
            if suffix == ".npy":
                self._writer: Any = NpyWriter(write_to, columns)
            else:
                delimiter = "\t" if suffix in (".tsv", ".tab") else ","
                self._writer = TextWriter(write_to, columns, delimiter=delimiter)
        except OSError as exc:
            raise self._error(exc) from None
        self._closed = False

    def _error(self, exc: OSError) -> OSError | DataError:
        """The error to raise for ``exc``: a `DataError` naming the file, or
        ``exc`` itself when the reader of a pipe went away (``EPIPE``: click
        exits quietly, as for the results on standard output)."""
        if exc.errno == errno.EPIPE:
            return exc
        return DataError(
            f"cannot write --per-sample '{self.path}': {exc.strerror or exc}"
        )

    def write(self, block: np.ndarray) -> None:
        """Append the rows of ``block`` (`evaluate_chunk`'s), after their ids."""
        n = int(block.shape[0])
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.float64)
        self._next_id += n
        block = np.concatenate([ids[:, None], block], axis=1)
        try:
            self._writer.write(block)
        except OSError as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        """Finish the file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.close()
        except OSError as exc:
            raise self._error(exc) from None


THREADS_ENV = "ARRAYLOSS_EVAL_THREADS"
"""The environment variable that sets the worker threads of `stream` (unset or
``1``: the one-core path; ``0``: `default_threads`; at most `MAX_EVAL_THREADS`)."""

MAX_THREADS = 4
"""The most threads ``0`` (`default_threads`) gives."""

MAX_EVAL_THREADS = 64
"""The most worker threads `THREADS_ENV` takes: each holds a chunk in flight (a
few MB by default; as many more as the threads), so more is bad usage (a
`UsageError`, exit 2), not thousands of chunks' memory."""


def default_threads() -> int:
    """The usable CPUs, at most `MAX_THREADS` (one thread more reads the file)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_THREADS, cpus))


def eval_threads() -> int:
    """The worker threads `stream` uses: `THREADS_ENV` (``0``: `default_threads`),
    else 1.

    One thread is the default because it was the faster on a 2-core machine, idle
    or busy (``python bench/bench_eval.py``); the pool is there for machines where
    it pays, and gives the same bytes.  A value that is not a non-negative
    integer, or is above `MAX_EVAL_THREADS`, is bad usage
    (`arrayloss._errors.UsageError`: one line, exit 2).
    """
    return env_count(THREADS_ENV, 1, high=MAX_EVAL_THREADS) or default_threads()


_KEEP_BELOW = 32 << 20
"""Allocations below 32 MiB come from the heap, not from fresh ``mmap`` pages."""


@cache
def keep_freed_memory() -> bool:
    """Ask glibc's ``malloc`` to keep freed memory for reuse; whether it could.

    A chunk's temporaries are a few MiB each.  By default glibc serves such a
    block with a fresh ``mmap`` and returns it to the kernel when freed (or trims
    the heap), so the next chunk pays a page fault for every 4 KiB it writes: on
    a virtual machine that costs more than the arithmetic (an exponential, a
    comparison) on the same memory.  Raising ``M_MMAP_THRESHOLD`` and
    ``M_TRIM_THRESHOLD`` (`mallopt(3)`) keeps the pages mapped, so later chunks
    reuse them.  Peak memory is unchanged (the pages were in use); the process
    only keeps them until it exits.  Does nothing off Linux or without glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
        gnu = ctypes.CDLL(None).gnu_get_libc_version  # glibc only
    except (OSError, AttributeError):
        return False
    del gnu
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = mallopt(m_mmap_threshold, _KEEP_BELOW) == 1
    return bool(mallopt(m_trim_threshold, 4 * _KEEP_BELOW) == 1 and ok)


@dataclass
class _Part:
    """One chunk's tallies, computed from empty ones on a worker thread."""

    rows: int
    tallies: Tallies
    block: Any


def looks_like_probs(scores: np.ndarray, *, rounded: bool = True) -> bool:
    """Whether ``(n, C)`` scores read as logits look like probabilities: two rows
    or more (one is too little to tell), finite, none negative, each row summing
    to 1 (`arrayloss._metric_rows.prob_tolerance` of their dtype, or the
    rounding of its digits, `rounding_tolerance`: ``df.round(2)``, unless not
    ``rounded``), and not all 0 or 1 (one-hot scores are logits too)."""
    from arrayloss._metric_rows import prob_tolerance

    if scores.ndim != 2 or scores.shape[1] < 2 or scores.dtype.kind != "f":
        return False
    tol = prob_tolerance(int(scores.shape[1]), scores.dtype, xp=np)
    return _rows_summing_to(scores, 1.0, tol, inside=(0.0, 1.0), rounded=rounded)


PERCENT_TOLERANCE = 0.5
"""How far from 100 rows of percentages may sum (two decimals of ten classes,
each rounded, stay within 0.05; one decimal of ten within 0.5)."""


def looks_like_percentages(scores: np.ndarray) -> bool:
    """Whether ``(n, C)`` scores read as logits look like probabilities given as
    percentages: as `looks_like_probs`, each row summing to 100 (within
    `PERCENT_TOLERANCE`), a score strictly between 1 and 100."""
    return _rows_summing_to(scores, 100.0, PERCENT_TOLERANCE, inside=(1.0, 100.0))


def _rows_summing_to(
    scores: np.ndarray,
    total: float,
    tol: float,
    *,
    inside: tuple[float, float],
    rounded: bool = False,
) -> bool:
    """Whether ``(n, C)`` float scores have two rows or more, all finite and
    none negative, one strictly ``inside`` the bounds, each row summing to
    ``total`` within ``tol`` (with ``rounded``, or within the rounding of its
    digits, `rounding_tolerance` of probabilities)."""
    if scores.ndim != 2 or scores.shape[0] < 2 or scores.shape[1] < 2:
        return False
    if scores.dtype.kind not in "f":
        return False
    with np.errstate(all="ignore"):
        if not (np.isfinite(scores).all() and (scores >= 0).all()):
            return False
        if not ((scores > inside[0]) & (scores < inside[1])).any():
            return False
        sums = np.sum(scores, axis=1, dtype=np.float64)
    off = np.abs(sums - total)
    if (off <= tol).all():
        return True
    return rounded and bool((off <= rounding_tolerance(scores, "probs")).all())


def looks_like_row_numbers(scores: np.ndarray, names: Sequence[str] | None) -> bool:
    """Whether the first score column holds the row numbers (0, 1, 2, ... or 1,
    2, 3, ..., three rows or more; without column ``names``, five rows or more
    and a fraction among the other columns): an index column read as the scores
    of a class (a named index, ``df.rename_axis("id").to_csv()`` or
    ``df.reset_index()``; any index with ``to_csv(header=False)``).  In a table
    with ``names``, consecutive integers from any start are (an id column,
    ``100, 101, 102, ...``)."""
    least = 3 if names is not None else 5
    if scores.ndim != 2 or scores.shape[0] < least or scores.shape[1] < 2:
        return False
    first = np.asarray(scores[:, 0], dtype=np.float64)
    steps = np.arange(first.shape[0], dtype=np.float64)
    start = first[0] in (0.0, 1.0) or (
        names is not None and bool(np.isfinite(first[0])) and first[0].is_integer()
    )
    if not (start and np.array_equal(first - first[0], steps)):
        return False
    if names is not None:
        return True
    with np.errstate(all="ignore"):
        rest = np.asarray(scores[:, 1:], dtype=np.float64)
        return bool((rest != np.round(rest)).any())  # not integer scores alike


def _drop_hint(scores_src: Any, names: Sequence[str] | None, column: int) -> str:
    """How to leave score column ``column`` out: ``--drop-column`` for a table."""
    from arrayloss.io._text import _TextScores

    if names is not None:
        return f"--drop-column {names[column]}"
    if isinstance(scores_src, _TextScores):
        return f"--drop-column {column}"
    return "save the scores without it"


def _index_warning(
    scores_src: Any, names: Sequence[str] | None, first: float = 0.0
) -> str:
    """The warning of a first score column of row numbers (`looks_like_row_numbers`),
    the first of which is ``first``."""
    label = scores_src.label
    what = f"{label}, {names[0]!r}," if names is not None else f"{label} (column 0)"
    held = "the row numbers (0, 1, 2, ...)"
    if first not in (0.0, 1.0):
        k = int(first)
        held = f"consecutive integers ({k}, {k + 1}, {k + 2}, ...)"
    return (
        f"warning: the first score column of {what} holds {held}, read as the "
        "scores of class 0: an index column? leave it out "
        f"({_drop_hint(scores_src, names, 0)})"
    )


def _labels_warning(
    scores_src: Any, label_src: Any, names: Sequence[str] | None, column: int
) -> str:
    """The warning of a score column that holds the labels (`score_column_of_labels`)."""
    shown = repr(names[column]) if names else str(column)
    return (
        f"warning: score column {shown} of {scores_src.label} holds the labels of "
        f"{label_src.label}, read as the scores of class {column}: a label column? "
        f"leave it out ({_drop_hint(scores_src, names, column)})"
    )


def score_column_of_labels(scores: np.ndarray, labels: np.ndarray) -> int | None:
    """The first score column that holds the labels themselves (class indices,
    three rows or more, not all one class), else ``None``: a label column read
    as the scores of a class (a CSV without a header, its labels first or last,
    evaluated against a LABELS file).  With labels 0 and 1 only, a column of a
    class they name is not counted: ``[1 - y, y]`` are one-hot scores."""
    if scores.ndim != 2 or labels.ndim != 1 or scores.shape[0] < 3:
        return None
    try:
        y = np.asarray(labels, dtype=np.float64)
    except (TypeError, ValueError):  # names: no score column holds them
        return None
    if not np.isfinite(y).all() or (y == y[0]).all():
        return None
    with np.errstate(invalid="ignore"):
        same = (np.asarray(scores, dtype=np.float64) == y[:, None]).all(axis=0)
    hits = np.flatnonzero(same)
    if y.max() < 2:  # 0/1 labels: a one-hot column of class 1 holds them too
        hits = hits[hits > y.max()]
    return int(hits[0]) if hits.size else None


def stream(
    opened: Iterator[tuple[Any, Any, Any]],
    n_shards: int,
    *,
    input_kind: str,
    n_classes: int,
    first_label: str,
    class_names: Sequence[str] | None,
    chunk_rows: int,
    to_backend: Callable[[Any], Any],
    tallies: Tallies,
    writer: PerSampleWriter | None,
    quiet: bool,
    prob: ProbInput | None = None,
    threads: int | None = None,
    header_names: Sequence[str] | None = None,
    names_from: str = "--classes",
) -> int:
    """Stream each shard's sources chunk by chunk into the tallies; the row count.

    ``names_from`` says where ``class_names`` come from, for the error of a
    label that is none of them (another text than ``"--classes"``: the labels
    are names, never class numbers).

    ``header_names`` (`arrayloss.io.header_classes`, without ``class_names``):
    when the first label (not the ``--ignore-label``) is text, one of these
    names, they are the class names of every label (``tallies.header_classes``),
    each label having to be one of them; else the labels are read as without
    them.

    Rows are numbered across shards (for ``tallies.boot``'s draws; its ``add`` is
    thread-safe and its sums do not depend on the order of chunks).

    With ``threads > 1`` (default `eval_threads`; NumPy backend only), chunks are
    read here and evaluated on a pool of ``threads`` threads (NumPy releases the
    GIL), at most ``threads`` chunks ahead of the one being added, so memory stays
    bounded by a few chunks.  Each worker evaluates its chunk into empty tallies
    and this thread merges them in file order (``merge``: exact), so the results,
    the ``--per-sample`` rows and the error reported (the first bad row in file
    order) are those of the one-thread path, bit for bit.  ``tallies.metrics`` must
    then be empty tallies, as for ``--dask``; the loss tallies, ``clips`` and
    ``ignored`` are added to.

    With ``input_kind="logits"``, ``tallies.probs_like`` is set to a warning when
    the first chunk's rows look like probabilities (`looks_like_probs`),
    ``tallies.index_like`` when its first score column holds the row numbers
    (`looks_like_row_numbers`) and ``tallies.label_like`` when a score column
    holds the labels (`score_column_of_labels`).
    """
    from arrayloss import io as alio
    from arrayloss.io._labels import LabelRangeError, header_names_apply

    undecided = header_names is not None and class_names is None
    columns_of: dict[str, list[str]] = {}  # the score columns' names, by label

    def chunks() -> Iterator[tuple[str, str, str, Any, int]]:
        nonlocal class_names, names_from, undecided
        shard_start = 0
        first = input_kind == "logits"  # the first chunk is yet to be looked at
        for i, (scores_src, label_src, weights_src) in enumerate(opened):
            width = scores_src.n_cols  # None: a text shard without a row
            if width is not None and width != n_classes:
                msg = f"{scores_src.label} has {scores_src.n_cols} columns but {first_label} has {n_classes}"
                raise DataError(msg)
            scores_label = "SCORES" if n_shards == 1 else scores_src.label
            if scores_src.column_names:
                columns_of[scores_label] = list(scores_src.column_names)
            labels_label = label_src.label
            weights_label = weights_src.label if weights_src else ""
            bar = "eval" if n_shards == 1 else f"eval {i + 1}/{n_shards}"
            aligned = alio.iter_aligned(
                scores_src, label_src, weights_src, chunk_rows, allow_empty=n_shards > 1
            )
            rows = 0
            for chunk in with_progress(aligned, scores_src, quiet, label=bar):
                kept = (
                    _kept_labels(chunk.labels, tallies.ignored) if undecided else None
                )
                if kept is not None and kept.shape[0]:  # before any is evaluated
                    undecided = False
                    assert header_names is not None
                    if header_names_apply(kept, header_names):
                        class_names = tallies.header_classes = tuple(header_names)
                        names_from = (
                            "the score columns' names, as the first label is ("
                            + _shortened(header_names)
                            + "; else give --classes)"
                        )
                if first:
                    first = False
                    if looks_like_probs(chunk.scores):
                        exact = looks_like_probs(chunk.scores, rounded=False)
                        tallies.probs_like = (
                            f"warning: {scores_src.label} looks like probabilities "
                            "(no negative score, each row summing to 1"
                            f"{'' if exact else ' up to the rounding of its digits'}"
                            "), read as logits (the default --input); for "
                            "probabilities give --input probs"
                            f"{'' if exact else ' --renormalize'}"
                        )
                    elif looks_like_percentages(chunk.scores):
                        tallies.probs_like = (
                            f"warning: {scores_src.label} looks like percentages "
                            "(no negative score, each row summing to 100), read as "
                            "logits (the default --input); for probabilities "
                            "divide them by 100 and give --input probs"
                        )
                    names = scores_src.column_names
                    column = score_column_of_labels(chunk.scores, chunk.labels)
                    if column is not None:
                        tallies.label_like = _labels_warning(
                            scores_src, label_src, names, column
                        )
                    if looks_like_row_numbers(chunk.scores, names):
                        tallies.index_like = _index_warning(
                            scores_src, names, float(chunk.scores[0, 0])
                        )
                yield scores_label, labels_label, weights_label, chunk, shard_start
                rows = chunk.start + int(chunk.scores.shape[0])
            shard_start += rows
        if shard_start == 0 and n_shards > 1:  # an empty shard among others is none
            msg = f"SCORES: none of its {n_shards} files has rows"
            raise DataError(msg)

    def evaluate(item: tuple[str, str, str, Any, int], into: Tallies) -> Any:
        scores_label, labels_label, weights_label, chunk, shard_start = item
        try:
            return evaluate_chunk(
                chunk, input_kind, n_classes, class_names, scores_label,
                labels_label, weights_label, to_backend, into,
                want_rows=writer is not None, prob=prob,
                first_row=shard_start + chunk.start, names_from=names_from,
                header_names=None if class_names else header_names,
            )  # fmt: skip
        except RowSumError as exc:
            names = columns_of.get(scores_label)
            if not names:
                raise
            names = [name if name.strip() else "(unnamed)" for name in names]
            msg = (
                f"{exc}; the {len(names)} score columns are {_shortened(names)} "
                "(leave out any other with --drop-column, or pick the scores "
                "with --score-columns)"
            )
            raise DataError(msg) from None

    if threads is None:
        threads = eval_threads()
    try:
        return _stream_chunks(chunks(), evaluate, tallies, writer, threads, to_backend)
    except LabelRangeError as exc:  # a label 0 in the chunks before says not 1-based
        raise exc.one_based(exc.zero_before or tallies.zero_label) from None


def _stream_chunks(
    items: Iterator[tuple[str, str, str, Any, int]],
    evaluate: Callable[[tuple[str, str, str, Any, int], Tallies], Any],
    tallies: Tallies,
    writer: PerSampleWriter | None,
    threads: int,
    to_backend: Callable[[Any], Any],
) -> int:
    """`stream`'s chunks ``items`` evaluated into ``tallies`` (on ``threads``
    threads), in file order; the row count."""
    keep_freed_memory()
    n_samples = 0
    if threads <= 1 or to_backend is not _NUMPY_CONVERTER:
        for item in items:
            block = evaluate(item, tallies)
            if writer is not None:
                writer.write(block)
            n_samples += int(item[3].scores.shape[0])
        return n_samples

    blank = tallies.empty(own_boot=False)  # before any chunk is added

    def work(item: tuple[str, str, str, Any, int]) -> _Part:
        part = blank.empty(own_boot=False)
        block = evaluate(item, part)
        return _Part(int(item[3].scores.shape[0]), part, block)

    def add(part: _Part) -> None:
        nonlocal n_samples
        tallies.add(part.tallies)
        if writer is not None:
            writer.write(part.block)
        n_samples += part.rows

    _pipeline(items, work, add, threads)
    return n_samples


def _shortened(names: Sequence[str], most: int = 8) -> str:
    """Names joined by commas, the first ``most`` of them and a count of the rest."""
    shown = ",".join(names[:most])
    return shown if len(names) <= most else f"{shown},... ({len(names)} in all)"


def _pipeline(
    items: Iterator[Any],
    work: Callable[[Any], Any],
    add: Callable[[Any], None],
    threads: int,
) -> None:
    """``add(work(item))`` for each item in order, ``work`` on a thread pool.

    At most ``threads`` items are in flight.  An error reading the next item is
    raised only after the items before it are added (so an earlier item's error
    comes first, as in a plain loop).
    """
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    pending: deque[Future[Any]] = deque()
    pool = ThreadPoolExecutor(threads, thread_name_prefix="arrayloss-eval")
    try:
        while True:
            try:
                item = next(items)
            except StopIteration:
                break
            except BaseException:
                while pending:
                    add(pending.popleft().result())
                raise
            pending.append(pool.submit(work, item))
            if len(pending) >= threads:
                add(pending.popleft().result())
        while pending:
            add(pending.popleft().result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
