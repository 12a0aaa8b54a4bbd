"""The shared wrapper every loss goes through.

A loss is written once as a *kernel* on ``(n, C)`` scores with classes last:

    rows(z, targets, *, xp, want_grad, **params) -> (loss_rows, grad_rows | None)

``loss_rows`` has shape ``(n,)`` and ``grad_rows`` row ``i`` is d loss_i / d z_i.
Kernels return fresh arrays and never write into ``z`` or the targets.

`evaluate` does everything else once: namespace from the inputs, float promotion
(float32 stays float32, integers become the default float), class axis moved last,
batch flattened, label and weight validation, reduction, and the way back to the
caller's shape.  Value checks (label range, finiteness, rows summing to one) run
on eager arrays at once.  A Dask batch runs the kernel on each block of rows: one
task per block, with the same value checks, which then run and raise when the
graph is computed.  (The one loss that is not row-wise, Keras' hinge with soft
labels, runs on the lazy batch without them.)  JAX tracers (inside ``jax.jit``)
skip the value checks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from array_api_compat import is_dask_namespace, is_jax_namespace

from . import _xp
from ._typing import Array, Namespace

__all__ = ["REDUCTIONS", "Kernel", "Targets", "evaluate"]

REDUCTIONS = ("mean", "sum", "none")

KernelRows = Callable[..., tuple[Array, "Array | None"]]


@dataclass(frozen=True)
class Targets:
    """The labels of an ``(n, C)`` batch, as a kernel sees them.

    ``index`` holds integer class indices of shape ``(n,)``, or is ``None`` when the
    caller gave soft labels; ``probs`` is always the ``(n, C)`` target distribution
    (one-hot for index labels) in the scores' dtype, built on first use.
    """

    index: Array | None
    soft: Array | None
    n_classes: int
    dtype: Any
    xp: Namespace = field(repr=False)

    @cached_property
    def mask(self) -> Array:
        """Boolean ``(n, C)`` array, true at each sample's label (index labels only)."""
        if self.index is None:
            msg = "soft labels have no label mask"
            raise TypeError(msg)
        xp = self.xp
        classes = xp.arange(self.n_classes, device=_xp.xp_device(self.index))
        return classes == self.index[:, None]

    @cached_property
    def probs(self) -> Array:
        """The ``(n, C)`` target distribution (one-hot for index labels)."""
        if self.soft is not None:
            return self.soft
        return self.xp.astype(self.mask, self.dtype)

    def pick(self, z: Array) -> Array:
        """``z[i, labels[i]]`` for index labels, shape ``(n,)``."""
        if self.index is None:
            msg = "soft labels have no label to pick"
            raise TypeError(msg)
        return _xp.take_along_axis(z, self.index[:, None], xp=self.xp, axis=1)[:, 0]


@dataclass(frozen=True)
class Kernel:
    """A loss written for ``(n, C)`` scores, plus what labels it accepts."""

    name: str
    rows: KernelRows
    soft_labels: bool = True
    min_classes: int = 1
    check_params: Callable[..., Mapping[str, Any]] | None = None
    # True if ``rows`` takes ``grad_scale`` (a float or None) and multiplies its
    # gradient by it itself, saving the wrapper a pass over (n, C) for "mean".
    fused_scale: bool = False
    # True if, with soft labels, a row's loss depends on the other rows (Keras'
    # batch-wide label conversion): Dask then runs it on the whole lazy batch.
    batch_wide_soft: bool = False
    # Concrete JAX arrays: compile ``rows`` once per shape with ``jax.jit`` instead
    # of dispatching its (hundreds of) operations one by one.  Names the float
    # parameters passed as traced arrays; the others are compile-time constants.
    # ``None``: JAX runs ``rows`` as it is.
    jax_compile: tuple[str, ...] | None = None

    def value(
        self,
        logits: Array,
        labels: Array,
        *,
        axis: int,
        reduction: str,
        weights: Array | None,
        **params: Any,
    ) -> Array:
        """The reduced (or per-sample) loss."""
        value, _ = evaluate(
            self, logits, labels, weights,
            axis=axis, reduction=reduction, want_grad=False, params=params,
        )  # fmt: skip
        return value

    def value_and_grad(
        self,
        logits: Array,
        labels: Array,
        *,
        axis: int,
        reduction: str,
        weights: Array | None,
        **params: Any,
    ) -> tuple[Array, Array]:
        """The loss and its gradient with respect to ``logits``."""
        value, grad = evaluate(
            self, logits, labels, weights,
            axis=axis, reduction=reduction, want_grad=True, params=params,
        )  # fmt: skip
        return value, grad


def evaluate(
    kernel: Kernel,
    logits: Array,
    labels: Array,
    weights: Array | None,
    *,
    axis: int,
    reduction: str,
    want_grad: bool,
    params: Mapping[str, Any],
) -> tuple[Array, Array | None]:
    """Validate, reshape, run ``kernel`` and reduce.  See the module docstring."""
    xp = _namespace(logits, labels, weights)
    if reduction not in REDUCTIONS:
        msg = (
            f"`reduction` must be 'mean', 'sum' or 'none' (got reduction={reduction!r})"
        )
        raise ValueError(msg)
    if kernel.check_params is not None:
        params = kernel.check_params(**params)

    logits = _xp.as_floating(logits, "logits", xp=xp)
    if logits.ndim < 1:
        msg = "`logits` must have at least one dimension (the class axis); got a 0-d array"
        raise ValueError(msg)
    axis = _normalize_axis(axis, logits.ndim)
    batch_shape = tuple(logits.shape[:axis] + logits.shape[axis + 1 :])
    n_classes = int(logits.shape[axis])
    if n_classes < kernel.min_classes:
        msg = (
            f"`{kernel.name}` needs at least {kernel.min_classes} classes; "
            f"`logits` has {n_classes} along axis {axis} (shape {tuple(logits.shape)})"
        )
        raise ValueError(msg)
    n = math.prod(batch_shape)
    eager = not _xp.is_lazy(logits)

    z = _to_rows(logits, axis, n, n_classes, xp=xp)
    if eager:
        _check_finite(z, xp=xp)

    targets = _targets(
        kernel, labels, logits.shape, axis, n, n_classes, z.dtype, eager, xp=xp
    )
    w = _weights(weights, batch_shape, n, z.dtype, eager, xp=xp)

    extra: dict[str, Any] = {}
    fuse = (
        kernel.fused_scale and want_grad and reduction == "mean" and w is None and n > 0
    )
    if kernel.fused_scale:
        extra["grad_scale"] = 1.0 / n if fuse else None
    if is_dask_namespace(xp) and not (
        kernel.batch_wide_soft and targets.soft is not None
    ):
        loss_rows, grad_rows = _dask_rows(
            kernel, z, targets, w, want_grad, {**params, **extra}
        )
    elif kernel.jax_compile is not None and eager and is_jax_namespace(xp):
        loss_rows, grad_rows = _jax_rows(kernel, z, targets, want_grad, params)
    else:
        loss_rows, grad_rows = kernel.rows(
            z, targets, xp=xp, want_grad=want_grad, **params, **extra
        )
    value, grad = _reduce(
        loss_rows, grad_rows, w, reduction, batch_shape, eager, xp=xp, scaled=fuse
    )
    if grad is not None:
        grad = _from_rows(grad, batch_shape, n_classes, axis, logits.ndim, xp=xp)
    return value, grad


def _check_finite(z: Array, *, xp: Namespace) -> None:
    # Not a sum as a cheaper probe: it overflows, with a warning, on finite scores
    # near the largest float.
    if bool(xp.all(xp.isfinite(z))):
        return
    bad = "NaN" if bool(xp.any(xp.isnan(z))) else "infinite"
    msg = f"`logits` contains {bad} values; scores must be finite"
    raise ValueError(msg)


def _namespace(logits: Array, labels: Array, weights: Array | None) -> Namespace:
    for name, arr in (("logits", logits), ("labels", labels)):
        if arr is None or isinstance(arr, (int, float, complex, bool, list, tuple)):
            msg = f"`{name}` must be an array (got {type(arr).__name__})"
            raise TypeError(msg)
    try:
        return _xp.array_namespace(logits, labels, weights)
    except TypeError as exc:
        msg = (
            "`logits`, `labels` and `weights` must be arrays of one array library "
            f"({exc})"
        )
        raise TypeError(msg) from None


def _normalize_axis(axis: object, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int):
        msg = f"`axis` must be an integer (got axis={axis!r})"
        raise TypeError(msg)
    if not -ndim <= axis < ndim:
        msg = f"`axis` {axis} is out of range for `logits` with {ndim} dimensions"
        raise ValueError(msg)
    return axis % ndim


def _to_rows(x: Array, axis: int, n: int, n_classes: int, *, xp: Namespace) -> Array:
    if axis != x.ndim - 1:
        x = xp.moveaxis(x, axis, -1)
    return xp.reshape(x, (n, n_classes))


def _from_rows(
    g: Array, batch_shape: tuple[int, ...], n_classes: int, axis: int, ndim: int,
    *, xp: Namespace,
) -> Array:  # fmt: skip
    g = xp.reshape(g, (*batch_shape, n_classes))
    if axis != ndim - 1:
        g = xp.moveaxis(g, -1, axis)
    return g


def _targets(
    kernel: Kernel,
    labels: Array,
    logits_shape: tuple[int, ...],
    axis: int,
    n: int,
    n_classes: int,
    dtype: Any,
    eager: bool,
    *,
    xp: Namespace,
) -> Targets:
    batch_shape = tuple(logits_shape[:axis] + logits_shape[axis + 1 :])
    shape = tuple(labels.shape)
    if xp.isdtype(labels.dtype, "bool"):
        msg = (
            "`labels` must be integer class indices or floating soft labels (got bool)"
        )
        raise TypeError(msg)
    if xp.isdtype(labels.dtype, "integral"):
        if shape != batch_shape:
            msg = (
                f"integer `labels` must have the batch shape {batch_shape} of `logits` "
                f"{tuple(logits_shape)} without its class axis {axis} (got {shape})"
            )
            raise ValueError(msg)
        index = xp.reshape(labels, (n,))
        if eager:
            _check_index(index, n_classes, xp=xp)
        return Targets(index=index, soft=None, n_classes=n_classes, dtype=dtype, xp=xp)

    if not xp.isdtype(labels.dtype, "real floating"):
        msg = f"`labels` must be integer class indices or floating soft labels (got {labels.dtype})"
        raise TypeError(msg)
    if shape != tuple(logits_shape):
        hint = (
            "; class indices must have an integer dtype" if shape == batch_shape else ""
        )
        msg = (
            f"floating `labels` are soft labels and must have the shape of `logits` "
            f"{tuple(logits_shape)} (got {shape}){hint}"
        )
        raise ValueError(msg)
    if not kernel.soft_labels:
        msg = (
            f"`{kernel.name}` takes integer class indices only, not soft labels "
            f"(got floating `labels` of shape {shape})"
        )
        raise ValueError(msg)
    soft = _to_rows(xp.astype(labels, dtype), axis, n, n_classes, xp=xp)
    if eager:
        _check_distribution(soft, dtype, xp=xp)
    return Targets(index=None, soft=soft, n_classes=n_classes, dtype=dtype, xp=xp)


def _check_index(index: Array, n_classes: int, *, xp: Namespace) -> None:
    if index.shape[0] == 0:
        return
    lo, hi = int(xp.min(index)), int(xp.max(index))
    if lo < 0 or hi >= n_classes:
        bad = lo if lo < 0 else hi
        msg = (
            f"`labels` must be class indices in [0, {n_classes - 1}] "
            f"for {n_classes} classes (found {bad})"
        )
        raise ValueError(msg)


def _check_distribution(soft: Array, dtype: Any, *, xp: Namespace) -> None:
    if soft.shape[0] == 0:
        return
    if not bool(xp.all(xp.isfinite(soft))):
        msg = "soft `labels` contain NaN or infinite values"
        raise ValueError(msg)
    if bool(xp.any(soft < 0)):
        msg = f"soft `labels` must be non-negative (found {float(xp.min(soft)):g})"
        raise ValueError(msg)
    tol = math.sqrt(_xp.finfo_eps(dtype, xp=xp))
    deviation = xp.abs(xp.sum(soft, axis=1) - 1)
    worst = float(xp.max(deviation))
    if worst > tol:
        msg = (
            "soft `labels` must sum to 1 along the class axis "
            f"(a row is off by {worst:.3g}; tolerance {tol:.1g})"
        )
        raise ValueError(msg)


def _weights(
    weights: Array | None,
    batch_shape: tuple[int, ...],
    n: int,
    dtype: Any,
    eager: bool,
    *,
    xp: Namespace,
) -> Array | None:
    if weights is None:
        return None
    if tuple(weights.shape) != batch_shape:
        msg = f"`weights` must have the batch shape {batch_shape} (got {tuple(weights.shape)})"
        raise ValueError(msg)
    w = xp.reshape(_xp.as_floating(weights, "weights", xp=xp), (n,))
    w = xp.astype(w, dtype)
    if eager:
        _check_weights(w, xp=xp)
    return w


def _check_weights(w: Array, *, xp: Namespace) -> None:
    if w.shape[0] == 0:
        return
    if not bool(xp.all(xp.isfinite(w))):
        msg = "`weights` contain NaN or infinite values"
        raise ValueError(msg)
    if bool(xp.any(w < 0)):
        msg = f"`weights` must be non-negative (found {float(xp.min(w)):g})"
        raise ValueError(msg)


def _dask_rows(
    kernel: Kernel,
    z: Array,
    targets: Targets,
    w: Array | None,
    want_grad: bool,
    params: Mapping[str, Any],
) -> tuple[Array, Array | None]:
    """``kernel.rows`` on each block of rows of a Dask batch, checks included.

    One task per block returns ``[grad | loss]`` as ``(rows, C + 1)`` (or the loss
    alone); the weights, which the reduction applies, are checked by their blocks.
    """
    import dask.array as da

    n_classes = targets.n_classes
    z = z.rechunk({1: -1})
    rows = z.chunks[0]
    soft = targets.index is None
    lab: Array = targets.soft if targets.index is None else targets.index[:, None]
    lab = lab.rechunk((rows, -1))
    checks = [] if w is None else [w[:, None].rechunk((rows, 1))]

    def block(zb: Array, lb: Array, *wb: Array) -> Array:
        bxp = _xp.array_namespace(zb)
        _check_finite(zb, xp=bxp)
        if soft:
            _check_distribution(lb, zb.dtype, xp=bxp)
        else:
            _check_index(lb[:, 0], n_classes, xp=bxp)
        for x in wb:
            _check_weights(x[:, 0], xp=bxp)
        tb = Targets(
            index=None if soft else lb[:, 0],
            soft=lb if soft else None,
            n_classes=n_classes,
            dtype=zb.dtype,
            xp=bxp,
        )
        loss, grad = kernel.rows(zb, tb, xp=bxp, want_grad=want_grad, **params)
        if grad is None:
            return loss[:, None]
        return bxp.concat([grad, loss[:, None]], axis=1)

    width = n_classes + 1 if want_grad else 1
    out = da.map_blocks(  # type: ignore[no-untyped-call]
        block, z, lab, *checks, dtype=z.dtype, chunks=(rows, (width,)), meta=z._meta
    )
    return out[:, -1], (out[:, :-1] if want_grad else None)


def _jax_rows(
    kernel: Kernel,
    z: Array,
    targets: Targets,
    want_grad: bool,
    params: Mapping[str, Any],
) -> tuple[Array, Array | None]:
    """``kernel.rows`` as one compiled program (see `Kernel.jax_compile`)."""
    traced = kernel.jax_compile or ()
    static = tuple((k, v) for k, v in params.items() if k not in traced)
    values = [targets.xp.asarray(params[k], dtype=z.dtype) for k in traced]
    run = _jax_program(kernel, want_grad, static, traced)
    return run(z, targets.index, targets.soft, *values)  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=64)
def _jax_program(
    kernel: Kernel,
    want_grad: bool,
    static: tuple[tuple[str, Any], ...],
    traced: tuple[str, ...],
) -> Any:
    import jax

    def run(
        z: Array, index: Array | None, soft: Array | None, *values: Array
    ) -> tuple[Array, Array | None]:
        xp = _xp.array_namespace(z)
        n_classes = z.shape[1]
        t = Targets(index=index, soft=soft, n_classes=n_classes, dtype=z.dtype, xp=xp)
        params = dict(static) | dict(zip(traced, values, strict=True))
        return kernel.rows(z, t, xp=xp, want_grad=want_grad, **params)

    return jax.jit(run)


def _reduce(
    loss: Array,
    grad: Array | None,
    w: Array | None,
    reduction: str,
    batch_shape: tuple[int, ...],
    eager: bool,
    *,
    xp: Namespace,
    scaled: bool = False,
) -> tuple[Array, Array | None]:
    if w is not None:
        # A zero weight removes the sample, even if its loss overflowed.
        loss = xp.where(w == 0, xp.zeros_like(loss), w * loss)
        if grad is not None:
            grad = xp.where(w[:, None] == 0, xp.zeros_like(grad), w[:, None] * grad)
    if reduction == "none":
        return xp.reshape(loss, batch_shape), grad
    total = xp.sum(loss)
    if reduction == "sum":
        return xp.asarray(total), grad  # a 0-d array, never a NumPy scalar
    count = xp.sum(w) if w is not None else loss.shape[0]
    if eager and float(count) == 0:
        msg = (
            "`reduction='mean'` needs at least one sample with non-zero weight "
            f"(got {loss.shape[0]} samples)"
        )
        raise ValueError(msg)
    value = xp.asarray(total / count)
    if grad is not None and not scaled:
        if w is None and _xp.owns_writable_buffer(grad, xp=xp):
            grad *= 1 / count  # the kernel's own fresh array: no new temporary
        else:
            grad = grad / count
    return value, grad
