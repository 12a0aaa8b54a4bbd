"""The front end every loss, metric and `esp` goes through, and the shared wrapper.

A loss is written once as a *kernel* on ``(n, C)`` scores with classes last:

    rows(z, targets, *, xp, want_grad, **params) -> (loss_rows, grad_rows | None)

``loss_rows`` has shape ``(n,)`` and ``grad_rows`` row ``i`` is d loss_i / d z_i.
Kernels return fresh arrays and never write into ``z`` or the targets.

`prepare` turns a caller's batch into a `Batch`, once, for losses and metrics
alike: namespace from the inputs, float promotion (float32 stays float32, integers
become the default float), class axis moved last, batch flattened, labels, weights,
the parameter checks (which see the class count) and the value checks.  `as_rows`
is its first half, for arrays without labels (`arrayloss.esp`).  `evaluate` runs a
kernel on a prepared batch, reduces it and returns the gradient in the caller's
shape.

Value checks (label range, finiteness, rows summing to one, weights) run on eager
arrays at once.  A Dask batch runs the kernel on each block of rows: one task per
block, with the same value checks, which then run and raise when the graph is
computed.  (The two losses whose soft-label conversion is batch-wide,
``keras.hinge`` and ``keras.squared_hinge``, run on the lazy batch without them.)
JAX tracers (inside ``jax.jit``) skip the value checks.  Shape, dtype and parameter
checks run everywhere, at the call.

Weighted means are scale invariant: the weights are divided by the largest one, in
their own dtype, before they meet the scores' dtype, so weights of ``1e308`` do not
overflow, subnormal weights are exact to rounding and tiny float64 weights do not
vanish in float32.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from array_api_compat import is_dask_namespace, is_jax_namespace

from . import _torch_compat, _xp
from ._typing import Array, Namespace

__all__ = [
    "CONVENTIONS",
    "REDUCTIONS",
    "Batch",
    "Kernel",
    "Targets",
    "as_rows",
    "evaluate",
    "in_work_dtype",
    "mean_of",
    "no_weight_message",
    "normalize_axis",
    "prepare",
    "sample_factors",
    "unknown_parameter",
    "weighted_mean",
]

REDUCTIONS = ("mean", "sum", "none")

CONVENTIONS = ("ignore_index", "class_weights")
"""PyTorch's conventions, keyword parameters of every loss that takes class
indices (see `prepare`); not among a loss's own parameters in listings."""

# Losses of the softmax probabilities (and the target) only, which take ``-inf``
# scores (a masked class has probability 0; see `_masked`), and of those the ones
# whose value is infinite when the target has mass on a masked class.
MASKABLE = frozenset(
    {
        "cross_entropy", "kl_divergence", "keras.categorical_crossentropy",
        "keras.kl_divergence", "expectation", "regularised_expectation",
        "chebyshev", "focal", "poly1", "generalized_cross_entropy",
        "taylor_cross_entropy",
    }
)  # fmt: skip
INFINITE_AT_MASKED_TARGET = frozenset(
    {
        "cross_entropy",
        "kl_divergence",
        "keras.categorical_crossentropy",
        "focal",
        "poly1",
    }
)


def unknown_parameter(loss: str, key: str, known: Iterable[str]) -> TypeError:
    """The error for a keyword ``key`` that loss ``loss`` (with its own parameters
    ``known``) does not take: one message for built-in and user losses."""
    have = ", ".join(known) or "none"
    ported = _PYTORCH_NAMES.get(key)
    hint = f"; PyTorch's `{key}=` is `{ported}=` here" if ported else ""
    return TypeError(f"`{loss}` has no parameter {key!r} (parameters: {have}){hint}")


# PyTorch loss arguments ported under another name.
_PYTORCH_NAMES = {
    "weight": "class_weights",
    "dim": "axis",
    "target": "labels",
    "input": "logits",
    "size_average": "reduction",
    "reduce": "reduction",
}


KernelRows = Callable[..., tuple[Array, "Array | None"]]
CheckParams = Callable[..., Mapping[str, Any]]


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

    def set_label(self, g: Array, values: Array) -> Array:
        """``g`` with ``g[i, labels[i]] = values[i]`` (index labels only): in place
        where the namespace allows, so ``g`` must be the caller's own array."""
        xp = self.xp
        if _xp.scatter_supported(xp):
            rows = xp.arange(g.shape[0], device=_xp.xp_device(g))
            g[rows, self.index] = values
            return g
        return xp.where(self.mask, values[:, None], g)

    def without_label(self, z: Array, *, overwrite: bool = False) -> Array:
        """``z`` with ``-inf`` at each row's label: the scores of the other classes.

        A fresh array, unless ``overwrite`` is true and ``z`` is the caller's own
        array, which is then written in place where the namespace allows it.
        """
        xp = self.xp
        if self.index is None:
            msg = "soft labels have no label to remove"
            raise TypeError(msg)
        if _xp.scatter_supported(xp):
            x = z if overwrite else xp.asarray(z, copy=True)
            rows = xp.arange(z.shape[0], device=_xp.xp_device(z))
            x[rows, self.index] = -xp.inf
            return x
        return xp.where(self.mask, xp.full_like(z, -xp.inf), z)


def in_work_dtype(rows: KernelRows) -> KernelRows:
    """``rows`` computed in `arrayloss._xp.work_dtype` (float32 for float16 and
    bfloat16 scores) and its results rounded to the scores' dtype once; for the
    other dtypes ``rows`` itself, untouched."""

    @functools.wraps(rows)
    def run(
        z: Array, t: Targets, *, xp: Namespace, want_grad: bool, **params: Any
    ) -> tuple[Array, Array | None]:
        dtype = z.dtype
        work = _xp.work_dtype(dtype, xp=xp)
        if work == dtype:
            return rows(z, t, xp=xp, want_grad=want_grad, **params)
        soft = None if t.soft is None else xp.astype(t.soft, work)
        tw = Targets(index=t.index, soft=soft, n_classes=t.n_classes, dtype=work, xp=xp)
        loss, grad = rows(xp.astype(z, work), tw, xp=xp, want_grad=want_grad, **params)
        loss = _xp.round_to(loss, dtype, xp=xp)
        return loss, None if grad is None else _xp.round_to(grad, dtype, xp=xp)

    return run


@dataclass(frozen=True)
class Kernel:
    """A loss written for ``(n, C)`` scores, plus what labels it accepts."""

    name: str
    rows: KernelRows
    soft_labels: bool = True
    min_classes: int = 1
    # Called as ``check_params(n_classes=C, **params)`` once the class count is
    # known, before any value is read; returns the validated parameters.
    check_params: CheckParams | None = None
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

    def value(self, logits: Array, labels: Array, **options: Any) -> Array:
        """The reduced (or per-sample) loss.

        ``options`` are ``axis``, ``reduction`` and ``weights`` (required), the
        conventions ``ignore_index`` and ``class_weights`` (see `prepare`) and
        the loss's own parameters.
        """
        return self._run(logits, labels, want_grad=False, **options)[0]

    def value_and_grad(
        self, logits: Array, labels: Array, **options: Any
    ) -> tuple[Array, Array]:
        """The loss and its gradient with respect to ``logits`` (see `value`).

        ``options`` may hold the private ``_groups``, given by
        `arrayloss._torch_compat`'s ``vmap`` rule only: see `evaluate`'s ``groups``.
        """
        value, grad = self._run(logits, labels, want_grad=True, **options)
        assert grad is not None  # want_grad
        return value, grad

    def _run(
        self,
        logits: Array,
        labels: Array,
        *,
        want_grad: bool,
        axis: int,
        reduction: str,
        weights: Array | None,
        ignore_index: int | None = None,
        class_weights: Array | None = None,
        _groups: int = 1,
        **params: Any,
    ) -> tuple[Array, Array | None]:
        if _torch_compat.tracks_grad(logits, labels, weights):  # torch autograd hook
            conv = {"ignore_index": ignore_index, "class_weights": class_weights}
            return _torch_compat.apply(
                self, logits, labels, weights,
                axis=axis, reduction=reduction, params={**params, **conv},
                factors_of=sample_factors,
            )  # fmt: skip
        return evaluate(
            self, logits, labels, weights, axis=axis, reduction=reduction,
            want_grad=want_grad, params=params,
            ignore_index=ignore_index, class_weights=class_weights, groups=_groups,
        )  # fmt: skip


# --------------------------------------------------------------------------- #
# The front end
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Batch:
    """A validated batch as ``(n, C)`` rows, and the way back to the caller's shape.

    ``weights`` are the caller's, flattened to ``(n,)`` and promoted to floating in
    their own dtype (float64 weights stay float64 next to float32 scores); `w`
    casts them to the scores' dtype and `w_mean` is the scale-free version the
    weighted means use.
    """

    xp: Namespace
    z: Array
    targets: Targets
    weights: Array | None
    batch_shape: tuple[int, ...]
    axis: int
    ndim: int
    eager: bool
    params: Mapping[str, Any] = field(default_factory=dict)
    # Boolean ``(n,)``: false where the label is ``ignore_index`` (``None`` if not
    # given).  The weights are already zero there.
    kept: Array | None = None
    # The scale-free mean weights, where sample weights times class weights
    # overflowed to inf (`_with_class_weights`; on Dask always with class
    # weights); ``None`` otherwise.
    w_mean_given: Array | None = None
    # The caller's ``(n,)`` weights before the conventions multiplied them, which
    # a Dask batch checks block by block (``None``: the same as ``weights``).
    given_weights: Array | None = None

    @property
    def n(self) -> int:
        """Number of samples (rows)."""
        return int(self.z.shape[0])

    @property
    def n_classes(self) -> int:
        """Number of classes (columns)."""
        return int(self.z.shape[1])

    @cached_property
    def w(self) -> Array | None:
        """The weights in the scores' dtype, or ``None``."""
        if self.weights is None:
            return None
        xp, w = self.xp, self.weights
        dask = is_dask_namespace(xp)
        if w.dtype != self.z.dtype and (dask or (self.eager and w.shape[0] > 0)):
            fmax = xp.finfo(self.z.dtype).max
            # Beyond the scores' dtype: inf, without a warning (Dask always takes
            # the `where`, which leaves the other weights as they are).
            if dask or _xp.read_float(self.w_top) > float(fmax):
                w = xp.where(w > fmax, xp.full_like(w, xp.inf), w)
        return xp.astype(w, self.z.dtype)

    @cached_property
    def w_top(self) -> Array:
        """The largest weight, 0-d, in the weights' dtype (weighted batches only)."""
        return self.xp.max(self.weights)

    @cached_property
    def w_mean(self) -> Array | None:
        """The weights divided by the largest one, in the scores' dtype: the mean
        ``sum(w l) / sum(w)`` does not depend on the scale, so this is where it is
        made safe.  The division is in the wider of the two dtypes: the weights'
        own where the scores' range could not hold them (float64 weights of 1e300
        beside float32 scores), the scores' where the weights are narrower (the
        quotients of float16 weights rounded to float16 moved a float64 mean by
        1e-4, and by a different amount on JAX)."""
        if self.weights is None:
            return None
        if self.w_mean_given is not None:
            return self.w_mean_given
        xp, w, top = self.xp, self.weights, self.w_top
        wide = xp.result_type(w.dtype, self.z.dtype)
        if wide != w.dtype:
            w, top = xp.astype(w, wide), xp.astype(top, wide)
        scaled = w / xp.where(top > 0, top, xp.ones_like(top))
        return xp.astype(scaled, self.z.dtype)

    def to_caller(self, g: Array) -> Array:
        """``(n, C)`` rows back to the caller's shape, classes on its axis."""
        xp = self.xp
        g = xp.reshape(g, (*self.batch_shape, self.n_classes))
        if self.axis != self.ndim - 1:
            g = xp.moveaxis(g, -1, self.axis)
        return g


def namespace(*named: tuple[str, Array | None]) -> Namespace:
    """The one array namespace of the given ``(name, array)`` pairs.

    ``None`` is allowed only for the last (optional) one; Python scalars and
    sequences, and torch tensors on the ``meta`` device, are a `TypeError`
    naming the argument.
    """
    for i, (name, arr) in enumerate(named):
        if arr is None and i >= 2:
            continue
        if arr is None or isinstance(arr, (int, float, complex, bool, list, tuple)):
            msg = f"`{name}` must be an array (got {type(arr).__name__})"
            raise TypeError(msg)
    _torch_compat.refuse_meta(named)
    refuse_unreadable(named)
    try:
        return _xp.array_namespace(*(arr for _, arr in named))
    except TypeError as exc:
        raise _mixed_libraries(named, exc) from None


def refuse_unreadable(named: Iterable[tuple[str, Array | None]]) -> None:
    """Refuse what arrayloss would read wrongly among the ``(name, array)`` pairs.

    A NumPy masked array with masked entries is a `TypeError`: the array API
    has no masks, and NumPy's masked operations would mix masked and unmasked
    entries into a wrong number.  An array of unknown dimensions (``None``, or
    NaN as Dask has after boolean indexing) is a `ValueError`: the class count
    and the batch size are read before anything is computed.
    """
    for name, arr in named:
        if arr is None:
            continue
        if isinstance(arr, np.ma.MaskedArray):
            masked = int(np.count_nonzero(np.ma.getmaskarray(arr)))
            if masked:
                msg = (
                    f"`{name}` is a masked array with {masked} masked "
                    f"entr{'y' if masked == 1 else 'ies'}, and arrayloss does not "
                    f"read masks: pass `np.ma.filled({name}, value)` (for logits, "
                    "-np.inf masks a class) and give masked samples zero `weights`"
                )
                raise TypeError(msg)
        shape = getattr(arr, "shape", ())
        if any(d is None or (isinstance(d, float) and math.isnan(d)) for d in shape):
            msg = (
                f"`{name}` has unknown dimensions (shape {tuple(shape)}): arrayloss "
                "needs the class count and batch size first; on Dask call "
                f"`{name}.compute_chunk_sizes()` (after boolean indexing)"
            )
            raise ValueError(msg)


# How to bring an array into the first argument's library, by library.
_CONVERT = {
    "torch": "torch.as_tensor({x}, device={ref}.device)",
    "JAX": "jnp.asarray({x})",
    "NumPy": "np.asarray({x})",
    "CuPy": "cupy.asarray({x})",
    "Dask": "dask.array.from_array({x})",
}


def _library(arr: Array) -> str | None:
    """The array library of ``arr`` ("torch", "NumPy", ...), ``None`` if unknown."""
    try:
        xp = _xp.array_namespace(arr)
    except TypeError:
        return None
    mod = xp.__name__.removeprefix("array_api_compat.").split(".")[0]
    return {"numpy": "NumPy", "jax": "JAX", "cupy": "CuPy", "dask": "Dask"}.get(
        mod, mod
    )


def _mixed_libraries(
    named: tuple[tuple[str, Array | None], ...], exc: Exception
) -> TypeError:
    """The `TypeError` for arrays of several libraries: it names each argument
    that is not in the first one's library and how to convert it (PyTorch's own
    losses refuse a NumPy ``weight=`` as well; arrayloss moves only the labels
    and ``class_weights`` between libraries)."""
    (ref, first), *rest = named
    lib = _library(first)
    odd = [(n, _library(a)) for n, a in rest if a is not None and _library(a) != lib]
    if lib is None or not odd or any(other is None for _, other in odd):
        names = [f"`{n}`" for n, _ in named]
        listed = ", ".join(names[:-1]) + f" and {names[-1]}"
        return TypeError(f"{listed} must be arrays of one array library ({exc})")

    def kind(library: str | None) -> str:
        return "a torch tensor" if library == "torch" else f"a {library} array"

    parts = [f"`{n}` is {kind(other)}" for n, other in odd]
    fix = _CONVERT.get(lib, f"{lib}'s asarray({{x}})")
    fixes = " and ".join(f"`{fix.format(x=n, ref=ref)}`" for n, _ in odd)
    msg = (
        f"{' and '.join(parts)} but `{ref}` is {kind(lib)}: the arrays must be of "
        f"one array library; pass {fixes}"
    )
    return TypeError(msg)


def normalize_axis(axis: object, ndim: int, *, name: str = "logits") -> int:
    """``axis`` as an index in ``[0, ndim)``.

    A non-integer is a `TypeError`, an integer out of range a `ValueError`, for
    every function that takes an axis; NumPy integers are integers.
    """
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        msg = f"`axis` must be an integer (got axis={axis!r})"
        raise TypeError(msg)
    axis = int(axis)
    if not -ndim <= axis < ndim:
        msg = f"`axis` {axis} is out of range for `{name}` with {ndim} dimensions"
        raise ValueError(msg)
    return axis % ndim


def as_rows(
    x: Array, *, name: str, axis: object, xp: Namespace, what: str = "the class axis"
) -> tuple[Array, tuple[int, ...], int]:
    """Float promotion, axis check and ``(n, C)`` rows of one array.

    Returns the rows, the batch shape (``x``'s shape without ``axis``) and the
    normalised axis.
    """
    x = _xp.as_floating(x, name, xp=xp)
    if x.ndim < 1:
        msg = f"`{name}` must have at least one dimension ({what}); got a 0-d array"
        raise ValueError(msg)
    ax = normalize_axis(axis, x.ndim, name=name)
    batch_shape = tuple(x.shape[:ax] + x.shape[ax + 1 :])
    n_classes = int(x.shape[ax])
    return _to_rows(x, ax, math.prod(batch_shape), n_classes, xp=xp), batch_shape, ax


def prepare(
    scores: Array,
    labels: Array,
    weights: Array | None,
    *,
    axis: object,
    name: str,
    arg: str = "logits",
    soft_labels: bool = True,
    min_classes: int = 1,
    check_params: CheckParams | None = None,
    params: Mapping[str, Any] | None = None,
    check_scores: Callable[[Array, Namespace], None] | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Batch:
    """Validate a batch and flatten it to ``(n, C)`` rows: see the module docstring.

    ``name`` is the loss or metric (for messages), ``arg`` what ``scores`` is called
    there.  ``check_params`` receives ``n_classes`` and the ``params``.
    ``check_scores(z, xp)`` replaces the finiteness check of eager scores.

    The conventions ported from PyTorch (index labels only):

    - ``ignore_index``: samples with that label get weight zero (no loss, a zero
      gradient row, left out of the mean); their label is replaced by class 0
      before any kernel sees it.  See `evaluate` for an all-ignored batch.
    - ``class_weights`` of shape ``(C,)``: sample ``i``'s weight is multiplied by
      ``class_weights[labels[i]]`` (PyTorch's ``weight=``: the mean divides by the
      sum of the kept samples' class weights).  With ``label_smoothing`` the
      whole smoothed sample loss is scaled by ``class_weights[labels[i]]``
      (PyTorch weighs each class's smoothing term by its own weight instead).
    - ``labels`` (and ``class_weights``) given as a NumPy array or a Python list
      next to another library's scores are moved to the scores' namespace and
      device; ``(n, 1)`` integer labels are taken for ``(n, C)`` scores.
    """
    labels = _like_scores(scores, labels)
    xp = namespace((arg, scores), ("labels", labels), ("weights", weights))
    z, batch_shape, ax = as_rows(scores, name=arg, axis=axis, xp=xp)
    n_classes = int(z.shape[1])
    if n_classes < min_classes:
        msg = (
            f"`{name}` needs at least {min_classes} classes; `{arg}` has "
            f"{n_classes} along axis {ax} (shape {tuple(scores.shape)})"
        )
        raise ValueError(msg)
    checked: Mapping[str, Any] = dict(params or {})
    if check_params is not None:
        checked = check_params(n_classes=n_classes, **checked)
    # Any input without values (a Dask array, a JAX tracer: weights traced under
    # `jax.vmap` beside concrete logits) skips the value checks.
    eager = not any(_xp.is_lazy(a) for a in (z, labels, weights) if a is not None)
    if eager:
        (check_scores or _check_finite_scores)(z, xp)
    targets, kept = _targets(
        name, soft_labels, labels, tuple(scores.shape), ax, batch_shape, z, eager,
        xp=xp, ignore_index=ignore_index,
    )  # fmt: skip
    w = given = _weights(weights, batch_shape, eager, xp=xp)
    w_mean = None
    if class_weights is not None:
        cw = _like_scores(scores, class_weights)
        w, w_mean = _with_class_weights(w, targets, cw, eager)
    if kept is not None:
        k = xp.astype(kept, z.dtype if w is None else w.dtype)
        w = k if w is None else _weighted(w, k, xp=xp)
        if w_mean is not None:
            w_mean = _weighted(w_mean, xp.astype(kept, w_mean.dtype), xp=xp)
    if w_mean is not None:  # the scale-free weights, as `Batch.w_mean` makes them
        top = xp.max(w_mean)
        w_mean = xp.astype(w_mean / xp.where(top > 0, top, xp.ones_like(top)), z.dtype)
    return Batch(
        xp=xp, z=z, targets=targets, weights=w, batch_shape=batch_shape, axis=ax,
        ndim=len(scores.shape), eager=eager, params=checked, kept=kept,
        w_mean_given=w_mean, given_weights=given,
    )  # fmt: skip


def sample_factors(
    scores: Array, labels: Array, options: Mapping[str, Any], *, axis: int
) -> Array | None:
    """The factor the conventions among a loss's ``options`` multiply each sample's
    weight by, in the batch shape: ``class_weights[labels]``, zero where the label
    is ``ignore_index`` (``None`` when neither is given; the other options do not
    count).  The adapters use it for the weights' gradient."""
    ignore_index = options.get("ignore_index")
    class_weights = options.get("class_weights")
    if ignore_index is None and class_weights is None:
        return None
    b = prepare(
        scores, labels, None, axis=axis, name="a loss",
        ignore_index=ignore_index, class_weights=class_weights,
    )  # fmt: skip
    w: Array = b.weights
    return b.xp.reshape(w, b.batch_shape)


def _like_scores(scores: Array, x: Any) -> Any:
    """``x`` in ``scores``' namespace and device if it is a Python list or tuple,
    or a NumPy array next to another library's scores; else ``x`` unchanged."""
    if isinstance(x, (list, tuple)):
        pass
    elif not isinstance(x, np.ndarray) or isinstance(scores, np.ndarray):
        return x
    try:
        xp = _xp.array_namespace(scores)
    except TypeError:
        return x  # the scores are not an array: `namespace` says so
    if is_dask_namespace(xp):
        return xp.asarray(x)  # one block; the front end rechunks it with the rows
    return xp.asarray(x, device=_xp.xp_device(scores))


def _with_class_weights(
    w: Array | None, targets: Targets, class_weights: Array, eager: bool
) -> tuple[Array, Array | None]:
    """The sample weights times ``class_weights[labels]`` (PyTorch's ``weight=``),
    and ``None``; or, where a product is beyond the float range (eager batches),
    the products with ``inf`` there, found without a warning, and the products of
    the weights each divided by its largest one, for the mean (which does not
    depend on their scale)."""
    xp = targets.xp
    if targets.index is None:
        msg = (
            "`class_weights` applies to integer class indices, not soft labels; "
            "weigh soft labels through `weights`"
        )
        raise ValueError(msg)
    try:
        if isinstance(class_weights, (int, float, complex, bool)):
            raise TypeError  # array_namespace passes Python scalars over
        _xp.array_namespace(targets.index, class_weights)
    except TypeError:
        msg = (
            "`class_weights` must be an array of the scores' array library (got "
            f"{type(class_weights).__name__})"
        )
        raise TypeError(msg) from None
    if tuple(class_weights.shape) != (targets.n_classes,):
        msg = (
            f"`class_weights` must have shape ({targets.n_classes},), one weight per "
            f"class (got {tuple(class_weights.shape)})"
        )
        raise ValueError(msg)
    cw = _xp.as_floating(class_weights, "class_weights", xp=xp)
    if eager or is_dask_namespace(xp):  # C values: on Dask too, or a block's check
        _check_nonnegative(cw, "`class_weights`", xp=xp)  # would blame `weights`
    per_sample = xp.take(cw, targets.index, axis=0)
    if w is None:
        return per_sample, None
    dtype = xp.result_type(w.dtype, per_sample.dtype)
    w, per_sample = xp.astype(w, dtype), xp.astype(per_sample, dtype)
    if is_dask_namespace(xp):
        return _dask_products(w, per_sample)
    if not eager or w.shape[0] == 0:
        return w * per_sample, None
    return _products(w, per_sample, float(xp.max(w)), float(xp.max(per_sample)))


def _products(
    w: Array, per_sample: Array, top_w: float, top_c: float
) -> tuple[Array, Array | None]:
    """`_with_class_weights` of eager arrays, given the largest weight of each."""
    xp = _xp.array_namespace(w)
    fmax = float(xp.finfo(w.dtype).max)
    if top_w * top_c <= fmax:  # Python floats: the usual case, nothing overflows
        return w * per_sample, None
    # fl(w c) overflows exactly when fl((w 2^-i)(c 2^-j)) >= 2^(emax - i - j): a
    # power of two commutes with rounding, and with 2^i, 2^j at the largest w and c
    # the scaled product is at most 1 and the threshold a normal float.
    _, i = math.frexp(top_w)
    _, j = math.frexp(top_c)
    _, emax = math.frexp(fmax)
    over = (w * 2.0**-i) * (per_sample * 2.0**-j) >= 2.0 ** (emax - i - j)
    product = xp.where(over, xp.zeros_like(w), w) * per_sample
    product = xp.where(over, xp.full_like(product, xp.inf), product)
    return product, (w / top_w) * (per_sample / top_c)


def _dask_products(w: Array, per_sample: Array) -> tuple[Array, Array]:
    """`_products` block by block, with the largest weights of the whole batch:
    the products and the mean's weights (the products themselves where none
    overflows), lazily, each value as the eager arrays give it."""
    import dask.array as da

    if w.shape[0] == 0:
        return w * per_sample, w * per_sample
    per_sample = per_sample.rechunk(w.chunks)
    tops = [da.max(x)[None, None] for x in (w, per_sample)]  # type: ignore[no-untyped-call, unused-ignore]

    def block(wb: Array, cb: Array, tw: Array, tc: Array) -> Array:
        bxp = _xp.array_namespace(wb)
        top_w, top_c = float(tw[0, 0]), float(tc[0, 0])
        if not (math.isfinite(top_w) and math.isfinite(top_c)):
            return bxp.stack([wb, wb], axis=1)  # bad weights: the checks raise
        product, scaled = _products(wb[:, 0], cb[:, 0], top_w, top_c)
        return bxp.stack([product, product if scaled is None else scaled], axis=1)

    out = da.map_blocks(  # type: ignore[no-untyped-call, unused-ignore]
        block, w[:, None], per_sample[:, None], *tops, dtype=w.dtype,
        chunks=(w.chunks[0], (2,)), meta=w._meta,
    )  # fmt: skip
    return out[:, 0], out[:, 1]


def _check_finite_scores(z: Array, xp: Namespace) -> None:
    _check_finite(z, xp=xp)


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
    ignore_index: int | None = None,
    class_weights: Array | None = None,
    groups: int = 1,
) -> tuple[Array, Array | None]:
    """Validate, reshape, run ``kernel`` and reduce.  See the module docstring.

    ``ignore_index`` and ``class_weights`` are PyTorch's conventions (see `prepare`).
    With ``reduction="mean"`` a batch whose every label is ``ignore_index`` is a
    `ValueError` (PyTorch returns NaN); ``"sum"`` gives 0 and ``"none"`` zeros.

    ``groups > 1`` (only from the torch ``vmap`` rule, `arrayloss._torch_compat`):
    the rows are that many equal batches end to end: the checks run on all of them,
    the kernel once, and `_reduce` reduces each batch as its own call would
    (``"mean"``/``"sum"`` give one value per batch).
    """
    labels = _like_scores(logits, labels)
    _torch_compat.refuse_grad(labels, class_weights)  # torch hook
    logits, labels, weights = _torch_compat.plain(logits, labels, weights)
    if reduction not in REDUCTIONS:
        msg = (
            f"`reduction` must be 'mean', 'sum' or 'none' (got reduction={reduction!r})"
        )
        raise ValueError(msg)
    maskable = kernel.name in MASKABLE
    b = prepare(
        logits, labels, weights, axis=axis, name=kernel.name,
        soft_labels=kernel.soft_labels, min_classes=kernel.min_classes,
        check_params=kernel.check_params, params=params,
        ignore_index=ignore_index, class_weights=class_weights,
        check_scores=_check_masked_scores if maskable else None,
    )  # fmt: skip
    masked = _masked(b) if maskable and b.eager else None
    if masked is not None:
        b, mask, hit = masked
    b = _left_out_zeroed(b)
    xp, targets = b.xp, b.targets
    if reduction == "mean" and b.n == 0:
        raise ValueError(no_weight_message("`reduction='mean'`", 0))
    if groups > 1 and kernel.batch_wide_soft and targets.soft is not None:
        raise _torch_compat.Ungroupable(kernel.name)  # rows depend on the batch
    kept = b.kept
    if groups > 1 and kept is not None and reduction == "mean":
        kept = xp.reshape(kept, (groups, -1))  # every slice must keep one
    all_ignored = (
        kept is not None and b.eager and not bool(xp.all(xp.any(kept, axis=-1)))
    )
    if reduction == "mean" and all_ignored:
        msg = (
            f"every sample has the label ignore_index={ignore_index}: "
            "`reduction='mean'` of no samples is undefined (PyTorch returns NaN)"
        )
        raise ValueError(msg)

    extra: dict[str, Any] = {}
    fuse = (
        kernel.fused_scale and want_grad and reduction == "mean" and b.weights is None
    )
    if kernel.fused_scale:
        extra["grad_scale"] = 1.0 / (b.n // groups) if fuse else None
    run_params = {**b.params, **extra}
    if is_dask_namespace(xp) and not (
        kernel.batch_wide_soft and targets.soft is not None
    ):
        given = b.weights if b.given_weights is None else b.given_weights
        loss_rows, grad_rows = _dask_rows(
            kernel, b.z, targets, given, want_grad, run_params
        )
    elif kernel.jax_compile is not None and b.eager and is_jax_namespace(xp):
        loss_rows, grad_rows = _jax_rows(kernel, b.z, targets, want_grad, run_params)
    else:
        loss_rows, grad_rows = kernel.rows(
            b.z, targets, xp=xp, want_grad=want_grad, **run_params
        )
    if masked is not None:
        loss_rows, grad_rows = _unmask(kernel, loss_rows, grad_rows, mask, hit, xp=xp)
    value, grad = _reduce(
        loss_rows, grad_rows, b, reduction, scaled=fuse, groups=groups
    )
    if grad is not None:
        grad = b.to_caller(grad)
    return value, grad


def _check_masked_scores(z: Array, xp: Namespace) -> None:
    """NaN and ``+inf`` raise; ``-inf`` (a masked class) is allowed, but not a
    row of nothing else."""
    if bool(xp.all(xp.isfinite(z))):
        return
    if bool(xp.any(xp.isnan(z))):
        msg = "`logits` contains NaN values; scores must be finite or -inf (masked)"
        raise ValueError(msg)
    if bool(xp.any(z == xp.inf)):
        msg = "`logits` contains +inf values; scores must be finite or -inf (masked)"
        raise ValueError(msg)
    if z.shape[1] > 0 and bool(xp.any(xp.all(z == -xp.inf, axis=1))):
        msg = "`logits` has a row whose every score is -inf (every class masked)"
        raise ValueError(msg)


def _masked(b: Batch) -> tuple[Batch, Array, Array] | None:
    """The batch with its ``-inf`` scores (masked classes) replaced, or ``None``.

    A masked score becomes the row's largest finite score minus ``4 log(max
    float)``: ``exp`` of it relative to the row maximum is exactly 0, so a softmax
    gives it probability exactly 0 and leaves the others exactly unchanged.
    Returns the batch, the ``(n, C)`` mask and the ``(n,)`` rows whose target has
    mass on a masked class (with label smoothing, every row with a mask).
    """
    xp, z = b.xp, b.z
    mask = z == -xp.inf
    if not bool(xp.any(mask)):
        return None
    big = xp.finfo(z.dtype).max
    top = xp.max(xp.where(mask, xp.full_like(z, -big), z), axis=1, keepdims=True)
    gap = 4 * math.log(float(big))
    fill = xp.where(top < -big + gap, xp.full_like(top, -big), top - gap)
    z = xp.where(mask, xp.broadcast_to(fill, z.shape), z)
    t = b.targets
    if float(b.params.get("label_smoothing", 0.0) or 0.0) > 0:
        hit = xp.any(mask, axis=1)
    elif t.index is not None:
        hit = xp.any(mask & t.mask, axis=1)
    else:
        hit = xp.any(mask & (t.probs > 0), axis=1)
    return dataclasses.replace(b, z=z), mask, hit


def _left_out_zeroed(b: Batch) -> Batch:
    """The batch with zeros for the scores of its rows of weight zero (a zero
    weight, an ignored label, a class weight of zero), on the namespaces that warn.

    Their loss and gradient are exactly zero whatever the kernel computes for them
    (`_weighted` zeroes them before the product), so this changes no value; it keeps
    scores that overflow inside a kernel (rows of ``+-1e308``: ``z^2``, a sum of
    ``|z|``) from warning for a row that adds nothing.  Eager batches only."""
    xp, w = b.xp, b.weights
    if w is None or not b.eager or not _xp.warns(xp) or b.n == 0:
        return b
    out = w == 0
    if not bool(xp.any(out)):
        return b
    return dataclasses.replace(b, z=xp.where(out[:, None], xp.zeros_like(b.z), b.z))


def _unmask(
    kernel: Kernel,
    loss: Array,
    grad: Array | None,
    mask: Array,
    hit: Array,
    *,
    xp: Namespace,
) -> tuple[Array, Array | None]:
    """Exact zero gradients at masked classes; an infinite loss (or an error)
    where the target has mass on one."""
    # Elsewhere the kernel's value at probability 0 is the loss's (finite) limit.
    if kernel.name in INFINITE_AT_MASKED_TARGET and bool(xp.any(hit)):
        loss = xp.where(hit, xp.full_like(loss, xp.inf), loss)
    if grad is not None:
        zero = mask & ~hit[:, None]
        grad = xp.where(zero, xp.zeros_like(grad), grad)
    return loss, grad


def _check_finite(z: Array, *, xp: Namespace) -> None:
    # Not a sum as a cheaper probe: it overflows, with a warning, on finite scores
    # near the largest float.
    if bool(xp.all(xp.isfinite(z))):
        return
    bad = "NaN" if bool(xp.any(xp.isnan(z))) else "infinite"
    msg = f"`logits` contains {bad} values; scores must be finite"
    if bad == "infinite" and not bool(xp.any(z == xp.inf)):
        msg += (
            " (-inf for a masked class is taken by the losses of the softmax only: "
            f"{', '.join(sorted(MASKABLE))})"
        )
    raise ValueError(msg)


def _to_rows(x: Array, axis: int, n: int, n_classes: int, *, xp: Namespace) -> Array:
    if axis != x.ndim - 1:
        x = xp.moveaxis(x, axis, -1)
    return xp.reshape(x, (n, n_classes))


def _targets(
    name: str,
    soft_labels: bool,
    labels: Array,
    logits_shape: tuple[int, ...],
    axis: int,
    batch_shape: tuple[int, ...],
    z: Array,
    eager: bool,
    *,
    xp: Namespace,
    ignore_index: int | None = None,
) -> tuple[Targets, Array | None]:
    """The `Targets`, and the kept mask (``None`` without ``ignore_index``)."""
    n, n_classes = int(z.shape[0]), int(z.shape[1])
    dtype = z.dtype
    shape = tuple(labels.shape)
    if xp.isdtype(labels.dtype, "bool"):
        msg = (
            "`labels` must be integer class indices or floating soft labels (got bool)"
        )
        raise TypeError(msg)
    if ignore_index is not None:
        if isinstance(ignore_index, bool) or not isinstance(
            ignore_index, numbers.Integral
        ):
            msg = f"`ignore_index` must be an integer or None (got {ignore_index!r})"
            raise TypeError(msg)
        ignore_index = int(ignore_index)  # NumPy integers too
    if xp.isdtype(labels.dtype, "integral"):
        if len(logits_shape) == 2 and axis == 1 and shape == (*batch_shape, 1):
            shape = batch_shape  # (n, 1) labels, as a column
        elif shape == tuple(logits_shape) and n_classes > 1:
            msg = (
                f"integer `labels` of the shape of `logits` {shape} look like one-hot "
                "rows; pass class indices, or the one-hot rows as floats (soft "
                "labels, e.g. `labels.astype(float)`)"
            )
            raise ValueError(msg)
        if shape != batch_shape:
            torch_layout = (logits_shape[0], *logits_shape[2:])
            hint = (
                "; PyTorch's layout (N, C, d1, ...) has the classes on axis 1: pass "
                "axis=1"
                if len(logits_shape) > 2 and axis != 1 and shape == torch_layout
                else ""
            )
            msg = (
                f"integer `labels` must have the batch shape {batch_shape} of `logits` "
                f"{tuple(logits_shape)} without its class axis {axis} (got {shape})"
                f"{hint}"
            )
            raise ValueError(msg)
        index = xp.reshape(labels, (n,))
        kept = None
        if ignore_index is not None:
            info = xp.iinfo(index.dtype)
            if info.min <= ignore_index <= info.max:
                kept = index != ignore_index
                index = xp.where(kept, index, xp.zeros_like(index))
            else:  # no label can be it (and comparing would overflow or wrap)
                kept = xp.ones_like(index, dtype=xp.bool)
        if eager:
            _check_index(index, n_classes, xp=xp, ignore_index=ignore_index)
        index = _as_index(index, xp=xp)
        targets = Targets(
            index=index, soft=None, n_classes=n_classes, dtype=dtype, xp=xp
        )
        return targets, kept

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
    if not soft_labels:
        msg = (
            f"`{name}` takes integer class indices only, not soft labels "
            f"(got floating `labels` of shape {shape})"
        )
        raise ValueError(msg)
    if ignore_index is not None:
        msg = (
            "`ignore_index` applies to integer class indices, not soft labels; "
            "give ignored samples weight 0 through `weights`"
        )
        raise ValueError(msg)
    soft = _to_rows(xp.astype(labels, dtype), axis, n, n_classes, xp=xp)
    if eager:
        _check_distribution(soft, labels.dtype, xp=xp)
    targets = Targets(index=None, soft=soft, n_classes=n_classes, dtype=dtype, xp=xp)
    return targets, None


def _as_index(index: Array, *, xp: Namespace) -> Array:
    """Class indices in the namespace's default integer dtype, which every kernel
    can gather with (torch's gathers take ``int64`` only) and compare with the
    class numbers ``arange(C)`` (``uint64`` does not promote with a signed dtype
    in the standard; ``uint8`` class numbers wrap past 255)."""
    dtype = _xp.default_int(xp, _xp.xp_device(index))
    return index if index.dtype == dtype else xp.astype(index, dtype)


def _check_index(
    index: Array, n_classes: int, *, xp: Namespace, ignore_index: int | None = None
) -> None:
    if index.shape[0] == 0:
        return
    lo, hi = int(xp.min(index)), int(xp.max(index))
    if lo < 0 or hi >= n_classes:
        bad = lo if lo < 0 else hi
        also = "" if ignore_index is None else f" or ignore_index={ignore_index}"
        hint = (
            "; PyTorch ignores -100 by default, arrayloss only with ignore_index=-100"
            if bad == -100 and ignore_index is None
            else ""
        )
        msg = (
            f"`labels` must be class indices in [0, {n_classes - 1}]{also} "
            f"for {n_classes} classes (found {bad}){hint}"
        )
        raise ValueError(msg)


def _check_distribution(soft: Array, dtype: Any, *, xp: Namespace) -> None:
    if soft.shape[0] == 0:
        return
    _check_nonnegative(soft, "soft `labels`", xp=xp)
    # The precision of the labels' own dtype, or of the scores' dtype they were
    # cast to (``soft``'s), whichever is coarser.
    eps = max(_xp.finfo_eps(dtype, xp=xp), _xp.finfo_eps(soft.dtype, xp=xp))
    tol = math.sqrt(eps)
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
    eager: bool,
    *,
    xp: Namespace,
) -> Array | None:
    """The weights as ``(n,)`` floating values in their own dtype, checked."""
    if weights is None:
        return None
    if tuple(weights.shape) != batch_shape:
        msg = f"`weights` must have the batch shape {batch_shape} (got {tuple(weights.shape)})"
        raise ValueError(msg)
    n = math.prod(batch_shape)
    w = xp.reshape(_xp.as_floating(weights, "weights", xp=xp), (n,))
    if eager:
        _check_weights(w, xp=xp)
    return w


def _check_weights(w: Array, *, xp: Namespace) -> None:
    if w.shape[0] == 0:
        return
    _check_nonnegative(w, "`weights`", xp=xp)


def _check_nonnegative(x: Array, what: str, *, xp: Namespace) -> None:
    """Every entry of ``x`` finite and >= 0 (``what`` names it in the message)."""
    if not bool(xp.all(xp.isfinite(x))):
        msg = f"{what} contain NaN or infinite values"
        raise ValueError(msg)
    if bool(xp.any(x < 0)):
        msg = f"{what} must be non-negative (found {_xp.read_float(xp.min(x)):g})"
        raise ValueError(msg)


# --------------------------------------------------------------------------- #
# Weighted means
# --------------------------------------------------------------------------- #


def no_weight_message(subject: str, n: int) -> str:
    """The error of a mean over ``n`` samples whose weights are all zero."""
    return f"{subject} needs at least one sample with non-zero weight (got {n} samples)"


def nonzero_count(count: Array, message: str, *, xp: Namespace) -> Array:
    """``count`` (a lazy 0-d Dask array) that raises ``ValueError(message)`` when
    computed as zero, instead of letting a mean become NaN."""
    if not is_dask_namespace(xp):
        return count  # a JAX tracer: inside jit, values cannot be checked

    import dask.array as da

    def check(c: Array) -> Array:
        if not bool(c != 0):
            raise ValueError(message)
        return c

    return da.map_blocks(check, count, dtype=count.dtype, meta=count._meta)  # type: ignore[no-untyped-call, unused-ignore]


def _mean_count(b: Batch, subject: str) -> tuple[Array | None, Array | int]:
    """The mean's weights (`Batch.w_mean`) and their sum, checked to be non-zero."""
    if b.n == 0:
        raise ValueError(no_weight_message(subject, 0))
    if b.weights is None:
        return None, b.n
    if b.eager and _xp.read_float(b.w_top) == 0:
        raise ValueError(no_weight_message(subject, b.n))
    w = b.w_mean
    count = b.xp.sum(w)
    if not b.eager:
        count = nonzero_count(count, no_weight_message(subject, b.n), xp=b.xp)
    return w, count


def _weighted(x: Array, w: Array, *, xp: Namespace) -> Array:
    """``w * x`` along rows, exactly zero where the weight is (even if ``x`` is inf:
    zeroed before the product, which NumPy would warn about), and ``x`` itself
    where it is zero (a weight beyond the float range, ``inf``, times 0)."""
    if x.ndim == 2:
        w = w[:, None]
    x = xp.where(w == 0, xp.zeros_like(x), x)
    if _xp.is_lazy(w):  # Dask always (cheap); a JAX tracer as it is
        if is_dask_namespace(xp):
            w = xp.where(x == 0, xp.ones_like(x), w)
    elif not bool(xp.all(xp.isfinite(w))):
        w = xp.where(x == 0, xp.ones_like(x), w)
    return w * x


def weighted_mean(terms: Array, b: Batch, *, subject: str = "a metric") -> Array:
    """``sum(w * t) / sum(w)`` over the samples of ``b`` (all ones unweighted), as a
    0-d array in the scores' dtype; scale invariant in the weights."""
    xp = b.xp
    terms = xp.astype(terms, b.z.dtype)
    w, count = _mean_count(b, subject)
    return mean_of(terms if w is None else _weighted(terms, w, xp=xp), count, xp=xp)


def mean_of(terms: Array, count: Array | int, *, xp: Namespace) -> Array:
    """``sum(terms) / count``, a 0-d array of ``terms``' floating dtype, finite
    wherever that mean is: float16 and bfloat16 terms are summed in float32 (as
    `numpy.mean` does; 1000 losses of 70 summed to inf in float16), and terms
    whose sum could overflow their dtype (``n * max |t|`` beyond its largest
    number: 100 float32 losses of ``1e37``) are summed divided by a power of two
    ``>= n``, the mean scaled back.  Otherwise exactly ``xp.sum(terms) / count``:
    the scale is 1, and dividing and multiplying by 1 are exact."""
    dtype = terms.dtype
    work = _xp.work_dtype(dtype, xp=xp)
    if work != dtype:
        mean = mean_of(xp.astype(terms, work), count, xp=xp)
        return _xp.as_0d(_xp.round_to(mean, dtype, xp=xp), xp=xp)
    n = math.prod(terms.shape)
    if n < 2:  # one term (or none) is its own sum
        return _xp.as_0d(xp.sum(terms) / count, xp=xp)
    top = xp.max(xp.abs(terms))
    limit = float(xp.finfo(dtype).max) / n
    big = (top > limit) & (top < math.inf)  # inf or NaN terms: the plain sum
    if not _xp.is_lazy(terms) and not bool(big):
        return _xp.as_0d(xp.sum(terms) / count, xp=xp)
    # a power of two >= n: the scaled sum cannot overflow, the scaling is exact,
    # and 1 / scale stays a normal number (XLA flushes subnormals: a scale of
    # max |t| ~ 1e308 turned every term into 0)
    power = xp.asarray(
        2.0 ** math.ceil(math.log2(n)), dtype=dtype, device=_xp.xp_device(top)
    )
    scale = xp.where(big, power, xp.ones_like(top))
    return _xp.as_0d(xp.sum(terms / scale) / count * scale, xp=xp)


def _reduce(
    loss: Array,
    grad: Array | None,
    b: Batch,
    reduction: str,
    *,
    scaled: bool = False,
    groups: int = 1,
) -> tuple[Array, Array | None]:
    """The reduced loss and gradient rows.  ``groups > 1``: the rows are that many
    equal batches end to end (`arrayloss.torch`'s ``vmap`` rule), each reduced on
    its own exactly as a call of its own would be: the value has shape
    ``(groups,)`` for ``"mean"`` and ``"sum"``."""
    xp = b.xp
    if reduction != "mean":
        w = b.w
        if w is not None:
            # A zero weight removes the sample, even if its loss overflowed.
            loss = _weighted(loss, w, xp=xp)
            if grad is not None:
                grad = _weighted(grad, w, xp=xp)
        if reduction == "none":
            return xp.reshape(loss, b.batch_shape), grad
        if groups > 1:
            sums = [_xp.as_0d(xp.sum(x), xp=xp) for x in _parts(loss, groups)]
            return xp.stack(sums), grad
        return _xp.as_0d(xp.sum(loss), xp=xp), grad  # never a NumPy scalar
    if groups > 1:
        return _reduce_groups(loss, grad, b, groups, scaled=scaled)
    w, count = _mean_count(b, "`reduction='mean'`")
    if w is not None:
        loss = _weighted(loss, w, xp=xp)
        if grad is not None:
            grad = _weighted(grad, w, xp=xp)
    value = mean_of(loss, count, xp=xp)
    if grad is not None and not scaled:
        grad = _scale_grad(grad, count, owned=w is None, xp=xp)
    return value, grad


def _scale_grad(
    grad: Array, count: Array | int, *, owned: bool, xp: Namespace
) -> Array:
    """``grad / count``: in place in the kernel's own fresh array (``owned``, an
    unweighted mean), with no new temporary."""
    if owned and _xp.owns_writable_buffer(grad, xp=xp):
        grad *= 1 / count
        return grad
    return grad / count


def _parts(x: Array, groups: int) -> list[Array]:
    """``x``'s rows in ``groups`` equal consecutive parts."""
    m = int(x.shape[0]) // groups
    return [x[i * m : (i + 1) * m, ...] for i in range(groups)]


def _reduce_groups(
    loss: Array, grad: Array | None, b: Batch, groups: int, *, scaled: bool
) -> tuple[Array, Array | None]:
    """`_reduce`'s ``"mean"`` of each of ``groups`` equal parts of the rows: each
    part's weights scaled by its own largest one and its own count, as the batch
    of one call (`_mean_count` on the part), so the numbers are that call's."""
    xp = b.xp
    subject = "`reduction='mean'`"
    if b.weights is None:
        count = b.n // groups
        values = [mean_of(x, count, xp=xp) for x in _parts(loss, groups)]
        if grad is not None and not scaled:
            grad = _scale_grad(grad, count, owned=True, xp=xp)
        return xp.stack(values), grad
    if b.w_mean_given is not None:  # scaled by the whole batch's largest weights
        msg = "weights beyond the float range"
        raise _torch_compat.Ungroupable(msg)
    parts = [
        _mean_count(dataclasses.replace(b, z=z, weights=w, kept=None), subject)
        for z, w in zip(_parts(b.z, groups), _parts(b.weights, groups), strict=True)
    ]
    w = xp.concat([p[0] for p in parts])
    counts = xp.stack([p[1] for p in parts])
    loss = _weighted(loss, w, xp=xp)
    values = [
        mean_of(x, p[1], xp=xp)
        for x, p in zip(_parts(loss, groups), parts, strict=True)
    ]
    if grad is not None:
        grad = _weighted(grad, w, xp=xp)
        by_part = xp.reshape(grad, (groups, -1, int(grad.shape[1])))
        grad = xp.reshape(by_part / counts[:, None, None], grad.shape)
    return xp.stack(values), grad


# --------------------------------------------------------------------------- #
# Backends that run the kernel their own way
# --------------------------------------------------------------------------- #


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
    soft = targets.index is None
    lab: Array = targets.soft if targets.index is None else targets.index[:, None]
    z, lab, checks = _row_blocks(z, lab, w)
    rows = z.chunks[0]

    def block(zb: Array, lb: Array, *wb: Array) -> Array:
        bxp = _xp.array_namespace(zb)
        _check_finite(zb, xp=bxp)
        if soft:
            _check_distribution(lb, zb.dtype, xp=bxp)
        else:
            _check_index(lb[:, 0], n_classes, xp=bxp)
        for x in wb:
            _check_weights(x[:, 0], xp=bxp)
            # rows of weight zero add nothing: zeros for their scores (quiet)
            zb = bxp.where(x == 0, bxp.zeros_like(zb), zb)
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
    out = da.map_blocks(  # type: ignore[no-untyped-call, unused-ignore]
        block, z, lab, *checks, dtype=z.dtype, chunks=(rows, (width,)), meta=z._meta
    )
    return out[:, -1], (out[:, :-1] if want_grad else None)


def _row_blocks(
    z: Array, labels: Array, weights: Array | None
) -> tuple[Array, Array, list[Array]]:
    """The Dask scores ``z`` with their classes in one chunk, and the 2-D
    ``labels`` and the weights (as a column, in a list: none without weights)
    chunked as ``z``'s rows, for `dask.array.map_blocks` over the row blocks."""
    z = z.rechunk({1: -1})
    rows = z.chunks[0]
    checks = [] if weights is None else [weights[:, None].rechunk((rows, 1))]
    return z, labels.rechunk((rows, -1)), checks


def dask_checked(
    z: Array,
    targets: Targets,
    weights: Array | None,
    check_scores: Callable[[Array, Namespace, int], None],
) -> Array:
    """The ``(n, C)`` rows ``z`` of a Dask batch of class indices, whose blocks run
    an eager call's value checks when computed: ``check_scores(block, xp, row)``
    (``row``: the block's first row in the batch), labels in range, weights finite
    and non-negative; for what computes from ``z`` without `_dask_rows` (the
    metrics), so that bad values raise from ``compute()`` instead of giving NaN."""
    import dask.array as da

    if targets.index is None:  # pragma: no cover - the metrics take indices only
        msg = "dask_checked takes class indices"
        raise TypeError(msg)
    n_classes = targets.n_classes
    z, lab, checks = _row_blocks(z, targets.index[:, None], weights)

    def block(
        zb: Array, lb: Array, *wb: Array, block_info: dict[Any, Any] | None = None
    ) -> Array:
        bxp = _xp.array_namespace(zb)
        start = int(block_info[0]["array-location"][0][0]) if block_info else 0
        check_scores(zb, bxp, start)
        _check_index(lb[:, 0], n_classes, xp=bxp)
        for x in wb:
            _check_weights(x[:, 0], xp=bxp)
        return zb

    return da.map_blocks(  # type: ignore[no-any-return, no-untyped-call, unused-ignore]
        block, z, lab, *checks, dtype=z.dtype, meta=z._meta
    )


def _jax_rows(
    kernel: Kernel,
    z: Array,
    targets: Targets,
    want_grad: bool,
    params: Mapping[str, Any],
) -> tuple[Array, Array | None]:
    """``kernel.rows`` as one compiled program (see `Kernel.jax_compile`).

    ``params`` are all the kernel's arguments, ``grad_scale`` included: the ones
    not named in ``jax_compile`` are compile-time constants.
    """
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
