"""Every registry loss as a JAX function whose derivative is the analytic gradient.

``import arrayloss.jax`` (the ``jax`` extra) gives, for each name in
`arrayloss.LOSSES`, a function of the same name and signature as the core one
(``arrayloss.jax.smooth_topk_svm``, ``arrayloss.jax.keras.kl_divergence``) defined
with `jax.custom_jvp`: its tangent is ``<grad, dz>`` (per sample for
``reduction="none"``) with ``grad`` the loss's exact gradient (one
``value_and_grad`` of the core), so `jax.jvp` and `jax.jacfwd` use it and
`jax.grad`, `jax.value_and_grad`, `jax.vjp` and `jax.jacrev` transpose it to
``grad * cotangent``, instead of differentiating the forward code; all of them
under `jax.jit` and `jax.vmap` too.  Weights get their derivative, ``l_i`` for
``"sum"``/``"none"`` and ``(l_i - L) / sum(w)`` for the weighted mean.  No
derivative with respect to soft labels is provided: differentiating with respect
to them (`jax.grad` with their ``argnums``, `jax.vjp` or `jax.jvp` over them,
teacher probabilities computed from the logits without `jax.lax.stop_gradient`)
is a `ValueError` when JAX differentiates, as `arrayloss.torch` refuses labels
that require grad, instead of a silent zero.

**Second derivatives.**  `jax.hessian` (and ``jax.jacfwd(jax.grad(f))``, a
gradient of a gradient) are JAX's derivatives of the analytic gradient's code:
the core computes it with JAX operations, so JAX differentiates those (not a
hand-derived Hessian).  The host kernels below run NumPy, which JAX cannot
differentiate: there a second derivative is a `ValueError` that says to set
``HOST_KERNELS = False``.

**Compilation.**  The losses whose core kernel is compiled on JAX (the top-k
family, `smooth_topk_svm` and `topk_svm`, and the sparse `sparsemax_loss` and
`entmax15_loss`) run, for CPU arrays, as the NumPy kernels on
the host (`HOST_KERNELS`; under tracing through `jax.pure_callback`): XLA has
nothing of the kernel to compile and the step is faster.  On other devices they
are XLA programs, kept small to compile: the tree's levels of degree ``k``, the
tilt's Newton steps and its argmax drops run as loops (`jax.lax.scan`,
`jax.lax.fori_loop`) instead of being unrolled (`arrayloss.esp`;
``bench/bench_adapters.py`` times both compiles).  Called eagerly they run on
blocks of `BLOCK` rows, the last one padded: one compiled program per class count,
``k``, dtype and options, whatever the batch size.  Inside a traced function
(`jax.jit`, `jax.vmap`) the losses are part of the caller's program, which JAX
compiles once per input shape.

**Value checks.**  Eagerly the core checks values at the call: label range,
NaN/infinite logits, soft labels non-negative and summing to one, weights finite
and non-negative, a non-zero total weight for ``"mean"``.  Under tracing values are
unknown and none of these run (shape, dtype and option checks still do, at trace
time): an out-of-range label gives a wrong number, not an error.  That includes
arrays closed over inside `jax.jit` (their operations are traced too) and
concrete logits beside weights or labels that `jax.vmap` batches.  The exception is
the host path above, whose kernel sees the values: under `jax.jit` its check fails
the call with JAX's wrapping of the error (a `ValueError` or
`jax.errors.JaxRuntimeError`) carrying the core's message.
`check_inputs` runs every check eagerly on a batch, e.g. once per dataset or in a
debugging run.

**Conventions.**  ``ignore_index`` and ``class_weights`` (see `arrayloss._api.prepare`)
are options like the others, under tracing too (``class_weights`` must be concrete:
it is a constant of the compiled function).  ``-inf`` logits for masked classes are
taken on concrete arrays only: a traced batch does not look at values.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from . import _xp
from ._adapter import check_options, export, present
from ._api import Kernel, mean_of, sample_factors
from ._registry import CONVENTIONS, LOSSES, LossInfo, get_loss
from ._typing import Array
from .losses import l2 as _l2

__all__ = [
    "BLOCK",
    "Loss",
    "check_inputs",
    "keras",
    "loss",
    *(n for n in LOSSES if "." not in n),
]

BLOCK = 256
"""Rows per compiled block for eager calls of the compiled (top-k) kernels."""

HOST_KERNELS = True
"""Run the compiled (top-k) kernels of CPU arrays as the NumPy kernels on the host
(under tracing through `jax.pure_callback`): no XLA compilation of the kernel, and
faster steps than XLA's code for it.  ``False``: XLA (blocks of `BLOCK` rows
eagerly), as on GPUs."""


@functools.cache
def _compiled_kernel(name: str) -> bool:
    """True if ``name``'s core kernel is compiled per shape on concrete JAX arrays
    (``Kernel.jax_compile``): those are the losses run in blocks."""
    module = sys.modules[get_loss(name).value.__module__]
    return any(
        isinstance(k, Kernel) and k.name == name and k.jax_compile is not None
        for k in vars(module).values()
    )


def _traced(*arrays: Array | None) -> bool:
    return any(a is not None and _xp.is_jax_tracer(a) for a in arrays)


@dataclass(frozen=True)
class _Call:
    """One call of a registry loss: its arrays and options."""

    info: LossInfo
    logits: Array
    labels: Array
    weights: Array | None
    axis: int
    reduction: str
    params: Mapping[str, Any]

    def options(self, **changes: Any) -> dict[str, Any]:
        """The keywords of the core call (less ``weights``), with ``changes``."""
        return {
            **self.params,
            "axis": self.axis,
            "reduction": self.reduction,
            **changes,
        }


def _core(call: _Call, want_grad: bool = True) -> tuple[Array, Array | None]:
    """The core's ``value_and_grad`` (or ``value``, grad ``None``).

    The compiled kernels run on the host's NumPy kernels for CPU arrays (see
    `HOST_KERNELS`), else eagerly in blocks of rows; everything else as it is."""
    z, y, w = call.logits, call.labels, call.weights
    if _compiled_kernel(call.info.name):
        if HOST_KERNELS and _host_ok(z, y, w):
            return _host(call, want_grad)
        conv = any(call.params.get(k) is not None for k in CONVENTIONS)
        if not conv and _blockable(z, y, w, call.axis, call.reduction):
            return _blocked(call, want_grad)
    if want_grad:
        return call.info.value_and_grad(z, y, weights=w, **call.options())
    return call.info.value(z, y, weights=w, **call.options()), None


def _on_cpu(x: Array) -> bool:
    if _xp.is_jax_tracer(x):
        return bool(jax.default_backend() == "cpu")
    return all(d.platform == "cpu" for d in x.devices())


def _host_ok(logits: Array, labels: Array, weights: Array | None) -> bool:
    """JAX arrays (or tracers) on the CPU with floating scores: the host path."""
    arrays = [a for a in (logits, labels, weights) if a is not None]
    return (
        all(isinstance(a, jax.Array) for a in arrays)
        and logits.dtype in (jnp.float32, jnp.float64)
        and all(_on_cpu(a) for a in arrays)
    )


def _host(call: _Call, want_grad: bool) -> tuple[Array, Array | None]:
    """The NumPy kernel on the host: directly for concrete arrays, through
    `jax.pure_callback` under tracing (shapes from `jax.eval_shape` of the core,
    which also runs its shape and option checks at trace time)."""
    opts, loss = call.options(), call.info
    logits, labels, weights = call.logits, call.labels, call.weights

    def core(z: Array, y: Array, w: Array | None, **extra: Any) -> tuple[Array, ...]:
        kw = {**opts, **extra}
        if want_grad:
            return tuple(loss.value_and_grad(z, y, weights=w, **kw))
        return (loss.value(z, y, weights=w, **kw),)

    def on_numpy(z: Array, y: Array, w: Array | None) -> tuple[Array, ...]:
        w = None if w is None else np.asarray(w)
        cw = opts.get("class_weights")
        extra = {} if cw is None else {"class_weights": np.asarray(cw)}
        out = core(np.asarray(z), np.asarray(y), w, **extra)
        return tuple(np.asarray(o, dtype=z.dtype) for o in out)

    if not _traced(logits, labels, weights):
        out = tuple(jnp.asarray(o) for o in on_numpy(logits, labels, weights))
    else:
        shapes = jax.eval_shape(core, logits, labels, weights)

        @jax.custom_jvp
        def callback(z: Array, y: Array, w: Array | None) -> Any:
            return jax.pure_callback(
                on_numpy, shapes, z, y, w, vmap_method="sequential"
            )

        def refuse(primals: Any, tangents: Any) -> Any:
            raise ValueError(_HOST_SECOND_ORDER.format(name=loss.name))

        callback.defjvp(refuse)
        out = callback(logits, labels, weights)
    return out[0], (out[1] if want_grad else None)


_HOST_SECOND_ORDER = (
    "a second derivative of `{name}` (jax.hessian, jax.jacfwd or jax.grad of a "
    "gradient) is not available on the host kernel: its analytic gradient runs as "
    "the NumPy kernel (jax.pure_callback), which JAX cannot differentiate; set "
    "`arrayloss.jax.HOST_KERNELS = False` to run its XLA kernel, whose code JAX "
    "differentiates"
)


def _blockable(
    logits: Array, labels: Array, weights: Array | None, axis: int, reduction: str
) -> bool:
    """Concrete index-label batches the blocked path handles (others: the core)."""
    return bool(
        not _traced(logits, labels, weights)
        and isinstance(logits, jax.Array)
        and isinstance(labels, jax.Array)
        and logits.ndim >= 1
        and isinstance(axis, int)
        and -logits.ndim <= axis < logits.ndim
        and reduction in ("mean", "sum", "none")
        and jnp.issubdtype(labels.dtype, jnp.integer)
        and labels.shape == _batch_shape(logits.shape, axis % logits.ndim)
        and (weights is None or getattr(weights, "shape", None) == labels.shape)
        and labels.size > 0
    )


def _batch_shape(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    return tuple(shape[:axis] + shape[axis + 1 :])


def _blocked(call: _Call, want_grad: bool) -> tuple[Array, Array | None]:
    """Per-sample losses and gradients of ``(BLOCK, C)`` blocks, then the reduction
    (the core's: ``sum(w l) / sum(w)`` for ``"mean"``)."""
    info, logits, labels, weights = call.info, call.logits, call.labels, call.weights
    axis, reduction, params = call.axis % logits.ndim, call.reduction, call.params
    batch = labels.shape
    n, c = labels.size, logits.shape[axis]
    z = jnp.reshape(jnp.moveaxis(logits, axis, -1), (n, c))
    y = jnp.reshape(labels, (n,))
    w = None if weights is None else jnp.reshape(weights, (n,))
    pad = -n % BLOCK
    if pad:
        z = jnp.concatenate([z, jnp.zeros((pad, c), dtype=z.dtype)])
        y = jnp.concatenate([y, jnp.zeros((pad,), dtype=y.dtype)])
        if w is not None:
            w = jnp.concatenate([w, jnp.zeros((pad,), dtype=w.dtype)])
    run = info.value_and_grad if want_grad else info.value
    parts = [
        run(
            z[i : i + BLOCK], y[i : i + BLOCK], reduction="none",
            weights=None if w is None else w[i : i + BLOCK], **params,
        )
        for i in range(0, n + pad, BLOCK)
    ]  # fmt: skip
    if not want_grad:
        parts = [(p, p) for p in parts]
    rows = jnp.concatenate([p[0] for p in parts])[:n]
    grad = jnp.concatenate([p[1] for p in parts])[:n] if want_grad else None
    if reduction == "none":
        value = jnp.reshape(rows, batch)
    else:
        value = jnp.sum(rows)
        if reduction == "mean":
            count = n if weights is None else jnp.sum(w)  # type: ignore[arg-type]
            if float(count) == 0:
                msg = (
                    "`reduction='mean'` needs at least one sample with non-zero "
                    f"weight (got {n} samples)"
                )
                raise ValueError(msg)
            value = mean_of(rows, count, xp=jnp)
            grad = None if grad is None else grad / count
    if grad is not None:
        grad = jnp.moveaxis(jnp.reshape(grad, (*batch, c)), -1, axis)
    return value, grad


@functools.lru_cache(maxsize=256)
def _differentiable(
    name: str, axis: int, reduction: str, params: tuple[tuple[str, Hashable], ...]
) -> Callable[[Array, Array, Array | None], Array]:
    """``LOSSES[name]`` at fixed options as a `jax.custom_jvp` function of
    ``(logits, labels, weights)``: its tangent is ``<grad, dz>`` (per sample for
    ``"none"``) plus the weights' term, linear in the tangents, so JAX's reverse
    mode transposes it to ``grad * cotangent``."""
    info = get_loss(name)
    opts = dict(params)
    if opts.get("class_weights") is not None:  # hashed as a `_Constant`
        opts["class_weights"] = jnp.asarray(np.asarray(opts["class_weights"]))

    def call(logits: Array, labels: Array, weights: Array | None) -> _Call:
        return _Call(info, logits, labels, weights, axis, reduction, opts)

    @jax.custom_jvp
    def f(logits: Array, labels: Array, weights: Array | None) -> Array:
        return _core(call(logits, labels, weights), False)[0]

    def jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> tuple[Array, Array]:
        logits, labels, weights = primals
        dz, dt, dw = tangents
        _refuse_label_tangent(labels, dt)
        with_weights = weights is not None and not isinstance(dw, SymbolicZero)
        with _evaluating(logits, labels, weights):  # the primals only
            value, grad = _core(call(logits, labels, weights))
            coef = (
                _weights_coef(logits, labels, weights, value) if with_weights else None
            )
        assert grad is not None  # want_grad
        terms = []
        if not isinstance(dz, SymbolicZero):
            prod = grad * dz
            terms.append(
                jnp.sum(prod, axis=axis % grad.ndim)
                if reduction == "none"
                else jnp.sum(prod)
            )
        if coef is not None:
            term = coef * dw
            terms.append(term if reduction == "none" else jnp.sum(term))
        if not terms:
            return value, jnp.zeros_like(value)
        tangent = terms[0] if len(terms) == 1 else terms[0] + terms[1]
        return value, tangent.astype(value.dtype)

    def _weights_coef(z: Array, y: Array, w: Array, value: Array) -> Array:
        """d value / d w_i: ``l_i`` (``c_i l_i`` under the conventions) for
        ``"sum"``/``"none"``, ``(l_i - c_i L) / sum(w c)`` for the weighted mean."""
        rows = info.value(z, y, axis=axis, reduction="none", **opts)
        if reduction != "mean":
            return rows
        factors = sample_factors(z, y, opts, axis=axis)  # opts checked by info.value
        if factors is None:
            return (rows - value) / jnp.sum(w)
        c = factors.astype(rows.dtype)  # rows are c_i l_i; the mean's weights w c
        return (rows - c * value) / jnp.sum(w * c)

    f.defjvp(jvp, symbolic_zeros=True)
    return f


def _evaluating(*arrays: Array | None) -> contextlib.AbstractContextManager[Any]:
    """For concrete arrays outside `jax.jit`: JAX's evaluation context, where each
    operation takes JAX's fast dispatch.  The custom rule of `jax.grad` runs under
    its linearisation (a partial-evaluation trace) whose concrete operations take
    the slow one: the eager core ran 2-3x slower there.  Anything else (tracers,
    staging, another JAX layout): no change."""
    if _traced(*arrays) or _xp.jax_staging():
        return contextlib.nullcontext()
    try:
        from jax._src.core import eval_context
    except ImportError:  # pragma: no cover - another JAX layout
        return contextlib.nullcontext()
    return eval_context()


def _refuse_label_tangent(labels: Array, tangent: Any) -> None:
    """`ValueError` when JAX differentiates with respect to soft ``labels``: no
    derivative with respect to them is provided, and a zero tangent or cotangent
    would be a silent wrong number (as `arrayloss.torch` refuses labels that
    require grad)."""
    if isinstance(tangent, SymbolicZero):
        return
    if jnp.issubdtype(jnp.result_type(labels), jnp.inexact):
        msg = (
            "no gradient with respect to soft `labels` is provided: pass "
            "`jax.lax.stop_gradient(labels)` (teacher probabilities are constants), "
            "or leave them out of the arguments `jax.grad`/`jax.vjp`/`jax.jvp` "
            "differentiate"
        )
        raise ValueError(msg)


def _hashable(conv: Mapping[str, Any]) -> dict[str, Any]:
    """The `CONVENTIONS` keywords as options `_differentiable` can cache on:
    concrete ``class_weights`` as nested tuples of Python numbers (they are
    constants), their shape and kind of number kept for the core's checks."""
    out = {k: v for k, v in conv.items() if v is not None}
    cw = out.get("class_weights")
    if cw is not None and not _traced(cw) and not isinstance(cw, _Constant):
        out["class_weights"] = _Constant.of(cw)
    return out


@dataclass(frozen=True)
class _Constant:
    """A concrete array as a hashable option: its values, shape and dtype, so the
    core checks what the caller gave and bool weights never share a cache entry
    with float ones (``True == 1.0``)."""

    values: tuple[Any, ...]
    shape: tuple[int, ...]
    dtype: str

    @classmethod
    def of(cls, a: Any) -> _Constant:
        x = np.asarray(a)
        return cls(tuple(x.reshape(-1).tolist()), tuple(x.shape), x.dtype.str)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        x = np.asarray(self.values, dtype=self.dtype).reshape(self.shape)
        return x if dtype is None else x.astype(dtype)

    def __repr__(self) -> str:
        return repr(np.asarray(self).tolist())


def _function(info: LossInfo) -> Callable[..., Array]:
    """The `jax.custom_jvp` version of ``info.value`` (same name and signature)."""
    sig = inspect.signature(info.value)

    def fn(logits: Array, labels: Array, /, **options: Any) -> Array:
        conv = {k: options.pop(k) for k in CONVENTIONS if k in options}
        bound = sig.bind(logits, labels, **options)
        bound.apply_defaults()
        opts = dict(bound.arguments)
        del opts["logits"], opts["labels"]
        axis, reduction, weights = (
            opts.pop(k) for k in ("axis", "reduction", "weights")
        )
        opts.update(_hashable(conv))
        try:
            f = _differentiable(info.name, axis, reduction, tuple(sorted(opts.items())))
        except TypeError:  # an unhashable option: let the core name it
            conv = {k: np.asarray(v) if isinstance(v, _Constant) else v
                    for k, v in conv.items()}  # fmt: skip
            return info.value(logits, labels, **options, **conv)
        return f(logits, labels, weights)

    present(fn, info, __name__, "with its analytic gradient as the JAX derivative "
            "(`jax.custom_jvp`)")  # fmt: skip
    return fn


keras = export(globals(), __name__, _function)


@dataclass(frozen=True)
class Loss:
    """One registry loss at fixed options, callable as ``(logits, labels,
    weights=None)`` (build it with `loss`); hashable, so usable as a static
    argument of `jax.jit`."""

    name: str
    params: tuple[tuple[str, Any], ...] = field(default=())

    def __call__(
        self, logits: Array, labels: Array, weights: Array | None = None
    ) -> Array:
        """The loss, differentiable with its analytic gradient."""
        fn = _function(get_loss(self.name))
        return fn(logits, labels, weights=weights, **dict(self.params))

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.params)
        return f"Loss({self.name!r}{opts})"


def loss(name: str, **params: Any) -> Loss:
    """``arrayloss.LOSSES[name]`` at fixed options as a callable `Loss`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import arrayloss.jax as alj
    >>> crit = alj.loss("smooth_topk_svm", k=2)
    >>> crit
    Loss('smooth_topk_svm', k=2)
    >>> z = jnp.array([[1.0, 2.5, -0.3, 0.7, 3.1]])
    >>> value, grad = jax.value_and_grad(crit)(z, jnp.array([2]))
    >>> round(float(value), 5), abs(float(grad.sum())) < 1e-6  # rows sum to 0
    (2.58892, True)
    """
    check_options(name, params, "at the call, not to `loss`")
    opts = dict(params)
    if opts.get("class_weights") is not None:  # hashable, as a jit static argument
        opts.update(_hashable({"class_weights": opts["class_weights"]}))
    return Loss(name, tuple(opts.items()))


def check_inputs(
    name: str,
    logits: Array,
    labels: Array,
    /,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    **params: Any,
) -> None:
    """Run every check of an eager call of ``LOSSES[name]``, without the loss.

    Shapes, dtypes and options are checked by tracing the loss abstractly
    (`jax.eval_shape`); the value checks that tracing skips (label range, finite
    logits, soft-label sums, weights, non-zero total weight for ``"mean"``) on the
    concrete arrays.  Raises what the eager call would raise; returns ``None``.

    Raises
    ------
    TypeError
        If an array is a tracer (call it outside `jax.jit`), or as the loss would.
    ValueError
        As the eager loss would.
    """
    if _traced(logits, labels, weights):
        msg = "`check_inputs` needs concrete arrays: call it outside `jax.jit`"
        raise TypeError(msg)
    info = get_loss(name)
    opts = dict(params, axis=axis, reduction=reduction)
    jax.eval_shape(
        lambda z, y, w: info.value(z, y, weights=w, **opts), logits, labels, weights
    )
    # The value checks are the shared front end's, the same for every loss: run
    # them through the cheapest loss that takes both label kinds.
    _l2(logits, labels, axis=axis, reduction=reduction, weights=weights)
